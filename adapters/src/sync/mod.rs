//! Using drover from synchronous code: a [`Client`] that routes chat,
//! streaming chat and embedding calls across the configured nodes, on the
//! calling thread, without an async runtime.
//!
//! It reads the gateway's config file and nodes schema ([`Client::load`],
//! [`Client::from_config`]) and runs the same core as `drover serve`: the
//! same node selection, failover before the first token, breakers, 429
//! cooldowns, session and prefix affinity, admission and accounting. The
//! HTTP side is [`drover_transports::blocking`] (ureq): one attempt at a
//! time (no hedging), per-request timeouts, no threads of its own. Requests
//! and answers are the OpenAI or Ollama JSON of the front you choose; a node
//! of the other kind is translated to and from, as the gateway does.
//!
//! One `Client` is `Send + Sync`: share it (`&Client` or `Arc<Client>`)
//! between threads; they share its router, so limits and breakers are
//! global to the process.
//!
//! ```
//! use drover::config::{GatewayConfig, NodeConfig};
//! use drover::fake::{FakeServer, FakeSpec};
//! use drover::sync::Client;
//! use drover::wire::Front;
//! use drover_core::node::NodeKind;
//! use serde_json::json;
//!
//! // A fake Ollama server on 127.0.0.1 stands in for a model box.
//! let server = FakeServer::start(FakeSpec::new(NodeKind::Ollama, &["llama3.2"]))?;
//! let mut cfg = GatewayConfig::default_local();
//! cfg.nodes = vec![NodeConfig::local(
//!     "box-a", NodeKind::Ollama, server.addr(), 4, vec!["llama3.2".into()], Default::default(),
//! )];
//! // Or: let client = Client::load("drover.toml".as_ref())?;
//! let client = Client::from_config(cfg)?;
//!
//! // A whole chat, OpenAI-style in and out (the node speaks Ollama).
//! let answer = client.chat(Front::OpenAi, &json!({
//!     "model": "llama3.2",
//!     "messages": [{"role": "user", "content": "Hello"}],
//! }))?;
//! println!("{} answered: {}", answer.node, answer.body["choices"][0]["message"]["content"]);
//!
//! // A streamed chat: one JSON chunk per item, in the front's format.
//! for chunk in client.chat_stream(Front::Ollama, &json!({
//!     "model": "llama3.2",
//!     "messages": [{"role": "user", "content": "Hello"}],
//! }))? {
//!     print!("{}", chunk?["message"]["content"].as_str().unwrap_or(""));
//! }
//!
//! // Embeddings.
//! let e = client.embed(Front::OpenAi, &json!({"model": "llama3.2", "input": "hi"}))?;
//! assert!(e.body["data"][0]["embedding"].is_array());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Active probes
//!
//! The same health and model-inventory probes as the gateway (`[probes]`
//! in the config; the core decides when each node is due). A synchronous
//! client has no background work of its own, so it probes when asked:
//! [`Client::run_due_probes`] from your own loop, or
//! [`Client::start_probing`], one thread that sleeps until the core's next
//! due time and stops when its [`Prober`] is dropped.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use drover_core::node::{NodeId, NodeKind};
use drover_core::route::{Query, prefix_key};
use drover_core::shared::SharedRouter;
use drover_core::trace::TraceId;
use drover_core::{Instant, Router};
use drover_transports::blocking::{CallError, Driver, DriverConfig};
use serde_json::{Map, Value};

use crate::config::GatewayConfig;
use crate::serve::gateway::{BuildError, seed, upstream_of};
use crate::wire::{self, Endpoint, Front, Inbound, WireError};

mod error;
mod exchange;
mod probe;

pub use error::Error;
pub use exchange::ChatStream;
use exchange::WireExchange;
pub use probe::Prober;

/// Nodes one client can route to.
pub const MAX_NODES: usize = 64;
/// Calls admitted at once (permits).
pub const MAX_CALLS: usize = 1024;
/// Calls waiting in the admission queue.
pub const MAX_QUEUED: usize = 256;

/// The client's router, shared by the threads using the client.
pub type SyncRouter = SharedRouter<MAX_NODES, MAX_CALLS, MAX_QUEUED>;

/// How to reach one node.
#[derive(Clone, Debug)]
struct NodeEntry {
    name: String,
    kind: NodeKind,
    /// The address of an IP node; `None` for a host name, resolved at
    /// every attempt ([`Client::connect_addr`]).
    addr: Option<std::net::SocketAddr>,
    /// `host:port`, the `Host` header of a named node.
    authority: String,
    /// The base path, without a trailing slash ("" or "/x").
    base_path: String,
    /// `Authorization` value, when the node takes a key.
    auth: Option<String>,
}

/// A whole answer, and who gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The answer in the request's front format (OpenAI or Ollama JSON).
    pub body: Value,
    /// The name of the node that answered.
    pub node: String,
    /// Attempts the call took (more than 1 after a failover).
    pub attempts: u8,
}

/// A synchronous drover client. See the [module docs](self).
pub struct Client {
    driver: Driver<MAX_NODES, MAX_CALLS, MAX_QUEUED>,
    nodes: Vec<Option<NodeEntry>>,
    prefix_key_blocks: u8,
    next_trace: AtomicU64,
    url_policy: crate::config::UrlPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field(
                "nodes",
                &self
                    .nodes
                    .iter()
                    .flatten()
                    .map(|n| &n.name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Reads the gateway config file at `path` (and the nodes file it
    /// names), with secrets from the environment and `DROVER_*` overrides
    /// applied, and builds a client from it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] lists the file's problems (file, line, field);
    /// [`Error::Node`] names a node that cannot be used.
    pub fn load(path: &Path) -> Result<Client, Error> {
        let mut cfg = GatewayConfig::load(path).map_err(Error::Config)?;
        cfg.apply_env(&|name| std::env::var(name).ok())
            .map_err(Error::Config)?;
        Client::from_config(cfg)
    }

    /// Builds a client for the nodes, routing policy, limits and timeouts
    /// of `cfg` (its listener, tokens and state file are not used).
    ///
    /// # Errors
    ///
    /// As [`Client::load`].
    pub fn from_config(cfg: GatewayConfig) -> Result<Client, Error> {
        let rc = cfg.router_config().map_err(Error::Config)?;
        type R = Router<MAX_NODES, MAX_CALLS, MAX_QUEUED>;
        let mut router: Box<R> = Box::new(R::new(rc, seed()).map_err(|e| Error::Node {
            node: "(router)".into(),
            reason: format!("router configuration: {e}"),
        })?);
        let specs = cfg
            .node_specs(router.catalog_mut())
            .map_err(Error::Config)?;
        let mut nodes: Vec<Option<NodeEntry>> = vec![None; MAX_NODES];
        for (spec, node) in specs.into_iter().zip(&cfg.nodes) {
            let id = router.add_node(spec).map_err(|e| Error::Node {
                node: node.name.clone(),
                reason: e.to_string(),
            })?;
            let up = upstream_of(node).map_err(|e| match e {
                BuildError::Node { name, reason } => Error::Node { node: name, reason },
                BuildError::Config(p) => Error::Config(p),
                BuildError::Router(r) => Error::Node {
                    node: node.name.clone(),
                    reason: r,
                },
            })?;
            let auth = up
                .auth
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let entry = NodeEntry {
                name: up.name,
                kind: up.kind,
                addr: up.addr,
                authority: up.authority.to_str().unwrap_or_default().to_owned(),
                base_path: up.base_path,
                auth,
            };
            if let Some(slot) = nodes.get_mut(usize::from(id.0)) {
                *slot = Some(entry);
            }
        }
        let driver_cfg = DriverConfig {
            connect_timeout: cfg.timeouts.connect,
            max_response_bytes: cfg.limits.max_response_bytes,
            ..DriverConfig::default()
        };
        let driver =
            Driver::new(SyncRouter::from_box(router), driver_cfg).map_err(|e| Error::Node {
                node: "(router)".into(),
                reason: format!("router configuration: {e}"),
            })?;
        Ok(Client {
            driver,
            nodes,
            prefix_key_blocks: cfg.router.affinity.prefix_key_blocks,
            next_trace: AtomicU64::new(seed() | 1),
            url_policy: cfg.url_policy.clone(),
        })
    }

    /// A whole chat: an OpenAI `/v1/chat/completions` or Ollama `/api/chat`
    /// request (per `front`), answered in the same format. `stream` must be
    /// absent or false.
    ///
    /// # Errors
    ///
    /// See [`Error`]: a bad request names its field; a rejection says why;
    /// a call whose every attempt failed names the last failure.
    pub fn chat(&self, front: Front, request: &Value) -> Result<Answer, Error> {
        let ep = match front {
            Front::OpenAi => Endpoint::ChatCompletions,
            Front::Ollama => Endpoint::OllamaChat,
        };
        self.whole(ep, request, Some(false))
    }

    /// A streamed chat: the chunks of the answer as they come, each one
    /// JSON object in the request's front format (OpenAI
    /// `chat.completion.chunk`s, Ollama `/api/chat` lines; the SSE
    /// `[DONE]` marker is not an item). Failover happens before the first
    /// chunk; a stream that breaks after it ends with an
    /// [`Error::StreamBroken`] item. `stream` must be absent or true.
    /// Dropping the iterator early closes the upstream connection and
    /// cancels the call.
    ///
    /// # Errors
    ///
    /// As [`Client::chat`], before the first chunk.
    pub fn chat_stream(&self, front: Front, request: &Value) -> Result<ChatStream, Error> {
        let ep = match front {
            Front::OpenAi => Endpoint::ChatCompletions,
            Front::Ollama => Endpoint::OllamaChat,
        };
        let (inb, req) = self.prepare(ep, request, Some(true))?;
        let ex = WireExchange { client: self, inb };
        let inner = self.driver.stream(req, &ex).map_err(|e| self.error_of(e))?;
        let node = self.node_name(inner.node());
        Ok(ChatStream::new(inner, ex.inb.endpoint.front(), node))
    }

    /// Embeddings: an OpenAI `/v1/embeddings` or Ollama `/api/embed`
    /// request (per `front`), answered in the same format.
    ///
    /// # Errors
    ///
    /// As [`Client::chat`].
    pub fn embed(&self, front: Front, request: &Value) -> Result<Answer, Error> {
        let ep = match front {
            Front::OpenAi => Endpoint::Embeddings,
            Front::Ollama => Endpoint::OllamaEmbed,
        };
        self.whole(ep, request, None)
    }

    /// Any non-streamed call of the gateway's endpoints (e.g. Ollama's
    /// `/api/generate` with `"stream": false`), answered in its front's
    /// format.
    ///
    /// # Errors
    ///
    /// As [`Client::chat`]; a streamed request is refused (use
    /// [`Client::chat_stream`]).
    pub fn call(&self, endpoint: Endpoint, request: &Value) -> Result<Answer, Error> {
        let stream = (!endpoint.op_is_embed()).then_some(false);
        self.whole(endpoint, request, stream)
    }

    /// The shared router: nodes, metrics, the trace, permits in use, and
    /// node modes (`set_mode`).
    pub fn router(&self) -> &SyncRouter {
        self.driver.router()
    }

    /// The clock the client gives the router, for router calls made beside
    /// the client.
    pub fn now(&self) -> Instant {
        self.driver.now()
    }

    /// The name of a node.
    pub fn node_name(&self, id: NodeId) -> String {
        self.entry(id).map(|n| n.name.clone()).unwrap_or_default()
    }

    /// Where to connect for `entry`: its address, or its host name
    /// resolved now with every address checked against the URL policy (as
    /// the gateway does); the URL then names the checked address, so no
    /// second lookup can rebind it.
    fn connect_addr(&self, entry: &NodeEntry) -> Result<std::net::SocketAddr, String> {
        use std::net::ToSocketAddrs;
        if let Some(a) = entry.addr {
            return Ok(a);
        }
        let addrs: Vec<std::net::SocketAddr> = entry
            .authority
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", entry.authority))?
            .collect();
        for a in &addrs {
            self.url_policy
                .check_ip(a.ip())
                .map_err(|e| format!("{} resolves to a refused address: {e}", entry.authority))?;
        }
        addrs
            .first()
            .copied()
            .ok_or_else(|| format!("{} resolves to no address", entry.authority))
    }

    fn entry(&self, id: NodeId) -> Option<&NodeEntry> {
        self.nodes.get(usize::from(id.0)).and_then(Option::as_ref)
    }

    fn whole(&self, ep: Endpoint, request: &Value, stream: Option<bool>) -> Result<Answer, Error> {
        let (inb, req) = self.prepare(ep, request, stream)?;
        let ex = WireExchange { client: self, inb };
        let reply = self.driver.call(req, &ex).map_err(|e| self.error_of(e))?;
        let body = serde_json::from_slice(&reply.body)
            .map_err(|e| Error::Internal(format!("the translated answer is not JSON: {e}")))?;
        Ok(Answer {
            body,
            node: self.node_name(reply.node),
            attempts: reply.attempts,
        })
    }

    /// Decodes the request and builds the core's query, as the gateway does.
    fn prepare(
        &self,
        ep: Endpoint,
        request: &Value,
        stream: Option<bool>,
    ) -> Result<(Inbound, drover_core::call::Request), Error> {
        let Value::Object(obj) = request else {
            return Err(Error::BadRequest(WireError::new(
                "body",
                "must be a JSON object",
            )));
        };
        let mut obj: Map<String, Value> = obj.clone();
        if let Some(want) = stream {
            match obj.get("stream") {
                None | Some(Value::Null) => {
                    obj.insert("stream".into(), Value::Bool(want));
                }
                Some(Value::Bool(b)) if *b == want => {}
                Some(Value::Bool(_)) => {
                    let reason = if want {
                        "must be true or absent for chat_stream"
                    } else {
                        "must be false or absent for chat (use chat_stream for a stream)"
                    };
                    return Err(Error::BadRequest(WireError::new("stream", reason)));
                }
                Some(_) => {
                    return Err(Error::BadRequest(WireError::new(
                        "stream",
                        "must be a boolean",
                    )));
                }
            }
        }
        let body = serde_json::to_vec(&obj)
            .map_err(|e| Error::Internal(format!("cannot encode the request: {e}")))?;
        let mut inb = wire::decode(ep, &body).map_err(Error::BadRequest)?;
        let trace = self.new_trace();
        inb.call_id = trace.0;
        let mut query = Query::new(inb.op());
        let (known, any_model_node) = self.driver.router().with(|r| {
            (
                r.catalog().model(&inb.model),
                r.nodes().iter().any(|(_, n)| n.spec.models.is_any()),
            )
        });
        match known {
            Some(id) => query.model = Some(id),
            None if any_model_node => {}
            None => return Err(Error::UnknownModel(inb.model.clone())),
        }
        query.session = inb.session.as_deref().map(crate::serve::http::hash_str);
        query.prefix = prefix_key(&inb.prefix_blocks, self.prefix_key_blocks);
        let mut req = drover_core::call::Request::new(trace, query);
        req.payload_bytes = u32::try_from(body.len()).unwrap_or(u32::MAX);
        Ok((inb, req))
    }

    fn new_trace(&self) -> TraceId {
        let v = self
            .next_trace
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        TraceId(v.max(1))
    }

    fn error_of(&self, e: CallError) -> Error {
        match e {
            CallError::Rejected(r) => Error::Rejected {
                reason: r.label(),
                message: r.to_string(),
            },
            CallError::Failed {
                failure,
                attempts,
                node,
                detail,
            } => Error::AllAttemptsFailed {
                attempts,
                last_failure: failure.label(),
                last_node: node.map(|n| self.node_name(n)),
                detail,
            },
            CallError::UpstreamRejected { status, message } => {
                Error::UpstreamRejected { status, message }
            }
            CallError::Internal(what) => Error::Internal(what.to_owned()),
        }
    }
}
