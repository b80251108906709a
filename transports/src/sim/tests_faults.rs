//! Fault drills, prefix caches, several gateways and the invariant checker:
//! whole runs on virtual time, each with an asserted outcome. Every
//! failure message names the seed; the same seed reproduces the run.

use drover_core::breaker::BreakerState;
use drover_core::call::Outcome;
use drover_core::config::{Policy, RetryBudget, RouterConfig};
use drover_core::node::Mode;
use drover_core::reason::Failure;
use drover_core::route::Op;
use drover_core::{Duration, Instant};

use super::*;

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

/// Runs `setup` on `workload`; checks that the run is clean (every call
/// ended, nothing leaked in any gateway's router or on any node).
fn run<'a>(setup: SimSetup, workload: impl Into<Calls<'a>>) -> (Driver, Report) {
    let seed = setup.seed;
    let mut d = setup.build().unwrap();
    let r = match d.try_run(workload) {
        Ok(r) => r,
        Err(v) => panic!("{v}"),
    };
    check_clean(&d, &r, seed);
    (d, r)
}

fn check_clean(d: &Driver, r: &Report, seed: u64) {
    assert_eq!(r.lost, 0, "seed {seed}\n{r}");
    assert!(!r.stalled, "seed {seed}\n{r}");
    let ended = r.succeeded + r.failed_total() + r.rejected_total() + r.cancelled;
    assert_eq!(ended, r.calls, "seed {seed}: outcomes do not add up\n{r}");
    assert_eq!(d.open_attempts(), 0, "seed {seed}: attempts left on nodes");
    for g in 0..d.gateway_count() {
        let router = d.gateway_router(g).unwrap();
        assert_eq!(router.active_calls(), 0, "seed {seed}: gateway {g}");
        assert_eq!(router.attempts_in_flight(), 0, "seed {seed}: gateway {g}");
        assert_eq!(router.permits_outstanding(), 0, "seed {seed}: gateway {g}");
        assert_eq!(router.queue_depth(), 0, "seed {seed}: gateway {g}");
    }
    let ok: u64 = r.nodes.iter().map(|n| n.ok).sum();
    assert_eq!(ok, r.succeeded, "seed {seed}: per-node ok");
    let per_gateway: u64 = r.gateways.iter().map(|g| g.calls).sum();
    assert_eq!(per_gateway, r.calls, "seed {seed}: per-gateway calls");
}

/// The default config without a retry budget: for drills that check that
/// every failure before the first byte fails over (a budget may end some of
/// those calls instead; `retry_budget_caps_failovers_when_a_node_crashes`
/// covers that).
fn unbudgeted() -> RouterConfig {
    RouterConfig {
        retry_budget: RetryBudget::UNLIMITED,
        ..RouterConfig::default()
    }
}

fn poisson(calls: usize, rate: f64, seed: u64) -> Vec<Arrival> {
    WorkloadSpec::default()
        .calls(calls)
        .rate(rate)
        .generate(seed)
        .unwrap()
}

/// Attempts sent to node `n` in `[from, to)` seconds (1 s buckets).
fn started(r: &Report, n: usize, from: u64, to: u64) -> u64 {
    assert_eq!(r.series.bucket, Duration::from_secs(1));
    r.series.started_between(n, from as usize, to as usize)
}

#[test]
fn stale_node_gets_no_new_calls_after_its_staleness_threshold() {
    let seed = 31;
    let nodes = ["a", "b", "quiet"]
        .map(|n| SimNode::new(n, 4).heartbeat(Duration::from_secs(1)))
        .to_vec();
    // Heartbeats stop at 100 s while the node keeps serving: the last one
    // went out at 99 s, so it is stale from 104 s (stale_after 5 s).
    let setup = SimSetup::new(RouterConfig::default(), nodes, seed)
        .fault(Fault::new(2, FaultKind::StaleHeartbeat, secs(100)).until(secs(200)));
    let (d, r) = run(setup, &poisson(450, 1.5, seed));
    assert!(started(&r, 2, 50, 99) > 10, "seed {seed}\n{r}");
    assert_eq!(started(&r, 2, 104, 200), 0, "seed {seed}\n{r}");
    // Meanwhile the other two took every call; beats resume at 200 s.
    assert!(started(&r, 0, 104, 200) + started(&r, 1, 104, 200) > 100);
    assert!(started(&r, 2, 205, 290) > 10, "seed {seed}\n{r}");
    // Still serving throughout: nothing failed, nothing was rejected.
    assert_eq!(r.failed_total() + r.rejected_total(), 0, "seed {seed}\n{r}");
    let id = d.node_id("quiet").unwrap();
    let seen = d.router().node(id).unwrap().health.last_seen().unwrap();
    assert!(seen >= secs(290), "seed {seed}: last heartbeat {seen:?}");
}

#[test]
fn corrupted_replies_fail_over_and_never_count_as_success() {
    let seed = 32;
    let nodes = vec![
        SimNode::new("a", 4),
        SimNode::new("b", 4),
        SimNode::new("liar", 4),
    ];
    let setup = SimSetup::new(unbudgeted(), nodes, seed)
        .fault(Fault::new(2, FaultKind::Corrupt { rate: 1.0 }, secs(50)).until(secs(150)));
    let (d, r) = run(setup, &poisson(400, 1.5, seed));
    let liar = r.node("liar").unwrap();
    assert!(liar.invalid > 0, "seed {seed}\n{r}");
    // The breaker counts invalid replies against the node.
    assert!(liar.breaker_opens >= 1, "seed {seed}\n{r}");
    let mut corrupt = 0;
    for (i, (_, out)) in d.outcomes().enumerate() {
        let attempts = d.attempts(i);
        let completed: Vec<_> = attempts
            .iter()
            .filter(|a| a.end == AttemptEnd::Completed)
            .collect();
        for a in attempts.iter().filter(|a| a.corrupt) {
            corrupt += 1;
            assert_eq!(a.node, 2, "seed {seed}: call {i}");
            assert_eq!(a.end, AttemptEnd::Failed(Failure::InvalidReply));
            assert!(
                !a.first_byte,
                "seed {seed}: call {i}: found out before the client"
            );
        }
        match out {
            Some((_, Outcome::Succeeded { node, .. })) => {
                // Exactly one attempt delivered, valid, on the winning node.
                assert_eq!(completed.len(), 1, "seed {seed}: call {i}");
                assert!(!completed[0].corrupt, "seed {seed}: call {i}");
                assert_eq!(d.node_id(&r.nodes[completed[0].node].name), Some(node));
            }
            Some((_, Outcome::Failed { failure, .. })) => {
                assert!(completed.is_empty(), "seed {seed}: call {i}");
                assert_eq!(failure, Failure::InvalidReply, "seed {seed}: call {i}");
                assert!(attempts.last().unwrap().corrupt, "seed {seed}: call {i}");
            }
            other => panic!("seed {seed}: call {i} ended {other:?}"),
        }
    }
    assert_eq!(corrupt, liar.invalid, "seed {seed}");
    // Each invalid reply failed over, unless the others were full: then
    // the call failed, named invalid_reply.
    assert_eq!(
        r.failovers + r.failed_total(),
        liar.invalid,
        "seed {seed}\n{r}"
    );
    assert!(r.failed_total() * 10 < liar.invalid, "seed {seed}\n{r}");
}

#[test]
fn crash_fails_over_calls_before_their_first_byte_and_breaks_started_streams() {
    let seed = 33;
    // Long streams (5 to 10 s of decode). The victim is slow to its first
    // token (1.5 s) and queues requests beyond its two slots, so each of
    // its three crashes finds some streams under way and some not started.
    let nodes = vec![
        SimNode::new("a", 4).max_concurrency(6),
        SimNode::new("b", 4).max_concurrency(6),
        SimNode::new("victim", 2)
            .max_concurrency(6)
            .prefill(ms(1_500), Duration::from_micros(500)),
    ];
    let mut spec = WorkloadSpec::default().calls(300).rate(0.8);
    spec.mix = OpMix {
        stream: 1,
        chat: 0,
        embed: 0,
    };
    spec.output_tokens = (200, 400);
    let crash = FaultKind::Crash(CrashMode::Refuse);
    // Round robin, so the victim keeps its third of the calls.
    let cfg = RouterConfig {
        policy: Policy::RoundRobin,
        ..unbudgeted()
    };
    let setup = SimSetup::new(cfg, nodes, seed)
        .faults([60, 150, 240].map(|t| Fault::new(2, crash, secs(t)).until(secs(t + 15))));
    let (d, r) = run(setup, &spec.generate(seed).unwrap());
    let victim = d.node_id("victim").unwrap();
    let (mut broken, mut moved) = (0, 0);
    for (i, (_, out)) in d.outcomes().enumerate() {
        let Some(hit) = d.attempts(i).into_iter().find(|a| a.crashed) else {
            continue;
        };
        assert_eq!(hit.node, 2, "seed {seed}: call {i}");
        let (_, out) = out.unwrap();
        if hit.first_byte {
            broken += 1;
            assert_eq!(hit.end, AttemptEnd::Failed(Failure::BrokenStream));
            assert_eq!(
                out,
                Outcome::Failed {
                    failure: Failure::BrokenStream,
                    node: Some(victim),
                    after_first_byte: true,
                    attempts: 1,
                },
                "seed {seed}: call {i}"
            );
        } else {
            moved += 1;
            assert_eq!(hit.end, AttemptEnd::Failed(Failure::Connect));
            assert!(
                matches!(out, Outcome::Succeeded { node, attempts: 2 } if node != victim),
                "seed {seed}: call {i} ended {out:?}"
            );
        }
    }
    assert!(
        broken > 0 && moved > 0,
        "seed {seed}: {broken} broken, {moved} moved\n{r}"
    );
    assert_eq!(r.node("victim").unwrap().dropped, broken + moved);
    assert_eq!(
        r.failed.get("broken_stream"),
        Some(&broken),
        "seed {seed}\n{r}"
    );
    assert_eq!(r.failed.len(), 1, "seed {seed}\n{r}");
    let at_crashes: u32 = [60, 150, 240]
        .map(|t| r.series.failed_calls[t])
        .iter()
        .sum();
    assert_eq!(at_crashes, broken as u32, "seed {seed}");
}

#[test]
fn hung_node_times_out_and_calls_fail_over() {
    let seed = 34;
    let cfg = RouterConfig {
        attempt_timeout: Duration::from_secs(20),
        ttft_timeout: Duration::from_secs(2),
        ..RouterConfig::default()
    };
    let nodes = vec![
        SimNode::new("a", 4),
        SimNode::new("b", 4),
        SimNode::new("hung", 4),
    ];
    let hang = FaultKind::Crash(CrashMode::Hang);
    let setup =
        SimSetup::new(cfg, nodes, seed).fault(Fault::new(2, hang, secs(30)).until(secs(90)));
    let (_, r) = run(setup, &poisson(300, 1.5, seed));
    let hung = r.node("hung").unwrap();
    assert!(hung.hung > 0 && hung.refused == 0, "seed {seed}\n{r}");
    assert!(hung.breaker_opens >= 1, "seed {seed}\n{r}");
    // Every attempt the hung node swallowed timed out and failed over
    // (there was room elsewhere); only streams it had started broke.
    assert!(r.failovers >= hung.hung, "seed {seed}\n{r}");
    for label in r.failed.keys() {
        assert_eq!(*label, "broken_stream", "seed {seed}\n{r}");
    }
}

#[test]
fn slow_node_share_drops_after_it_slows() {
    let seed = 35;
    let nodes = ["a", "b", "slug"].map(|n| SimNode::new(n, 4)).to_vec();
    let setup = SimSetup::new(RouterConfig::default(), nodes, seed).fault(Fault::new(
        2,
        FaultKind::Slow { factor: 5.0 },
        secs(100),
    ));
    let (_, r) = run(setup, &poisson(600, 2.0, seed));
    let share = |from, to| {
        let all: u64 = (0..3).map(|n| started(&r, n, from, to)).sum();
        started(&r, 2, from, to) as f64 / all as f64
    };
    let (before, after) = (share(10, 100), share(120, 290));
    assert!(before > 0.25, "seed {seed}: {before}\n{r}");
    assert!(
        after < before * 0.6,
        "seed {seed}: {before} then {after}\n{r}"
    );
    assert_eq!(r.failed_total(), 0, "seed {seed}\n{r}");
}

#[test]
fn flapping_node_opens_its_breaker_and_recovers() {
    let seed = 36;
    let nodes = ["a", "b", "flappy"].map(|n| SimNode::new(n, 4)).to_vec();
    let flap = FaultKind::Flap {
        down: Duration::from_secs(4),
        up: Duration::from_secs(4),
    };
    let setup = SimSetup::new(unbudgeted(), nodes, seed)
        .fault(Fault::new(2, flap, secs(60)).until(secs(120)));
    let (d, r) = run(setup, &poisson(600, 2.0, seed));
    let flappy = r.node("flappy").unwrap();
    assert!(
        flappy.refused > 0 && flappy.breaker_opens >= 1,
        "seed {seed}\n{r}"
    );
    let id = d.node_id("flappy").unwrap();
    let later = d
        .outcomes()
        .filter(|(a, out)| {
            a.at > secs(150)
                && matches!(out, Some((_, Outcome::Succeeded { node, .. })) if *node == id)
        })
        .count();
    assert!(
        later > 30,
        "seed {seed}: {later} calls after the flapping\n{r}"
    );
    let node = d.router().node(id).unwrap();
    assert_eq!(node.breaker.state(d.now()), BreakerState::Closed);
    // Only streams it held when it went down broke; the rest failed over.
    for label in r.failed.keys() {
        assert_eq!(*label, "broken_stream", "seed {seed}\n{r}");
    }
}

#[test]
fn overload_429s_cool_down_but_never_open_the_breaker() {
    let seed = 37;
    let nodes = vec![
        SimNode::new("a", 4),
        SimNode::new("b", 4),
        SimNode::new("busy", 1).max_concurrency(6),
    ];
    let overload = FaultKind::Overload {
        queue_limit: 0,
        retry_after: Some(ms(300)),
    };
    let setup = SimSetup::new(RouterConfig::default(), nodes, seed)
        .fault(Fault::new(2, overload, secs(20)).until(secs(200)));
    let (d, r) = run(setup, &poisson(600, 2.0, seed));
    let busy = r.node("busy").unwrap();
    assert!(busy.overloads > 10, "seed {seed}\n{r}");
    assert_eq!(busy.breaker_opens, 0, "seed {seed}\n{r}");
    let id = d.node_id("busy").unwrap();
    let node = d.router().node(id).unwrap();
    assert_eq!(node.overload.events() as u64, busy.overloads);
    assert_eq!(node.breaker.state(d.now()), BreakerState::Closed);
    assert_eq!(node.breaker.consecutive_failures(), 0);
    // 429s came only inside the window. Each started a 300 ms cooldown
    // (its Retry-After) when it arrived, 2 ms after the attempt was sent:
    // no attempt went to the node while one ran.
    let mut sent = Vec::new();
    let mut cooling = Vec::new();
    for i in 0..r.calls as usize {
        for a in d.attempts(i).into_iter().filter(|a| a.node == 2) {
            sent.push(a.sent);
            if a.end == AttemptEnd::Overloaded {
                assert!(a.sent >= secs(20) && a.sent < secs(200), "seed {seed}");
                let from = a.sent + ms(2);
                cooling.push((from, from + ms(300)));
            }
        }
    }
    assert_eq!(cooling.len() as u64, busy.overloads);
    for t in sent {
        assert!(
            !cooling.iter().any(|&(from, to)| from < t && t < to),
            "seed {seed}: attempt at {t:?} during a cooldown"
        );
    }
    assert_eq!(
        r.failed_total(),
        r.failed.get("overloaded").copied().unwrap_or(0)
    );
}

/// 60 conversations of 6 turns each. Turn `k` of a conversation sends its
/// 4-block system-and-context head plus 2 blocks per earlier turn, so each
/// turn shares all but its last blocks with the one before.
fn conversations(seed: u64) -> Workload {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Workload::new();
    for s in 0..60u64 {
        let mut at = Duration::from_millis(rng.u64(0..60_000));
        for turn in 0..6u64 {
            let hashes: Vec<u64> = (0..4 + 2 * turn).map(|b| s * 1_000 + b).collect();
            let blocks = out.add_blocks(&hashes).unwrap();
            let a = Arrival::new(Instant::ZERO + at, Op::Stream, 64 * hashes.len() as u32, 50);
            out.push(a.with_blocks(blocks));
            at += Duration::from_millis(rng.u64(5_000..15_000));
        }
    }
    out.sort_by_time();
    out
}

#[test]
fn prefix_affinity_raises_the_prefix_cache_hit_rate() {
    let seed = 38;
    let workload = conversations(seed);
    // Each cache holds 200 blocks, about a quarter of all the
    // conversations' blocks (60 × 14): spreading every conversation over
    // all four nodes evicts what affinity would keep.
    let nodes: Vec<SimNode> = (0..4)
        .map(|i| SimNode::new(&format!("n{i}"), 4).prefix_cache(200, 64))
        .collect();
    let run_with = |prefix_key_blocks| {
        let mut cfg = RouterConfig::default();
        cfg.affinity.prefix_key_blocks = prefix_key_blocks;
        run(SimSetup::new(cfg, nodes.clone(), seed), &workload).1
    };
    let (on, off) = (run_with(4), run_with(0));
    let (hit_on, hit_off) = (on.prefix_hit_rate.unwrap(), off.prefix_hit_rate.unwrap());
    assert!(
        hit_on > hit_off + 0.2,
        "seed {seed}: hit rate {hit_on:.3} with affinity, {hit_off:.3} without\n{on}\n{off}"
    );
    assert!(hit_on > 0.5, "seed {seed}: {hit_on}");
    // Fewer tokens to prefill: the first token comes sooner.
    assert!(on.ttft_p50 < off.ttft_p50, "seed {seed}\n{on}\n{off}");
    assert!(on.to_string().contains("prefix cache hit rate"));
}

#[test]
fn two_gateways_see_their_own_calls_and_delayed_heartbeats() {
    let seed = 39;
    let nodes = ["a", "b", "quiet"]
        .map(|n| SimNode::new(n, 10).heartbeat(Duration::from_secs(1)))
        .to_vec();
    // Gateway 1 hears every heartbeat 5 s late. The last beat of "quiet"
    // leaves at 99 s: gateway 0 finds it stale at 104 s, gateway 1 at 109 s.
    let setup = SimSetup::new(RouterConfig::default(), nodes, seed)
        .gateways(2, Assign::RoundRobin)
        .heartbeat_delay(&[Duration::ZERO, Duration::from_secs(5)])
        .fault(Fault::new(2, FaultKind::StaleHeartbeat, secs(100)));
    let (d, r) = run(setup, &poisson(1_000, 6.0, seed));
    assert_eq!(r.gateways.len(), 2);
    assert_eq!(r.gateways[0].calls, 500, "seed {seed}\n{r}");
    assert_eq!(r.gateways[1].calls, 500, "seed {seed}\n{r}");
    for g in 0..2 {
        let router = d.gateway_router(g).unwrap();
        let calls: u64 = router.metrics().ops.iter().map(|o| o.calls).sum();
        assert_eq!(calls, 500, "seed {seed}: gateway {g} saw other calls");
    }
    let id = d.node_id("quiet").unwrap();
    let seen = |g| {
        let router = d.gateway_router(g).unwrap();
        router.node(id).unwrap().health.last_seen()
    };
    assert_eq!(seen(0), Some(secs(99)));
    assert_eq!(seen(1), Some(secs(104)));
    // Who sent to "quiet", when.
    let sends = |g: usize, from: u64, to: u64| {
        (0..r.calls as usize)
            .filter(|&i| d.call(i).unwrap().gateway == g)
            .flat_map(|i| d.attempts(i))
            .filter(|a| a.node == 2 && a.sent >= secs(from) && a.sent < secs(to))
            .count()
    };
    assert!(sends(0, 90, 99) > 3 && sends(1, 90, 99) > 3, "seed {seed}");
    assert_eq!(sends(0, 104, 1_000), 0, "seed {seed}");
    assert_eq!(sends(1, 109, 1_000), 0, "seed {seed}");
    // The late gateway kept using the node on old news.
    assert!(sends(1, 104, 109) > 0, "seed {seed}");
    assert!(r.to_string().contains("gateways 2: calls 500 / 500"));
}

#[test]
fn hashed_assignment_keeps_a_session_on_one_gateway() {
    let seed = 40;
    let mut workload = poisson(400, 4.0, seed);
    for (i, a) in workload.iter_mut().enumerate() {
        a.session = Some(i as u64 % 20);
    }
    let nodes = ["a", "b"].map(|n| SimNode::new(n, 8)).to_vec();
    let setup = SimSetup::new(RouterConfig::default(), nodes, seed).gateways(3, Assign::Hash);
    let (d, r) = run(setup, &workload);
    let mut home = [None; 20];
    for (i, a) in workload.iter().enumerate() {
        let s = a.session.unwrap() as usize;
        let g = d.call(i).unwrap().gateway;
        assert_eq!(*home[s].get_or_insert(g), g, "seed {seed}: session {s}");
    }
    assert!(r.gateways.iter().all(|g| g.calls > 0), "seed {seed}\n{r}");
}

#[test]
fn disabled_node_gets_nothing_more() {
    let seed = 41;
    let nodes = ["a", "b", "off"].map(|n| SimNode::new(n, 4)).to_vec();
    let mut d = SimSetup::new(RouterConfig::default(), nodes, seed)
        .build()
        .unwrap();
    d.load(&poisson(300, 2.0, seed));
    d.run_until(secs(60)).unwrap();
    let id = d.node_id("off").unwrap();
    let now = d.now();
    d.gateway_router_mut(0)
        .unwrap()
        .set_mode(id, Mode::Disabled, now)
        .unwrap();
    d.run_until_idle().unwrap();
    let r = d.report();
    check_clean(&d, &r, seed);
    assert!(started(&r, 2, 0, 60) > 20, "seed {seed}\n{r}");
    assert_eq!(started(&r, 2, 60, 1_000), 0, "seed {seed}\n{r}");
}

#[test]
fn a_transport_that_skips_validation_is_caught() {
    let seed = 42;
    let nodes = vec![
        SimNode::new("a", 4),
        SimNode::new("liar", 4).max_concurrency(4),
    ];
    let setup = SimSetup::new(RouterConfig::default(), nodes, seed).fault(Fault::new(
        1,
        FaultKind::Corrupt { rate: 1.0 },
        secs(0),
    ));
    let workload = poisson(50, 1.0, seed);
    let mut d = setup.clone().build().unwrap();
    d.w.accept_invalid = true;
    let v = d.try_run(&workload).unwrap_err();
    assert!(matches!(v.kind, ViolationKind::InvalidSuccess(_)), "{v}");
    assert_eq!(v.seed, seed);
    assert_eq!(v.node.as_deref(), Some("liar"));
    assert!(d.attempts(v.call as usize).last().unwrap().corrupt);
    let msg = v.to_string();
    assert!(msg.contains("seed 42") && msg.contains(&format!("call {}", v.call)));
    // The run stays failed, and `run` panics with the same message.
    assert_eq!(d.run_until_idle(), Err(v.clone()));
    let mut loud = setup.build().unwrap();
    loud.w.accept_invalid = true;
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loud.run(&workload)));
    let payload = panic.unwrap_err();
    let text = payload.downcast_ref::<String>().unwrap();
    assert_eq!(*text, msg);
}

/// Everything at once: two gateways with delayed heartbeats, prefix
/// caches, and faults drawn from rates.
fn everything(seed: u64) -> (SimSetup, Workload) {
    let nodes: Vec<SimNode> = (0..5)
        .map(|i| {
            SimNode::new(&format!("n{i}"), 4)
                .heartbeat(Duration::from_secs(1))
                .prefix_cache(100, 64)
                .failure_rate(0.01)
        })
        .collect();
    let rates = [
        FaultRate {
            kind: FaultKind::Crash(CrashMode::Refuse),
            per_hour: 20.0,
            lasting: Duration::from_secs(20),
        },
        FaultRate {
            kind: FaultKind::Corrupt { rate: 0.3 },
            per_hour: 20.0,
            lasting: Duration::from_secs(30),
        },
        FaultRate {
            kind: FaultKind::StaleHeartbeat,
            per_hour: 20.0,
            lasting: Duration::from_secs(30),
        },
        FaultRate {
            kind: FaultKind::Slow { factor: 3.0 },
            per_hour: 20.0,
            lasting: Duration::from_secs(60),
        },
    ];
    let faults = draw_faults(&rates, 5, secs(0), secs(400), seed).unwrap();
    let mut workload = Workload::new();
    for (i, a) in poisson(1_500, 3.0, seed).into_iter().enumerate() {
        let s = i as u64 % 40;
        let hashes: Vec<u64> = (0..6).map(|b| s * 100 + b).collect();
        let blocks = workload.add_blocks(&hashes).unwrap();
        workload.push(a.in_session(s).with_blocks(blocks));
    }
    let setup = SimSetup::new(RouterConfig::default(), nodes, seed)
        .gateways(2, Assign::Hash)
        .heartbeat_delay(&[ms(200), ms(1_500)])
        .faults(faults);
    (setup, workload)
}

#[test]
fn same_seed_same_report_with_every_feature_on() {
    let (setup, workload) = everything(7);
    assert!(setup.faults.len() > 5, "{:?}", setup.faults);
    let (_, a) = run(setup.clone(), &workload);
    let (_, b) = run(setup, &workload);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(a.series.csv(), b.series.csv());
    let (setup, workload) = everything(8);
    let (_, c) = run(setup, &workload);
    assert_ne!(format!("{a:?}"), format!("{c:?}"));
    // The run went through the faults' paths.
    let sum = |f: fn(&NodeReport) -> u64| a.nodes.iter().map(f).sum::<u64>();
    assert!(sum(|n| n.refused) > 0 && sum(|n| n.invalid) > 0, "{a}");
    assert!(a.prefix_hit_rate.is_some_and(|h| h > 0.0), "{a}");
    assert!(a.series.failed_attempts.iter().sum::<u32>() > 0);
}

#[test]
fn bad_setups_name_the_problem() {
    let nodes = vec![SimNode::new("a", 1)];
    let cfg = RouterConfig::default();
    let e = SimSetup::new(cfg, nodes.clone(), 1)
        .gateways(0, Assign::RoundRobin)
        .build()
        .unwrap_err();
    assert_eq!(e, SimError::GatewayCount(0));
    assert!(e.to_string().contains("gateways"));
    let e = SimSetup::new(cfg, nodes.clone(), 1)
        .fault(Fault::new(3, FaultKind::StaleHeartbeat, secs(1)))
        .build()
        .unwrap_err();
    assert!(
        matches!(e, SimError::Fault(BadFault { fault: 0, .. })),
        "{e}"
    );
    let bad = vec![SimNode::new("a", 1).heartbeat(Duration::ZERO)];
    let e = SimSetup::new(cfg, bad, 1).build().unwrap_err();
    assert!(e.to_string().contains("heartbeat"), "{e}");
}
