//! The URL policy's table tests.

use super::*;

fn policy() -> UrlPolicy {
    UrlPolicy::default()
}

/// Every row: URL, and `Ok(Some(class))` if the default policy takes
/// it, or the start of the refusal's message.
#[test]
fn default_policy_table() {
    let ok: &[(&str, AddrClass)] = &[
        ("http://127.0.0.1:11434", AddrClass::Loopback),
        ("http://127.8.9.10:80", AddrClass::Loopback),
        ("http://10.0.0.5:8000", AddrClass::Private),
        ("https://172.16.0.1:443", AddrClass::Private),
        ("http://172.31.255.255:1", AddrClass::Private),
        ("http://192.168.1.20:11434/", AddrClass::Private),
        ("http://[::1]:11434", AddrClass::Loopback),
        ("http://[fd12:3456::1]:8000", AddrClass::Private),
        ("http://[fc00::1]:8000", AddrClass::Private),
        ("HTTP://LOCALHOST:11434", AddrClass::Loopback),
        ("http://[::ffff:10.1.2.3]:80", AddrClass::Private),
    ];
    for (url, class) in ok {
        let u = policy()
            .check_url(url)
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let ip = u.addr.expect("IP literal").ip();
        assert_eq!(classify(ip), Ok(*class), "{url}");
        assert!(!u.public, "{url}");
    }
    let refused: &[(&str, &str)] = &[
        // Scheme, port, userinfo, query, fragment, path.
        ("ftp://10.0.0.1:21", "scheme `ftp`"),
        ("file:///etc/passwd", "scheme `file`"),
        ("10.0.0.1:80", "not a URL"),
        ("http://10.0.0.1", "the port must be given"),
        ("http://10.0.0.1:/v1", "the port must be given"),
        ("http://[::1]", "the port must be given"),
        ("http://10.0.0.1:0", "port `0`"),
        ("http://10.0.0.1:65536", "port `65536`"),
        ("http://10.0.0.1:+80", "port `+80`"),
        ("http://user:pw@10.0.0.1:80", "userinfo"),
        ("http://evil.com@10.0.0.1:80", "userinfo"),
        ("http://10.0.0.1:80/?a=b", "a query"),
        ("http://10.0.0.1:80#x", "a fragment"),
        ("http://10.0.0.1:80/a/../admin", "path `/a/../admin`"),
        ("http://10.0.0.1:80/a%2f", "path `/a%2f`"),
        ("http://10.0.0.1:80//x", "path `//x`"),
        ("http://10.0.0.1 :80", "not a URL"),
        ("http://10.0.0.1:80\\x", "not a URL"),
        ("http://:80", "not a URL"),
        ("http://::1:80", "write IPv6 addresses in brackets"),
        // Always refused addresses.
        (
            "http://169.254.169.254:80",
            "address 169.254.169.254 is link-local",
        ),
        ("http://169.254.0.1:80", "is link-local"),
        ("http://[fe80::1]:80", "address fe80::1 is link-local"),
        ("http://[fe80::1%25eth0]:80", "zone ids"),
        ("http://0.0.0.0:80", "address 0.0.0.0 is unspecified"),
        ("http://0.1.2.3:80", "\"this network\""),
        ("http://[::]:80", "address :: is unspecified"),
        ("http://255.255.255.255:80", "is broadcast"),
        ("http://224.0.0.1:80", "is multicast"),
        ("http://239.255.255.250:1900", "is multicast"),
        ("http://[ff02::1]:80", "is multicast"),
        ("http://240.0.0.1:80", "reserved (240.0.0.0/4)"),
        ("http://192.0.2.1:80", "reserved for documentation"),
        ("http://198.51.100.7:80", "reserved for documentation"),
        ("http://203.0.113.9:80", "reserved for documentation"),
        ("http://[2001:db8::1]:80", "reserved for documentation"),
        ("http://[3fff::1]:80", "reserved for documentation"),
        ("http://198.18.0.1:80", "reserved for benchmarking"),
        ("http://192.0.0.8:80", "IETF protocol"),
        ("http://100.64.0.1:80", "carrier-grade NAT"),
        ("http://100.100.100.200:80", "carrier-grade NAT"),
        ("http://100.127.255.255:80", "carrier-grade NAT"),
        ("http://168.63.129.16:80", "the Azure platform endpoint"),
        ("http://[fd00:ec2::254]:80", "the AWS metadata service"),
        ("http://[fec0::1]:80", "site-local"),
        (
            "http://[::ffff:169.254.169.254]:80",
            "IPv4-mapped 169.254.169.254, which is link-local",
        ),
        (
            "http://[::ffff:a9fe:a9fe]:80",
            "IPv4-mapped 169.254.169.254, which is link-local",
        ),
        (
            "http://[::ffff:0.0.0.0]:80",
            "IPv4-mapped 0.0.0.0, which is unspecified",
        ),
        (
            "http://[::ffff:100.100.100.200]:80",
            "which is carrier-grade NAT",
        ),
        (
            "http://[::ffff:168.63.129.16]:80",
            "which is the Azure platform endpoint",
        ),
        (
            "http://[::ffff:224.0.0.1]:80",
            "IPv4-mapped 224.0.0.1, which is multicast",
        ),
        (
            "http://[::ffff:192.0.2.1]:80",
            "which is reserved for documentation",
        ),
        ("http://[::169.254.169.254]:80", "IPv4-compatible"),
        ("http://[64:ff9b::a9fe:a9fe]:80", "NAT64"),
        ("http://[2002:a9fe:a9fe::1]:80", "6to4"),
        ("http://[2001::1]:80", "IETF protocols"),
        ("http://[100::1]:80", "discarding"),
        ("http://[4000::1]:80", "not global unicast"),
        // Odd IPv4 spellings.
        ("http://2852039166:80", "integer, hex, octal"),
        ("http://0xa9fea9fe:80", "integer, hex, octal"),
        ("http://0251.0376.0251.0376:80", "integer, hex, octal"),
        ("http://169.254.43518:80", "integer, hex, octal"),
        ("http://127.1:80", "integer, hex, octal"),
        ("http://010.0.0.1:80", "integer, hex, octal"),
        ("http://0x7f.0.0.1:80", "integer, hex, octal"),
        // Metadata names, host names and public addresses.
        ("http://metadata.google.internal:80", "cloud metadata"),
        ("http://METADATA.google.internal.:80", "cloud metadata"),
        ("http://metadata:80", "cloud metadata"),
        ("http://gpu-box.lan:11434", "host `gpu-box.lan` is a name"),
        ("http://8.8.8.8:80", "address 8.8.8.8 is public"),
        ("http://[2606:4700::1111]:443", "is public"),
        ("http://[::ffff:8.8.8.8]:80", "is public"),
        ("http://bad_host:80", "host `bad_host` is not"),
        ("http://-x.lan:80", "host `-x.lan` is not"),
    ];
    for (url, want) in refused {
        match policy().check_url(url) {
            Ok(u) => panic!("{url} was accepted as {u}"),
            Err(e) => assert!(e.to_string().contains(want), "{url}: {e} (want {want})"),
        }
    }
}

#[test]
fn opt_ins_and_allowlists() {
    let open = UrlPolicy {
        allow_public: true,
        allow_hostnames: true,
        ..UrlPolicy::default()
    };
    let u = open.check_url("https://8.8.8.8:443/api").unwrap();
    assert!(u.public && u.scheme_https);
    assert_eq!(u.base_path, "/api");
    assert_eq!(u.to_string(), "https://8.8.8.8:443/api");
    let u = open.check_url("http://GPU-Box.lan.:11434/").unwrap();
    assert_eq!(
        (u.host.as_str(), u.addr, u.public),
        ("gpu-box.lan", None, true)
    );
    assert_eq!(u.to_string(), "http://gpu-box.lan:11434");
    // Opt-ins never open the always-refused ranges.
    for url in [
        "http://169.254.169.254:80",
        "http://100.100.100.200:80",
        "http://metadata.google.internal:80",
        "http://2852039166:80",
    ] {
        assert!(open.check_url(url).is_err(), "{url}");
    }
    let narrow = UrlPolicy {
        allowed_ports: vec![11434],
        allowed_cidrs: vec!["10.1.0.0/16".parse().unwrap(), "::1/128".parse().unwrap()],
        ..UrlPolicy::default()
    };
    assert!(narrow.check_url("http://10.1.2.3:11434").is_ok());
    assert!(narrow.check_url("http://[::1]:11434").is_ok());
    assert!(narrow.check_url("http://[::ffff:10.1.0.9]:11434").is_ok());
    assert_eq!(
        narrow.check_url("http://10.1.2.3:8000"),
        Err(UrlError::PortNotAllowed(8000))
    );
    assert_eq!(
        narrow
            .check_url("http://10.2.0.1:11434")
            .unwrap_err()
            .to_string(),
        "address 10.2.0.1 is in none of url_policy.allowed_cidrs"
    );
    assert!(narrow.check_url("http://localhost:11434").is_err());
    // An allowlisted public range still needs allow_public.
    let cidr_only = UrlPolicy {
        allowed_cidrs: vec!["8.8.8.0/24".parse().unwrap()],
        ..UrlPolicy::default()
    };
    assert_eq!(
        cidr_only.check_ip("8.8.8.8".parse().unwrap()),
        Err(UrlError::Public("8.8.8.8".parse().unwrap()))
    );
}

#[test]
fn parts_and_display() {
    let u = policy().check_url("http://[fd00::5]:8000/v1/").unwrap();
    assert_eq!(u.host, "fd00::5");
    assert_eq!(u.port, 8000);
    assert_eq!(u.base_path, "/v1");
    assert_eq!(u.authority(), "[fd00::5]:8000");
    assert_eq!(u.to_string(), "http://[fd00::5]:8000/v1");
    assert_eq!(u.addr, Some("[fd00::5]:8000".parse().unwrap()));
    let u = policy().check_url("http://localhost:11434").unwrap();
    assert_eq!(u.addr, Some("127.0.0.1:11434".parse().unwrap()));
}

#[test]
fn cidr_parsing() {
    let c: Cidr = "192.168.0.0/16".parse().unwrap();
    assert!(c.contains("192.168.4.4".parse().unwrap()));
    assert!(!c.contains("192.169.0.1".parse().unwrap()));
    assert!(!c.contains("::1".parse().unwrap()));
    let all: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains("1.2.3.4".parse().unwrap()));
    assert_eq!(c.to_string(), "192.168.0.0/16");
    for (bad, want) in [
        ("10.0.0.0", "not a CIDR block"),
        ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
        ("10.0.0.0/33", "must be 0 to 32"),
        ("fd00::/129", "must be 0 to 128"),
        ("10.0.0.0/+8", "must be 0 to 32"),
        ("ten/8", "not an IP address"),
    ] {
        let e = bad.parse::<Cidr>().unwrap_err();
        assert!(e.contains(want), "{bad}: {e}");
    }
}

/// The bypass spellings of issue 6, item 11: each is refused by the
/// default policy and by the widest policy there is (public addresses,
/// host names, every address in `allowed_cidrs`, every port), both as a
/// node URL and, where it is an address, as an address a host name
/// resolves to at connect time ([`UrlPolicy::check_ip`]). No setting
/// unlocks them: the opt-ins widen only the public and host-name rules,
/// and the allowlists only narrow.
#[test]
fn bypass_spellings_are_refused_whatever_the_policy() {
    let widest = UrlPolicy {
        allow_public: true,
        allow_hostnames: true,
        allowed_ports: Vec::new(),
        allowed_cidrs: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
    };
    let urls = [
        // The AWS/GCP/Azure/OpenStack metadata address and its spellings.
        "http://169.254.169.254:80",
        "http://2852039166:80",
        "http://0xa9fea9fe:80",
        "http://0xA9FEA9FE:80",
        "http://025177524776:80",
        "http://0251.0376.0251.0376:80",
        "http://0xa9.0xfe.0xa9.0xfe:80",
        "http://169.254.43518:80",
        "http://169.16689662:80",
        "http://[::ffff:169.254.169.254]:80",
        "http://[::ffff:a9fe:a9fe]:80",
        "http://[0:0:0:0:0:ffff:169.254.169.254]:80",
        "http://[::169.254.169.254]:80",
        // IPv6 link-local, the whole of fe80::/10.
        "http://[fe80::1]:80",
        "http://[fe80::a9fe:a9fe]:80",
        "http://[febf:ffff::1]:80",
        "http://[FE80::1]:80",
        // Alibaba and Azure metadata, GCP by name, AWS over IPv6.
        "http://100.100.100.200:80",
        "http://[::ffff:100.100.100.200]:80",
        "http://168.63.129.16:80",
        "http://metadata.google.internal:80",
        "http://metadata.google.internal.:80",
        "http://Metadata.Google.Internal:80",
        "http://metadata.goog:80",
        "http://[fd00:ec2::254]:80",
        // Unspecified: connects to the local host on most systems.
        "http://0.0.0.0:80",
        "http://0:80",
        "http://[::]:80",
        "http://[::ffff:0.0.0.0]:80",
    ];
    for url in urls {
        for (name, p) in [("default", &policy()), ("widest", &widest)] {
            if let Ok(u) = p.check_url(url) {
                panic!("{url} was accepted by the {name} policy as {u}");
            }
        }
    }
    // As resolved addresses (a host name that resolves to one of them).
    for ip in [
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "fe80::1",
        "febf::1",
        "100.100.100.200",
        "168.63.129.16",
        "fd00:ec2::254",
        "0.0.0.0",
        "::",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        for p in [&policy(), &widest] {
            assert!(
                matches!(p.check_ip(ip), Err(UrlError::Forbidden { .. })),
                "{ip}: {:?}",
                p.check_ip(ip)
            );
        }
    }
    // Just outside fe80::/10 is not link-local (fec0::/10 is refused as
    // site-local; the point is that the /10 boundary is where it should be).
    assert_eq!(
        classify("fec0::1".parse().unwrap()),
        Err(UrlError::Forbidden {
            addr: "fec0::1".parse().unwrap(),
            why: "a deprecated site-local address"
        })
    );
    // The widest policy does open what it is meant to open.
    assert!(widest.check_url("http://8.8.8.8:80").is_ok());
    assert!(widest.check_url("http://gpu-box.lan:80").is_ok());
    assert_eq!(
        widest.check_ip("8.8.8.8".parse().unwrap()),
        Ok(AddrClass::Public)
    );
}
