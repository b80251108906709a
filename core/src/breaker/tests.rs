//! Unit tests for [`super::Breaker`].

use super::*;

fn cfg() -> BreakerConfig {
    BreakerConfig::default()
}

/// No jitter: cooldowns are exact.
fn exact() -> BreakerConfig {
    BreakerConfig {
        jitter: 0.0,
        ..cfg()
    }
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn rng() -> fastrand::Rng {
    fastrand::Rng::with_seed(7)
}

/// One attempt that fails at `now`.
fn fail(
    b: &mut Breaker,
    now: Instant,
    c: &BreakerConfig,
    r: &mut fastrand::Rng,
) -> Option<Instant> {
    let tk = b.on_attempt_start(now);
    b.on_failure(tk, now, c, r)
}

/// Opens a closed breaker at `now`.
fn trip(b: &mut Breaker, now: Instant, c: &BreakerConfig, r: &mut fastrand::Rng) -> Instant {
    for _ in 1..c.failure_threshold {
        assert_eq!(fail(b, now, c, r), None);
    }
    fail(b, now, c, r).expect("threshold reached")
}

#[test]
fn default_config_is_valid() {
    assert_eq!(cfg().validate(), Ok(()));
    let b = Breaker::default();
    assert_eq!(b, Breaker::new());
    assert_eq!(b.state(t(0)), BreakerState::Closed);
    assert!(b.allows_attempt(Instant::MAX, &cfg()));
}

#[test]
fn validate_rejects_each_bad_field() {
    extern crate std;
    use std::string::ToString;
    let cases = [
        (
            BreakerConfig {
                failure_threshold: 0,
                ..cfg()
            },
            BreakerConfigError::ZeroFailureThreshold,
        ),
        (
            BreakerConfig {
                base_cooldown: Duration::ZERO,
                ..cfg()
            },
            BreakerConfigError::ZeroBaseCooldown,
        ),
        (
            BreakerConfig {
                max_cooldown: Duration::from_millis(999),
                ..cfg()
            },
            BreakerConfigError::MaxBelowBase,
        ),
        (
            BreakerConfig {
                jitter: 0.51,
                ..cfg()
            },
            BreakerConfigError::JitterOutOfRange,
        ),
        (
            BreakerConfig {
                jitter: -0.1,
                ..cfg()
            },
            BreakerConfigError::JitterOutOfRange,
        ),
        (
            BreakerConfig {
                jitter: f64::NAN,
                ..cfg()
            },
            BreakerConfigError::JitterOutOfRange,
        ),
        (
            BreakerConfig {
                half_open_probes: 0,
                ..cfg()
            },
            BreakerConfigError::ZeroHalfOpenProbes,
        ),
    ];
    for (c, e) in cases {
        assert_eq!(c.validate(), Err(e));
        assert!(!e.to_string().is_empty());
    }
    let edge = BreakerConfig {
        jitter: 0.5,
        max_cooldown: Duration::from_secs(1),
        ..cfg()
    };
    assert_eq!(edge.validate(), Ok(()));
}

#[test]
fn opens_after_threshold_consecutive_failures() {
    let (c, mut r) = (exact(), rng());
    let mut b = Breaker::new();
    for i in 1..5 {
        assert_eq!(fail(&mut b, t(0), &c, &mut r), None);
        assert_eq!(b.consecutive_failures(), i);
    }
    assert_eq!(fail(&mut b, t(0), &c, &mut r), Some(t(1_000)));
    assert_eq!(b.state(t(0)), BreakerState::Open { until: t(1_000) });
    assert!(!b.allows_attempt(t(999), &c));
    assert_eq!(b.consecutive_opens(), 1);
    assert_eq!(b.consecutive_failures(), 0);
}

#[test]
fn success_while_closed_resets_the_count() {
    let (c, mut r) = (exact(), rng());
    let mut b = Breaker::new();
    for _ in 0..4 {
        fail(&mut b, t(0), &c, &mut r);
    }
    let tk = b.on_attempt_start(t(1));
    b.on_success(tk, t(1));
    assert_eq!(b.consecutive_failures(), 0);
    for _ in 0..4 {
        assert_eq!(fail(&mut b, t(2), &c, &mut r), None);
    }
    assert_eq!(b.state(t(2)), BreakerState::Closed);
}

#[test]
fn half_open_after_cooldown_is_pure_then_lazy() {
    let (c, mut r) = (exact(), rng());
    let mut b = Breaker::new();
    let until = trip(&mut b, t(0), &c, &mut r);
    let before = b;
    assert_eq!(b.state(until), BreakerState::HalfOpen);
    assert!(b.allows_attempt(until, &c));
    assert_eq!(b, before, "reads are pure");
    let tk = b.on_attempt_start(until);
    assert!(tk.is_probe());
    assert_eq!(b.probes_in_flight(), 1);
    assert!(!b.allows_attempt(until, &c));
}

#[test]
fn probe_success_closes_and_resets_growth() {
    let (c, mut r) = (exact(), rng());
    let mut b = Breaker::new();
    let until = trip(&mut b, t(0), &c, &mut r);
    let tk = b.on_attempt_start(until);
    b.on_success(tk, until);
    assert_eq!(b.state(until), BreakerState::Closed);
    assert_eq!(b.consecutive_opens(), 0);
    assert_eq!(b.probes_in_flight(), 0);
    let again = trip(&mut b, t(10_000), &c, &mut r);
    assert_eq!(again, t(11_000), "growth was reset");
}

#[test]
fn probe_failure_reopens_longer_up_to_max() {
    let (c, mut r) = (exact(), rng());
    let mut b = Breaker::new();
    let mut until = trip(&mut b, t(0), &c, &mut r);
    let mut want = [2u64, 4, 8, 16, 32, 60, 60, 60].iter();
    for _ in 0..8 {
        let tk = b.on_attempt_start(until);
        let next = b
            .on_failure(tk, until, &c, &mut r)
            .expect("probe failure re-opens");
        let w = want.next().expect("eight steps");
        assert_eq!(next - until, Duration::from_secs(*w));
        until = next;
    }
    assert_eq!(b.consecutive_opens(), 9);
}

#[test]
fn growth_saturates_without_panic() {
    let (c, mut r) = (exact(), rng());
    let mut b = Breaker::new();
    let mut until = trip(&mut b, t(0), &c, &mut r);
    for _ in 0..300 {
        let tk = b.on_attempt_start(until);
        until = b.on_failure(tk, until, &c, &mut r).expect("re-opens");
    }
    assert_eq!(b.consecutive_opens(), u8::MAX);
    let huge = BreakerConfig {
        base_cooldown: Duration::MAX,
        max_cooldown: Duration::MAX,
        ..cfg()
    };
    for opens in [0, 1, 62, 63, 64, 255] {
        for u in [0.0, 0.5, 0.999_999] {
            assert!(Breaker::cooldown(opens, &huge, u) <= Duration::MAX);
            assert!(Breaker::cooldown(opens, &c, u) <= c.max_cooldown);
        }
    }
    // A cooldown past the end of time saturates the deadline.
    let mut b = Breaker::new();
    let u = trip(&mut b, Instant::MAX, &huge, &mut r);
    assert_eq!(u, Instant::MAX);
    assert_eq!(b.state(Instant::MAX), BreakerState::HalfOpen);
}

#[test]
fn jitter_stays_in_bounds_and_is_seeded() {
    let c = cfg();
    for opens in 0..8u8 {
        let nominal = Breaker::cooldown(opens, &exact(), 0.5);
        for u in [0.0, 0.25, 0.5, 0.75, 0.999_999_9] {
            let d = Breaker::cooldown(opens, &c, u).as_nanos() as f64;
            let n = nominal.as_nanos() as f64;
            assert!(d >= n * 0.8 - 1.0 && d <= n * 1.2 + 1.0);
            assert!(d <= c.max_cooldown.as_nanos() as f64);
        }
    }
    // Same seed, same deadlines; different seeds spread out.
    let run = |seed| {
        let mut r = fastrand::Rng::with_seed(seed);
        let mut b = Breaker::new();
        trip(&mut b, t(0), &c, &mut r)
    };
    assert_eq!(run(1), run(1));
    let distinct = (0..16).map(run).collect::<heapless::Vec<_, 16>>();
    assert!(distinct.iter().any(|u| *u != distinct[0]));
    assert!(distinct.iter().all(|u| *u >= t(800) && *u <= t(1_200)));
}

#[test]
fn exactly_one_draw_per_opening() {
    let c = cfg();
    let mut a = fastrand::Rng::with_seed(3);
    let mut b = Breaker::new();
    for _ in 0..4 {
        fail(&mut b, t(0), &c, &mut a);
    }
    let mut fresh = fastrand::Rng::with_seed(3);
    assert_eq!(a.u64(..), fresh.u64(..), "no draw below threshold");
    let mut a = fastrand::Rng::with_seed(3);
    fail(&mut b, t(0), &c, &mut a);
    let mut fresh = fastrand::Rng::with_seed(3);
    let _ = fresh.f64();
    assert_eq!(a.u64(..), fresh.u64(..));
}

#[test]
fn concurrent_probe_limit_and_abandon_releases() {
    let (mut r, c) = (
        rng(),
        BreakerConfig {
            half_open_probes: 2,
            ..exact()
        },
    );
    let mut b = Breaker::new();
    let until = trip(&mut b, t(0), &c, &mut r);
    let p1 = b.on_attempt_start(until);
    assert!(b.allows_attempt(until, &c));
    let p2 = b.on_attempt_start(until);
    assert!(!b.allows_attempt(until, &c));
    b.on_abandoned(p1, until);
    assert_eq!(b.state(until), BreakerState::HalfOpen);
    assert_eq!(b.consecutive_opens(), 1);
    assert!(b.allows_attempt(until, &c));
    assert_eq!(b.probes_in_flight(), 1);
    b.on_success(p2, until);
    assert_eq!(b.state(until), BreakerState::Closed);
}

#[test]
fn caller_ignoring_the_limit_is_counted_not_lost() {
    let (c, mut r) = (exact(), rng());
    let mut b = Breaker::new();
    let until = trip(&mut b, t(0), &c, &mut r);
    let p1 = b.on_attempt_start(until);
    let p2 = b.on_attempt_start(until);
    assert_eq!(b.probes_in_flight(), 2);
    b.on_abandoned(p1, until);
    assert!(!b.allows_attempt(until, &c));
    b.on_abandoned(p2, until);
    assert!(b.allows_attempt(until, &c));
    b.probes = u8::MAX;
    let _ = b.on_attempt_start(until);
    assert_eq!(b.probes_in_flight(), u8::MAX);
}

#[test]
fn stale_verdicts_are_ignored() {
    let (c, mut r) = (exact(), rng());
    let mut b = Breaker::new();
    // Ten long streams start while Closed.
    let mut old = heapless::Vec::<BreakerTicket, 10>::new();
    for _ in 0..10 {
        old.push(b.on_attempt_start(t(0))).expect("capacity 10");
    }
    let until = trip(&mut b, t(100), &c, &mut r);
    // Their failures while Open change nothing.
    for tk in &old[..5] {
        assert_eq!(b.on_failure(*tk, t(500), &c, &mut r), None);
    }
    assert_eq!(b.state(t(500)), BreakerState::Open { until });
    // After the cooldown, with a probe in flight, stale verdicts neither
    // re-open, close, nor free the probe slot.
    let probe = b.on_attempt_start(until);
    assert_eq!(b.on_failure(old[5], until, &c, &mut r), None);
    b.on_success(old[6], until);
    b.on_abandoned(old[7], until);
    assert_eq!(b.state(until), BreakerState::HalfOpen);
    assert_eq!(b.probes_in_flight(), 1);
    // Even with no probe in flight they do nothing.
    b.on_abandoned(probe, until);
    assert_eq!(b.on_failure(old[8], until, &c, &mut r), None);
    b.on_success(old[9], until);
    assert_eq!(b.state(until), BreakerState::HalfOpen);
}

#[test]
fn failures_while_open_never_extend_cooldown() {
    let (c, mut r) = (exact(), rng());
    let mut b = Breaker::new();
    let until = trip(&mut b, t(0), &c, &mut r);
    // Attempts started while Open (caller ignored allows_attempt).
    for ms in (0..1_000).step_by(100) {
        let tk = b.on_attempt_start(t(ms));
        assert!(!tk.is_probe());
        assert_eq!(b.on_failure(tk, t(ms), &c, &mut r), None);
        b.on_success(tk, t(ms));
    }
    assert_eq!(b.state(t(999)), BreakerState::Open { until });
    // Their verdicts after the cooldown hold no probe slot: ignored.
    let early = b.on_attempt_start(t(10));
    assert_eq!(b.on_failure(early, until, &c, &mut r), None);
    b.on_success(early, until);
    assert_eq!(b.state(until), BreakerState::HalfOpen);
}

#[test]
fn sibling_probe_after_close_counts_as_closed_verdict() {
    let (mut r, c) = (
        rng(),
        BreakerConfig {
            half_open_probes: 2,
            failure_threshold: 2,
            ..exact()
        },
    );
    let mut b = Breaker::new();
    let until = trip(&mut b, t(0), &c, &mut r);
    let p1 = b.on_attempt_start(until);
    let p2 = b.on_attempt_start(until);
    b.on_success(p1, until);
    assert_eq!(b.on_failure(p2, until, &c, &mut r), None);
    assert_eq!(b.consecutive_failures(), 1);
    assert_eq!(b.state(until), BreakerState::Closed);
    // Its abandon would not touch probe accounting either.
    b.on_abandoned(p2, until);
    assert_eq!(b.probes_in_flight(), 0);
}

#[test]
fn first_probe_failure_makes_sibling_stale() {
    let (mut r, c) = (
        rng(),
        BreakerConfig {
            half_open_probes: 2,
            ..exact()
        },
    );
    let mut b = Breaker::new();
    let until = trip(&mut b, t(0), &c, &mut r);
    let p1 = b.on_attempt_start(until);
    let p2 = b.on_attempt_start(until);
    let again = b.on_failure(p1, until, &c, &mut r).expect("re-opens");
    assert_eq!(b.on_failure(p2, until, &c, &mut r), None);
    assert_eq!(b.state(until), BreakerState::Open { until: again });
    assert_eq!(again - until, Duration::from_secs(2));
}

#[test]
fn time_going_backwards_or_standing_still() {
    let (c, mut r) = (exact(), rng());
    let mut b = Breaker::new();
    let until = trip(&mut b, t(5_000), &c, &mut r);
    assert_eq!(until, t(6_000));
    // A clock that steps back sees the breaker Open, never panics.
    assert_eq!(b.state(t(0)), BreakerState::Open { until });
    assert!(!b.allows_attempt(Instant::ZERO, &c));
    let probe = b.on_attempt_start(t(6_000));
    // HalfOpen is sticky even if the clock steps back before `until`.
    assert_eq!(b.state(t(1_000)), BreakerState::HalfOpen);
    let again = b.on_failure(probe, t(1_000), &c, &mut r).expect("re-opens");
    assert_eq!(again, t(3_000));
    // Zero elapsed time: still Open at the instant it opened.
    assert_eq!(b.state(t(1_000)), BreakerState::Open { until: again });
}

#[test]
fn learned_round_trip_across_epochs() {
    let (c, mut r) = (exact(), rng());
    let mut b = Breaker::new();
    assert_eq!(
        b.learned(t(0)),
        BreakerLearned {
            cooldown_left: None,
            consecutive_opens: 0,
            consecutive_failures: 0
        }
    );
    fail(&mut b, t(0), &c, &mut r);
    let closed = Breaker::restore(b.learned(t(0)), t(99));
    assert_eq!(closed.consecutive_failures(), 1);
    assert_eq!(closed.state(t(99)), BreakerState::Closed);

    let mut b = Breaker::new();
    let until = trip(&mut b, t(10_000), &c, &mut r);
    let tk = b.on_attempt_start(until);
    let until = b.on_failure(tk, until, &c, &mut r).expect("re-opens");
    let snap = b.learned(until.saturating_sub(Duration::from_millis(500)));
    assert_eq!(snap.cooldown_left, Some(Duration::from_millis(500)));
    assert_eq!(snap.consecutive_opens, 2);
    let mut back = Breaker::restore(snap, t(1));
    assert_eq!(back.state(t(1)), BreakerState::Open { until: t(501) });
    let tk = back.on_attempt_start(t(501));
    let next = back.on_failure(tk, t(501), &c, &mut r).expect("re-opens");
    assert_eq!(next - t(501), Duration::from_secs(4), "growth survived");

    // Snapshot past the deadline or HalfOpen restores as HalfOpen.
    assert_eq!(b.learned(Instant::MAX).cooldown_left, Some(Duration::ZERO));
    let _ = b.on_attempt_start(until);
    let half = b.learned(t(0));
    assert_eq!(half.cooldown_left, Some(Duration::ZERO));
    let h = Breaker::restore(half, t(7));
    assert_eq!(h.state(t(7)), BreakerState::HalfOpen);
    assert_eq!(h.probes_in_flight(), 0);
    // Inconsistent snapshot: open with zero openings still grows.
    let odd = BreakerLearned {
        cooldown_left: Some(Duration::MAX),
        ..BreakerLearned::default()
    };
    let o = Breaker::restore(odd, t(1));
    assert_eq!(o.consecutive_opens(), 1);
    assert_eq!(o.state(Instant::MAX), BreakerState::HalfOpen);
}

#[test]
fn state_is_small() {
    extern crate std;
    std::println!("size_of::<Breaker>() = {}", core::mem::size_of::<Breaker>());
    std::println!(
        "size_of::<BreakerTicket>() = {}",
        core::mem::size_of::<BreakerTicket>()
    );
    std::println!(
        "size_of::<BreakerLearned>() = {}",
        core::mem::size_of::<BreakerLearned>()
    );
    assert!(core::mem::size_of::<Breaker>() <= 24);
    assert!(core::mem::size_of::<BreakerTicket>() <= 8);
}

#[cfg(feature = "serde")]
#[test]
fn serde_round_trip() {
    let mut buf = [0u8; 64];
    let c = cfg();
    let bytes = postcard::to_slice(&c, &mut buf).expect("fits in 64 bytes");
    assert_eq!(postcard::from_bytes::<BreakerConfig>(bytes), Ok(c));
    let l = BreakerLearned {
        cooldown_left: Some(Duration::from_millis(1_500)),
        consecutive_opens: 3,
        consecutive_failures: 0,
    };
    let bytes = postcard::to_slice(&l, &mut buf).expect("fits in 64 bytes");
    assert_eq!(postcard::from_bytes::<BreakerLearned>(bytes), Ok(l));
}
