//! `drover demo`: a small heterogeneous swarm of SIMULATED nodes, a seeded
//! Poisson workload, one simulator run per routing policy, and a report.
//!
//! The swarm cycles through four kinds of node, so the default four nodes
//! are one of each and larger swarms keep the same mix:
//!
//! | kind  | slots, weight | prefill               | decode   | faults                                  |
//! |-------|---------------|-----------------------|----------|-----------------------------------------|
//! | gpu   | 8, 8          | 60 ms + 0.1 ms/token  | 70 tok/s | none                                    |
//! | cpu   | 2, 2          | 250 ms + 1.2 ms/token | 15 tok/s | 429 (Retry-After 1 s) once 1 waits     |
//! | flaky | 4, 4          | 120 ms + 0.4 ms/token | 35 tok/s | 3 % 5xx; down from 30 % to 55 % of the run |
//!
//! The router is told `maxConcurrency = 2 × slots`, so requests also queue
//! inside the nodes, as they do on a real Ollama or vLLM server.
//!
//! Every policy sees the same workload and the same seed.

use std::fmt::{self, Write};

use drover_core::config::{Policy, RouterConfig};
use drover_core::{Duration, Instant};
use drover_transports::sim::{
    Arrival, BadWorkload, Driver, Report, SimError, SimNode, WorkloadSpec, show,
};

use crate::cli::DemoOptions;

/// The kinds of simulated node, in the order the swarm cycles through them.
const PATTERN: [Kind; 4] = [Kind::Gpu, Kind::Cpu, Kind::Cpu, Kind::Flaky];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Gpu,
    Cpu,
    Flaky,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Gpu => "gpu",
            Kind::Cpu => "cpu",
            Kind::Flaky => "flaky",
        }
    }

    /// The node, given the span of the workload (for the crash window).
    fn node(self, name: &str, span: Duration) -> SimNode {
        match self {
            Kind::Gpu => SimNode::new(name, 8)
                .weight(8)
                .prefill(Duration::from_millis(60), Duration::from_micros(100))
                .decode(70.0)
                .jitter(0.15),
            Kind::Cpu => SimNode::new(name, 2)
                .weight(2)
                .prefill(Duration::from_millis(250), Duration::from_micros(1_200))
                .decode(15.0)
                .jitter(0.25)
                .overload(1, Some(Duration::from_secs(1))),
            Kind::Flaky => {
                let from = Instant::ZERO + fraction(span, 0.30);
                let until =
                    (Instant::ZERO + fraction(span, 0.55)).max(from + Duration::from_millis(1));
                SimNode::new(name, 4)
                    .weight(4)
                    .prefill(Duration::from_millis(120), Duration::from_micros(400))
                    .decode(35.0)
                    .failure_rate(0.03)
                    .crash(from, until)
            }
        }
    }
}

fn fraction(d: Duration, f: f64) -> Duration {
    Duration::from_nanos((d.as_nanos() as f64 * f) as u64)
}

/// The demo swarm of `n` nodes for a workload spanning `span`.
pub fn swarm(n: usize, span: Duration) -> Vec<SimNode> {
    let mut counts = [0usize; 3];
    (0..n)
        .map(|i| {
            let kind = PATTERN[i % PATTERN.len()];
            let k = kind as usize;
            counts[k] += 1;
            kind.node(&format!("{}-{}", kind.label(), counts[k]), span)
        })
        .collect()
}

/// The workload spec the options describe.
pub fn spec(opts: &DemoOptions) -> WorkloadSpec {
    WorkloadSpec::default().calls(opts.calls).rate(opts.rate)
}

/// Why the demo could not run (a bug if the options were parsed by
/// [`crate::cli::parse`], which checks every range).
#[derive(Clone, Debug, PartialEq)]
pub enum DemoError {
    /// The workload could not be generated.
    Workload(BadWorkload),
    /// The simulator refused the setup.
    Sim(SimError),
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::Workload(e) => e.fmt(f),
            DemoError::Sim(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DemoError {}

/// One policy's run.
pub struct PolicyRun {
    /// The policy.
    pub policy: Policy,
    /// What happened.
    pub report: Report,
}

/// Runs the demo: one simulation per requested policy on the same workload.
pub fn simulate(opts: &DemoOptions) -> Result<(Vec<SimNode>, Vec<PolicyRun>), DemoError> {
    let spec = spec(opts);
    let workload: Vec<Arrival> = spec.generate(opts.seed).map_err(DemoError::Workload)?;
    let nodes = swarm(opts.nodes, spec.expected_span());
    let mut runs = Vec::new();
    for policy in opts.policies.list() {
        let cfg = RouterConfig {
            policy,
            ..RouterConfig::default()
        };
        let mut driver = Driver::new(cfg, nodes.clone(), opts.seed).map_err(DemoError::Sim)?;
        let report = driver.run(&workload);
        runs.push(PolicyRun { policy, report });
    }
    Ok((nodes, runs))
}

/// Runs the demo and renders its output.
pub fn run(opts: &DemoOptions) -> Result<String, DemoError> {
    let (nodes, runs) = simulate(opts)?;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = render(&mut out, opts, &nodes, &runs);
    Ok(out)
}

fn render(
    out: &mut String,
    opts: &DemoOptions,
    nodes: &[SimNode],
    runs: &[PolicyRun],
) -> fmt::Result {
    writeln!(
        out,
        "drover demo: {} SIMULATED nodes on a virtual clock (no model server is contacted)",
        nodes.len()
    )?;
    let w = nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
    for n in nodes {
        writeln!(out, "  {:<w$}  {}", n.name, describe(n))?;
    }
    let mix = WorkloadSpec::default().mix;
    writeln!(
        out,
        "workload: {} calls, Poisson at {}/s ({}% stream, {}% chat, {}% embed), seed {}",
        opts.calls, opts.rate, mix.stream, mix.chat, mix.embed, opts.seed
    )?;
    writeln!(
        out,
        "per node: ok = calls it answered, 5xx = errors it returned, refused = attempts \
         while down,\n          dropped = requests lost in its crash, 429 = overload replies"
    )?;
    for r in runs {
        writeln!(out)?;
        writeln!(out, "== policy {} (SIMULATED) ==", r.policy.name())?;
        write!(out, "{}", r.report)?;
    }
    if runs.len() > 1 {
        writeln!(out)?;
        comparison(out, runs)?;
    }
    Ok(())
}

/// One line per node kind's parameters.
fn describe(n: &SimNode) -> String {
    let mut s = format!(
        "slots {}  weight {}  prefill {} + {}/token  decode {} tok/s",
        n.slots, n.weight, n.prefill_base, n.prefill_per_token, n.decode_tokens_per_sec
    );
    if let Some(o) = n.overload {
        let _ = write!(s, "  429 when {} wait(s)", o.queue_limit);
    }
    if n.failure_rate > 0.0 {
        let _ = write!(s, "  {}% 5xx", n.failure_rate * 100.0);
    }
    if let Some(c) = n.crash {
        let from = Duration::from_nanos(c.from.as_nanos());
        let until = Duration::from_nanos(c.until.as_nanos());
        let _ = write!(s, "  down {from} to {until}");
    }
    s
}

/// A side-by-side table of every policy.
fn comparison(out: &mut String, runs: &[PolicyRun]) -> fmt::Result {
    writeln!(out, "== comparison (SIMULATED) ==")?;
    writeln!(
        out,
        "{:<15}  {:>6}  {:>6}  {:>8}  {:>4}  {:>8}  {:>8}  {:>8}  {:>8}  {:>9}",
        "policy",
        "ok",
        "failed",
        "rejected",
        "lost",
        "ttft p50",
        "ttft p99",
        "lat p50",
        "lat p99",
        "failovers"
    )?;
    for r in runs {
        let p = &r.report;
        writeln!(
            out,
            "{:<15}  {:>6}  {:>6}  {:>8}  {:>4}  {:>8}  {:>8}  {:>8}  {:>8}  {:>9}",
            r.policy.name(),
            p.succeeded,
            p.failed_total(),
            p.rejected_total(),
            p.lost,
            show(p.ttft_p50),
            show(p.ttft_p99),
            show(p.latency_p50),
            show(p.latency_p99),
            p.failovers
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Policies;

    fn opts(nodes: usize, calls: usize, policies: Policies) -> DemoOptions {
        DemoOptions {
            nodes,
            calls,
            rate: 0.75 * nodes as f64,
            seed: 42,
            policies,
        }
    }

    #[test]
    fn swarm_cycles_through_the_kinds() {
        let names: Vec<String> = swarm(6, Duration::from_secs(100))
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(
            names,
            ["gpu-1", "cpu-1", "cpu-2", "flaky-1", "gpu-2", "cpu-3"]
        );
        let s = swarm(4, Duration::from_secs(100));
        assert!(s.iter().all(|n| n.validate().is_ok()));
        let crash = s[3].crash.unwrap();
        assert_eq!(crash.from, Instant::from_secs(30));
        assert_eq!(crash.until, Instant::from_secs(55));
        assert!(s[..3].iter().all(|n| n.crash.is_none()));
        // Even a tiny span gives a valid crash window.
        assert!(swarm(4, Duration::ZERO)[3].validate().is_ok());
    }

    #[test]
    fn default_demo_routes_fails_over_and_loses_nothing() {
        let (_, runs) = simulate(&DemoOptions::default()).unwrap();
        assert_eq!(runs.len(), 1);
        let r = &runs[0].report;
        assert_eq!(r.lost, 0, "{r}");
        assert_eq!(r.calls, 1_000);
        assert!(r.succeeded > 950, "{r}");
        // The crash and the 5xx are routed around.
        assert!(r.failovers > 0, "{r}");
        let flaky = r.node("flaky-1").unwrap();
        assert!(flaky.refused > 0 && flaky.breaker_opens > 0, "{r}");
        // The fast box takes the largest share.
        let gpu = r.node("gpu-1").unwrap();
        assert!(r.nodes.iter().all(|n| n.ok <= gpu.ok), "{r}");
    }

    #[test]
    fn all_policies_share_one_workload_and_render_a_comparison() {
        let o = opts(4, 200, Policies::All);
        let out = run(&o).unwrap();
        assert_eq!(out, run(&o).unwrap(), "same seed, same output");
        for p in Policy::ALL {
            assert!(out.contains(&format!("== policy {} (SIMULATED) ==", p.name())));
        }
        assert!(out.contains("== comparison (SIMULATED) =="));
        assert_eq!(
            out.matches("calls 200 ").count(),
            Policy::ALL.len(),
            "{out}"
        );
        assert_eq!(out.matches("lost 0").count(), Policy::ALL.len(), "{out}");
        for n in ["gpu-1", "cpu-1", "cpu-2", "flaky-1"] {
            assert!(out.contains(n), "{n}");
        }
    }

    #[test]
    fn one_node_and_many_nodes_work() {
        let (_, runs) = simulate(&opts(1, 100, Policies::One(Policy::P2c))).unwrap();
        assert_eq!(runs[0].report.lost, 0);
        assert_eq!(runs[0].report.nodes.len(), 1);
        let (nodes, runs) = simulate(&opts(64, 300, Policies::One(Policy::LeastLoaded))).unwrap();
        assert_eq!(nodes.len(), 64);
        assert_eq!(runs[0].report.lost, 0);
    }

    #[test]
    fn bad_options_are_errors_not_panics() {
        let o = DemoOptions {
            rate: 0.0,
            ..DemoOptions::default()
        };
        assert!(matches!(run(&o), Err(DemoError::Workload(_))));
        let o = DemoOptions {
            nodes: 65,
            ..DemoOptions::default()
        };
        let e = run(&o).unwrap_err();
        assert!(matches!(e, DemoError::Sim(SimError::NodeCount(65))), "{e}");
    }
}
