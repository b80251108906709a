//! Counters and histograms the router keeps about itself, per operation and
//! per node, for Prometheus export and status pages.
//!
//! Everything is fixed-size: `[OpMetrics; 3]` (chat, stream, embed) and one
//! [`NodeMetrics`] per node slot. Reasons are counted by their position in
//! [`FAILURE_LABELS`] and [`REJECT_LABELS`], which are also the label values
//! an exporter prints. Counters only grow (saturating); a node slot's
//! counters restart when a new node takes the slot.

use crate::histogram::Histogram;
use crate::node::NodeId;
use crate::reason::{Failure, Reject};
use crate::route::Op;
use crate::time::Duration;

/// Label values for [`OpMetrics::failed`], by index.
pub const FAILURE_LABELS: [&str; 9] = [
    "connect",
    "timeout",
    "ttft_timeout",
    "upstream_5xx",
    "invalid_reply",
    "overloaded",
    "client_error",
    "deadline_exceeded",
    "broken_stream",
];

/// Label values for [`OpMetrics::rejected`], by index.
pub const REJECT_LABELS: [&str; 8] = [
    "busy_global_pool",
    "busy_pool",
    "all_nodes_saturated",
    "all_nodes_overloaded",
    "no_eligible_node",
    "payload_too_large",
    "queue_full",
    "queue_wait_expired",
];

pub(crate) fn failure_index(f: Failure) -> usize {
    FAILURE_LABELS
        .iter()
        .position(|l| *l == f.label())
        .unwrap_or(0)
}

pub(crate) fn reject_index(r: Reject) -> usize {
    REJECT_LABELS
        .iter()
        .position(|l| *l == r.label())
        .unwrap_or(0)
}

/// Calls of one operation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OpMetrics {
    /// Calls started.
    pub calls: u64,
    /// Calls that ended with a full answer.
    pub succeeded: u64,
    /// Calls cancelled by their client.
    pub cancelled: u64,
    /// Failed calls by [`FAILURE_LABELS`] index.
    pub failed: [u64; 9],
    /// Refused calls by [`REJECT_LABELS`] index.
    pub rejected: [u64; 8],
    /// Whole-call latency of successful calls.
    pub latency: Histogram,
    /// Time to first byte of calls that produced one.
    pub ttft: Histogram,
    /// Time spent waiting in the admission queue (admitted calls).
    pub queue_wait: Histogram,
}

/// Attempts on one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NodeMetrics {
    /// Attempts sent.
    pub attempts: u64,
    /// Attempts that completed.
    pub succeeded: u64,
    /// Attempts that failed in a way charged to the node.
    pub failures: u64,
    /// 429/503 answers.
    pub overloads: u64,
    /// Attempts cancelled without a verdict (hedge losers, client cancels).
    pub cancelled: u64,
    /// Times its breaker opened.
    pub breaker_opens: u64,
    /// Latency of completed non-streamed attempts.
    pub latency: Histogram,
    /// TTFT of streamed attempts.
    pub ttft: Histogram,
}

/// Active probes, by [`ProbeKind::index`](crate::probe::ProbeKind::index).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ProbeMetrics {
    /// Probes issued.
    pub sent: [u64; 2],
    /// Probes that failed or timed out.
    pub failed: [u64; 2],
}

/// All of the router's counters. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Metrics<const N: usize> {
    /// Per operation, indexed by [`Op::index`].
    pub ops: [OpMetrics; 3],
    /// Per node slot, indexed by [`NodeId`].
    nodes: heapless::Vec<NodeMetrics, N>,
    /// Attempts after the first one that were caused by a failure.
    pub failovers: u64,
    /// Hedge attempts started.
    pub hedges: u64,
    /// Hedges that beat the original attempt.
    pub hedges_won: u64,
    /// Hedges the budget refused (the hedge budget or the retry budget).
    pub hedges_denied: u64,
    /// Retries and hedges the shared retry budget refused
    /// (`retry_budget_exhausted`).
    pub retries_denied: u64,
    /// Active probes.
    pub probes: ProbeMetrics,
}

impl<const N: usize> Default for Metrics<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Metrics<N> {
    /// All zero.
    pub fn new() -> Self {
        Metrics {
            ops: Default::default(),
            nodes: heapless::Vec::new(),
            failovers: 0,
            hedges: 0,
            hedges_won: 0,
            hedges_denied: 0,
            retries_denied: 0,
            probes: ProbeMetrics {
                sent: [0; 2],
                failed: [0; 2],
            },
        }
    }
    /// One operation's counters.
    pub fn op(&self, op: Op) -> &OpMetrics {
        &self.ops[op.index()]
    }
    pub(crate) fn op_mut(&mut self, op: Op) -> &mut OpMetrics {
        &mut self.ops[op.index()]
    }
    /// One node's counters (zero for a slot never used).
    pub fn node(&self, id: NodeId) -> Option<&NodeMetrics> {
        self.nodes.get(usize::from(id.0))
    }
    pub(crate) fn node_mut(&mut self, id: NodeId) -> Option<&mut NodeMetrics> {
        let i = usize::from(id.0);
        while self.nodes.len() <= i {
            if self.nodes.push(NodeMetrics::default()).is_err() {
                return None;
            }
        }
        self.nodes.get_mut(i)
    }
    pub(crate) fn reset_node(&mut self, id: NodeId) {
        if let Some(m) = self.node_mut(id) {
            *m = NodeMetrics::default();
        }
    }
    /// Calls that failed with `f`, all operations together.
    pub fn failed_total(&self, f: Failure) -> u64 {
        self.ops.iter().map(|o| o.failed[failure_index(f)]).sum()
    }
    /// Calls refused with `r`'s kind, all operations together.
    pub fn rejected_total(&self, r: Reject) -> u64 {
        self.ops.iter().map(|o| o.rejected[reject_index(r)]).sum()
    }
    /// The hedge delay for `op`: quantile `q` of its recent TTFT (streams) or
    /// latency, clamped; `max` when nothing was measured yet.
    pub(crate) fn hedge_delay(&self, op: Op, q: f64, min: Duration, max: Duration) -> Duration {
        let m = self.op(op);
        let h = if op == Op::Stream {
            &m.ttft
        } else {
            &m.latency
        };
        h.quantile(q).map_or(max, |d| d.clamp(min, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Pool;
    use crate::reason::NoNode;

    #[test]
    fn every_reason_has_its_own_index() {
        let failures = [
            Failure::Connect,
            Failure::Timeout,
            Failure::TtftTimeout,
            Failure::Upstream5xx(500),
            Failure::InvalidReply,
            Failure::Overloaded,
            Failure::ClientError(400),
            Failure::DeadlineExceeded,
            Failure::BrokenStream,
        ];
        for (i, f) in failures.into_iter().enumerate() {
            assert_eq!(failure_index(f), i, "{f:?}");
        }
        let rejects = [
            Reject::BusyGlobalPool,
            Reject::BusyPool(Pool::Chat),
            Reject::AllNodesSaturated,
            Reject::AllNodesOverloaded {
                retry_after: Duration::ZERO,
            },
            Reject::NoEligibleNode(NoNode::NoNodes),
            Reject::PayloadTooLarge { limit: 1 },
            Reject::QueueFull,
            Reject::QueueWaitExpired,
        ];
        for (i, r) in rejects.into_iter().enumerate() {
            assert_eq!(reject_index(r), i, "{r:?}");
        }
    }

    #[test]
    fn node_slots_grow_on_demand_and_are_bounded() {
        let mut m: Metrics<2> = Metrics::new();
        assert!(m.node(NodeId(1)).is_none());
        m.node_mut(NodeId(1)).unwrap().attempts += 1;
        assert_eq!(m.node(NodeId(1)).unwrap().attempts, 1);
        assert_eq!(m.node(NodeId(0)).unwrap().attempts, 0);
        assert!(m.node_mut(NodeId(2)).is_none());
        m.reset_node(NodeId(1));
        assert_eq!(m.node(NodeId(1)).unwrap().attempts, 0);
    }
}
