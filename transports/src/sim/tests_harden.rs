//! Hardening runs: active probes find a crashed node without any call
//! traffic to it, the retry budget caps failovers in a crash, and long
//! seeded runs with every kind of fault lose no call and finish each one
//! within its deadline.
//!
//! The long run (1,000,000 calls per seed) is `#[ignore]`d; run it with
//!
//! ```text
//! DROVER_SOAK_SEEDS=1-20 cargo test --release -p drover-transports \
//!     --features sim --lib sim::tests_harden::million -- --ignored --nocapture
//! ```
//!
//! (`DROVER_SOAK_SEEDS` is a list such as `1,2,3` or a range `1-20`;
//! `DROVER_SOAK_CALLS` changes the call count). CI runs the same soak with
//! fewer calls on a few seeds.

use std::time::Instant as WallClock;

use drover_core::breaker::BreakerState;
use drover_core::config::RouterConfig;
use drover_core::node::Capabilities;
use drover_core::{Duration, Instant};

use super::*;

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn probing() -> RouterConfig {
    let mut cfg = RouterConfig::default();
    cfg.probe.enabled = true;
    cfg.probe.health_interval = Duration::from_secs(1);
    cfg.probe.inventory_interval = Duration::from_secs(5);
    cfg.probe.timeout = Duration::from_millis(500);
    cfg.breaker.failure_threshold = 2;
    cfg
}

/// Chat calls only, at `rate` per second for `calls` calls.
fn chat_only(calls: usize, rate: f64, seed: u64) -> Vec<Arrival> {
    let mut spec = WorkloadSpec::default().calls(calls).rate(rate);
    spec.mix = OpMix {
        stream: 0,
        chat: 1,
        embed: 0,
    };
    spec.generate(seed).unwrap()
}

/// `emb` serves embeddings only, so chat calls never reach it: whatever its
/// router learns about it comes from probes.
fn probed_crash(mode: CrashMode, seed: u64) -> Driver {
    let mut emb = SimNode::new("emb", 4);
    emb.capabilities = Capabilities::EMBED;
    let nodes = vec![SimNode::new("chat", 8), emb];
    let crash = Fault::new(1, FaultKind::Crash(mode), secs(10)).until(secs(30));
    let mut d = SimSetup::new(probing(), nodes, seed)
        .fault(crash)
        .build()
        .unwrap();
    d.load(&chat_only(200, 2.0, seed));
    d
}

#[test]
fn probes_find_a_crashed_node_and_its_recovery_without_call_traffic() {
    for (mode, seed) in [(CrashMode::Refuse, 41), (CrashMode::Hang, 42)] {
        let mut d = probed_crash(mode, seed);
        let emb = d.node_id("emb").unwrap();
        d.run_until(secs(9)).unwrap();
        let r = d.router();
        assert_eq!(
            r.node(emb).unwrap().breaker.state(secs(9)),
            BreakerState::Closed
        );
        assert!(
            r.metrics().probes.sent[0] >= 8,
            "{mode:?}: about one a second"
        );
        assert_eq!(r.metrics().probes.failed, [0, 0], "{mode:?}");
        // Down from 10 s: two failed health probes (threshold 2) eject it.
        d.run_until(secs(15)).unwrap();
        let r = d.router();
        assert!(
            matches!(
                r.node(emb).unwrap().breaker.state(secs(15)),
                BreakerState::Open { .. } | BreakerState::HalfOpen
            ),
            "{mode:?}: {:?}",
            r.node(emb).unwrap().breaker
        );
        assert!(r.metrics().probes.failed[0] >= 2, "{mode:?}");
        assert!(r.metrics().node(emb).unwrap().breaker_opens >= 1);
        // Up again from 30 s: the next half-open probe closes it (the
        // cooldown grew with each failed trial: 1, 2, 4, 8, 16 s, jittered).
        d.run_until(secs(80)).unwrap();
        let r = d.router();
        assert_eq!(
            r.node(emb).unwrap().breaker.state(secs(80)),
            BreakerState::Closed,
            "{mode:?}: recovered"
        );
        let report = d.try_run(&[][..]).unwrap();
        assert_eq!(report.lost, 0, "{mode:?}");
        assert_eq!(report.calls, 200);
        let node = report.node("emb").unwrap();
        assert_eq!(node.attempts, 0, "{mode:?}: no call went to it");
        assert_eq!(d.router().metrics().node(emb).unwrap().attempts, 0);
    }
}

#[test]
fn probed_runs_are_deterministic_and_probes_off_change_nothing() {
    let run = |seed| {
        let mut d = probed_crash(CrashMode::Refuse, seed);
        let r = d.try_run(&[][..]).unwrap();
        (format!("{r}"), d.router().metrics().probes.clone())
    };
    assert_eq!(run(43), run(43));
    assert_ne!(run(43).1, run(44).1, "another seed, other jitter");
    // Probes off: no probe at all.
    let nodes = vec![SimNode::new("chat", 8), SimNode::new("emb", 4)];
    let mut d = Driver::new(RouterConfig::default(), nodes, 43).unwrap();
    let _ = d.run(&chat_only(50, 2.0, 43));
    assert_eq!(d.router().metrics().probes.sent, [0, 0]);
}

#[test]
fn retry_budget_caps_failovers_when_nodes_crash() {
    let seed = 45;
    let nodes = ["a", "b", "c", "d"]
        .map(|n| SimNode::new(n, 8).failure_rate(0.5))
        .to_vec();
    let crash = FaultKind::Crash(CrashMode::Refuse);
    let mut d = SimSetup::new(RouterConfig::default(), nodes, seed)
        .faults((0..4).map(|n| Fault::new(n, crash, secs(20 + 10 * n as u64)).until(secs(90))))
        .build()
        .unwrap();
    let calls = 600;
    let r = d.run(&chat_only(calls, 5.0, seed));
    assert_eq!(r.lost, 0);
    let budget = RouterConfig::default().retry_budget;
    let extra = r.failovers + r.hedges;
    let bound = (calls as f64 * budget.ratio) as u64 + u64::from(budget.burst);
    assert!(extra <= bound, "{extra} extra attempts, bound {bound}\n{r}");
    assert!(
        d.router().metrics().retries_denied > 0,
        "the budget bit\n{r}"
    );
}

/// A run with every kind of fault, probes and hedges on, two gateways, and
/// some clients that give up: returns the report after checking that no call
/// was lost, none outlived its deadline, and nothing leaked.
fn soak(seed: u64, calls: usize) -> Report {
    let mut cfg = RouterConfig::default();
    cfg.probe.enabled = true;
    cfg.hedge.enabled = true;
    cfg.call_timeout = Duration::from_secs(60);
    cfg.attempt_timeout = Duration::from_secs(30);
    cfg.ttft_timeout = Duration::from_secs(10);
    let nodes: Vec<SimNode> = (0..8)
        .map(|i| {
            SimNode::new(&format!("n{i}"), 8)
                .heartbeat(Duration::from_secs(2))
                .failure_rate(if i == 0 { 0.2 } else { 0.01 })
        })
        .collect();
    let rate = 8.0;
    let horizon = secs((calls as f64 / rate) as u64 + 60);
    let hour = |per_hour, s| FaultRate {
        kind: FaultKind::Crash(CrashMode::Refuse),
        per_hour,
        lasting: Duration::from_secs(s),
    };
    let rates = [
        hour(2.0, 30),
        FaultRate {
            kind: FaultKind::Crash(CrashMode::Hang),
            ..hour(1.0, 20)
        },
        FaultRate {
            kind: FaultKind::Corrupt { rate: 0.3 },
            ..hour(1.0, 60)
        },
        FaultRate {
            kind: FaultKind::Slow { factor: 4.0 },
            ..hour(1.0, 120)
        },
        FaultRate {
            kind: FaultKind::Overload {
                queue_limit: 2,
                retry_after: Some(Duration::from_secs(1)),
            },
            ..hour(1.0, 60)
        },
        FaultRate {
            kind: FaultKind::StaleHeartbeat,
            ..hour(1.0, 30)
        },
        FaultRate {
            kind: FaultKind::Flap {
                down: Duration::from_secs(3),
                up: Duration::from_secs(5),
            },
            ..hour(0.5, 60)
        },
    ];
    let faults = draw_faults(&rates, nodes.len(), secs(1), horizon, seed).unwrap();
    let mut d = SimSetup::new(cfg, nodes, seed)
        .gateways(2, Assign::RoundRobin)
        .faults(faults)
        .build()
        .unwrap();
    let mut w = WorkloadSpec::default()
        .calls(calls)
        .rate(rate)
        .generate(seed)
        .unwrap();
    for a in w.iter_mut().step_by(97) {
        a.cancel_after = Some(Duration::from_secs(3));
    }
    let r = match d.try_run(&w) {
        Ok(r) => r,
        Err(v) => panic!("seed {seed}: {v}"),
    };
    assert_eq!(r.calls, calls as u64, "seed {seed}");
    assert_eq!(r.lost, 0, "seed {seed}\n{r}");
    assert!(!r.stalled, "seed {seed}\n{r}");
    let ended = r.succeeded + r.failed_total() + r.rejected_total() + r.cancelled;
    assert_eq!(ended, r.calls, "seed {seed}\n{r}");
    assert_eq!(d.open_attempts(), 0, "seed {seed}");
    for g in 0..d.gateway_count() {
        let router = d.gateway_router(g).unwrap();
        assert_eq!(router.active_calls(), 0, "seed {seed}");
        assert_eq!(router.permits_outstanding(), 0, "seed {seed}");
        assert_eq!(router.retries_in_flight(), 0, "seed {seed}");
        assert!(router.metrics().probes.sent[0] > 0, "seed {seed}");
    }
    for (i, (a, out)) in d.outcomes().enumerate() {
        let (end, _) = out.unwrap_or_else(|| panic!("seed {seed}: call {i} has no outcome"));
        assert!(
            end - a.at <= cfg.call_timeout,
            "seed {seed}: call {i} ended {:?} after it came",
            end - a.at
        );
    }
    r
}

#[test]
fn soak_with_faults_loses_no_call_on_a_few_seeds() {
    // CI-sized: a few seeds; the 1M-call version is `million` below.
    for seed in [1, 2, 3] {
        let r = soak(seed, 50_000);
        assert!(r.succeeded > r.calls / 2, "seed {seed}\n{r}");
    }
}

fn soak_seeds() -> Vec<u64> {
    let spec = std::env::var("DROVER_SOAK_SEEDS").unwrap_or_else(|_| "1,2,3".into());
    if let Some((a, b)) = spec.split_once('-') {
        let (a, b): (u64, u64) = (a.trim().parse().unwrap(), b.trim().parse().unwrap());
        return (a..=b).collect();
    }
    spec.split(',').map(|s| s.trim().parse().unwrap()).collect()
}

#[test]
#[ignore = "long: 1,000,000 calls per seed (seconds per seed in release, far longer in debug); see the module docs"]
fn million() {
    let calls = std::env::var("DROVER_SOAK_CALLS").map_or(1_000_000, |s| s.parse().unwrap());
    for seed in soak_seeds() {
        let t = WallClock::now();
        let r = soak(seed, calls);
        println!(
            "seed {seed}: {calls} calls, lost {}, ok {}, failed {}, rejected {}, cancelled {} in {:.1?}",
            r.lost,
            r.succeeded,
            r.failed_total(),
            r.rejected_total(),
            r.cancelled,
            t.elapsed()
        );
    }
}
