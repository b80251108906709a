//! `GET /metrics`: the Prometheus text exposition format, version 0.0.4.
//!
//! Every family has `# HELP` and `# TYPE` and its samples are contiguous;
//! names are `drover_*` with their unit (`_seconds`, `_bytes`) and
//! counters end in `_total`, so `promtool check metrics` accepts the
//! output without lint warnings. Label values are escaped (`\\`, `\"`,
//! `\n`) and nodes are labelled by name, never by URL.
//!
//! Families (op = `chat|stream|embed`, node = the node's name):
//!
//! | family | type | labels |
//! |---|---|---|
//! | `drover_build_info` | gauge (1) | version |
//! | `drover_uptime_seconds` | gauge | |
//! | `drover_requests_total` | counter | op |
//! | `drover_requests_succeeded_total` | counter | op |
//! | `drover_requests_cancelled_total` | counter | op |
//! | `drover_requests_failed_total` | counter | op, reason ([`FAILURE_LABELS`]) |
//! | `drover_requests_rejected_total` | counter | op, reason ([`REJECT_LABELS`]) |
//! | `drover_request_duration_seconds` | histogram | op |
//! | `drover_request_ttft_seconds` | histogram | op |
//! | `drover_request_queue_wait_seconds` | histogram | op |
//! | `drover_active_calls`, `drover_attempts_in_flight`, `drover_queue_depth`, `drover_queue_capacity`, `drover_permits_outstanding` | gauge | |
//! | `drover_pool_limit` | gauge | pool (`global`, `chat`, `stream`, `embed`, `background`) |
//! | `drover_failovers_total`, `drover_hedges_total`, `drover_hedges_won_total`, `drover_hedges_denied_total`, `drover_retry_budget_exhausted_total` | counter | |
//! | `drover_probes_total`, `drover_probes_failed_total` | counter | `kind` (`health`, `inventory`) |
//! | `drover_trace_events_dropped_total` | counter | |
//! | `drover_node_info` | gauge (1) | node, kind |
//! | `drover_node_mode` | gauge (1 for the current mode) | node, mode |
//! | `drover_node_healthy` | gauge (0/1) | node |
//! | `drover_node_in_flight`, `drover_node_max_concurrency` | gauge | node |
//! | `drover_node_breaker_state` | gauge: 0 closed, 1 half-open, 2 open | node |
//! | `drover_node_breaker_opens_total` | counter | node |
//! | `drover_node_overload_cooldown_active` | gauge (0/1) | node |
//! | `drover_node_overload_cooldown_remaining_seconds` | gauge | node |
//! | `drover_node_attempts_total` | counter | node |
//! | `drover_node_attempt_results_total` | counter | node, result (`succeeded`, `failed`, `overloaded`, `cancelled`) |
//! | `drover_node_latency_estimate_seconds` | gauge (peak EWMA; nodes with samples) | node, op |
//! | `drover_node_heartbeat_age_seconds` | gauge (nodes that sent one) | node |
//! | `drover_node_attempt_duration_seconds` | histogram | node |
//! | `drover_node_ttft_seconds` | histogram | node |
//! | `drover_http_responses_total` | counter (non-zero only) | endpoint, code ([`STATUS_LABELS`](super::STATUS_LABELS)) |
//! | `drover_http_rejections_total` | counter | reason ([`REJECTION_LABELS`](super::REJECTION_LABELS)) |
//! | `drover_client_disconnects_total`, `drover_streams_broken_total`, `drover_upstream_bytes_total` | counter | |
//! | `drover_nodes_reloads_total` | counter | `result` (`applied`, `refused`) |
//!
//! Histograms convert the core's fixed buckets
//! ([`BUCKET_BOUNDS`](drover_core::histogram::BUCKET_BOUNDS), 1 ms to
//! 10 min) to cumulative `_bucket{le="…"}` series in seconds, then `_sum`
//! (exact, from nanoseconds) and `_count`.
//!
//! [`FAILURE_LABELS`]: drover_core::metrics::FAILURE_LABELS
//! [`REJECT_LABELS`]: drover_core::metrics::REJECT_LABELS

use std::fmt::{self, Display, Write};

use drover_core::admission::Pool;
use drover_core::breaker::BreakerState;
use drover_core::histogram::Histogram;
use drover_core::metrics::{FAILURE_LABELS, NodeMetrics, OpMetrics, REJECT_LABELS};
use drover_core::node::{Mode, Node};
use drover_core::route::Op;
use drover_core::{Duration, Instant, Router};

use super::{GatewayStats, VERSION, is_healthy, kind_label, mode_label};

/// Appends the whole exposition for `router` and `stats` at `now` to `out`.
///
/// One pass per family over the node table; no allocation besides `out`'s
/// growth (about 7 KB plus 5 KB per node, reserved up front).
pub fn prometheus<const N: usize, const C: usize, const Q: usize>(
    router: &Router<N, C, Q>,
    stats: &GatewayStats,
    now: Instant,
    out: &mut String,
) {
    // Roughly 7 KB of router-wide families plus 5 KB per node: reserve it
    // once instead of growing the buffer a dozen times.
    out.reserve(7 * 1024 + 5 * 1024 * router.nodes().len());
    let mut p = Prom { out };
    p.family("drover_build_info", "gauge", "Build information; always 1.");
    p.line("drover_build_info", "", &[("version", VERSION)], None, &1);
    p.family(
        "drover_uptime_seconds",
        "gauge",
        "Time since the gateway started.",
    );
    p.line(
        "drover_uptime_seconds",
        "",
        &[],
        None,
        &Secs(stats.uptime(now)),
    );
    calls(&mut p, router);
    load(&mut p, router);
    nodes(&mut p, router, now);
    gateway(&mut p, stats);
}

/// One counter of an operation.
type OpCount = fn(&OpMetrics) -> u64;
/// One histogram of an operation.
type OpHist = fn(&OpMetrics) -> &Histogram;
/// Reads an operation's counts by reason (failures or rejections).
type OpReasons = fn(&OpMetrics) -> &[u64];

fn calls<const N: usize, const C: usize, const Q: usize>(p: &mut Prom<'_>, r: &Router<N, C, Q>) {
    let m = r.metrics();
    let per_op: [(&str, &str, OpCount); 3] = [
        ("drover_requests_total", "Calls started.", |o| o.calls),
        (
            "drover_requests_succeeded_total",
            "Calls that ended with a full answer.",
            |o| o.succeeded,
        ),
        (
            "drover_requests_cancelled_total",
            "Calls cancelled by their client.",
            |o| o.cancelled,
        ),
    ];
    for (name, help, get) in per_op {
        p.family(name, "counter", help);
        for op in Op::ALL {
            p.line(name, "", &[("op", op.label())], None, &get(m.op(op)));
        }
    }
    let by_reason: [(&str, &str, &[&str], OpReasons); 2] = [
        (
            "drover_requests_failed_total",
            "Calls that failed, by the last failure.",
            &FAILURE_LABELS,
            |o| &o.failed,
        ),
        (
            "drover_requests_rejected_total",
            "Calls refused before any attempt, by reason.",
            &REJECT_LABELS,
            |o| &o.rejected,
        ),
    ];
    for (name, help, labels, counts) in by_reason {
        p.family(name, "counter", help);
        for op in Op::ALL {
            for (reason, n) in labels.iter().zip(counts(m.op(op))) {
                p.line(name, "", &[("op", op.label()), ("reason", reason)], None, n);
            }
        }
    }
    let hists: [(&str, &str, OpHist); 3] = [
        (
            "drover_request_duration_seconds",
            "Whole-call latency of successful calls.",
            |o| &o.latency,
        ),
        (
            "drover_request_ttft_seconds",
            "Time to first byte of calls that produced one.",
            |o| &o.ttft,
        ),
        (
            "drover_request_queue_wait_seconds",
            "Time admitted calls waited in the admission queue.",
            |o| &o.queue_wait,
        ),
    ];
    for (name, help, get) in hists {
        p.family(name, "histogram", help);
        for op in Op::ALL {
            p.histogram(name, ("op", op.label()), get(m.op(op)));
        }
    }
}

fn load<const N: usize, const C: usize, const Q: usize>(p: &mut Prom<'_>, r: &Router<N, C, Q>) {
    let gauges: [(&str, &str, u64); 5] = [
        (
            "drover_active_calls",
            "Calls started and not yet finished.",
            u64::from(r.active_calls()),
        ),
        (
            "drover_attempts_in_flight",
            "Attempts in flight on all nodes.",
            u64::from(r.attempts_in_flight()),
        ),
        (
            "drover_queue_depth",
            "Calls waiting in the admission queue.",
            r.queue_depth() as u64,
        ),
        (
            "drover_queue_capacity",
            "Calls the admission queue can hold.",
            Q as u64,
        ),
        (
            "drover_permits_outstanding",
            "Admission permits held by running calls.",
            u64::from(r.permits_outstanding()),
        ),
    ];
    for (name, help, v) in gauges {
        p.family(name, "gauge", help);
        p.line(name, "", &[], None, &v);
    }
    let name = "drover_pool_limit";
    p.family(name, "gauge", "Configured concurrency limit of each pool.");
    let pools = r.config().pools;
    p.line(name, "", &[("pool", "global")], None, &pools.global);
    for pool in Pool::ALL {
        p.line(name, "", &[("pool", pool.as_str())], None, &pools.get(pool));
    }
    let m = r.metrics();
    let counters: [(&str, &str, u64); 6] = [
        (
            "drover_failovers_total",
            "Attempts after the first caused by a failure.",
            m.failovers,
        ),
        ("drover_hedges_total", "Hedge attempts started.", m.hedges),
        (
            "drover_hedges_won_total",
            "Hedges that beat the original attempt.",
            m.hedges_won,
        ),
        (
            "drover_hedges_denied_total",
            "Hedges the budget refused.",
            m.hedges_denied,
        ),
        (
            "drover_retry_budget_exhausted_total",
            "Failovers and hedges the retry budget refused.",
            m.retries_denied,
        ),
        (
            "drover_trace_events_dropped_total",
            "Decision events overwritten in the trace ring.",
            r.trace().dropped(),
        ),
    ];
    for (name, help, v) in counters {
        p.family(name, "counter", help);
        p.line(name, "", &[], None, &v);
    }
    for (name, help, values) in [
        (
            "drover_probes_total",
            "Active probes sent, by kind (health, inventory).",
            m.probes.sent,
        ),
        (
            "drover_probes_failed_total",
            "Active probes that failed or timed out, by kind.",
            m.probes.failed,
        ),
    ] {
        p.family(name, "counter", help);
        for kind in drover_core::probe::ProbeKind::ALL {
            p.line(
                name,
                "",
                &[("kind", kind.label())],
                None,
                &values[kind.index()],
            );
        }
    }
}

/// A per-node gauge's value at an instant.
type NodeGet = fn(&Node, Instant) -> u64;

fn nodes<const N: usize, const C: usize, const Q: usize>(
    p: &mut Prom<'_>,
    r: &Router<N, C, Q>,
    now: Instant,
) {
    let name = "drover_node_info";
    p.family(
        name,
        "gauge",
        "One series per node, with its kind; always 1.",
    );
    for (_, n) in r.nodes().iter() {
        let labels = [
            ("node", n.spec.name.as_str()),
            ("kind", kind_label(n.spec.kind)),
        ];
        p.line(name, "", &labels, None, &1);
    }
    let name = "drover_node_mode";
    p.family(name, "gauge", "1 for the node's current mode, 0 otherwise.");
    for (_, n) in r.nodes().iter() {
        for mode in [Mode::Enabled, Mode::Drain, Mode::Disabled] {
            let labels = [("node", n.spec.name.as_str()), ("mode", mode_label(mode))];
            p.line(name, "", &labels, None, &u8::from(n.mode == mode));
        }
    }
    let name = "drover_node_healthy";
    p.family(
        name,
        "gauge",
        "1 if enabled, breaker closed, not cooling down and heartbeats fresh or absent.",
    );
    for (_, n) in r.nodes().iter() {
        let v = u8::from(is_healthy(r, n, now));
        p.line(name, "", &[("node", n.spec.name.as_str())], None, &v);
    }
    let gauges: [(&str, &str, NodeGet); 5] = [
        (
            "drover_node_in_flight",
            "Attempts in flight on the node.",
            |n, _| u64::from(n.in_flight),
        ),
        (
            "drover_node_max_concurrency",
            "Configured concurrency limit of the node.",
            |n, _| u64::from(n.spec.max_concurrency),
        ),
        (
            "drover_node_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            |n, now| match n.breaker.state(now) {
                BreakerState::Closed => 0,
                BreakerState::HalfOpen => 1,
                BreakerState::Open { .. } => 2,
            },
        ),
        (
            "drover_node_breaker_consecutive_failures",
            "Consecutive failures counted by the closed breaker.",
            |n, _| u64::from(n.breaker.consecutive_failures()),
        ),
        (
            "drover_node_overload_cooldown_active",
            "1 while the node cools down after a 429/503.",
            |n, now| u64::from(n.overload.is_cooling(now)),
        ),
    ];
    for (name, help, get) in gauges {
        p.family(name, "gauge", help);
        for (_, n) in r.nodes().iter() {
            p.line(
                name,
                "",
                &[("node", n.spec.name.as_str())],
                None,
                &get(n, now),
            );
        }
    }
    let name = "drover_node_overload_cooldown_remaining_seconds";
    p.family(
        name,
        "gauge",
        "Cooldown left after a 429/503 (0 when none).",
    );
    for (_, n) in r.nodes().iter() {
        let left = Secs(n.overload.remaining(now));
        p.line(name, "", &[("node", n.spec.name.as_str())], None, &left);
    }
    node_counters(p, r);
    let name = "drover_node_latency_estimate_seconds";
    p.family(
        name,
        "gauge",
        "Peak-EWMA estimate the router scores with (op stream = time to first byte).",
    );
    let ewma = &r.config().ewma;
    for (_, n) in r.nodes().iter() {
        for (op, e) in [
            (Op::Chat, &n.chat_latency),
            (Op::Stream, &n.ttft),
            (Op::Embed, &n.embed_latency),
        ] {
            if e.has_samples() {
                let labels = [("node", n.spec.name.as_str()), ("op", op.label())];
                p.line(name, "", &labels, None, &Secs(e.estimate(now, ewma)));
            }
        }
    }
    let name = "drover_node_heartbeat_age_seconds";
    p.family(
        name,
        "gauge",
        "Time since the node's last heartbeat (nodes that sent one).",
    );
    for (_, n) in r.nodes().iter() {
        if let Some(seen) = n.health.last_seen() {
            let age = Secs(now.saturating_since(seen));
            p.line(name, "", &[("node", n.spec.name.as_str())], None, &age);
        }
    }
    let hists: [(&str, &str, bool); 2] = [
        (
            "drover_node_attempt_duration_seconds",
            "Latency of completed non-streamed attempts.",
            false,
        ),
        (
            "drover_node_ttft_seconds",
            "Time to first byte of streamed attempts.",
            true,
        ),
    ];
    for (name, help, ttft) in hists {
        p.family(name, "histogram", help);
        for (id, n) in r.nodes().iter() {
            let empty = Histogram::new();
            let h = match r.metrics().node(id) {
                Some(m) if ttft => &m.ttft,
                Some(m) => &m.latency,
                None => &empty,
            };
            p.histogram(name, ("node", n.spec.name.as_str()), h);
        }
    }
}

fn node_counters<const N: usize, const C: usize, const Q: usize>(
    p: &mut Prom<'_>,
    r: &Router<N, C, Q>,
) {
    let m = r.metrics();
    let zero = NodeMetrics::default();
    let of = |id| m.node(id).unwrap_or(&zero);
    let name = "drover_node_breaker_opens_total";
    p.family(name, "counter", "Times the node's breaker opened.");
    for (id, n) in r.nodes().iter() {
        let v = of(id).breaker_opens;
        p.line(name, "", &[("node", n.spec.name.as_str())], None, &v);
    }
    let name = "drover_node_attempts_total";
    p.family(name, "counter", "Attempts sent to the node.");
    for (id, n) in r.nodes().iter() {
        let v = of(id).attempts;
        p.line(name, "", &[("node", n.spec.name.as_str())], None, &v);
    }
    let name = "drover_node_attempt_results_total";
    p.family(
        name,
        "counter",
        "Attempt verdicts: succeeded, failed (charged to the node), overloaded (429/503), cancelled.",
    );
    for (id, n) in r.nodes().iter() {
        let nm = of(id);
        for (result, v) in [
            ("succeeded", nm.succeeded),
            ("failed", nm.failures),
            ("overloaded", nm.overloads),
            ("cancelled", nm.cancelled),
        ] {
            let labels = [("node", n.spec.name.as_str()), ("result", result)];
            p.line(name, "", &labels, None, &v);
        }
    }
}

fn gateway(p: &mut Prom<'_>, stats: &GatewayStats) {
    let name = "drover_http_responses_total";
    p.family(
        name,
        "counter",
        "HTTP responses by endpoint and status (exact codes or class).",
    );
    stats.each_response(|endpoint, code, n| {
        p.line(
            name,
            "",
            &[("endpoint", endpoint), ("code", code)],
            None,
            &n,
        );
    });
    let name = "drover_http_rejections_total";
    p.family(
        name,
        "counter",
        "Requests refused before or instead of reaching a node, by reason.",
    );
    stats.each_rejection(|reason, n| {
        p.line(name, "", &[("reason", reason)], None, &n);
    });
    let counters: [(&str, &str, u64); 3] = [
        (
            "drover_client_disconnects_total",
            "Clients that went away before their answer ended.",
            stats.client_disconnects(),
        ),
        (
            "drover_streams_broken_total",
            "Streams that broke after their first byte (ended with an error event).",
            stats.streams_broken(),
        ),
        (
            "drover_upstream_bytes_total",
            "Bytes received from nodes.",
            stats.upstream_bytes(),
        ),
    ];
    for (name, help, v) in counters {
        p.family(name, "counter", help);
        p.line(name, "", &[], None, &v);
    }
    let name = "drover_nodes_reloads_total";
    p.family(
        name,
        "counter",
        "Reloads of the nodes file, by result (applied, or refused for its problems).",
    );
    let (applied, refused) = stats.nodes_reloads();
    p.line(name, "", &[("result", "applied")], None, &applied);
    p.line(name, "", &[("result", "refused")], None, &refused);
}

/// Writes exposition lines into a `String`.
struct Prom<'a> {
    out: &'a mut String,
}

impl Prom<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing into a String cannot fail.
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// `name+suffix{labels,le="…"} value`.
    fn line(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        le: Option<Option<Duration>>,
        value: &dyn Display,
    ) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        if !labels.is_empty() || le.is_some() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label(self.out, v);
                self.out.push('"');
            }
            if let Some(bound) = le {
                if !labels.is_empty() {
                    self.out.push(',');
                }
                match bound {
                    Some(b) => {
                        let _ = write!(self.out, "le=\"{}\"", Secs(b));
                    }
                    None => self.out.push_str("le=\"+Inf\""),
                }
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn histogram(&mut self, name: &str, label: (&str, &str), h: &Histogram) {
        let labels = [label];
        for (bound, n) in h.cumulative() {
            self.line(name, "_bucket", &labels, Some(bound), &n);
        }
        self.line(name, "_sum", &labels, None, &Secs(h.sum()));
        self.line(name, "_count", &labels, None, &h.count());
    }
}

/// Appends `v` escaped for a label value: backslash, double quote and line
/// feed, as the text format requires.
pub(crate) fn escape_label(out: &mut String, v: &str) {
    let mut start = 0;
    for (i, b) in v.bytes().enumerate() {
        let esc = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        // `i` is an ASCII byte, hence a char boundary.
        out.push_str(&v[start..i]);
        out.push_str(esc);
        start = i + 1;
    }
    out.push_str(&v[start..]);
}

/// A duration printed as exact decimal seconds (`0.001`, `1.5`, `600`).
pub(crate) struct Secs(pub(crate) Duration);

impl Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        let (s, mut frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
        write!(f, "{s}")?;
        if frac == 0 {
            return Ok(());
        }
        let mut digits = 9;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        write!(f, ".{frac:0digits$}")
    }
}
