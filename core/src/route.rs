//! Routing: which nodes may take a call, and in what order to try them.
//!
//! A route is computed in three steps, all in one pass over the node table
//! with no allocation:
//!
//! 1. **Hard filters**, in this order (the first that fails is the node's
//!    [`Exclusion`]): mode disabled, pin, capability, model (aliases count;
//!    with [`RouterConfig::strict_models`], a node that does not list the model
//!    is out while another node lists it), scope, required tags, heartbeat lost or stale, breaker open, overload
//!    cooldown, already tried by this call, saturated. Drained nodes survive but
//!    are used only when no enabled node does.
//! 2. **Soft preferences**: session affinity by rendezvous hashing (Thaler and
//!    Ravishankar's highest-random-weight) with the promote-min-ratio rule,
//!    then prefix affinity by rendezvous hashing with bounded loads (Mirrokni,
//!    Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads"). Both
//!    hash the node *name*, so two routers with the same node set agree
//!    without sharing state.
//! 3. **A policy** orders the rest ([`Policy`]); the default is power of two
//!    choices (Mitzenmacher, "The Power of Two Choices in Randomized Load
//!    Balancing") on the load score. `least_in_flight` and `p2c_peak_ewma`
//!    (tower's balancer) are there as baselines for comparisons.
//!
//! The load score of a node for an operation is
//! `estimate × (max(in_flight, reported_busy) + 1) / weight`, where
//! `estimate` is the node's peak-EWMA TTFT (streams) or latency (chat,
//! embed) and `reported_busy` (slots in use plus queue, from a fresh
//! heartbeat) covers work other gateways sent; taking the larger rather than
//! the sum avoids counting this router's own requests twice. This is the Finagle/Linkerd
//! cost with tower's `+1`, divided by weight so a node declared twice as
//! strong takes about twice the load. A node with no sample for the operation
//! uses the swarm's running baseline for it, so new nodes are neither shunned
//! nor flooded. Lower is better.
//!
//! Cost: plain P2C calls sample two nodes and cost the same at 4 or 1,024
//! nodes (two filters, two score evaluations with one `exp` each); when
//! sampling fails, and for other policies, pins and affinity, one scan of the
//! `N` slots. LeastLoaded and session affinity score every survivor.

use fastrand::Rng;
use heapless::Vec;

use crate::catalog::{ModelId, ScopeId, Tags};
use crate::config::{MAX_ATTEMPTS, Policy, RouterConfig, TagMode};
use crate::health::Freshness;
use crate::node::{Capabilities, Mode, Node, NodeId, NodeTable};
use crate::reason::{Exclusion, NoNode, Reject};
use crate::time::{Duration, Instant};

/// The operation a call performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Op {
    /// Non-streamed chat or completion.
    Chat,
    /// Streamed chat or completion.
    Stream,
    /// Embeddings.
    Embed,
}

impl Op {
    /// Every operation, in index order.
    pub const ALL: [Op; 3] = [Op::Chat, Op::Stream, Op::Embed];
    /// Dense index (0, 1, 2).
    pub const fn index(self) -> usize {
        self as usize
    }
    /// The capability a node needs for this operation.
    pub const fn capability(self) -> Capabilities {
        match self {
            Op::Chat => Capabilities::CHAT,
            Op::Stream => Capabilities::STREAM,
            Op::Embed => Capabilities::EMBED,
        }
    }
    /// A stable label (`chat`, `stream`, `embed`).
    pub const fn label(self) -> &'static str {
        match self {
            Op::Chat => "chat",
            Op::Stream => "stream",
            Op::Embed => "embed",
        }
    }
}

/// What a call needs from a node. Small and `Copy`: it is stored with queued
/// calls and re-evaluated on failover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Query {
    /// The operation.
    pub op: Op,
    /// The requested model, if any.
    pub model: Option<ModelId>,
    /// Capabilities needed beyond the operation's own (e.g. vision).
    pub needs: Capabilities,
    /// The caller's scope; `None` may use only unscoped nodes.
    pub scope: Option<ScopeId>,
    /// Wanted tags (see [`TagMode`]).
    pub tags: Tags,
    /// Use exactly this node.
    pub pin: Option<NodeId>,
    /// Session key (already hashed); enables session affinity.
    pub session: Option<u64>,
    /// Prefix key from [`prefix_key`]; enables prefix affinity.
    pub prefix: Option<u64>,
}

impl Query {
    /// A query for `op` with no constraints.
    pub const fn new(op: Op) -> Self {
        Query {
            op,
            model: None,
            needs: Capabilities::NONE,
            scope: None,
            tags: Tags::NONE,
            pin: None,
            session: None,
            prefix: None,
        }
    }
}

/// The prefix key of a prompt given as block hashes (as in the Mooncake
/// trace's `hash_ids`): a hash of its first `blocks` blocks, or `None` when
/// there are none or `blocks` is 0.
pub fn prefix_key(block_hashes: &[u64], blocks: u8) -> Option<u64> {
    let n = block_hashes.len().min(usize::from(blocks));
    if n == 0 {
        return None;
    }
    Some(
        block_hashes[..n]
            .iter()
            .fold(0x9e37_79b9_7f4a_7c15, |h, &b| mix(h ^ b)),
    )
}

/// SplitMix64's finaliser: a cheap, well-spread 64-bit mix.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Random draws the sampled P2C path makes before falling back to a scan.
pub const SAMPLE_TRIES: usize = 8;

/// The ordered failover list of a route: no duplicates, at most [`MAX_ATTEMPTS`].
pub type Plan = Vec<NodeId, MAX_ATTEMPTS>;

/// How a surviving node scored (route preview).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// The peak-EWMA estimate used, in nanoseconds.
    pub estimate_ns: f64,
    /// Whether that estimate came from this node's own samples.
    pub sampled: bool,
    /// Attempts in flight.
    pub in_flight: u32,
    /// Queue length from a fresh heartbeat (0 otherwise).
    pub reported_queue: u16,
    /// Slots in use plus queue from a fresh heartbeat (0 otherwise).
    pub reported_busy: u32,
    /// Configured weight.
    pub weight: u16,
    /// Whether the node has every wanted tag.
    pub tags_match: bool,
    /// Whether it is draining (used only as a last resort).
    pub draining: bool,
    /// The final load score (lower is better).
    pub load: f64,
}

/// The router's verdict on one node for one query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Eligible, with its score.
    Candidate(Score),
    /// Left out, and why.
    Excluded(Exclusion),
}

/// Per-operation fallback estimates for nodes without samples.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Baseline {
    pub(crate) ns: [f64; 3],
    pub(crate) seen: [bool; 3],
}

impl Baseline {
    pub(crate) const fn new() -> Self {
        Baseline {
            ns: [0.0; 3],
            seen: [false; 3],
        }
    }
    /// Folds in a sample with a plain EWMA (alpha 1/16).
    pub(crate) fn observe(&mut self, op: Op, sample: Duration) {
        let i = op.index();
        let s = sample.as_nanos() as f64;
        if self.seen[i] {
            self.ns[i] += (s - self.ns[i]) / 16.0;
        } else {
            self.ns[i] = s;
            self.seen[i] = true;
        }
    }
}

/// The inputs a route needs; borrowed from the router.
pub(crate) struct Ctx<'a, const N: usize> {
    pub(crate) nodes: &'a NodeTable<N>,
    pub(crate) cfg: &'a RouterConfig,
    pub(crate) baseline: &'a Baseline,
    /// Models some enabled or draining node lists (`strict_models`).
    pub(crate) listed: &'a crate::catalog::ModelSet,
    pub(crate) now: Instant,
}

/// Stage of the static filter a node reached; higher means "closer to fitting".
fn static_stage(x: Exclusion) -> u8 {
    match x {
        Exclusion::Disabled => 0,
        Exclusion::NotPinned => 1,
        Exclusion::MissingCapability => 2,
        Exclusion::ModelNotServed => 3,
        Exclusion::ScopeMismatch => 4,
        Exclusion::MissingTags => 5,
        _ => 6,
    }
}

impl<const N: usize> Ctx<'_, N> {
    /// The hard filters. `Ok(draining)` when the node survives.
    pub(crate) fn filter(
        &self,
        id: NodeId,
        n: &Node,
        q: &Query,
        tried: &[NodeId],
    ) -> Result<bool, Exclusion> {
        if n.mode == Mode::Disabled {
            return Err(Exclusion::Disabled);
        }
        if q.pin.is_some_and(|p| p != id) {
            return Err(Exclusion::NotPinned);
        }
        if !n
            .spec
            .capabilities
            .contains(q.op.capability().union(q.needs))
        {
            return Err(Exclusion::MissingCapability);
        }
        if let Some(m) = q.model {
            if n.spec.resolve_model(m).is_none() {
                return Err(Exclusion::ModelNotServed);
            }
            // Strict: a node serving it only as "any model" yields to the
            // nodes that list it.
            if self.cfg.strict_models && !n.spec.lists_model(m) && self.listed.contains(m) {
                return Err(Exclusion::ModelNotServed);
            }
        }
        if n.spec.scope.is_some() && n.spec.scope != q.scope {
            return Err(Exclusion::ScopeMismatch);
        }
        if self.cfg.tag_mode == TagMode::Require && !n.spec.tags.contains_all(q.tags) {
            return Err(Exclusion::MissingTags);
        }
        let mut draining = n.mode == Mode::Drain;
        match n.health.freshness(self.now, &self.cfg.health) {
            Freshness::Lost => return Err(Exclusion::Lost),
            Freshness::Stale => return Err(Exclusion::Stale),
            Freshness::Fresh => draining |= n.health.report().is_some_and(|r| r.drain),
            Freshness::Passive => {}
        }
        if !n.breaker.allows_attempt(self.now, &self.cfg.breaker) {
            let until = match n.breaker.state(self.now) {
                crate::breaker::BreakerState::Open { until } => until,
                _ => self.now,
            };
            return Err(Exclusion::BreakerOpen { until });
        }
        if n.overload.is_cooling(self.now) {
            return Err(Exclusion::Overloaded {
                until: n.overload.until().unwrap_or(self.now),
            });
        }
        if tried.contains(&id) {
            return Err(Exclusion::AlreadyTried);
        }
        if n.is_saturated() {
            return Err(Exclusion::Saturated);
        }
        Ok(draining)
    }

    /// The score of a surviving node.
    pub(crate) fn score(&self, n: &Node, q: &Query, draining: bool) -> Score {
        let ewma = match q.op {
            Op::Stream => &n.ttft,
            Op::Chat => &n.chat_latency,
            Op::Embed => &n.embed_latency,
        };
        let sampled = ewma.has_samples();
        let estimate_ns = if sampled {
            ewma.estimate_ns(self.now, &self.cfg.ewma)
        } else if self.baseline.seen[q.op.index()] {
            self.baseline.ns[q.op.index()]
        } else {
            self.cfg.ewma.default_estimate.as_nanos() as f64
        };
        // A fresh heartbeat says how busy the node is with everyone's work
        // (ours included): slots in use plus its queue.
        let (reported_queue, reported_busy) = match n.health.freshness(self.now, &self.cfg.health) {
            Freshness::Fresh => n.health.report().map_or((0, 0), |r| {
                (
                    r.queued,
                    u32::from(r.max_slots.saturating_sub(r.free_slots)) + u32::from(r.queued),
                )
            }),
            _ => (0, 0),
        };
        let tags_match = n.spec.tags.contains_all(q.tags);
        let weight = n.spec.weight.max(1);
        // +1 so an idle node's cost still reflects its latency; the floor of
        // 1 ns keeps a zero estimate from erasing the in-flight term.
        // The larger of what we sent and what the node reports: our own
        // requests are in both, so adding them would count them twice.
        let outstanding = n.in_flight.max(reported_busy);
        let mut load = estimate_ns.max(1.0) * f64::from(outstanding + 1) / f64::from(weight);
        if self.cfg.tag_mode == TagMode::Prefer && !tags_match {
            load *= self.cfg.tag_penalty;
        }
        Score {
            estimate_ns,
            sampled,
            in_flight: n.in_flight,
            reported_queue,
            reported_busy,
            weight,
            tags_match,
            draining,
            load,
        }
    }

    fn node(&self, id: u16) -> &Node {
        // Ids in candidate buffers come from the same table scan, so the slot is occupied.
        self.nodes.slots()[usize::from(id)]
            .as_ref()
            .expect("candidate ids come from occupied slots")
    }

    /// tower's / Linkerd's cost: the peak-EWMA estimate × (in flight + 1).
    fn peak_ewma_cost(&self, id: u16, q: &Query) -> f64 {
        let s = self.score(self.node(id), q, false);
        s.estimate_ns.max(1.0) * f64::from(s.in_flight + 1)
    }

    fn load(&self, id: u16, q: &Query) -> f64 {
        self.score(self.node(id), q, false).load
    }

    /// Computes the plan. `explain`, when given, is told every node's verdict.
    ///
    /// Plain P2C calls (no pin, affinity or strict-first tags) take a
    /// constant-time path: two eligible, enabled nodes are drawn by rejection
    /// sampling over the slots (uniform over the eligible set, as P2C
    /// requires) and only those two are filtered and scored. The plan is then
    /// `[winner, loser]`; a further failover routes afresh. If sampling does
    /// not find two nodes within [`SAMPLE_TRIES`] draws (few eligible nodes,
    /// drained or saturated swarm), the full scan decides. A preview explains
    /// every node with a scan but draws the plan exactly as a call would.
    pub(crate) fn plan(
        &self,
        q: &Query,
        tried: &[NodeId],
        rng: &mut Rng,
        rr: &mut u32,
        explain: Option<&mut dyn FnMut(NodeId, Verdict)>,
    ) -> Result<Plan, Reject> {
        let sampled = self.cfg.policy == Policy::P2c
            && q.pin.is_none()
            && q.session.is_none()
            && q.prefix.is_none()
            && (self.cfg.tag_mode != TagMode::StrictFirst || q.tags.is_empty());
        if !sampled {
            return self.plan_scan(q, tried, rng, rr, explain);
        }
        if let Some(f) = explain {
            // Verdicts only: the scan's own order is discarded.
            let _ = self.plan_scan(q, tried, &mut rng.clone(), &mut rr.clone(), Some(f));
        }
        match self.p2c_sampled(q, tried, rng) {
            Some(plan) => Ok(plan),
            None => self.plan_scan(q, tried, rng, rr, None),
        }
    }

    /// Two distinct eligible enabled nodes by rejection sampling, ordered by
    /// load; `None` when the draws ran out first.
    fn p2c_sampled(&self, q: &Query, tried: &[NodeId], rng: &mut Rng) -> Option<Plan> {
        let slots = self.nodes.slots();
        if slots.len() < 2 {
            return None;
        }
        let mut picks = [0u16; 2];
        let mut got = 0;
        for _ in 0..SAMPLE_TRIES {
            let i = rng.usize(..slots.len());
            if got == 1 && usize::from(picks[0]) == i {
                continue;
            }
            let Some(n) = &slots[i] else { continue };
            if self.filter(NodeId(i as u16), n, q, tried) == Ok(false) {
                picks[got] = i as u16;
                got += 1;
                if got == 2 {
                    break;
                }
            }
        }
        if got < 2 {
            return None;
        }
        let (a, b) = (picks[0], picks[1]);
        let (w, l) = if self.load(b, q) < self.load(a, q) {
            (b, a)
        } else {
            (a, b)
        };
        let mut plan = Plan::new();
        let _ = plan.push(NodeId(w));
        if self.cfg.max_attempts > 1 {
            let _ = plan.push(NodeId(l));
        }
        Some(plan)
    }

    /// The full scan: every node filtered, then affinity and the policy.
    fn plan_scan(
        &self,
        q: &Query,
        tried: &[NodeId],
        rng: &mut Rng,
        rr: &mut u32,
        mut explain: Option<&mut dyn FnMut(NodeId, Verdict)>,
    ) -> Result<Plan, Reject> {
        let mut enabled: Vec<u16, N> = Vec::new();
        let mut drained: Vec<u16, N> = Vec::new();
        let mut best_stage = 0u8;
        let (mut stale, mut open, mut cooling, mut saturated, mut tried_n) =
            (0u32, 0u32, 0u32, 0u32, 0u32);
        let mut pinned_why = None;
        let mut cooling_until = Instant::MAX;
        let mut open_until = Instant::MAX;
        for (i, slot) in self.nodes.slots().iter().enumerate() {
            let Some(n) = slot else { continue };
            let id = NodeId(i as u16);
            match self.filter(id, n, q, tried) {
                Ok(draining) => {
                    // Pushing cannot fail: both buffers hold N entries and there are at most N slots.
                    let _ = if draining {
                        drained.push(id.0)
                    } else {
                        enabled.push(id.0)
                    };
                    if let Some(f) = explain.as_deref_mut() {
                        f(id, Verdict::Candidate(self.score(n, q, draining)));
                    }
                }
                Err(x) => {
                    if q.pin == Some(id) {
                        pinned_why = Some(x);
                    }
                    best_stage = best_stage.max(static_stage(x));
                    match x {
                        Exclusion::Lost | Exclusion::Stale => stale += 1,
                        Exclusion::BreakerOpen { until } => {
                            open += 1;
                            open_until = open_until.min(until);
                        }
                        Exclusion::Overloaded { until } => {
                            cooling += 1;
                            cooling_until = cooling_until.min(until);
                        }
                        Exclusion::Saturated => saturated += 1,
                        Exclusion::AlreadyTried => tried_n += 1,
                        _ => {}
                    }
                    if let Some(f) = explain.as_deref_mut() {
                        f(id, Verdict::Excluded(x));
                    }
                }
            }
        }
        if let Some(f) = explain {
            if !enabled.is_empty() {
                for &d in &drained {
                    f(NodeId(d), Verdict::Excluded(Exclusion::Draining));
                }
            }
        }
        let set = if enabled.is_empty() {
            &mut drained
        } else {
            &mut enabled
        };
        if set.is_empty() {
            return Err(self.no_route(
                q,
                pinned_why,
                best_stage,
                [stale, open, cooling, saturated, tried_n],
                [cooling_until, open_until],
            ));
        }
        let mut plan = Plan::new();
        let k = usize::from(self.cfg.max_attempts).clamp(1, MAX_ATTEMPTS);
        if let Some(first) = self.affinity_pick(q, set) {
            let _ = plan.push(NodeId(set.swap_remove(first)));
        }
        if self.cfg.tag_mode == TagMode::StrictFirst && !q.tags.is_empty() {
            let (mut hit, mut miss): (Vec<u16, N>, Vec<u16, N>) = (Vec::new(), Vec::new());
            for &id in set.iter() {
                let _ = if self.node(id).spec.tags.contains_all(q.tags) {
                    hit.push(id)
                } else {
                    miss.push(id)
                };
            }
            self.order(q, &mut hit, &mut plan, k, rng, rr);
            self.order(q, &mut miss, &mut plan, k, rng, rr);
        } else {
            self.order(q, set, &mut plan, k, rng, rr);
        }
        Ok(plan)
    }

    /// The rejection when no node survives, from the counts of why not.
    fn no_route(
        &self,
        q: &Query,
        pinned_why: Option<Exclusion>,
        best_stage: u8,
        [stale, open, cooling, saturated, tried]: [u32; 5],
        [cooling_until, open_until]: [Instant; 2],
    ) -> Reject {
        if self.nodes.is_empty() {
            return Reject::NoEligibleNode(NoNode::NoNodes);
        }
        if q.pin.is_some() {
            return match pinned_why {
                Some(Exclusion::Saturated) => Reject::AllNodesSaturated,
                Some(Exclusion::Overloaded { until }) => Reject::AllNodesOverloaded {
                    retry_after: until.saturating_since(self.now),
                },
                Some(x) => Reject::NoEligibleNode(NoNode::PinnedUnavailable(x)),
                None => Reject::NoEligibleNode(NoNode::PinnedUnavailable(Exclusion::NotPinned)),
            };
        }
        if saturated > 0 {
            return Reject::AllNodesSaturated;
        }
        if cooling > 0 {
            return Reject::AllNodesOverloaded {
                retry_after: cooling_until.saturating_since(self.now),
            };
        }
        if open > 0 {
            return Reject::NoEligibleNode(NoNode::AllBreakersOpen {
                retry_after: open_until.saturating_since(self.now),
            });
        }
        if stale > 0 {
            return Reject::NoEligibleNode(NoNode::AllStale);
        }
        if tried > 0 {
            return Reject::NoEligibleNode(NoNode::AllTried);
        }
        Reject::NoEligibleNode(match best_stage {
            0 | 1 => NoNode::AllDisabled,
            2 => NoNode::NoCapability,
            3 => NoNode::ModelNotServed,
            4 => NoNode::ScopeMismatch,
            _ => NoNode::MissingTags,
        })
    }

    /// Index in `set` of the node affinity says goes first, if any.
    fn affinity_pick(&self, q: &Query, set: &[u16]) -> Option<usize> {
        if let Some(key) = q.session {
            let pref = rendezvous_top(self, set, key, 1)[0]?;
            let pref_load = self.load(set[pref], q);
            let best = set
                .iter()
                .map(|&id| self.load(id, q))
                .fold(f64::INFINITY, f64::min);
            if pref_load <= best * self.cfg.affinity.session_promote_ratio {
                return Some(pref);
            }
        }
        if let Some(key) = q.prefix {
            let spread = usize::from(self.cfg.affinity.prefix_spread).clamp(1, 4);
            let total_in_flight: f64 = set
                .iter()
                .map(|&id| f64::from(self.node(id).in_flight))
                .sum();
            let total_weight: f64 = set
                .iter()
                .map(|&id| f64::from(self.node(id).spec.weight.max(1)))
                .sum();
            for idx in rendezvous_top(self, set, key, spread).into_iter().flatten() {
                let n = self.node(set[idx]);
                let share =
                    (total_in_flight + 1.0) * f64::from(n.spec.weight.max(1)) / total_weight;
                // ceil(c × share), without std's ceil.
                let bound = self.cfg.affinity.prefix_load_factor * share;
                let bound_ceil = (bound as u64) + u64::from(bound.fract_part() > 0.0);
                if u64::from(n.in_flight) < bound_ceil {
                    return Some(idx);
                }
            }
        }
        None
    }

    /// Appends up to `k - plan.len()` nodes from `set` in policy order.
    fn order(
        &self,
        q: &Query,
        set: &mut Vec<u16, N>,
        plan: &mut Plan,
        k: usize,
        rng: &mut Rng,
        rr: &mut u32,
    ) {
        let want = k.saturating_sub(plan.len()).min(set.len());
        if want == 0 {
            return;
        }
        match self.cfg.policy {
            Policy::P2c => {
                // Winner and loser of one P2C draw, then the rest in a random rotation.
                if set.len() >= 2 {
                    let a = rng.usize(..set.len());
                    let mut b = rng.usize(..set.len() - 1);
                    if b >= a {
                        b += 1;
                    }
                    let (la, lb) = (self.load(set[a], q), self.load(set[b], q));
                    let (w, l) = if lb < la { (b, a) } else { (a, b) };
                    let (w_id, l_id) = (set[w], set[l]);
                    let _ = plan.push(NodeId(w_id));
                    if plan.len() < k {
                        let _ = plan.push(NodeId(l_id));
                    }
                    let (hi, lo) = if w > l { (w, l) } else { (l, w) };
                    set.swap_remove(hi);
                    set.swap_remove(lo);
                } else {
                    let _ = plan.push(NodeId(set[0]));
                    set.clear();
                }
                if !set.is_empty() {
                    let start = rng.usize(..set.len());
                    rotate_into(set, start, plan, k);
                }
            }
            Policy::RoundRobin => {
                let start = (*rr as usize) % set.len();
                *rr = rr.wrapping_add(1);
                rotate_into(set, start, plan, k);
            }
            Policy::Random => {
                for _ in 0..want {
                    let i = rng.usize(..set.len());
                    let _ = plan.push(NodeId(set.swap_remove(i)));
                }
            }
            Policy::LeastLoaded => {
                for _ in 0..want {
                    let mut best = 0;
                    let mut best_load = f64::INFINITY;
                    for (i, &id) in set.iter().enumerate() {
                        let l = self.load(id, q);
                        // Ties go to the lower node id, so the order is total.
                        if l < best_load || (l == best_load && id < set[best]) {
                            best = i;
                            best_load = l;
                        }
                    }
                    let _ = plan.push(NodeId(set.swap_remove(best)));
                }
            }
            Policy::LeastInFlight => {
                for _ in 0..want {
                    let mut best = 0;
                    for (i, &id) in set.iter().enumerate() {
                        let (n, b) = (self.node(id), self.node(set[best]));
                        let (ln, lb) = (n.in_flight + n.reserved, b.in_flight + b.reserved);
                        if ln < lb || (ln == lb && id < set[best]) {
                            best = i;
                        }
                    }
                    let _ = plan.push(NodeId(set.swap_remove(best)));
                }
            }
            Policy::P2cPeakEwma => {
                // tower's p2c over PeakEwma: two random draws, the lower
                // `estimate × (in_flight + 1)` wins; the rest at random.
                for _ in 0..want {
                    let a = rng.usize(..set.len());
                    let pick = if set.len() >= 2 {
                        let mut b = rng.usize(..set.len() - 1);
                        if b >= a {
                            b += 1;
                        }
                        if self.peak_ewma_cost(set[b], q) < self.peak_ewma_cost(set[a], q) {
                            b
                        } else {
                            a
                        }
                    } else {
                        a
                    };
                    let _ = plan.push(NodeId(set.swap_remove(pick)));
                }
            }
            Policy::WeightedRandom => {
                for _ in 0..want {
                    let total: u64 = set
                        .iter()
                        .map(|&id| u64::from(self.node(id).spec.weight.max(1)))
                        .sum();
                    let mut r = rng.u64(..total.max(1));
                    let mut pick = set.len() - 1;
                    for (i, &id) in set.iter().enumerate() {
                        let w = u64::from(self.node(id).spec.weight.max(1));
                        if r < w {
                            pick = i;
                            break;
                        }
                        r -= w;
                    }
                    let _ = plan.push(NodeId(set.swap_remove(pick)));
                }
            }
        }
    }
}

/// Pushes `set[start..] ++ set[..start]` onto `plan` until it holds `k`.
fn rotate_into<const N: usize>(set: &Vec<u16, N>, start: usize, plan: &mut Plan, k: usize) {
    for j in 0..set.len() {
        if plan.len() >= k {
            break;
        }
        let _ = plan.push(NodeId(set[(start + j) % set.len()]));
    }
}

/// Indexes in `set` of the `m` (≤ 4) nodes with the highest rendezvous
/// weight for `key`, best first. Ties (equal hashes) go to the lower index.
fn rendezvous_top<const N: usize>(
    ctx: &Ctx<'_, N>,
    set: &[u16],
    key: u64,
    m: usize,
) -> [Option<usize>; 4] {
    let mut top: [(u64, Option<usize>); 4] = [(0, None); 4];
    let m = m.clamp(1, 4);
    for (i, &id) in set.iter().enumerate() {
        let w = mix(key ^ ctx.node(id).name_hash);
        let mut j = m;
        while j > 0 && (top[j - 1].1.is_none() || w > top[j - 1].0) {
            j -= 1;
        }
        if j < m {
            let mut t = m - 1;
            while t > j {
                top[t] = top[t - 1];
                t -= 1;
            }
            top[j] = (w, Some(i));
        }
    }
    [top[0].1, top[1].1, top[2].1, top[3].1]
}

/// `fract` without std.
trait FractPart {
    fn fract_part(self) -> f64;
}

impl FractPart for f64 {
    fn fract_part(self) -> f64 {
        self - (self as u64) as f64
    }
}

#[cfg(test)]
mod tests;
