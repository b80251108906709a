//! Hardening promises, proved on the core alone: the retry budget bounds
//! upstream attempts and their concurrency, the call deadline covers every
//! attempt, nothing is replayed after the first byte or to a node already
//! tried, and client errors never count against a node.

extern crate std;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::config::RetryBudget;
use crate::node::{NodeKind, NodeSpec};
use crate::route::Query;
use crate::trace::TraceId;

type R = Router<8, 256, 64>;

fn router(nodes: usize, cfg: RouterConfig, seed: u64) -> R {
    let mut r = R::new(cfg, seed).unwrap();
    for i in 0..nodes {
        let name = ["a", "b", "c", "d", "e", "f", "g", "h"][i];
        let mut spec = NodeSpec::new(name, NodeKind::Ollama).unwrap();
        spec.max_concurrency = 1000;
        r.add_node(spec).unwrap();
    }
    r
}

/// Never trips a breaker: every failure keeps every node eligible.
fn hard_failing_cfg(budget: RetryBudget, max_attempts: u8) -> RouterConfig {
    let mut c = RouterConfig::default();
    c.max_attempts = max_attempts;
    c.breaker.failure_threshold = u16::MAX;
    c.retry_budget = budget;
    c.queue_wait = Duration::ZERO;
    c
}

fn ms(x: u64) -> Instant {
    Instant::from_millis(x)
}

/// One live call and the attempts the driver has outstanding for it.
struct Live {
    call: Call,
    attempts: Vec<AttemptId>,
}

/// Polls `l` until it waits or finishes. Returns sends (attempt, node) and
/// whether it finished.
fn drive(r: &mut R, l: &mut Live, now: Instant) -> (Vec<(AttemptId, NodeId)>, Option<Outcome>) {
    let mut sends = Vec::new();
    loop {
        match r.poll(&mut l.call, now) {
            Action::Send { attempt, node, .. } => {
                l.attempts.push(attempt);
                sends.push((attempt, node));
            }
            Action::Cancel { attempt, .. } => l.attempts.retain(|a| *a != attempt),
            Action::Wait { .. } => return (sends, None),
            Action::Finish(o) => return (sends, Some(o)),
            Action::Done => return (sends, None),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Under 100 % upstream failures, with calls overlapping in any order:
    /// attempts <= calls × (1 + ratio) + burst, and no retry or hedge ever
    /// starts beyond max(min_concurrent, ratio × active calls) in flight.
    #[test]
    fn retry_budget_bounds_attempts_and_concurrency_under_total_failure(
        ratio_pct in 0u32..=100,
        burst in 0u32..20,
        min_concurrent in 0u32..6,
        max_attempts in 2u8..=8,
        nodes in 2usize..=8,
        calls in 1usize..120,
        hedge in any::<bool>(),
        steps in proptest::collection::vec((any::<bool>(), any::<u16>()), 1..600),
        seed in any::<u64>(),
    ) {
        let budget = RetryBudget { ratio: f64::from(ratio_pct) / 100.0, min_concurrent, burst };
        let mut cfg = hard_failing_cfg(budget, max_attempts);
        cfg.hedge.enabled = hedge;
        cfg.hedge.budget_burst = 1000;
        cfg.hedge.max_delay = Duration::from_millis(50);
        let mut r = router(nodes, cfg, seed);
        let mut live: Vec<Live> = Vec::new();
        let (mut started, mut attempts, mut now) = (0usize, 0u64, 0u64);
        let mut step = steps.iter().cycle();
        // Bounded: every step starts a call or fails an attempt (or, for a
        // hedge, lets time pass), and both are finite.
        for _ in 0..20_000 {
            if started == calls && live.is_empty() {
                break;
            }
            let &(start, pick) = step.next().unwrap();
            now += 10;
            let t = ms(now);
            let mut sends = Vec::new();
            if (start || live.is_empty()) && started < calls {
                let q = Query::new(if hedge { Op::Stream } else { Op::Chat });
                let mut l = Live { call: r.start(Request::new(TraceId(started as u64), q), t), attempts: Vec::new() };
                started += 1;
                let (s, done) = drive(&mut r, &mut l, t);
                sends.extend(s);
                if done.is_none() { live.push(l); }
            } else if !live.is_empty() {
                let i = usize::from(pick) % live.len();
                let l = &mut live[i];
                let ev = match l.attempts.first() {
                    Some(&a) => {
                        l.attempts.remove(0);
                        Some(Event::Failed(a, Failure::Upstream5xx(503)))
                    }
                    None => None,
                };
                if let Some(ev) = ev {
                    let _ = r.handle(&mut l.call, ev, t);
                }
                let (s, done) = drive(&mut r, l, t);
                sends.extend(s);
                if done.is_some() { live.swap_remove(i); }
            }
            for (a, _) in &sends {
                attempts += 1;
                if a.0 > 0 {
                    // A retry or hedge: the budget's concurrency bound held when it started.
                    let limit = (u64::from(min_concurrent) * 1000)
                        .max(u64::from(ratio_pct) * 10 * u64::from(r.active_calls()));
                    prop_assert!(u64::from(r.retries_in_flight()) * 1000 <= limit,
                        "{} retries in flight, limit {}/1000 with {} active", r.retries_in_flight(), limit, r.active_calls());
                }
            }
        }
        prop_assert!(live.is_empty(), "every call ended");
        prop_assert_eq!(started, calls);
        let bound = calls as u64 + (calls as u64 * u64::from(ratio_pct)) / 100 + u64::from(burst);
        prop_assert!(attempts <= bound, "{} attempts for {} calls, bound {}", attempts, calls, bound);
        prop_assert_eq!(r.retries_in_flight(), 0);
        prop_assert_eq!(r.attempts_in_flight(), 0);
        prop_assert_eq!(r.active_calls(), 0);
    }

    /// However failures and timeouts fall, no attempt starts at or after the
    /// call's deadline, no Wait reaches past it, the outcome comes by it, a
    /// call never sends to a node twice, and each call tries every eligible
    /// node (up to max_attempts) before failing.
    #[test]
    fn deadline_covers_retries_and_retries_go_to_untried_nodes(
        nodes in 1usize..=8,
        max_attempts in 1u8..=8,
        kinds in proptest::collection::vec(0u8..4, 8),
        delays in proptest::collection::vec(1u64..5_000, 8),
        seed in any::<u64>(),
    ) {
        let mut cfg = hard_failing_cfg(RetryBudget::UNLIMITED, max_attempts);
        cfg.call_timeout = Duration::from_secs(6);
        cfg.attempt_timeout = Duration::from_secs(2);
        cfg.ttft_timeout = Duration::from_millis(1500);
        let mut r = router(nodes, cfg, seed);
        let start = ms(1000);
        let deadline = start + cfg.call_timeout;
        let mut l = Live { call: r.start(Request::new(TraceId(1), Query::new(Op::Stream)), start), attempts: Vec::new() };
        let mut now = start;
        let mut tried: Vec<NodeId> = Vec::new();
        let mut outcome = None;
        for i in 0..64 {
            let mut wait = None;
            loop {
                match r.poll(&mut l.call, now) {
                    Action::Send { attempt, node, .. } => {
                        prop_assert!(now < deadline, "attempt started at the deadline");
                        prop_assert!(!tried.contains(&node), "{:?} tried twice", node);
                        tried.push(node);
                        l.attempts.push(attempt);
                    }
                    Action::Cancel { attempt, .. } => l.attempts.retain(|a| *a != attempt),
                    Action::Wait { until } => { wait = until; break; }
                    Action::Finish(o) => { outcome = Some(o); break; }
                    Action::Done => break,
                }
            }
            if outcome.is_some() { break; }
            let until = wait.unwrap();
            prop_assert!(until <= deadline, "wait past the deadline");
            // The attempt fails after a while, or the router's timer comes first.
            let k = kinds[i % kinds.len()];
            let at = now + Duration::from_millis(delays[i % delays.len()]);
            match l.attempts.first().copied() {
                Some(a) if k != 3 && at < until => {
                    now = at;
                    let f = [Failure::Connect, Failure::Upstream5xx(500), Failure::InvalidReply][usize::from(k)];
                    let _ = r.handle(&mut l.call, Event::Failed(a, f), now);
                }
                _ => now = until,
            }
        }
        let o = outcome.expect("the call ended");
        prop_assert!(now <= deadline, "finished after the deadline");
        let want = usize::from(max_attempts).min(nodes);
        match o {
            Outcome::Failed { failure: Failure::DeadlineExceeded, .. } => {}
            Outcome::Failed { attempts, .. } => {
                prop_assert_eq!(usize::from(attempts), want, "gave up with an untried eligible node")
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
        prop_assert_eq!(r.attempts_in_flight(), 0);
    }
}

#[test]
fn a_failure_reported_at_the_deadline_starts_no_retry() {
    let mut cfg = hard_failing_cfg(RetryBudget::UNLIMITED, 3);
    cfg.call_timeout = Duration::from_secs(5);
    let mut r = router(3, cfg, 1);
    let mut l = Live {
        call: r.start(Request::new(TraceId(1), Query::new(Op::Chat)), ms(0)),
        attempts: Vec::new(),
    };
    let (sends, _) = drive(&mut r, &mut l, ms(0));
    assert_eq!(sends.len(), 1);
    // The driver reports the failure late, exactly at the deadline.
    let _ = r.handle(
        &mut l.call,
        Event::Failed(sends[0].0, Failure::Connect),
        ms(5000),
    );
    let (sends, done) = drive(&mut r, &mut l, ms(5000));
    assert!(sends.is_empty(), "no attempt at the deadline");
    assert!(matches!(
        done,
        Some(Outcome::Failed {
            failure: Failure::DeadlineExceeded,
            attempts: 1,
            ..
        })
    ));
}

#[test]
fn retry_budget_concurrency_denies_and_says_why() {
    let budget = RetryBudget {
        ratio: 0.0,
        min_concurrent: 1,
        burst: 100,
    };
    let mut r = router(3, hard_failing_cfg(budget, 3), 5);
    let mut calls: Vec<Live> = (0..2)
        .map(|i| Live {
            call: r.start(Request::new(TraceId(i), Query::new(Op::Chat)), ms(0)),
            attempts: Vec::new(),
        })
        .collect();
    for l in &mut calls {
        let _ = drive(&mut r, l, ms(0));
    }
    // Call 0's first attempt fails: its retry fits (1 in flight).
    let a = calls[0].attempts.remove(0);
    let _ = r.handle(
        &mut calls[0].call,
        Event::Failed(a, Failure::Connect),
        ms(1),
    );
    let (sends, done) = drive(&mut r, &mut calls[0], ms(1));
    assert_eq!((sends.len(), done), (1, None));
    assert_eq!(r.retries_in_flight(), 1);
    // Call 1's retry would make 2: denied, the call ends with its failure.
    let a = calls[1].attempts.remove(0);
    let _ = r.handle(
        &mut calls[1].call,
        Event::Failed(a, Failure::Connect),
        ms(2),
    );
    let (sends, done) = drive(&mut r, &mut calls[1], ms(2));
    assert!(sends.is_empty());
    assert!(matches!(
        done,
        Some(Outcome::Failed {
            failure: Failure::Connect,
            attempts: 1,
            ..
        })
    ));
    assert_eq!(r.metrics().retries_denied, 1);
    assert!(
        r.trace()
            .for_trace(TraceId(1))
            .any(|e| e.event == TraceEvent::RetryDenied { hedge: false })
    );
    // Once call 0's retry ends, retries fit again.
    let a = calls[0].attempts.remove(0);
    let _ = r.handle(&mut calls[0].call, Event::Completed(a), ms(3));
    let _ = drive(&mut r, &mut calls[0], ms(3));
    assert_eq!(r.retries_in_flight(), 0);
}

#[test]
fn retry_budget_tokens_run_out_and_refill_with_new_calls() {
    let budget = RetryBudget {
        ratio: 0.5,
        min_concurrent: 100,
        burst: 1,
    };
    let mut r = router(4, hard_failing_cfg(budget, 4), 9);
    assert_eq!(r.retry_tokens(), 1);
    let fail_through = |r: &mut R, id: u64| -> u8 {
        let mut l = Live {
            call: r.start(Request::new(TraceId(id), Query::new(Op::Chat)), ms(id)),
            attempts: Vec::new(),
        };
        let mut done = drive(r, &mut l, ms(id)).1;
        while done.is_none() {
            let a = l.attempts.remove(0);
            let _ = r.handle(&mut l.call, Event::Failed(a, Failure::Connect), ms(id));
            done = drive(r, &mut l, ms(id)).1;
        }
        match done {
            Some(Outcome::Failed { attempts, .. }) => attempts,
            other => panic!("{other:?}"),
        }
    };
    // Full bucket (1, capped at burst even with this call's 0.5): one retry.
    assert_eq!(fail_through(&mut r, 1), 2);
    // Half a token: no retry.
    assert_eq!(fail_through(&mut r, 2), 1);
    // Two calls' halves make a token again.
    assert_eq!(fail_through(&mut r, 3), 2);
    // Each call stopped by the empty bucket (not by max_attempts) is counted.
    assert_eq!(r.metrics().retries_denied, 3);
}

#[test]
fn client_errors_never_count_against_a_node() {
    let mut cfg = RouterConfig::default();
    cfg.breaker.failure_threshold = 3;
    let mut r = router(1, cfg, 2);
    let a = NodeId(0);
    // Two real failures: one short of opening.
    for i in 0..2 {
        let mut l = Live {
            call: r.start(Request::new(TraceId(i), Query::new(Op::Chat)), ms(i)),
            attempts: Vec::new(),
        };
        let (s, _) = drive(&mut r, &mut l, ms(i));
        let _ = r.handle(&mut l.call, Event::Failed(s[0].0, Failure::Connect), ms(i));
        let _ = drive(&mut r, &mut l, ms(i));
    }
    assert_eq!(r.node(a).unwrap().breaker.consecutive_failures(), 2);
    for i in 10..60 {
        let mut l = Live {
            call: r.start(Request::new(TraceId(i), Query::new(Op::Chat)), ms(i)),
            attempts: Vec::new(),
        };
        let (s, _) = drive(&mut r, &mut l, ms(i));
        assert_eq!(s.len(), 1, "the node stays eligible");
        let _ = r.handle(&mut l.call, Event::ClientError(s[0].0, 400), ms(i));
        let (s, done) = drive(&mut r, &mut l, ms(i));
        assert!(s.is_empty(), "a client error is never retried");
        assert!(matches!(
            done,
            Some(Outcome::Failed {
                failure: Failure::ClientError(400),
                ..
            })
        ));
    }
    let n = r.node(a).unwrap();
    assert_eq!(
        n.breaker.state(ms(100)),
        crate::breaker::BreakerState::Closed
    );
    assert_eq!(r.metrics().node(a).unwrap().failures, 2);
    assert_eq!(r.metrics().node(a).unwrap().breaker_opens, 0);
}

#[test]
fn nothing_is_retried_after_the_first_byte_even_with_budget_and_nodes_left() {
    let mut r = router(4, hard_failing_cfg(RetryBudget::UNLIMITED, 4), 3);
    let mut l = Live {
        call: r.start(Request::new(TraceId(1), Query::new(Op::Stream)), ms(0)),
        attempts: Vec::new(),
    };
    let (s, _) = drive(&mut r, &mut l, ms(0));
    let _ = r.handle(&mut l.call, Event::FirstByte(s[0].0), ms(5));
    let _ = r.handle(
        &mut l.call,
        Event::Failed(s[0].0, Failure::BrokenStream),
        ms(9),
    );
    let (s, done) = drive(&mut r, &mut l, ms(9));
    assert!(s.is_empty());
    assert!(matches!(
        done,
        Some(Outcome::Failed {
            failure: Failure::BrokenStream,
            after_first_byte: true,
            attempts: 1,
            ..
        })
    ));
}
