//! An independent statement of the routing rules, from public node state only.
//!
//! The harness uses it to judge every `Send` (was that node allowed, and was
//! a drained node the last resort?) and every route preview (does each
//! verdict match the rules?). It restates the hard filters of
//! `drover_core::route` in their documented order: mode disabled, pin,
//! capability, model, scope, required tags, heartbeat lost or stale,
//! breaker open, overload cooldown, already tried, saturated.

use drover_core::Instant;
use drover_core::breaker::BreakerState;
use drover_core::config::{RouterConfig, TagMode};
use drover_core::health::Freshness;
use drover_core::node::{Mode, Node, NodeId};
use drover_core::reason::Exclusion;
use drover_core::route::Query;

/// Whether `node` may take a call with `query` at `now`: `Ok(draining)` when
/// it survives the hard filters (draining nodes are a last resort), else the
/// first exclusion, exactly as the core documents it.
pub fn filter(
    cfg: &RouterConfig,
    id: NodeId,
    node: &Node,
    query: &Query,
    tried: &[NodeId],
    now: Instant,
) -> Result<bool, Exclusion> {
    if node.mode == Mode::Disabled {
        return Err(Exclusion::Disabled);
    }
    if query.pin.is_some_and(|p| p != id) {
        return Err(Exclusion::NotPinned);
    }
    let needed = query.op.capability().union(query.needs);
    if !node.spec.capabilities.contains(needed) {
        return Err(Exclusion::MissingCapability);
    }
    if let Some(m) = query.model {
        if node.spec.resolve_model(m).is_none() {
            return Err(Exclusion::ModelNotServed);
        }
    }
    if node.spec.scope.is_some() && node.spec.scope != query.scope {
        return Err(Exclusion::ScopeMismatch);
    }
    if cfg.tag_mode == TagMode::Require && !node.spec.tags.contains_all(query.tags) {
        return Err(Exclusion::MissingTags);
    }
    let mut draining = node.mode == Mode::Drain;
    match node.health.freshness(now, &cfg.health) {
        Freshness::Lost => return Err(Exclusion::Lost),
        Freshness::Stale => return Err(Exclusion::Stale),
        Freshness::Fresh => draining |= node.health.report().is_some_and(|r| r.drain),
        Freshness::Passive => {}
    }
    match node.breaker.state(now) {
        BreakerState::Open { until } => return Err(Exclusion::BreakerOpen { until }),
        BreakerState::HalfOpen
            if node.breaker.probes_in_flight() >= cfg.breaker.half_open_probes =>
        {
            return Err(Exclusion::BreakerOpen { until: now });
        }
        BreakerState::HalfOpen | BreakerState::Closed => {}
    }
    if node.overload.is_cooling(now) {
        return Err(Exclusion::Overloaded {
            until: node.overload.until().unwrap_or(now),
        });
    }
    if tried.contains(&id) {
        return Err(Exclusion::AlreadyTried);
    }
    if node.in_flight + node.reserved >= u32::from(node.spec.max_concurrency) {
        return Err(Exclusion::Saturated);
    }
    Ok(draining)
}

/// Whether the node is draining at `now` (mode Drain, or a fresh heartbeat
/// asking for it).
pub(crate) fn is_draining(cfg: &RouterConfig, node: &Node, now: Instant) -> bool {
    node.mode == Mode::Drain
        || (node.health.freshness(now, &cfg.health) == Freshness::Fresh
            && node.health.report().is_some_and(|r| r.drain))
}
