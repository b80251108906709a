//! The judgments: every action as it arrives, and the whole router between
//! operations.

use drover_core::breaker::BreakerState;
use drover_core::call::{AttemptId, Outcome};
use drover_core::catalog::ModelId;
use drover_core::config::TagMode;
use drover_core::health::Freshness;
use drover_core::node::{Mode, NodeId};
use drover_core::route::Op as CoreOp;

use super::{Harness, SendRecord};
use crate::ops::SLOTS;
use crate::ops::oracle::{filter, is_draining};

impl Harness {
    pub(super) fn on_send(
        &mut self,
        k: usize,
        attempt: AttemptId,
        node: NodeId,
        model: Option<ModelId>,
        hedge: bool,
    ) {
        let (now, cfg) = (self.now, &self.cfg);
        let t = &self.calls[k];
        let q = t.query;
        // Built only when an assertion fails.
        let what = || format!("call {k}: Send {attempt:?} to {node} at {now:?}");
        assert!(t.finished.is_none(), "{}: Send after Finish", what());
        assert!(!t.committed, "{}: Send after the first byte", what());
        assert!(
            !t.call.is_committed(),
            "{}: Send on a committed call",
            what()
        );
        assert_eq!(
            usize::from(attempt.0),
            t.tried.len(),
            "{}: attempt ids count sends",
            what()
        );
        assert!(
            t.tried.len() < usize::from(cfg.max_attempts),
            "{}: more than max_attempts ({}) attempts",
            what(),
            cfg.max_attempts
        );
        assert!(!t.tried.contains(&node), "{}: node already tried", what());
        if hedge {
            assert!(cfg.hedge.enabled, "{}: hedge while hedging is off", what());
            assert!(
                q.op == CoreOp::Stream || cfg.hedge.non_stream,
                "{}: hedge of a non-streamed call",
                what()
            );
            assert_eq!(t.live.len(), 1, "{}: hedge needs one live attempt", what());
        } else {
            assert!(
                t.live.is_empty(),
                "{}: a second non-hedge attempt while {:?} is live",
                what(),
                t.live
            );
        }
        let Some(n) = self.router.node(node) else {
            panic!("{}: no node in that slot", what());
        };
        assert_ne!(n.mode, Mode::Disabled, "{}: node is disabled", what());
        if let Some(p) = q.pin {
            assert_eq!(node, p, "{}: call is pinned elsewhere", what());
        }
        assert!(
            n.spec
                .capabilities
                .contains(q.op.capability().union(q.needs)),
            "{}: node lacks a capability",
            what()
        );
        let resolved = q.model.and_then(|m| n.spec.resolve_model(m));
        assert!(
            q.model.is_none() || resolved.is_some(),
            "{}: node does not serve the model",
            what()
        );
        assert_eq!(
            model,
            resolved,
            "{}: model not resolved by the node",
            what()
        );
        assert!(
            n.spec.scope.is_none() || n.spec.scope == q.scope,
            "{}: scope mismatch",
            what()
        );
        if cfg.tag_mode == TagMode::Require {
            assert!(
                n.spec.tags.contains_all(q.tags),
                "{}: required tag missing",
                what()
            );
        }
        let freshness = n.health.freshness(now, &cfg.health);
        assert!(
            matches!(freshness, Freshness::Passive | Freshness::Fresh),
            "{}: node heartbeat is {freshness:?}",
            what()
        );
        let breaker = n.breaker.state(now);
        assert!(
            !matches!(breaker, BreakerState::Open { .. }),
            "{}: breaker is {breaker:?}",
            what()
        );
        if breaker == BreakerState::HalfOpen {
            assert!(
                n.breaker.probes_in_flight() <= cfg.breaker.half_open_probes,
                "{}: more half-open probes than allowed",
                what()
            );
        }
        let cooling = n.overload.is_cooling(now);
        assert!(!cooling, "{}: node is in overload cooldown", what());
        assert!(
            n.in_flight + n.reserved <= u32::from(n.spec.max_concurrency),
            "{}: over max_concurrency ({} in flight, {} reserved, limit {})",
            what(),
            n.in_flight,
            n.reserved,
            n.spec.max_concurrency
        );
        let draining = is_draining(cfg, n, now);
        let nodes = self.router.nodes();
        let enabled_alternative = nodes
            .iter()
            .find(|&(id, other)| {
                id != node && filter(cfg, id, other, &q, &t.tried, now) == Ok(false)
            })
            .map(|(id, _)| id);
        if draining {
            assert_eq!(
                enabled_alternative,
                None,
                "{}: draining node chosen while an enabled node was eligible",
                what()
            );
        }
        let record = SendRecord {
            step: self.stats.steps,
            call: k,
            attempt,
            node,
            hedge,
            mode: n.mode,
            breaker,
            cooling,
            freshness,
            draining,
            enabled_alternative,
            disabled_nodes: nodes
                .iter()
                .filter(|(_, o)| o.mode == Mode::Disabled)
                .count(),
            open_breakers: nodes
                .iter()
                .filter(|(_, o)| matches!(o.breaker.state(now), BreakerState::Open { .. }))
                .count(),
        };
        self.sends.push(record);
        self.stats.attempts_sent += 1;
        self.node_sends[usize::from(node.0)] += 1;
        self.stats.drained_sends += usize::from(draining);
        if hedge {
            self.stats.hedges += 1;
        } else if attempt.0 > 0 {
            self.stats.failovers += 1;
        }
        let t = &mut self.calls[k];
        t.live.push((attempt, node));
        t.tried.push(node);
    }

    pub(super) fn on_finish(&mut self, k: usize, outcome: Outcome) {
        let t = &mut self.calls[k];
        let what = || format!("call {k}: Finish({outcome:?})");
        assert!(
            t.finished.is_none(),
            "{}: second Finish (first {:?})",
            what(),
            t.finished
        );
        assert!(
            t.live.is_empty(),
            "{}: attempts still live {:?}",
            what(),
            t.live
        );
        let sent = t.tried.len();
        match outcome {
            Outcome::Succeeded { node, attempts } => {
                assert_eq!(usize::from(attempts), sent, "{}: attempt count", what());
                assert!(t.tried.contains(&node), "{}: node never sent to", what());
                self.stats.succeeded += 1;
            }
            Outcome::Failed {
                node,
                after_first_byte,
                attempts,
                ..
            } => {
                assert_eq!(usize::from(attempts), sent, "{}: attempt count", what());
                assert_eq!(
                    after_first_byte,
                    t.committed,
                    "{}: after_first_byte",
                    what()
                );
                if let Some(n) = node {
                    assert!(t.tried.contains(&n), "{}: node never sent to", what());
                }
                self.stats.failed += 1;
            }
            Outcome::Rejected(_) => {
                assert_eq!(sent, 0, "{}: rejected after sending", what());
                self.stats.rejected += 1;
            }
            Outcome::Cancelled { after_first_byte } => {
                assert_eq!(
                    after_first_byte,
                    t.committed,
                    "{}: after_first_byte",
                    what()
                );
                self.stats.cancelled += 1;
            }
        }
        t.finished = Some(outcome);
        t.wake = None;
    }

    /// The invariants that hold between operations. Panics naming the first
    /// one broken.
    pub fn check(&self) {
        let r = &self.router;
        let mut live = [0u32; SLOTS as usize];
        for t in &self.calls {
            for &(_, n) in &t.live {
                live[usize::from(n.0)] += 1;
            }
        }
        let mut reserved = 0u32;
        for (id, n) in r.nodes().iter() {
            let i = usize::from(id.0);
            assert_eq!(
                n.in_flight, live[i],
                "{id}: router counts {} in flight, driver believes {}",
                n.in_flight, live[i]
            );
            assert!(
                n.in_flight + n.reserved <= u32::from(n.spec.max_concurrency),
                "{id}: {} in flight + {} reserved over max_concurrency {}",
                n.in_flight,
                n.reserved,
                n.spec.max_concurrency
            );
            let probes = n.breaker.probes_in_flight();
            assert!(
                u32::from(probes) <= n.in_flight,
                "{id}: {probes} half-open probes but {} attempts in flight",
                n.in_flight
            );
            assert!(
                probes <= self.cfg.breaker.half_open_probes,
                "{id}: {probes} half-open probes over the limit"
            );
            reserved += n.reserved;
        }
        let believed: u32 = live.iter().sum();
        assert_eq!(r.attempts_in_flight(), believed, "attempts in flight");
        assert_eq!(
            self.stats.attempts_sent - self.stats.attempts_released,
            believed as usize,
            "sent minus released"
        );
        let open = self.calls.iter().filter(|t| t.finished.is_none());
        let running = open
            .clone()
            .filter(|t| t.polled && !t.call.is_queued())
            .count() as u32;
        let queued = open.clone().filter(|t| t.call.is_queued()).count();
        assert_eq!(r.active_calls() as usize, open.count(), "active calls");
        assert_eq!(
            r.permits_outstanding(),
            running + reserved,
            "permits outstanding must be running calls ({running}) plus granted, \
             unpolled queue tickets (= node reservations, {reserved})"
        );
        assert!(
            r.permits_outstanding() <= self.cfg.pools.global,
            "permits over the global pool"
        );
        assert!(queued <= 8, "more queued calls than queue slots");
        assert!(
            r.queue_depth() + reserved as usize <= queued,
            "queue depth {} + granted {reserved} over the {queued} queued calls",
            r.queue_depth()
        );
        if r.active_calls() == 0 {
            assert_eq!(r.permits_outstanding(), 0, "permits with no call active");
            assert_eq!(r.attempts_in_flight(), 0, "attempts with no call active");
            assert_eq!(r.queue_depth(), 0, "queue entries with no call active");
            assert_eq!(reserved, 0, "reservations with no call active");
        }
        self.check_metrics();
        for (k, t) in self.calls.iter().enumerate() {
            assert_eq!(
                t.call.is_finished(),
                t.finished.is_some(),
                "call {k}: finished"
            );
            if t.finished.is_none() {
                assert_eq!(t.call.is_committed(), t.committed, "call {k}: committed");
            }
            assert_eq!(
                usize::from(t.call.attempts()),
                t.tried.len(),
                "call {k}: attempts"
            );
            assert_eq!(t.call.tried(), &t.tried[..], "call {k}: tried nodes");
        }
    }
}

impl Harness {
    /// The router's counters against the driver's own count of what happened.
    pub(super) fn check_metrics(&self) {
        let m = self.router.metrics();
        for op in CoreOp::ALL {
            let calls = self.calls.iter().filter(|t| t.query.op == op);
            let count = |f: fn(&Outcome) -> bool| {
                calls
                    .clone()
                    .filter(|t| t.finished.as_ref().is_some_and(f))
                    .count() as u64
            };
            let om = m.op(op);
            let what = op.label();
            assert_eq!(om.calls, calls.clone().count() as u64, "{what}: calls");
            assert_eq!(
                om.succeeded,
                count(|o| matches!(o, Outcome::Succeeded { .. })),
                "{what}: succeeded"
            );
            assert_eq!(
                om.failed.iter().sum::<u64>(),
                count(|o| matches!(o, Outcome::Failed { .. })),
                "{what}: failed"
            );
            assert_eq!(
                om.rejected.iter().sum::<u64>(),
                count(|o| matches!(o, Outcome::Rejected(_))),
                "{what}: rejected"
            );
            assert_eq!(
                om.cancelled,
                count(|o| matches!(o, Outcome::Cancelled { .. })),
                "{what}: cancelled"
            );
        }
        assert_eq!(m.failovers, self.stats.failovers as u64, "failovers");
        assert_eq!(m.hedges, self.stats.hedges as u64, "hedges");
        for (id, n) in self.router.nodes().iter() {
            let i = usize::from(id.0);
            let Some(nm) = m.node(id) else {
                panic!("{id}: no metrics for a node in the table");
            };
            assert_eq!(nm.attempts, self.node_sends[i], "{id}: attempts counted");
            let ended = nm.succeeded + nm.failures + nm.overloads + nm.cancelled;
            assert_eq!(
                nm.attempts,
                u64::from(n.in_flight) + ended + self.node_client_errors[i],
                "{id}: every attempt is in flight or ended exactly once ({nm:?})"
            );
        }
    }
}
