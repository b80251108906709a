//! The cost of one routed call through drover-core, against tower's
//! `balance::p2c::Balance` over `load::PeakEwma` measured in the same run,
//! and the cost of one routing decision.
//!
//! Groups:
//!
//! - `routed_call/drover/N`: one whole call on a warmed `Router<N>`:
//!   `start`, `poll` (admit + route + `Send`), `handle(FirstByte)`,
//!   `handle(Completed)`, `poll` (`Finish`). Virtual time advances by
//!   [`STEP`] per call.
//! - `routed_call/tower/N`: `poll_ready` + `call` + one poll of the response
//!   future (ready at once) on `Balance<ServiceList<Vec<PeakEwma<Echo>>>>`,
//!   where `Echo` is an always-ready service that answers immediately.
//! - `route/drover/N`: `Router::decide` alone: the routing decision
//!   (filters, P2C on the load score, the failover list), nothing started.
//! - `decision/drover/N`: `start` + the first `poll`, which admits the call,
//!   routes it (filters, P2C on the load score, failover plan) and returns
//!   `Send`. The calls are completed afterwards, outside the timed section,
//!   in batches of [`BATCH`].
//!
//! After the groups, a table of medians and drover/tower ratios is printed,
//! read back from criterion's estimates of this run, then (in a whole,
//! unfiltered `cargo bench` run) a paired measurement that interleaves
//! blocks of drover and tower calls, whose ratio survives a busy host.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use drover_benches::report::{self, Row};
use drover_benches::{GENERATION, QUERY, STEP, routed_call, ttft, warm};
use drover_core::Instant;
use drover_core::call::{Action, Event, Outcome, Request};
use drover_core::config::RouterConfig;
use drover_core::router::Router;
use drover_core::trace::TraceId;
use tower::Service;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma};

/// Node counts measured.
const SIZES: [usize; 4] = [4, 16, 256, 1024];
/// Calls started back to back in one timed section of the decision bench.
const BATCH: usize = 16;
/// Attempts each node accepts at once (above BATCH, so no node saturates).
const MAX_CONCURRENCY: u16 = 64;
/// Pinned warm-up calls per node.
const WARM_PER_NODE: usize = 3;

// ----- drover -----

fn drover_router<const N: usize>(trace: &mut u64) -> (Box<Router<N>>, Instant) {
    let mut r =
        drover_benches::router::<N, 1024, 256>(N, RouterConfig::default(), MAX_CONCURRENCY, 0x5eed)
            .expect("the default config and N distinct node names fit a Router<N>");
    let now = warm(&mut *r, N, WARM_PER_NODE, Instant::ZERO, trace)
        .expect("a fresh router with free capacity routes every warm-up call");
    (r, now)
}

fn drover_routed<const N: usize>(g: &mut BenchmarkGroup<'_, WallTime>) {
    let mut trace = 0;
    let (mut r, mut now) = drover_router::<N>(&mut trace);
    g.bench_function(BenchmarkId::new("drover", N), |b| {
        b.iter(|| {
            trace += 1;
            now = now + STEP;
            let req = Request::new(TraceId(trace), QUERY);
            black_box(routed_call(&mut *r, black_box(req), now))
                .expect("one call at a time on a warmed router always succeeds")
        })
    });
    assert_eq!(r.active_calls(), 0, "every benchmarked call finished");
}

fn drover_decision<const N: usize>(g: &mut BenchmarkGroup<'_, WallTime>) {
    let mut trace = 0;
    let (mut r, mut now) = drover_router::<N>(&mut trace);
    let mut calls = Vec::with_capacity(BATCH);
    g.bench_function(BenchmarkId::new("drover", N), |b| {
        b.iter_custom(|iters| {
            let mut timed = StdDuration::ZERO;
            let mut left = iters;
            while left > 0 {
                let k = left.min(BATCH as u64);
                left -= k;
                now = now + STEP;
                let t0 = StdInstant::now();
                for _ in 0..k {
                    trace += 1;
                    let req = Request::new(TraceId(trace), QUERY);
                    let mut call = r.start(black_box(req), now);
                    let action = r.poll(&mut call, now);
                    calls.push((call, action));
                }
                timed += t0.elapsed();
                // Untimed: finish each call as a served one, keeping the
                // EWMA samples fresh so the next batch sees a steady state.
                for (mut call, action) in calls.drain(..) {
                    let Action::Send { attempt, node, .. } = action else {
                        panic!("a batch of {BATCH} fits the pools and nodes, got {action:?}");
                    };
                    let fb = now + ttft(node);
                    let _ = r.handle(&mut call, Event::FirstByte(attempt), fb);
                    let _ = r.handle(&mut call, Event::Completed(attempt), fb + GENERATION);
                    let end = r.poll(&mut call, fb + GENERATION);
                    assert!(
                        matches!(end, Action::Finish(Outcome::Succeeded { .. })),
                        "{end:?}"
                    );
                }
            }
            timed
        })
    });
}

/// The routing decision alone (`Router::decide`): filters, P2C on the load
/// score, the failover list. No call is admitted or started, so the router's
/// state stays the warmed steady state.
fn drover_route<const N: usize>(g: &mut BenchmarkGroup<'_, WallTime>) {
    let mut trace = 0;
    let (mut r, mut now) = drover_router::<N>(&mut trace);
    g.bench_function(BenchmarkId::new("drover", N), |b| {
        b.iter(|| {
            now = now + STEP;
            black_box(r.decide(black_box(&QUERY), now))
                .expect("a warmed router with free nodes always routes")
        })
    });
}

// ----- tower -----

/// An always-ready service that answers at once.
#[derive(Clone, Copy, Debug)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

type TowerBalance = Balance<ServiceList<Vec<PeakEwma<Echo, CompleteOnResponse>>>, u64>;

fn tower_balance(n: usize) -> TowerBalance {
    // Same constants as drover's defaults: 1 s before any sample, 10 s decay.
    let default_rtt = StdDuration::from_secs(1);
    let decay_ns = 10e9;
    let services = (0..n)
        .map(|_| PeakEwma::new(Echo, default_rtt, decay_ns, CompleteOnResponse::default()))
        .collect::<Vec<_>>();
    Balance::new(ServiceList::new::<u64>(services))
}

/// `poll_ready` + `call` + one poll of the response, with a no-op waker.
fn tower_call(balance: &mut TowerBalance, cx: &mut Context<'_>, req: u64) -> u64 {
    match balance.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => panic!("Echo services never fail: {e}"),
        Poll::Pending => panic!("Echo services are always ready"),
    }
    let fut = pin!(balance.call(req));
    match fut.poll(cx) {
        Poll::Ready(Ok(v)) => v,
        Poll::Ready(Err(e)) => panic!("Echo never fails: {e}"),
        Poll::Pending => panic!("Echo answers at once"),
    }
}

fn tower_routed(g: &mut BenchmarkGroup<'_, WallTime>, n: usize) {
    let mut balance = tower_balance(n);
    let mut cx = Context::from_waker(Waker::noop());
    // Warm-up as for drover: enough calls that every service has RTT samples.
    for i in 0..(n * (WARM_PER_NODE + 1)) as u64 {
        tower_call(&mut balance, &mut cx, i);
    }
    let mut req = 0u64;
    g.bench_function(BenchmarkId::new("tower", n), |b| {
        b.iter(|| {
            req += 1;
            black_box(tower_call(&mut balance, &mut cx, black_box(req)))
        })
    });
}

// ----- paired -----

/// Rounds of the paired measurement, and calls per block.
const ROUNDS: usize = 31;
const BLOCK: u32 = 2_000;

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Interleaved blocks of [`BLOCK`] drover calls and [`BLOCK`] tower calls,
/// [`ROUNDS`] times: the medians of ns per call and of the per-round ratio.
/// Adjacent blocks share the host's load, so this ratio is steadier than
/// one of two criterion medians taken seconds apart on a busy machine.
fn paired<const N: usize>() {
    let mut trace = 0;
    let (mut r, mut now) = drover_router::<N>(&mut trace);
    let mut balance = tower_balance(N);
    let mut cx = Context::from_waker(Waker::noop());
    for i in 0..(N * (WARM_PER_NODE + 1)) as u64 {
        tower_call(&mut balance, &mut cx, i);
    }
    let (mut d, mut t, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS as u64 {
        let t0 = StdInstant::now();
        for _ in 0..BLOCK {
            trace += 1;
            now = now + STEP;
            let req = Request::new(TraceId(trace), QUERY);
            black_box(routed_call(&mut *r, black_box(req), now))
                .expect("one call at a time on a warmed router always succeeds");
        }
        let drover_ns = t0.elapsed().as_nanos() as f64 / f64::from(BLOCK);
        let t0 = StdInstant::now();
        for i in 0..u64::from(BLOCK) {
            black_box(tower_call(
                &mut balance,
                &mut cx,
                black_box(round << 32 | i),
            ));
        }
        let tower_ns = t0.elapsed().as_nanos() as f64 / f64::from(BLOCK);
        d.push(drover_ns);
        t.push(tower_ns);
        ratio.push(drover_ns / tower_ns);
    }
    println!(
        "{N:>6}  {:>9.1} ns  {:>9.1} ns  {:>8.3}",
        median(&mut d),
        median(&mut t),
        median(&mut ratio)
    );
}

// ----- main -----

fn config() -> Criterion {
    Criterion::default()
        .output_directory(&report::criterion_dir())
        .measurement_time(StdDuration::from_secs(2))
        .warm_up_time(StdDuration::from_secs(1))
        .sample_size(30)
        .configure_from_args()
}

fn main() {
    let started = SystemTime::now();
    let mut c = config();
    {
        let mut g = c.benchmark_group("routed_call");
        drover_routed::<4>(&mut g);
        tower_routed(&mut g, 4);
        drover_routed::<16>(&mut g);
        tower_routed(&mut g, 16);
        drover_routed::<256>(&mut g);
        tower_routed(&mut g, 256);
        drover_routed::<1024>(&mut g);
        tower_routed(&mut g, 1024);
        g.finish();
    }
    {
        let mut g = c.benchmark_group("decision");
        drover_decision::<4>(&mut g);
        drover_decision::<16>(&mut g);
        drover_decision::<256>(&mut g);
        drover_decision::<1024>(&mut g);
        g.finish();
    }
    {
        let mut g = c.benchmark_group("route");
        drover_route::<4>(&mut g);
        drover_route::<16>(&mut g);
        drover_route::<256>(&mut g);
        drover_route::<1024>(&mut g);
        g.finish();
    }
    c.final_summary();

    let dir = report::criterion_dir();
    let median = |group: &str, function: &str, n: usize| {
        report::read_median(&dir, group, function, &n.to_string(), started)
    };
    let routed: Vec<Row> = SIZES
        .iter()
        .map(|&n| Row {
            nodes: n,
            drover_ns: median("routed_call", "drover", n),
            baseline_ns: median("routed_call", "tower", n),
        })
        .collect();
    println!("\nrouted call, median per call (this run):");
    print!("{}", report::table("tower", &routed));
    // The paired measurement runs in a whole `cargo bench` run only (not
    // under `cargo test`, not with a filter or `--profile-time`).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--bench") && args.iter().all(|a| a.starts_with("--")) {
        println!("\npaired (interleaved blocks of {BLOCK} calls, medians of {ROUNDS} rounds):");
        println!(
            "{:>6}  {:>12}  {:>12}  {:>8}",
            "nodes", "drover", "tower", "ratio"
        );
        paired::<4>();
        paired::<16>();
        paired::<256>();
        paired::<1024>();
    }
    println!("\nper call, medians (this run): the route decision alone (Router::decide),");
    println!("and start + first poll (admission, route, attempt bookkeeping, trace, Send):");
    println!("{:>6}  {:>12}  {:>16}", "nodes", "decide", "start+poll");
    for n in SIZES {
        let show = |v: Option<f64>| v.map_or("-".to_owned(), |ns| format!("{ns:.1} ns"));
        println!(
            "{n:>6}  {:>12}  {:>16}",
            show(median("route", "drover", n)),
            show(median("decision", "drover", n))
        );
    }
}
