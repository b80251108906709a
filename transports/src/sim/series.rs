//! Time series of a run, for plots: per-node load and failures per time
//! bucket.
//!
//! Bucket `b` covers virtual time `[b × bucket, (b + 1) × bucket)` from
//! [`Instant::ZERO`]. Updating a series costs O(1) per event (plus O(nodes)
//! each time the clock enters a new bucket); nothing is sampled on a timer.

use std::fmt::Write;

use drover_core::{Duration, Instant};

/// Most buckets a series keeps; events after the last bucket's start are
/// counted in the last bucket.
pub const MAX_BUCKETS: usize = 1 << 20;

/// Per-node load and failures over time. Every vector has one entry per
/// bucket, from time zero to the bucket of the last event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeSeries {
    /// Bucket width.
    pub bucket: Duration,
    /// Node names, in the order the driver was given them.
    pub nodes: Vec<String>,
    /// Attempts sent to each node, per bucket: `started[node][bucket]`.
    pub started: Vec<Vec<u32>>,
    /// The most requests each node held at once (in slots or in its queue)
    /// during each bucket: `held_peak[node][bucket]`.
    pub held_peak: Vec<Vec<u32>>,
    /// Calls that ended failed, per bucket of their end.
    pub failed_calls: Vec<u32>,
    /// Attempts that failed (refused, 5xx, 429, invalid reply, timeout,
    /// broken stream), per bucket of the failure.
    pub failed_attempts: Vec<u32>,
}

impl TimeSeries {
    /// An empty series of `nodes` with buckets of `bucket` (at least 1 ns).
    pub fn new(bucket: Duration, nodes: Vec<String>) -> Self {
        let n = nodes.len();
        TimeSeries {
            bucket: bucket.max(Duration::from_nanos(1)),
            nodes,
            started: vec![Vec::new(); n],
            held_peak: vec![Vec::new(); n],
            failed_calls: Vec::new(),
            failed_attempts: Vec::new(),
        }
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.failed_calls.len()
    }
    /// True when no bucket was reached yet.
    pub fn is_empty(&self) -> bool {
        self.failed_calls.is_empty()
    }
    /// When bucket `b` starts.
    pub fn bucket_start(&self, b: usize) -> Instant {
        Instant::ZERO + self.bucket.saturating_mul(b as u64)
    }
    /// The bucket `t` falls in.
    pub fn bucket_of(&self, t: Instant) -> usize {
        let b = t.as_nanos() / self.bucket.as_nanos();
        usize::try_from(b)
            .unwrap_or(usize::MAX)
            .min(MAX_BUCKETS - 1)
    }

    /// Attempts sent to `node` in buckets `[from, to)`.
    pub fn started_between(&self, node: usize, from: usize, to: usize) -> u64 {
        self.started.get(node).map_or(0, |v| {
            v.iter().take(to).skip(from).map(|&x| u64::from(x)).sum()
        })
    }

    /// Makes room up to the bucket of `now`. New buckets start with each
    /// node's current `held` count (constant since the last change).
    pub(crate) fn reach(&mut self, now: Instant, held: impl Fn(usize) -> usize) -> usize {
        let last = self.failed_calls.len().wrapping_sub(1);
        if !self.is_empty() && self.bucket_start(last) <= now && now < self.bucket_start(last + 1) {
            return last; // the common case: still in the last bucket
        }
        let b = self.bucket_of(now);
        if b >= self.failed_calls.len() {
            self.failed_calls.resize(b + 1, 0);
            self.failed_attempts.resize(b + 1, 0);
            for (n, (s, h)) in self.started.iter_mut().zip(&mut self.held_peak).enumerate() {
                s.resize(b + 1, 0);
                h.resize(b + 1, held(n) as u32);
            }
        }
        b
    }

    /// An attempt was sent to `node` in bucket `b`.
    pub(crate) fn started(&mut self, b: usize, node: usize) {
        self.started[node][b] += 1;
    }
    /// `node` now holds `held` requests, in bucket `b`.
    pub(crate) fn held(&mut self, b: usize, node: usize, held: usize) {
        let p = &mut self.held_peak[node][b];
        *p = (*p).max(held as u32);
    }
    /// A failed attempt in bucket `b`.
    pub(crate) fn attempt_failed(&mut self, b: usize) {
        self.failed_attempts[b] += 1;
    }
    /// A failed call in bucket `b`.
    pub(crate) fn call_failed(&mut self, b: usize) {
        self.failed_calls[b] += 1;
    }

    /// The series as CSV, one row per bucket: `t_s` (bucket start, seconds),
    /// `started:<node>` and `held:<node>` for each node, `failed_calls`,
    /// `failed_attempts`.
    pub fn csv(&self) -> String {
        let mut s = String::from("t_s");
        for n in &self.nodes {
            let _ = write!(s, ",started:{n}");
        }
        for n in &self.nodes {
            let _ = write!(s, ",held:{n}");
        }
        s.push_str(",failed_calls,failed_attempts\n");
        for b in 0..self.len() {
            let _ = write!(s, "{}", self.bucket_start(b).as_nanos() as f64 / 1e9);
            for v in self.started.iter().chain(&self.held_peak) {
                let _ = write!(s, ",{}", v[b]);
            }
            let _ = writeln!(s, ",{},{}", self.failed_calls[b], self.failed_attempts[b]);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_on_demand_and_carry_the_held_count() {
        let mut s = TimeSeries::new(Duration::from_secs(1), vec!["a".into(), "b".into()]);
        assert!(s.is_empty());
        let b = s.reach(Instant::from_millis(500), |_| 0);
        assert_eq!(b, 0);
        s.started(b, 0);
        s.held(b, 0, 3);
        s.held(b, 0, 1);
        // Entering bucket 3: buckets 1 to 3 start at the current counts.
        let b = s.reach(Instant::from_millis(3_200), |n| [2, 5][n]);
        assert_eq!(b, 3);
        s.attempt_failed(b);
        s.call_failed(b);
        s.started(b, 1);
        assert_eq!(s.len(), 4);
        assert_eq!(s.started, [vec![1, 0, 0, 0], vec![0, 0, 0, 1]]);
        assert_eq!(s.held_peak, [vec![3, 2, 2, 2], vec![0, 5, 5, 5]]);
        assert_eq!(s.failed_calls, [0, 0, 0, 1]);
        assert_eq!(s.started_between(0, 0, 2), 1);
        assert_eq!(s.started_between(1, 0, 3), 0);
        assert_eq!(s.started_between(7, 0, 3), 0);
        // An earlier time reaches nothing new.
        assert_eq!(s.reach(Instant::from_millis(10), |_| 9), 0);
        assert_eq!(s.len(), 4);
        let csv = s.csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "t_s,started:a,started:b,held:a,held:b,failed_calls,failed_attempts"
        );
        assert_eq!(lines[4], "3,0,1,2,5,1,1");
        assert_eq!(lines.len(), 5);
        assert_eq!(s.bucket_start(2), Instant::from_secs(2));
    }

    #[test]
    fn far_times_land_in_the_last_bucket() {
        let s = TimeSeries::new(Duration::from_nanos(1), Vec::new());
        assert_eq!(s.bucket_of(Instant::MAX), MAX_BUCKETS - 1);
        let z = TimeSeries::new(Duration::ZERO, Vec::new());
        assert_eq!(z.bucket, Duration::from_nanos(1));
    }
}
