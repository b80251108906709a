//! The [`Router`]: one value that owns the node table, admission, affinity,
//! metrics and the decision trace, and drives every [`Call`].
//!
//! Methods fall into four groups, as in quinn-proto:
//!
//! - **getters**: [`nodes`](Router::nodes), [`node`](Router::node),
//!   [`metrics`](Router::metrics), [`trace`](Router::trace),
//!   [`queue_depth`](Router::queue_depth), [`preview`](Router::preview);
//! - **inputs** (`handle_*`, plus [`start`](Router::start) and
//!   [`handle`](Router::handle) for calls): heartbeats, call events;
//! - **mutators**: adding and removing nodes, changing modes and config;
//! - **outputs** (`poll_*`): [`poll`](Router::poll) for a call's next action,
//!   [`poll_wakeup`](Router::poll_wakeup) for queued calls that were granted.
//!
//! Capacities are const generics: `N` nodes, `C` concurrently admitted calls
//! (permits), `Q` queued calls. Nothing allocates.

use fastrand::Rng;
use heapless::Deque;

use crate::admission::{Admission, Pool, Priority, Ticket};
use crate::call::{Call, TraceEvent};
use crate::catalog::{Catalog, ModelSet};
use crate::config::{ConfigError, MAX_ATTEMPTS, RouterConfig};
use crate::health::{HeartbeatChange, Telemetry};
use crate::metrics::Metrics;
use crate::node::{Mode, Node, NodeError, NodeId, NodeSpec, NodeTable};
use crate::probe::ProbeSlot;
use crate::reason::Reject;
use crate::route::{Baseline, Ctx, Plan, Query, Verdict};
use crate::time::Instant;
use crate::trace::{TraceId, TraceRing};

/// Decision events kept in the trace ring.
pub const TRACE_CAPACITY: usize = 1024;

/// What a queued call waits with: enough to re-check eligibility when
/// capacity frees, and whom to wake.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Waiting {
    pub(crate) query: Query,
    pub(crate) trace: TraceId,
    /// Nodes a failed-over call already tried (it waits for another one).
    tried: [NodeId; MAX_ATTEMPTS],
    tried_len: u8,
}

impl Waiting {
    pub(crate) fn new(query: Query, trace: TraceId, tried: &[NodeId]) -> Self {
        let mut w = Waiting {
            query,
            trace,
            tried: [NodeId(0); MAX_ATTEMPTS],
            tried_len: 0,
        };
        for (slot, id) in w.tried.iter_mut().zip(tried) {
            *slot = *id;
            w.tried_len += 1;
        }
        w
    }
    pub(crate) fn tried(&self) -> &[NodeId] {
        &self.tried[..usize::from(self.tried_len)]
    }
}

/// The decision core. See the [module docs](self) and the [crate docs](crate).
pub struct Router<const N: usize, const C: usize = 1024, const Q: usize = 256> {
    pub(crate) nodes: NodeTable<N>,
    pub(crate) catalog: Catalog,
    pub(crate) cfg: RouterConfig,
    pub(crate) admission: Admission<Waiting, C, Q>,
    pub(crate) rng: Rng,
    pub(crate) rr: u32,
    pub(crate) baseline: Baseline,
    pub(crate) hedge_tokens_milli: u64,
    pub(crate) metrics: Metrics<N>,
    pub(crate) trace: TraceRing<TraceEvent, TRACE_CAPACITY>,
    pub(crate) wakeups: Deque<TraceId, Q>,
    /// Node slots held for granted queue tickets until their calls poll.
    pub(crate) reservations: heapless::Vec<(Ticket, NodeId, u64), Q>,
    pub(crate) active_calls: u32,
    /// Probe schedule per node slot.
    pub(crate) probes: heapless::Vec<ProbeSlot, N>,
    /// Models some enabled or draining node lists (for `strict_models`).
    pub(crate) listed: ModelSet,
    /// Retry budget bucket, in thousandths of a token.
    pub(crate) retry_tokens_milli: u64,
    /// Retries and hedges in flight (the budget's concurrency).
    pub(crate) retries_in_flight: u32,
}

impl<const N: usize, const C: usize, const Q: usize> Router<N, C, Q> {
    /// A router with no nodes. `seed` drives every random choice (P2C draws,
    /// breaker jitter), so equal seeds and equal inputs give equal decisions.
    pub fn new(cfg: RouterConfig, seed: u64) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let admission = Admission::new(cfg.pools).map_err(ConfigError::Pools)?;
        Ok(Router {
            nodes: NodeTable::new(),
            catalog: Catalog::new(),
            cfg,
            admission,
            rng: Rng::with_seed(seed),
            rr: 0,
            baseline: Baseline::new(),
            hedge_tokens_milli: u64::from(cfg.hedge.budget_burst) * 1000,
            metrics: Metrics::new(),
            trace: TraceRing::new(),
            wakeups: Deque::new(),
            reservations: heapless::Vec::new(),
            active_calls: 0,
            probes: heapless::Vec::new(),
            listed: ModelSet::EMPTY,
            retry_tokens_milli: u64::from(cfg.retry_budget.burst) * 1000,
            retries_in_flight: 0,
        })
    }

    // ----- getters -----

    /// The configuration in force.
    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }
    /// The interned model, tag and scope names.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    /// The interned names, for adding models, tags and scopes.
    pub fn catalog_mut(&mut self) -> &mut Catalog {
        &mut self.catalog
    }
    /// The node table.
    pub fn nodes(&self) -> &NodeTable<N> {
        &self.nodes
    }
    /// One node.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }
    /// Counters and histograms.
    pub fn metrics(&self) -> &Metrics<N> {
        &self.metrics
    }
    /// The decision trace ring.
    pub fn trace(&self) -> &TraceRing<TraceEvent, TRACE_CAPACITY> {
        &self.trace
    }
    /// Calls waiting in the admission queue.
    pub fn queue_depth(&self) -> usize {
        self.admission.waiting()
    }
    /// Calls started and not yet finished.
    pub fn active_calls(&self) -> u32 {
        self.active_calls
    }
    /// Permits currently held (admitted calls not yet finished).
    pub fn permits_outstanding(&self) -> u32 {
        self.admission.outstanding()
    }
    /// Attempts in flight on all nodes.
    pub fn attempts_in_flight(&self) -> u32 {
        self.nodes.iter().map(|(_, n)| n.in_flight).sum()
    }
    /// Retries and hedges in flight, as the retry budget counts them.
    pub fn retries_in_flight(&self) -> u32 {
        self.retries_in_flight
    }
    /// Whole tokens left in the retry budget's bucket.
    pub fn retry_tokens(&self) -> u64 {
        self.retry_tokens_milli / 1000
    }
    /// When the driver should come back: the earliest queue deadline, probe
    /// due time or probe deadline ([`probe_timeout`](Router::probe_timeout)),
    /// then call [`handle_timeout`](Router::handle_timeout) and
    /// [`poll_probe`](Router::poll_probe).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.admission.next_deadline(), self.probe_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The route a call with `query` would get now, without changing any
    /// state, and every node's verdict through `each`. The random choices use
    /// a copy of the router's generator, so the preview shows what the next
    /// call would get if nothing else happened first.
    pub fn preview(
        &self,
        query: &Query,
        now: Instant,
        each: &mut dyn FnMut(NodeId, Verdict),
    ) -> Result<Plan, Reject> {
        let mut rng = self.rng.clone();
        let mut rr = self.rr;
        self.ctx(now)
            .plan(query, &[], &mut rng, &mut rr, Some(each))
    }

    /// The routing decision alone: the failover list a call with `query`
    /// would get now, drawing from the router's generator (so it advances
    /// like a real call's route would), without admitting, starting or
    /// sending anything. For custom gateways that run attempts themselves
    /// and for measuring the decision's cost. [`preview`](Router::preview)
    /// explains every node instead and changes nothing.
    pub fn decide(&mut self, query: &Query, now: Instant) -> Result<Plan, Reject> {
        self.route(query, &[], now)
    }

    /// Routes with the router's own generator (the hot path: no explanation).
    pub(crate) fn route(
        &mut self,
        query: &Query,
        tried: &[NodeId],
        now: Instant,
    ) -> Result<Plan, Reject> {
        let ctx = Ctx {
            nodes: &self.nodes,
            cfg: &self.cfg,
            baseline: &self.baseline,
            listed: &self.listed,
            now,
        };
        ctx.plan(query, tried, &mut self.rng, &mut self.rr, None)
    }

    pub(crate) fn ctx(&self, now: Instant) -> Ctx<'_, N> {
        Ctx {
            nodes: &self.nodes,
            cfg: &self.cfg,
            baseline: &self.baseline,
            listed: &self.listed,
            now,
        }
    }

    // ----- mutators -----

    /// Replaces the configuration. Pools are resized in place; calls already
    /// admitted keep their permits.
    pub fn set_config(&mut self, cfg: RouterConfig) -> Result<(), ConfigError> {
        cfg.validate()?;
        self.admission
            .set_limits(cfg.pools)
            .map_err(ConfigError::Pools)?;
        let cap = u64::from(cfg.retry_budget.burst) * 1000;
        self.retry_tokens_milli = self.retry_tokens_milli.min(cap);
        self.cfg = cfg;
        Ok(())
    }

    /// Adds a node. Its learned state starts empty.
    pub fn add_node(&mut self, spec: NodeSpec) -> Result<NodeId, NodeError> {
        let hash = spec.name_hash();
        let id = self.nodes.insert(spec)?;
        self.metrics.reset_node(id);
        self.reset_probes(id, hash);
        self.relist();
        Ok(id)
    }

    /// Removes a node. Attempts still running on it finish without touching
    /// whatever node later reuses the slot.
    pub fn remove_node(&mut self, id: NodeId) -> Result<Node, NodeError> {
        let node = self.nodes.remove(id)?;
        self.relist();
        Ok(node)
    }

    /// Recomputes the models listed by some enabled or draining node.
    pub(crate) fn relist(&mut self) {
        let mut listed = ModelSet::EMPTY;
        for (_, n) in self.nodes.iter().filter(|(_, n)| n.mode != Mode::Disabled) {
            if !n.spec.models.is_any() {
                n.spec.models.iter().for_each(|m| listed.insert(m));
            }
            n.spec.aliases.iter().for_each(|(m, _)| listed.insert(*m));
        }
        self.listed = listed;
    }

    /// Replaces a node's spec (weight, models, tags, …), keeping what was
    /// learned about it. The name may not change.
    pub fn update_node(&mut self, id: NodeId, spec: NodeSpec) -> Result<(), NodeError> {
        spec.validate()?;
        let node = self.nodes.get_mut(id).ok_or(NodeError::UnknownNode)?;
        if node.spec.name != spec.name {
            return Err(NodeError::BadName);
        }
        node.spec = spec;
        self.relist();
        Ok(())
    }

    /// Sets a node's mode. Enabling a node may let queued calls in.
    pub fn set_mode(&mut self, id: NodeId, mode: Mode, now: Instant) -> Result<(), NodeError> {
        self.nodes.get_mut(id).ok_or(NodeError::UnknownNode)?.mode = mode;
        self.relist();
        self.pump(now);
        Ok(())
    }

    // ----- inputs -----

    /// A heartbeat from a node's agent.
    pub fn handle_heartbeat(
        &mut self,
        id: NodeId,
        report: Telemetry,
        now: Instant,
    ) -> Result<HeartbeatChange, NodeError> {
        let change = self
            .nodes
            .get_mut(id)
            .ok_or(NodeError::UnknownNode)?
            .health
            .handle_heartbeat(report, now, &self.cfg.health);
        self.pump(now);
        Ok(change)
    }

    // ----- outputs -----

    /// The trace id of a queued call that has just been granted capacity;
    /// the driver should poll that call. Returns `None` when there is none.
    #[must_use]
    pub fn poll_wakeup(&mut self) -> Option<TraceId> {
        self.wakeups.pop_front()
    }

    /// Expires overdue queue entries and grants freed capacity to waiting
    /// calls (oldest of the highest priority first). Called by the router
    /// itself whenever capacity frees; a driver may call it at
    /// [`poll_timeout`](Router::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_probes(now);
        self.pump(now);
    }

    pub(crate) fn pump(&mut self, now: Instant) {
        self.admission.expire(now);
        if self.admission.waiting() == 0 {
            return;
        }
        loop {
            let ctx = Ctx {
                nodes: &self.nodes,
                cfg: &self.cfg,
                baseline: &self.baseline,
                listed: &self.listed,
                now,
            };
            let mut slot = None;
            let granted = self.admission.grant_next(now, |w: &Waiting, _pool: Pool| {
                slot = ctx
                    .nodes
                    .iter()
                    .find(|(id, n)| ctx.filter(*id, n, &w.query, w.tried()).is_ok())
                    .map(|(id, _)| id);
                slot.is_some()
            });
            let Some(ticket) = granted else { break };
            if let Some(node) = slot.and_then(|id| self.nodes.get_mut(id).map(|n| (id, n))) {
                node.1.reserved += 1;
                // At most Q tickets exist, so at most Q reservations.
                let _ = self.reservations.push((ticket, node.0, node.1.name_hash));
            }
            if let Some(q) = self.admission.peek(ticket) {
                // The wakeup queue holds Q entries and at most Q calls wait.
                let _ = self.wakeups.push_back(q.payload.trace);
            }
        }
    }

    /// Frees the node slot held for a granted ticket, if any.
    pub(crate) fn unreserve(&mut self, ticket: Ticket) {
        if let Some(i) = self.reservations.iter().position(|r| r.0 == ticket) {
            let (_, id, hash) = self.reservations.swap_remove(i);
            if let Some(n) = self.nodes.get_mut(id).filter(|n| n.name_hash == hash) {
                n.reserved = n.reserved.saturating_sub(1);
            }
        }
    }

    pub(crate) fn priority_pool(query: &Query, background: bool) -> Pool {
        if background {
            return Pool::Background;
        }
        match query.op {
            crate::route::Op::Chat => Pool::Chat,
            crate::route::Op::Stream => Pool::Stream,
            crate::route::Op::Embed => Pool::Embed,
        }
    }

    pub(crate) fn priority_of(background: bool) -> Priority {
        if background {
            Priority::Background
        } else {
            Priority::Interactive
        }
    }

    /// Starts a call. Nothing is sent yet: [`poll`](Router::poll) it.
    pub fn start(&mut self, req: crate::call::Request, now: Instant) -> Call {
        self.active_calls += 1;
        self.metrics.op_mut(req.query.op).calls += 1;
        let ratio_milli = (self.cfg.hedge.budget_ratio * 1000.0) as u64;
        let cap = u64::from(self.cfg.hedge.budget_burst) * 1000;
        self.hedge_tokens_milli = (self.hedge_tokens_milli + ratio_milli).min(cap.max(ratio_milli));
        self.deposit_retry_tokens();
        Call::new(req, now, &self.cfg)
    }
}
