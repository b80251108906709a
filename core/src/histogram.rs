//! Fixed-bucket latency histograms for Prometheus export and quantiles.
//!
//! A [`Histogram`] counts durations (latency, time to first token, queue
//! wait) into a fixed set of buckets whose upper bounds are
//! [`BUCKET_BOUNDS`]. It exists so the core can keep per-operation and
//! per-node latency distributions without allocating, and so a transport
//! can print them in the Prometheus text format and estimate quantiles for
//! status pages.
//!
//! # Bucket semantics
//!
//! Buckets follow Prometheus' cumulative `le` ("less than or equal")
//! convention: a value `v` belongs to the first bucket whose bound `b`
//! satisfies `v <= b`, so a value exactly on a bound counts in that bound's
//! bucket. Values above the last bound go to the `+Inf` bucket. Internally
//! each bucket holds its own (non-cumulative) count;
//! [`Histogram::cumulative`] produces the running totals Prometheus expects
//! for its `_bucket{le="…"}` series, ending with `le="+Inf"`, whose value
//! equals `_count`.
//!
//! # Choice of bounds
//!
//! LLM serving spans five to six orders of magnitude: a cached embedding
//! answers in a millisecond or two, time to first token sits between tens of
//! milliseconds and a few seconds, and a long generation from a reasoning
//! model can run for many minutes. The bounds therefore run from 1 ms to
//! 10 minutes, 1-2-5 per decade up to 10 s (the ratio between neighbouring
//! bounds is at most 2.5, which bounds the relative error of a quantile
//! estimate, see [`Histogram::quantile`]). Above 10 s they follow the time
//! units operators write timeouts and SLOs in (20 s, 30 s, 1 min, 2 min,
//! 5 min, 10 min), so a threshold such as "stream must finish within 60 s"
//! lands exactly on a bucket edge. Anything slower than 10 minutes is a
//! timeout in practice and only needs to be counted, which `+Inf` does.
//! Below 1 ms everything is gateway overhead, not model time, and one bucket
//! is enough. Nineteen bounds plus `+Inf` keep a histogram at 176 bytes, so
//! one per node and operation is cheap.
//!
//! # Cost
//!
//! [`Histogram::record`] is a binary search over 19 bounds (five
//! comparisons) and three additions; nothing allocates and nothing panics.
//! Counts and the sum saturate instead of wrapping.
//!
//! # Quantiles
//!
//! [`Histogram::quantile`] uses the same estimate as Prometheus'
//! `histogram_quantile`: find the bucket that holds the requested rank and
//! interpolate linearly between its lower and upper bound, assuming the
//! values inside a bucket are spread uniformly.

use crate::time::Duration;

/// Number of finite bucket bounds.
pub const BUCKET_COUNT: usize = 19;

/// Upper bounds (inclusive, Prometheus `le`) of the finite buckets, in
/// increasing order. A value above the last bound falls into the `+Inf`
/// bucket. See the [module docs](self) for why these values.
pub const BUCKET_BOUNDS: [Duration; BUCKET_COUNT] = [
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(20),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(300),
    Duration::from_secs(600),
];

/// Buckets including `+Inf`.
const SLOTS: usize = BUCKET_COUNT + 1;

/// A fixed-bucket histogram of durations.
///
/// 176 bytes: one `u64` count per bucket (19 finite buckets and `+Inf`),
/// the total count and the saturating sum in nanoseconds.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Histogram {
    /// Per-bucket counts, not cumulative; index `BUCKET_COUNT` is `+Inf`.
    buckets: [u64; SLOTS],
    /// Number of recorded values (saturating).
    count: u64,
    /// Sum of recorded values in nanoseconds (saturating).
    sum_ns: u64,
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Histogram {
            buckets: [0; SLOTS],
            count: 0,
            sum_ns: 0,
        }
    }

    /// Count one value. O(log buckets), never allocates, never panics.
    pub fn record(&mut self, value: Duration) {
        // Index of the first bound >= value, i.e. the `le` bucket; equals
        // BUCKET_COUNT (the +Inf slot) when value exceeds every bound.
        let i = BUCKET_BOUNDS.partition_point(|b| *b < value);
        self.buckets[i] = self.buckets[i].saturating_add(1);
        self.count = self.count.saturating_add(1);
        self.sum_ns = self.sum_ns.saturating_add(value.as_nanos());
    }

    /// Number of recorded values (Prometheus `_count`).
    pub const fn count(&self) -> u64 {
        self.count
    }

    /// `true` if nothing has been recorded since creation or [`reset`](Self::reset).
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sum of recorded values (Prometheus `_sum`), saturating at
    /// [`Duration::MAX`].
    pub const fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns)
    }

    /// The finite bucket bounds, same as [`BUCKET_BOUNDS`].
    pub fn bucket_bounds() -> &'static [Duration] {
        &BUCKET_BOUNDS
    }

    /// Cumulative counts per bound, in increasing bound order, for the
    /// Prometheus `_bucket{le="…"}` series: one item per finite bound, then
    /// `(None, total)` for `le="+Inf"`. Always yields `BUCKET_COUNT + 1`
    /// items, also when the histogram is empty.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<Duration>, u64)> + '_ {
        let mut acc = 0u64;
        BUCKET_BOUNDS
            .iter()
            .copied()
            .map(Some)
            .chain(core::iter::once(None))
            .zip(self.buckets.iter())
            .map(move |(bound, &n)| {
                acc = acc.saturating_add(n);
                (bound, acc)
            })
    }

    /// Estimate the `q`-quantile (`0.5` = median, `0.99` = p99).
    ///
    /// Returns `None` when the histogram is empty or `q` is NaN; `q` outside
    /// `[0, 1]` is clamped. Like Prometheus' `histogram_quantile`, it finds the
    /// first non-empty bucket whose cumulative count reaches `q · count` and
    /// interpolates linearly between that bucket's lower bound (the previous
    /// bound, or zero for the first bucket) and its upper bound.
    ///
    /// # Error bound
    ///
    /// The estimate lies in the same bucket as the true nearest-rank
    /// quantile (the `⌈q·n⌉`-th smallest value, or the smallest for
    /// `q = 0`). Hence for a quantile in a finite bucket `(lo, hi]`:
    /// the absolute error is at most `hi - lo`, which is at most 1 ms in the
    /// first bucket and otherwise at most `1.5 · lo` (a factor of 2.5 between
    /// estimate and truth at worst, 2 on the 1→2 and 5→10 steps). If the
    /// quantile falls in the `+Inf` bucket, the result is the last finite
    /// bound (600 s), which is then a lower bound of the truth.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if q.is_nan() {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        // Work from the bucket counts, not `self.count`, so a histogram
        // deserialized with an inconsistent `count` still gives a sane answer.
        let total = self
            .buckets
            .iter()
            .fold(0u64, |acc, &n| acc.saturating_add(n));
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            let through = below.saturating_add(n);
            if n > 0 && through as f64 >= rank {
                let Some(&hi) = BUCKET_BOUNDS.get(i) else {
                    // The +Inf bucket has no upper bound to interpolate to.
                    return Some(BUCKET_BOUNDS[BUCKET_COUNT - 1]);
                };
                let lo = match i {
                    0 => Duration::ZERO,
                    _ => BUCKET_BOUNDS[i - 1],
                };
                let frac = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                let width = hi.saturating_sub(lo).as_nanos() as f64;
                // `as u64` saturates; `min` guards against rounding past `hi`.
                let offset = Duration::from_nanos((width * frac) as u64);
                return Some(lo.saturating_add(offset).min(hi));
            }
            below = through;
        }
        // Unreachable: the last non-empty bucket has `through == total >= rank`.
        // Answer conservatively rather than panic.
        Some(BUCKET_BOUNDS[BUCKET_COUNT - 1])
    }

    /// Add every count and the sum of `other` into `self` (saturating), as if
    /// all of `other`'s values had been recorded here too.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// Forget everything recorded so far.
    pub fn reset(&mut self) {
        *self = Histogram::new();
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Non-cumulative count of the bucket with upper bound `le` (None = +Inf).
    fn bucket(h: &Histogram, le: Option<Duration>) -> u64 {
        let mut prev = 0;
        for (b, c) in h.cumulative() {
            if b == le {
                return c - prev;
            }
            prev = c;
        }
        panic!("no bucket {le:?}");
    }

    #[test]
    fn bounds_are_strictly_increasing() {
        assert!(BUCKET_BOUNDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Histogram::bucket_bounds(), &BUCKET_BOUNDS[..]);
        assert_eq!(BUCKET_BOUNDS[0], ms(1));
        assert_eq!(BUCKET_BOUNDS[BUCKET_COUNT - 1], Duration::from_secs(600));
        // Neighbouring bounds differ by at most a factor 2.5 (the error bound).
        assert!(
            BUCKET_BOUNDS
                .windows(2)
                .all(|w| w[1].as_nanos() * 2 <= w[0].as_nanos() * 5)
        );
    }

    #[test]
    fn size_is_176_bytes() {
        assert_eq!(core::mem::size_of::<Histogram>(), 176);
    }

    #[test]
    fn value_on_a_bound_goes_to_that_bucket() {
        for &b in BUCKET_BOUNDS.iter() {
            let mut h = Histogram::new();
            h.record(b);
            assert_eq!(bucket(&h, Some(b)), 1, "bound {b}");
            // One nanosecond more goes to the next bucket.
            let mut h2 = Histogram::new();
            h2.record(b + Duration::from_nanos(1));
            assert_eq!(bucket(&h2, Some(b)), 0, "bound {b} + 1ns");
        }
        let mut h = Histogram::new();
        h.record(Duration::from_secs(600) + Duration::from_nanos(1));
        assert_eq!(bucket(&h, None), 1);
    }

    #[test]
    fn zero_goes_to_first_bucket() {
        let mut h = Histogram::new();
        h.record(Duration::ZERO);
        assert_eq!(bucket(&h, Some(ms(1))), 1);
        assert_eq!(h.count(), 1);
        assert_eq!(h.sum(), Duration::ZERO);
        // Interpolation only knows "somewhere in [0, 1 ms]".
        assert_eq!(h.quantile(0.5), Some(Duration::from_micros(500)));
        assert_eq!(h.quantile(0.0), Some(Duration::ZERO));
    }

    #[test]
    fn huge_durations_go_to_inf_and_sum_saturates() {
        let mut h = Histogram::new();
        h.record(Duration::MAX);
        h.record(Duration::MAX);
        h.record(Duration::from_secs(3600));
        assert_eq!(bucket(&h, None), 3);
        assert_eq!(h.count(), 3);
        assert_eq!(h.sum(), Duration::MAX);
        // Quantiles in +Inf report the last finite bound.
        assert_eq!(h.quantile(0.99), Some(Duration::from_secs(600)));
        assert_eq!(h.quantile(0.0), Some(Duration::from_secs(600)));
    }

    #[test]
    fn empty_histogram() {
        let h = Histogram::new();
        assert!(h.is_empty());
        assert_eq!(h.count(), 0);
        assert_eq!(h.sum(), Duration::ZERO);
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.quantile(0.0), None);
        let cum: Vec<_> = h.cumulative().collect();
        assert_eq!(cum.len(), BUCKET_COUNT + 1);
        assert!(cum.iter().all(|&(_, c)| c == 0));
        assert_eq!(cum.last(), Some(&(None, 0)));
        assert_eq!(h, Histogram::default());
    }

    #[test]
    fn cumulative_is_prometheus_shaped() {
        let mut h = Histogram::new();
        for v in [0, 1, 2, 3, 7, 700_000] {
            h.record(ms(v));
        }
        let cum: Vec<_> = h.cumulative().collect();
        assert_eq!(cum[0], (Some(ms(1)), 2)); // 0, 1
        assert_eq!(cum[1], (Some(ms(2)), 3)); // + 2
        assert_eq!(cum[2], (Some(ms(5)), 4)); // + 3
        assert_eq!(cum[3], (Some(ms(10)), 5)); // + 7
        assert_eq!(cum[BUCKET_COUNT - 1], (Some(Duration::from_secs(600)), 5));
        assert_eq!(cum[BUCKET_COUNT], (None, 6));
        assert!(cum.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(h.sum(), ms(700_013));
    }

    #[test]
    fn quantile_uniform_within_one_bucket_interpolates() {
        // 1000 values spread evenly over (100 ms, 200 ms].
        let mut h = Histogram::new();
        for i in 1..=1000u64 {
            h.record(Duration::from_micros(100_000 + i * 100));
        }
        assert_eq!(bucket(&h, Some(ms(200))), 1000);
        assert_eq!(h.quantile(0.5), Some(ms(150)));
        assert_eq!(h.quantile(0.9), Some(ms(190)));
        assert_eq!(h.quantile(1.0), Some(ms(200)));
        assert_eq!(h.quantile(0.0), Some(ms(100)));
        // Clamping.
        assert_eq!(h.quantile(-3.0), h.quantile(0.0));
        assert_eq!(h.quantile(7.0), h.quantile(1.0));
        assert_eq!(h.quantile(f64::NAN), None);
    }

    #[test]
    fn quantile_on_two_point_distribution() {
        // 90 fast calls at 15 ms, 10 slow at 4 s.
        let mut h = Histogram::new();
        for _ in 0..90 {
            h.record(ms(15));
        }
        for _ in 0..10 {
            h.record(ms(4000));
        }
        // p50: rank 50 of 90 in (10, 20] ms → 10 + 10·50/90.
        let p50 = h.quantile(0.5).map(|d| d.as_micros());
        assert_eq!(p50, Some(15_555));
        // p90 is exactly the top of the fast bucket.
        assert_eq!(h.quantile(0.9), Some(ms(20)));
        // p95: rank 95 → 5 of 10 into (2 s, 5 s].
        assert_eq!(h.quantile(0.95), Some(ms(3500)));
        assert_eq!(h.quantile(1.0), Some(ms(5000)));
        // q = 0 skips the empty first buckets.
        assert_eq!(h.quantile(0.0), Some(ms(10)));
    }

    #[test]
    fn quantile_error_bound_holds_on_random_log_uniform_data() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for round in 0..20 {
            let mut h = Histogram::new();
            let n = rng.usize(1..2000);
            let mut values: Vec<u64> = (0..n)
                .map(|_| {
                    // Log-uniform between 100 us and ~1000 s.
                    let exp = rng.f64() * 7.0;
                    (1e5 * 10f64.powf(exp)) as u64
                })
                .collect();
            for &v in &values {
                h.record(Duration::from_nanos(v));
            }
            values.sort_unstable();
            // Truth is the nearest-rank quantile: the ceil(q·n)-th smallest.
            for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0] {
                let k = ((q * n as f64).ceil() as usize).max(1);
                let truth = Duration::from_nanos(values[k - 1]);
                let est = h.quantile(q).unwrap();
                let bucket_of = |d: Duration| BUCKET_BOUNDS.partition_point(|b| *b < d);
                let (bt, be) = (bucket_of(truth), bucket_of(est));
                assert!(
                    bt == be || (be + 1 == bt && est == BUCKET_BOUNDS[be]),
                    "round {round} q {q}: est {est} truth {truth}"
                );
                if bt < BUCKET_COUNT {
                    let hi = BUCKET_BOUNDS[bt];
                    let lo = if bt == 0 {
                        Duration::ZERO
                    } else {
                        BUCKET_BOUNDS[bt - 1]
                    };
                    assert!(est >= lo && est <= hi, "round {round} q {q}");
                } else {
                    assert_eq!(est, Duration::from_secs(600));
                }
            }
        }
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        let mut both = Histogram::new();
        for v in [0, 3, 40, 900] {
            a.record(ms(v));
            both.record(ms(v));
        }
        for v in [3, 3, 1_000_000] {
            b.record(ms(v));
            both.record(ms(v));
        }
        a.merge(&b);
        assert_eq!(a, both);
        assert_eq!(a.count(), 7);
        // Merging an empty histogram changes nothing.
        a.merge(&Histogram::new());
        assert_eq!(a, both);
        // Saturation instead of overflow.
        let mut big = Histogram::new();
        big.record(Duration::MAX);
        let copy = big.clone();
        big.merge(&copy);
        assert_eq!(big.sum(), Duration::MAX);
        assert_eq!(big.count(), 2);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trip() {
        let mut h = Histogram::new();
        for v in [0, 3, 40, 900, 1_000_000] {
            h.record(ms(v));
        }
        let mut buf = [0u8; 256];
        let bytes = postcard::to_slice(&h, &mut buf).unwrap();
        let back: Histogram = postcard::from_bytes(bytes).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn reset_empties() {
        let mut h = Histogram::new();
        h.record(ms(5));
        h.reset();
        assert_eq!(h, Histogram::new());
        assert_eq!(h.quantile(0.5), None);
    }
}
