//! What a simulation is made of, checked before it runs: [`SimSetup`]
//! builds a [`Driver`] from the router configuration, the swarm, the
//! gateways, the fault schedule and the seed.

use std::fmt;

use drover_core::config::{ConfigError, RouterConfig};
use drover_core::node::NodeError;
use drover_core::{Duration, Instant};

use super::driver::{Driver, MAX_NODES};
use super::faults::{BadFault, Fault};
use super::node::{BadNode, SimNode};

/// Most gateways in one run.
pub const MAX_GATEWAYS: usize = 64;

/// How arrivals are split between gateways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Assign {
    /// Call `i` goes to gateway `i mod gateways` (a round-robin balancer).
    #[default]
    RoundRobin,
    /// A seeded hash of the call's session (or of its index when it has
    /// none) picks the gateway: a session stays on one gateway, as behind a
    /// hashing L4 balancer.
    Hash,
}

/// Why a [`Driver`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// The router refused the configuration.
    Config(ConfigError),
    /// A simulated node's description is invalid.
    Node(BadNode),
    /// The router refused a node (duplicate name, name too long, …).
    Router {
        /// The node's name.
        node: String,
        /// Why.
        error: NodeError,
    },
    /// More than [`MAX_NODES`] nodes, or none.
    NodeCount(usize),
    /// More than [`MAX_GATEWAYS`] gateways, or none.
    GatewayCount(usize),
    /// A fault is invalid.
    Fault(BadFault),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Config(e) => write!(f, "router configuration: {e}"),
            SimError::Node(e) => e.fmt(f),
            SimError::Router { node, error } => write!(f, "simulated node {node:?}: {error}"),
            SimError::NodeCount(n) => {
                write!(f, "a simulation needs 1 to {MAX_NODES} nodes, not {n}")
            }
            SimError::GatewayCount(n) => {
                write!(
                    f,
                    "a simulation needs 1 to {MAX_GATEWAYS} gateways, not {n}"
                )
            }
            SimError::Fault(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SimError {}

/// Everything a [`Driver`] is built from. Start from [`SimSetup::new`]
/// (one gateway, no faults, 1 s buckets) and adjust with the builder
/// methods or the public fields.
#[derive(Clone, Debug, PartialEq)]
pub struct SimSetup {
    /// Every gateway's router configuration.
    pub router: RouterConfig,
    /// The swarm, in order: routers' node ids and fault indexes follow it.
    pub nodes: Vec<SimNode>,
    /// The seed of everything random.
    pub seed: u64,
    /// Independent gateways sharing the swarm (default 1). Each runs its own
    /// router and sees only its own calls, plus the nodes' heartbeats.
    pub gateways: usize,
    /// How calls are split between gateways.
    pub assign: Assign,
    /// Heartbeat delivery delay to each gateway; a gateway without an entry
    /// gets its heartbeats at once.
    pub heartbeat_delay: Vec<Duration>,
    /// Scheduled faults ([`draw_faults`](super::draw_faults) draws them from
    /// rates).
    pub faults: Vec<Fault>,
    /// Bucket width of the report's time series (default 1 s).
    pub bucket: Duration,
}

impl SimSetup {
    /// One gateway with `cfg` in front of `nodes`, no faults, seeded by `seed`.
    pub fn new(cfg: RouterConfig, nodes: Vec<SimNode>, seed: u64) -> Self {
        SimSetup {
            router: cfg,
            nodes,
            seed,
            gateways: 1,
            assign: Assign::RoundRobin,
            heartbeat_delay: Vec::new(),
            faults: Vec::new(),
            bucket: Duration::from_secs(1),
        }
    }
    /// `n` gateways, calls split by `assign`.
    pub fn gateways(mut self, n: usize, assign: Assign) -> Self {
        self.gateways = n;
        self.assign = assign;
        self
    }
    /// Heartbeats reach gateway `g` after `delays[g]`.
    pub fn heartbeat_delay(mut self, delays: &[Duration]) -> Self {
        self.heartbeat_delay = delays.to_vec();
        self
    }
    /// Adds a fault.
    pub fn fault(mut self, f: Fault) -> Self {
        self.faults.push(f);
        self
    }
    /// Adds faults.
    pub fn faults(mut self, f: impl IntoIterator<Item = Fault>) -> Self {
        self.faults.extend(f);
        self
    }
    /// Sets the time-series bucket width.
    pub fn bucket(mut self, width: Duration) -> Self {
        self.bucket = width;
        self
    }

    /// Checks everything and builds the driver.
    pub fn build(self) -> Result<Driver, SimError> {
        if self.nodes.is_empty() || self.nodes.len() > MAX_NODES {
            return Err(SimError::NodeCount(self.nodes.len()));
        }
        if self.gateways == 0 || self.gateways > MAX_GATEWAYS {
            return Err(SimError::GatewayCount(self.gateways));
        }
        self.router.validate().map_err(SimError::Config)?;
        for n in &self.nodes {
            n.validate().map_err(SimError::Node)?;
        }
        for (i, f) in self.faults.iter().enumerate() {
            f.validate(self.nodes.len())
                .map_err(|problem| SimError::Fault(BadFault { fault: i, problem }))?;
        }
        Driver::build(self)
    }

    /// The delay of gateway `g`'s heartbeats.
    pub(crate) fn delay(&self, g: usize) -> Duration {
        self.heartbeat_delay
            .get(g)
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// The static crash windows of the nodes, as faults.
    pub(crate) fn crash_windows(&self) -> impl Iterator<Item = Fault> + '_ {
        use super::faults::{CrashMode, FaultKind};
        self.nodes.iter().enumerate().filter_map(|(i, n)| {
            n.crash
                .map(|w| Fault::new(i, FaultKind::Crash(CrashMode::Refuse), w.from).until(w.until))
        })
    }
}

/// `Instant` to use as "none" in compact records.
pub(crate) const NEVER: Instant = Instant::MAX;

/// `Some(t)` unless `t` is [`NEVER`].
pub(crate) fn opt(t: Instant) -> Option<Instant> {
    (t != NEVER).then_some(t)
}
