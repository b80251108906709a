//! The command line of `drover discover`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Command, UsageError, option, path, usage};

/// `drover discover --help`.
pub const USAGE: &str = "\
drover discover: probes the given hosts for model servers and writes a nodes
file in the seed schema (the JSON that nodes_path names in a gateway config).

On each host and port it asks GET /api/tags (an Ollama server; its models
are the names listed) and, failing that, GET /v1/models (an OpenAI-compatible
server: vLLM, llama.cpp, LM Studio; its models are the ids listed). Nothing
else is requested, so no model is loaded. A port that refuses, times out or
answers anything else is not a node.

Hosts are checked by the node URL policy before any connection: loopback and
private addresses are allowed; public addresses need --allow-public;
link-local, metadata, multicast and unspecified addresses are always refused.
Refused hosts are named on stderr with the reason and never contacted.

If FILE exists, the nodes it lists are kept: a node found again at the same
baseUrl keeps its name, maxConcurrency, weight, modelAliases, tags and other
keys, and its models unless it has \"pinModels\": true; a node that does not
answer now is kept as it is. FILE is written atomically with mode 0600.

Prints counts only (never the hosts found) and exits 0 when FILE is written,
1 on errors, 2 on a bad command line.

Usage: drover discover --hosts \"H1 H2 ...\" --write FILE [OPTIONS]

Options:
      --hosts LIST       IP addresses (or host names with --allow-hostnames),
                         separated by spaces or commas
      --write FILE       The nodes file to write (and merge with, if it exists)
      --ports LIST       Ports to probe on every host, comma-separated
                         [default: 11434,8000,8001,1234]
      --tags LIST        Tags for the nodes found, comma-separated
      --timeout T        Per-request timeout, e.g. 500ms or 2s, from 10ms to
                         60s [default: 1s]
      --allow-public     Allow public IP addresses
      --allow-hostnames  Allow host names; each is resolved once and every
                         address it resolves to must pass the policy
  -h, --help             Print this help
";

/// Ports probed when `--ports` is not given: Ollama, vLLM (two), LM Studio.
pub const DEFAULT_PORTS: [u16; 4] = [11434, 8000, 8001, 1234];
/// Most hosts one run probes.
pub const MAX_HOSTS: usize = 1024;
/// Most ports one run probes on each host.
pub const MAX_PORTS: usize = 32;

/// Options of `drover discover`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// `--hosts`, in the order given, without repeats.
    pub hosts: Vec<String>,
    /// `--ports`, in the order given, without repeats.
    pub ports: Vec<u16>,
    /// `--tags`.
    pub tags: Vec<String>,
    /// `--timeout`: the limit of each request (connect and answer).
    pub timeout: Duration,
    /// `--allow-public`.
    pub allow_public: bool,
    /// `--allow-hostnames`.
    pub allow_hostnames: bool,
    /// `--write`.
    pub write: PathBuf,
}

/// Parses the arguments after `drover discover`.
pub fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut hosts = None;
    let mut ports = None;
    let mut tags = None;
    let mut timeout = None;
    let mut write = None;
    let (mut allow_public, mut allow_hostnames) = (false, false);
    let known = ["--hosts", "--ports", "--tags", "--timeout", "--write"];
    while let Some(arg) = args.next() {
        let flag = match arg.to_str() {
            Some("--allow-public") => Some(&mut allow_public),
            Some("--allow-hostnames") => Some(&mut allow_hostnames),
            _ => None,
        };
        if let Some(flag) = flag {
            if *flag {
                return usage(format!("option '{}' is given twice", arg.to_string_lossy()));
            }
            *flag = true;
            continue;
        }
        let Some((name, value)) = option(arg, &mut args, "discover", &known)? else {
            return Ok(Command::DiscoverHelp);
        };
        let given = match name.as_str() {
            "--hosts" => hosts.is_some(),
            "--ports" => ports.is_some(),
            "--tags" => tags.is_some(),
            "--timeout" => timeout.is_some(),
            _ => write.is_some(),
        };
        if given {
            return usage(format!("option '{name}' is given twice"));
        }
        match name.as_str() {
            "--hosts" => hosts = Some(host_list(&name, &value)?),
            "--ports" => ports = Some(port_list(&name, &value)?),
            "--tags" => tags = Some(tag_list(&name, &value)?),
            "--timeout" => timeout = Some(duration(&name, &value)?),
            _ => write = Some(path(&name, &value, "a nodes file")?),
        }
    }
    let Some(hosts) = hosts else {
        return usage("missing option '--hosts' (try 'drover discover --help')".to_owned());
    };
    let Some(write) = write else {
        return usage("missing option '--write' (try 'drover discover --help')".to_owned());
    };
    Ok(Command::Discover(DiscoverOptions {
        hosts,
        ports: ports.unwrap_or_else(|| DEFAULT_PORTS.to_vec()),
        tags: tags.unwrap_or_default(),
        timeout: timeout.unwrap_or(Duration::from_secs(1)),
        allow_public,
        allow_hostnames,
        write,
    }))
}

/// Items separated by commas and/or whitespace, without repeats.
fn items(value: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for item in value.split(|c: char| c == ',' || c.is_whitespace()) {
        if !item.is_empty() && !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn host_list(name: &str, value: &str) -> Result<Vec<String>, UsageError> {
    let hosts = items(value);
    if hosts.is_empty() {
        return usage(format!(
            "invalid value '{value}' for '{name}': expected one or more hosts"
        ));
    }
    if hosts.len() > MAX_HOSTS {
        return usage(format!(
            "invalid value for '{name}': {} hosts, at most {MAX_HOSTS}",
            hosts.len()
        ));
    }
    Ok(hosts.into_iter().map(str::to_owned).collect())
}

fn port_list(name: &str, value: &str) -> Result<Vec<u16>, UsageError> {
    let mut ports = Vec::new();
    for p in items(value) {
        match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => ports.push(n),
            _ => {
                return usage(format!(
                    "invalid value '{p}' for '{name}': expected ports from 1 to 65535"
                ));
            }
        }
    }
    if ports.is_empty() || ports.len() > MAX_PORTS {
        return usage(format!(
            "invalid value '{value}' for '{name}': expected 1 to {MAX_PORTS} ports"
        ));
    }
    Ok(ports)
}

fn tag_list(name: &str, value: &str) -> Result<Vec<String>, UsageError> {
    let tags = items(value);
    for t in &tags {
        let fine = t.len() <= drover_core::catalog::MAX_NAME
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !fine {
            return usage(format!(
                "invalid value '{t}' for '{name}': a tag is 1 to {} letters, digits, `-`, `_` or `.`",
                drover_core::catalog::MAX_NAME
            ));
        }
    }
    Ok(tags.into_iter().map(str::to_owned).collect())
}

fn duration(name: &str, value: &str) -> Result<Duration, UsageError> {
    let parsed = if let Some(ms) = value.strip_suffix("ms") {
        ms.parse::<u64>().ok().map(Duration::from_millis)
    } else if let Some(s) = value.strip_suffix('s') {
        s.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 60.0)
            .map(Duration::from_secs_f64)
    } else {
        None
    };
    match parsed {
        Some(d) if d >= Duration::from_millis(10) && d <= Duration::from_secs(60) => Ok(d),
        _ => usage(format!(
            "invalid value '{value}' for '{name}': expected a time from 10ms to 60s, like 500ms or 2s"
        )),
    }
}

/// Reads `--hosts` and friends from `args` (for tests).
#[cfg(test)]
pub(super) fn parse_strs(args: &[&str]) -> Result<Command, UsageError> {
    parse(args.iter().map(OsString::from))
}
