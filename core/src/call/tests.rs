//! Lifecycle tests: one call at a time, driven by hand on virtual time.

extern crate std;
use std::vec::Vec;

use super::*;
use crate::admission::PoolLimits;
use crate::breaker::BreakerState;
use crate::node::{Mode, NodeKind, NodeSpec};
use crate::reason::NoNode;
use crate::route::Query;
use crate::trace::TraceId;

type R = Router<8, 64, 16>;

fn router(nodes: &[&str], cfg: RouterConfig) -> R {
    let mut r = R::new(cfg, 7).unwrap();
    for n in nodes {
        r.add_node(NodeSpec::new(n, NodeKind::Ollama).unwrap())
            .unwrap();
    }
    r
}

fn req(id: u64, op: Op) -> Request {
    Request::new(TraceId(id), Query::new(op))
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Polls until Wait/Finish/Done, collecting actions.
fn drain(r: &mut R, c: &mut Call, now: Instant) -> Vec<Action> {
    let mut out = Vec::new();
    loop {
        let a = r.poll(c, now);
        out.push(a);
        if matches!(a, Action::Wait { .. } | Action::Finish(_) | Action::Done) {
            return out;
        }
    }
}

fn sent(actions: &[Action]) -> Vec<(AttemptId, NodeId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { attempt, node, .. } => Some((*attempt, *node)),
            _ => None,
        })
        .collect()
}

fn finish(actions: &[Action]) -> Option<Outcome> {
    actions.iter().find_map(|a| match a {
        Action::Finish(o) => Some(*o),
        _ => None,
    })
}

fn check_balanced(r: &R) {
    if r.active_calls() == 0 {
        assert_eq!(r.attempts_in_flight(), 0, "attempts leaked");
        assert_eq!(r.permits_outstanding(), 0, "permits leaked");
    }
}

#[test]
fn happy_path_stream() {
    let mut r = router(&["a", "b"], RouterConfig::default());
    let mut c = r.start(req(1, Op::Stream), t(0));
    let acts = drain(&mut r, &mut c, t(0));
    let s = sent(&acts);
    assert_eq!(s.len(), 1);
    assert!(matches!(acts.last(), Some(Action::Wait { until: Some(_) })));
    assert_eq!(r.attempts_in_flight(), 1);
    assert_eq!(
        r.handle(&mut c, Event::FirstByte(s[0].0), t(100)),
        Handled::Applied
    );
    assert!(c.is_committed());
    assert_eq!(
        r.handle(&mut c, Event::Completed(s[0].0), t(900)),
        Handled::Applied
    );
    let acts = drain(&mut r, &mut c, t(900));
    assert_eq!(
        finish(&acts),
        Some(Outcome::Succeeded {
            node: s[0].1,
            attempts: 1
        })
    );
    assert_eq!(r.poll(&mut c, t(901)), Action::Done);
    assert_eq!(
        r.handle(&mut c, Event::Completed(s[0].0), t(902)),
        Handled::Stale
    );
    check_balanced(&r);
    assert_eq!(r.metrics().op(Op::Stream).succeeded, 1);
    assert_eq!(r.metrics().op(Op::Stream).ttft.count(), 1);
    assert!(r.node(s[0].1).unwrap().ttft.has_samples());
}

#[test]
fn failover_before_first_byte_then_success() {
    let mut r = router(&["a", "b", "c"], RouterConfig::default());
    let mut c = r.start(req(1, Op::Chat), t(0));
    let first = sent(&drain(&mut r, &mut c, t(0)))[0];
    let _ = r.handle(&mut c, Event::Failed(first.0, Failure::Connect), t(5));
    let acts = drain(&mut r, &mut c, t(5));
    let second = sent(&acts)[0];
    assert_ne!(second.1, first.1, "a retry goes to a node not tried yet");
    assert_eq!(r.metrics().failovers, 1);
    let _ = r.handle(&mut c, Event::Completed(second.0), t(50));
    assert_eq!(
        finish(&drain(&mut r, &mut c, t(50))),
        Some(Outcome::Succeeded {
            node: second.1,
            attempts: 2
        })
    );
    assert_eq!(c.tried(), &[first.1, second.1]);
    check_balanced(&r);
}

#[test]
fn no_failover_after_first_byte() {
    let mut r = router(&["a", "b"], RouterConfig::default());
    let mut c = r.start(req(1, Op::Stream), t(0));
    let first = sent(&drain(&mut r, &mut c, t(0)))[0];
    let _ = r.handle(&mut c, Event::FirstByte(first.0), t(10));
    let _ = r.handle(&mut c, Event::Failed(first.0, Failure::BrokenStream), t(20));
    let acts = drain(&mut r, &mut c, t(20));
    assert!(sent(&acts).is_empty());
    assert_eq!(
        finish(&acts),
        Some(Outcome::Failed {
            failure: Failure::BrokenStream,
            node: Some(first.1),
            after_first_byte: true,
            attempts: 1
        })
    );
    check_balanced(&r);
}

#[test]
fn attempts_are_bounded_and_the_last_failure_is_named() {
    let cfg = RouterConfig {
        max_attempts: 2,
        ..RouterConfig::default()
    };
    let mut r = router(&["a", "b", "c", "d"], cfg);
    let mut c = r.start(req(1, Op::Embed), t(0));
    let mut acts = drain(&mut r, &mut c, t(0));
    for k in 0..2 {
        let s = sent(&acts);
        assert_eq!(s.len(), 1, "attempt {k}");
        let _ = r.handle(
            &mut c,
            Event::Failed(s[0].0, Failure::Upstream5xx(500)),
            t(1),
        );
        acts = drain(&mut r, &mut c, t(1));
    }
    match finish(&acts) {
        Some(Outcome::Failed {
            failure: Failure::Upstream5xx(500),
            attempts: 2,
            after_first_byte: false,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    check_balanced(&r);
}

#[test]
fn ttft_timeout_fails_over_and_charges_the_node() {
    let mut cfg = RouterConfig {
        ttft_timeout: Duration::from_millis(500),
        ..RouterConfig::default()
    };
    cfg.breaker.failure_threshold = 1;
    let mut r = router(&["a", "b"], cfg);
    let mut c = r.start(req(1, Op::Stream), t(0));
    let acts = drain(&mut r, &mut c, t(0));
    let first = sent(&acts)[0];
    assert_eq!(
        acts.last(),
        Some(&Action::Wait {
            until: Some(t(500))
        })
    );
    // Not yet.
    assert!(sent(&drain(&mut r, &mut c, t(499))).is_empty());
    let acts = drain(&mut r, &mut c, t(500));
    assert!(acts.contains(&Action::Cancel {
        attempt: first.0,
        node: first.1
    }));
    let second = sent(&acts)[0];
    assert_ne!(second.1, first.1);
    assert!(matches!(
        r.node(first.1).unwrap().breaker.state(t(500)),
        BreakerState::Open { .. }
    ));
    // A late event for the timed-out attempt is stale and changes nothing.
    assert_eq!(
        r.handle(&mut c, Event::FirstByte(first.0), t(501)),
        Handled::Stale
    );
    let _ = r.handle(&mut c, Event::FirstByte(second.0), t(600));
    let _ = r.handle(&mut c, Event::Completed(second.0), t(700));
    assert!(matches!(
        finish(&drain(&mut r, &mut c, t(700))),
        Some(Outcome::Succeeded { .. })
    ));
    check_balanced(&r);
}

#[test]
fn overload_cools_node_without_opening_breaker() {
    let mut cfg = RouterConfig::default();
    cfg.breaker.failure_threshold = 1;
    let mut r = router(&["a"], cfg);
    let mut c = r.start(req(1, Op::Chat), t(0));
    let first = sent(&drain(&mut r, &mut c, t(0)))[0];
    let _ = r.handle(
        &mut c,
        Event::Overloaded(first.0, Some(Duration::from_secs(3600))),
        t(1),
    );
    let acts = drain(&mut r, &mut c, t(1));
    assert!(matches!(
        finish(&acts),
        Some(Outcome::Failed {
            failure: Failure::Overloaded,
            ..
        })
    ));
    let n = r.node(first.1).unwrap();
    assert_eq!(n.breaker.state(t(1)), BreakerState::Closed);
    // Huge Retry-After is bounded by overload.max_cooldown (30 s by default).
    assert!(n.overload.until().unwrap() <= t(1) + Duration::from_secs(30));
    let mut c2 = r.start(req(2, Op::Chat), t(2));
    match finish(&drain(&mut r, &mut c2, t(2))) {
        Some(Outcome::Rejected(Reject::AllNodesOverloaded { retry_after })) => {
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(30))
        }
        other => panic!("{other:?}"),
    }
    check_balanced(&r);
}

#[test]
fn client_cancel_never_charges_the_node() {
    let mut cfg = RouterConfig::default();
    cfg.breaker.failure_threshold = 1;
    let mut r = router(&["a"], cfg);
    for i in 0..5 {
        let mut c = r.start(req(i, Op::Stream), t(i));
        let s = sent(&drain(&mut r, &mut c, t(i)))[0];
        let _ = r.handle(&mut c, Event::ClientCancelled, t(i));
        let acts = drain(&mut r, &mut c, t(i));
        assert_eq!(
            acts[0],
            Action::Cancel {
                attempt: s.0,
                node: s.1
            }
        );
        assert_eq!(
            finish(&acts),
            Some(Outcome::Cancelled {
                after_first_byte: false
            })
        );
    }
    let n = r.node(NodeId(0)).unwrap();
    assert_eq!(n.breaker.state(t(10)), BreakerState::Closed);
    assert_eq!(n.breaker.consecutive_failures(), 0);
    check_balanced(&r);
}

#[test]
fn client_error_ends_the_call_unretried_and_uncharged() {
    let mut cfg = RouterConfig::default();
    cfg.breaker.failure_threshold = 1;
    let mut r = router(&["a", "b"], cfg);
    let mut c = r.start(req(1, Op::Chat), t(0));
    let s = sent(&drain(&mut r, &mut c, t(0)))[0];
    let _ = r.handle(&mut c, Event::ClientError(s.0, 400), t(1));
    let acts = drain(&mut r, &mut c, t(1));
    assert!(sent(&acts).is_empty());
    assert!(matches!(
        finish(&acts),
        Some(Outcome::Failed {
            failure: Failure::ClientError(400),
            ..
        })
    ));
    assert_eq!(
        r.node(s.1).unwrap().breaker.state(t(1)),
        BreakerState::Closed
    );
    check_balanced(&r);
}

#[test]
fn rejections_name_their_reason() {
    let mut r = router(&[], RouterConfig::default());
    let mut c = r.start(req(1, Op::Chat), t(0));
    assert_eq!(
        finish(&drain(&mut r, &mut c, t(0))),
        Some(Outcome::Rejected(Reject::NoEligibleNode(NoNode::NoNodes)))
    );

    let mut r = router(&["a", "b"], RouterConfig::default());
    r.set_mode(NodeId(0), Mode::Disabled, t(0)).unwrap();
    r.set_mode(NodeId(1), Mode::Disabled, t(0)).unwrap();
    let mut c = r.start(req(1, Op::Chat), t(0));
    assert_eq!(
        finish(&drain(&mut r, &mut c, t(0))),
        Some(Outcome::Rejected(Reject::NoEligibleNode(
            NoNode::AllDisabled
        )))
    );

    let mut r = router(&["a"], RouterConfig::default());
    let mut big = req(1, Op::Chat);
    big.payload_bytes = r.config().max_payload_bytes + 1;
    let mut c = r.start(big, t(0));
    assert!(matches!(
        finish(&drain(&mut r, &mut c, t(0))),
        Some(Outcome::Rejected(Reject::PayloadTooLarge { .. }))
    ));

    let m = r.catalog_mut().intern_model("llama3").unwrap();
    let mut spec = NodeSpec::new("b", NodeKind::OpenAiCompat).unwrap();
    spec.models = crate::catalog::ModelSet::EMPTY;
    r.add_node(spec).unwrap();
    r.set_mode(NodeId(0), Mode::Disabled, t(0)).unwrap();
    let mut q = req(2, Op::Chat);
    q.query.model = Some(m);
    let mut c = r.start(q, t(0));
    assert_eq!(
        finish(&drain(&mut r, &mut c, t(0))),
        Some(Outcome::Rejected(Reject::NoEligibleNode(
            NoNode::ModelNotServed
        )))
    );
    check_balanced(&r);
}

#[test]
fn saturated_calls_queue_and_are_granted_in_order() {
    let mut r = router(&["a"], RouterConfig::default());
    let mut spec = r.node(NodeId(0)).unwrap().spec.clone();
    spec.max_concurrency = 1;
    r.update_node(NodeId(0), spec).unwrap();
    let mut c1 = r.start(req(1, Op::Chat), t(0));
    let s1 = sent(&drain(&mut r, &mut c1, t(0)))[0];
    let mut c2 = r.start(req(2, Op::Chat), t(1));
    let mut c3 = r.start(req(3, Op::Chat), t(2));
    assert!(matches!(
        drain(&mut r, &mut c2, t(1)).last(),
        Some(Action::Wait { .. })
    ));
    assert!(matches!(
        drain(&mut r, &mut c3, t(2)).last(),
        Some(Action::Wait { .. })
    ));
    assert!(c2.is_queued() && c3.is_queued());
    assert_eq!(r.queue_depth(), 2);
    let _ = r.handle(&mut c1, Event::Completed(s1.0), t(10));
    assert_eq!(r.poll_wakeup(), Some(TraceId(2)));
    assert_eq!(r.poll_wakeup(), None);
    let s2 = sent(&drain(&mut r, &mut c2, t(11)));
    assert_eq!(s2.len(), 1);
    assert_eq!(r.metrics().op(Op::Chat).queue_wait.count(), 1);
    // c3 times out in the queue after queue_wait (5 s).
    let acts = drain(&mut r, &mut c3, t(5_002));
    assert_eq!(
        finish(&acts),
        Some(Outcome::Rejected(Reject::QueueWaitExpired))
    );
    let _ = r.handle(&mut c2, Event::Completed(s2[0].0), t(5_003));
    let _ = drain(&mut r, &mut c2, t(5_003));
    check_balanced(&r);
}

#[test]
fn queued_call_cancelled_releases_everything() {
    let cfg = RouterConfig {
        pools: PoolLimits::uniform(1),
        ..RouterConfig::default()
    };
    let mut r = router(&["a"], cfg);
    let mut c1 = r.start(req(1, Op::Chat), t(0));
    let s1 = sent(&drain(&mut r, &mut c1, t(0)))[0];
    let mut c2 = r.start(req(2, Op::Chat), t(0));
    let _ = drain(&mut r, &mut c2, t(0));
    assert!(c2.is_queued());
    // Grant c2, then cancel it before it polls: the parked permit must come back.
    let _ = r.handle(&mut c1, Event::Completed(s1.0), t(1));
    let _ = drain(&mut r, &mut c1, t(1));
    assert_eq!(r.poll_wakeup(), Some(TraceId(2)));
    let _ = r.handle(&mut c2, Event::ClientCancelled, t(2));
    assert_eq!(
        finish(&drain(&mut r, &mut c2, t(2))),
        Some(Outcome::Cancelled {
            after_first_byte: false
        })
    );
    check_balanced(&r);
    assert_eq!(r.queue_depth(), 0);
}

#[test]
fn busy_pool_without_queue_is_rejected() {
    let cfg = RouterConfig {
        pools: PoolLimits {
            global: 2,
            chat: 1,
            stream: 2,
            embed: 2,
            background: 1,
        },
        queue_wait: Duration::ZERO,
        ..RouterConfig::default()
    };
    let mut r = router(&["a"], cfg);
    let mut c1 = r.start(req(1, Op::Chat), t(0));
    let _ = drain(&mut r, &mut c1, t(0));
    let mut c2 = r.start(req(2, Op::Chat), t(0));
    assert_eq!(
        finish(&drain(&mut r, &mut c2, t(0))),
        Some(Outcome::Rejected(Reject::BusyPool(
            crate::admission::Pool::Chat
        )))
    );
}

#[test]
fn hedge_goes_to_another_node_and_the_loser_is_cancelled() {
    let mut cfg = RouterConfig::default();
    cfg.hedge.enabled = true;
    cfg.hedge.max_delay = Duration::from_millis(200);
    let mut r = router(&["a", "b", "c"], cfg);
    let mut c = r.start(req(1, Op::Stream), t(0));
    let acts = drain(&mut r, &mut c, t(0));
    let first = sent(&acts)[0];
    assert_eq!(
        acts.last(),
        Some(&Action::Wait {
            until: Some(t(200))
        })
    );
    let acts = drain(&mut r, &mut c, t(200));
    let hedge = match acts[0] {
        Action::Send {
            attempt,
            node,
            hedge: true,
            ..
        } => (attempt, node),
        other => panic!("{other:?}"),
    };
    assert_ne!(hedge.1, first.1);
    assert_eq!(r.attempts_in_flight(), 2);
    let _ = r.handle(&mut c, Event::FirstByte(hedge.0), t(250));
    let acts = drain(&mut r, &mut c, t(250));
    assert!(acts.contains(&Action::Cancel {
        attempt: first.0,
        node: first.1
    }));
    assert_eq!(r.attempts_in_flight(), 1);
    assert_eq!(r.metrics().hedges_won, 1);
    let _ = r.handle(&mut c, Event::Completed(hedge.0), t(300));
    assert!(matches!(
        finish(&drain(&mut r, &mut c, t(300))),
        Some(Outcome::Succeeded { attempts: 2, .. })
    ));
    check_balanced(&r);
}

#[test]
fn hedge_budget_limits_extra_attempts() {
    let mut cfg = RouterConfig::default();
    cfg.hedge.enabled = true;
    cfg.hedge.max_delay = Duration::from_millis(10);
    cfg.hedge.min_delay = Duration::from_millis(10);
    cfg.hedge.budget_ratio = 0.1;
    cfg.hedge.budget_burst = 1;
    let mut r = router(&["a", "b"], cfg);
    let mut hedges = 0;
    for i in 0..100u64 {
        let now = t(i * 1000);
        let mut c = r.start(req(i, Op::Stream), now);
        let first = sent(&drain(&mut r, &mut c, now))[0];
        let acts = drain(&mut r, &mut c, now + Duration::from_millis(10));
        hedges += sent(&acts).len();
        let _ = r.handle(
            &mut c,
            Event::Completed(first.0),
            now + Duration::from_millis(20),
        );
        let _ = drain(&mut r, &mut c, now + Duration::from_millis(20));
    }
    // 1 burst token + 0.1 per call -> about 11 hedges for 100 calls.
    assert!((9..=12).contains(&hedges), "hedges={hedges}");
    assert_eq!(r.metrics().hedges as usize, hedges);
    check_balanced(&r);
}

#[test]
fn call_deadline_ends_a_stream_after_first_byte() {
    let cfg = RouterConfig {
        call_timeout: Duration::from_secs(1),
        ..RouterConfig::default()
    };
    let mut r = router(&["a"], cfg);
    let mut c = r.start(req(1, Op::Stream), t(0));
    let s = sent(&drain(&mut r, &mut c, t(0)))[0];
    let _ = r.handle(&mut c, Event::FirstByte(s.0), t(10));
    assert_eq!(
        drain(&mut r, &mut c, t(10)).last(),
        Some(&Action::Wait {
            until: Some(t(1000))
        })
    );
    let acts = drain(&mut r, &mut c, t(1000));
    assert_eq!(
        acts[0],
        Action::Cancel {
            attempt: s.0,
            node: s.1
        }
    );
    assert!(matches!(
        finish(&acts),
        Some(Outcome::Failed {
            failure: Failure::DeadlineExceeded,
            after_first_byte: true,
            ..
        })
    ));
    check_balanced(&r);
}

#[test]
fn time_not_advancing_changes_nothing() {
    let mut r = router(&["a", "b"], RouterConfig::default());
    let mut c = r.start(req(1, Op::Stream), t(5));
    let _ = drain(&mut r, &mut c, t(5));
    for _ in 0..10 {
        assert!(matches!(r.poll(&mut c, t(5)), Action::Wait { .. }));
    }
    // Time going backwards is treated as no time passing.
    assert!(matches!(r.poll(&mut c, t(1)), Action::Wait { .. }));
    assert_eq!(r.attempts_in_flight(), 1);
}

#[test]
fn removed_node_slot_reuse_does_not_corrupt_counts() {
    let mut r = router(&["a"], RouterConfig::default());
    let mut c = r.start(req(1, Op::Chat), t(0));
    let s = sent(&drain(&mut r, &mut c, t(0)))[0];
    r.remove_node(s.1).unwrap();
    let new = r
        .add_node(NodeSpec::new("z", NodeKind::Ollama).unwrap())
        .unwrap();
    assert_eq!(new, s.1, "slot reused");
    let _ = r.handle(&mut c, Event::Completed(s.0), t(5));
    let _ = drain(&mut r, &mut c, t(5));
    assert_eq!(r.node(new).unwrap().in_flight, 0);
    assert_eq!(r.permits_outstanding(), 0);
}

#[test]
fn drained_node_used_only_as_last_resort() {
    let mut r = router(&["a", "b"], RouterConfig::default());
    r.set_mode(NodeId(0), Mode::Drain, t(0)).unwrap();
    for i in 0..20 {
        let mut c = r.start(req(i, Op::Chat), t(0));
        let s = sent(&drain(&mut r, &mut c, t(0)))[0];
        assert_eq!(s.1, NodeId(1));
        let _ = r.handle(&mut c, Event::Completed(s.0), t(1));
        let _ = drain(&mut r, &mut c, t(1));
    }
    r.set_mode(NodeId(1), Mode::Disabled, t(0)).unwrap();
    let mut c = r.start(req(99, Op::Chat), t(2));
    assert_eq!(sent(&drain(&mut r, &mut c, t(2)))[0].1, NodeId(0));
}

#[test]
fn failover_waits_for_a_full_node_instead_of_failing() {
    let mut r = router(&["a", "b"], RouterConfig::default());
    for i in 0..2 {
        let mut spec = r.node(NodeId(i)).unwrap().spec.clone();
        spec.max_concurrency = 1;
        r.update_node(NodeId(i), spec).unwrap();
    }
    let mut c1 = r.start(req(1, Op::Chat), t(0));
    let s1 = sent(&drain(&mut r, &mut c1, t(0)))[0];
    let mut c2 = r.start(req(2, Op::Chat), t(0));
    let s2 = sent(&drain(&mut r, &mut c2, t(0)))[0];
    assert_ne!(s1.1, s2.1);
    // c1's node fails; the only untried node is busy with c2: c1 waits.
    let _ = r.handle(
        &mut c1,
        Event::Failed(s1.0, Failure::Upstream5xx(502)),
        t(1),
    );
    let acts = drain(&mut r, &mut c1, t(1));
    assert!(finish(&acts).is_none(), "{acts:?}");
    assert!(c1.is_queued());
    assert_eq!(r.permits_outstanding(), 1, "a waiting call holds no permit");
    // c2 completes: c1 is woken and goes to c2's node, never back to its own.
    let _ = r.handle(&mut c2, Event::Completed(s2.0), t(2));
    let _ = drain(&mut r, &mut c2, t(2));
    assert_eq!(r.poll_wakeup(), Some(TraceId(1)));
    let retry = sent(&drain(&mut r, &mut c1, t(2)));
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].1, s2.1);
    assert_eq!(r.metrics().failovers, 1);
    let _ = r.handle(&mut c1, Event::Completed(retry[0].0), t(3));
    assert!(matches!(
        finish(&drain(&mut r, &mut c1, t(3))),
        Some(Outcome::Succeeded { attempts: 2, .. })
    ));
    check_balanced(&r);
}

#[test]
fn failover_wait_that_expires_names_the_last_failure() {
    let mut r = router(&["a", "b"], RouterConfig::default());
    for i in 0..2 {
        let mut spec = r.node(NodeId(i)).unwrap().spec.clone();
        spec.max_concurrency = 1;
        r.update_node(NodeId(i), spec).unwrap();
    }
    let mut c1 = r.start(req(1, Op::Chat), t(0));
    let s1 = sent(&drain(&mut r, &mut c1, t(0)))[0];
    let mut c2 = r.start(req(2, Op::Chat), t(0));
    let _ = drain(&mut r, &mut c2, t(0));
    let _ = r.handle(&mut c1, Event::Failed(s1.0, Failure::Connect), t(1));
    let _ = drain(&mut r, &mut c1, t(1));
    let expiry = t(1) + r.config().queue_wait;
    let acts = drain(&mut r, &mut c1, expiry);
    assert!(
        matches!(
            finish(&acts),
            Some(Outcome::Failed {
                failure: Failure::Connect,
                attempts: 1,
                ..
            })
        ),
        "{acts:?}"
    );
    let _ = r.handle(&mut c2, Event::ClientCancelled, t(9_000));
    let _ = drain(&mut r, &mut c2, t(9_000));
    check_balanced(&r);
}

#[test]
fn failover_skips_a_planned_node_drained_since_the_plan() {
    // Found by the core_ops fuzz target: the failover walked the call's old
    // plan and took a node drained after the plan was made, although enabled
    // nodes were still eligible.
    let cfg = RouterConfig {
        policy: crate::config::Policy::RoundRobin,
        ..RouterConfig::default()
    };
    let mut r = router(&["a", "b", "c", "d"], cfg);
    let mut c = r.start(req(1, Op::Chat), t(0));
    let first = sent(&drain(&mut r, &mut c, t(0)))[0];
    assert_eq!(first.1, NodeId(0), "round robin starts at the first node");
    // The plan is [a, b, c]; b starts draining while a's attempt runs.
    r.set_mode(NodeId(1), Mode::Drain, t(1)).unwrap();
    let _ = r.handle(&mut c, Event::Failed(first.0, Failure::Connect), t(2));
    let second = sent(&drain(&mut r, &mut c, t(2)))[0];
    assert_ne!(second.1, NodeId(1), "a drained node is only a last resort");
    assert_eq!(second.1, NodeId(2), "the next enabled node of the plan");
    // With every other node tried or disabled, the drained node is used.
    r.set_mode(NodeId(3), Mode::Disabled, t(3)).unwrap();
    let _ = r.handle(&mut c, Event::Failed(second.0, Failure::Connect), t(4));
    let third = sent(&drain(&mut r, &mut c, t(4)))[0];
    assert_eq!(third.1, NodeId(1), "the drained node as the last resort");
}
