//! SharedRouter with real threads: no leaks under contention, cancel on drop,
//! recovery from a poisoned lock. The interleavings themselves are checked
//! exhaustively (for small cases) by loom in `tests/loom_shared.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::vec::Vec;

use super::*;
use crate::admission::PoolLimits;
use crate::call::TraceEvent;
use crate::call::{AttemptId, Outcome};
use crate::node::{NodeKind, NodeSpec};
use crate::reason::{Failure, Reject};
use crate::route::{Op, Query};
use crate::time::Duration;

type S = SharedRouter<4, 64, 32>;

fn shared(nodes: &[(&str, u16)], global: u32) -> S {
    let cfg = RouterConfig {
        pools: PoolLimits::uniform(global),
        queue_wait: Duration::from_millis(50),
        ..RouterConfig::default()
    };
    let s = S::new(cfg, 11).unwrap();
    for (name, conc) in nodes {
        let mut spec = NodeSpec::new(name, NodeKind::Ollama).unwrap();
        spec.max_concurrency = *conc;
        s.with_mut(|r| r.add_node(spec)).unwrap();
    }
    s
}

fn req(id: u64) -> Request {
    Request::new(TraceId(id), Query::new(Op::Chat))
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Nothing held, nothing waiting, nothing in flight, nothing reserved.
fn assert_idle(s: &S) {
    s.with(|r| {
        assert_eq!(r.active_calls(), 0, "calls left active");
        assert_eq!(r.permits_outstanding(), 0, "permits leaked");
        assert_eq!(r.attempts_in_flight(), 0, "attempts leaked");
        assert_eq!(r.queue_depth(), 0, "queue entries leaked");
        for (id, n) in r.nodes().iter() {
            assert_eq!(n.reserved, 0, "node {id:?} slot reservation leaked");
        }
    });
}

fn outcomes_total(s: &S) -> u64 {
    s.with(|r| {
        let m = r.metrics().op(Op::Chat);
        m.succeeded + m.cancelled + m.failed.iter().sum::<u64>() + m.rejected.iter().sum::<u64>()
    })
}

/// Polls until the call waits or ends; returns the attempt sent, if any, and the outcome.
fn drive(h: &mut CallHandle<4, 64, 32>, now: Instant) -> (Option<AttemptId>, Option<Outcome>) {
    let mut sent = None;
    loop {
        match h.poll(now) {
            Action::Send { attempt, .. } => sent = Some(attempt),
            Action::Cancel { .. } => {}
            Action::Wait { .. } | Action::Done => return (sent, None),
            Action::Finish(o) => return (sent, Some(o)),
        }
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<SharedRouter<4>>();
    check::<CallHandle<4>>();
}

/// One gateway task: runs `calls` calls ending in every way a call can end,
/// on a clock shared by all tasks. Queued calls poll until granted or expired.
fn task(s: S, clock: &AtomicU64, first_id: u64, calls: u64) {
    let now = || t(clock.fetch_add(1, Ordering::Relaxed));
    for i in 0..calls {
        let mut h = s.begin(req(first_id + i), now());
        let (mut live, mut done) = drive(&mut h, now());
        // Queued: the waiter comes back until granted or past its 50 ms wait.
        // Every poll advances the shared clock, so this ends within ~50 polls.
        let mut spins = 0;
        while live.is_none() && done.is_none() && !h.is_finished() {
            while s.poll_wakeup().is_some() {}
            std::thread::yield_now();
            (live, done) = drive(&mut h, now());
            spins += 1;
            assert!(spins < 10_000, "a queued call neither granted nor expired");
        }
        let Some(a) = live else { continue };
        match i % 6 {
            0 => {
                let _ = h.handle(Event::Completed(a), now());
            }
            1 => {
                // Fail over once, then finish with whatever comes.
                let _ = h.handle(Event::Failed(a, Failure::Connect), now());
                // With every untried node full, the failover waits in the
                // queue: come back until it is sent or the wait expires.
                let mut step = drive(&mut h, now());
                let mut spins = 0;
                while step == (None, None) && !h.is_finished() {
                    while s.poll_wakeup().is_some() {}
                    std::thread::yield_now();
                    step = drive(&mut h, now());
                    spins += 1;
                    assert!(
                        spins < 10_000,
                        "a failover wait neither granted nor expired"
                    );
                }
                if let (Some(b), None) = step {
                    let _ = h.handle(Event::Completed(b), now());
                }
            }
            2 => {
                let _ = h.handle(Event::FirstByte(a), now());
                let _ = h.handle(Event::Completed(a), now());
            }
            3 => {
                let _ = h.handle(Event::ClientCancelled, now());
            }
            4 => {
                let _ = h.handle(Event::FirstByte(a), now());
                let _ = h.handle(Event::Failed(a, Failure::BrokenStream), now());
            }
            // 5: the task drops the call mid-flight.
            _ => continue,
        }
        let _ = drive(&mut h, now());
        assert!(h.is_finished(), "call {} did not finish", first_id + i);
    }
}

#[test]
fn eight_threads_two_hundred_calls_each_leak_nothing() {
    const THREADS: u64 = 8;
    const CALLS: u64 = 200;
    let s = shared(&[("a", 2), ("b", 2), ("c", 1)], 4);
    let clock = std::sync::Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|k| {
            let s = s.clone();
            let clock = clock.clone();
            std::thread::spawn(move || task(s, &clock, k * 1_000, CALLS))
        })
        .collect();
    for w in workers {
        w.join().expect("a gateway task panicked");
    }
    assert!(!s.is_poisoned());
    assert_idle(&s);
    assert_eq!(outcomes_total(&s), THREADS * CALLS, "one outcome per call");
    let calls = s.with(|r| r.metrics().op(Op::Chat).calls);
    assert_eq!(calls, THREADS * CALLS);
}

#[test]
fn dropping_a_running_call_cancels_it_at_its_last_now() {
    let s = shared(&[("a", 4)], 4);
    let mut h = s.begin(req(1), t(0));
    let (sent, done) = drive(&mut h, t(7));
    assert!(sent.is_some() && done.is_none());
    assert_eq!(h.last_now(), t(7));
    assert_eq!(s.with(|r| r.attempts_in_flight()), 1);
    drop(h);
    assert_idle(&s);
    s.with(|r| {
        assert_eq!(r.metrics().op(Op::Chat).cancelled, 1);
        let last = r.trace().for_trace(TraceId(1)).last().copied().unwrap();
        assert_eq!(last.at, t(7), "the drop is stamped with the last now seen");
        assert_eq!(
            last.event,
            TraceEvent::Finished(Outcome::Cancelled {
                after_first_byte: false
            })
        );
        // The attempt counts as cancelled, not failed: no node is charged.
        assert_eq!(r.metrics().node(NodeId(0)).unwrap().cancelled, 1);
        assert_eq!(r.metrics().node(NodeId(0)).unwrap().failures, 0);
    });
}

#[test]
fn dropping_a_call_never_polled_ends_it() {
    let s = shared(&[("a", 4)], 4);
    let h = s.begin(req(1), t(3));
    assert_eq!(s.with(|r| r.active_calls()), 1);
    drop(h);
    assert_idle(&s);
    assert_eq!(s.with(|r| r.metrics().op(Op::Chat).cancelled), 1);
}

#[test]
fn dropping_a_granted_queued_call_returns_its_parked_permit() {
    let s = shared(&[("a", 4)], 1);
    let mut a = s.begin(req(1), t(0));
    let (sa, _) = drive(&mut a, t(0));
    let mut b = s.begin(req(2), t(1));
    assert_eq!(drive(&mut b, t(1)), (None, None));
    assert!(b.call().is_queued());
    assert_eq!(s.poll_timeout(), Some(t(51)));
    // a finishes: its permit is granted to b and parked until b polls.
    let _ = a.handle(Event::Completed(sa.unwrap()), t(2));
    assert_eq!(s.poll_wakeup(), Some(TraceId(2)));
    assert_eq!(
        s.with(|r| (r.permits_outstanding(), r.queue_depth())),
        (1, 0)
    );
    assert_eq!(s.with(|r| r.node(NodeId(0)).unwrap().reserved), 1);
    drop(b);
    drop(a);
    assert_idle(&s);
    s.with(|r| {
        let m = r.metrics().op(Op::Chat);
        assert_eq!((m.succeeded, m.cancelled), (1, 1));
    });
}

#[test]
fn dropping_a_finished_call_changes_nothing() {
    let s = shared(&[("a", 4)], 4);
    let mut h = s.begin(req(1), t(0));
    let (sent, _) = drive(&mut h, t(0));
    let _ = h.handle(Event::Completed(sent.unwrap()), t(5));
    assert!(h.is_finished());
    drop(h);
    assert_idle(&s);
    s.with(|r| {
        let m = r.metrics().op(Op::Chat);
        assert_eq!((m.succeeded, m.cancelled), (1, 0));
        assert_eq!(r.trace().for_trace(TraceId(1)).count(), 3); // admitted, sent, finished
    });
}

#[test]
fn a_task_that_panics_holding_a_call_returns_its_capacity() {
    let s = shared(&[("a", 4)], 4);
    let s2 = s.clone();
    let joined = std::thread::spawn(move || {
        let mut h = s2.begin(req(1), t(0));
        let _ = drive(&mut h, t(0));
        panic!("the request task fails outside the router");
    })
    .join();
    assert!(joined.is_err());
    assert!(!s.is_poisoned(), "the lock was not held while panicking");
    assert_idle(&s);
}

#[test]
fn a_poisoned_router_keeps_routing() {
    let s = shared(&[("a", 4)], 4);
    let s2 = s.clone();
    let joined = std::thread::spawn(move || {
        s2.with_mut(|r| {
            let _ = r.add_node(NodeSpec::new("b", NodeKind::Ollama).unwrap());
            panic!("a bug while the router is locked");
        })
    })
    .join();
    assert!(joined.is_err());
    assert!(s.is_poisoned());
    // The change made before the panic stays; the router keeps serving.
    assert_eq!(s.with(|r| r.nodes().iter().count()), 2);
    let mut h = s.begin(req(1), t(0));
    let (sent, _) = drive(&mut h, t(0));
    let _ = h.handle(Event::Completed(sent.unwrap()), t(1));
    assert!(matches!(
        drive(&mut h, t(1)),
        (None, Some(Outcome::Succeeded { attempts: 1, .. }))
    ));
    assert_idle(&s);
}

#[test]
fn mirrored_inputs_reach_the_router() {
    let s = shared(&[("a", 4)], 1);
    assert_eq!(
        s.handle_heartbeat(NodeId(3), Telemetry::default(), t(0)),
        Err(NodeError::UnknownNode)
    );
    assert!(
        s.handle_heartbeat(NodeId(0), Telemetry::default(), t(0))
            .is_ok()
    );
    assert_eq!(
        s.set_mode(NodeId(3), Mode::Disabled, t(0)),
        Err(NodeError::UnknownNode)
    );

    // A queued call expires through handle_timeout at its poll_timeout.
    let mut a = s.begin(req(1), t(0));
    let (sa, _) = drive(&mut a, t(0));
    let mut b = s.begin(req(2), t(0));
    assert_eq!(drive(&mut b, t(0)), (None, None));
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, t(50));
    s.handle_timeout(deadline);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.poll_wakeup(), None);
    assert_eq!(
        drive(&mut b, t(50)),
        (None, Some(Outcome::Rejected(Reject::QueueWaitExpired)))
    );
    let _ = a.handle(Event::Completed(sa.unwrap()), t(60));

    // With the only node disabled, a new call has nowhere to go.
    s.set_mode(NodeId(0), Mode::Disabled, t(70)).unwrap();
    let mut c = s.begin(req(3), t(70));
    assert!(matches!(
        drive(&mut c, t(70)),
        (None, Some(Outcome::Rejected(_)))
    ));
    assert_idle(&s);
}
