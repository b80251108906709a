//! `GET /status` and `GET /nodes` as JSON.
//!
//! [`status_public`] gives counts only, safe to show to any client:
//!
//! ```json
//! {"status":"ok","version":"0.1.0","uptime_seconds":12.5,
//!  "nodes":{"total":3,"healthy":2,"unhealthy":0,"draining":1,"disabled":0},
//!  "active_calls":4,"queue_depth":0}
//! ```
//!
//! [`status_detail`] adds a `detail` object: policy, attempts in flight,
//! permits, capacities, and `nodes`, a list of node objects. [`nodes_json`]
//! answers `{"nodes":[…]}` with the same node objects, plus `mode_reason`
//! with [`nodes_json_with_reasons`]. A node object is:
//!
//! ```json
//! {"name":"gpu-a","kind":"ollama","mode":"enabled","healthy":true,
//!  "in_flight":1,"reserved":0,"max_concurrency":4,"weight":1,
//!  "breaker":{"state":"open","remaining_ms":812.5,"consecutive_failures":0,"consecutive_opens":1},
//!  "overload":{"cooling":false,"remaining_ms":0.000,"events":2},
//!  "health":{"freshness":"passive","age_ms":null,"free_slots":null,"queued":null,"drain":null},
//!  "estimates_ms":{"chat":12.0,"stream":null,"embed":null},
//!  "models":{"any":false,"count":2},
//!  "attempts":{"sent":9,"succeeded":7,"failed":1,"overloaded":1,"cancelled":0}}
//! ```
//!
//! Times are milliseconds relative to `now` (remaining or elapsed), never
//! raw instants; estimates are `null` until the node has samples. No URL,
//! token or other secret is known to the router, so none can appear.

use drover_core::breaker::BreakerState;
use drover_core::node::{Mode, Node, NodeId};
use drover_core::{Instant, Router};

use super::json::Json;
use super::{
    GatewayStats, VERSION, breaker_label, freshness_label, is_healthy, kind_label, mode_label,
};

/// Node counts for `/status`.
#[derive(Default)]
struct Counts {
    total: u64,
    healthy: u64,
    unhealthy: u64,
    draining: u64,
    disabled: u64,
}

fn counts<const N: usize, const C: usize, const Q: usize>(
    r: &Router<N, C, Q>,
    now: Instant,
) -> Counts {
    let mut c = Counts::default();
    for (_, n) in r.nodes().iter() {
        c.total += 1;
        match n.mode {
            Mode::Drain => c.draining += 1,
            Mode::Disabled => c.disabled += 1,
            Mode::Enabled if is_healthy(r, n, now) => c.healthy += 1,
            Mode::Enabled => c.unhealthy += 1,
        }
    }
    c
}

/// Appends the public `/status` object (see the [module docs](self)).
pub fn status_public<const N: usize, const C: usize, const Q: usize>(
    router: &Router<N, C, Q>,
    stats: &GatewayStats,
    now: Instant,
    out: &mut String,
) {
    let mut j = Json::new(out);
    j.open();
    public_fields(&mut j, router, stats, now);
    j.close();
}

/// Appends `/status` with a `detail` object holding per-node detail; for
/// loopback callers (see the [module docs](self)).
pub fn status_detail<const N: usize, const C: usize, const Q: usize>(
    router: &Router<N, C, Q>,
    stats: &GatewayStats,
    now: Instant,
    out: &mut String,
) {
    let mut j = Json::new(out);
    j.open();
    public_fields(&mut j, router, stats, now);
    j.key("detail");
    j.open();
    j.kv_str("policy", router.config().policy.name());
    j.kv_u64("attempts_in_flight", u64::from(router.attempts_in_flight()));
    j.kv_u64(
        "permits_outstanding",
        u64::from(router.permits_outstanding()),
    );
    j.kv_u64("permit_capacity", C as u64);
    j.kv_u64("queue_capacity", Q as u64);
    j.kv_u64("node_capacity", N as u64);
    j.kv_u64("trace_events_dropped", router.trace().dropped());
    j.key("nodes");
    node_list(&mut j, router, now, &|_| None);
    j.close();
    j.close();
}

/// Appends `{"nodes":[…]}` for `GET /nodes`.
pub fn nodes_json<const N: usize, const C: usize, const Q: usize>(
    router: &Router<N, C, Q>,
    now: Instant,
    out: &mut String,
) {
    nodes_json_with_reasons(router, now, &|_| None, out);
}

/// Appends `{"nodes":[…]}` for `GET /nodes`, each node with `mode_reason`:
/// what `reason` returns for its name (the operator's note from
/// `POST /nodes/{name}/mode`), or `null`.
pub fn nodes_json_with_reasons<'a, const N: usize, const C: usize, const Q: usize>(
    router: &Router<N, C, Q>,
    now: Instant,
    reason: &dyn Fn(&str) -> Option<&'a str>,
    out: &mut String,
) {
    let mut j = Json::new(out);
    j.open();
    j.key("nodes");
    node_list(&mut j, router, now, reason);
    j.close();
}

fn public_fields<const N: usize, const C: usize, const Q: usize>(
    j: &mut Json<'_>,
    r: &Router<N, C, Q>,
    stats: &GatewayStats,
    now: Instant,
) {
    let c = counts(r, now);
    let status = if c.healthy == 0 {
        "down"
    } else if c.unhealthy == 0 {
        "ok"
    } else {
        "degraded"
    };
    j.kv_str("status", status);
    j.kv_str("version", VERSION);
    j.key("uptime_seconds");
    j.f64(stats.uptime(now).as_secs_f64());
    j.key("nodes");
    j.open();
    j.kv_u64("total", c.total);
    j.kv_u64("healthy", c.healthy);
    j.kv_u64("unhealthy", c.unhealthy);
    j.kv_u64("draining", c.draining);
    j.kv_u64("disabled", c.disabled);
    j.close();
    j.kv_u64("active_calls", u64::from(r.active_calls()));
    j.kv_u64("queue_depth", r.queue_depth() as u64);
}

fn node_list<'a, const N: usize, const C: usize, const Q: usize>(
    j: &mut Json<'_>,
    r: &Router<N, C, Q>,
    now: Instant,
    reason: &dyn Fn(&str) -> Option<&'a str>,
) {
    j.open_arr();
    for (id, n) in r.nodes().iter() {
        j.open();
        node_fields(j, r, id, n, now);
        j.key("mode_reason");
        match reason(n.spec.name.as_str()) {
            Some(s) => j.str(s),
            None => j.null(),
        }
        j.close();
    }
    j.close_arr();
}

/// Writes one node's fields (inside an open object).
pub(crate) fn node_fields<const N: usize, const C: usize, const Q: usize>(
    j: &mut Json<'_>,
    r: &Router<N, C, Q>,
    id: NodeId,
    n: &Node,
    now: Instant,
) {
    j.kv_str("name", n.spec.name.as_str());
    j.kv_str("kind", kind_label(n.spec.kind));
    j.kv_str("mode", mode_label(n.mode));
    j.kv_bool("healthy", is_healthy(r, n, now));
    j.kv_u64("in_flight", u64::from(n.in_flight));
    j.kv_u64("reserved", u64::from(n.reserved));
    j.kv_u64("max_concurrency", u64::from(n.spec.max_concurrency));
    j.kv_u64("weight", u64::from(n.spec.weight));

    j.key("breaker");
    j.open();
    let state = n.breaker.state(now);
    j.kv_str("state", breaker_label(state));
    j.key("remaining_ms");
    match state {
        BreakerState::Open { until } => j.ms(until.saturating_since(now).as_nanos()),
        _ => j.null(),
    }
    j.kv_u64(
        "consecutive_failures",
        u64::from(n.breaker.consecutive_failures()),
    );
    j.kv_u64(
        "consecutive_opens",
        u64::from(n.breaker.consecutive_opens()),
    );
    j.close();

    j.key("overload");
    j.open();
    j.kv_bool("cooling", n.overload.is_cooling(now));
    j.kv_ms("remaining_ms", n.overload.remaining(now).as_nanos());
    j.kv_u64("events", u64::from(n.overload.events()));
    j.close();

    j.key("health");
    j.open();
    let cfg = r.config();
    j.kv_str(
        "freshness",
        freshness_label(n.health.freshness(now, &cfg.health)),
    );
    j.key("age_ms");
    match n.health.last_seen() {
        Some(seen) => j.ms(now.saturating_since(seen).as_nanos()),
        None => j.null(),
    }
    let report = n.health.report();
    for (k, v) in [
        ("free_slots", report.map(|t| u64::from(t.free_slots))),
        ("queued", report.map(|t| u64::from(t.queued))),
    ] {
        j.key(k);
        match v {
            Some(v) => j.u64(v),
            None => j.null(),
        }
    }
    j.key("drain");
    match report {
        Some(t) => j.bool(t.drain),
        None => j.null(),
    }
    j.close();

    j.key("estimates_ms");
    j.open();
    for (k, e) in [
        ("chat", &n.chat_latency),
        ("stream", &n.ttft),
        ("embed", &n.embed_latency),
    ] {
        j.key(k);
        if e.has_samples() {
            j.ms(e.estimate(now, &cfg.ewma).as_nanos());
        } else {
            j.null();
        }
    }
    j.close();

    j.key("models");
    j.open();
    let models = &n.spec.models;
    j.kv_bool("any", models.is_any());
    j.kv_u64("count", models.iter().count() as u64);
    j.kv_u64("aliases", n.spec.aliases.len() as u64);
    j.close();

    j.key("attempts");
    j.open();
    let m = r.metrics().node(id);
    for (k, v) in [
        ("sent", m.map_or(0, |m| m.attempts)),
        ("succeeded", m.map_or(0, |m| m.succeeded)),
        ("failed", m.map_or(0, |m| m.failures)),
        ("overloaded", m.map_or(0, |m| m.overloads)),
        ("cancelled", m.map_or(0, |m| m.cancelled)),
        ("breaker_opens", m.map_or(0, |m| m.breaker_opens)),
    ] {
        j.kv_u64(k, v);
    }
    j.close();
}
