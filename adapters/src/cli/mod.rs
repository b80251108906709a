//! The command line: a small hand-rolled parser over `std::env::args_os`
//! (no parser crate, to keep the binary small).
//!
//! Options take their value as `--name VALUE` or `--name=VALUE`. Every error
//! names the argument at fault; the binary prints it and exits with status 2.

mod serve;
pub use serve::SERVE_USAGE;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use drover_core::config::Policy;
use drover_transports::sim::MAX_NODES;
use drover_transports::sim::trace::TraceFormat;

use crate::replay::DEFAULT_OUT;
use crate::replay::scenario::PolicySpec;

/// `drover --help`.
pub const USAGE: &str = "\
drover: routes LLM inference calls (chat, streaming chat, embeddings) across
a swarm of model servers (Ollama, vLLM, llama.cpp, LM Studio).

Usage: drover <COMMAND> [OPTIONS]

Commands:
  serve       Run the gateway: one OpenAI and Ollama endpoint in front of
              your model servers ('drover serve --demo' needs none; see
              'drover serve --help')
  demo        Run a simulated swarm through the router and report (no model
              server needed; see 'drover demo --help')
  replay      Replay a recorded trace through the router against a
              simulated swarm described by a scenario file, once per
              policy (see 'drover replay --help')
  check       Validate a gateway config file and print a summary or every
              problem (see 'drover check --help')
  agent       Run beside a model server and send heartbeats to gateways
              (see 'drover agent --help')
  discover    Probe hosts for Ollama and OpenAI-compatible servers and write
              a nodes file (see 'drover discover --help')
  help        Print this help

Options:
  -h, --help     Print this help
  -V, --version  Print the version
";

/// `drover demo --help`.
pub const DEMO_USAGE: &str = "\
drover demo: runs the router against SIMULATED model servers on a virtual
clock and prints what happened. Nothing is contacted; one seed decides every
number, so the same command prints the same report.

The swarm cycles through four kinds of node: a fast 'gpu' box, two slower
'cpu' boxes (which answer 429 when their queue is full) and a 'flaky' box
that fails 3% of attempts and crashes for a while mid-run.

Usage: drover demo [OPTIONS]

Options:
      --nodes N        Simulated nodes, 1 to 64 [default: 4]
      --calls N        Calls to run, 1 to 1000000 [default: 1000]
      --rate PER_SEC   Mean arrivals per second (Poisson)
                       [default: 0.75 per node]
      --seed S         Seed, decimal or 0x-hex [default: 42]
      --policy P       p2c, round_robin, random, least_loaded,
                       weighted_random, least_in_flight, p2c_peak_ewma,
                       or all [default: p2c]
  -h, --help           Print this help
";

/// `drover replay --help`.
pub const REPLAY_USAGE: &str = "\
drover replay: replays a recorded trace (or a scenario's generated workload)
through the router against SIMULATED model servers on a virtual clock, once
per routing policy, and reports what each policy did: a summary table on
stdout, DIR/report.json and SVG plots in DIR (TTFT CDF per policy, load per
node over time, failures over time). Same trace, scenario and seed: same
report.json, byte for byte.

Usage: drover replay --trace FILE [OPTIONS]

Options:
      --trace FILE     The trace: Azure LLM inference CSV or Mooncake JSON
                       lines. Replaces the scenario's own workload; needed
                       when the scenario has none
      --format F       azure or mooncake [default: the scenario's, else
                       detected from the file]
      --scenario FILE  Scenario TOML: nodes, faults, router settings,
                       policies, gateways, workload (see scenarios/README.md)
                       [default: the built-in home lab, scenarios/home-lab.toml]
      --policy P       One policy, or all: the scenario's list [default: all].
                       A policy is p2c, round_robin, random, least_loaded,
                       weighted_random, least_in_flight or p2c_peak_ewma
                       (the last two are baselines), optionally followed by +affinity
                       (session and prefix affinity) and/or +hedge (hedging)
      --seed S         Seed, decimal or 0x-hex [default: the scenario's,
                       else 42]
      --out DIR        Folder for report.json and the plots [default:
                       replay-out]
  -h, --help           Print this help
";

/// `drover check --help`.
pub const CHECK_USAGE: &str = "\
drover check: validates a gateway config file (TOML, with the nodes JSON it
names in nodes_path) the way 'drover serve --config FILE' reads it: the
secrets it names by environment variable must be set, and the DROVER_*
overrides (DROVER_LISTEN, DROVER_POLICY, DROVER_NODES_PATH,
DROVER_MAX_BODY_BYTES, DROVER_STATE_PATH) are applied.

Prints a short summary and exits 0 when the config is valid. Otherwise
prints every problem found, one per line, as

  FILE:LINE: field `x`: reason

and exits 1. Warnings (an inline token, an API key that will not be sent to
a public node, ...) are printed in the summary and do not fail the check.

Usage: drover check FILE

Options:
  -h, --help           Print this help
";

/// Most calls `drover demo` runs.
pub const MAX_CALLS: usize = 1_000_000;
/// Highest arrival rate `drover demo` accepts, per second.
pub const MAX_RATE: f64 = 10_000.0;

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `drover --help` (or `drover help`).
    Help,
    /// `drover --version`.
    Version,
    /// `drover demo --help`.
    DemoHelp,
    /// `drover demo …`.
    Demo(DemoOptions),
    /// `drover serve --help`.
    ServeHelp,
    /// `drover serve …`.
    Serve(crate::serve::ServeOptions),
    /// `drover replay --help`.
    ReplayHelp,
    /// `drover replay …`.
    Replay(ReplayOpts),
    /// `drover check --help`.
    CheckHelp,
    /// `drover check FILE`.
    Check(PathBuf),
    /// `drover discover --help`.
    DiscoverHelp,
    /// `drover discover …`.
    Discover(crate::discover::DiscoverOptions),
}

/// Which policies `drover replay` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayPolicies {
    /// The scenario's list (`--policy all`, the default).
    All,
    /// Just this one.
    One(PolicySpec),
}

/// Options of `drover replay`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayOpts {
    /// `--trace`: replaces the scenario's workload.
    pub trace: Option<PathBuf>,
    /// `--format`: the trace's format.
    pub format: Option<TraceFormat>,
    /// `--scenario`; `None`: the built-in home lab.
    pub scenario: Option<PathBuf>,
    /// `--policy`.
    pub policies: ReplayPolicies,
    /// `--seed`; `None`: the scenario's, else
    /// [`DEFAULT_SEED`](crate::replay::DEFAULT_SEED).
    pub seed: Option<u64>,
    /// `--out`.
    pub out: PathBuf,
}

impl Default for ReplayOpts {
    fn default() -> Self {
        ReplayOpts {
            trace: None,
            format: None,
            scenario: None,
            policies: ReplayPolicies::All,
            seed: None,
            out: PathBuf::from(DEFAULT_OUT),
        }
    }
}

/// Which routing policies the demo compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policies {
    /// Just this one.
    One(Policy),
    /// Every policy, one after another, on the same workload.
    All,
}

impl Policies {
    /// The policies to run, in order.
    pub fn list(self) -> Vec<Policy> {
        match self {
            Policies::One(p) => vec![p],
            Policies::All => Policy::ALL.to_vec(),
        }
    }
}

/// Options of `drover demo`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DemoOptions {
    /// Simulated nodes.
    pub nodes: usize,
    /// Calls.
    pub calls: usize,
    /// Mean arrivals per second.
    pub rate: f64,
    /// The seed of everything.
    pub seed: u64,
    /// Policies to run.
    pub policies: Policies,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            nodes: 4,
            calls: 1_000,
            rate: 3.0,
            seed: 42,
            policies: Policies::One(Policy::P2c),
        }
    }
}

/// A command line that cannot be run. The message names the argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub(crate) fn usage<T>(msg: String) -> Result<T, UsageError> {
    Err(UsageError(msg))
}

fn utf8(arg: OsString) -> Result<String, UsageError> {
    arg.into_string()
        .or_else(|bad| usage(format!("argument {bad:?} is not valid UTF-8")))
}

/// Parses the arguments after the program name.
pub fn parse<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return usage("missing command (try 'drover demo')".to_owned());
    };
    let first = utf8(first)?;
    let command = match first.as_str() {
        "-h" | "--help" | "help" => Command::Help,
        "-V" | "--version" => Command::Version,
        "serve" => return serve::parse(args),
        "demo" => return parse_demo(args),
        "replay" => return parse_replay(args),
        "check" => return parse_check(args),
        "discover" => return crate::discover::parse(args),
        other if other.starts_with('-') => return usage(format!("unknown option '{other}'")),
        other => return usage(format!("unknown command '{other}'")),
    };
    match args.next() {
        None => Ok(command),
        Some(extra) => usage(format!(
            "unexpected argument '{}' after '{first}'",
            extra.to_string_lossy()
        )),
    }
}

/// Reads one option of `command` from `arg` (and the next argument, unless
/// the value is inline): its name and value. `Ok(None)` for `-h`/`--help`.
pub(crate) fn option(
    arg: OsString,
    args: &mut impl Iterator<Item = OsString>,
    command: &str,
    known: &[&str],
) -> Result<Option<(String, String)>, UsageError> {
    let arg = utf8(arg)?;
    if arg == "-h" || arg == "--help" {
        return Ok(None);
    }
    if !arg.starts_with('-') {
        return usage(format!(
            "unexpected argument '{arg}' for 'drover {command}'"
        ));
    }
    let (name, inline) = match arg.split_once('=') {
        Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
        None => (arg.clone(), None),
    };
    if !known.contains(&name.as_str()) {
        return usage(format!("unknown option '{name}' for 'drover {command}'"));
    }
    let value = match inline {
        Some(v) => v,
        None => match args.next() {
            Some(v) => utf8(v)?,
            None => return usage(format!("option '{name}' needs a value")),
        },
    };
    Ok(Some((name, value)))
}

fn parse_demo(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut nodes = None;
    let mut calls = None;
    let mut rate = None;
    let mut seed = None;
    let mut policies = None;
    let known = ["--nodes", "--calls", "--rate", "--seed", "--policy"];
    while let Some(arg) = args.next() {
        let Some((name, value)) = option(arg, &mut args, "demo", &known)? else {
            return Ok(Command::DemoHelp);
        };
        let twice = || usage(format!("option '{name}' is given twice"));
        match name.as_str() {
            "--nodes" if nodes.is_some() => return twice(),
            "--nodes" => nodes = Some(whole(&name, &value, 1, MAX_NODES)?),
            "--calls" if calls.is_some() => return twice(),
            "--calls" => calls = Some(whole(&name, &value, 1, MAX_CALLS)?),
            "--rate" if rate.is_some() => return twice(),
            "--rate" => rate = Some(per_sec(&name, &value)?),
            "--seed" if seed.is_some() => return twice(),
            "--seed" => seed = Some(seed_value(&name, &value)?),
            "--policy" if policies.is_some() => return twice(),
            _ => policies = Some(policy(&name, &value)?),
        }
    }
    let d = DemoOptions::default();
    let nodes = nodes.unwrap_or(d.nodes);
    Ok(Command::Demo(DemoOptions {
        nodes,
        calls: calls.unwrap_or(d.calls),
        rate: rate.unwrap_or(0.75 * nodes as f64),
        seed: seed.unwrap_or(d.seed),
        policies: policies.unwrap_or(d.policies),
    }))
}

fn parse_replay(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut opts = ReplayOpts::default();
    let mut given: Vec<String> = Vec::new();
    let known = [
        "--trace",
        "--format",
        "--scenario",
        "--policy",
        "--seed",
        "--out",
    ];
    while let Some(arg) = args.next() {
        let Some((name, value)) = option(arg, &mut args, "replay", &known)? else {
            return Ok(Command::ReplayHelp);
        };
        if given.contains(&name) {
            return usage(format!("option '{name}' is given twice"));
        }
        match name.as_str() {
            "--trace" => opts.trace = Some(path(&name, &value, "a trace file")?),
            "--format" => opts.format = Some(trace_format(&name, &value)?),
            "--scenario" => opts.scenario = Some(path(&name, &value, "a scenario file")?),
            "--policy" => opts.policies = replay_policy(&name, &value)?,
            "--seed" => opts.seed = Some(seed_value(&name, &value)?),
            _ => opts.out = path(&name, &value, "a folder")?,
        }
        given.push(name);
    }
    Ok(Command::Replay(opts))
}

fn parse_check(args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut file = None;
    for arg in args {
        let arg = utf8(arg)?;
        if arg == "-h" || arg == "--help" {
            return Ok(Command::CheckHelp);
        }
        if arg.starts_with('-') && arg != "-" {
            return usage(format!("unknown option '{arg}' for 'drover check'"));
        }
        if file.is_some() {
            return usage(format!("unexpected argument '{arg}' for 'drover check'"));
        }
        file = Some(path("FILE", &arg, "a config file")?);
    }
    match file {
        Some(f) => Ok(Command::Check(f)),
        None => usage("missing FILE for 'drover check' (try 'drover check --help')".to_owned()),
    }
}

pub(crate) fn path(name: &str, value: &str, what: &str) -> Result<PathBuf, UsageError> {
    if value.is_empty() {
        usage(format!("invalid value '' for '{name}': expected {what}"))
    } else {
        Ok(PathBuf::from(value))
    }
}

fn trace_format(name: &str, value: &str) -> Result<TraceFormat, UsageError> {
    value.parse().or_else(|_| {
        usage(format!(
            "invalid value '{value}' for '{name}': expected azure or mooncake"
        ))
    })
}

fn replay_policy(name: &str, value: &str) -> Result<ReplayPolicies, UsageError> {
    if value == "all" {
        return Ok(ReplayPolicies::All);
    }
    value
        .parse()
        .map(ReplayPolicies::One)
        .or_else(|e| usage(format!("invalid value '{value}' for '{name}': {e}")))
}

fn whole(name: &str, value: &str, lo: usize, hi: usize) -> Result<usize, UsageError> {
    match value.parse::<usize>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => usage(format!(
            "invalid value '{value}' for '{name}': expected a whole number from {lo} to {hi}"
        )),
    }
}

fn per_sec(name: &str, value: &str) -> Result<f64, UsageError> {
    match value.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= MAX_RATE => Ok(r),
        _ => usage(format!(
            "invalid value '{value}' for '{name}': expected calls per second above 0 and at most {MAX_RATE}"
        )),
    }
}

fn seed_value(name: &str, value: &str) -> Result<u64, UsageError> {
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse::<u64>(),
    };
    parsed.or_else(|_| {
        usage(format!(
            "invalid value '{value}' for '{name}': expected an unsigned 64-bit number (decimal or 0x-hex)"
        ))
    })
}

fn policy(name: &str, value: &str) -> Result<Policies, UsageError> {
    if value == "all" {
        return Ok(Policies::All);
    }
    match Policy::from_name(value) {
        Some(p) => Ok(Policies::One(p)),
        None => {
            let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
            usage(format!(
                "invalid value '{value}' for '{name}': expected one of {}, all",
                names.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn demo(args: &[&str]) -> DemoOptions {
        let mut all = vec!["demo"];
        all.extend_from_slice(args);
        match p(&all) {
            Ok(Command::Demo(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        p(args).unwrap_err().0
    }

    #[test]
    fn top_level_commands() {
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["-h"]), Ok(Command::Help));
        assert_eq!(p(&["help"]), Ok(Command::Help));
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&["-V"]), Ok(Command::Version));
        assert_eq!(p(&["demo", "--help"]), Ok(Command::DemoHelp));
        assert_eq!(p(&["demo", "--calls", "5", "-h"]), Ok(Command::DemoHelp));
    }

    #[test]
    fn demo_defaults_and_values() {
        assert_eq!(demo(&[]), DemoOptions::default());
        let o = demo(&[
            "--nodes",
            "8",
            "--calls=50",
            "--rate",
            "2.5",
            "--seed",
            "0xff",
            "--policy",
            "all",
        ]);
        assert_eq!(
            o,
            DemoOptions {
                nodes: 8,
                calls: 50,
                rate: 2.5,
                seed: 255,
                policies: Policies::All,
            }
        );
        // The default rate follows the node count.
        assert_eq!(demo(&["--nodes", "8"]).rate, 6.0);
        assert_eq!(demo(&["--nodes=1", "--rate=9"]).rate, 9.0);
        assert_eq!(demo(&["--seed", "18446744073709551615"]).seed, u64::MAX);
        for policy in Policy::ALL {
            let o = demo(&["--policy", policy.name()]);
            assert_eq!(o.policies, Policies::One(policy));
            assert_eq!(o.policies.list(), vec![policy]);
        }
        assert_eq!(Policies::All.list().len(), Policy::ALL.len());
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        assert!(err(&[]).contains("missing command"));
        assert_eq!(err(&["bogus"]), "unknown command 'bogus'");
        assert_eq!(err(&["--verbose"]), "unknown option '--verbose'");
        assert_eq!(
            err(&["--version", "x"]),
            "unexpected argument 'x' after '--version'"
        );
        assert_eq!(err(&["demo", "--nodes"]), "option '--nodes' needs a value");
        assert_eq!(
            err(&["demo", "--nodes", "0"]),
            "invalid value '0' for '--nodes': expected a whole number from 1 to 64"
        );
        assert!(err(&["demo", "--nodes", "65"]).contains("'65' for '--nodes'"));
        assert!(err(&["demo", "--nodes", "-3"]).contains("'-3' for '--nodes'"));
        assert!(err(&["demo", "--calls=abc"]).contains("'abc' for '--calls'"));
        assert!(err(&["demo", "--calls", "1000001"]).contains("'--calls'"));
        for bad in ["0", "-1", "nan", "inf", "10001", "fast"] {
            let e = err(&["demo", "--rate", bad]);
            assert!(e.contains(&format!("'{bad}' for '--rate'")), "{e}");
        }
        assert!(err(&["demo", "--seed", "0xzz"]).contains("'0xzz' for '--seed'"));
        assert!(err(&["demo", "--seed", "-1"]).contains("'--seed'"));
        let e = err(&["demo", "--policy", "fastest"]);
        assert!(e.contains("'fastest' for '--policy'"), "{e}");
        assert!(e.contains(
            "p2c, round_robin, random, least_loaded, weighted_random, least_in_flight, p2c_peak_ewma, all"
        ));
        assert_eq!(
            err(&["demo", "--colour", "red"]),
            "unknown option '--colour' for 'drover demo'"
        );
        assert_eq!(
            err(&["demo", "-x"]),
            "unknown option '-x' for 'drover demo'"
        );
        assert_eq!(
            err(&["demo", "extra"]),
            "unexpected argument 'extra' for 'drover demo'"
        );
        assert_eq!(
            err(&["demo", "--seed", "1", "--seed=2"]),
            "option '--seed' is given twice"
        );
    }

    fn replay(args: &[&str]) -> ReplayOpts {
        let mut all = vec!["replay"];
        all.extend_from_slice(args);
        match p(&all) {
            Ok(Command::Replay(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn replay_defaults_and_values() {
        assert_eq!(p(&["replay", "--help"]), Ok(Command::ReplayHelp));
        assert_eq!(p(&["replay", "--seed", "1", "-h"]), Ok(Command::ReplayHelp));
        let d = replay(&[]);
        assert_eq!(d, ReplayOpts::default());
        assert_eq!(d.policies, ReplayPolicies::All);
        assert_eq!(d.out, PathBuf::from("replay-out"));
        let o = replay(&[
            "--trace",
            "t.jsonl",
            "--format=mooncake",
            "--scenario",
            "scenarios/edge-cluster.toml",
            "--policy",
            "least_loaded+hedge+affinity",
            "--seed=0x10",
            "--out",
            "out dir",
        ]);
        assert_eq!(
            o,
            ReplayOpts {
                trace: Some(PathBuf::from("t.jsonl")),
                format: Some(TraceFormat::Mooncake),
                scenario: Some(PathBuf::from("scenarios/edge-cluster.toml")),
                policies: ReplayPolicies::One(PolicySpec {
                    policy: Policy::LeastLoaded,
                    affinity: true,
                    hedge: true,
                }),
                seed: Some(16),
                out: PathBuf::from("out dir"),
            }
        );
        assert_eq!(replay(&["--policy", "all"]).policies, ReplayPolicies::All);
        assert_eq!(
            replay(&["--format", "AZURE"]).format,
            Some(TraceFormat::Azure)
        );
        for policy in Policy::ALL {
            let o = replay(&["--policy", policy.name()]);
            assert_eq!(o.policies, ReplayPolicies::One(PolicySpec::from(policy)));
        }
    }

    #[test]
    fn bad_replay_arguments_name_the_argument() {
        assert_eq!(
            err(&["replay", "--trace"]),
            "option '--trace' needs a value"
        );
        assert_eq!(
            err(&["replay", "--trace="]),
            "invalid value '' for '--trace': expected a trace file"
        );
        assert_eq!(
            err(&["replay", "--format", "csv"]),
            "invalid value 'csv' for '--format': expected azure or mooncake"
        );
        assert_eq!(
            err(&["replay", "--policy", "fastest"]),
            "invalid value 'fastest' for '--policy': unknown policy 'fastest': expected one of \
             p2c, round_robin, random, least_loaded, weighted_random, least_in_flight, p2c_peak_ewma, \
             optionally followed by \
             +affinity and/or +hedge"
        );
        assert_eq!(
            err(&["replay", "--policy", "p2c+turbo"]),
            "invalid value 'p2c+turbo' for '--policy': unknown policy modifier '+turbo' in \
             'p2c+turbo': expected +affinity or +hedge"
        );
        assert_eq!(
            err(&["replay", "--policy", "p2c+hedge+hedge"]),
            "invalid value 'p2c+hedge+hedge' for '--policy': policy modifier '+hedge' is given \
             twice in 'p2c+hedge+hedge'"
        );
        assert!(err(&["replay", "--seed", "x"]).contains("'x' for '--seed'"));
        assert_eq!(
            err(&["replay", "--out", "a", "--out=b"]),
            "option '--out' is given twice"
        );
        assert_eq!(
            err(&["replay", "--nodes", "3"]),
            "unknown option '--nodes' for 'drover replay'"
        );
        assert_eq!(
            err(&["replay", "trace.csv"]),
            "unexpected argument 'trace.csv' for 'drover replay'"
        );
    }

    #[test]
    fn check_takes_one_file() {
        assert_eq!(
            p(&["check", "drover.toml"]),
            Ok(Command::Check(PathBuf::from("drover.toml")))
        );
        assert_eq!(p(&["check", "--help"]), Ok(Command::CheckHelp));
        assert_eq!(p(&["check", "x.toml", "-h"]), Ok(Command::CheckHelp));
        assert_eq!(
            err(&["check"]),
            "missing FILE for 'drover check' (try 'drover check --help')"
        );
        assert_eq!(
            err(&["check", "a.toml", "b.toml"]),
            "unexpected argument 'b.toml' for 'drover check'"
        );
        assert_eq!(
            err(&["check", "--strict", "a.toml"]),
            "unknown option '--strict' for 'drover check'"
        );
        assert_eq!(
            err(&["check", ""]),
            "invalid value '' for 'FILE': expected a config file"
        );
        assert!(USAGE.contains("check"));
        assert!(CHECK_USAGE.contains("FILE:LINE: field `x`: reason"));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_arguments_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'd', 0xff]);
        let e = parse([OsString::from("demo"), OsString::from("--seed"), bad]).unwrap_err();
        assert!(e.0.contains("not valid UTF-8"), "{e}");
    }
}
