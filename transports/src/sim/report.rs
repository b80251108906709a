//! What a simulation run produced: a [`Report`] built from exact per-call
//! values, and its table form ([`Display`](std::fmt::Display)).
//!
//! Percentiles are nearest-rank over the sorted values of the successful
//! calls (no histogram buckets): `p`-th percentile of `n` values is the
//! value at rank `ceil(p × n)`.

use std::collections::BTreeMap;
use std::fmt::{self, Write};

use drover_core::{Duration, Instant};

/// One simulated node's part in a run.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeReport {
    /// The node's name.
    pub name: String,
    /// Calls it answered successfully.
    pub ok: u64,
    /// `ok` as a fraction of all successful calls (0 when none succeeded).
    pub share: f64,
    /// Attempts the router sent it.
    pub attempts: u64,
    /// Attempts it answered with a 5xx.
    pub errors: u64,
    /// Attempts refused while it was down.
    pub refused: u64,
    /// Requests it held when it crashed.
    pub dropped: u64,
    /// Attempts it answered with 429.
    pub overloads: u64,
    /// Times the router opened its circuit breaker.
    pub breaker_opens: u64,
}

/// The result of a run. Equal seeds and inputs give equal reports, down to
/// their `Debug` strings.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Calls started.
    pub calls: u64,
    /// Calls that got a full answer.
    pub succeeded: u64,
    /// Failed calls by [`Failure::label`](drover_core::reason::Failure::label).
    pub failed: BTreeMap<&'static str, u64>,
    /// Rejected calls by [`Reject::label`](drover_core::reason::Reject::label).
    pub rejected: BTreeMap<&'static str, u64>,
    /// Calls the client cancelled.
    pub cancelled: u64,
    /// Calls that never got an outcome. Always 0 unless the driver or the
    /// core has a bug; the driver counts rather than trusts.
    pub lost: u64,
    /// Median time to first byte of successful calls (for chat and embed,
    /// the whole answer), from the client's send.
    pub ttft_p50: Option<Duration>,
    /// 99th percentile of the same.
    pub ttft_p99: Option<Duration>,
    /// Median time from the client's send to the end of the answer, over
    /// successful calls.
    pub latency_p50: Option<Duration>,
    /// 99th percentile of the same.
    pub latency_p99: Option<Duration>,
    /// Attempts sent after a failed one.
    pub failovers: u64,
    /// Hedge attempts sent.
    pub hedges: u64,
    /// Per node, in the order they were given.
    pub nodes: Vec<NodeReport>,
    /// Virtual time of the last outcome.
    pub last_outcome: Instant,
    /// True when the run stopped at its event budget rather than running
    /// dry (a bug: every unfinished call is also counted as lost).
    pub stalled: bool,
}

impl Report {
    /// Failed calls, all reasons.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
    /// Rejected calls, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
    /// Attempts beyond each call's first: failovers plus hedges.
    pub fn extra_attempts(&self) -> u64 {
        self.failovers + self.hedges
    }
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// The nearest-rank `q`-quantile (`0 < q <= 1`) of `sorted`, or `None` when
/// it is empty.
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// `-` for no value.
pub fn show(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| d.to_string())
}

/// `name count, name count`, or `-` when empty.
fn reasons(m: &BTreeMap<&'static str, u64>) -> String {
    if m.is_empty() {
        return "-".to_owned();
    }
    let mut s = String::new();
    for (i, (label, n)) in m.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(s, "{sep}{label} {n}");
    }
    s
}

impl fmt::Display for Report {
    /// A compact table: totals, percentiles, reasons, then one row per node.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "calls {}  ok {}  failed {}  rejected {}  cancelled {}  lost {}",
            self.calls,
            self.succeeded,
            self.failed_total(),
            self.rejected_total(),
            self.cancelled,
            self.lost,
        )?;
        let (t50, t99) = (show(self.ttft_p50), show(self.ttft_p99));
        let (l50, l99) = (show(self.latency_p50), show(self.latency_p99));
        let w = t50.len().max(l50.len());
        writeln!(f, "ttft     p50 {t50:>w$}  p99 {t99}")?;
        writeln!(f, "latency  p50 {l50:>w$}  p99 {l99}")?;
        writeln!(
            f,
            "extra attempts {} (failovers {}, hedges {})",
            self.extra_attempts(),
            self.failovers,
            self.hedges
        )?;
        writeln!(f, "failed   {}", reasons(&self.failed))?;
        writeln!(f, "rejected {}", reasons(&self.rejected))?;
        if self.stalled {
            writeln!(f, "STALLED: the run hit its event budget")?;
        }
        let name_w = self.nodes.iter().map(|n| n.name.len()).fold(4, usize::max);
        writeln!(
            f,
            "{:<name_w$}  {:>6}  {:>6}  {:>8}  {:>5}  {:>7}  {:>7}  {:>5}  {:>13}",
            "node", "ok", "share", "attempts", "5xx", "refused", "dropped", "429", "breaker opens"
        )?;
        for n in &self.nodes {
            let share = format!("{:.1}%", n.share * 100.0);
            writeln!(
                f,
                "{:<name_w$}  {:>6}  {:>6}  {:>8}  {:>5}  {:>7}  {:>7}  {:>5}  {:>13}",
                n.name,
                n.ok,
                share,
                n.attempts,
                n.errors,
                n.refused,
                n.dropped,
                n.overloads,
                n.breaker_opens
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&x| Duration::from_millis(x)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 0.5), None);
        let one = ms(&[7]);
        assert_eq!(percentile(&one, 0.5), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&one, 0.99), Some(Duration::from_millis(7)));
        let hundred: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&hundred, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&hundred, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&hundred, 1.0), Some(Duration::from_millis(100)));
        let four = ms(&[10, 20, 30, 40]);
        assert_eq!(percentile(&four, 0.5), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&four, 0.99), Some(Duration::from_millis(40)));
    }

    #[test]
    fn display_is_a_table_with_every_node_and_reason() {
        let r = Report {
            calls: 10,
            succeeded: 7,
            failed: BTreeMap::from([("connect", 1)]),
            rejected: BTreeMap::from([("queue_full", 1), ("all_nodes_saturated", 1)]),
            cancelled: 0,
            lost: 0,
            ttft_p50: Some(Duration::from_millis(120)),
            ttft_p99: Some(Duration::from_millis(900)),
            latency_p50: None,
            latency_p99: None,
            failovers: 2,
            hedges: 1,
            nodes: vec![
                NodeReport {
                    name: "gpu-1".into(),
                    ok: 7,
                    share: 1.0,
                    attempts: 9,
                    errors: 0,
                    refused: 0,
                    dropped: 0,
                    overloads: 2,
                    breaker_opens: 0,
                },
                NodeReport {
                    name: "a-long-node-name".into(),
                    ok: 0,
                    share: 0.0,
                    attempts: 3,
                    errors: 3,
                    refused: 0,
                    dropped: 0,
                    overloads: 0,
                    breaker_opens: 1,
                },
            ],
            last_outcome: Instant::from_secs(3),
            stalled: false,
        };
        let s = r.to_string();
        assert!(s.starts_with("calls 10  ok 7  failed 1  rejected 2  cancelled 0  lost 0\n"));
        assert!(s.contains("ttft     p50 120.0ms  p99 900.0ms"), "{s}");
        assert!(s.contains("latency  p50       -  p99 -"), "{s}");
        assert!(s.contains("extra attempts 3 (failovers 2, hedges 1)"));
        assert!(s.contains("rejected all_nodes_saturated 1, queue_full 1"));
        assert!(!s.contains("STALLED"));
        let rows: Vec<&str> = s.lines().skip_while(|l| !l.starts_with("node")).collect();
        assert_eq!(rows.len(), 3);
        assert!(rows[1].starts_with("gpu-1             "));
        assert!(rows[1].contains("100.0%"));
        assert!(rows[2].starts_with("a-long-node-name  "));
        // Columns line up: every row is as long as the header.
        assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{s}");
        assert_eq!(r.failed_total(), 1);
        assert_eq!(r.node("gpu-1").map(|n| n.attempts), Some(9));
        assert!(r.node("nope").is_none());
    }
}
