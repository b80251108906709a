//! Scenario files: the swarm, its faults, the router settings, the policies
//! to compare and, optionally, the workload of a `drover replay` run.
//!
//! A scenario is a TOML file (schema in `scenarios/README.md`, with three
//! commented examples beside it). [`Scenario::load`] reads one into plain
//! data, [`Scenario::parse`] parses text, and [`Scenario::builtin`] gives the
//! default swarm, the home lab of `scenarios/home-lab.toml`, compiled in as
//! [`DEFAULT_SCENARIO`].
//!
//! Durations are plain numbers whose key says the unit: `_ms` for
//! milliseconds, `_s` for seconds. Unknown keys are errors.
//!
//! # Errors
//!
//! Every error names the file, the line and the field, like the trace
//! readers' errors: `scenarios/x.toml:14: field nodes[2].slots: must be at
//! least 1`. Syntax and type errors take the line from the TOML parser's
//! span; errors found after parsing (an unknown node in a fault, `until_s`
//! before `at_s`, a duplicate node name, a probability above 1, …) take the
//! line of the offending key, looked up in the parsed document's spans. An
//! error about the whole file (it cannot be read, or a required top-level
//! key is missing) has no line.
//!
//! # Policy variants
//!
//! A policy name is a base policy (`p2c`, `round_robin`, `random`,
//! `least_loaded`, `weighted_random`) followed by zero or more modifiers:
//!
//! - `+affinity`: calls carry their session key and prompt-prefix key, so
//!   the router's session and prefix affinity (`[router.affinity]`) applies.
//!   Without it calls carry neither and prefix affinity is off.
//! - `+hedge`: hedged requests with the `[router.hedge]` settings. Without
//!   it hedging is off.
//!
//! Each modifier at most once, in any order: `p2c+hedge+affinity` is
//! `p2c+affinity+hedge` ([`PolicySpec`]'s `Display` writes the canonical
//! order).

mod checks;
mod locate;
mod raw;
mod raw_workload;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use drover_core::Duration;
use drover_core::config::{Policy, RouterConfig};
use drover_transports::sim::trace::TraceFormat;
use serde::Deserialize;

pub use locate::{FieldPath, Segment};

/// The built-in default swarm (the home lab), used when `drover replay`
/// is given no `--scenario`: the text of `scenarios/home-lab.toml`.
pub const DEFAULT_SCENARIO: &str = include_str!("../../../scenarios/home-lab.toml");

/// How errors in [`DEFAULT_SCENARIO`] name it.
pub const DEFAULT_SCENARIO_ORIGIN: &str = "scenarios/home-lab.toml";

/// Most nodes a scenario may have (the simulator's capacity).
pub const MAX_NODES: usize = drover_transports::sim::MAX_NODES;

/// Most gateways a scenario may have.
pub const MAX_GATEWAYS: u16 = 16;

/// A scenario: everything a replay needs besides the trace and the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Short name, shown in reports.
    pub name: String,
    /// What the scenario shows (default empty).
    pub description: String,
    /// Seed used when the command line gives none.
    pub seed: Option<u64>,
    /// Gateways (independent routers) sharing the swarm; calls are spread
    /// over them round-robin (default 1).
    pub gateways: u16,
    /// Simulated heartbeats; `None`: nodes send none.
    pub heartbeat: Option<Heartbeat>,
    /// The policies to compare, in order (default the five base policies).
    pub policies: Vec<PolicySpec>,
    /// Router settings shared by every policy.
    pub router: RouterSettings,
    /// The simulated nodes, in file order (at least one, names unique).
    pub nodes: Vec<ScenarioNode>,
    /// Scheduled faults, in file order.
    pub faults: Vec<Fault>,
    /// Where the calls come from and how they are cut.
    pub workload: WorkloadSettings,
}

/// Simulated heartbeats (`[heartbeat]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// Time between two reports of a node (`interval_ms`, default 1,000).
    pub interval: Duration,
    /// Network delay of a report (`delay_ms`, default 5).
    pub delay: Duration,
    /// Silence after which a node's report is stale (`stale_after_ms`,
    /// default 5,000).
    pub stale_after: Duration,
    /// Silence after which a node is lost (`lost_after_ms`, default 7,500).
    pub lost_after: Duration,
}

/// A policy to run: a base policy and its modifiers (see the
/// [module docs](self#policy-variants)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicySpec {
    /// How candidates are ordered.
    pub policy: Policy,
    /// Calls carry session and prefix keys; prefix affinity is on.
    pub affinity: bool,
    /// Hedging is on.
    pub hedge: bool,
}

impl PolicySpec {
    /// The five base policies, without modifiers.
    pub fn base_policies() -> Vec<PolicySpec> {
        Policy::ALL.iter().map(|&p| PolicySpec::from(p)).collect()
    }
}

impl From<Policy> for PolicySpec {
    fn from(policy: Policy) -> Self {
        PolicySpec {
            policy,
            affinity: false,
            hedge: false,
        }
    }
}

impl fmt::Display for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.policy.name())?;
        if self.affinity {
            f.write_str("+affinity")?;
        }
        if self.hedge {
            f.write_str("+hedge")?;
        }
        Ok(())
    }
}

/// A policy name that [`PolicySpec::from_str`] refuses; displays why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPolicy(pub String);

impl fmt::Display for BadPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadPolicy {}

impl FromStr for PolicySpec {
    type Err = BadPolicy;
    /// `BASE[+affinity][+hedge]`, modifiers in any order, each at most once.
    fn from_str(s: &str) -> Result<Self, BadPolicy> {
        let mut parts = s.split('+');
        let base = parts.next().unwrap_or_default();
        let Some(policy) = Policy::from_name(base) else {
            let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
            return Err(BadPolicy(format!(
                "unknown policy '{base}': expected one of {}, optionally followed by +affinity and/or +hedge",
                names.join(", ")
            )));
        };
        let mut spec = PolicySpec::from(policy);
        for modifier in parts {
            let flag = match modifier {
                "affinity" => &mut spec.affinity,
                "hedge" => &mut spec.hedge,
                other => {
                    return Err(BadPolicy(format!(
                        "unknown policy modifier '+{other}' in '{s}': expected +affinity or +hedge"
                    )));
                }
            };
            if *flag {
                return Err(BadPolicy(format!(
                    "policy modifier '+{modifier}' is given twice in '{s}'"
                )));
            }
            *flag = true;
        }
        Ok(spec)
    }
}

/// Router settings (`[router]`), shared by every policy of a scenario.
/// Defaults are [`RouterConfig::default`]'s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RouterSettings {
    /// Attempts per call, first try, failovers and hedges included
    /// (`max_attempts`, 1 to 8).
    pub max_attempts: u8,
    /// Longest wait in the router's queue (`queue_wait_ms`; 0: no waiting).
    pub queue_wait: Duration,
    /// A stream with no first byte by then fails over (`ttft_timeout_ms`).
    pub ttft_timeout: Duration,
    /// One attempt's timeout (`attempt_timeout_ms`).
    pub attempt_timeout: Duration,
    /// The whole call's deadline (`call_timeout_ms`).
    pub call_timeout: Duration,
    /// Hedging settings of `+hedge` policies (`[router.hedge]`).
    pub hedge: HedgeSettings,
    /// Affinity settings of `+affinity` policies (`[router.affinity]`).
    pub affinity: AffinitySettings,
}

/// `[router.hedge]`: see [`drover_core::config::HedgeConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeSettings {
    /// Quantile of recent TTFT used as the hedge delay (`quantile`, 0 to 1).
    pub quantile: f64,
    /// Lower bound of the delay (`min_delay_ms`).
    pub min_delay: Duration,
    /// Upper bound of the delay (`max_delay_ms`).
    pub max_delay: Duration,
    /// Hedges per started call (`budget_ratio`, 0 to 1).
    pub budget_ratio: f64,
    /// Hedge tokens that may accumulate (`budget_burst`).
    pub budget_burst: u32,
    /// Hedge non-streamed calls too (`non_stream`).
    pub non_stream: bool,
}

/// `[router.affinity]`: see [`drover_core::config::AffinityConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffinitySettings {
    /// Keep a session home while its load is at most this times the best
    /// node's (`session_promote_ratio`, at least 1).
    pub session_promote_ratio: f64,
    /// Leading prompt blocks that identify a prefix (`prefix_key_blocks`,
    /// at least 1).
    pub prefix_key_blocks: u8,
    /// Bounded-load factor of prefix affinity (`prefix_load_factor`, at
    /// least 1).
    pub prefix_load_factor: f64,
    /// Nodes down the prefix's order to try (`prefix_spread`).
    pub prefix_spread: u8,
}

impl Default for RouterSettings {
    fn default() -> Self {
        let c = RouterConfig::default();
        RouterSettings {
            max_attempts: c.max_attempts,
            queue_wait: c.queue_wait,
            ttft_timeout: c.ttft_timeout,
            attempt_timeout: c.attempt_timeout,
            call_timeout: c.call_timeout,
            hedge: HedgeSettings {
                quantile: c.hedge.quantile,
                min_delay: c.hedge.min_delay,
                max_delay: c.hedge.max_delay,
                budget_ratio: c.hedge.budget_ratio,
                budget_burst: c.hedge.budget_burst,
                non_stream: c.hedge.non_stream,
            },
            affinity: AffinitySettings {
                session_promote_ratio: c.affinity.session_promote_ratio,
                prefix_key_blocks: c.affinity.prefix_key_blocks,
                prefix_load_factor: c.affinity.prefix_load_factor,
                prefix_spread: c.affinity.prefix_spread,
            },
        }
    }
}

impl RouterSettings {
    /// The router configuration for `spec`: these settings over
    /// [`RouterConfig::default`], hedging on only for `+hedge`, prefix
    /// affinity (`prefix_key_blocks`) off unless `+affinity`. Session
    /// affinity has no switch in the core: a driver running a policy without
    /// `+affinity` must also leave the calls' session and prefix keys out.
    pub fn router_config(&self, spec: PolicySpec) -> RouterConfig {
        let mut c = RouterConfig {
            policy: spec.policy,
            max_attempts: self.max_attempts,
            queue_wait: self.queue_wait,
            ttft_timeout: self.ttft_timeout,
            attempt_timeout: self.attempt_timeout,
            call_timeout: self.call_timeout,
            ..RouterConfig::default()
        };
        let h = &self.hedge;
        c.hedge.enabled = spec.hedge;
        c.hedge.quantile = h.quantile;
        c.hedge.min_delay = h.min_delay;
        c.hedge.max_delay = h.max_delay;
        c.hedge.budget_ratio = h.budget_ratio;
        c.hedge.budget_burst = h.budget_burst;
        c.hedge.non_stream = h.non_stream;
        let a = &self.affinity;
        c.affinity.session_promote_ratio = a.session_promote_ratio;
        c.affinity.prefix_key_blocks = if spec.affinity {
            a.prefix_key_blocks
        } else {
            0
        };
        c.affinity.prefix_load_factor = a.prefix_load_factor;
        c.affinity.prefix_spread = a.prefix_spread;
        c
    }
}

/// A simulated node (`[[nodes]]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioNode {
    /// Unique name.
    pub name: String,
    /// Requests it serves at once; more wait in its own queue (`slots`).
    pub slots: u16,
    /// What the router is told it accepts (`max_concurrency`, default
    /// 2 × slots).
    pub max_concurrency: u16,
    /// Relative capacity for weighted policies (`weight`, default slots).
    pub weight: u16,
    /// Tags it advertises (`tags`, default none).
    pub tags: Vec<String>,
    /// Prompt tokens prefilled per second (`prefill_tokens_per_s`).
    pub prefill_tokens_per_s: f64,
    /// Tokens generated per second per request (`decode_tokens_per_s`).
    pub decode_tokens_per_s: f64,
    /// Fixed time to first token besides the prefill (`base_ttft_ms`,
    /// default 0).
    pub base_ttft: Duration,
    /// Relative spread of every service time, 0 to 1 (`jitter`, default 0).
    pub jitter: f64,
    /// Prompt blocks its prefix cache holds; 0: no cache
    /// (`prefix_cache_blocks`, default 0).
    pub prefix_cache_blocks: u32,
    /// Fixed cost of an embedding call besides its prompt at the prefill
    /// rate (`embed_ms`, default 10).
    pub embed: Duration,
    /// Requests waiting inside the node beyond which it answers 429;
    /// `None`: it never does (`overload_queue`).
    pub overload_queue: Option<u32>,
    /// Retry-After of its 429 and 503 answers (`retry_after_ms`).
    pub retry_after: Option<Duration>,
    /// Probability that an attempt fails with a 5xx (`failure_rate`).
    pub failure_rate: f64,
    /// Probability that a stream breaks off after its first byte
    /// (`corrupt_rate`).
    pub corrupt_rate: f64,
    /// Sends heartbeats, when the scenario has `[heartbeat]` (`heartbeat`,
    /// default true).
    pub heartbeat: bool,
}

/// A scheduled fault (`[[faults]]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fault {
    /// Index of the node in [`Scenario::nodes`].
    pub node: usize,
    /// Start, from the beginning of the run (`at_s`).
    pub at: Duration,
    /// End; `None`: until the end of the run (`until_s`).
    pub until: Option<Duration>,
    /// What happens.
    pub kind: FaultKind,
}

/// What a [`Fault`] does to its node while it lasts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FaultKind {
    /// Down: connections are refused (`crash`).
    Crash,
    /// Serves, but its heartbeats stop (`stale_heartbeat`).
    StaleHeartbeat,
    /// Prefill and decode take `factor` times as long (`slow`, factor
    /// above 1).
    Slow {
        /// Slow-down factor.
        factor: f64,
    },
    /// Answers 429 (with the node's Retry-After) once `queue_limit`
    /// requests wait inside it (`overload`, `queue` default 0: whenever a
    /// request would wait).
    Overload {
        /// Waiting requests that trigger a 429.
        queue_limit: u32,
    },
    /// A fraction `rate` of replies fails validation (`corrupt`, rate
    /// default 1): the router must fail over, never pass it on.
    Corrupt {
        /// Probability per stream.
        rate: f64,
    },
    /// Down for the first half of every `period`, up for the second
    /// (`flap`).
    Flap {
        /// Length of one down-and-up cycle.
        period: Duration,
    },
}

impl FaultKind {
    /// The name used in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::StaleHeartbeat => "stale_heartbeat",
            FaultKind::Slow { .. } => "slow",
            FaultKind::Overload { .. } => "overload",
            FaultKind::Corrupt { .. } => "corrupt",
            FaultKind::Flap { .. } => "flap",
        }
    }
}

/// `[workload]`: where the calls come from and how a trace is cut.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSettings {
    /// The scenario's own source; `None`: the command line's `--trace`.
    /// `--trace` replaces it.
    pub source: Option<WorkloadSource>,
    /// Format of the trace (`format`); `None`: detected. `--format` wins.
    pub format: Option<TraceFormat>,
    /// Operation weights (`mix`, default streamed chat only).
    pub mix: Mix,
    /// Rate multiplier of a trace: 2 replays it twice as fast (`rate`,
    /// default 1).
    pub rate: f64,
    /// Trace calls before this offset from its first call are skipped
    /// (`start_s`, default 0).
    pub start: Duration,
    /// Trace calls at or after `start + duration` are dropped
    /// (`duration_s`; default none).
    pub duration: Option<Duration>,
    /// At most this many trace calls (`max_calls`; default all).
    pub max_calls: Option<usize>,
}

impl Default for WorkloadSettings {
    fn default() -> Self {
        WorkloadSettings {
            source: None,
            format: None,
            mix: Mix::STREAM,
            rate: 1.0,
            start: Duration::ZERO,
            duration: None,
            max_calls: None,
        }
    }
}

/// A scenario's own workload source.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadSource {
    /// A trace file (`trace`), relative paths resolved against the
    /// scenario file's folder.
    Trace(PathBuf),
    /// Seeded Poisson arrivals (`[workload.poisson]`).
    Poisson(PoissonWorkload),
    /// Seeded bursty (two-state MMPP) arrivals (`[workload.bursty]`).
    Bursty(BurstyWorkload),
    /// Seeded multi-turn sessions with shared prefixes
    /// (`[workload.sessions]`).
    Sessions(SessionsWorkload),
}

/// Relative weights of the operations (`mix = { stream, chat, embed }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Streamed chat (default 0 when `mix` is given).
    #[serde(default)]
    pub stream: u32,
    /// Non-streamed chat.
    #[serde(default)]
    pub chat: u32,
    /// Embeddings.
    #[serde(default)]
    pub embed: u32,
}

impl Mix {
    /// Streamed chat only.
    pub const STREAM: Mix = Mix {
        stream: 1,
        chat: 0,
        embed: 0,
    };
}

/// `[workload.poisson]`: see `drover_transports::sim::WorkloadSpec`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoissonWorkload {
    /// Calls (`calls`).
    pub calls: usize,
    /// Mean arrivals per second (`rate_per_s`).
    pub rate_per_s: f64,
    /// Inclusive prompt length range (`prompt_tokens = [lo, hi]`, default
    /// 50 to 1,000).
    pub prompt_tokens: (u32, u32),
    /// Inclusive answer length range (`output_tokens`, default 20 to 300).
    pub output_tokens: (u32, u32),
}

/// `[workload.bursty]`: see `drover_transports::sim::BurstySpec`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurstyWorkload {
    /// Calls (`calls`).
    pub calls: usize,
    /// Arrivals per second while bursting (`on_rate_per_s`).
    pub on_rate_per_s: f64,
    /// Arrivals per second between bursts (`off_rate_per_s`, may be 0).
    pub off_rate_per_s: f64,
    /// Mean burst length (`mean_on_s`).
    pub mean_on: Duration,
    /// Mean lull length (`mean_off_s`).
    pub mean_off: Duration,
    /// Inclusive prompt length range (`prompt_tokens`, default 50 to 1,000).
    pub prompt_tokens: (u32, u32),
    /// Inclusive answer length range (`output_tokens`, default 20 to 300).
    pub output_tokens: (u32, u32),
}

/// `[workload.sessions]`: see `drover_transports::sim::SessionSpec`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionsWorkload {
    /// Sessions (`sessions`).
    pub sessions: usize,
    /// New sessions per second (`session_rate_per_s`).
    pub session_rate_per_s: f64,
    /// Inclusive range of turns per session (`turns`, default 2 to 8).
    pub turns: (u32, u32),
    /// Mean think time between turns (`think_time_s`, default 10).
    pub think_time: Duration,
    /// Distinct system prompts (`system_prompts`, default 4).
    pub system_prompts: u32,
    /// Blocks of each system prompt (`system_blocks`, default 4).
    pub system_blocks: u32,
    /// Inclusive range of new blocks per turn (`turn_blocks`, default 1
    /// to 4).
    pub turn_blocks: (u32, u32),
    /// Tokens per block (`block_tokens`, default 512).
    pub block_tokens: u32,
    /// Inclusive answer length range (`output_tokens`, default 20 to 300).
    pub output_tokens: (u32, u32),
}

/// Why a scenario could not be loaded. Displays as
/// `file:line: field PATH: reason`, without the line when the error
/// concerns the whole file and without the field when it concerns no
/// single key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScenarioError {
    /// The file.
    pub origin: PathBuf,
    /// The line, from 1; 0 for the whole file.
    pub line: usize,
    /// The key at fault, as a path (`nodes[2].slots`).
    pub field: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "field {field}: ")?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// Reads and checks the scenario file at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Scenario::parse(&text, path),
            Err(e) => Err(ScenarioError {
                origin: path.to_owned(),
                line: 0,
                field: None,
                reason: format!("cannot read the scenario: {e}"),
            }),
        }
    }

    /// Parses and checks scenario `text`; `origin` names it in errors and
    /// its folder anchors a relative `workload.trace`.
    pub fn parse(text: &str, origin: &Path) -> Result<Scenario, ScenarioError> {
        let error = |line: usize, field: Option<String>, reason: String| ScenarioError {
            origin: origin.to_owned(),
            line,
            field,
            reason,
        };
        let doc = toml::de::DeTable::parse(text).map_err(|e| {
            let line = e.span().map_or(0, |s| locate::line_at(text, s.start));
            error(line, None, format!("invalid TOML: {}", e.message()))
        })?;
        let raw = raw::RawScenario::deserialize(toml::de::Deserializer::from(doc.clone()))
            .map_err(|e| match e.span() {
                // An empty span: a required top-level key is missing.
                Some(s) if !s.is_empty() => {
                    let path = locate::path_at(doc.get_ref(), s.start);
                    let field = (!path.is_empty()).then(|| path.to_string());
                    error(
                        locate::line_at(text, s.start),
                        field,
                        e.message().to_owned(),
                    )
                }
                _ => error(0, None, e.message().to_owned()),
            })?;
        let base = origin.parent().unwrap_or(Path::new(""));
        raw.check(base).map_err(|problem| {
            let line = locate::line_of(doc.get_ref(), text, &problem.path);
            let field = (!problem.path.is_empty()).then(|| problem.path.to_string());
            error(line, field, problem.reason)
        })
    }

    /// The built-in default swarm: [`DEFAULT_SCENARIO`], the home lab.
    pub fn builtin() -> Result<Scenario, ScenarioError> {
        Scenario::parse(DEFAULT_SCENARIO, Path::new(DEFAULT_SCENARIO_ORIGIN))
    }

    /// The index of the node named `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}
