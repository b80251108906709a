//! The routing path allocates nothing: 10,000 routed calls on a warmed
//! 16-node router (plain calls, failovers after a 5xx and after a 429, client
//! cancels, hedges, and calls that wait in the admission queue) make exactly
//! zero heap allocations.
//!
//! A counting global allocator wraps `System`. It counts only on the thread
//! that armed it, so the test harness's own threads cannot disturb the count.
//! Setting the router up (it is boxed) and the warm-up may allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use drover_benches::ttft;
use drover_core::call::{Action, AttemptId, Call, Event, Outcome, Request};
use drover_core::config::RouterConfig;
use drover_core::node::NodeId;
use drover_core::reason::Failure;
use drover_core::route::{Op, Query};
use drover_core::router::Router;
use drover_core::trace::TraceId;
use drover_core::{Duration, Instant};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: as above; `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations made by this thread while running `f`.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

type R = Router<16>;
const NODES: usize = 16;
/// Virtual time per scenario; every scenario's events fit well inside it,
/// and it exceeds the 100 ms overload cooldown the 429 scenario causes.
const SLOT: Duration = Duration::from_millis(200);
const HEDGE_AT: Duration = Duration::from_millis(50);

fn config() -> RouterConfig {
    let mut cfg = RouterConfig::default();
    cfg.hedge.enabled = true;
    cfg.hedge.min_delay = Duration::from_millis(10);
    cfg.hedge.max_delay = HEDGE_AT;
    cfg.hedge.budget_ratio = 0.5;
    // The scenario scripts a hedge and a failover in every call; the retry
    // budget (which would refuse some of them) is not what is measured.
    cfg.retry_budget = drover_core::config::RetryBudget::UNLIMITED;
    cfg
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Polls once and expects a `Send`; returns its attempt and node.
fn expect_send(r: &mut R, c: &mut Call, now: Instant, hedge: bool) -> (AttemptId, NodeId) {
    match r.poll(c, now) {
        Action::Send {
            attempt,
            node,
            hedge: h,
            ..
        } if h == hedge => (attempt, node),
        other => panic!("expected a Send (hedge {hedge}), got {other:?}"),
    }
}

/// Serves an attempt to completion and expects the call to succeed on `node`.
fn serve(r: &mut R, c: &mut Call, attempt: AttemptId, node: NodeId, now: Instant) -> Instant {
    let fb = now + ttft(node);
    let _ = r.handle(c, Event::FirstByte(attempt), fb);
    let _ = r.handle(c, Event::Completed(attempt), fb + ms(1));
    let end = fb + ms(1);
    match r.poll(c, end) {
        Action::Finish(Outcome::Succeeded { node: n, .. }) if n == node => end,
        other => panic!("expected success on {node}, got {other:?}"),
    }
}

fn start(r: &mut R, trace: &mut u64, query: Query, now: Instant) -> Call {
    *trace += 1;
    r.start(Request::new(TraceId(*trace), query), now)
}

/// One scenario, chosen by `i % 10`, run in the slot starting at `t`.
fn scenario(r: &mut R, i: u64, t: Instant, trace: &mut u64) {
    let q = Query::new(Op::Stream);
    match i % 10 {
        // Failover after a 5xx.
        6 => {
            let mut c = start(r, trace, q, t);
            let (a0, n0) = expect_send(r, &mut c, t, false);
            let _ = r.handle(
                &mut c,
                Event::Failed(a0, Failure::Upstream5xx(502)),
                t + ms(1),
            );
            let (a1, n1) = expect_send(r, &mut c, t + ms(1), false);
            assert_ne!(n0, n1, "failover goes to another node");
            serve(r, &mut c, a1, n1, t + ms(1));
        }
        // Failover after a 429 with Retry-After (overload cooldown).
        9 => {
            let mut c = start(r, trace, q, t);
            let (a0, n0) = expect_send(r, &mut c, t, false);
            let _ = r.handle(&mut c, Event::Overloaded(a0, Some(ms(100))), t + ms(1));
            let (a1, n1) = expect_send(r, &mut c, t + ms(1), false);
            assert_ne!(n0, n1);
            serve(r, &mut c, a1, n1, t + ms(1));
        }
        // A hedge: no first byte by the hedge delay, the hedge wins.
        7 => {
            let mut c = start(r, trace, q, t);
            let (a0, n0) = expect_send(r, &mut c, t, false);
            let Action::Wait { until: Some(until) } = r.poll(&mut c, t) else {
                panic!("a running call waits");
            };
            assert!(until <= t + HEDGE_AT, "the hedge is due by {HEDGE_AT}");
            let (h, nh) = expect_send(r, &mut c, t + HEDGE_AT, true);
            assert_ne!(n0, nh, "a hedge goes to another node");
            let fb = t + HEDGE_AT + ttft(nh);
            let _ = r.handle(&mut c, Event::FirstByte(h), fb);
            assert_eq!(
                r.poll(&mut c, fb),
                Action::Cancel {
                    attempt: a0,
                    node: n0
                }
            );
            let _ = r.handle(&mut c, Event::Completed(h), fb + ms(1));
            assert!(matches!(
                r.poll(&mut c, fb + ms(1)),
                Action::Finish(Outcome::Succeeded { attempts: 2, .. })
            ));
        }
        // A queued call: two calls pinned to one node (max concurrency 2)
        // fill it, a third waits, and is granted when the first completes.
        8 => {
            let mut pinned = q;
            pinned.pin = Some(NodeId((i / 10 % NODES as u64) as u16));
            let mut c1 = start(r, trace, pinned, t);
            let (a1, n1) = expect_send(r, &mut c1, t, false);
            let mut c2 = start(r, trace, pinned, t);
            let (a2, n2) = expect_send(r, &mut c2, t, false);
            let mut c3 = start(r, trace, pinned, t);
            assert!(matches!(r.poll(&mut c3, t), Action::Wait { .. }));
            assert!(c3.is_queued());
            let end = serve(r, &mut c1, a1, n1, t);
            assert_eq!(r.poll_wakeup(), Some(c3.trace()));
            let (a3, n3) = expect_send(r, &mut c3, end, false);
            assert_eq!(n3, n1);
            serve(r, &mut c2, a2, n2, end);
            serve(r, &mut c3, a3, n3, end);
        }
        // A client cancel before the first byte.
        5 => {
            let mut c = start(r, trace, q, t);
            let (a0, n0) = expect_send(r, &mut c, t, false);
            let _ = r.handle(&mut c, Event::ClientCancelled, t + ms(1));
            assert_eq!(
                r.poll(&mut c, t + ms(1)),
                Action::Cancel {
                    attempt: a0,
                    node: n0
                }
            );
            assert_eq!(
                r.poll(&mut c, t + ms(1)),
                Action::Finish(Outcome::Cancelled {
                    after_first_byte: false
                })
            );
        }
        // A plain call.
        _ => {
            let mut c = start(r, trace, q, t);
            let (a, n) = expect_send(r, &mut c, t, false);
            serve(r, &mut c, a, n, t);
        }
    }
}

fn run(r: &mut R, from: u64, count: u64, trace: &mut u64) {
    for i in from..from + count {
        scenario(r, i, Instant::ZERO + SLOT.saturating_mul(i), trace);
    }
}

/// One test only: the count is global, so two tests counting at once on
/// different threads would see each other's allocations.
#[test]
fn ten_thousand_routed_calls_allocate_nothing() {
    // The counter can fail: it sees a heap allocation, and not a stack one.
    assert!(allocations_in(|| drop(black_box(vec![1u8; 16]))) >= 1);
    assert_eq!(allocations_in(|| _ = black_box([1u8; 16])), 0);

    let mut r: Box<R> = drover_benches::router(NODES, config(), 2, 42).unwrap();
    let mut trace = 0;
    // Warm-up: every scenario several times, so each node has samples.
    run(&mut r, 0, 200, &mut trace);
    assert!(r.nodes().iter().all(|(_, n)| n.ttft.has_samples()));
    let before = r.metrics().clone();
    let stream = Op::Stream.index();

    let allocations = allocations_in(|| run(&mut r, 200, 10_000, &mut trace));
    assert_eq!(allocations, 0, "heap allocations on the routing path");

    // The scenarios really happened (1,000 of each kind).
    let m = r.metrics();
    assert_eq!(m.failovers - before.failovers, 2_000);
    assert_eq!(m.hedges - before.hedges, 1_000);
    assert_eq!(m.hedges_won - before.hedges_won, 1_000);
    assert_eq!(
        m.ops[stream].queue_wait.count() - before.ops[stream].queue_wait.count(),
        1_000
    );
    assert_eq!(
        m.ops[stream].cancelled - before.ops[stream].cancelled,
        1_000
    );
    // 6 plain-ish kinds of one call, the queued kind with three.
    assert_eq!(m.ops[stream].calls - before.ops[stream].calls, 12_000);
    assert_eq!(
        m.ops[stream].succeeded - before.ops[stream].succeeded,
        11_000
    );
    assert_eq!(r.active_calls(), 0);
    assert_eq!(r.attempts_in_flight(), 0);
    assert_eq!(r.permits_outstanding(), 0);
}
