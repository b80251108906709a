//! What a simulation run produced: a [`Report`] built from exact per-call
//! values, and its table form ([`Display`](std::fmt::Display)).
//!
//! Percentiles are nearest-rank over the sorted values of the successful
//! calls (no histogram buckets): `p`-th percentile of `n` values is the
//! value at rank `ceil(p × n)`.

use std::collections::BTreeMap;
use std::fmt::{self, Write};

use drover_core::{Duration, Instant};

use super::series::TimeSeries;

/// One simulated node's part in a run.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeReport {
    /// The node's name.
    pub name: String,
    /// Calls it answered successfully.
    pub ok: u64,
    /// `ok` as a fraction of all successful calls (0 when none succeeded).
    pub share: f64,
    /// Attempts the routers sent it.
    pub attempts: u64,
    /// Attempts it answered with a 5xx.
    pub errors: u64,
    /// Attempts refused while it was down.
    pub refused: u64,
    /// Attempts it accepted while hung (and never answered).
    pub hung: u64,
    /// Requests it held when it crashed.
    pub dropped: u64,
    /// Attempts it answered with 429.
    pub overloads: u64,
    /// Replies it corrupted (each failed validation).
    pub invalid: u64,
    /// Times the routers (all gateways) opened its circuit breaker.
    pub breaker_opens: u64,
    /// Fraction of prompt blocks looked up in its prefix cache that hit
    /// (`None` without a cache or lookups).
    pub prefix_hit_rate: Option<f64>,
}

/// One gateway's part in a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayReport {
    /// Calls it ran to an outcome.
    pub calls: u64,
    /// Of those, calls that succeeded.
    pub succeeded: u64,
    /// Attempts its router sent after a failed one.
    pub failovers: u64,
    /// Hedges its router sent.
    pub hedges: u64,
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
    /// Calls that never got an outcome. Always 0 after a run that returned
    /// (a lost call is a [`Violation`](super::Violation)); non-zero only in
    /// a report taken mid-run.
    pub lost: u64,
    /// Median time to first byte of successful calls (for chat and embed,
    /// the whole answer), from the client's send.
    pub ttft_p50: Option<Duration>,
    /// 90th percentile of the same.
    pub ttft_p90: Option<Duration>,
    /// 99th percentile of the same.
    pub ttft_p99: Option<Duration>,
    /// 99.9th percentile of the same.
    pub ttft_p999: Option<Duration>,
    /// Median time from the client's send to the end of the answer, over
    /// successful calls.
    pub latency_p50: Option<Duration>,
    /// 90th percentile of the same.
    pub latency_p90: Option<Duration>,
    /// 99th percentile of the same.
    pub latency_p99: Option<Duration>,
    /// 99.9th percentile of the same.
    pub latency_p999: Option<Duration>,
    /// Median time from the client's send to its first attempt (waiting in
    /// the gateway's admission queue), over calls that sent one.
    pub queue_wait_p50: Option<Duration>,
    /// 99th percentile of the same.
    pub queue_wait_p99: Option<Duration>,
    /// Fraction of prompt blocks looked up in the nodes' prefix caches that
    /// hit (`None` when nothing was looked up).
    pub prefix_hit_rate: Option<f64>,
    /// Attempts sent after a failed one (all gateways).
    pub failovers: u64,
    /// Hedge attempts sent (all gateways).
    pub hedges: u64,
    /// Per node, in the order they were given.
    pub nodes: Vec<NodeReport>,
    /// Per gateway.
    pub gateways: Vec<GatewayReport>,
    /// Load and failures over time.
    pub series: TimeSeries,
    /// Virtual time of the last outcome.
    pub last_outcome: Instant,
    /// True when the run stopped at its event budget rather than running
    /// dry (a bug, also reported as a violation).
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
        let t = [self.ttft_p50, self.ttft_p90, self.ttft_p99, self.ttft_p999].map(show);
        let l = [
            self.latency_p50,
            self.latency_p90,
            self.latency_p99,
            self.latency_p999,
        ]
        .map(show);
        let w: [usize; 4] = std::array::from_fn(|i| t[i].len().max(l[i].len()));
        for (label, v) in [("ttft    ", &t), ("latency ", &l)] {
            writeln!(
                f,
                "{label} p50 {:>w0$}  p90 {:>w1$}  p99 {:>w2$}  p999 {}",
                v[0],
                v[1],
                v[2],
                v[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
            )?;
        }
        writeln!(
            f,
            "queue wait p50 {}  p99 {}",
            show(self.queue_wait_p50),
            show(self.queue_wait_p99)
        )?;
        if let Some(r) = self.prefix_hit_rate {
            writeln!(f, "prefix cache hit rate {:.1}% of blocks", r * 100.0)?;
        }
        writeln!(
            f,
            "extra attempts {} (failovers {}, hedges {})",
            self.extra_attempts(),
            self.failovers,
            self.hedges
        )?;
        writeln!(f, "failed   {}", reasons(&self.failed))?;
        writeln!(f, "rejected {}", reasons(&self.rejected))?;
        if self.gateways.len() > 1 {
            let calls: Vec<String> = self.gateways.iter().map(|g| g.calls.to_string()).collect();
            writeln!(
                f,
                "gateways {}: calls {}",
                self.gateways.len(),
                calls.join(" / ")
            )?;
        }
        if self.stalled {
            writeln!(f, "STALLED: the run hit its event budget")?;
        }
        let name_w = self.nodes.iter().map(|n| n.name.len()).fold(4, usize::max);
        writeln!(
            f,
            "{:<name_w$}  {:>6}  {:>6}  {:>8}  {:>5}  {:>7}  {:>7}  {:>5}  {:>7}  {:>13}  {:>6}",
            "node",
            "ok",
            "share",
            "attempts",
            "5xx",
            "refused",
            "dropped",
            "429",
            "invalid",
            "breaker opens",
            "prefix"
        )?;
        for n in &self.nodes {
            let share = format!("{:.1}%", n.share * 100.0);
            let prefix = n
                .prefix_hit_rate
                .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0));
            writeln!(
                f,
                "{:<name_w$}  {:>6}  {:>6}  {:>8}  {:>5}  {:>7}  {:>7}  {:>5}  {:>7}  {:>13}  {:>6}",
                n.name,
                n.ok,
                share,
                n.attempts,
                n.errors,
                n.refused + n.hung,
                n.dropped,
                n.overloads,
                n.invalid,
                n.breaker_opens,
                prefix
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

    fn node(name: &str, ok: u64, attempts: u64) -> NodeReport {
        NodeReport {
            name: name.into(),
            ok,
            share: 0.0,
            attempts,
            errors: 0,
            refused: 0,
            hung: 0,
            dropped: 0,
            overloads: 0,
            invalid: 0,
            breaker_opens: 0,
            prefix_hit_rate: None,
        }
    }

    #[test]
    fn display_is_a_table_with_every_node_and_reason() {
        let d = |x| Some(Duration::from_millis(x));
        let mut r = Report {
            calls: 10,
            succeeded: 7,
            failed: BTreeMap::from([("connect", 1)]),
            rejected: BTreeMap::from([("queue_full", 1), ("all_nodes_saturated", 1)]),
            cancelled: 0,
            lost: 0,
            ttft_p50: d(120),
            ttft_p90: d(400),
            ttft_p99: d(900),
            ttft_p999: d(1_500),
            latency_p50: None,
            latency_p90: None,
            latency_p99: None,
            latency_p999: None,
            queue_wait_p50: d(0),
            queue_wait_p99: d(30),
            prefix_hit_rate: None,
            failovers: 2,
            hedges: 1,
            nodes: vec![
                NodeReport {
                    share: 1.0,
                    overloads: 2,
                    prefix_hit_rate: Some(0.25),
                    ..node("gpu-1", 7, 9)
                },
                NodeReport {
                    errors: 3,
                    breaker_opens: 1,
                    refused: 1,
                    hung: 2,
                    ..node("a-long-node-name", 0, 3)
                },
            ],
            gateways: vec![GatewayReport::default()],
            series: TimeSeries::new(Duration::from_secs(1), Vec::new()),
            last_outcome: Instant::from_secs(3),
            stalled: false,
        };
        let s = r.to_string();
        assert!(s.starts_with("calls 10  ok 7  failed 1  rejected 2  cancelled 0  lost 0\n"));
        assert!(
            s.contains("ttft     p50 120.0ms  p90 400.0ms  p99 900.0ms  p999 1.5s"),
            "{s}"
        );
        assert!(
            s.contains("latency  p50       -  p90       -  p99       -  p999 -"),
            "{s}"
        );
        assert!(s.contains("queue wait p50 0ns  p99 30.0ms"), "{s}");
        assert!(!s.contains("prefix cache"), "{s}");
        assert!(s.contains("extra attempts 3 (failovers 2, hedges 1)"));
        assert!(s.contains("rejected all_nodes_saturated 1, queue_full 1"));
        assert!(!s.contains("STALLED") && !s.contains("gateways"));
        let rows: Vec<&str> = s.lines().skip_while(|l| !l.starts_with("node")).collect();
        assert_eq!(rows.len(), 3);
        assert!(rows[1].starts_with("gpu-1             "));
        assert!(
            rows[1].contains("100.0%") && rows[1].ends_with("25.0%"),
            "{s}"
        );
        assert!(rows[2].starts_with("a-long-node-name  "));
        assert!(rows[2].ends_with("-"), "{s}");
        // Columns line up: every row is as long as the header.
        assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{s}");
        assert_eq!(r.failed_total(), 1);
        assert_eq!(r.node("gpu-1").map(|n| n.attempts), Some(9));
        assert!(r.node("nope").is_none());

        r.prefix_hit_rate = Some(0.5);
        r.stalled = true;
        r.gateways = vec![
            GatewayReport {
                calls: 6,
                ..GatewayReport::default()
            },
            GatewayReport {
                calls: 4,
                ..GatewayReport::default()
            },
        ];
        let s = r.to_string();
        assert!(s.contains("prefix cache hit rate 50.0% of blocks"), "{s}");
        assert!(s.contains("gateways 2: calls 6 / 4"), "{s}");
        assert!(s.contains("STALLED"), "{s}");
    }
}
