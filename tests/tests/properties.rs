//! Properties of the core over random operation sequences (proptest).
//!
//! Every run goes through the shared harness, which already checks all of
//! its invariants after each step; these properties state the headline
//! rules on their own, over the harness's records, with op mixes weighted
//! toward the states each rule is about. `coverage_*` tests show the mixes
//! really reach those states, so no property holds vacuously.

use arbitrary::{Arbitrary, Unstructured};
use drover_core::breaker::BreakerState;
use drover_core::node::Mode;
use drover_tests::ops::{
    EventKind, FailKind, Harness, ModeKind, Op, OpKind, Setup, StartCall, Stats, Step, run, run_ops,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const CASES: u32 = 256;

/// Relative weights of the operation kinds in a generated sequence.
#[derive(Clone, Copy)]
struct Mix {
    start: u32,
    poll: u32,
    deliver: u32,
    fail: u32,
    advance: u32,
    heartbeat: u32,
    drain_flag: u32,
    mode: u32,
}

const BALANCED: Mix = Mix {
    start: 6,
    poll: 3,
    deliver: 6,
    fail: 3,
    advance: 4,
    heartbeat: 2,
    drain_flag: 1,
    mode: 2,
};

/// Many failures and disabled nodes: breakers open, modes flip.
const FAILURES: Mix = Mix {
    fail: 8,
    mode: 4,
    ..BALANCED
};

/// Many drains, by mode and by heartbeat flag.
const DRAINS: Mix = Mix {
    heartbeat: 5,
    drain_flag: 3,
    mode: 5,
    ..BALANCED
};

fn setup() -> impl Strategy<Value = Setup> {
    prop::array::uniform32(any::<u8>()).prop_map(|bytes| {
        Setup::arbitrary(&mut Unstructured::new(&bytes))
            .unwrap_or_else(|e| panic!("a setup decodes from any 32 bytes: {e}"))
    })
}

/// 1 in `n` draws is in `lo..=255`, otherwise 0.
fn rare(n: u32, lo: u8) -> impl Strategy<Value = u8> {
    prop_oneof![n - 1 => Just(0u8), 1 => lo..=255u8]
}

fn start_call() -> impl Strategy<Value = StartCall> {
    let kind = prop_oneof![
        Just(OpKind::Chat),
        Just(OpKind::Stream),
        Just(OpKind::Embed)
    ];
    let keys = (
        prop::option::of(any::<u8>()),
        prop::option::weighted(0.3, any::<u8>()),
        prop::option::weighted(0.3, any::<u8>()),
    );
    let flags = (
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.9),
    );
    let rares = (rare(12, 240), rare(10, 224), rare(16, 248), rare(20, 250));
    (kind, keys, flags, rares).prop_map(
        |(
            op,
            (model, session, prefix),
            (background, tagged, poll),
            (pin, scope, vision, payload),
        )| {
            StartCall {
                op,
                model,
                session,
                prefix,
                background,
                tagged,
                pin,
                scope,
                vision,
                payload,
                poll,
            }
        },
    )
}

fn event(fail_weight: u32) -> impl Strategy<Value = EventKind> {
    let failure = prop_oneof![
        Just(FailKind::Connect),
        Just(FailKind::Timeout),
        Just(FailKind::TtftTimeout),
        any::<u8>().prop_map(FailKind::Upstream5xx),
        Just(FailKind::InvalidReply),
        Just(FailKind::BrokenStream),
    ];
    prop_oneof![
        4 => Just(EventKind::FirstByte),
        4 => Just(EventKind::Completed),
        fail_weight => failure.prop_map(EventKind::Failed),
        2 => prop::option::of(0u8..50).prop_map(EventKind::Overloaded),
        1 => any::<u8>().prop_map(EventKind::ClientError),
        1 => Just(EventKind::ClientCancelled),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => any::<u8>().prop_map(Step::Millis),
        2 => (0u8..12).prop_map(Step::Seconds),
        2 => Just(Step::NextDeadline),
    ]
}

fn op(m: Mix) -> impl Strategy<Value = Op> {
    let mode = prop_oneof![
        2 => Just(ModeKind::Enabled),
        1 => Just(ModeKind::Drain),
        1 => Just(ModeKind::Disabled),
    ];
    prop_oneof![
        m.start => start_call().prop_map(Op::Start),
        m.poll => any::<u8>().prop_map(|call| Op::Poll { call }),
        m.deliver => (any::<u8>(), any::<u8>(), event(m.fail))
            .prop_map(|(call, attempt, event)| Op::Deliver { call, attempt, event }),
        m.advance => step().prop_map(Op::Advance),
        m.heartbeat => (0u8..7, 0u8..4, prop::bool::weighted(f64::from(m.drain_flag) / 6.0))
            .prop_map(|(node, queued, drain)| Op::Heartbeat { node, queued, drain }),
        m.mode => (0u8..7, mode).prop_map(|(node, mode)| Op::SetMode { node, mode }),
        1 => Just(Op::HandleTimeout),
        2 => Just(Op::PollWakeup),
        1 => start_call().prop_map(Op::Preview),
    ]
}

fn scenario(m: Mix) -> impl Strategy<Value = (Setup, Vec<Op>)> {
    (setup(), prop::collection::vec(op(m), 1..160))
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// (a) Attempts in flight are always the attempts sent minus the ones
    /// released (cancelled or ended), and permits are always the running
    /// calls plus granted, unpolled queue tickets; both end at zero.
    #[test]
    fn in_flight_is_admitted_minus_released((setup, ops) in scenario(BALANCED)) {
        let mut h = Harness::new(setup);
        for op in &ops {
            h.apply(op);
            let s = h.stats();
            let r = h.router();
            prop_assert_eq!(
                r.attempts_in_flight() as usize,
                s.attempts_sent - s.attempts_released
            );
            let per_node: u32 = r.nodes().iter().map(|(_, n)| n.in_flight).sum();
            prop_assert_eq!(per_node, r.attempts_in_flight());
            prop_assert_eq!(r.active_calls() as usize, h.open_calls());
            prop_assert!(r.permits_outstanding() <= r.config().pools.global);
        }
        h.settle();
        let s = h.stats();
        prop_assert_eq!(s.attempts_sent, s.attempts_released);
        prop_assert_eq!(h.router().permits_outstanding(), 0);
        prop_assert_eq!(h.router().attempts_in_flight(), 0);
    }

    /// (b) No attempt goes to a disabled node or one whose breaker is open.
    #[test]
    fn disabled_nodes_and_open_breakers_are_never_chosen((setup, ops) in scenario(FAILURES)) {
        let h = run_ops(setup, &ops);
        for s in h.sends() {
            prop_assert_ne!(s.mode, Mode::Disabled, "{:?}", s);
            prop_assert!(!matches!(s.breaker, BreakerState::Open { .. }), "{:?}", s);
        }
    }

    /// (c) A draining node gets an attempt only when no enabled node could
    /// take it.
    #[test]
    fn drained_nodes_are_only_a_last_resort((setup, ops) in scenario(DRAINS)) {
        let h = run_ops(setup, &ops);
        for s in h.sends() {
            prop_assert!(!s.draining || s.enabled_alternative.is_none(), "{:?}", s);
        }
    }

    /// (d) The same seed and the same inputs give the same decisions: equal
    /// action logs, metrics and decision traces on two fresh routers.
    #[test]
    fn same_seed_same_inputs_same_decisions((setup, ops) in scenario(BALANCED)) {
        let a = run_ops(setup, &ops);
        let b = run_ops(setup, &ops);
        prop_assert_eq!(format!("{:?}", a.log()), format!("{:?}", b.log()));
        prop_assert_eq!(
            format!("{:?}", a.router().metrics()),
            format!("{:?}", b.router().metrics())
        );
        let trace = |h: &Harness| format!("{:?}", h.router().trace().iter().collect::<Vec<_>>());
        prop_assert_eq!(trace(&a), trace(&b));
        prop_assert_eq!(a.stats(), b.stats());
    }

    /// (e) Every harness invariant holds on arbitrary bytes (the fuzz
    /// target's decoder).
    #[test]
    fn harness_invariants_hold_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..2048)
    ) {
        run(&bytes);
    }
}

/// Sums the stats and send records of `cases` runs drawn from `mix` with a
/// fixed generator seed.
fn explore(mix: Mix, cases: usize) -> (Stats, usize, usize) {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = scenario(mix);
    let mut total = Stats::default();
    let (mut with_disabled, mut with_open) = (0, 0);
    for _ in 0..cases {
        let (setup, ops) = strategy
            .new_tree(&mut runner)
            .unwrap_or_else(|e| panic!("generating a scenario: {e}"))
            .current();
        let h = run_ops(setup, &ops);
        let s = h.stats();
        total.attempts_sent += s.attempts_sent;
        total.hedges += s.hedges;
        total.failovers += s.failovers;
        total.drained_sends += s.drained_sends;
        total.queued += s.queued;
        total.wakeups += s.wakeups;
        total.previews_kept += s.previews_kept;
        total.succeeded += s.succeeded;
        total.failed += s.failed;
        total.rejected += s.rejected;
        total.cancelled += s.cancelled;
        with_disabled += h.sends().iter().filter(|r| r.disabled_nodes > 0).count();
        with_open += h.sends().iter().filter(|r| r.open_breakers > 0).count();
    }
    (total, with_disabled, with_open)
}

#[test]
fn coverage_failure_mix_sends_while_nodes_are_disabled_and_breakers_open() {
    let (s, with_disabled, with_open) = explore(FAILURES, 64);
    assert!(s.attempts_sent > 100, "{s:?}");
    assert!(
        with_disabled > 0,
        "no send happened while a node was disabled"
    );
    assert!(with_open > 0, "no send happened while a breaker was open");
    assert!(s.failovers > 0 && s.failed > 0, "{s:?}");
}

#[test]
fn coverage_drain_mix_reaches_drained_sends_and_the_other_states() {
    let (s, _, _) = explore(DRAINS, 64);
    assert!(
        s.drained_sends > 0,
        "no attempt went to a draining node: {s:?}"
    );
    let (b, _, _) = explore(BALANCED, 64);
    for (what, n) in [
        ("hedges", b.hedges),
        ("failovers", b.failovers),
        ("queued calls", b.queued),
        ("wakeups", b.wakeups),
        ("previews kept", b.previews_kept),
        ("successes", b.succeeded),
        ("failures", b.failed),
        ("rejections", b.rejected),
        ("cancels", b.cancelled),
    ] {
        assert!(n > 0, "the balanced mix never produced {what}: {b:?}");
    }
}
