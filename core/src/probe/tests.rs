//! Probe scheduling, the breaker's half-open trial, inventory and strict
//! model routing, on virtual time.

extern crate std;
use std::vec::Vec;

use super::*;
use crate::breaker::BreakerState;
use crate::call::{Action, Event, Outcome, Request};
use crate::catalog::{ModelId, ModelSet};
use crate::config::RouterConfig;
use crate::node::{NodeKind, NodeSpec};
use crate::reason::Exclusion;
use crate::route::{Op, Query, Verdict};

type R = Router<8, 64, 16>;

fn cfg() -> RouterConfig {
    let mut c = RouterConfig::default();
    c.probe.enabled = true;
    c.breaker.failure_threshold = 2;
    c
}

fn router(names: &[&str], c: RouterConfig) -> R {
    let mut r = R::new(c, 11).unwrap();
    for n in names {
        r.add_node(NodeSpec::new(n, NodeKind::Ollama).unwrap())
            .unwrap();
    }
    r
}

fn s(x: u64) -> Instant {
    Instant::from_secs(x)
}

fn all_due(r: &mut R, now: Instant) -> Vec<Probe> {
    let mut v = Vec::new();
    while let Some(p) = r.poll_probe(now) {
        v.push(p);
        assert!(v.len() < 64, "poll_probe never ran dry");
    }
    v
}

#[test]
fn disabled_probes_do_nothing() {
    let mut r = router(&["a", "b"], RouterConfig::default());
    assert_eq!(r.poll_probe(s(1)), None);
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(r.probe_timeout(), None);
    // No random draw was made: routing matches an untouched router.
    let mut fresh = router(&["a", "b"], RouterConfig::default());
    let q = Query::new(Op::Chat);
    for _ in 0..8 {
        assert_eq!(r.decide(&q, s(2)), fresh.decide(&q, s(2)));
    }
    assert_eq!(r.metrics().probes.sent, [0, 0]);
}

#[test]
fn first_probes_are_due_at_once_then_each_interval_with_jitter() {
    let mut r = router(&["a", "b"], cfg());
    assert_eq!(
        r.poll_timeout(),
        Some(Instant::ZERO),
        "new nodes are due now"
    );
    let first = all_due(&mut r, s(1));
    let kinds: Vec<_> = first.iter().map(|p| (p.node.0, p.kind)).collect();
    assert_eq!(
        kinds,
        [
            (0, ProbeKind::Health),
            (0, ProbeKind::Inventory),
            (1, ProbeKind::Health),
            (1, ProbeKind::Inventory)
        ]
    );
    assert!(first.iter().all(|p| p.deadline == s(3)));
    // In flight: nothing more is due; the timer is the earliest deadline.
    assert_eq!(r.poll_probe(s(2)), None);
    assert_eq!(r.poll_timeout(), Some(s(3)));
    for p in &first {
        r.handle_probe(*p, ProbeOutcome::Ok, s(2));
    }
    // Next health within 10 s ± 10 %, inventory within 60 s ± 10 %.
    let next = r.poll_timeout().unwrap();
    assert!(next >= s(11) && next <= s(13), "{next:?}");
    assert_eq!(r.poll_probe(s(10)), None);
    let later = all_due(&mut r, s(13));
    assert_eq!(later.len(), 2);
    assert!(later.iter().all(|p| p.kind == ProbeKind::Health));
    assert_eq!(r.metrics().probes.sent, [4, 2]);
    assert_eq!(r.metrics().probes.failed, [0, 0]);
    // Probes are not calls.
    assert_eq!(r.metrics().op(Op::Chat).calls, 0);
    assert_eq!(r.attempts_in_flight(), 0);
    assert_eq!(r.metrics().node(NodeId(0)).unwrap().attempts, 0);
    let sent = r
        .trace()
        .for_trace(PROBE_TRACE)
        .filter(|e| matches!(e.event, TraceEvent::ProbeSent { .. }))
        .count();
    assert_eq!(sent, 6);
}

#[test]
fn disabled_nodes_are_not_probed_and_pinned_nodes_get_no_inventory() {
    let mut r = router(&["a"], cfg());
    let mut pinned = NodeSpec::new("pinned", NodeKind::Ollama).unwrap();
    pinned.pinned_models = true;
    let p = r.add_node(pinned).unwrap();
    let off = r
        .add_node(NodeSpec::new("off", NodeKind::Ollama).unwrap())
        .unwrap();
    r.set_mode(off, Mode::Disabled, s(0)).unwrap();
    let due = all_due(&mut r, s(1));
    assert!(due.iter().all(|x| x.node != off));
    assert_eq!(
        due.iter()
            .filter(|x| x.node == p)
            .map(|x| x.kind)
            .collect::<Vec<_>>(),
        [ProbeKind::Health]
    );
    // Pinned: inventory requests and model updates are refused quietly.
    r.request_inventory(p, s(1)).unwrap();
    let mut m = ModelSet::EMPTY;
    m.insert(ModelId(3));
    assert_eq!(r.set_models(p, m), Ok(false));
    assert!(r.node(p).unwrap().spec.models.is_any());
    assert_eq!(r.set_models(NodeId(0), m), Ok(true));
    assert_eq!(r.node(NodeId(0)).unwrap().spec.models, m);
    assert_eq!(
        r.request_inventory(NodeId(7), s(1)),
        Err(NodeError::UnknownNode)
    );
}

#[test]
fn request_inventory_makes_one_due_now() {
    let mut r = router(&["a"], cfg());
    for p in all_due(&mut r, s(1)) {
        r.handle_probe(p, ProbeOutcome::Ok, s(1));
    }
    assert!(r.poll_probe(s(5)).is_none());
    r.request_inventory(NodeId(0), s(5)).unwrap();
    assert_eq!(r.poll_timeout(), Some(s(5)));
    let p = r.poll_probe(s(5)).unwrap();
    assert_eq!((p.node, p.kind), (NodeId(0), ProbeKind::Inventory));
}

#[test]
fn failed_health_probes_open_the_breaker_and_the_probe_is_the_half_open_trial() {
    let mut r = router(&["a", "b"], cfg());
    let a = NodeId(0);
    // Two failed health probes (threshold 2) open a's breaker.
    let mut now = s(1);
    for at in [s(1), s(12)] {
        now = at;
        for p in all_due(&mut r, now) {
            let outcome = if p.node == a && p.kind == ProbeKind::Health {
                ProbeOutcome::Failed(Failure::Connect)
            } else {
                ProbeOutcome::Ok
            };
            r.handle_probe(p, outcome, now);
        }
    }
    let BreakerState::Open { until } = r.node(a).unwrap().breaker.state(now) else {
        panic!("breaker should be open: {:?}", r.node(a).unwrap().breaker);
    };
    assert_eq!(r.metrics().node(a).unwrap().breaker_opens, 1);
    assert_eq!(r.metrics().probes.failed, [2, 0]);
    // While Open: no probe for a; the timer says when it turns half-open.
    assert!(all_due(&mut r, now).iter().all(|p| p.node != a));
    assert!(r.poll_timeout().unwrap() <= until);
    // At `until` the health probe is due and takes the half-open slot:
    // calls cannot use a until the probe says so.
    let trial = all_due(&mut r, until)
        .into_iter()
        .find(|p| p.node == a)
        .unwrap();
    assert_eq!(trial.kind, ProbeKind::Health);
    assert_eq!(r.node(a).unwrap().breaker.probes_in_flight(), 1);
    let mut a_verdict = None;
    let _ = r.preview(&Query::new(Op::Chat), until, &mut |id, v| {
        if id == a {
            a_verdict = Some(v);
        }
    });
    assert!(matches!(
        a_verdict,
        Some(Verdict::Excluded(Exclusion::BreakerOpen { .. }))
    ));
    // A failed trial re-opens it for longer.
    r.handle_probe(trial, ProbeOutcome::Failed(Failure::Timeout), until);
    let b = r.node(a).unwrap().breaker;
    assert_eq!(b.consecutive_opens(), 2);
    let BreakerState::Open { until: again } = b.state(until) else {
        panic!("re-opened")
    };
    assert!(
        again - until >= Duration::from_millis(1600),
        "longer cooldown"
    );
    // A successful trial closes it.
    let trial = all_due(&mut r, again)
        .into_iter()
        .find(|p| p.node == a)
        .unwrap();
    r.handle_probe(trial, ProbeOutcome::Ok, again);
    assert_eq!(
        r.node(a).unwrap().breaker.state(again),
        BreakerState::Closed
    );
    assert_eq!(r.node(a).unwrap().breaker.consecutive_opens(), 0);
}

#[test]
fn a_probe_past_its_deadline_fails_and_a_late_answer_is_ignored() {
    let mut c = cfg();
    c.breaker.failure_threshold = 1;
    let mut r = router(&["a"], c);
    let p = r.poll_probe(s(1)).unwrap();
    assert_eq!(p.kind, ProbeKind::Health);
    let _inventory = r.poll_probe(s(1)).unwrap();
    assert_eq!(r.poll_timeout(), Some(s(3)));
    r.handle_timeout(s(3));
    assert_eq!(r.metrics().probes.failed, [1, 1]);
    assert!(matches!(
        r.node(NodeId(0)).unwrap().breaker.state(s(3)),
        BreakerState::Open { .. }
    ));
    let ended: Vec<_> = r
        .trace()
        .for_trace(PROBE_TRACE)
        .filter_map(|e| match e.event {
            TraceEvent::ProbeEnded { failure, .. } => Some(failure),
            _ => None,
        })
        .collect();
    assert_eq!(ended, [Some(Failure::Timeout), Some(Failure::Timeout)]);
    // The late success changes nothing.
    r.handle_probe(p, ProbeOutcome::Ok, s(4));
    assert!(matches!(
        r.node(NodeId(0)).unwrap().breaker.state(s(3)),
        BreakerState::Open { .. }
    ));
    assert_eq!(r.metrics().probes.failed, [1, 1]);
}

#[test]
fn health_success_on_a_closed_node_keeps_call_failures_and_overload_is_not_charged() {
    let mut c = cfg();
    c.breaker.failure_threshold = 3;
    let mut r = router(&["a"], c);
    let a = NodeId(0);
    // One call failure on a.
    let mut call = r.start(
        Request::new(crate::trace::TraceId(1), Query::new(Op::Chat)),
        s(0),
    );
    let Action::Send { attempt, .. } = r.poll(&mut call, s(0)) else {
        panic!()
    };
    let _ = r.handle(&mut call, Event::Failed(attempt, Failure::Connect), s(0));
    assert_eq!(r.node(a).unwrap().breaker.consecutive_failures(), 1);
    let p = r.poll_probe(s(1)).unwrap();
    r.handle_probe(p, ProbeOutcome::Ok, s(1));
    assert_eq!(r.node(a).unwrap().breaker.consecutive_failures(), 1);
    // A 429/503 on a probe does not count either.
    let p = r.poll_probe(s(20)).unwrap();
    assert_eq!(p.kind, ProbeKind::Health);
    r.handle_probe(p, ProbeOutcome::Failed(Failure::Overloaded), s(20));
    assert_eq!(r.node(a).unwrap().breaker.consecutive_failures(), 1);
    let p = r.poll_probe(s(40)).unwrap();
    r.handle_probe(p, ProbeOutcome::Failed(Failure::Upstream5xx(500)), s(40));
    assert_eq!(r.node(a).unwrap().breaker.consecutive_failures(), 2);
}

#[test]
fn a_removed_node_forgets_its_probes() {
    let mut r = router(&["a"], cfg());
    let p = r.poll_probe(s(1)).unwrap();
    r.remove_node(p.node).unwrap();
    r.handle_probe(p, ProbeOutcome::Failed(Failure::Connect), s(1));
    let again = r
        .add_node(NodeSpec::new("a", NodeKind::Ollama).unwrap())
        .unwrap();
    assert_eq!(again, p.node);
    // Fresh state: both probes due at once, nothing stale in flight.
    let due = all_due(&mut r, s(1));
    assert_eq!(due.len(), 2);
    assert_eq!(r.node(again).unwrap().breaker.consecutive_failures(), 0);
}

fn model_router(strict: bool) -> (R, ModelId, ModelId) {
    let mut c = RouterConfig::default();
    c.strict_models = strict;
    let mut r = R::new(c, 3).unwrap();
    let m1 = r.catalog_mut().intern_model("llama3").unwrap();
    let m2 = r.catalog_mut().intern_model("qwen").unwrap();
    let mut a = NodeSpec::new("lists", NodeKind::Ollama).unwrap();
    a.models = ModelSet::EMPTY;
    a.models.insert(m1);
    r.add_node(a).unwrap();
    r.add_node(NodeSpec::new("any", NodeKind::Ollama).unwrap())
        .unwrap();
    (r, m1, m2)
}

fn verdicts(r: &R, model: ModelId) -> Vec<bool> {
    let mut q = Query::new(Op::Chat);
    q.model = Some(model);
    let mut v = Vec::new();
    let _ = r.preview(&q, s(1), &mut |_, verdict| {
        v.push(matches!(verdict, Verdict::Candidate(_)))
    });
    v
}

#[test]
fn strict_models_drops_any_model_nodes_only_while_another_node_lists_the_model() {
    // Not strict: a node with an unknown inventory ("any") serves any model.
    let (r, m1, m2) = model_router(false);
    assert_eq!(verdicts(&r, m1), [true, true]);
    assert_eq!(verdicts(&r, m2), [false, true]);
    // Strict: it yields to the node that lists m1, still serves m2.
    let (mut r, m1, m2) = model_router(true);
    assert_eq!(verdicts(&r, m1), [true, false]);
    assert_eq!(verdicts(&r, m2), [false, true]);
    // An alias counts as listing.
    let mut spec = r.node(NodeId(1)).unwrap().spec.clone();
    spec.add_alias(m1, m2).unwrap();
    r.update_node(NodeId(1), spec.clone()).unwrap();
    assert_eq!(verdicts(&r, m1), [true, true]);
    spec.aliases.clear();
    r.update_node(NodeId(1), spec).unwrap();
    // With the listing node disabled, the "any" node serves m1 again.
    r.set_mode(NodeId(0), Mode::Disabled, s(0)).unwrap();
    assert_eq!(verdicts(&r, m1), [false, true]);
    r.set_mode(NodeId(0), Mode::Enabled, s(0)).unwrap();
    // An inventory that drops m1 makes the "any" node eligible again.
    r.set_models(NodeId(0), ModelSet::EMPTY).unwrap();
    assert_eq!(verdicts(&r, m1), [false, true]);
}

#[test]
fn every_node_ejected_fails_fast_with_the_earliest_half_open_time() {
    let mut c = RouterConfig::default();
    c.breaker.failure_threshold = 1;
    c.breaker.jitter = 0.0;
    // a opens at 0 s (half-open at 1 s), b at 0.1 s (half-open at 1.1 s).
    let now = Instant::from_millis(500);
    let mut r2 = router(&["a", "b"], c);
    for (i, at) in [(0u64, s(0)), (1, Instant::from_millis(100))] {
        let mut q = Query::new(Op::Chat);
        q.pin = Some(NodeId(i as u16));
        let mut call = r2.start(Request::new(crate::trace::TraceId(i), q), at);
        let Action::Send { attempt, .. } = r2.poll(&mut call, at) else {
            panic!()
        };
        let _ = r2.handle(&mut call, Event::Failed(attempt, Failure::Connect), at);
    }
    let mut call = r2.start(
        Request::new(crate::trace::TraceId(9), Query::new(Op::Chat)),
        now,
    );
    let Action::Finish(Outcome::Rejected(reject)) = r2.poll(&mut call, now) else {
        panic!("all ejected: fail fast")
    };
    assert_eq!(reject.retry_after(), Some(Duration::from_millis(500)));
    assert!(reject.is_transient());
    assert_eq!(reject.label(), "no_eligible_node");
    assert_eq!(r2.attempts_in_flight(), 0);
}
