//! `drover agent`: runs beside a model server and pushes heartbeats to
//! one or more gateways (`POST /nodes/heartbeat`, see
//! [`crate::serve::heartbeat`]).
//!
//! Every interval the agent reads the server's catalog (Ollama
//! `GET /api/tags`, OpenAI-compatible `GET /v1/models`), computes a stable
//! fingerprint of it (FNV-1a of the sorted model names), and posts one
//! heartbeat to each gateway. When the catalog cannot be read, no
//! heartbeat is sent: the gateway then sees the node go stale, then lost,
//! exactly as if the agent had stopped.
//!
//! What a heartbeat carries: the node name, the protocol version, the
//! fingerprint and the model names, `maxSlots` (from `--slots`), `freeSlots`
//! (always reported equal to `maxSlots`: neither Ollama nor the OpenAI API
//! tells how many requests are running, so the agent claims no load it
//! cannot see), `queued` 0, the drain flag, `recentFailures` (catalog reads
//! that failed since the last heartbeat), `latencyMs` (moving average of
//! the catalog read, a liveness probe, not inference latency) and the
//! coarse `--hardware` tags. Never prompts, paths, user names or hardware
//! ids.
//!
//! [`start`] runs an agent on its own thread and returns a handle; the CLI
//! wraps it with signal handling ([`cli::run`]).

pub mod cli;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use drover_core::node::NodeKind;
use drover_transports::smol::{Client, ClientConfig, Runtime, read_capped};
use http::{HeaderValue, Method};
use http_body_util::Full;
use smol::future::FutureExt as _;

use crate::config::{NodeUrl, Secret, UrlPolicy};
use crate::serve::heartbeat::PROTOCOL_VERSION;

/// Longest a catalog read or a heartbeat post may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest catalog reply read.
const MAX_CATALOG_BYTES: usize = 4 << 20;

/// How an agent is set up.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Gateway base URLs (`--gateway`, at least one).
    pub gateways: Vec<String>,
    /// The heartbeat token (read from `--token-env`).
    pub token: Secret,
    /// The model server's base URL (`--node-url`).
    pub node_url: String,
    /// The node's name in the gateways' configs (`--node`, default `local`).
    pub node: String,
    /// Time between heartbeats (`--interval`, default 1 s).
    pub interval: Duration,
    /// The model server's protocol (`--kind`, default Ollama).
    pub kind: NodeKind,
    /// Concurrent requests the server takes (`--slots`, default 4).
    pub slots: u16,
    /// Coarse hardware tags, `gpu` and/or `cpu` (`--hardware`).
    pub hardware: Vec<String>,
    /// Start draining (`DROVER_DRAIN=1`).
    pub drain: bool,
    /// Which URLs are allowed for `gateways` and `node_url`.
    pub url_policy: UrlPolicy,
}

impl AgentOptions {
    /// Options with the defaults: node `local`, 1 s, Ollama, 4 slots.
    pub fn new(gateways: Vec<String>, token: Secret, node_url: impl Into<String>) -> Self {
        AgentOptions {
            gateways,
            token,
            node_url: node_url.into(),
            node: "local".to_owned(),
            interval: Duration::from_secs(1),
            kind: NodeKind::Ollama,
            slots: 4,
            hardware: Vec::new(),
            drain: false,
            url_policy: UrlPolicy::default(),
        }
    }
}

/// A resolved HTTP endpoint.
#[derive(Clone, Debug)]
struct Target {
    url: String,
    addr: SocketAddr,
    authority: HeaderValue,
    base_path: String,
}

fn target(policy: &UrlPolicy, what: &str, url: &str) -> Result<Target, String> {
    let u: NodeUrl = policy
        .check_url(url)
        .map_err(|e| format!("{what} `{url}`: {e}"))?;
    if u.scheme_https {
        return Err(format!(
            "{what} `{url}`: https is not supported by this build (use http on the LAN)"
        ));
    }
    let addr = match u.addr {
        Some(a) => a,
        None => (u.host.as_str(), u.port)
            .to_socket_addrs()
            .map_err(|e| format!("{what} `{url}`: cannot resolve: {e}"))?
            .next()
            .ok_or_else(|| format!("{what} `{url}`: resolves to no address"))?,
    };
    let authority =
        HeaderValue::from_str(&u.authority()).map_err(|_| format!("{what} `{url}`: bad host"))?;
    Ok(Target {
        url: url.to_owned(),
        addr,
        authority,
        base_path: u.base_path.trim_end_matches('/').to_owned(),
    })
}

/// What the agent has done, for tests and logs.
#[derive(Debug, Default)]
struct Counters {
    beats: AtomicU64,
    /// Last HTTP status per gateway (0: none yet or no answer).
    statuses: Mutex<Vec<u16>>,
}

/// A running agent. Dropping it stops it.
pub struct Agent {
    stop: smol::channel::Sender<()>,
    drain: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl Agent {
    /// Sets or clears the drain flag; the next heartbeat carries it.
    pub fn set_drain(&self, drain: bool) {
        self.drain.store(drain, Ordering::Relaxed);
    }

    /// Whether the agent reports draining.
    pub fn draining(&self) -> bool {
        self.drain.load(Ordering::Relaxed)
    }

    /// Heartbeats posted so far (to any gateway, answered or not).
    pub fn beats_sent(&self) -> u64 {
        self.counters.beats.load(Ordering::Relaxed)
    }

    /// The last HTTP status each gateway answered, in `--gateway` order
    /// (`None`: no answer yet, or the last post failed).
    pub fn last_statuses(&self) -> Vec<Option<u16>> {
        self.counters
            .statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|&s| (s != 0).then_some(s))
            .collect()
    }

    /// Stops the agent and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Checks `opts` and starts the agent on its own thread.
///
/// # Errors
///
/// A URL the policy refuses or that does not resolve, no gateway, zero
/// slots or interval, a bad hardware tag, or no thread.
pub fn start(opts: AgentOptions) -> Result<Agent, String> {
    if opts.gateways.is_empty() {
        return Err("give at least one --gateway URL".to_owned());
    }
    if opts.interval.is_zero() {
        return Err("--interval must be longer than 0".to_owned());
    }
    if opts.slots == 0 {
        return Err("--slots must be at least 1".to_owned());
    }
    if let Some(h) = opts.hardware.iter().find(|h| *h != "gpu" && *h != "cpu") {
        return Err(format!("--hardware `{h}`: must be gpu or cpu"));
    }
    let node = target(&opts.url_policy, "--node-url", &opts.node_url)?;
    let gateways = opts
        .gateways
        .iter()
        .map(|g| target(&opts.url_policy, "--gateway", g))
        .collect::<Result<Vec<_>, _>>()?;
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", opts.token.expose()))
        .map_err(|_| "the token holds characters a header cannot carry".to_owned())?;
    auth.set_sensitive(true);
    let rt = Runtime::new(1).map_err(|e| format!("cannot start the runtime: {e}"))?;
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let drain = Arc::new(AtomicBool::new(opts.drain));
    let counters = Arc::new(Counters {
        beats: AtomicU64::new(0),
        statuses: Mutex::new(vec![0; gateways.len()]),
    });
    let state = Loop {
        client: Client::new(
            ClientConfig {
                connect_timeout: REQUEST_TIMEOUT,
                ..ClientConfig::default()
            },
            &rt,
        ),
        opts,
        node,
        gateways,
        auth,
        drain: drain.clone(),
        counters: counters.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("drover-agent".into())
        .spawn(move || {
            rt.block_on(state.run(stopped));
            drop(rt);
        })
        .map_err(|e| format!("cannot start the agent thread: {e}"))?;
    Ok(Agent {
        stop,
        drain,
        counters,
        thread: Some(thread),
    })
}

struct Loop {
    client: Client,
    opts: AgentOptions,
    node: Target,
    gateways: Vec<Target>,
    auth: HeaderValue,
    drain: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl Loop {
    async fn run(self, stopped: smol::channel::Receiver<()>) {
        let mut failures: u32 = 0;
        let mut latency: Option<f64> = None;
        let mut last_fingerprint: Option<u64> = None;
        loop {
            let started = Instant::now();
            match self.catalog().await {
                Ok(models) => {
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    latency = Some(latency.map_or(ms, |l| 0.8 * l + 0.2 * ms));
                    let fp = fingerprint(&models);
                    if last_fingerprint != Some(fp) {
                        tracing::info!(models = models.len(), "catalog {fp:016x}");
                        last_fingerprint = Some(fp);
                    }
                    let body = self.body(&models, fp, failures, latency);
                    failures = 0;
                    for (i, g) in self.gateways.iter().enumerate() {
                        let status = self.post(g, body.clone()).await;
                        self.counters.beats.fetch_add(1, Ordering::Relaxed);
                        if let Some(s) = self
                            .counters
                            .statuses
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_mut(i)
                        {
                            *s = status.unwrap_or(0);
                        }
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        "cannot read the catalog of {}: {e}; no heartbeat sent",
                        self.node.url
                    );
                }
            }
            let wait = self.opts.interval.saturating_sub(started.elapsed());
            let tick = async {
                drover_transports::smol::Timer::after(wait).await;
                true
            };
            let stop = async {
                let _ = stopped.recv().await;
                false
            };
            if !tick.or(stop).await {
                return;
            }
        }
    }

    fn body(&self, models: &[String], fp: u64, failures: u32, latency: Option<f64>) -> Bytes {
        let mut o = serde_json::json!({
            "node": self.opts.node,
            "protocolVersion": PROTOCOL_VERSION,
            "catalogFingerprint": format!("{fp:016x}"),
            "models": models,
            "maxSlots": self.opts.slots,
            "freeSlots": self.opts.slots,
            "queued": 0,
            "drain": self.drain.load(Ordering::Relaxed),
            "recentFailures": failures,
            "hardware": self.opts.hardware,
        });
        if let (Some(l), Some(map)) = (latency, o.as_object_mut()) {
            map.insert(
                "latencyMs".into(),
                serde_json::json!((l * 10.0).round() / 10.0),
            );
        }
        Bytes::from(o.to_string())
    }

    /// Sends one request; the status and body, or why not.
    async fn request(
        &self,
        t: &Target,
        method: Method,
        path: &str,
        body: Bytes,
        auth: bool,
    ) -> Result<(u16, Bytes), String> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", t.base_path))
            .header(http::header::HOST, t.authority.clone())
            .header(http::header::CONTENT_TYPE, "application/json");
        if auth {
            b = b.header(http::header::AUTHORIZATION, self.auth.clone());
        }
        let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
        let work = async {
            let resp = self
                .client
                .send(t.addr, req)
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = read_capped(resp.into_body(), MAX_CATALOG_BYTES)
                .await
                .map_err(|e| e.to_string())?;
            Ok((status, body))
        };
        let timeout = async {
            drover_transports::smol::Timer::after(REQUEST_TIMEOUT).await;
            Err(format!("no answer within {REQUEST_TIMEOUT:?}"))
        };
        work.or(timeout).await
    }

    /// The server's model names, sorted.
    async fn catalog(&self) -> Result<Vec<String>, String> {
        let path = match self.opts.kind {
            NodeKind::Ollama => "/api/tags",
            NodeKind::OpenAiCompat => "/v1/models",
        };
        let (status, body) = self
            .request(&self.node, Method::GET, path, Bytes::new(), false)
            .await?;
        if status != 200 {
            return Err(format!("GET {path} answered {status}"));
        }
        parse_catalog(self.opts.kind, &body)
    }

    /// Posts a heartbeat; the gateway's status, `None` when it did not answer.
    async fn post(&self, g: &Target, body: Bytes) -> Option<u16> {
        match self
            .request(g, Method::POST, "/nodes/heartbeat", body, true)
            .await
        {
            Ok((200, _)) => Some(200),
            Ok((status, reply)) => {
                tracing::warn!(
                    "gateway {} refused the heartbeat ({status}): {}",
                    g.url,
                    String::from_utf8_lossy(&reply)
                        .chars()
                        .take(300)
                        .collect::<String>()
                );
                Some(status)
            }
            Err(e) => {
                tracing::warn!("gateway {}: {e}", g.url);
                None
            }
        }
    }
}

/// Model names from an Ollama `/api/tags` (`models[].name`) or an OpenAI
/// `/v1/models` (`data[].id`) reply, sorted, without repeats.
pub fn parse_catalog(kind: NodeKind, body: &[u8]) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("catalog is not JSON: {e}"))?;
    let (list, key) = match kind {
        NodeKind::Ollama => ("models", "name"),
        NodeKind::OpenAiCompat => ("data", "id"),
    };
    let items = v
        .get(list)
        .and_then(|l| l.as_array())
        .ok_or_else(|| format!("catalog has no `{list}` list"))?;
    let mut out: Vec<String> = items
        .iter()
        .filter_map(|m| m.get(key).and_then(|n| n.as_str()))
        .filter(|n| !n.is_empty() && n.len() <= crate::serve::heartbeat::MAX_MODEL_NAME)
        .map(str::to_owned)
        .take(crate::serve::heartbeat::MAX_MODELS)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// FNV-1a over the sorted names, each followed by a newline: the same set
/// always gives the same value, whatever order the server lists it in.
pub fn fingerprint(sorted: &[String]) -> u64 {
    sorted
        .iter()
        .flat_map(|n| n.bytes().chain(std::iter::once(b'\n')))
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_parse_and_fingerprints_ignore_order() {
        let o = parse_catalog(
            NodeKind::Ollama,
            br#"{"models":[{"name":"b:7b"},{"name":"a"},{"name":"a"}]}"#,
        )
        .unwrap();
        assert_eq!(o, ["a", "b:7b"]);
        let v = parse_catalog(
            NodeKind::OpenAiCompat,
            br#"{"object":"list","data":[{"id":"a"},{"id":"b:7b"}]}"#,
        )
        .unwrap();
        assert_eq!(fingerprint(&o), fingerprint(&v));
        assert_ne!(fingerprint(&o), fingerprint(&["a".to_owned()]));
        // "ab" + "c" must differ from "a" + "bc".
        assert_ne!(
            fingerprint(&["ab".to_owned(), "c".to_owned()]),
            fingerprint(&["a".to_owned(), "bc".to_owned()])
        );
        assert!(
            parse_catalog(NodeKind::Ollama, b"{}")
                .unwrap_err()
                .contains("`models`")
        );
        assert!(parse_catalog(NodeKind::OpenAiCompat, b"nope").is_err());
    }

    #[test]
    fn bad_options_are_refused() {
        let base = || {
            AgentOptions::new(
                vec!["http://127.0.0.1:8080".into()],
                Secret::new("t"),
                "http://127.0.0.1:11434",
            )
        };
        let err = |o: AgentOptions| start(o).err().unwrap();
        let mut o = base();
        o.gateways.clear();
        assert!(err(o).contains("--gateway"));
        let mut o = base();
        o.slots = 0;
        assert!(err(o).contains("--slots"));
        let mut o = base();
        o.hardware = vec!["RTX-4090".into()];
        assert!(err(o).contains("--hardware"));
        let mut o = base();
        o.node_url = "http://169.254.169.254/".into();
        assert!(err(o).contains("--node-url"));
        let mut o = base();
        o.gateways = vec!["http://8.8.8.8:8080".into()];
        assert!(err(o).contains("--gateway"));
    }
}
