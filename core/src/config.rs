//! The router's tunables, with defaults chosen for a small LAN swarm of model
//! servers, and their validation.
//!
//! Every field has a documented default ([`RouterConfig::default`]).
//! [`RouterConfig::validate`] names the first field that is out of range; the
//! router refuses an invalid config rather than clamping it silently.

use core::fmt;

use crate::admission::PoolLimits;
use crate::breaker::BreakerConfig;
use crate::ewma::EwmaConfig;
use crate::health::HealthConfig;
use crate::overload::OverloadConfig;
use crate::probe::ProbeConfig;
use crate::time::Duration;

/// Most attempts (first try, failovers and hedges) one call may make.
pub const MAX_ATTEMPTS: usize = 8;

/// How the survivors of the hard filters are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Policy {
    /// Power of two choices on the load score (Mitzenmacher): pick two nodes
    /// at random, prefer the less loaded. The default.
    #[default]
    P2c,
    /// Each call starts one node further along.
    RoundRobin,
    /// Uniformly random order.
    Random,
    /// Lowest load score first.
    LeastLoaded,
    /// Random order, each node drawn with probability proportional to weight.
    WeightedRandom,
    /// Fewest attempts in flight first (ties to the lower node id): the
    /// classic least-connections balancer, blind to latency and weight. A
    /// baseline for comparisons.
    LeastInFlight,
    /// Power of two choices on tower's / Linkerd's peak-EWMA cost,
    /// `estimate × (in_flight + 1)`, with no weights, heartbeat load or tag
    /// preference. A baseline for comparisons.
    P2cPeakEwma,
}

impl Policy {
    /// Every policy, for comparisons.
    pub const ALL: [Policy; 7] = [
        Policy::P2c,
        Policy::RoundRobin,
        Policy::Random,
        Policy::LeastLoaded,
        Policy::WeightedRandom,
        Policy::LeastInFlight,
        Policy::P2cPeakEwma,
    ];

    /// A stable name (`p2c`, `round_robin`, `random`, `least_loaded`,
    /// `weighted_random`, `least_in_flight`, `p2c_peak_ewma`).
    pub fn name(self) -> &'static str {
        match self {
            Policy::P2c => "p2c",
            Policy::RoundRobin => "round_robin",
            Policy::Random => "random",
            Policy::LeastLoaded => "least_loaded",
            Policy::WeightedRandom => "weighted_random",
            Policy::LeastInFlight => "least_in_flight",
            Policy::P2cPeakEwma => "p2c_peak_ewma",
        }
    }
    /// Parses [`Policy::name`].
    pub fn from_name(s: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// How a call's wanted tags affect routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum TagMode {
    /// Nodes lacking a wanted tag have their load score multiplied by
    /// [`RouterConfig::tag_penalty`]; they still compete.
    #[default]
    Prefer,
    /// Nodes with every wanted tag come first (ordered by the policy), then
    /// the rest (ordered by the policy).
    StrictFirst,
    /// Nodes lacking a wanted tag are excluded.
    Require,
}

/// Session and prefix affinity.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AffinityConfig {
    /// Keep a session on its rendezvous-preferred node while that node's load
    /// score is at most this many times the best node's. `1.0` moves a session
    /// as soon as any node is better; large values pin sessions hard.
    /// Default 2.0.
    pub session_promote_ratio: f64,
    /// How many leading prompt blocks identify a prefix (default 4: with
    /// 512-token blocks, the first 2,048 tokens). 0 turns prefix affinity off.
    pub prefix_key_blocks: u8,
    /// Bounded-load factor `c` of consistent hashing with bounded loads
    /// (Mirrokni, Thorup, Zadimoghaddam 2018): a prefix stays on its home node
    /// while that node's in-flight count is within `c` times its weighted fair
    /// share. Default 1.5.
    pub prefix_load_factor: f64,
    /// How many nodes down the prefix's rendezvous order to look for one
    /// within bound before giving up on affinity (default 2).
    pub prefix_spread: u8,
}

impl Default for AffinityConfig {
    fn default() -> Self {
        AffinityConfig {
            session_promote_ratio: 2.0,
            prefix_key_blocks: 4,
            prefix_load_factor: 1.5,
            prefix_spread: 2,
        }
    }
}

/// Hedged requests ("The Tail at Scale", Dean and Barroso 2013).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HedgeConfig {
    /// Off by default: a hedge doubles work on a busy swarm.
    pub enabled: bool,
    /// The hedge delay is this quantile of recent TTFT (streams) or latency
    /// (other operations) for the call's operation. Default 0.9.
    pub quantile: f64,
    /// Lower bound of the delay (default 50 ms).
    pub min_delay: Duration,
    /// Upper bound of the delay, and the delay before any sample (default 2 s).
    pub max_delay: Duration,
    /// Hedges allowed per started call, as a fraction (default 0.1).
    pub budget_ratio: f64,
    /// Hedge tokens that may accumulate (default 10).
    pub budget_burst: u32,
    /// Whether non-streamed calls are hedged too (default false: for them the
    /// first byte is the whole answer, so a hedge duplicates a full generation).
    pub non_stream: bool,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            enabled: false,
            quantile: 0.9,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            budget_ratio: 0.1,
            budget_burst: 10,
            non_stream: false,
        }
    }
}

/// A budget shared by failover retries and hedges, so that a failing swarm
/// does not multiply its load (Finagle's and Linkerd's retry budgets, gRPC's
/// retry throttling).
///
/// Every attempt of a call after its first one (a failover, including one
/// sent after waiting in the queue, or a hedge) needs both:
///
/// - **concurrency**: fewer than `max(min_concurrent, ratio × active calls)`
///   such attempts in flight (it would not exceed that bound);
/// - **a token**: each started call deposits `ratio` tokens into a bucket
///   that holds at most `burst` (and starts full); each retry or hedge takes
///   one.
///
/// So whatever fails, upstream attempts stay at or below
/// `calls × (1 + ratio) + burst`. A call whose retry is denied ends with its
/// last failure; the trace records [`TraceEvent::RetryDenied`] and
/// [`Metrics::retries_denied`] counts it. Hedges also keep their own
/// [`HedgeConfig`] budget. [`RetryBudget::UNLIMITED`] turns the budget off.
///
/// [`TraceEvent::RetryDenied`]: crate::call::TraceEvent::RetryDenied
/// [`Metrics::retries_denied`]: crate::metrics::Metrics::retries_denied
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RetryBudget {
    /// Retries and hedges per started call, in `[0, 1]`; also the fraction of
    /// active calls that may have one in flight (default 0.2).
    pub ratio: f64,
    /// Retries and hedges always allowed in flight, whatever the traffic
    /// (default 3).
    pub min_concurrent: u32,
    /// Tokens the bucket holds at most, and starts with (default 10).
    pub burst: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            ratio: 0.2,
            min_concurrent: 3,
            burst: 10,
        }
    }
}

impl RetryBudget {
    /// No limit in practice: `u32::MAX` in flight and in the bucket.
    pub const UNLIMITED: RetryBudget = RetryBudget {
        ratio: 1.0,
        min_concurrent: u32::MAX,
        burst: u32::MAX,
    };
}

/// Everything the router can be tuned with. See [`RouterConfig::default`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RouterConfig {
    /// Candidate ordering (default P2C).
    pub policy: Policy,
    /// Attempts per call including the first, at most [`MAX_ATTEMPTS`] (default 3).
    pub max_attempts: u8,
    /// Peak-EWMA constants for TTFT and latency.
    pub ewma: EwmaConfig,
    /// Circuit breaker.
    pub breaker: BreakerConfig,
    /// 429/503 cooldown.
    pub overload: OverloadConfig,
    /// Heartbeat staleness.
    pub health: HealthConfig,
    /// Admission pools.
    pub pools: PoolLimits,
    /// Longest a call waits in the queue for capacity; zero disables waiting
    /// (default 5 s).
    pub queue_wait: Duration,
    /// Largest request body in bytes (default 8 MiB).
    pub max_payload_bytes: u32,
    /// One attempt's timeout: the whole reply for non-streamed calls, the
    /// first byte for streams (default 120 s).
    pub attempt_timeout: Duration,
    /// A streamed attempt with no first byte by then fails over (default 30 s).
    pub ttft_timeout: Duration,
    /// The whole call's deadline, retries and streaming included (default 600 s).
    pub call_timeout: Duration,
    /// Session and prefix affinity.
    pub affinity: AffinityConfig,
    /// How wanted tags act.
    pub tag_mode: TagMode,
    /// Load-score multiplier for nodes lacking a wanted tag under
    /// [`TagMode::Prefer`] (default 4.0).
    pub tag_penalty: f64,
    /// Hedging.
    pub hedge: HedgeConfig,
    /// Active health and inventory probes (off by default).
    pub probe: ProbeConfig,
    /// When true, a node that does not list the requested model is left out
    /// of a route while at least one enabled or draining node lists it
    /// (default false). A node *lists* a model when its model set names it
    /// explicitly or it has an alias for it. A node whose model set is
    /// [`ModelSet::ANY`](crate::catalog::ModelSet::ANY) (inventory unknown,
    /// the default of a node configured with an empty model list) serves any
    /// model; with `strict_models` it does so only for models no other node
    /// lists. A node with an explicit list never serves a model outside it
    /// (aliases aside), strict or not.
    pub strict_models: bool,
    /// Retries and hedges together.
    pub retry_budget: RetryBudget,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            policy: Policy::P2c,
            max_attempts: 3,
            ewma: EwmaConfig::default(),
            breaker: BreakerConfig::default(),
            overload: OverloadConfig::default(),
            health: HealthConfig::default(),
            pools: PoolLimits::default(),
            queue_wait: Duration::from_secs(5),
            max_payload_bytes: 8 << 20,
            attempt_timeout: Duration::from_secs(120),
            ttft_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(600),
            affinity: AffinityConfig::default(),
            tag_mode: TagMode::Prefer,
            tag_penalty: 4.0,
            hedge: HedgeConfig::default(),
            probe: ProbeConfig::default(),
            strict_models: false,
            retry_budget: RetryBudget::default(),
        }
    }
}

/// The field a [`RouterConfig`] was refused for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_attempts` is 0 or above [`MAX_ATTEMPTS`].
    MaxAttempts,
    /// A timeout is zero.
    ZeroTimeout(&'static str),
    /// `affinity.session_promote_ratio` is below 1 or not finite.
    PromoteRatio,
    /// `affinity.prefix_load_factor` is below 1 or not finite.
    PrefixLoadFactor,
    /// `tag_penalty` is below 1 or not finite.
    TagPenalty,
    /// A hedge setting is out of range.
    Hedge(&'static str),
    /// The breaker section is invalid.
    Breaker(crate::breaker::BreakerConfigError),
    /// The health section is invalid.
    Health(crate::health::HealthConfigError),
    /// The overload section is invalid.
    Overload(crate::overload::OverloadConfigError),
    /// The pool limits are invalid or exceed the router's permit capacity.
    Pools(crate::admission::LimitsError),
    /// A probe setting is out of range (its name).
    Probe(&'static str),
    /// `retry_budget.ratio` is outside `[0, 1]` or not finite.
    RetryBudget,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::MaxAttempts => {
                write!(f, "max_attempts must be between 1 and {MAX_ATTEMPTS}")
            }
            ConfigError::ZeroTimeout(name) => write!(f, "{name} must be greater than zero"),
            ConfigError::PromoteRatio => {
                f.write_str("affinity.session_promote_ratio must be a finite number >= 1")
            }
            ConfigError::PrefixLoadFactor => {
                f.write_str("affinity.prefix_load_factor must be a finite number >= 1")
            }
            ConfigError::TagPenalty => f.write_str("tag_penalty must be a finite number >= 1"),
            ConfigError::Hedge(what) => write!(f, "hedge.{what} is out of range"),
            ConfigError::Breaker(e) => write!(f, "breaker: {e}"),
            ConfigError::Health(e) => write!(f, "health: {e}"),
            ConfigError::Overload(e) => write!(f, "overload: {e}"),
            ConfigError::Pools(e) => write!(f, "pools: {e}"),
            ConfigError::Probe(what) => write!(f, "probe.{what} is out of range"),
            ConfigError::RetryBudget => {
                f.write_str("retry_budget.ratio must be a number between 0 and 1")
            }
        }
    }
}

impl core::error::Error for ConfigError {}

fn finite_at_least_one(x: f64) -> bool {
    x.is_finite() && x >= 1.0
}

impl RouterConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 || usize::from(self.max_attempts) > MAX_ATTEMPTS {
            return Err(ConfigError::MaxAttempts);
        }
        for (name, d) in [
            ("attempt_timeout", self.attempt_timeout),
            ("ttft_timeout", self.ttft_timeout),
            ("call_timeout", self.call_timeout),
        ] {
            if d == Duration::ZERO {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        if !finite_at_least_one(self.affinity.session_promote_ratio) {
            return Err(ConfigError::PromoteRatio);
        }
        if !finite_at_least_one(self.affinity.prefix_load_factor) {
            return Err(ConfigError::PrefixLoadFactor);
        }
        if !finite_at_least_one(self.tag_penalty) {
            return Err(ConfigError::TagPenalty);
        }
        let h = &self.hedge;
        if !(h.quantile.is_finite() && (0.0..=1.0).contains(&h.quantile)) {
            return Err(ConfigError::Hedge("quantile"));
        }
        if h.min_delay > h.max_delay {
            return Err(ConfigError::Hedge("min_delay"));
        }
        if !(h.budget_ratio.is_finite() && (0.0..=1.0).contains(&h.budget_ratio)) {
            return Err(ConfigError::Hedge("budget_ratio"));
        }
        self.breaker.validate().map_err(ConfigError::Breaker)?;
        self.health.validate().map_err(ConfigError::Health)?;
        self.overload.validate().map_err(ConfigError::Overload)?;
        self.pools.validate().map_err(ConfigError::Pools)?;
        self.probe.validate().map_err(ConfigError::Probe)?;
        let r = self.retry_budget.ratio;
        if !(r.is_finite() && (0.0..=1.0).contains(&r)) {
            return Err(ConfigError::RetryBudget);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_field_is_checked() {
        RouterConfig::default().validate().unwrap();
        let bad = |f: fn(&mut RouterConfig)| {
            let mut c = RouterConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.max_attempts = 0), ConfigError::MaxAttempts);
        assert_eq!(bad(|c| c.max_attempts = 9), ConfigError::MaxAttempts);
        assert_eq!(
            bad(|c| c.ttft_timeout = Duration::ZERO),
            ConfigError::ZeroTimeout("ttft_timeout")
        );
        assert_eq!(
            bad(|c| c.affinity.session_promote_ratio = f64::NAN),
            ConfigError::PromoteRatio
        );
        assert_eq!(
            bad(|c| c.affinity.prefix_load_factor = 0.5),
            ConfigError::PrefixLoadFactor
        );
        assert_eq!(
            bad(|c| c.tag_penalty = f64::INFINITY),
            ConfigError::TagPenalty
        );
        assert_eq!(
            bad(|c| c.hedge.quantile = 1.5),
            ConfigError::Hedge("quantile")
        );
        assert_eq!(
            bad(|c| c.hedge.min_delay = Duration::from_secs(10)),
            ConfigError::Hedge("min_delay")
        );
        assert_eq!(
            bad(|c| c.hedge.budget_ratio = -0.1),
            ConfigError::Hedge("budget_ratio")
        );
        assert_eq!(bad(|c| c.probe.jitter = 0.6), ConfigError::Probe("jitter"));
        assert_eq!(
            bad(|c| c.probe.health_interval = Duration::ZERO),
            ConfigError::Probe("health_interval")
        );
        assert_eq!(
            bad(|c| c.probe.timeout = Duration::ZERO),
            ConfigError::Probe("timeout")
        );
        assert_eq!(
            bad(|c| c.retry_budget.ratio = 1.5),
            ConfigError::RetryBudget
        );
        assert_eq!(
            bad(|c| c.retry_budget.ratio = f64::NAN),
            ConfigError::RetryBudget
        );
        let mut c = RouterConfig::default();
        c.retry_budget = RetryBudget::UNLIMITED;
        c.validate().unwrap();
    }

    #[test]
    fn policy_names_round_trip() {
        for p in Policy::ALL {
            assert_eq!(Policy::from_name(p.name()), Some(p));
        }
        assert_eq!(Policy::from_name("fastest"), None);
    }
}
