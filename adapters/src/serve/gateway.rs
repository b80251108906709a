//! The gateway's shared state: the router, the upstream table, the HTTP
//! client, the config and the counters, plus the clock and the wakeups of
//! queued calls.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use drover_core::catalog::ModelId;
use drover_core::node::{NodeId, NodeKind};
use drover_core::shared::SharedRouter;
use drover_core::trace::TraceId;
use drover_core::{Instant, Router};
use drover_transports::smol::{Client, ClientConfig, Runtime};
use http::HeaderValue;
use smol::channel::{Receiver, Sender};

use crate::config::{GatewayConfig, Problems};
use crate::ops::GatewayStats;

/// Nodes one gateway can route to.
pub const MAX_NODES: usize = 64;
/// Calls admitted at once (permits).
pub const MAX_CALLS: usize = 16384;
/// Calls waiting in the admission queue.
pub const MAX_QUEUED: usize = 1024;

/// The gateway's router.
pub type GwRouter = Router<MAX_NODES, MAX_CALLS, MAX_QUEUED>;
/// The gateway's router, shared between request tasks.
pub type GwShared = SharedRouter<MAX_NODES, MAX_CALLS, MAX_QUEUED>;

/// How to reach one node: everything an attempt needs, resolved once.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// The node's name (labels, logs).
    pub name: String,
    /// Its wire protocol.
    pub kind: NodeKind,
    /// The address connected to.
    pub addr: SocketAddr,
    /// `Host` header value (`host:port`).
    pub authority: HeaderValue,
    /// Path prefix of the base URL, without a trailing slash ("" or "/x").
    pub base_path: String,
    /// `Authorization` header sent with every request, when allowed.
    pub auth: Option<HeaderValue>,
}

/// Everything the request handlers share.
pub struct Gateway {
    /// The decision core.
    pub router: GwShared,
    /// The validated configuration.
    pub cfg: GatewayConfig,
    /// Keep-alive pools to the nodes.
    pub client: Client,
    /// Counters of the HTTP layer.
    pub stats: GatewayStats,
    /// True when the nodes are the in-process simulated ones of `--demo`.
    pub demo: bool,
    /// Where modes and learned state are saved (none: not saved).
    pub state_path: Option<std::path::PathBuf>,
    upstreams: RwLock<Vec<Option<Upstream>>>,
    /// Model names by `ModelId` (the catalog only grows).
    model_names: RwLock<Vec<Arc<str>>>,
    /// Model ids by name (models and aliases of every node).
    model_ids: RwLock<HashMap<String, ModelId>>,
    /// Model lists reported by node agents, by node name; they replace the
    /// configured lists in [`Gateway::client_models`].
    agent_models: RwLock<HashMap<String, Vec<String>>>,
    /// Operator-set modes and their reasons, by node name (persisted).
    pub(crate) modes: Mutex<std::collections::BTreeMap<String, super::state::ModeRecord>>,
    /// True when some node lists no models (it may serve any name).
    any_model_node: AtomicBool,
    epoch: std::time::Instant,
    next_trace: AtomicU64,
    waiters: Mutex<HashMap<u64, Sender<()>>>,
}

/// Why the gateway could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// The configuration has problems.
    Config(Problems),
    /// A node could not be added to the router, or its address resolved.
    Node {
        /// The node.
        name: String,
        /// Why.
        reason: String,
    },
    /// The router refused the configuration.
    Router(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Config(p) => write!(f, "{p}"),
            BuildError::Node { name, reason } => write!(f, "node `{name}`: {reason}"),
            BuildError::Router(r) => write!(f, "router configuration: {r}"),
        }
    }
}

impl std::error::Error for BuildError {}

impl Gateway {
    /// Builds the router and the upstream table from `cfg`.
    pub fn build(cfg: GatewayConfig, rt: &Runtime, demo: bool) -> Result<Gateway, BuildError> {
        let rc = cfg.router_config().map_err(BuildError::Config)?;
        let mut router: Box<GwRouter> =
            Box::new(GwRouter::new(rc, seed()).map_err(|e| BuildError::Router(e.to_string()))?);
        let specs = cfg
            .node_specs(router.catalog_mut())
            .map_err(BuildError::Config)?;
        let mut upstreams: Vec<Option<Upstream>> = vec![None; MAX_NODES];
        let mut any_model_node = false;
        for (spec, node) in specs.into_iter().zip(&cfg.nodes) {
            any_model_node |= spec.models.is_any();
            let id = router.add_node(spec).map_err(|e| BuildError::Node {
                name: node.name.clone(),
                reason: e.to_string(),
            })?;
            let up = upstream_of(node)?;
            if let Some(slot) = upstreams.get_mut(usize::from(id.0)) {
                *slot = Some(up);
            }
        }
        let catalog = router.catalog();
        let model_names: Vec<Arc<str>> = (0..catalog.model_count())
            .map(|i| {
                let id = ModelId(u16::try_from(i).unwrap_or(u16::MAX));
                Arc::from(catalog.model_name(id).unwrap_or(""))
            })
            .collect();
        let model_ids = model_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), ModelId(u16::try_from(i).unwrap_or(u16::MAX))))
            .collect();
        let client = Client::new(
            ClientConfig {
                connect_timeout: cfg.timeouts.connect,
                idle_timeout: std::time::Duration::from_secs(60),
                max_idle_per_host: 256,
            },
            rt,
        );
        Ok(Gateway {
            router: GwShared::from_box(router),
            cfg,
            client,
            stats: GatewayStats::default(),
            demo,
            state_path: None,
            upstreams: RwLock::new(upstreams),
            model_names: RwLock::new(model_names),
            model_ids: RwLock::new(model_ids),
            agent_models: RwLock::new(HashMap::new()),
            modes: Mutex::new(std::collections::BTreeMap::new()),
            any_model_node: AtomicBool::new(any_model_node),
            epoch: std::time::Instant::now(),
            next_trace: AtomicU64::new(seed() | 1),
            waiters: Mutex::new(HashMap::new()),
        })
    }

    /// The core's clock: time since the gateway started.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The wall-clock instant of a core instant.
    pub fn wall(&self, at: Instant) -> std::time::Instant {
        self.epoch + std::time::Duration::from_nanos(at.as_nanos())
    }

    /// A fresh trace id (never 0).
    pub fn new_trace(&self) -> TraceId {
        // A Weyl sequence: distinct for 2^64 calls, and not guessable from
        // the order of calls alone because the start is random.
        let v = self
            .next_trace
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        TraceId(v.max(1))
    }

    /// How to reach `node`, if it exists.
    pub fn upstream(&self, node: NodeId) -> Option<Upstream> {
        let table = self
            .upstreams
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        table.get(usize::from(node.0)).cloned().flatten()
    }

    /// The name of a catalog model.
    pub fn model_name(&self, id: ModelId) -> Option<Arc<str>> {
        let names = self
            .model_names
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        names.get(usize::from(id.0)).cloned()
    }

    /// The catalog id of a model name (a model or an alias).
    pub fn model_id(&self, name: &str) -> Option<ModelId> {
        self.model_ids
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
    }

    /// True when some node lists no models and so may serve a name the
    /// catalog does not know.
    pub fn has_open_catalog_node(&self) -> bool {
        self.any_model_node.load(Ordering::Relaxed)
    }

    /// The model names clients may ask for: every model and alias of every
    /// node, sorted.
    pub fn client_models(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let reported = self
            .agent_models
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for n in &self.cfg.nodes {
            match reported.get(&n.name) {
                Some(models) => out.extend(models.iter().cloned()),
                None => out.extend(n.models.iter().cloned()),
            }
            out.extend(n.model_aliases.keys().cloned());
        }
        out.sort();
        out.dedup();
        out
    }

    /// Replaces the models of node `id` (named `name`) with `models`, as
    /// its agent reported them: interns new names in the router's catalog,
    /// updates the node's spec, and brings the gateway's name tables up to
    /// date. Aliases are kept. An empty list changes nothing (a node
    /// without models is better left as configured than opened to any
    /// name).
    ///
    /// # Errors
    ///
    /// The catalog is full, or the router refused the new spec; nothing
    /// changed in the router then.
    pub(crate) fn set_node_models(
        &self,
        id: NodeId,
        name: &str,
        models: &[String],
    ) -> Result<(), String> {
        if models.is_empty() {
            return Ok(());
        }
        let (names, any) = self.router.with_mut(|r| {
            let mut spec = r.node(id).ok_or("unknown node")?.spec.clone();
            spec.models = drover_core::catalog::ModelSet::EMPTY;
            for m in models {
                let mid = r
                    .catalog_mut()
                    .intern_model(m)
                    .map_err(|e| format!("model `{m}`: {e}"))?;
                spec.models.insert(mid);
            }
            r.update_node(id, spec).map_err(|e| e.to_string())?;
            let catalog = r.catalog();
            let names: Vec<Arc<str>> = (0..catalog.model_count())
                .map(|i| {
                    let id = ModelId(u16::try_from(i).unwrap_or(u16::MAX));
                    Arc::from(catalog.model_name(id).unwrap_or(""))
                })
                .collect();
            let any = r.nodes().iter().any(|(_, n)| n.spec.models.is_any());
            Ok::<_, String>((names, any))
        })?;
        {
            let mut ids = self
                .model_ids
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for (i, n) in names.iter().enumerate() {
                ids.entry(n.to_string())
                    .or_insert(ModelId(u16::try_from(i).unwrap_or(u16::MAX)));
            }
        }
        *self
            .model_names
            .write()
            .unwrap_or_else(PoisonError::into_inner) = names;
        self.any_model_node.store(any, Ordering::Relaxed);
        self.agent_models
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), models.to_vec());
        Ok(())
    }

    /// Registers a queued call for its wakeup.
    pub(crate) fn register_waiter(&self, trace: TraceId) -> Receiver<()> {
        let (tx, rx) = smol::channel::bounded(1);
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(trace.0, tx);
        rx
    }

    /// Forgets a call's wakeup registration.
    pub(crate) fn unregister_waiter(&self, trace: TraceId) {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&trace.0);
    }

    /// Delivers every pending wakeup of granted queued calls.
    pub(crate) fn deliver_wakeups(&self) {
        while let Some(trace) = self.router.poll_wakeup() {
            let tx = self
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&trace.0)
                .cloned();
            if let Some(tx) = tx {
                // Full means a wakeup is already pending: one is enough.
                let _ = tx.try_send(());
            }
        }
    }
}

/// Resolves a node's URL into an [`Upstream`].
pub(crate) fn upstream_of(node: &crate::config::NodeConfig) -> Result<Upstream, BuildError> {
    let url = &node.base_url;
    let fail = |reason: String| BuildError::Node {
        name: node.name.clone(),
        reason,
    };
    if url.scheme_https {
        return Err(fail(
            "https node URLs are not supported by this build (use http on the LAN)".into(),
        ));
    }
    let addr = match url.addr {
        Some(a) => a,
        None => (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| fail(format!("cannot resolve {}: {e}", url.host)))?
            .next()
            .ok_or_else(|| fail(format!("{} resolves to no address", url.host)))?,
    };
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host.trim_matches(['[', ']']), url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let authority =
        HeaderValue::from_str(&host).map_err(|_| fail(format!("bad host `{}`", url.host)))?;
    let auth = match (&node.api_key, node.send_auth) {
        (Some(key), true) => {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map_err(|_| fail("apiKeyEnv holds characters not allowed in a header".into()))?;
            v.set_sensitive(true);
            Some(v)
        }
        _ => None,
    };
    Ok(Upstream {
        name: node.name.clone(),
        kind: node.kind,
        addr,
        authority,
        base_path: url.base_path.trim_end_matches('/').to_owned(),
        auth,
    })
}

/// A seed for the router's generator and the trace ids.
pub(crate) fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}
