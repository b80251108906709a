//! Simulated calls per second of wall time on one core, for a synthetic run.
//!
//! `cargo run --release -p drover-transports --features sim --example sim_throughput [calls] [nodes]`
//!
//! A swarm of fast nodes (default 16; 512 slots in all) behind one gateway
//! takes a seeded Poisson workload (default 1,000,000 calls at 2,000/s:
//! 50 % streams, 30 % chat, 20 % embeddings; 0.1 % of attempts fail and
//! fail over). Generating the workload is not timed; the run, and the run
//! plus its report, are.

use std::time::Instant as Wall;

use drover_core::Duration;
use drover_core::admission::PoolLimits;
use drover_core::config::RouterConfig;
use drover_transports::sim::{Driver, SimNode, WorkloadSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => 1_000_000,
    };
    let count: u16 = match std::env::args().nth(2) {
        Some(s) => s.parse()?,
        None => 16,
    };
    let nodes: Vec<SimNode> = (0..count)
        .map(|i| {
            SimNode::new(&format!("gpu-{i}"), 512 / count.max(1))
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
        .generate(1)?;
    let mut driver = Driver::new(cfg, nodes, 1)?;
    let t0 = Wall::now();
    driver.load_owned(workload);
    driver.run_until_idle()?;
    let ran = t0.elapsed();
    let report = driver.report();
    let total = t0.elapsed();
    println!("{report}");
    let per_sec = |d: std::time::Duration| calls as f64 / d.as_secs_f64();
    println!(
        "{calls} calls, {} events: run {:.3} s ({:.0} calls/s), with report {:.3} s ({:.0} calls/s)",
        driver.events(),
        ran.as_secs_f64(),
        per_sec(ran),
        total.as_secs_f64(),
        per_sec(total)
    );
    Ok(())
}
