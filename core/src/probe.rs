//! Active probes: the router decides when each node gets a cheap health
//! check or a model inventory request; the driver sends it and reports back.
//!
//! Probes are off by default ([`ProbeConfig::enabled`]); with them off the
//! router behaves exactly as without this module (no random draw, no timer).
//! When on, the driver loops [`Router::poll_probe`] until it returns `None`,
//! executes each [`Probe`] (Ollama `GET /api/version` or `/api/tags`, an
//! OpenAI-compatible server `GET /v1/models`: nothing that loads a model),
//! and feeds the result to [`Router::handle_probe`]. It comes back at
//! [`Router::poll_timeout`], which includes the next probe due time and the
//! deadline of every probe in flight.
//!
//! # When a node is probed
//!
//! - Disabled nodes never are. Draining nodes are (they still serve).
//! - A node's first health and inventory probes are due at once (at the first
//!   `poll_probe` after it was added), then each kind again an interval after
//!   the previous one ended: `health_interval` or `inventory_interval`, each
//!   multiplied by a factor drawn uniformly from `[1 − jitter, 1 + jitter]`
//!   with the router's seeded generator (one draw per scheduled probe).
//! - **Health and the breaker.** While a node's breaker is Open it gets no
//!   health probe; the health probe is due the moment the breaker turns
//!   HalfOpen, and it *is* the half-open trial (it takes the probe slot, so
//!   calls wait for its verdict): success closes the breaker, failure re-opens
//!   it with the next, longer cooldown. If a call took the half-open slot
//!   first, that call is the trial and no probe is sent meanwhile. On a
//!   Closed node a failed health probe counts as one breaker failure, like a
//!   failed attempt; a successful one changes nothing (it shows the server
//!   is up, not that it serves calls, so it does not clear failures that
//!   calls saw). Failures that do not charge a node
//!   ([`Failure::charges_node`]), such as a 429/503, leave the breaker alone.
//! - **Inventory.** Only while the breaker is Closed, never for a node with
//!   [`pinned_models`](crate::node::NodeSpec::pinned_models), and never
//!   counted by the breaker. A success is followed by the driver's
//!   [`Router::set_models`] with the list it read;
//!   [`Router::request_inventory`] makes one due at once (a heartbeat's
//!   catalog fingerprint changed).
//! - A probe not reported by its deadline (`now + timeout` when it was
//!   issued) counts as failed with [`Failure::Timeout`]; a report that comes
//!   later is ignored.
//!
//! Probes are not calls: they take no permit, no node concurrency slot and
//! appear in no call metric. They have counters of their own
//! ([`Metrics::probes`](crate::metrics::Metrics::probes)) and trace events
//! ([`TraceEvent::ProbeSent`], [`TraceEvent::ProbeEnded`]) under
//! [`PROBE_TRACE`].

use crate::breaker::{BreakerState, BreakerTicket};
use crate::call::TraceEvent;
use crate::catalog::ModelSet;
use crate::node::{Mode, NodeError, NodeId};
use crate::reason::Failure;
use crate::router::Router;
use crate::time::{Duration, Instant};
use crate::trace::TraceId;

/// The trace id probe events are recorded under.
pub const PROBE_TRACE: TraceId = TraceId(u64::MAX);

/// When and how nodes are probed. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ProbeConfig {
    /// Off by default in the core (a gateway turns it on).
    pub enabled: bool,
    /// Between two health probes of a node (default 10 s).
    pub health_interval: Duration,
    /// Between two inventory probes of a node (default 60 s).
    pub inventory_interval: Duration,
    /// A probe not answered by then has failed (default 2 s).
    pub timeout: Duration,
    /// Relative jitter of each interval, in `[0, 0.5]` (default 0.1).
    pub jitter: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            enabled: false,
            health_interval: Duration::from_secs(10),
            inventory_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
            jitter: 0.1,
        }
    }
}

impl ProbeConfig {
    /// The name of the first invalid field, if any: intervals and timeout
    /// must be longer than zero and jitter in `[0, 0.5]`.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.health_interval == Duration::ZERO {
            return Err("health_interval");
        }
        if self.inventory_interval == Duration::ZERO {
            return Err("inventory_interval");
        }
        if self.timeout == Duration::ZERO {
            return Err("timeout");
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            return Err("jitter");
        }
        Ok(())
    }
}

/// What a probe asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ProbeKind {
    /// Is the server up (Ollama `GET /api/version`, OpenAI `GET /v1/models`).
    Health,
    /// Which models it serves (Ollama `GET /api/tags`, OpenAI `GET /v1/models`).
    Inventory,
}

impl ProbeKind {
    /// Both kinds, in index order.
    pub const ALL: [ProbeKind; 2] = [ProbeKind::Health, ProbeKind::Inventory];
    /// Dense index (0, 1) for per-kind counters.
    pub const fn index(self) -> usize {
        self as usize
    }
    /// A stable label (`health`, `inventory`).
    pub const fn label(self) -> &'static str {
        match self {
            ProbeKind::Health => "health",
            ProbeKind::Inventory => "inventory",
        }
    }
}

/// A probe to send. Hand it back to [`Router::handle_probe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The node to probe.
    pub node: NodeId,
    /// What to ask.
    pub kind: ProbeKind,
    /// When it counts as failed if not reported.
    pub deadline: Instant,
}

/// How a probe ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The node answered sensibly.
    Ok,
    /// It did not (connect error, timeout, 5xx, unreadable reply).
    Failed(Failure),
}

/// Per node slot: what is due and what is in flight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProbeSlot {
    /// Name hash of the node the slot's state belongs to.
    hash: u64,
    health_due: Instant,
    inventory_due: Instant,
    health: Option<(Instant, BreakerTicket)>,
    inventory: Option<Instant>,
}

impl ProbeSlot {
    fn new(hash: u64) -> Self {
        ProbeSlot {
            hash,
            health_due: Instant::ZERO,
            inventory_due: Instant::ZERO,
            health: None,
            inventory: None,
        }
    }
}

impl<const N: usize, const C: usize, const Q: usize> Router<N, C, Q> {
    /// The next due probe, one per call (loop until `None`). It is in flight
    /// until [`handle_probe`](Router::handle_probe), or until its deadline
    /// passes (then it counts as failed). Always `None` when probes are
    /// disabled. See the [`probe` module](crate::probe).
    pub fn poll_probe(&mut self, now: Instant) -> Option<Probe> {
        if !self.cfg.probe.enabled {
            return None;
        }
        self.expire_probes(now);
        let cfg = self.cfg;
        let deadline = now + cfg.probe.timeout;
        let mut found = None;
        for i in 0..self.nodes.slots().len() {
            let id = NodeId(i as u16);
            let Some(node) = self.nodes.get_mut(id) else {
                continue;
            };
            if node.mode == Mode::Disabled {
                continue;
            }
            let slot = slot_mut(&mut self.probes, i, node.name_hash)?;
            if slot.health.is_none() {
                let due = match node.breaker.state(now) {
                    BreakerState::Closed => slot.health_due <= now,
                    BreakerState::Open { .. } => false,
                    BreakerState::HalfOpen => node.breaker.allows_attempt(now, &cfg.breaker),
                };
                if due {
                    slot.health = Some((deadline, node.breaker.on_attempt_start(now)));
                    found = Some(ProbeKind::Health);
                }
            }
            if found.is_none()
                && slot.inventory.is_none()
                && !node.spec.pinned_models
                && node.breaker.state(now) == BreakerState::Closed
                && slot.inventory_due <= now
            {
                slot.inventory = Some(deadline);
                found = Some(ProbeKind::Inventory);
            }
            if let Some(kind) = found {
                self.metrics.probes.sent[kind.index()] += 1;
                self.trace
                    .push(PROBE_TRACE, now, TraceEvent::ProbeSent { node: id, kind });
                return Some(Probe {
                    node: id,
                    kind,
                    deadline,
                });
            }
        }
        None
    }

    /// The result of a probe from [`poll_probe`](Router::poll_probe). A
    /// probe already past its deadline (counted as failed then), or of a
    /// node removed meanwhile, is ignored.
    pub fn handle_probe(&mut self, probe: Probe, outcome: ProbeOutcome, now: Instant) {
        let i = usize::from(probe.node.0);
        let Some(hash) = self.nodes.get(probe.node).map(|n| n.name_hash) else {
            return;
        };
        let Some(slot) = slot_mut(&mut self.probes, i, hash) else {
            return;
        };
        let ticket = match probe.kind {
            ProbeKind::Health => match slot.health {
                Some((d, t)) if d == probe.deadline => {
                    slot.health = None;
                    Some(t)
                }
                _ => return,
            },
            ProbeKind::Inventory => match slot.inventory {
                Some(d) if d == probe.deadline => {
                    slot.inventory = None;
                    None
                }
                _ => return,
            },
        };
        let failure = match outcome {
            ProbeOutcome::Ok => None,
            ProbeOutcome::Failed(f) => Some(f),
        };
        self.probe_ended(probe.node, probe.kind, ticket, failure, now);
        self.pump(now);
    }

    /// Makes an inventory probe of `node` due now (for example, a
    /// heartbeat's catalog fingerprint changed). Nothing happens for a node
    /// with pinned models, or while one is in flight.
    pub fn request_inventory(&mut self, node: NodeId, now: Instant) -> Result<(), NodeError> {
        let n = self.nodes.get(node).ok_or(NodeError::UnknownNode)?;
        if n.spec.pinned_models {
            return Ok(());
        }
        if let Some(slot) = slot_mut(&mut self.probes, usize::from(node.0), n.name_hash) {
            slot.inventory_due = slot.inventory_due.min(now);
        }
        Ok(())
    }

    /// Replaces a node's model list from an inventory probe. A node with
    /// pinned models keeps its list: `Ok(false)`. Calls already queued see
    /// the new list when capacity next frees or at
    /// [`handle_timeout`](Router::handle_timeout).
    pub fn set_models(&mut self, node: NodeId, models: ModelSet) -> Result<bool, NodeError> {
        let n = self.nodes.get_mut(node).ok_or(NodeError::UnknownNode)?;
        if n.spec.pinned_models {
            return Ok(false);
        }
        n.spec.models = models;
        self.relist();
        Ok(true)
    }

    /// The earliest instant a probe is due or a probe in flight expires;
    /// `None` when probes are off or nothing is scheduled. Part of
    /// [`poll_timeout`](Router::poll_timeout). Never an instant at which
    /// [`poll_probe`](Router::poll_probe) would have nothing to do.
    pub fn probe_timeout(&self) -> Option<Instant> {
        if !self.cfg.probe.enabled {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for (id, n) in self.nodes.iter() {
            if n.mode == Mode::Disabled {
                continue;
            }
            let slot = self
                .probes
                .get(usize::from(id.0))
                .filter(|s| s.hash == n.name_hash)
                .copied()
                .unwrap_or(ProbeSlot::new(n.name_hash));
            match slot.health {
                Some((deadline, _)) => at(deadline),
                None => match n.breaker.cooldown_end() {
                    None => at(slot.health_due),
                    Some(until) => {
                        if n.breaker.probes_in_flight() < self.cfg.breaker.half_open_probes {
                            at(until);
                        }
                    }
                },
            }
            match slot.inventory {
                Some(deadline) => at(deadline),
                None if !n.spec.pinned_models && n.breaker.cooldown_end().is_none() => {
                    at(slot.inventory_due)
                }
                None => {}
            }
        }
        next
    }

    /// Fails every probe in flight whose deadline has passed.
    pub(crate) fn expire_probes(&mut self, now: Instant) {
        if self
            .probes
            .iter()
            .all(|s| s.health.is_none() && s.inventory.is_none())
        {
            return;
        }
        for i in 0..self.probes.len() {
            let Some(hash) = self.nodes.get(NodeId(i as u16)).map(|n| n.name_hash) else {
                continue;
            };
            let slot = &mut self.probes[i];
            if slot.hash != hash {
                continue;
            }
            if let Some((_, t)) = slot.health.filter(|(d, _)| *d <= now) {
                slot.health = None;
                let id = NodeId(i as u16);
                self.probe_ended(id, ProbeKind::Health, Some(t), Some(Failure::Timeout), now);
            }
            let slot = &mut self.probes[i];
            if slot.inventory.is_some_and(|d| d <= now) {
                slot.inventory = None;
                let id = NodeId(i as u16);
                self.probe_ended(id, ProbeKind::Inventory, None, Some(Failure::Timeout), now);
            }
        }
    }

    /// Books a finished probe: breaker verdict (health), counters, trace,
    /// and the next due time of its kind.
    fn probe_ended(
        &mut self,
        id: NodeId,
        kind: ProbeKind,
        ticket: Option<BreakerTicket>,
        failure: Option<Failure>,
        now: Instant,
    ) {
        let cfg = self.cfg;
        let interval = match kind {
            ProbeKind::Health => cfg.probe.health_interval,
            ProbeKind::Inventory => cfg.probe.inventory_interval,
        };
        let factor = 1.0 + cfg.probe.jitter * (2.0 * self.rng.f64() - 1.0);
        // `as` saturates: no overflow, no panic.
        let next = now + Duration::from_nanos((interval.as_nanos() as f64 * factor) as u64);
        let mut opened = false;
        if let Some(node) = self.nodes.get_mut(id) {
            if let Some(t) = ticket {
                match failure {
                    None if t.is_probe() => node.breaker.on_success(t, now),
                    Some(f) if f.charges_node() => {
                        opened = node
                            .breaker
                            .on_failure(t, now, &cfg.breaker, &mut self.rng)
                            .is_some();
                    }
                    _ => node.breaker.on_abandoned(t, now),
                }
            }
            if let Some(slot) = slot_mut(&mut self.probes, usize::from(id.0), node.name_hash) {
                match kind {
                    ProbeKind::Health => slot.health_due = next,
                    ProbeKind::Inventory => slot.inventory_due = next,
                }
            }
        }
        if failure.is_some() {
            self.metrics.probes.failed[kind.index()] += 1;
        }
        if opened {
            if let Some(m) = self.metrics.node_mut(id) {
                m.breaker_opens += 1;
            }
        }
        self.trace.push(
            PROBE_TRACE,
            now,
            TraceEvent::ProbeEnded {
                node: id,
                kind,
                failure,
            },
        );
    }

    /// Forgets the probe state of a node slot (a node was added there).
    pub(crate) fn reset_probes(&mut self, id: NodeId, hash: u64) {
        if let Some(slot) = self.probes.get_mut(usize::from(id.0)) {
            *slot = ProbeSlot::new(hash);
        }
    }
}

/// The probe state of slot `i` for the node with `hash`, created or reset
/// as needed. `None` only past the table's capacity.
fn slot_mut<const N: usize>(
    probes: &mut heapless::Vec<ProbeSlot, N>,
    i: usize,
    hash: u64,
) -> Option<&mut ProbeSlot> {
    while probes.len() <= i {
        probes.push(ProbeSlot::new(0)).ok()?;
    }
    let slot = probes.get_mut(i)?;
    if slot.hash != hash {
        *slot = ProbeSlot::new(hash);
    }
    Some(slot)
}

#[cfg(test)]
mod tests;
