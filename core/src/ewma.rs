//! Peak-EWMA latency estimate: how slow a node is *now*.
//!
//! This module decides one number per node and signal (request latency,
//! time to first token): a latency estimate that jumps up at once when the
//! node gets slower and drifts down slowly when it gets faster. Scoring
//! multiplies it by the load (see the router) to rank candidates.
//!
//! # Algorithm
//!
//! Peak-sensitive EWMA from Finagle (`com.twitter.finagle.loadbalancer.PeakEwma`,
//! "Peak EWMA" in the Finagle load-balancer docs), as used by Linkerd and by
//! tower (`tower/src/load/peak_ewma.rs`, `RttEstimate::update` and `decay`):
//!
//! * **Peak.** A sample above the current estimate replaces it at once.
//! * **Decay.** A sample at or below the estimate is blended in with a weight
//!   that depends on the time since the previous observation, not on a
//!   sample count: `w = e^(-elapsed/tau)`, `est = est·w + sample·(1 − w)`.
//!   A burst of fast samples within a few milliseconds barely moves the
//!   estimate; one fast sample after a long pause nearly replaces it.
//! * **Idle decay on read.** [`PeakEwma::estimate_ns`] returns
//!   `est · e^(-(now − last)/tau)`: the estimate decays towards zero while
//!   the node receives no traffic, exactly as tower's `decay` (an update
//!   with a zero sample at `now`). An idle node that was slow therefore
//!   looks fast again after a few `tau` and gets retried, instead of being
//!   starved forever by one bad minute. With the default `tau = 10 s` the
//!   estimate halves in about 6.9 s of silence and is below 1 % after 46 s.
//!
//! # Differences from tower
//!
//! tower's read mutates the estimate (it writes the decayed value back and
//! resets the update time). Here a read is pure (`&self`): because
//! `e^(-a/tau)·e^(-b/tau) = e^(-(a+b)/tau)` the value returned is the same
//! tower would return if nobody had read in between, and, unlike tower, the
//! estimate does not depend on how often the router looked at it (route
//! previews, status pages and replays cannot change a decision). An
//! observation blends with the stored, undecayed estimate using the time
//! since the previous *observation*, so `observe` never yields less than
//! what `estimate_ns` showed just before it.
//!
//! # Time
//!
//! `now` comes from the caller. A `now` earlier than the previous
//! observation counts as zero elapsed time: a lower sample is ignored, a
//! higher one still raises the estimate, nothing panics. The observation
//! time then follows the caller's clock back (as [`crate::health`] does),
//! so after a clock step idle decay resumes at once instead of stalling
//! until the new clock catches up with the old one. Cost: `observe` and `estimate_ns`
//! are O(1), one `e^-x` evaluation each (the crate's own, no `std`), no
//! allocation.

use crate::time::{Duration, Instant, exp_neg};

/// Tuning for [`PeakEwma`]. Shared by all nodes; the per-node state is
/// [`PeakEwma`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, rename_all = "camelCase"))]
pub struct EwmaConfig {
    /// Decay time constant. A lower sample seen after `tau` of silence gets
    /// weight `1 − 1/e ≈ 63 %`; an idle estimate falls to `1/e` of itself
    /// every `tau`. Default 10 s, Linkerd's default decay window. Zero means
    /// no memory: every sample replaces the estimate and any idle time
    /// decays it to zero.
    pub tau: Duration,
    /// What a node that has never been observed reports. Default 1 s: a
    /// plausible time to first token for a small local model under light
    /// load, so a new node is neither preferred over a proven fast node nor
    /// starved behind a proven slow one. It is not decayed.
    pub default_estimate: Duration,
}

impl Default for EwmaConfig {
    fn default() -> Self {
        EwmaConfig {
            tau: Duration::from_secs(10),
            default_estimate: Duration::from_secs(1),
        }
    }
}

/// The weight `e^(-elapsed/tau)` kept by the old estimate.
fn keep_weight(elapsed: Duration, tau: Duration) -> f64 {
    if elapsed == Duration::ZERO {
        return 1.0;
    }
    if tau == Duration::ZERO {
        return 0.0;
    }
    exp_neg(elapsed.as_nanos() as f64 / tau.as_nanos() as f64)
}

/// Largest estimate kept, in nanoseconds: the longest [`Duration`].
const MAX_ESTIMATE_NS: f64 = u64::MAX as f64;

/// Per-node peak-EWMA state for one latency signal. 24 bytes.
///
/// Getters: [`has_samples`](Self::has_samples), [`samples`](Self::samples),
/// [`last_observed`](Self::last_observed), [`estimate_ns`](Self::estimate_ns),
/// [`estimate`](Self::estimate). Input: [`observe`](Self::observe).
/// Snapshot: [`learned`](Self::learned) and [`restore`](Self::restore).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeakEwma {
    /// Estimate in nanoseconds at `last`, before idle decay. Finite, `>= 0`.
    est_ns: f64,
    /// The `now` of the latest sample.
    last: Instant,
    /// Samples observed (saturating); zero means "use the default".
    samples: u32,
}

impl Default for PeakEwma {
    fn default() -> Self {
        Self::new()
    }
}

impl PeakEwma {
    /// A node with no samples: it reports [`EwmaConfig::default_estimate`].
    pub const fn new() -> Self {
        PeakEwma {
            est_ns: 0.0,
            last: Instant::ZERO,
            samples: 0,
        }
    }

    /// Whether any sample has been observed (or restored).
    pub const fn has_samples(&self) -> bool {
        self.samples > 0
    }

    /// Number of samples observed, saturating at `u32::MAX`.
    pub const fn samples(&self) -> u32 {
        self.samples
    }

    /// The `now` of the latest sample; `None` before the first one.
    pub const fn last_observed(&self) -> Option<Instant> {
        if self.samples > 0 {
            Some(self.last)
        } else {
            None
        }
    }

    /// Records a latency `sample` observed at `now`.
    ///
    /// The first sample becomes the estimate. Later: a sample above the
    /// stored estimate replaces it; otherwise
    /// `est = est·w + sample·(1 − w)` with `w = e^(-(now − last)/tau)`.
    /// A `now` before the previous observation gives `w = 1` (a lower
    /// sample is ignored, a higher one still raises the estimate); the
    /// observation time becomes `now` either way.
    pub fn observe(&mut self, sample: Duration, now: Instant, cfg: &EwmaConfig) {
        let s = sample.as_nanos() as f64;
        if self.samples == 0 || s > self.est_ns {
            self.est_ns = s;
        } else {
            let w = keep_weight(now - self.last, cfg.tau);
            self.est_ns = self.est_ns * w + s * (1.0 - w);
        }
        self.last = now;
        self.samples = self.samples.saturating_add(1);
    }

    /// The estimate at `now` in nanoseconds, decayed towards zero for the
    /// time since the last observation (see the module docs). A node with
    /// no samples reports `cfg.default_estimate`, undecayed. Pure.
    pub fn estimate_ns(&self, now: Instant, cfg: &EwmaConfig) -> f64 {
        if self.samples == 0 {
            return cfg.default_estimate.as_nanos() as f64;
        }
        self.est_ns * keep_weight(now - self.last, cfg.tau)
    }

    /// [`estimate_ns`](Self::estimate_ns) as a [`Duration`], rounded down.
    pub fn estimate(&self, now: Instant, cfg: &EwmaConfig) -> Duration {
        // `as` saturates: values above u64::MAX become MAX, never wrap.
        Duration::from_nanos(self.estimate_ns(now, cfg) as u64)
    }

    /// A snapshot of what was learned, independent of the caller's epoch:
    /// the stored estimate and how long ago it was last updated. `None`
    /// when nothing was learned yet.
    pub fn learned(&self, now: Instant) -> Option<EwmaLearned> {
        if self.samples == 0 {
            return None;
        }
        Some(EwmaLearned {
            estimate_ns: self.est_ns,
            age: now - self.last,
            samples: self.samples,
        })
    }

    /// Rebuilds the state from a snapshot taken by
    /// [`learned`](Self::learned), placing the last observation `age`
    /// before `now` (possibly on another host with another epoch).
    ///
    /// If `now` is closer to the caller's epoch than `age` (a simulation
    /// starting at zero), the part of the age that does not fit is applied
    /// as idle decay right away, so the restored node never looks fresher
    /// than when it was saved. A corrupt estimate (NaN, negative, infinite)
    /// is clamped into `[0, Duration::MAX]`; `samples` is at least 1.
    pub fn restore(learned: EwmaLearned, now: Instant, cfg: &EwmaConfig) -> Self {
        let est = learned.estimate_ns;
        let mut est_ns = if est.is_nan() || est <= 0.0 {
            0.0
        } else if est > MAX_ESTIMATE_NS {
            MAX_ESTIMATE_NS
        } else {
            est
        };
        let fits = Duration::from_nanos(now.as_nanos());
        if learned.age > fits {
            est_ns *= keep_weight(learned.age - fits, cfg.tau);
        }
        PeakEwma {
            est_ns,
            last: now.saturating_sub(learned.age),
            samples: learned.samples.max(1),
        }
    }
}

/// Snapshot of a [`PeakEwma`], independent of the caller's epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "camelCase"))]
pub struct EwmaLearned {
    /// The stored estimate in nanoseconds, before idle decay.
    pub estimate_ns: f64,
    /// Time between the last observation and the snapshot.
    pub age: Duration,
    /// Samples observed so far.
    pub samples: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn cfg() -> EwmaConfig {
        EwmaConfig::default()
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn no_samples_reports_default_undecayed() {
        let e = PeakEwma::new();
        assert!(!e.has_samples());
        assert_eq!(e.samples(), 0);
        assert_eq!(e.last_observed(), None);
        assert_eq!(e.estimate(t(0), &cfg()), Duration::from_secs(1));
        assert_eq!(e.estimate(Instant::MAX, &cfg()), Duration::from_secs(1));
        assert_eq!(e.learned(t(5)), None);
        assert_eq!(PeakEwma::default(), e);
    }

    #[test]
    fn first_sample_is_the_estimate() {
        let mut e = PeakEwma::new();
        e.observe(ms(200), t(1_000), &cfg());
        assert!(e.has_samples());
        assert_eq!(e.last_observed(), Some(t(1_000)));
        assert_eq!(e.estimate_ns(t(1_000), &cfg()), (200 * MS) as f64);
    }

    #[test]
    fn first_sample_lower_than_default_still_replaces() {
        let mut e = PeakEwma::new();
        e.observe(ms(5), t(0), &cfg());
        assert_eq!(e.estimate(t(0), &cfg()), ms(5));
    }

    #[test]
    fn peak_replaces_at_once() {
        let mut e = PeakEwma::new();
        e.observe(ms(100), t(0), &cfg());
        e.observe(ms(900), t(1), &cfg());
        assert_eq!(e.estimate(t(1), &cfg()), ms(900));
    }

    #[test]
    fn lower_sample_blends_by_elapsed_time() {
        let c = cfg();
        let mut e = PeakEwma::new();
        e.observe(ms(1_000), t(0), &c);
        // After exactly tau, the old estimate keeps weight 1/e.
        e.observe(ms(0), t(10_000), &c);
        let w = exp_neg(1.0);
        let want = 1_000.0 * MS as f64 * w;
        assert!(close(e.estimate_ns(t(10_000), &c), want));
    }

    #[test]
    fn lower_sample_with_no_elapsed_time_is_ignored() {
        let c = cfg();
        let mut e = PeakEwma::new();
        e.observe(ms(500), t(7), &c);
        e.observe(ms(10), t(7), &c);
        assert_eq!(e.estimate(t(7), &c), ms(500));
        assert_eq!(e.samples(), 2);
    }

    #[test]
    fn burst_of_fast_samples_moves_little() {
        let c = cfg();
        let mut e = PeakEwma::new();
        e.observe(ms(1_000), t(0), &c);
        for i in 1..=10 {
            e.observe(ms(10), t(i), &c);
        }
        // 10 ms total elapsed: w = e^-0.001, the estimate barely moves.
        let got = e.estimate(t(10), &c);
        assert!(got > ms(985) && got < ms(1_000), "{got}");
    }

    #[test]
    fn idle_decay_on_read_matches_tower() {
        let c = cfg();
        let mut e = PeakEwma::new();
        e.observe(ms(2_000), t(0), &c);
        let at_tau = e.estimate_ns(t(10_000), &c);
        assert!(close(at_tau, 2_000.0 * MS as f64 * exp_neg(1.0)));
        // Pure: reading does not change anything.
        let before = e;
        let _ = e.estimate_ns(t(99_000), &c);
        assert_eq!(before, e);
        // Long idle: effectively zero, never negative.
        let far = e.estimate_ns(t(10_000_000), &c);
        assert!((0.0..1.0).contains(&far));
        assert_eq!(e.estimate_ns(Instant::MAX, &c), 0.0);
    }

    #[test]
    fn observe_never_below_prior_read() {
        let c = cfg();
        let mut e = PeakEwma::new();
        e.observe(ms(3_000), t(0), &c);
        let read = e.estimate_ns(t(30_000), &c);
        e.observe(ms(50), t(30_000), &c);
        let after = e.estimate_ns(t(30_000), &c);
        assert!(after >= read);
        assert!(after >= (50 * MS) as f64);
    }

    #[test]
    fn time_going_backwards_does_not_decay_and_follows_the_clock() {
        let c = cfg();
        let mut e = PeakEwma::new();
        e.observe(ms(400), t(10_000), &c);
        e.observe(ms(100), t(5_000), &c);
        // No elapsed time: the lower sample is ignored.
        assert_eq!(e.estimate(t(5_000), &c), ms(400));
        assert_eq!(e.last_observed(), Some(t(5_000)));
        // A higher sample from the past still raises it.
        e.observe(ms(700), t(1_000), &c);
        assert_eq!(e.estimate(t(1_000), &c), ms(700));
        // Reading before the last observation: no decay, no panic.
        assert_eq!(e.estimate(t(0), &c), ms(700));
        // Idle decay runs on the new clock right away.
        let w = exp_neg(1.0);
        assert!(close(e.estimate_ns(t(11_000), &c), 700.0 * MS as f64 * w));
    }

    #[test]
    fn zero_tau_means_no_memory() {
        let c = EwmaConfig {
            tau: Duration::ZERO,
            ..cfg()
        };
        let mut e = PeakEwma::new();
        e.observe(ms(800), t(0), &c);
        assert_eq!(e.estimate(t(0), &c), ms(800));
        assert_eq!(e.estimate_ns(t(1), &c), 0.0);
        e.observe(ms(20), t(1), &c);
        assert_eq!(e.estimate(t(1), &c), ms(20));
        // Same instant: still no blend (no time passed).
        e.observe(ms(5), t(1), &c);
        assert_eq!(e.estimate(t(1), &c), ms(20));
    }

    #[test]
    fn huge_values_stay_finite() {
        let c = EwmaConfig {
            tau: Duration::MAX,
            default_estimate: Duration::MAX,
        };
        let mut e = PeakEwma::new();
        assert_eq!(e.estimate(t(0), &c), Duration::MAX);
        e.observe(Duration::MAX, Instant::MAX, &c);
        assert_eq!(e.estimate(Instant::MAX, &c), Duration::MAX);
        e.observe(Duration::ZERO, Instant::MAX, &c);
        let v = e.estimate_ns(Instant::MAX, &c);
        assert!(v.is_finite() && v > 0.0);
        let mut e = PeakEwma::new();
        e.observe(Duration::MAX, Instant::ZERO, &cfg());
        e.observe(Duration::ZERO, Instant::MAX, &cfg());
        assert_eq!(e.estimate_ns(Instant::MAX, &cfg()), 0.0);
    }

    #[test]
    fn sample_count_saturates() {
        let mut e = PeakEwma::new();
        e.observe(ms(1), t(0), &cfg());
        e.samples = u32::MAX;
        e.observe(ms(1), t(1), &cfg());
        assert_eq!(e.samples(), u32::MAX);
    }

    #[test]
    fn learned_round_trip_across_epochs() {
        let c = cfg();
        let mut e = PeakEwma::new();
        e.observe(ms(600), t(100_000), &c);
        e.observe(ms(300), t(104_000), &c);
        let snap = e.learned(t(110_000)).expect("has samples");
        assert_eq!(snap.age, ms(6_000));
        assert_eq!(snap.samples, 2);
        // Restore on a host whose clock reads 5_000 s.
        let r = PeakEwma::restore(snap, t(5_000_000), &c);
        assert_eq!(r.samples(), 2);
        assert_eq!(r.last_observed(), Some(t(4_994_000)));
        assert!(close(
            r.estimate_ns(t(5_000_000), &c),
            e.estimate_ns(t(110_000), &c)
        ));
        assert!(close(
            r.estimate_ns(t(5_020_000), &c),
            e.estimate_ns(t(130_000), &c)
        ));
    }

    #[test]
    fn restore_near_epoch_pre_applies_decay() {
        let c = cfg();
        let snap = EwmaLearned {
            estimate_ns: (1_000 * MS) as f64,
            age: ms(30_000),
            samples: 9,
        };
        let r = PeakEwma::restore(snap, t(10_000), &c);
        assert_eq!(r.last_observed(), Some(t(0)));
        let want = (1_000 * MS) as f64 * exp_neg(3.0);
        assert!(close(r.estimate_ns(t(10_000), &c), want));
        let r0 = PeakEwma::restore(snap, Instant::ZERO, &c);
        assert!(close(r0.estimate_ns(Instant::ZERO, &c), want));
    }

    #[test]
    fn restore_sanitises_corrupt_snapshots() {
        let c = cfg();
        let bad = |v: f64| EwmaLearned {
            estimate_ns: v,
            age: Duration::ZERO,
            samples: 0,
        };
        for v in [f64::NAN, -5.0, f64::NEG_INFINITY] {
            let r = PeakEwma::restore(bad(v), t(1), &c);
            assert_eq!(r.estimate_ns(t(1), &c), 0.0);
            assert_eq!(r.samples(), 1);
        }
        let r = PeakEwma::restore(bad(f64::INFINITY), t(1), &c);
        assert_eq!(r.estimate(t(1), &c), Duration::MAX);
        let r = PeakEwma::restore(
            EwmaLearned {
                age: Duration::MAX,
                ..bad(1e9)
            },
            Instant::MAX,
            &c,
        );
        assert!(r.estimate_ns(Instant::MAX, &c).is_finite());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trip() {
        let mut buf = [0u8; 64];
        let c = cfg();
        let bytes = postcard::to_slice(&c, &mut buf).expect("fits in 64 bytes");
        assert_eq!(postcard::from_bytes::<EwmaConfig>(bytes), Ok(c));
        let l = EwmaLearned {
            estimate_ns: 1.5e8,
            age: ms(3),
            samples: 4,
        };
        let bytes = postcard::to_slice(&l, &mut buf).expect("fits in 64 bytes");
        assert_eq!(postcard::from_bytes::<EwmaLearned>(bytes), Ok(l));
    }

    #[test]
    fn state_is_small() {
        extern crate std;
        std::println!(
            "size_of::<PeakEwma>() = {}",
            core::mem::size_of::<PeakEwma>()
        );
        std::println!(
            "size_of::<EwmaLearned>() = {}",
            core::mem::size_of::<EwmaLearned>()
        );
        assert!(core::mem::size_of::<PeakEwma>() <= 24);
    }
}
