//! Simulator speed, medians of several runs in this process:
//!
//! 1. **Trace replay**: the whole Azure conversation trace (19,366 calls)
//!    on the home-lab scenario, once per policy, timed per policy
//!    (workload building, i.e. trace parsing, included). Target: under 1 s
//!    per policy.
//! 2. **Synthetic throughput**: a seeded Poisson run of 1,000,000 calls
//!    (50 % streams, 30 % chat, 20 % embeddings, 0.1 % of attempts failing
//!    over) on 16 fast nodes behind one gateway; simulated calls per second
//!    of wall time on one core, generation not timed. Target: 2,000,000/s.
//!
//! `cargo bench -p drover-benches --bench simulator` (add `-- --quick` for
//! one run of each and 200,000 synthetic calls).

use std::path::PathBuf;
use std::time::Instant as Wall;

use drover::cli::ReplayOpts;
use drover::replay::{prepare, simulate};
use drover_core::Duration;
use drover_core::admission::PoolLimits;
use drover_core::config::RouterConfig;
use drover_transports::sim::{Driver, SimNode, WorkloadSpec};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn azure() -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let p = here.join("../../shared/traces/azure-llm-2023-conv.csv");
    p.exists().then_some(p)
}

fn replay(runs: usize) {
    let Some(trace) = azure() else {
        println!(
            "trace replay: skipped, ../shared/traces/azure-llm-2023-conv.csv is not beside the checkout"
        );
        return;
    };
    let opts = ReplayOpts {
        trace: Some(trace),
        ..ReplayOpts::default()
    };
    let mut plan = prepare(&opts).expect("the built-in home lab and the shipped trace make a plan");
    // The whole trace, not the scenario's 10-minute window.
    plan.scenario.workload.duration = None;
    plan.scenario.workload.start = Duration::ZERO;
    plan.scenario.workload.max_calls = None;
    println!(
        "trace replay: whole Azure conversation trace on the home lab, per policy (median of {runs})"
    );
    println!(
        "{:<22} {:>8} {:>10} {:>12}",
        "policy", "calls", "seconds", "calls/s"
    );
    let specs = plan.policies.clone();
    for spec in specs {
        plan.policies = vec![spec];
        let mut times = Vec::new();
        let mut calls = 0;
        for _ in 0..runs {
            let t0 = Wall::now();
            let out = simulate(&plan).expect("the home lab replays the trace");
            times.push(t0.elapsed().as_secs_f64());
            calls = out[0].1.calls;
            assert_eq!(out[0].1.lost, 0, "a call was lost");
        }
        let s = median(times);
        println!(
            "{:<22} {:>8} {:>10.3} {:>12.0}",
            spec.to_string(),
            calls,
            s,
            calls as f64 / s
        );
    }
}

fn synthetic(calls: usize, runs: usize) {
    let nodes: Vec<SimNode> = (0..16)
        .map(|i| {
            SimNode::new(&format!("gpu-{i}"), 32)
                .prefill(Duration::from_millis(20), Duration::from_micros(20))
                .decode(1_000.0)
                .failure_rate(0.001)
        })
        .collect();
    let cfg = RouterConfig {
        pools: PoolLimits::uniform(2_048),
        ..RouterConfig::default()
    };
    let workload = WorkloadSpec::default()
        .calls(calls)
        .rate(2_000.0)
        .generate(1)
        .expect("valid spec");
    let mut rates = Vec::new();
    for _ in 0..runs {
        let mut driver = Driver::new(cfg, nodes.clone(), 1).expect("valid swarm");
        let w = workload.clone();
        let t0 = Wall::now();
        driver.load_owned(w);
        driver.run_until_idle().expect("no invariant is violated");
        let s = t0.elapsed().as_secs_f64();
        let report = driver.report();
        assert_eq!(report.lost, 0, "a call was lost");
        rates.push(calls as f64 / s);
    }
    println!(
        "\nsynthetic: {calls} calls on 16 nodes, median of {runs}: {:.0} simulated calls/s (min {:.0}, max {:.0})",
        median(rates.clone()),
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(0.0, f64::max)
    );
}

fn main() {
    // `cargo test --benches` passes no `--bench`: do one tiny run then.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick") || !bench;
    if quick {
        replay(1);
        synthetic(200_000, 1);
    } else {
        replay(5);
        synthetic(1_000_000, 5);
    }
}
