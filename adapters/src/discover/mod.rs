//! `drover discover`: probes hosts for model servers and writes a nodes
//! file in the seed schema (see [`crate::config`]).
//!
//! 1. [`plan`] checks every host against the node URL policy
//!    ([`UrlPolicy::check_url`], and [`UrlPolicy::check_ip`] for each
//!    address a host name resolves to) before anything is contacted.
//! 2. Every allowed host and port is probed, at most [`MAX_PROBING`] at
//!    once, each request bounded by the timeout: `GET /api/tags` (Ollama),
//!    else `GET /v1/models` (OpenAI-compatible). Nothing else is asked.
//! 3. The nodes found are merged into the old file at the same path, if
//!    any (operator-tuned keys are kept), and the file is written
//!    atomically with mode 0600.
//!
//! The [`Report`] has counts only, never addresses.

mod args;
mod merge;
pub(crate) mod probe;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use drover_core::node::NodeKind;
use drover_transports::smol::{Client, ClientConfig, Runtime};

pub use args::{DEFAULT_PORTS, DiscoverOptions, MAX_HOSTS, MAX_PORTS, USAGE, parse};

use crate::config::{UrlError, UrlPolicy};
use merge::NewNode;

/// Most probes in flight at once.
pub const MAX_PROBING: usize = 32;

/// A host allowed by the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The host as given (names the nodes found on it).
    pub given: String,
    /// The address probed (for a host name, the first it resolved to).
    pub ip: IpAddr,
}

/// A host the policy refused; it is never contacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The host as given.
    pub given: String,
    /// Why.
    pub reason: String,
}

/// Checks `hosts` against `policy`, resolving host names (when the policy
/// allows them) with `resolve`: each address a name resolves to must pass,
/// or the host is refused. Makes no connection.
pub fn plan(
    hosts: &[String],
    policy: &UrlPolicy,
    resolve: &dyn Fn(&str) -> std::io::Result<Vec<IpAddr>>,
) -> (Vec<Host>, Vec<Refused>) {
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for given in hosts {
        match check_host(given, policy, resolve) {
            Ok(ip) => allowed.push(Host {
                given: given.clone(),
                ip,
            }),
            Err(reason) => refused.push(Refused {
                given: given.clone(),
                reason,
            }),
        }
    }
    (allowed, refused)
}

fn check_host(
    given: &str,
    policy: &UrlPolicy,
    resolve: &dyn Fn(&str) -> std::io::Result<Vec<IpAddr>>,
) -> Result<IpAddr, String> {
    let bare = given.trim_start_matches('[').trim_end_matches(']');
    let authority = if bare.contains(':') {
        format!("[{bare}]")
    } else {
        bare.to_owned()
    };
    // The port does not matter to the host checks.
    let url = policy
        .check_url(&format!("http://{authority}:1"))
        .map_err(|e| flag_hint(&e))?;
    if let Some(addr) = url.addr {
        return Ok(addr.ip());
    }
    let ips = resolve(&url.host).map_err(|e| format!("cannot resolve: {e}"))?;
    let Some(first) = ips.first() else {
        return Err("resolves to no address".to_owned());
    };
    for ip in &ips {
        policy
            .check_ip(*ip)
            .map_err(|e| format!("resolves to a refused address: {}", flag_hint(&e)))?;
    }
    Ok(*first)
}

/// The policy's reason, naming this command's flag where the gateway's
/// message names its config key.
fn flag_hint(e: &UrlError) -> String {
    match e {
        UrlError::Public(ip) => format!("address {ip} is public: pass --allow-public to probe it"),
        UrlError::Hostname(h) => {
            format!("`{h}` is a host name: pass --allow-hostnames to resolve and probe it")
        }
        other => other.to_string(),
    }
}

/// Resolves a host name with the system resolver.
pub fn system_resolve(host: &str) -> std::io::Result<Vec<IpAddr>> {
    Ok((host, 0u16).to_socket_addrs()?.map(|a| a.ip()).collect())
}

/// What a run did: counts only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Hosts given.
    pub hosts: usize,
    /// Hosts refused by the URL policy (never contacted).
    pub refused: usize,
    /// Host and port pairs probed.
    pub probed: usize,
    /// Ollama servers found.
    pub ollama: usize,
    /// OpenAI-compatible servers found.
    pub openai: usize,
    /// Models listed by the servers found, summed.
    pub models: usize,
    /// Servers that answered with no models (not added).
    pub empty: usize,
    /// Nodes added to the file.
    pub added: usize,
    /// Nodes of the old file found again and refreshed.
    pub updated: usize,
    /// Nodes of the old file probed and not answering, kept.
    pub not_answering: usize,
    /// Nodes of the old file not probed this run, kept.
    pub not_probed: usize,
    /// Model aliases dropped (their model is no longer served).
    pub aliases_dropped: usize,
    /// Nodes in the file written.
    pub written: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "hosts: {} given, {} refused by the URL policy; {} host:port pairs probed",
            self.hosts, self.refused, self.probed
        )?;
        writeln!(
            f,
            "found: {} ollama, {} openai_compat, {} models in all; {} answered with no models (not added)",
            self.ollama, self.openai, self.models, self.empty
        )?;
        writeln!(
            f,
            "nodes file: {} added, {} updated, kept from the old file: {} not answering, {} not probed",
            self.added, self.updated, self.not_answering, self.not_probed
        )?;
        if self.aliases_dropped > 0 {
            writeln!(
                f,
                "model aliases dropped: {} (see stderr)",
                self.aliases_dropped
            )?;
        }
        writeln!(f, "wrote {} nodes", self.written)
    }
}

/// Runs `drover discover`: problems that do not stop it (refused hosts,
/// dropped aliases) go to `err`. Writes nothing when the old file cannot
/// be read or the result has no node.
pub fn run(opts: &DiscoverOptions, err: &mut dyn Write) -> Result<Report, String> {
    run_with(opts, &system_resolve, err)
}

/// [`run`] with `resolve` as the resolver.
pub fn run_with(
    opts: &DiscoverOptions,
    resolve: &dyn Fn(&str) -> std::io::Result<Vec<IpAddr>>,
    err: &mut dyn Write,
) -> Result<Report, String> {
    // Read the old file first: a bad one stops the run before any probe.
    let old = merge::read_old(&opts.write)?;
    let policy = UrlPolicy {
        allow_public: opts.allow_public,
        allow_hostnames: opts.allow_hostnames,
        ..UrlPolicy::default()
    };
    let (hosts, refused) = plan(&opts.hosts, &policy, resolve);
    for r in &refused {
        // stderr is for problems; a refused host is one.
        let _ = writeln!(
            err,
            "drover: discover: host `{}` refused: {}",
            r.given, r.reason
        );
    }
    let mut report = Report {
        hosts: opts.hosts.len(),
        refused: refused.len(),
        ..Report::default()
    };
    // Two names for one address (`localhost`, `127.0.0.1`) probe it once.
    let mut seen = BTreeSet::new();
    let targets: Vec<(Host, u16)> = hosts
        .iter()
        .flat_map(|h| opts.ports.iter().map(move |p| (h.clone(), *p)))
        .filter(|(h, p)| seen.insert(SocketAddr::new(h.ip, *p)))
        .collect();
    report.probed = targets.len();
    let probed: BTreeSet<String> = targets
        .iter()
        .map(|(h, p)| merge::url_key(&base_url(h.ip, *p)))
        .collect();
    let found = probe_all(targets, opts.timeout)?;
    let mut nodes = Vec::new();
    for (host, port, f) in found {
        match f.kind {
            NodeKind::Ollama => report.ollama += 1,
            NodeKind::OpenAiCompat => report.openai += 1,
        }
        report.models += f.models.len();
        nodes.push(NewNode {
            host: host.given,
            base_url: base_url(host.ip, port),
            port,
            kind: f.kind,
            models: f.models,
        });
    }
    let merged = merge::merge(old, nodes, &probed, &opts.tags)?;
    for w in &merged.warnings {
        let _ = writeln!(err, "drover: discover: {w}");
    }
    report.empty = merged.empty;
    report.added = merged.added;
    report.updated = merged.updated;
    report.not_answering = merged.not_answering;
    report.not_probed = merged.not_probed;
    report.aliases_dropped = merged.aliases_dropped;
    if merged.nodes == 0 {
        return Err(format!(
            "no model server found; {} not written",
            opts.write.display()
        ));
    }
    crate::serve::state::write_atomic(&opts.write, merged.text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", opts.write.display()))?;
    report.written = merged.nodes;
    Ok(report)
}

fn base_url(ip: IpAddr, port: u16) -> String {
    format!("http://{}", SocketAddr::new(ip, port))
}

/// Probes every target, [`MAX_PROBING`] at once; returns the servers
/// found, in the order of `targets`.
fn probe_all(
    targets: Vec<(Host, u16)>,
    timeout: Duration,
) -> Result<Vec<(Host, u16, probe::Found)>, String> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let rt = Runtime::new(1).map_err(|e| format!("cannot start the runtime: {e}"))?;
    let client = Client::new(
        ClientConfig {
            connect_timeout: timeout,
            idle_timeout: Duration::from_secs(1),
            max_idle_per_host: 1,
        },
        &rt,
    );
    let limit = Arc::new(smol::lock::Semaphore::new(MAX_PROBING));
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|(host, port)| {
            let (client, limit) = (client.clone(), limit.clone());
            rt.spawn(async move {
                let _permit = limit.acquire_arc().await;
                let addr = SocketAddr::new(host.ip, port);
                let authority = addr.to_string();
                let found = probe::probe(&client, addr, &authority, timeout).await;
                found.map(|f| (host, port, f))
            })
        })
        .collect();
    Ok(rt.block_on(async {
        let mut found = Vec::new();
        for t in tasks {
            if let Some(f) = t.await {
                found.push(f);
            }
        }
        found
    }))
}
