//! Node URL policy: which `baseUrl`s drover may send requests to.
//!
//! A node's `baseUrl` comes from a config file, and drover sends client
//! payloads (and possibly an API key) there, so a hostile or mistaken URL is
//! a server-side request forgery: a request to a cloud metadata service, to
//! the router's own admin page, or to the internet. [`UrlPolicy::check_url`]
//! accepts only URLs that are plainly a model server on the local network:
//!
//! - scheme `http` or `https`, an explicit port, no userinfo (`user@`), no
//!   query and no fragment, a path of plain characters without `.`/`..`
//!   segments;
//! - an IP literal host is classified by [`classify`]: loopback and private
//!   ranges (RFC 1918 `10/8`, `172.16/12`, `192.168/16`, IPv6 ULA
//!   `fc00::/7`) are allowed; link-local, multicast, unspecified, broadcast,
//!   CGNAT (`100.64/10`), documentation, benchmarking and other reserved
//!   ranges, tunnel and translation prefixes, and the known metadata
//!   addresses (`169.254.169.254`, `100.100.100.200`, `168.63.129.16`,
//!   `fd00:ec2::254`) are always refused, as are IPv4-mapped IPv6 forms of
//!   them (`::ffff:169.254.169.254`); any other (public) address needs
//!   `allow_public`;
//! - an IPv4 address spelt other than as a canonical dotted quad
//!   (`2852039166`, `0xa9fea9fe`, `0251.0376.0251.0376`, `127.1`) is always
//!   refused: resolvers disagree on what such spellings mean;
//! - a host name needs `allow_hostnames`, except `localhost`, which is taken
//!   as `127.0.0.1`. Known metadata names (`metadata.google.internal`, …) are
//!   always refused. A name is resolved when drover connects: the gateway
//!   checks every address it resolves to with [`UrlPolicy::check_ip`],
//!   refuses the attempt if any is refused, and connects to the checked
//!   address itself, so DNS rebinding cannot swap in another one
//!   (`Gateway::connect_addr` in `serve::gateway`);
//! - `allowed_ports` and `allowed_cidrs`, when not empty, further restrict
//!   the port and the IP literal address. They never widen the rules above.
//!
//! Every refusal is a [`UrlError`] whose `Display` says why.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Which node URLs are allowed (`[url_policy]`). The default allows
/// loopback and private IP literals on any port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Allow public (globally routable) IP addresses (`allow_public`,
    /// default false).
    pub allow_public: bool,
    /// Allow host names, resolved at connect time (`allow_hostnames`,
    /// default false). A host name counts as public for [`NodeUrl::public`].
    pub allow_hostnames: bool,
    /// If not empty, the only ports allowed (`allowed_ports`).
    pub allowed_ports: Vec<u16>,
    /// If not empty, IP addresses must be in one of these (`allowed_cidrs`).
    pub allowed_cidrs: Vec<Cidr>,
}

/// A node's checked base URL. `Display` prints it back as a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeUrl {
    /// `https` rather than `http`.
    pub scheme_https: bool,
    /// The host, lower case, without brackets or a trailing dot.
    pub host: String,
    /// The port (always given explicitly).
    pub port: u16,
    /// The socket address, when the host is an IP literal or `localhost`;
    /// `None` for a host name resolved at connect time.
    pub addr: Option<SocketAddr>,
    /// The path prefix put before every upstream path: empty or starting
    /// with `/`, never ending with `/`.
    pub base_path: String,
    /// The address is public, or is a host name (unknown until resolved):
    /// credentials are withheld unless the node allows them.
    pub public: bool,
}

impl NodeUrl {
    /// `host:port` as sent in a `Host` header (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for NodeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.scheme_https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.base_path)
    }
}

/// What an allowed address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrClass {
    /// `127.0.0.0/8` or `::1`.
    Loopback,
    /// RFC 1918 or IPv6 unique local (`fc00::/7`).
    Private,
    /// Globally routable.
    Public,
}

/// An IP network, `addr/prefix` (host bits zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length: up to 32 for IPv4, 128 for IPv6.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address is
    /// matched as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    /// `10.0.0.0/8`, `fd00::/8`; host bits must be zero.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let Some((addr, prefix)) = s.split_once('/') else {
            return Err(format!("`{s}` is not a CIDR block like 10.0.0.0/8"));
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` in `{s}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix.parse::<u8>() {
            Ok(p) if p <= max && !prefix.starts_with('+') => p,
            _ => return Err(format!("prefix of `{s}` must be 0 to {max}")),
        };
        let cidr = Cidr { addr, prefix };
        let network = Cidr {
            addr: network_of(addr, prefix),
            prefix,
        };
        if network != cidr {
            return Err(format!(
                "`{s}` has bits set after the prefix; did you mean {network}?"
            ));
        }
        Ok(cidr)
    }
}

fn network_of(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// Why a node URL or address was refused. `Display` gives the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Not a URL of the form `scheme://host:port[/path]`.
    Malformed(&'static str),
    /// A scheme other than `http` or `https`.
    Scheme(String),
    /// No port given.
    NoPort,
    /// The port is not a number from 1 to 65535.
    BadPort(String),
    /// `user:password@` before the host.
    Userinfo,
    /// A `?query`.
    Query,
    /// A `#fragment`.
    Fragment,
    /// The host is neither an IP literal nor a valid host name.
    BadHost(String),
    /// An IPv4 address spelt as an integer, in hex or octal, or with fewer
    /// than four parts.
    NonCanonicalIpv4(String),
    /// An address that is never allowed, and why (`link-local`, …). For an
    /// IPv4-mapped IPv6 address, `why` is about its IPv4 address.
    Forbidden {
        /// The address.
        addr: IpAddr,
        /// What kind of address it is.
        why: &'static str,
    },
    /// A known cloud metadata host name.
    MetadataHost(String),
    /// A public address without `allow_public`.
    Public(IpAddr),
    /// A host name without `allow_hostnames`.
    Hostname(String),
    /// The port is not in `allowed_ports`.
    PortNotAllowed(u16),
    /// The address is in none of `allowed_cidrs`.
    NotInAllowedCidrs(IpAddr),
    /// A path with characters other than letters, digits and `-._~/`, or a
    /// `.`/`..` segment.
    BadPath(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Malformed(why) => write!(f, "not a URL like http://10.0.0.5:11434: {why}"),
            UrlError::Scheme(s) => write!(f, "scheme `{s}` is not allowed: use http or https"),
            UrlError::NoPort => f.write_str("the port must be given explicitly (host:port)"),
            UrlError::BadPort(p) => write!(f, "port `{p}` is not a number from 1 to 65535"),
            UrlError::Userinfo => f.write_str("userinfo (user:password@) is not allowed"),
            UrlError::Query => f.write_str("a query (?…) is not allowed"),
            UrlError::Fragment => f.write_str("a fragment (#…) is not allowed"),
            UrlError::BadHost(h) => write!(f, "host `{h}` is not an IP address or a host name"),
            UrlError::NonCanonicalIpv4(h) => write!(
                f,
                "host `{h}` looks like an IPv4 address in integer, hex, octal or short form: \
                 write it as a dotted quad such as 10.0.0.5"
            ),
            UrlError::Forbidden { addr, why } => match unmap(*addr) {
                IpAddr::V4(v4) if addr.is_ipv6() => write!(
                    f,
                    "address {addr} is IPv4-mapped {v4}, which is {why}: never allowed"
                ),
                _ => write!(f, "address {addr} is {why}: never allowed"),
            },
            UrlError::MetadataHost(h) => {
                write!(f, "host `{h}` is a cloud metadata service: never allowed")
            }
            UrlError::Public(a) => write!(
                f,
                "address {a} is public: set allow_public = true in [url_policy] to allow it"
            ),
            UrlError::Hostname(h) => write!(
                f,
                "host `{h}` is a name, not an IP address: set allow_hostnames = true in \
                 [url_policy] to allow names"
            ),
            UrlError::PortNotAllowed(p) => {
                write!(f, "port {p} is not in url_policy.allowed_ports")
            }
            UrlError::NotInAllowedCidrs(a) => {
                write!(f, "address {a} is in none of url_policy.allowed_cidrs")
            }
            UrlError::BadPath(p) => write!(
                f,
                "path `{p}` may only hold letters, digits and -._~/ and no . or .. segments"
            ),
        }
    }
}

impl std::error::Error for UrlError {}

/// Host names that are cloud metadata services, refused whatever the policy.
const METADATA_HOSTS: [&str; 5] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

impl UrlPolicy {
    /// Checks a node's `baseUrl` and splits it into its parts.
    pub fn check_url(&self, url: &str) -> Result<NodeUrl, UrlError> {
        if url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return Err(UrlError::Malformed(
                "it holds whitespace, a control character or a backslash",
            ));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(UrlError::Malformed("no scheme:// at its start"));
        };
        let scheme_https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return Err(UrlError::Scheme(scheme.to_owned())),
        };
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        if rest.contains('?') {
            return Err(UrlError::Query);
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(UrlError::Userinfo);
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => return Err(UrlError::BadPort(port.to_owned())),
        };
        let (host, addr, public) = self.check_host(host)?;
        if !self.allowed_ports.is_empty() && !self.allowed_ports.contains(&port) {
            return Err(UrlError::PortNotAllowed(port));
        }
        Ok(NodeUrl {
            scheme_https,
            host,
            port,
            addr: addr.map(|ip| SocketAddr::new(ip, port)),
            base_path: check_path(path)?,
            public,
        })
    }

    /// Checks one address against the policy: the always-refused ranges,
    /// `allow_public` and `allowed_cidrs`. Code that resolves a host name
    /// at connect time must call this for each address it gets.
    pub fn check_ip(&self, ip: IpAddr) -> Result<AddrClass, UrlError> {
        let class = classify(ip)?;
        if class == AddrClass::Public && !self.allow_public {
            return Err(UrlError::Public(ip));
        }
        if !self.allowed_cidrs.is_empty() && !self.allowed_cidrs.iter().any(|c| c.contains(ip)) {
            return Err(UrlError::NotInAllowedCidrs(ip));
        }
        Ok(class)
    }

    /// The host's normalised text, its address when known, and whether it
    /// counts as public.
    fn check_host(&self, host: &str) -> Result<(String, Option<IpAddr>, bool), UrlError> {
        if let Some(inner) = host.strip_prefix('[') {
            let Some(inner) = inner.strip_suffix(']') else {
                return Err(UrlError::BadHost(host.to_owned()));
            };
            if inner.contains('%') {
                return Err(UrlError::BadHost(format!(
                    "{host} (IPv6 zone ids are not allowed)"
                )));
            }
            let ip: Ipv6Addr = inner
                .parse()
                .map_err(|_| UrlError::BadHost(host.to_owned()))?;
            let class = self.check_ip(IpAddr::V6(ip))?;
            return Ok((
                ip.to_string(),
                Some(IpAddr::V6(ip)),
                class == AddrClass::Public,
            ));
        }
        let name = host.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
        if let Ok(ip) = name.parse::<Ipv4Addr>() {
            let class = self.check_ip(IpAddr::V4(ip))?;
            return Ok((
                ip.to_string(),
                Some(IpAddr::V4(ip)),
                class == AddrClass::Public,
            ));
        }
        if looks_numeric(&name) {
            return Err(UrlError::NonCanonicalIpv4(host.to_owned()));
        }
        if !valid_hostname(&name) {
            return Err(UrlError::BadHost(host.to_owned()));
        }
        if METADATA_HOSTS.contains(&name.as_str()) {
            return Err(UrlError::MetadataHost(host.to_owned()));
        }
        if name == "localhost" {
            let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
            self.check_ip(ip)?;
            return Ok((name, Some(ip), false));
        }
        if !self.allow_hostnames {
            return Err(UrlError::Hostname(host.to_owned()));
        }
        Ok((name, None, true))
    }
}

/// `host:port` → (`host`, `port`); an IPv6 host keeps its brackets.
fn split_host_port(authority: &str) -> Result<(&str, &str), UrlError> {
    if authority.is_empty() {
        return Err(UrlError::Malformed("no host"));
    }
    let (host, port) = if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err(UrlError::BadHost(authority.to_owned()));
        };
        let (host, after) = authority.split_at(end + 1);
        match after.strip_prefix(':') {
            Some(port) => (host, port),
            None if after.is_empty() => return Err(UrlError::NoPort),
            None => return Err(UrlError::BadHost(authority.to_owned())),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(UrlError::BadHost(format!(
                    "{host} (write IPv6 addresses in brackets: [::1]:11434)"
                )));
            }
            Some(parts) => parts,
            None => return Err(UrlError::NoPort),
        }
    };
    if port.is_empty() {
        return Err(UrlError::NoPort);
    }
    if host.is_empty() {
        return Err(UrlError::Malformed("no host"));
    }
    Ok((host, port))
}

/// WHATWG URL parsers read a host whose last label is a number as an IPv4
/// address (`127.1`, `0x7f.1`, `2852039166`); such hosts are refused.
fn looks_numeric(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    hex || (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner
/// hyphens, each 1 to 63 bytes, 253 in all.
fn valid_hostname(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn check_path(path: &str) -> Result<String, UrlError> {
    let trimmed = path.trim_end_matches('/');
    let plain = trimmed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
    let dots = trimmed.split('/').any(|seg| seg == "." || seg == "..");
    let empty_segment = trimmed.split('/').skip(1).any(str::is_empty);
    if !plain || dots || empty_segment {
        return Err(UrlError::BadPath(path.to_owned()));
    }
    Ok(trimmed.to_owned())
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 address.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The class of an address, or why it is never allowed. This is the
/// policy-independent part of [`UrlPolicy::check_ip`].
pub fn classify(ip: IpAddr) -> Result<AddrClass, UrlError> {
    let why = match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    };
    why.map_err(|why| UrlError::Forbidden { addr: ip, why })
}

fn in4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Result<AddrClass, &'static str> {
    const RULES: [([u8; 4], u32, Result<AddrClass, &str>); 16] = [
        ([0, 0, 0, 0], 32, Err("unspecified")),
        (
            [0, 0, 0, 0],
            8,
            Err("\"this network\" (0.0.0.0/8), reserved"),
        ),
        ([127, 0, 0, 0], 8, Ok(AddrClass::Loopback)),
        ([10, 0, 0, 0], 8, Ok(AddrClass::Private)),
        ([172, 16, 0, 0], 12, Ok(AddrClass::Private)),
        ([192, 168, 0, 0], 16, Ok(AddrClass::Private)),
        (
            [169, 254, 0, 0],
            16,
            Err("link-local (cloud metadata lives here)"),
        ),
        (
            [100, 64, 0, 0],
            10,
            Err("carrier-grade NAT space (100.64.0.0/10)"),
        ),
        ([168, 63, 129, 16], 32, Err("the Azure platform endpoint")),
        (
            [192, 0, 0, 0],
            24,
            Err("reserved for IETF protocol assignments"),
        ),
        ([192, 0, 2, 0], 24, Err("reserved for documentation")),
        ([198, 51, 100, 0], 24, Err("reserved for documentation")),
        ([203, 0, 113, 0], 24, Err("reserved for documentation")),
        ([198, 18, 0, 0], 15, Err("reserved for benchmarking")),
        ([192, 88, 99, 0], 24, Err("a deprecated 6to4 relay address")),
        ([224, 0, 0, 0], 4, Err("multicast")),
    ];
    if ip == Ipv4Addr::BROADCAST {
        return Err("broadcast");
    }
    if in4(ip, [240, 0, 0, 0], 4) {
        return Err("reserved (240.0.0.0/4)");
    }
    for (net, prefix, verdict) in RULES {
        if in4(ip, net, prefix) {
            return verdict;
        }
    }
    Ok(AddrClass::Public)
}

fn in6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn classify_v6(ip: Ipv6Addr) -> Result<AddrClass, &'static str> {
    const RULES: [([u16; 8], u32, Result<AddrClass, &str>); 16] = [
        ([0, 0, 0, 0, 0, 0, 0, 0], 128, Err("unspecified")),
        ([0, 0, 0, 0, 0, 0, 0, 1], 128, Ok(AddrClass::Loopback)),
        (
            [0, 0, 0, 0, 0, 0, 0, 0],
            96,
            Err("a deprecated IPv4-compatible address"),
        ),
        (
            [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
            96,
            Err("a NAT64 translation address"),
        ),
        (
            [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
            48,
            Err("a NAT64 translation address"),
        ),
        (
            [0x100, 0, 0, 0, 0, 0, 0, 0],
            64,
            Err("reserved for discarding (100::/64)"),
        ),
        (
            [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
            32,
            Err("reserved for documentation"),
        ),
        (
            [0x3fff, 0, 0, 0, 0, 0, 0, 0],
            20,
            Err("reserved for documentation"),
        ),
        (
            [0x2001, 0, 0, 0, 0, 0, 0, 0],
            23,
            Err("reserved for IETF protocols (Teredo, benchmarking, …)"),
        ),
        (
            [0x2002, 0, 0, 0, 0, 0, 0, 0],
            16,
            Err("a 6to4 tunnel address"),
        ),
        (
            [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
            128,
            Err("the AWS metadata service"),
        ),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Ok(AddrClass::Private)),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Err("link-local")),
        (
            [0xfec0, 0, 0, 0, 0, 0, 0, 0],
            10,
            Err("a deprecated site-local address"),
        ),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Err("multicast")),
        ([0x2000, 0, 0, 0, 0, 0, 0, 0], 3, Ok(AddrClass::Public)),
    ];
    for (net, prefix, verdict) in RULES {
        if in6(ip, net, prefix) {
            return verdict;
        }
    }
    Err("not global unicast (reserved)")
}

#[cfg(test)]
mod tests;
