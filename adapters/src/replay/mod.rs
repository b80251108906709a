//! `drover replay`: replays a recorded trace (Azure CSV or Mooncake JSON
//! lines) or a scenario's generated workload through the router against a
//! SIMULATED swarm, once per routing policy, and reports what each policy
//! did: a summary table, `report.json` and SVG plots.
//!
//! The pieces:
//!
//! - [`scenario`]: the scenario files (swarm, faults, router settings,
//!   policies, workload) and the built-in default swarm;
//! - [`json`]: `report.json`, byte for byte deterministic (schema in
//!   `adapters/src/replay/README.md`);
//! - [`plot`]: the SVG charts (TTFT CDF per policy, load per node over
//!   time, failures over time);
//! - [`progress`]: the progress bar, shown only on a terminal.
//!
//! [`prepare`] resolves the command line against the scenario into a
//! [`Plan`]: it loads and checks the scenario, picks the policies and the
//! seed, and finds and checks the trace. [`run`] then replays it once per
//! policy on the simulator and writes the outputs.

mod exec;

pub use exec::simulate;
pub mod json;
pub mod plot;
pub mod progress;
pub mod scenario;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use drover_transports::sim::trace::{TraceError, TraceFormat};

use crate::cli::{ReplayOpts, ReplayPolicies};
use scenario::{
    BurstyWorkload, PoissonWorkload, PolicySpec, Scenario, ScenarioError, SessionsWorkload,
    WorkloadSource,
};

/// The seed when neither the command line nor the scenario gives one.
pub const DEFAULT_SEED: u64 = 42;

/// The output folder when `--out` is not given.
pub const DEFAULT_OUT: &str = "replay-out";

/// What a replay runs, resolved from the command line and the scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The scenario.
    pub scenario: Scenario,
    /// Where it came from: its file, or [`scenario::DEFAULT_SCENARIO_ORIGIN`]
    /// for the built-in one.
    pub scenario_origin: PathBuf,
    /// The policies to run, in order: `--policy`, else the scenario's.
    pub policies: Vec<PolicySpec>,
    /// `--seed`, else the scenario's, else [`DEFAULT_SEED`].
    pub seed: u64,
    /// Where the calls come from.
    pub source: Source,
    /// The output folder (not created yet).
    pub out: PathBuf,
}

/// Where a replay's calls come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A trace file (it exists and opens) in a known format; the scenario's
    /// `[workload]` says how to cut it.
    Trace {
        /// The file.
        path: PathBuf,
        /// Its format: `--format`, else the scenario's, else detected.
        format: TraceFormat,
    },
    /// The scenario's Poisson generator.
    Poisson(PoissonWorkload),
    /// The scenario's bursty generator.
    Bursty(BurstyWorkload),
    /// The scenario's session generator.
    Sessions(SessionsWorkload),
}

impl Source {
    /// How reports name it: the trace's path, or the generator.
    pub fn label(&self) -> String {
        match self {
            Source::Trace { path, .. } => path.display().to_string(),
            Source::Poisson(_) => "generated: poisson".to_owned(),
            Source::Bursty(_) => "generated: bursty".to_owned(),
            Source::Sessions(_) => "generated: sessions".to_owned(),
        }
    }
}

/// Why a replay could not run.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplayError {
    /// The scenario cannot be read or is invalid.
    Scenario(ScenarioError),
    /// The trace's format cannot be told.
    Trace(TraceError),
    /// The trace file cannot be opened.
    TraceFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Neither `--trace` nor the scenario gives the calls.
    NoWorkload {
        /// The scenario.
        scenario: PathBuf,
    },
    /// `--format` was given, but there is no trace to read.
    FormatWithoutTrace,
    /// `--out` names something that is not a folder.
    OutNotAFolder(PathBuf),
    /// The workload generator refused its settings.
    Workload(String),
    /// The workload has no calls (e.g. a window past the trace's end).
    EmptyWorkload(String),
    /// The simulated swarm could not be built.
    Setup(String),
    /// A run broke an invariant (a call without exactly one outcome, a
    /// send to an ineligible node, a failover after the first byte).
    Invariant(String, String),
    /// An output file could not be written.
    Write(PathBuf, String),
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Scenario(e) => write!(f, "{e}"),
            ReplayError::Trace(e) => write!(f, "{e}"),
            ReplayError::TraceFile { path, reason } => {
                write!(f, "{}: cannot open the trace: {reason}", path.display())
            }
            ReplayError::NoWorkload { scenario } => write!(
                f,
                "no workload: give --trace FILE, or a scenario whose [workload] names a trace or a generator ({} has neither)",
                scenario.display()
            ),
            ReplayError::FormatWithoutTrace => f.write_str(
                "--format applies to a trace, but there is none: the scenario's workload is generated and no --trace is given",
            ),
            ReplayError::OutNotAFolder(p) => {
                write!(f, "--out {}: exists and is not a folder", p.display())
            }
            ReplayError::Workload(e) => write!(f, "workload: {e}"),
            ReplayError::EmptyWorkload(src) => write!(f, "{src}: the workload has no calls (check the window and max_calls)"),
            ReplayError::Setup(e) => write!(f, "cannot build the simulated swarm: {e}"),
            ReplayError::Invariant(policy, e) => {
                write!(f, "policy {policy}: invariant violated, the run is void: {e}")
            }
            ReplayError::Write(p, e) => write!(f, "{}: cannot write: {e}", p.display()),
        }
    }
}

impl std::error::Error for ReplayError {}

impl From<ScenarioError> for ReplayError {
    fn from(e: ScenarioError) -> Self {
        ReplayError::Scenario(e)
    }
}

/// Resolves the options into a [`Plan`]; see [`Plan`]'s fields for what
/// wins over what. `--trace` replaces the scenario's own source. Nothing
/// is written.
pub fn prepare(opts: &ReplayOpts) -> Result<Plan, ReplayError> {
    let (scenario, origin) = match &opts.scenario {
        Some(path) => (Scenario::load(path)?, path.clone()),
        None => (
            Scenario::builtin()?,
            PathBuf::from(scenario::DEFAULT_SCENARIO_ORIGIN),
        ),
    };
    let policies = match opts.policies {
        ReplayPolicies::All => scenario.policies.clone(),
        ReplayPolicies::One(spec) => vec![spec],
    };
    let seed = opts.seed.or(scenario.seed).unwrap_or(DEFAULT_SEED);
    let format = opts.format.or(scenario.workload.format);
    let source = match (&opts.trace, &scenario.workload.source) {
        (Some(path), _) | (None, Some(WorkloadSource::Trace(path))) => Source::Trace {
            format: trace_format(path, format)?,
            path: path.clone(),
        },
        (None, Some(_)) if opts.format.is_some() => return Err(ReplayError::FormatWithoutTrace),
        (None, Some(WorkloadSource::Poisson(g))) => Source::Poisson(*g),
        (None, Some(WorkloadSource::Bursty(g))) => Source::Bursty(*g),
        (None, Some(WorkloadSource::Sessions(g))) => Source::Sessions(*g),
        (None, None) => return Err(ReplayError::NoWorkload { scenario: origin }),
    };
    if opts.out.exists() && !opts.out.is_dir() {
        return Err(ReplayError::OutNotAFolder(opts.out.clone()));
    }
    Ok(Plan {
        scenario,
        scenario_origin: origin,
        policies,
        seed,
        source,
        out: opts.out.clone(),
    })
}

/// Checks that the trace opens and tells its format.
fn trace_format(path: &Path, given: Option<TraceFormat>) -> Result<TraceFormat, ReplayError> {
    let unreadable = |reason: String| ReplayError::TraceFile {
        path: path.to_owned(),
        reason,
    };
    if path.is_dir() {
        return Err(unreadable("it is a folder".to_owned()));
    }
    File::open(path).map_err(|e| unreadable(e.to_string()))?;
    match given {
        Some(f) => Ok(f),
        None => TraceFormat::detect(path).map_err(ReplayError::Trace),
    }
}

/// `drover replay`: prepares the plan (so every input error is reported
/// first, naming the file, line and field), replays it once per policy on
/// the simulator, writes `report.json` and the SVG plots into the output
/// folder, and returns the summary table followed by the files written.
pub fn run(opts: &ReplayOpts) -> Result<String, ReplayError> {
    let plan = prepare(opts)?;
    let out = exec::execute(&plan)?;
    let mut text = out.table;
    text.push_str("\nwritten:\n");
    for f in &out.files {
        text.push_str(&format!("  {}\n", f.display()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
