//! The command line: a small hand-rolled parser over `std::env::args_os`
//! (no parser crate, to keep the binary small).
//!
//! Options take their value as `--name VALUE` or `--name=VALUE`. Every error
//! names the argument at fault; the binary prints it and exits with status 2.

use std::ffi::OsString;
use std::fmt;

use drover_core::config::Policy;
use drover_transports::sim::MAX_NODES;

/// `drover --help`.
pub const USAGE: &str = "\
drover: routes LLM inference calls (chat, streaming chat, embeddings) across
a swarm of model servers (Ollama, vLLM, llama.cpp, LM Studio).

Usage: drover <COMMAND> [OPTIONS]

Commands:
  demo        Run a simulated swarm through the router and report (no model
              server needed; see 'drover demo --help')
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
                       weighted_random, or all [default: p2c]
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

fn usage<T>(msg: String) -> Result<T, UsageError> {
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
        "demo" => return parse_demo(args),
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

fn parse_demo(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut nodes = None;
    let mut calls = None;
    let mut rate = None;
    let mut seed = None;
    let mut policies = None;
    while let Some(arg) = args.next() {
        let arg = utf8(arg)?;
        if arg == "-h" || arg == "--help" {
            return Ok(Command::DemoHelp);
        }
        if !arg.starts_with('-') {
            return usage(format!("unexpected argument '{arg}' for 'drover demo'"));
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let known = ["--nodes", "--calls", "--rate", "--seed", "--policy"];
        if !known.contains(&name.as_str()) {
            return usage(format!("unknown option '{name}' for 'drover demo'"));
        }
        let value = match inline {
            Some(v) => v,
            None => match args.next() {
                Some(v) => utf8(v)?,
                None => return usage(format!("option '{name}' needs a value")),
            },
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
        assert_eq!(Policies::All.list().len(), 5);
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        assert!(err(&[]).contains("missing command"));
        assert_eq!(err(&["serve"]), "unknown command 'serve'");
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
        assert!(e.contains("p2c, round_robin, random, least_loaded, weighted_random, all"));
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

    #[cfg(unix)]
    #[test]
    fn non_utf8_arguments_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'd', 0xff]);
        let e = parse([OsString::from("demo"), OsString::from("--seed"), bad]).unwrap_err();
        assert!(e.0.contains("not valid UTF-8"), "{e}");
    }
}
