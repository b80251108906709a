//! loom models of [`SharedRouter`]: every interleaving (up to the preemption
//! bound) of a few gateway threads sharing one small router.
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p drover-core --features std --release --test loom_shared
//! ```
//!
//! Release builds compile `debug_assert!` out, so the models check the
//! properties those assertions guard directly, against an oracle rebuilt from
//! the decision trace under the same lock (see [`check`]). Adding
//! `CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true` to the command runs the
//! core's own assertions as well.
#![cfg(loom)]

use std::collections::HashMap;

use drover_core::Instant;
use drover_core::admission::PoolLimits;
use drover_core::call::{Action, AttemptId, Event, Handled, Outcome, Request, TraceEvent};
use drover_core::config::{RetryBudget, RouterConfig};
use drover_core::node::{Mode, NodeId, NodeKind, NodeSpec};
use drover_core::reason::{Failure, Reject};
use drover_core::route::{Op, Query};
use drover_core::router::Router;
use drover_core::shared::{CallHandle, SharedRouter};
use drover_core::time::Duration;
use drover_core::trace::TraceId;
use loom::sync::{Arc, Mutex};
use loom::thread;

type R = Router<2, 4, 4>;
type S = SharedRouter<2, 4, 4>;
type H = CallHandle<2, 4, 4>;

/// Queue deadlines fall at `t0 + QUEUE_WAIT_MS`.
const QUEUE_WAIT_MS: u64 = 100;
/// A time past every queue deadline in the models (and before any call deadline).
const LATE_MS: u64 = 200;

/// loom runs its threads on 32 KiB stacks, but a router is built on the
/// stack before it is boxed (about 110 KiB here, mostly the trace ring), so
/// every thread of these models gets a bigger one (the size is in words).
const STACK_WORDS: usize = 1 << 17;

fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    thread::Builder::new()
        .stack_size(STACK_WORDS)
        .spawn(f)
        .expect("loom allows this many threads")
}

/// `loom::model` with `body` on a big-stack thread.
fn model(body: fn()) {
    loom::model(move || spawn(body).join().unwrap());
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Two nodes, "a" and "b", with these concurrency limits.
fn shared(global: u32, node_concurrency: [u16; 2]) -> S {
    let cfg = RouterConfig {
        pools: PoolLimits::uniform(global),
        queue_wait: Duration::from_millis(QUEUE_WAIT_MS),
        ..RouterConfig::default()
    };
    let s = S::new(cfg, 5).unwrap();
    for (name, concurrency) in ["a", "b"].into_iter().zip(node_concurrency) {
        let mut spec = NodeSpec::new(name, NodeKind::Ollama).unwrap();
        spec.max_concurrency = concurrency;
        s.with_mut(|r| r.add_node(spec)).unwrap();
    }
    s
}

fn req(id: u64) -> Request {
    Request::new(TraceId(id), Query::new(Op::Chat))
}

/// Per call, as the trace tells it.
#[derive(Default)]
struct Seen {
    holds_permit: bool,
    queued: bool,
    finished: u32,
}

/// Every router invariant a thread can check between two of its steps,
/// against an oracle rebuilt from the decision trace (which never wraps in
/// these small models):
///
/// - each node's `in_flight` equals its attempts sent minus those that ended
///   (failed, cancelled, or the one that completed), and no attempt ends
///   twice (the running count never goes negative: no underflow hidden by
///   the core's saturating decrement);
/// - permits held by admitted or granted-and-taken calls are outstanding,
///   and the only other outstanding permits are parked with queued calls: a
///   permit released twice, or released while its call still runs, breaks
///   the lower bound; one never released breaks the upper bound;
/// - each call finishes at most once; `active_calls` is calls started minus
///   calls finished; queue entries and node reservations belong to queued calls.
fn check(r: &R) {
    assert_eq!(r.trace().dropped(), 0, "the model outgrew the trace ring");
    let mut live = [0i64; 2];
    let mut calls: HashMap<TraceId, Seen> = HashMap::new();
    for rec in r.trace().iter() {
        let seen = calls.entry(rec.trace).or_default();
        let ended = match rec.event {
            TraceEvent::Admitted(_) | TraceEvent::Granted => {
                assert!(!seen.holds_permit, "{:?} got a second permit", rec.trace);
                seen.holds_permit = true;
                seen.queued = false;
                None
            }
            TraceEvent::Queued(_) => {
                seen.holds_permit = false;
                seen.queued = true;
                None
            }
            TraceEvent::Sent { node, .. } => {
                live[usize::from(node.0)] += 1;
                None
            }
            TraceEvent::AttemptFailed { node, .. } | TraceEvent::AttemptCancelled { node, .. } => {
                Some(node)
            }
            TraceEvent::FirstByte { .. }
            | TraceEvent::RetryDenied { .. }
            | TraceEvent::ProbeSent { .. }
            | TraceEvent::ProbeEnded { .. } => None,
            TraceEvent::Finished(outcome) => {
                seen.finished += 1;
                assert_eq!(seen.finished, 1, "{:?} finished twice", rec.trace);
                seen.holds_permit = false;
                seen.queued = false;
                match outcome {
                    Outcome::Succeeded { node, .. } => Some(node),
                    Outcome::Failed {
                        failure: Failure::ClientError(_),
                        node,
                        ..
                    } => node,
                    _ => None,
                }
            }
        };
        if let Some(node) = ended {
            let n = &mut live[usize::from(node.0)];
            *n -= 1;
            assert!(*n >= 0, "an attempt on {node:?} ended twice");
        }
    }
    for (id, n) in r.nodes().iter() {
        assert_eq!(
            i64::from(n.in_flight),
            live[usize::from(id.0)],
            "in_flight of {id:?} disagrees with the trace"
        );
        assert!(n.in_flight + n.reserved <= u32::from(n.spec.max_concurrency));
    }
    assert_eq!(
        r.attempts_in_flight(),
        u32::try_from(live.iter().sum::<i64>()).unwrap()
    );

    let held = calls.values().filter(|c| c.holds_permit).count() as u32;
    let queued = calls.values().filter(|c| c.queued).count() as u32;
    let finished = calls.values().filter(|c| c.finished == 1).count() as u64;
    let out = r.permits_outstanding();
    assert!(
        out >= held,
        "a running call's permit was released ({out} < {held})"
    );
    assert!(
        out <= held + queued,
        "a permit leaked ({out} > {held} + {queued})"
    );
    assert!(out <= r.config().pools.global);
    assert!(r.queue_depth() as u32 <= queued);
    let reserved: u32 = r.nodes().iter().map(|(_, n)| n.reserved).sum();
    assert!(
        reserved <= queued,
        "a node slot is reserved for no queued call"
    );
    let started: u64 = r.metrics().ops.iter().map(|o| o.calls).sum();
    assert_eq!(u64::from(r.active_calls()), started - finished);
}

/// The end of every model: nothing held, waiting, reserved or in flight.
fn assert_idle(s: &S) {
    s.with(|r| {
        check(r);
        assert_eq!(r.active_calls(), 0, "calls left active");
        assert_eq!(r.permits_outstanding(), 0, "permits leaked");
        assert_eq!(r.attempts_in_flight(), 0, "attempts leaked");
        assert_eq!(r.queue_depth(), 0, "queue entries leaked");
        for (_, n) in r.nodes().iter() {
            assert_eq!(n.reserved, 0, "node reservation leaked");
        }
    });
}

/// Polls until the call waits or ends; the attempt sent, if any, and the outcome.
fn drive(h: &mut H, now: Instant) -> (Option<AttemptId>, Option<Outcome>) {
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

/// How a gateway thread ends its call once an attempt is out.
#[derive(Clone, Copy)]
enum Ending {
    Complete,
    /// Fail the attempt; complete the failover attempt if there is one.
    FailThenComplete,
    /// Drop the handle with the attempt in flight.
    Drop,
}

/// One gateway thread: a full call, with the invariants checked after each step.
fn gateway_call(s: &S, id: u64, ending: Ending) {
    let now = t(id);
    let mut h = s.begin(req(id), now);
    s.with(check);
    let (mut sent, mut done) = drive(&mut h, now);
    s.with(check);
    if sent.is_none() && done.is_none() {
        // Queued: come back after the queue deadline: granted, or expired.
        (sent, done) = drive(&mut h, t(LATE_MS));
        s.with(check);
        assert!(
            sent.is_some() || done.is_some(),
            "a queue wait outlived its deadline"
        );
    }
    let Some(a) = sent else {
        assert!(h.is_finished() && done.is_some());
        return;
    };
    let later = t(LATE_MS + id);
    match ending {
        Ending::Complete => {
            assert_eq!(h.handle(Event::Completed(a), later), Handled::Applied);
        }
        Ending::FailThenComplete => {
            let _ = h.handle(Event::Failed(a, Failure::Connect), later);
            s.with(check);
            let mut step = drive(&mut h, later);
            let mut at = later;
            if step == (None, None) {
                // Every untried node was full: the failover waits in the
                // queue. Come back after its deadline: granted, or expired.
                at = later + s.with(|r| r.config().queue_wait) + Duration::from_millis(1);
                step = drive(&mut h, at);
                s.with(check);
                assert!(
                    step != (None, None),
                    "a failover wait outlived its deadline"
                );
            }
            if let (Some(b), None) = step {
                s.with(check);
                let _ = h.handle(Event::Completed(b), at);
            }
            let _ = drive(&mut h, at);
            assert!(h.is_finished());
            s.with(check);
            return;
        }
        Ending::Drop => {
            drop(h);
            s.with(check);
            return;
        }
    }
    s.with(check);
    let _ = drive(&mut h, later);
    assert!(h.is_finished());
}

/// Two threads, one permit: one completes, one fails over; whichever loses
/// the race for the permit queues and is granted or expires.
#[test]
fn one_permit_two_calls_leak_nothing() {
    model(|| {
        let s = shared(1, [4, 4]);
        let s1 = s.clone();
        let other = spawn(move || gateway_call(&s1, 1, Ending::FailThenComplete));
        gateway_call(&s, 2, Ending::Complete);
        other.join().unwrap();
        assert_idle(&s);
    });
}

/// Three threads, two permits, nodes with two and one slots: completion,
/// failover into a possibly saturated node, and a handle dropped mid-flight.
#[test]
fn two_permits_three_calls_leak_nothing() {
    model(|| {
        let s = shared(2, [2, 1]);
        let (s1, s2) = (s.clone(), s.clone());
        let a = spawn(move || gateway_call(&s1, 1, Ending::FailThenComplete));
        let b = spawn(move || gateway_call(&s2, 2, Ending::Drop));
        gateway_call(&s, 3, Ending::Complete);
        a.join().unwrap();
        b.join().unwrap();
        assert_idle(&s);
    });
}

/// Three threads, one permit: at least two calls queue, and permits pass
/// from the finisher to whichever waiter the grant picks.
#[test]
fn one_permit_three_calls_leak_nothing() {
    model(|| {
        let s = shared(1, [4, 4]);
        let (s1, s2) = (s.clone(), s.clone());
        let a = spawn(move || gateway_call(&s1, 1, Ending::Drop));
        let b = spawn(move || gateway_call(&s2, 2, Ending::FailThenComplete));
        gateway_call(&s, 3, Ending::Complete);
        a.join().unwrap();
        b.join().unwrap();
        assert_idle(&s);
    });
}

/// Two calls share node "a" (node "b" starts disabled) while a third thread
/// enables "b": one call fails and may fail over to "b", the other
/// completes. Two attempts live on one node is where a double decrement,
/// hidden by the core's saturating `in_flight` arithmetic, would show.
#[test]
fn in_flight_counts_match_under_concurrent_failure_and_mode_change() {
    model(|| {
        let s = shared(2, [2, 2]);
        let b = NodeId(1);
        s.set_mode(b, Mode::Disabled, t(0)).unwrap();
        let (s1, s2) = (s.clone(), s.clone());
        let x = spawn(move || gateway_call(&s1, 1, Ending::FailThenComplete));
        let y = spawn(move || gateway_call(&s2, 2, Ending::Complete));
        s.set_mode(b, Mode::Enabled, t(3)).unwrap();
        s.with(check);
        x.join().unwrap();
        y.join().unwrap();
        assert_idle(&s);
    });
}

/// Starts call 1 (running, holding the only permit) and call 2 (queued
/// behind it, deadline `QUEUE_WAIT_MS`), before any thread runs.
fn holder_and_waiter(s: &S) -> (H, AttemptId, H) {
    let mut a = s.begin(req(1), t(0));
    let (sent, _) = drive(&mut a, t(0));
    let mut b = s.begin(req(2), t(0));
    assert_eq!(drive(&mut b, t(0)), (None, None));
    assert!(b.call().is_queued());
    (a, sent.unwrap(), b)
}

/// The single outcome the trace holds for call 2, with the checks every
/// queue model ends with.
fn waiter_outcome(s: &S) -> Outcome {
    assert_idle(s);
    s.with(|r| {
        let mut fin = r
            .trace()
            .for_trace(TraceId(2))
            .filter_map(|rec| match rec.event {
                TraceEvent::Finished(o) => Some(o),
                _ => None,
            });
        let outcome = fin.next().expect("the queued call finished");
        assert_eq!(fin.next(), None, "the queued call finished twice");
        let m = r.metrics().op(Op::Chat);
        let total = m.succeeded
            + m.cancelled
            + m.failed.iter().sum::<u64>()
            + m.rejected.iter().sum::<u64>();
        assert_eq!(total, 2, "one outcome per call");
        outcome
    })
}

fn holder_completes(s: S, mut a: H, attempt: AttemptId) {
    // Release at 50 ms: grants call 2 unless it has expired or gone.
    assert_eq!(a.handle(Event::Completed(attempt), t(50)), Handled::Applied);
    s.with(check);
    assert!(matches!(
        drive(&mut a, t(50)),
        (None, Some(Outcome::Succeeded { .. }))
    ));
}

/// A queued call under a concurrent release (grant), a clock tick past its
/// deadline (expiry) and its own task giving up (drop = cancel): exactly one
/// outcome, whichever wins.
#[test]
fn queued_call_granted_expired_or_dropped_exactly_once() {
    model(|| {
        let s = shared(1, [4, 4]);
        let (a, attempt, mut b) = holder_and_waiter(&s);
        let s1 = s.clone();
        let holder = spawn(move || holder_completes(s1, a, attempt));
        let s2 = s.clone();
        let clock = spawn(move || {
            s2.handle_timeout(t(LATE_MS));
            s2.with(check);
        });
        // The waiter's task: one poll at 60 ms, then it gives up.
        let seen = match drive(&mut b, t(60)) {
            (Some(x), None) => {
                let _ = b.handle(Event::Completed(x), t(70));
                drive(&mut b, t(70)).1
            }
            (_, done) => done,
        };
        drop(b);
        s.with(check);
        holder.join().unwrap();
        clock.join().unwrap();
        let outcome = waiter_outcome(&s);
        match seen {
            Some(o) => assert_eq!(o, outcome),
            None => assert_eq!(
                outcome,
                Outcome::Cancelled {
                    after_first_byte: false
                }
            ),
        }
        assert!(matches!(
            outcome,
            Outcome::Succeeded { .. }
                | Outcome::Rejected(Reject::QueueWaitExpired)
                | Outcome::Cancelled { .. }
        ));
    });
}

/// The queued call's handle shared by its task (polling past the deadline)
/// and a canceller on another thread, while the holder releases: exactly one
/// `Finish` is seen between the two, and it is the one the router recorded.
#[test]
fn queued_call_granted_expired_or_cancelled_exactly_once() {
    model(|| {
        let s = shared(1, [4, 4]);
        let (a, attempt, b) = holder_and_waiter(&s);
        let slot = Arc::new(Mutex::new((Some(b), Vec::<Outcome>::new())));
        let s1 = s.clone();
        let holder = spawn(move || holder_completes(s1, a, attempt));
        let (s2, slot2) = (s.clone(), slot.clone());
        let canceller = spawn(move || {
            let mut guard = slot2.lock().unwrap();
            let (handle, seen) = &mut *guard;
            if let Some(mut h) = handle.take() {
                let _ = h.handle(Event::ClientCancelled, t(55));
                seen.extend(drive(&mut h, t(55)).1);
            }
            drop(guard);
            s2.with(check);
        });
        {
            let mut guard = slot.lock().unwrap();
            let (handle, seen) = &mut *guard;
            if let Some(h) = handle.as_mut() {
                // Past the queue deadline: granted (if the holder got there
                // first) or expired.
                let (sent, done) = drive(h, t(LATE_MS));
                seen.extend(done);
                if let Some(x) = sent {
                    let _ = h.handle(Event::Completed(x), t(LATE_MS));
                    seen.extend(drive(h, t(LATE_MS)).1);
                }
                assert!(h.is_finished());
            }
        }
        s.with(check);
        holder.join().unwrap();
        canceller.join().unwrap();
        let outcome = waiter_outcome(&s);
        let guard = slot.lock().unwrap();
        assert_eq!(guard.1, [outcome], "exactly one Finish, the recorded one");
        assert!(matches!(
            outcome,
            Outcome::Succeeded { .. }
                | Outcome::Rejected(Reject::QueueWaitExpired)
                | Outcome::Cancelled { .. }
        ));
    });
}

/// Two nodes under `cfg`, with room for every attempt.
fn shared_with(cfg: RouterConfig) -> S {
    let s = S::new(cfg, 5).unwrap();
    for name in ["a", "b"] {
        let spec = NodeSpec::new(name, NodeKind::Ollama).unwrap();
        s.with_mut(|r| r.add_node(spec)).unwrap();
    }
    s
}

/// One retry in flight at most, one token: whatever the interleaving.
fn retry_budget_of_one() -> RetryBudget {
    RetryBudget {
        ratio: 0.0,
        min_concurrent: 1,
        burst: 1,
    }
}

/// A call whose first attempt fails; its failover (if the budget allows
/// one) completes. The budget's bounds are checked after every step.
fn failing_call(s: &S, id: u64) -> Outcome {
    let bound = |r: &R| {
        check(r);
        assert!(r.retries_in_flight() <= 1, "retry concurrency exceeded");
    };
    let now = t(id);
    let mut h = s.begin(req(id), now);
    let (sent, done) = drive(&mut h, now);
    assert!(done.is_none());
    let a = sent.expect("two free nodes");
    s.with(bound);
    let _ = h.handle(Event::Failed(a, Failure::Connect), now);
    s.with(bound);
    let (retry, done) = drive(&mut h, now);
    s.with(bound);
    if let Some(done) = done {
        return done;
    }
    let b = retry.expect("a failover or an outcome");
    let _ = h.handle(Event::Completed(b), t(id + 10));
    s.with(bound);
    drive(&mut h, t(id + 10)).1.expect("finished")
}

/// Two gateways' calls fail at once and race for one retry token: exactly
/// one fails over, the other ends with its failure, counted as denied;
/// the in-flight count never passes the bound and returns to zero.
#[test]
fn retry_budget_counters_under_racing_failovers() {
    model(|| {
        let cfg = RouterConfig {
            pools: PoolLimits::uniform(4),
            retry_budget: retry_budget_of_one(),
            ..RouterConfig::default()
        };
        let s = shared_with(cfg);
        let s1 = s.clone();
        let other = spawn(move || failing_call(&s1, 1));
        let mine = failing_call(&s, 2);
        let theirs = other.join().unwrap();
        let ok = [mine, theirs]
            .iter()
            .filter(|o| matches!(o, Outcome::Succeeded { attempts: 2, .. }))
            .count();
        assert_eq!(ok, 1, "one token, one failover: {mine:?} {theirs:?}");
        s.with(|r| {
            assert_eq!(r.metrics().failovers, 1);
            assert_eq!(r.metrics().retries_denied, 1);
            assert_eq!(r.retries_in_flight(), 0);
            assert_eq!(r.retry_tokens(), 0);
        });
        assert_idle(&s);
    });
}

/// Hedges share the retry budget: two streams come due for a hedge while a
/// third thread fails and retries a call. At most one budgeted attempt is in
/// flight at any time, every hedge is either sent or counted as denied, and
/// nothing stays counted.
#[test]
fn hedges_and_failovers_share_the_retry_budget() {
    model(|| {
        let mut cfg = RouterConfig {
            pools: PoolLimits::uniform(4),
            retry_budget: RetryBudget {
                burst: 10,
                ..retry_budget_of_one()
            },
            ..RouterConfig::default()
        };
        cfg.hedge.enabled = true;
        cfg.hedge.min_delay = Duration::from_millis(5);
        cfg.hedge.max_delay = Duration::from_millis(5);
        let s = shared_with(cfg);
        let stream = |s: S, id: u64| {
            let mut h = s.begin(Request::new(TraceId(id), Query::new(Op::Stream)), t(0));
            let (first, _) = drive(&mut h, t(0));
            let first = first.expect("a free node");
            // Past the hedge delay: a hedge if the budget has room.
            let _ = drive(&mut h, t(10));
            s.with(|r| {
                check(r);
                assert!(r.retries_in_flight() <= 1);
            });
            let _ = h.handle(Event::FirstByte(first), t(20));
            let _ = h.handle(Event::Completed(first), t(30));
            let _ = drive(&mut h, t(30));
            assert!(h.is_finished());
        };
        let s1 = s.clone();
        let hedger = spawn(move || stream(s1, 1));
        let s2 = s.clone();
        let failer = spawn(move || failing_call(&s2, 3));
        stream(s.clone(), 2);
        hedger.join().unwrap();
        let _ = failer.join().unwrap();
        s.with(|r| {
            let m = r.metrics();
            assert_eq!(
                m.hedges + m.hedges_denied,
                2,
                "each stream hedged or denied"
            );
            assert!(m.hedges + m.failovers <= 3);
            assert_eq!(r.retries_in_flight(), 0);
        });
        assert_idle(&s);
    });
}
