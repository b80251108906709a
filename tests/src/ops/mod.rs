//! Operations on a router and the setup they run against.
//!
//! Every type here derives [`arbitrary::Arbitrary`], so a fuzzer's bytes
//! decode into a [`Setup`] and a list of [`Op`]s ([`decode`]), and the
//! property tests can build the same values by hand. Small integers select
//! among a few meaningful choices (documented per field); rare features
//! (pinning, scopes, oversized bodies) are mapped from byte ranges so most
//! calls stay routable.

mod harness;
mod oracle;

use arbitrary::{Arbitrary, Unstructured};
use drover_core::admission::PoolLimits;
use drover_core::catalog::{ModelId, ScopeId, Tags};
use drover_core::config::{Policy, RouterConfig, TagMode};
use drover_core::node::{Capabilities, Mode, NodeId};
use drover_core::reason::Failure;
use drover_core::route;
use drover_core::time::Duration;

pub use harness::{Harness, Record, SendRecord, Stats};
pub use oracle::filter;

/// The router every run drives: 8 node slots, 32 permits, 8 queue slots.
pub type R = drover_core::router::Router<8, 32, 8>;

/// Most operations applied from one input (longer inputs are cut).
pub const MAX_STEPS: usize = 400;
/// Most calls one run starts (later `Start`s are ignored).
pub const MAX_CALLS: usize = 48;
/// Node slots of [`R`]; ids at or above the node count name empty slots.
pub const SLOTS: u8 = 8;
/// Wanted-tag bit used by calls and carried by "tagged" nodes.
pub const TAG: Tags = Tags(1);
/// The one scope scoped nodes are reserved for.
pub const SCOPE: ScopeId = ScopeId(0);
/// Model ids 0..MODELS are what calls ask for.
pub const MODELS: u16 = 3;
/// What an aliased node sends instead of model 0.
pub const ALIAS_TARGET: ModelId = ModelId(7);

/// One node's description.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeShape {
    /// Concurrency limit `1 + x % 3`.
    pub max_concurrency: u8,
    /// Weight `1 + x % 4`.
    pub weight: u8,
    /// Text and embeddings (the default) when `x < 224`, else the low four
    /// bits as [`Capabilities`] (chat 1, embed 2, stream 4, vision 8).
    pub capabilities: u8,
    /// Any model when `x < 192`, else models `i < 3` with bit `i` set.
    pub models: u8,
    /// Serves model 0 under the local name [`ALIAS_TARGET`].
    pub alias: bool,
    /// Carries [`TAG`].
    pub tagged: bool,
    /// Reserved for [`SCOPE`] when `x >= 224`.
    pub scope: u8,
}

/// The router's configuration and node table.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// The router's random seed.
    pub seed: u64,
    /// `4 + x % 3` nodes.
    pub nodes: u8,
    /// `Policy::ALL[x % Policy::ALL.len()]`.
    pub policy: u8,
    /// `max_attempts = 1 + x % 4`.
    pub max_attempts: u8,
    /// Prefer, StrictFirst, Require by `x % 3`.
    pub tag_mode: u8,
    /// Global pool `2 + x % 7`; class pools up to 4 (background 2).
    pub global: u8,
    /// Queue wait `x % 4` seconds (0 disables queueing).
    pub queue_wait: u8,
    /// Hedging on.
    pub hedge: bool,
    /// Hedge non-streamed calls too.
    pub hedge_non_stream: bool,
    /// One shape per node slot in use.
    pub shapes: [NodeShape; 6],
}

impl Setup {
    /// Number of nodes added.
    pub fn node_count(&self) -> usize {
        4 + usize::from(self.nodes % 3)
    }

    /// The router configuration: short timeouts, a two-failure breaker,
    /// heartbeats stale after 8 s and lost after 15 s, and small pools, so
    /// the interesting states are a few operations away.
    pub fn config(&self) -> RouterConfig {
        let mut cfg = RouterConfig {
            policy: Policy::ALL[usize::from(self.policy) % Policy::ALL.len()],
            max_attempts: 1 + self.max_attempts % 4,
            tag_mode: [TagMode::Prefer, TagMode::StrictFirst, TagMode::Require]
                [usize::from(self.tag_mode % 3)],
            queue_wait: Duration::from_secs(u64::from(self.queue_wait % 4)),
            attempt_timeout: Duration::from_secs(20),
            ttft_timeout: Duration::from_secs(4),
            call_timeout: Duration::from_secs(45),
            max_payload_bytes: 1 << 20,
            ..RouterConfig::default()
        };
        let global = 2 + u32::from(self.global % 7);
        cfg.pools = PoolLimits {
            global,
            chat: global.min(4),
            stream: global.min(4),
            embed: global.min(3),
            background: global.min(2),
        };
        cfg.health.stale_after = Duration::from_secs(8);
        cfg.health.lost_after = Duration::from_secs(15);
        cfg.breaker.failure_threshold = 2;
        cfg.breaker.base_cooldown = Duration::from_secs(2);
        cfg.breaker.max_cooldown = Duration::from_secs(16);
        cfg.hedge.enabled = self.hedge;
        cfg.hedge.non_stream = self.hedge_non_stream;
        cfg.hedge.budget_ratio = 0.5;
        cfg.hedge.budget_burst = 2;
        cfg.hedge.min_delay = Duration::from_millis(100);
        cfg.hedge.max_delay = Duration::from_secs(1);
        cfg
    }
}

/// The operation of a call.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Non-streamed chat.
    Chat,
    /// Streamed chat.
    Stream,
    /// Embeddings.
    Embed,
}

impl OpKind {
    /// The core's operation.
    pub fn op(self) -> route::Op {
        match self {
            OpKind::Chat => route::Op::Chat,
            OpKind::Stream => route::Op::Stream,
            OpKind::Embed => route::Op::Embed,
        }
    }
}

/// What a new call asks for.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartCall {
    /// The operation.
    pub op: OpKind,
    /// Model `x % 3`, or none.
    pub model: Option<u8>,
    /// Session key `x % 4`, or none.
    pub session: Option<u8>,
    /// Prefix key of block `x % 4`, or none.
    pub prefix: Option<u8>,
    /// Background priority and pool.
    pub background: bool,
    /// Wants [`TAG`].
    pub tagged: bool,
    /// Pinned to slot `x % 8` when `x >= 240` (slots past the node count are empty).
    pub pin: u8,
    /// Scope [`SCOPE`] when `x >= 224`, else no scope.
    pub scope: u8,
    /// Needs vision when `x >= 248`.
    pub vision: u8,
    /// A body over the payload limit when `x >= 250`.
    pub payload: u8,
    /// Poll at once after starting (the usual driver); otherwise the call
    /// stays new until a later `Poll`.
    pub poll: bool,
}

impl StartCall {
    /// A plain interactive call that polls at once.
    pub fn plain(op: OpKind) -> Self {
        StartCall {
            op,
            model: None,
            session: None,
            prefix: None,
            background: false,
            tagged: false,
            pin: 0,
            scope: 0,
            vision: 0,
            payload: 0,
            poll: true,
        }
    }

    /// The query this call routes with.
    pub fn query(&self) -> route::Query {
        let mut q = route::Query::new(self.op.op());
        q.model = self.model.map(|m| ModelId(u16::from(m) % MODELS));
        q.session = self.session.map(|s| u64::from(s % 4) + 1);
        q.prefix = self
            .prefix
            .and_then(|p| route::prefix_key(&[u64::from(p % 4)], 4));
        if self.tagged {
            q.tags = TAG;
        }
        if self.pin >= 240 {
            q.pin = Some(NodeId(u16::from(self.pin % SLOTS)));
        }
        if self.scope >= 224 {
            q.scope = Some(SCOPE);
        }
        if self.vision >= 248 {
            q.needs = Capabilities::VISION;
        }
        q
    }

    /// Whether the body exceeds the payload limit.
    pub fn oversized(&self) -> bool {
        self.payload >= 250
    }
}

/// Why an attempt failed, as a driver reports it.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailKind {
    /// Connection refused.
    Connect,
    /// The driver's own timeout.
    Timeout,
    /// No first byte in time (driver-detected).
    TtftTimeout,
    /// Status `500 + x % 100` (503 included: reported as a failure here).
    Upstream5xx(u8),
    /// A reply that failed validation.
    InvalidReply,
    /// The stream broke.
    BrokenStream,
}

impl FailKind {
    /// The core's failure.
    pub fn failure(self) -> Failure {
        match self {
            FailKind::Connect => Failure::Connect,
            FailKind::Timeout => Failure::Timeout,
            FailKind::TtftTimeout => Failure::TtftTimeout,
            FailKind::Upstream5xx(x) => Failure::Upstream5xx(500 + u16::from(x % 100)),
            FailKind::InvalidReply => Failure::InvalidReply,
            FailKind::BrokenStream => Failure::BrokenStream,
        }
    }
}

/// An event for one call.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The first byte reached the client.
    FirstByte,
    /// The attempt completed.
    Completed,
    /// The attempt failed.
    Failed(FailKind),
    /// 429/503 with `Retry-After` of `x × 100 ms`, or none.
    Overloaded(Option<u8>),
    /// A 4xx: status `400 + x % 29` (never 429).
    ClientError(u8),
    /// The client went away.
    ClientCancelled,
}

/// How far virtual time moves.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `x` milliseconds (0 included).
    Millis(u8),
    /// `x % 10` seconds.
    Seconds(u8),
    /// To the earliest future deadline the driver knows (a call's `Wait`,
    /// the router's `poll_timeout`), exactly; nothing if none.
    NextDeadline,
}

/// A node mode.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeKind {
    /// Enabled.
    Enabled,
    /// Drain.
    Drain,
    /// Disabled.
    Disabled,
}

impl ModeKind {
    /// The core's mode.
    pub fn mode(self) -> Mode {
        match self {
            ModeKind::Enabled => Mode::Enabled,
            ModeKind::Drain => Mode::Drain,
            ModeKind::Disabled => Mode::Disabled,
        }
    }
}

/// One driver operation. A call selector `x` names open call `x % open` when
/// `x < 224` and a call is open, else call `x % started` among all calls
/// started, finished ones included (nothing happens before the first call).
/// Nodes are named by slot modulo 8, so some operations name empty slots and
/// must be refused.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Start a call (and poll it at once if it says so).
    Start(StartCall),
    /// Poll call `k` until it waits or finishes.
    Poll {
        /// Call index.
        call: u8,
    },
    /// Deliver an event to call `k`: to its live attempt number
    /// `attempt % live` when it has one, otherwise to a dead or unknown
    /// attempt (which must be stale). Then poll it.
    Deliver {
        /// Call index.
        call: u8,
        /// Attempt selector.
        attempt: u8,
        /// The event.
        event: EventKind,
    },
    /// Advance virtual time.
    Advance(Step),
    /// A heartbeat from node slot `x % 8`, or from every node when
    /// `x >= 192` (the drain flag then goes to the first node only).
    Heartbeat {
        /// Node slot.
        node: u8,
        /// Reported queue length.
        queued: u8,
        /// Reported drain flag.
        drain: bool,
    },
    /// Set node slot `x % 8`'s mode.
    SetMode {
        /// Node slot.
        node: u8,
        /// The mode.
        mode: ModeKind,
    },
    /// `Router::handle_timeout` at the current time.
    HandleTimeout,
    /// `Router::poll_wakeup`, polling the woken call.
    PollWakeup,
    /// Preview a route, check the verdicts, then start that call and check
    /// it got what the preview promised.
    Preview(StartCall),
}

/// Decodes a setup and up to [`MAX_STEPS`] operations from raw bytes. Never
/// fails: missing bytes read as zeros, trailing garbage is ignored.
pub fn decode(data: &[u8]) -> (Setup, Vec<Op>) {
    let mut u = Unstructured::new(data);
    let setup = Setup::arbitrary(&mut u).unwrap_or(Setup {
        seed: 0,
        nodes: 0,
        policy: 0,
        max_attempts: 0,
        tag_mode: 0,
        global: 0,
        queue_wait: 0,
        hedge: false,
        hedge_non_stream: false,
        shapes: [NodeShape {
            max_concurrency: 0,
            weight: 0,
            capabilities: 0,
            models: 0,
            alias: false,
            tagged: false,
            scope: 0,
        }; 6],
    });
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_STEPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    (setup, ops)
}

/// Runs `ops` on a fresh router built from `setup`, checking every invariant
/// after every step, then settles every call and checks nothing leaked.
/// Returns the harness for further inspection. Panics on a violation.
pub fn run_ops(setup: Setup, ops: &[Op]) -> Harness {
    let mut h = Harness::new(setup);
    for op in ops {
        h.apply(op);
    }
    h.settle();
    h
}

/// The fuzz entry point: decode `seed_bytes` ([`decode`]) and run them
/// ([`run_ops`]). Panics on a violated invariant.
pub fn run(seed_bytes: &[u8]) {
    let (setup, ops) = decode(seed_bytes);
    run_ops(setup, &ops);
}
