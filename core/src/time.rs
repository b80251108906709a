//! Time as values: the core's own [`Instant`] and [`Duration`].
//!
//! The core never reads a clock. Every method that depends on time takes a
//! `now: Instant` from the caller. An `Instant` is a count of nanoseconds since
//! an epoch the caller chooses (process start, the start of a simulation, …);
//! only differences between instants carry meaning, so two hosts with
//! different epochs make the same decisions for the same inputs.
//!
//! Both types are `u64` nanoseconds (about 584 years of range). Arithmetic
//! saturates instead of wrapping or panicking, so a caller that passes a `now`
//! earlier than a previous one (a clock that stepped backwards) gets zero
//! elapsed time, never a panic or a huge bogus interval.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A span of time in nanoseconds. Saturating arithmetic.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Duration(u64);

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);
    /// The longest representable span; used as "never".
    pub const MAX: Duration = Duration(u64::MAX);

    /// From nanoseconds.
    pub const fn from_nanos(ns: u64) -> Self {
        Duration(ns)
    }
    /// From microseconds (saturating).
    pub const fn from_micros(us: u64) -> Self {
        Duration(us.saturating_mul(1_000))
    }
    /// From milliseconds (saturating).
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms.saturating_mul(1_000_000))
    }
    /// From whole seconds (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(1_000_000_000))
    }
    /// Nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Whole microseconds, rounded down.
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }
    /// Whole milliseconds, rounded down.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }
    /// Seconds as a float (for display and scoring, never for state).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    /// Sum, saturating at [`Duration::MAX`].
    pub const fn saturating_add(self, rhs: Duration) -> Duration {
        Duration(self.0.saturating_add(rhs.0))
    }
    /// Difference, saturating at zero.
    pub const fn saturating_sub(self, rhs: Duration) -> Duration {
        Duration(self.0.saturating_sub(rhs.0))
    }
    /// Multiply by an integer, saturating.
    pub const fn saturating_mul(self, k: u64) -> Duration {
        Duration(self.0.saturating_mul(k))
    }
    /// The smaller of two durations.
    pub const fn min(self, other: Duration) -> Duration {
        if self.0 <= other.0 { self } else { other }
    }
    /// The larger of two durations.
    pub const fn max(self, other: Duration) -> Duration {
        if self.0 >= other.0 { self } else { other }
    }
    /// Clamp into `[lo, hi]` (`hi` wins if `lo > hi`).
    pub const fn clamp(self, lo: Duration, hi: Duration) -> Duration {
        self.max(lo).min(hi)
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        self.saturating_add(rhs)
    }
}

impl AddAssign for Duration {
    fn add_assign(&mut self, rhs: Duration) {
        *self = self.saturating_add(rhs);
    }
}

impl Sub for Duration {
    type Output = Duration;
    fn sub(self, rhs: Duration) -> Duration {
        self.saturating_sub(rhs)
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Duration {
    /// Human form: `0ns`, `750us`, `12.5ms`, `3.2s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        if ns == u64::MAX {
            f.write_str("forever")
        } else if ns < 1_000 {
            write!(f, "{ns}ns")
        } else if ns < 1_000_000 {
            write!(f, "{}us", ns / 1_000)
        } else if ns < 1_000_000_000 {
            write!(f, "{}.{}ms", ns / 1_000_000, (ns / 100_000) % 10)
        } else {
            write!(f, "{}.{}s", ns / 1_000_000_000, (ns / 100_000_000) % 10)
        }
    }
}

/// A point in time: nanoseconds since an epoch chosen by the caller.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Instant(u64);

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);
    /// The last representable instant; used as "never".
    pub const MAX: Instant = Instant(u64::MAX);

    /// From nanoseconds since the caller's epoch.
    pub const fn from_nanos(ns: u64) -> Self {
        Instant(ns)
    }
    /// From milliseconds since the caller's epoch (saturating).
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms.saturating_mul(1_000_000))
    }
    /// From seconds since the caller's epoch (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Instant(s.saturating_mul(1_000_000_000))
    }
    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
    /// `self + d`, saturating at [`Instant::MAX`].
    pub const fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
    /// `self - d`, saturating at the epoch.
    pub const fn saturating_sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d.0))
    }
    /// The earlier of two instants.
    pub const fn min(self, other: Instant) -> Instant {
        if self.0 <= other.0 { self } else { other }
    }
    /// The later of two instants.
    pub const fn max(self, other: Instant) -> Instant {
        if self.0 >= other.0 { self } else { other }
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{}", Duration(self.0))
    }
}

/// `e^(-x)` for `x >= 0`, without `std` or `libm`.
///
/// Used for time decay on every score, so it is table-driven: with
/// `x = k·ln2/64 + r`, `r` in `[0, ln2/64)`, `e^-x = 2^-(k/64) · e^-r`, where
/// `2^-(k mod 64)/64` comes from a 64-entry table, `2^-(k div 64)` is built
/// from the exponent bits, and `e^-r` is a degree-4 polynomial (truncation
/// error below `r^5/120 < 2e-12`). Relative error below 1e-11 on the whole
/// range. Deterministic: only `+ - * /` and bit construction, no fused
/// operations, so every host computes the same bits.
pub(crate) fn exp_neg(x: f64) -> f64 {
    // NaN, zero and negative inputs: no decay.
    if x.is_nan() || x <= 0.0 {
        return 1.0;
    }
    if x > 700.0 {
        return 0.0;
    }
    const STEP: f64 = core::f64::consts::LN_2 / 64.0;
    const INV_STEP: f64 = 64.0 / core::f64::consts::LN_2;
    let k = (x * INV_STEP) as u64; // truncation: floor for x >= 0; k <= 64_634
    let r = x - (k as f64) * STEP;
    let p = 1.0 - r * (1.0 - r * (0.5 - r * (1.0 / 6.0 - r * (1.0 / 24.0))));
    let hi = k >> 6; // <= 1009, so 1023 - hi is a normal exponent
    let scale = f64::from_bits((1023 - hi) << 52);
    p * EXP2_NEG_SIXTYFOURTHS[(k & 63) as usize] * scale
}

/// `2^(-j/64)` for `j` in `0..64`, by repeated multiplication with
/// `2^(-1/64)` (accumulated error below 40 ulp).
const EXP2_NEG_SIXTYFOURTHS: [f64; 64] = {
    const C: f64 = 0.989_228_013_193_975_5; // 2^(-1/64)
    let mut t = [1.0f64; 64];
    let mut j = 1;
    while j < 64 {
        t[j] = t[j - 1] * C;
        j += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturating_arithmetic_never_panics() {
        assert_eq!(
            Instant::from_secs(1) - Instant::from_secs(2),
            Duration::ZERO
        );
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Duration::MAX + Duration::from_secs(1), Duration::MAX);
        assert_eq!(Duration::from_secs(u64::MAX), Duration::MAX);
        assert_eq!(
            Instant::ZERO.saturating_sub(Duration::from_secs(1)),
            Instant::ZERO
        );
    }

    #[test]
    fn display_is_human() {
        extern crate std;
        use std::format;
        assert_eq!(format!("{}", Duration::from_nanos(12)), "12ns");
        assert_eq!(format!("{}", Duration::from_micros(750)), "750us");
        assert_eq!(format!("{}", Duration::from_micros(12_500)), "12.5ms");
        assert_eq!(format!("{}", Duration::from_millis(3_200)), "3.2s");
        assert_eq!(format!("{}", Duration::MAX), "forever");
    }

    #[test]
    fn exp_neg_matches_std_closely() {
        extern crate std;
        for i in 0..20000 {
            let x = i as f64 * 0.00173;
            let want = (-x).exp();
            let got = exp_neg(x);
            assert!(
                (got - want).abs() <= want * 1e-11 + 1e-300,
                "x={x} got={got} want={want}"
            );
        }
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(-3.0), 1.0);
        assert_eq!(exp_neg(f64::NAN), 1.0);
        assert_eq!(exp_neg(1e9), 0.0);
        assert!(exp_neg(600.0) > 0.0);
    }
}
