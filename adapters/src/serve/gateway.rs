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
use drover_transports::smol::{Client, ClientConfig, Runtime, Spawner};
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

/// Resolves a host name and port to socket addresses. It may block: the
/// gateway calls it on a blocking thread. Replaceable for tests with
/// [`Gateway::set_resolver`].
pub type Resolver = Arc<dyn Fn(&str, u16) -> std::io::Result<Vec<SocketAddr>> + Send + Sync>;

/// The system resolver (`getaddrinfo`).
pub fn system_resolver() -> Resolver {
    Arc::new(|host, port| Ok((host, port).to_socket_addrs()?.collect()))
}

/// How to reach one node: everything an attempt needs.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// The node's name (labels, logs).
    pub name: String,
    /// Its wire protocol.
    pub kind: NodeKind,
    /// The address connected to when the node's URL has an IP literal (or
    /// `localhost`); `None` for a host name, which
    /// [`Gateway::connect_addr`] resolves and checks at every attempt.
    pub addr: Option<SocketAddr>,
    /// The host name to resolve (when `addr` is `None`) and the port.
    pub host: String,
    /// The port of the node's URL.
    pub port: u16,
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
    /// Spawns background work (probes) onto the gateway's workers.
    pub(crate) spawner: Spawner,
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
    /// The nodes routed to now: `cfg.nodes` at start, then what the last
    /// good reload of the nodes file gave.
    nodes: RwLock<Vec<crate::config::NodeConfig>>,
    /// Names of nodes dropped from the nodes file that still had calls in
    /// flight: disabled, and removed once idle.
    retiring: Mutex<Vec<String>>,
    epoch: std::time::Instant,
    next_trace: AtomicU64,
    waiters: Mutex<HashMap<u64, Sender<()>>>,
    resolver: RwLock<Resolver>,
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
        let model_names = catalog_names(router.catalog());
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
            nodes: RwLock::new(cfg.nodes.clone()),
            retiring: Mutex::new(Vec::new()),
            cfg,
            client,
            spawner: rt.spawner(),
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
            resolver: RwLock::new(system_resolver()),
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

    /// Replaces the resolver of node host names (tests use this to make a
    /// name resolve to an address of their choosing).
    pub fn set_resolver(&self, resolver: Resolver) {
        *self
            .resolver
            .write()
            .unwrap_or_else(PoisonError::into_inner) = resolver;
    }

    /// The address to connect to for `up`: its IP address, or for a host
    /// name the first address it resolves to now. Every address the name
    /// resolves to must pass the URL policy ([`UrlPolicy::check_ip`]), else
    /// none is used: a name that resolves to a metadata or otherwise
    /// forbidden address is refused, and DNS rebinding cannot slip one in
    /// between a check and the connect because the connection goes to the
    /// checked address itself (no second resolution).
    ///
    /// [`UrlPolicy::check_ip`]: crate::config::UrlPolicy::check_ip
    ///
    /// # Errors
    ///
    /// The name does not resolve, resolves to nothing, or resolves to an
    /// address the policy refuses; the message says which.
    pub async fn connect_addr(&self, up: &Upstream) -> Result<SocketAddr, String> {
        if let Some(a) = up.addr {
            return Ok(a);
        }
        let resolver = self
            .resolver
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (host, port) = (up.host.clone(), up.port);
        let addrs = smol::unblock(move || resolver(&host, port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", up.host))?;
        let first = addrs
            .first()
            .copied()
            .ok_or_else(|| format!("{} resolves to no address", up.host))?;
        for a in &addrs {
            self.cfg
                .url_policy
                .check_ip(a.ip())
                .map_err(|e| format!("{} resolves to a refused address: {e}", up.host))?;
        }
        Ok(first)
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
        let nodes = self.nodes.read().unwrap_or_else(PoisonError::into_inner);
        for n in nodes.iter() {
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
    /// its agent or an inventory probe reported them (a node with
    /// `pinModels` keeps its configured list): interns new names in the router's catalog,
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
        let applied = self.router.with_mut(|r| {
            let mut set = drover_core::catalog::ModelSet::EMPTY;
            for m in models {
                let mid = r
                    .catalog_mut()
                    .intern_model(m)
                    .map_err(|e| format!("model `{m}`: {e}"))?;
                set.insert(mid);
            }
            if !r.set_models(id, set).map_err(|e| e.to_string())? {
                // pinModels: the configured list stays.
                return Ok(None);
            }
            let names = catalog_names(r.catalog());
            let any = r.nodes().iter().any(|(_, n)| n.spec.models.is_any());
            Ok::<_, String>(Some((names, any)))
        })?;
        let Some((names, any)) = applied else {
            return Ok(());
        };
        self.set_model_names(names, any);
        self.agent_models
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), models.to_vec());
        Ok(())
    }

    /// The nodes routed to now (the config's, or the last good reload of
    /// the nodes file).
    pub fn node_configs(&self) -> Vec<crate::config::NodeConfig> {
        self.nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes the router route to `next` instead of the current nodes, as a
    /// reload of the nodes file asks:
    /// - a new name is added (with its saved operator mode, if any);
    /// - a node whose settings changed is updated in place, keeping what was
    ///   learned about it (latency, breaker); a changed URL takes effect for
    ///   the next attempt;
    /// - a name no longer listed is disabled at once and removed as soon as
    ///   no call uses it (see [`Gateway::retire_idle_nodes`]).
    ///
    /// Everything is checked before anything changes: on error (an address
    /// that does not resolve, a full node table or catalog) the gateway keeps
    /// routing to the nodes it had.
    ///
    /// # Errors
    ///
    /// What was wrong, naming the node.
    pub fn apply_nodes(
        &self,
        next: Vec<crate::config::NodeConfig>,
    ) -> Result<ReloadSummary, String> {
        let now = self.now();
        let current = self.node_configs();
        let same = |a: &crate::config::NodeConfig, b: &crate::config::NodeConfig| {
            let mut a = a.clone();
            a.index = b.index;
            a.line = b.line;
            a.origin.clone_from(&b.origin);
            a == *b
        };
        let mut ups = Vec::with_capacity(next.len());
        for n in &next {
            ups.push(upstream_of(n).map_err(|e| e.to_string())?);
        }
        let modes = self
            .modes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut summary = ReloadSummary::default();
        let mut retire = Vec::new();
        let placed = self.router.with_mut(|r| {
            let specs =
                crate::config::node_specs_of(&next, r.catalog_mut()).map_err(|e| e.to_string())?;
            let free = MAX_NODES - r.nodes().iter().count();
            let added = next
                .iter()
                .filter(|n| r.nodes().find(&n.name).is_none())
                .count();
            if added > free {
                return Err(format!(
                    "the nodes file lists {added} new node(s) but only {free} more fit \
                     (at most {MAX_NODES} nodes)"
                ));
            }
            let mut placed = Vec::with_capacity(next.len());
            for (n, spec) in next.iter().zip(specs) {
                let old = current.iter().find(|c| c.name == n.name);
                let mode = modes
                    .get(&n.name)
                    .map_or(drover_core::node::Mode::Enabled, |m| m.mode);
                let id = match r.nodes().find(&n.name) {
                    Some(id) => {
                        if old.is_none_or(|o| !same(o, n)) {
                            r.update_node(id, spec)
                                .map_err(|e| format!("node `{}`: {e}", n.name))?;
                            summary.updated += 1;
                        } else {
                            summary.unchanged += 1;
                        }
                        if old.is_none() {
                            // It was retiring and is listed again.
                            let _ = r.set_mode(id, mode, now);
                        }
                        id
                    }
                    None => {
                        let id = r
                            .add_node(spec)
                            .map_err(|e| format!("node `{}`: {e}", n.name))?;
                        let _ = r.set_mode(id, mode, now);
                        summary.added += 1;
                        id
                    }
                };
                placed.push(id);
            }
            for c in &current {
                if next.iter().all(|n| n.name != c.name) {
                    if let Some(id) = r.nodes().find(&c.name) {
                        let _ = r.set_mode(id, drover_core::node::Mode::Disabled, now);
                        retire.push(c.name.clone());
                        summary.removed += 1;
                    }
                }
            }
            let names = catalog_names(r.catalog());
            let any = r.nodes().iter().any(|(_, n)| {
                n.spec.models.is_any() && n.mode != drover_core::node::Mode::Disabled
            });
            Ok::<_, String>((placed, names, any))
        });
        let (placed, names, any) = placed?;
        {
            let mut table = self
                .upstreams
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for (id, up) in placed.iter().zip(ups) {
                if let Some(slot) = table.get_mut(usize::from(id.0)) {
                    *slot = Some(up);
                }
            }
        }
        self.set_model_names(names, any);
        {
            let mut agent = self
                .agent_models
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for n in &next {
                if current
                    .iter()
                    .any(|c| c.name == n.name && c.models != n.models)
                {
                    agent.remove(&n.name);
                }
            }
            for name in &retire {
                agent.remove(name);
            }
        }
        {
            let mut retiring = self.retiring.lock().unwrap_or_else(PoisonError::into_inner);
            retiring.retain(|name| next.iter().all(|n| &n.name != name));
            for name in retire {
                if !retiring.contains(&name) {
                    retiring.push(name);
                }
            }
        }
        *self.nodes.write().unwrap_or_else(PoisonError::into_inner) = next;
        self.retire_idle_nodes();
        Ok(summary)
    }

    /// Removes the nodes dropped by a reload that no call uses any more
    /// (nothing in flight or reserved on them). Returns how many are still
    /// waiting for their calls to end.
    pub fn retire_idle_nodes(&self) -> usize {
        let mut retiring = self.retiring.lock().unwrap_or_else(PoisonError::into_inner);
        if retiring.is_empty() {
            return 0;
        }
        let mut freed = Vec::new();
        self.router.with_mut(|r| {
            retiring.retain(|name| match r.nodes().find(name) {
                None => false,
                Some(id) => {
                    let busy = r
                        .node(id)
                        .is_some_and(|n| n.in_flight > 0 || n.reserved > 0);
                    if !busy && r.remove_node(id).is_ok() {
                        freed.push(id);
                        false
                    } else {
                        true
                    }
                }
            });
        });
        let mut table = self
            .upstreams
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for id in freed {
            if let Some(slot) = table.get_mut(usize::from(id.0)) {
                *slot = None;
            }
        }
        retiring.len()
    }

    /// Publishes the catalog's names after a change.
    fn set_model_names(&self, names: Vec<Arc<str>>, any: bool) {
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

/// Every model name of the catalog, indexed by `ModelId`.
fn catalog_names(catalog: &drover_core::catalog::Catalog) -> Vec<Arc<str>> {
    (0..catalog.model_count())
        .map(|i| {
            let id = ModelId(u16::try_from(i).unwrap_or(u16::MAX));
            Arc::from(catalog.model_name(id).unwrap_or(""))
        })
        .collect()
}

/// What a reload of the nodes file changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Nodes new in the file.
    pub added: usize,
    /// Nodes dropped from the file (disabled, removed once idle).
    pub removed: usize,
    /// Nodes whose settings changed.
    pub updated: usize,
    /// Nodes left as they were.
    pub unchanged: usize,
}

impl std::fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} removed, {} updated, {} unchanged",
            self.added, self.removed, self.updated, self.unchanged
        )
    }
}

/// A node's URL as an [`Upstream`]. A host name is not resolved here but at
/// every attempt ([`Gateway::connect_addr`]).
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
        addr: url.addr,
        host: url.host.clone(),
        port: url.port,
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
