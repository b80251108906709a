//! Scenario tests: whole runs on virtual time. Each failure message names the
//! seed; the same seed reproduces the run exactly.

use drover_core::breaker::BreakerState;
use drover_core::call::Outcome;
use drover_core::config::{Policy, RetryBudget, RouterConfig};
use drover_core::node::NodeError;
use drover_core::route::Op;
use drover_core::{Duration, Instant};

use super::*;

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

/// Runs `nodes` under `cfg` on a Poisson workload; checks that the run is
/// clean (every call ended, nothing leaked) and returns the driver and report.
fn run(cfg: RouterConfig, nodes: Vec<SimNode>, spec: WorkloadSpec, seed: u64) -> (Driver, Report) {
    let mut d = Driver::new(cfg, nodes, seed).unwrap();
    let workload = spec.generate(seed).unwrap();
    let r = d.run(&workload);
    check_clean(&d, &r, seed);
    (d, r)
}

/// Invariants of every run: no call lost, every outcome counted once, no
/// attempt, permit or queue entry left behind in the router or the nodes.
fn check_clean(d: &Driver, r: &Report, seed: u64) {
    assert_eq!(r.lost, 0, "seed {seed}: lost calls\n{r}");
    assert!(!r.stalled, "seed {seed}: stalled\n{r}");
    let ended = r.succeeded + r.failed_total() + r.rejected_total() + r.cancelled;
    assert_eq!(ended, r.calls, "seed {seed}: outcomes do not add up\n{r}");
    assert_eq!(d.open_attempts(), 0, "seed {seed}: attempts left on nodes");
    let router = d.router();
    assert_eq!(router.active_calls(), 0, "seed {seed}: active calls");
    assert_eq!(router.attempts_in_flight(), 0, "seed {seed}: in flight");
    assert_eq!(router.permits_outstanding(), 0, "seed {seed}: permits");
    assert_eq!(router.queue_depth(), 0, "seed {seed}: queued");
    let ok: u64 = r.nodes.iter().map(|n| n.ok).sum();
    assert_eq!(ok, r.succeeded, "seed {seed}: per-node ok");
}

fn swarm() -> Vec<SimNode> {
    vec![
        SimNode::new("gpu", 8)
            .prefill(Duration::from_millis(80), Duration::from_micros(150))
            .decode(80.0),
        SimNode::new("cpu-1", 2)
            .prefill(Duration::from_millis(300), Duration::from_millis(1))
            .decode(20.0)
            .overload(1, Some(Duration::from_millis(500))),
        SimNode::new("cpu-2", 2)
            .prefill(Duration::from_millis(300), Duration::from_millis(1))
            .decode(20.0),
        SimNode::new("flaky", 4)
            .decode(40.0)
            .failure_rate(0.05)
            .crash(secs(60), secs(110)),
    ]
}

#[test]
fn same_seed_gives_the_same_report_and_another_seed_does_not() {
    let spec = WorkloadSpec::default().calls(800).rate(4.0);
    let (_, a) = run(RouterConfig::default(), swarm(), spec, 11);
    let (_, b) = run(RouterConfig::default(), swarm(), spec, 11);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(a.to_string(), b.to_string());
    let (_, c) = run(RouterConfig::default(), swarm(), spec, 12);
    assert_ne!(format!("{a:?}"), format!("{c:?}"));
    // The run exercised faults, so determinism covers their paths too.
    let flaky = a.node("flaky").unwrap();
    assert!(flaky.refused > 0 && flaky.errors > 0, "{a}");
    assert!(a.failovers > 0, "{a}");
}

#[test]
fn crashed_node_gets_no_calls_while_down_and_calls_fail_over() {
    let seed = 5;
    // Three nodes of 4 slots at 2 calls/s: about 60 % busy.
    let spec = WorkloadSpec::default().calls(1_200).rate(2.0);
    let nodes = |crash: bool| {
        let flaky = SimNode::new("flaky", 4).decode(40.0);
        let flaky = if crash {
            flaky.crash(secs(100), secs(250))
        } else {
            flaky
        };
        vec![
            SimNode::new("a", 4).decode(40.0),
            SimNode::new("b", 4).decode(40.0),
            flaky,
        ]
    };
    let (_, base) = run(RouterConfig::default(), nodes(false), spec, seed);
    let (d, r) = run(RouterConfig::default(), nodes(true), spec, seed);
    let id = d.node_id("flaky").unwrap();
    let flaky = r.node("flaky").unwrap();
    let flaky_base = base.node("flaky").unwrap();

    // What it held at the crash was dropped; what came while down was refused.
    assert!(flaky.dropped > 0, "seed {seed}\n{r}");
    assert!(flaky.refused > 0, "seed {seed}\n{r}");
    assert!(flaky.breaker_opens >= 1, "seed {seed}\n{r}");
    // The breaker keeps calls away: about 300 calls arrive while it is
    // down; a third would be its share, yet only the attempts that opened
    // the breaker and a few half-open probes reach it (every attempt that
    // reaches a down node is refused, so `refused` counts them all).
    let threshold = u64::from(RouterConfig::default().breaker.failure_threshold);
    assert!(
        flaky.refused <= threshold + 10,
        "seed {seed}: {} attempts while down\n{r}",
        flaky.refused
    );
    // Failed attempts failed over: only streams already under way broke.
    assert!(r.failovers >= flaky.refused, "seed {seed}\n{r}");
    for label in r.failed.keys() {
        assert_eq!(*label, "broken_stream", "seed {seed}\n{r}");
    }
    assert!(r.failed_total() <= flaky.dropped, "seed {seed}\n{r}");
    // Its share drops, and it serves again after it recovers.
    assert!(
        flaky.share < flaky_base.share - 0.05,
        "seed {seed}: share {} vs {} without the crash",
        flaky.share,
        flaky_base.share
    );
    let after = d
        .outcomes()
        .filter(|(a, out)| {
            a.at > secs(300)
                && matches!(out, Some((_, Outcome::Succeeded { node, .. })) if *node == id)
        })
        .count();
    assert!(after > 0, "seed {seed}: flaky never came back\n{r}");
}

#[test]
fn always_failing_node_ends_with_breaker_open_and_no_share() {
    let seed = 9;
    let nodes = vec![
        SimNode::new("a", 4),
        SimNode::new("b", 4),
        SimNode::new("broken", 4).failure_rate(1.0),
    ];
    let spec = WorkloadSpec::default().calls(1_000).rate(1.5);
    let (d, r) = run(RouterConfig::default(), nodes, spec, seed);
    let broken = r.node("broken").unwrap();
    assert_eq!(broken.ok, 0, "seed {seed}\n{r}");
    assert_eq!(broken.share, 0.0);
    assert_eq!(broken.errors, broken.attempts, "seed {seed}\n{r}");
    assert!(broken.breaker_opens >= 1, "seed {seed}\n{r}");
    // A third of 1,000 calls would be its fair share; the breaker keeps it to
    // the attempts that opened it plus probes.
    assert!(
        broken.attempts < 40,
        "seed {seed}: {} attempts\n{r}",
        broken.attempts
    );
    // Each 5xx failed over to a healthy node, unless both were full at
    // that instant: then the call failed with the 5xx.
    assert_eq!(
        r.failovers + r.failed_total(),
        broken.errors,
        "seed {seed}\n{r}"
    );
    assert!(r.failovers > r.failed_total(), "seed {seed}\n{r}");
    assert_eq!(
        r.failed_total(),
        r.failed.get("upstream_5xx").copied().unwrap_or(0)
    );
    let id = d.node_id("broken").unwrap();
    let node = d.router().node(id).unwrap();
    assert_ne!(node.breaker.state(d.now()), BreakerState::Closed);
    assert!(node.breaker.consecutive_opens() >= 1);
}

#[test]
fn overloaded_node_cools_down_without_opening_its_breaker() {
    let seed = 3;
    let nodes = vec![
        SimNode::new("a", 4),
        SimNode::new("b", 4),
        // One slot, yet the router may send it 6: the rest get 429.
        SimNode::new("small", 1)
            .max_concurrency(6)
            .overload(0, Some(Duration::from_millis(300))),
    ];
    let spec = WorkloadSpec::default().calls(1_000).rate(1.5);
    // Failover mechanics: no retry budget (tests_faults has a run with one).
    let cfg = RouterConfig {
        retry_budget: RetryBudget::UNLIMITED,
        ..RouterConfig::default()
    };
    let (d, r) = run(cfg, nodes, spec, seed);
    let small = r.node("small").unwrap();
    assert!(small.overloads > 0, "seed {seed}\n{r}");
    assert!(small.ok > 0, "seed {seed}\n{r}");
    assert_eq!(small.breaker_opens, 0, "seed {seed}\n{r}");
    assert_eq!(small.errors, 0);
    let id = d.node_id("small").unwrap();
    let node = d.router().node(id).unwrap();
    assert_eq!(node.overload.events() as u64, small.overloads);
    assert_eq!(node.breaker.state(d.now()), BreakerState::Closed);
    assert_eq!(node.breaker.consecutive_failures(), 0);
    // A 429 fails over, unless every other node is full at that instant:
    // then the call fails as overloaded. Nothing else fails here.
    assert_eq!(
        r.failovers + r.failed_total(),
        small.overloads,
        "seed {seed}\n{r}"
    );
    assert_eq!(
        r.failed_total(),
        r.failed.get("overloaded").copied().unwrap_or(0)
    );
    assert!(r.failed_total() * 50 < r.calls, "seed {seed}\n{r}");
}

#[test]
fn client_cancels_free_slots_and_are_counted() {
    let seed = 21;
    let mut workload = WorkloadSpec::default()
        .calls(400)
        .rate(8.0)
        .generate(seed)
        .unwrap();
    // Every fourth client gives up after 300 ms: most of those are still
    // waiting or streaming, a few embeddings have finished.
    for a in workload.iter_mut().step_by(4) {
        a.cancel_after = Some(Duration::from_millis(300));
    }
    let nodes = vec![SimNode::new("a", 2), SimNode::new("b", 2)];
    let mut d = Driver::new(RouterConfig::default(), nodes, seed).unwrap();
    let r = d.run(&workload);
    check_clean(&d, &r, seed);
    assert!(r.cancelled > 50, "seed {seed}\n{r}");
    assert!(r.cancelled <= 100, "seed {seed}\n{r}");
    // Only the impatient clients cancelled.
    for (i, (_, out)) in d.outcomes().enumerate() {
        if let Some((_, Outcome::Cancelled { .. })) = out {
            assert_eq!(i % 4, 0, "seed {seed}: call {i} cancelled");
        }
    }
    // A client cancel never counts against a node.
    assert!(r.nodes.iter().all(|n| n.breaker_opens == 0), "{r}");
}

#[test]
fn rejections_are_counted_by_reason() {
    let seed = 4;
    // One slot, no queueing anywhere: embeddings of ~150 ms at 5 calls/s
    // find it busy about 40 % of the time and are refused.
    let tiny = || vec![SimNode::new("tiny", 1).max_concurrency(1)];
    let mut spec = WorkloadSpec::default().calls(600).rate(5.0);
    spec.mix = OpMix {
        stream: 0,
        chat: 0,
        embed: 1,
    };
    spec.prompt_tokens = (100, 100);
    let no_wait = RouterConfig {
        queue_wait: Duration::ZERO,
        ..RouterConfig::default()
    };
    let (_, r) = run(no_wait, tiny(), spec, seed);
    let saturated = r.rejected.get("all_nodes_saturated").copied().unwrap_or(0);
    assert!((100..400).contains(&saturated), "seed {seed}\n{r}");
    assert_eq!(saturated, r.rejected_total(), "seed {seed}\n{r}");

    // With the router's queue (2 s) the same calls wait their turn instead.
    let wait = RouterConfig {
        queue_wait: Duration::from_secs(2),
        ..RouterConfig::default()
    };
    let (_, q) = run(wait, tiny(), spec, seed);
    assert!(
        !q.rejected.contains_key("all_nodes_saturated"),
        "seed {seed}\n{q}"
    );
    assert!(q.succeeded > r.succeeded + 100, "seed {seed}\n{q}\n{r}");

    // At twice the node's capacity the queue overflows its deadline.
    let (_, o) = run(wait, tiny(), spec.rate(14.0), seed);
    assert!(
        o.rejected
            .get("queue_wait_expired")
            .is_some_and(|&n| n > 100),
        "seed {seed}\n{o}"
    );
}

#[test]
fn every_policy_ends_every_call() {
    let spec = WorkloadSpec::default().calls(600).rate(4.0);
    for policy in Policy::ALL {
        let cfg = RouterConfig {
            policy,
            ..RouterConfig::default()
        };
        let (_, r) = run(cfg, swarm(), spec, 17);
        assert!(r.succeeded > 500, "{}\n{r}", policy.name());
        assert!(r.nodes.iter().all(|n| n.ok > 0), "{}\n{r}", policy.name());
    }
}

#[test]
fn hedges_race_and_the_loser_is_cancelled() {
    let seed = 8;
    let mut cfg = RouterConfig::default();
    cfg.hedge.enabled = true;
    cfg.hedge.budget_ratio = 0.5;
    cfg.hedge.max_delay = Duration::from_millis(400);
    // One node is slow to first token: streams sent there get hedged.
    let nodes = vec![
        SimNode::new("fast", 8).prefill(Duration::from_millis(50), Duration::ZERO),
        SimNode::new("slow", 8).prefill(Duration::from_secs(3), Duration::ZERO),
    ];
    let mut spec = WorkloadSpec::default().calls(300).rate(1.5);
    spec.mix = OpMix {
        stream: 1,
        chat: 0,
        embed: 0,
    };
    let (_, r) = run(cfg, nodes, spec, seed);
    assert!(r.hedges > 0, "seed {seed}\n{r}");
    assert_eq!(r.extra_attempts(), r.failovers + r.hedges);
    assert_eq!(r.failed_total(), 0, "seed {seed}\n{r}");
}

#[test]
fn bad_setups_are_refused_with_a_reason() {
    let cfg = RouterConfig::default();
    assert_eq!(
        Driver::new(cfg, Vec::new(), 1).unwrap_err(),
        SimError::NodeCount(0)
    );
    let many = (0..65).map(|i| SimNode::new(&format!("n{i}"), 1)).collect();
    assert_eq!(
        Driver::new(cfg, many, 1).unwrap_err(),
        SimError::NodeCount(65)
    );
    let dup = vec![SimNode::new("a", 1), SimNode::new("a", 1)];
    assert_eq!(
        Driver::new(cfg, dup, 1).unwrap_err(),
        SimError::Router {
            node: "a".into(),
            error: NodeError::DuplicateName
        }
    );
    let e = Driver::new(cfg, vec![SimNode::new("z", 0)], 1).unwrap_err();
    assert!(matches!(e, SimError::Node(_)));
    assert!(e.to_string().contains("slots"), "{e}");
    let bad_cfg = RouterConfig {
        max_attempts: 0,
        ..cfg
    };
    let e = Driver::new(bad_cfg, vec![SimNode::new("a", 1)], 1).unwrap_err();
    assert!(matches!(e, SimError::Config(_)));
    assert!(e.to_string().contains("max_attempts"), "{e}");
}

#[test]
fn explicit_arrivals_run_exactly() {
    // No jitter: one stream of 100 prompt tokens and 10 output tokens on an
    // idle node takes 100 + 50 ms to first byte and 10 / 40 s to decode.
    let nodes = vec![SimNode::new("a", 1).jitter(0.0)];
    let mut d = Driver::new(RouterConfig::default(), nodes, 1).unwrap();
    let w = [
        Arrival::new(secs(1), Op::Stream, 100, 10),
        Arrival::new(secs(1), Op::Embed, 100, 0),
    ];
    let r = d.run(&w);
    check_clean(&d, &r, 1);
    assert_eq!(r.succeeded, 2);
    // The embed queued behind the stream at the node (1 slot, the router
    // allows 2): it starts at 400 ms and takes 150 ms.
    assert_eq!(r.ttft_p50, Some(Duration::from_millis(150)));
    assert_eq!(r.latency_p50, Some(Duration::from_millis(400)));
    assert_eq!(r.latency_p99, Some(Duration::from_millis(550)));
    assert_eq!(r.last_outcome, secs(1) + Duration::from_millis(550));
    // A second run continues on the same clock and reports all calls.
    let r2 = d.run(&[Arrival::new(secs(0), Op::Chat, 0, 0)]);
    assert_eq!(r2.calls, 3);
    assert_eq!(r2.succeeded, 3);
}
