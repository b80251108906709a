//! Operator surfaces of the gateway, as pure renderers.
//!
//! Each function reads a [`Router`] (and, for the
//! gateway's own counters, a [`GatewayStats`]) and appends its answer to a
//! caller-owned `String`. Nothing here does I/O, reads a clock (`now` is
//! passed in) or takes a lock: the gateway calls these inside its
//! `SharedRouter::with` closure, so each one is a single pass over the node
//! table and the metrics, allocation-free apart from the output's growth.
//!
//! | surface | function | shape |
//! |---|---|---|
//! | `GET /metrics` | [`prometheus`] | Prometheus text format 0.0.4 (passes `promtool check metrics`) |
//! | `GET /status` | [`status_public`] | counts only, safe for anyone |
//! | `GET /status` (loopback) | [`status_detail`] | the counts plus per-node detail |
//! | `GET /nodes` | [`nodes_json`], [`nodes_json_with_reasons`] | every node's detail |
//! | `POST /route/preview` | [`preview_json`] | the plan and every node's verdict |
//! | `GET /trace/{id}` | [`trace_json`] | one call's decision events |
//!
//! Nodes are named by their configured **name**, never by URL, and no
//! renderer sees a URL or a secret: the router does not hold them.
//!
//! Stable label values used across the surfaces:
//!
//! - mode: `enabled`, `drain`, `disabled`;
//! - kind: `ollama`, `openai_compat`;
//! - breaker: `closed`, `half_open`, `open` (as a Prometheus gauge 0, 1, 2);
//! - freshness: `passive` (no heartbeat ever), `fresh`, `stale`, `lost`;
//! - reasons: the core's [`label`](drover_core::reason::Reject::label)s.
//!
//! A node is **healthy** when it is enabled, its breaker is closed, it is
//! not cooling down after a 429/503 and its heartbeats (if it sends any)
//! are fresh. `/status` says `ok` when every enabled node is healthy (and
//! there is at least one), `degraded` when only some are, `down` when none.

mod json;
pub mod prom;
pub mod stats;
pub mod status;
pub mod trace;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_json;

pub use prom::prometheus;
pub use stats::{ENDPOINT_LABELS, GatewayStats, REJECTION_LABELS, STATUS_CODES, STATUS_LABELS};
pub use status::{nodes_json, nodes_json_with_reasons, status_detail, status_public};
pub use trace::{preview_json, trace_json};

use drover_core::breaker::BreakerState;
use drover_core::health::Freshness;
use drover_core::node::{Mode, Node, NodeId, NodeKind};
use drover_core::{Instant, Router};

/// The gateway's version, as reported by `/status` and `drover_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `enabled`, `drain` or `disabled`.
pub fn mode_label(m: Mode) -> &'static str {
    match m {
        Mode::Enabled => "enabled",
        Mode::Drain => "drain",
        Mode::Disabled => "disabled",
    }
}

/// `ollama` or `openai_compat`.
pub fn kind_label(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Ollama => "ollama",
        NodeKind::OpenAiCompat => "openai_compat",
    }
}

/// `closed`, `half_open` or `open`.
pub fn breaker_label(s: BreakerState) -> &'static str {
    match s {
        BreakerState::Closed => "closed",
        BreakerState::HalfOpen => "half_open",
        BreakerState::Open { .. } => "open",
    }
}

/// `passive`, `fresh`, `stale` or `lost`.
pub fn freshness_label(f: Freshness) -> &'static str {
    match f {
        Freshness::Passive => "passive",
        Freshness::Fresh => "fresh",
        Freshness::Stale => "stale",
        Freshness::Lost => "lost",
    }
}

/// Whether `node` counts as healthy at `now` (see the [module docs](self)).
pub fn is_healthy<const N: usize, const C: usize, const Q: usize>(
    router: &Router<N, C, Q>,
    node: &Node,
    now: Instant,
) -> bool {
    node.mode == Mode::Enabled
        && node.breaker.state(now) == BreakerState::Closed
        && !node.overload.is_cooling(now)
        && matches!(
            node.health.freshness(now, &router.config().health),
            Freshness::Passive | Freshness::Fresh
        )
}

/// Writes `id`'s node name through `f`, or `n<slot>` if the slot is empty
/// now (a node removed since an event named it).
pub(crate) fn with_node_name<const N: usize, const C: usize, const Q: usize>(
    router: &Router<N, C, Q>,
    id: NodeId,
    j: &mut json::Json<'_>,
) {
    match router.node(id) {
        Some(n) => j.str(n.spec.name.as_str()),
        None => j.display(&id),
    }
}
