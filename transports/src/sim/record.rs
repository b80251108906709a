//! What the driver remembers about each call and each attempt, compactly,
//! and the [`Report`] it builds from that.
//!
//! A call's record is 80 bytes and an attempt's 40, so a run of a million
//! calls keeps them in about 120 MB next to its workload (72 bytes a call).
//! Times are stored as [`Instant`]s with [`Instant::MAX`] for "not yet", and
//! a call's attempts form a linked list through the attempt records (newest
//! first), so neither kind of record allocates.

use std::collections::BTreeMap;

use drover_core::call::{AttemptId, Outcome};
use drover_core::reason::Failure;
use drover_core::{Duration, Instant};

use super::driver::Driver;
use super::report::{GatewayReport, NodeReport, Report, percentile};
use super::setup::{NEVER, opt};

/// End of a list of `u32` indexes.
pub(crate) const NIL: u32 = u32::MAX;

/// How an attempt ended, as the simulated node and client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Not over yet.
    Open,
    /// A complete, valid reply was delivered.
    Completed,
    /// It failed: refused, 5xx, connection reset or broken stream in a
    /// crash, invalid reply.
    Failed(Failure),
    /// The node answered 429.
    Overloaded,
    /// The router cancelled it (timeout, lost hedge, client gone, call over).
    Cancelled,
}

/// One attempt of a call, as the simulator saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The call's attempt id.
    pub attempt: AttemptId,
    /// Index of its node in the list the driver was given.
    pub node: usize,
    /// When it was sent.
    pub sent: Instant,
    /// True for a hedge.
    pub hedge: bool,
    /// True once its first byte went out.
    pub first_byte: bool,
    /// True when its node corrupted the reply.
    pub corrupt: bool,
    /// True when its node crashed while holding it.
    pub crashed: bool,
    /// How it ended.
    pub end: AttemptEnd,
}

/// One call, as the simulator saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The gateway that ran it.
    pub gateway: usize,
    /// When it started (its arrival, or when it was sent if that had passed).
    pub start: Instant,
    /// When its first attempt was sent.
    pub first_send: Option<Instant>,
    /// When its first byte went to the client.
    pub first_byte: Option<Instant>,
    /// When it ended.
    pub end: Option<Instant>,
    /// How it ended.
    pub outcome: Option<Outcome>,
}

/// Where a simulated attempt is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobState {
    /// Waiting in the node's queue.
    Queued,
    /// Holding a slot; its next event is scheduled.
    Serving,
    /// Accepted by a hung node: nothing will come back.
    Hung,
    /// A failure or 429 reply is on its way.
    Replying,
    /// Over: later events for it are ignored.
    Gone,
}

/// One simulated attempt.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Job {
    pub(crate) call: u32,
    /// The call's previous attempt, or [`NIL`].
    pub(crate) prev: u32,
    pub(crate) sent: Instant,
    /// When its last scheduled event (completion, invalid reply, failure
    /// or 429 reply) is due; meaningful while Serving or Replying.
    pub(crate) due: Instant,
    /// Index in the driver's nodes (`u16::MAX`: not a node of ours).
    pub(crate) node: u16,
    /// Its slot on the node while served (`u16::MAX`: none).
    pub(crate) slot: u16,
    pub(crate) attempt: AttemptId,
    pub(crate) state: JobState,
    pub(crate) hedge: bool,
    pub(crate) first_byte: bool,
    pub(crate) corrupt: bool,
    pub(crate) crashed: bool,
    pub(crate) end: AttemptEnd,
}

/// One call of the workload and what became of it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallRec {
    pub(crate) start: Instant,
    pub(crate) first_send: Instant,
    pub(crate) first_byte: Instant,
    pub(crate) end: Instant,
    /// The one poll timer that counts.
    pub(crate) poll_at: Instant,
    pub(crate) outcome: Option<Outcome>,
    /// Slot of its live `Call`, or [`NIL`].
    pub(crate) live: u32,
    /// Its newest attempt, or [`NIL`].
    pub(crate) last_job: u32,
    /// The attempt whose complete reply was fed to the router, or [`NIL`].
    pub(crate) completed_job: u32,
    pub(crate) gateway: u16,
    pub(crate) sends: u8,
    /// A first byte went to the client.
    pub(crate) committed: bool,
}

impl CallRec {
    pub(crate) fn new() -> Self {
        CallRec {
            start: NEVER,
            first_send: NEVER,
            first_byte: NEVER,
            end: NEVER,
            poll_at: NEVER,
            outcome: None,
            live: NIL,
            last_job: NIL,
            completed_job: NIL,
            gateway: 0,
            sends: 0,
            committed: false,
        }
    }
}

impl Driver {
    /// Call `i` of the workload (in load order).
    pub fn call(&self, i: usize) -> Option<CallRecord> {
        let c = self.w.calls.get(i)?;
        Some(CallRecord {
            gateway: usize::from(c.gateway),
            start: c.start,
            first_send: opt(c.first_send),
            first_byte: opt(c.first_byte),
            end: opt(c.end),
            outcome: c.outcome,
        })
    }

    /// Every call so far, in load order.
    pub fn calls(&self) -> impl Iterator<Item = CallRecord> + '_ {
        (0..self.w.calls.len()).filter_map(|i| self.call(i))
    }

    /// The attempts of call `i`, in the order they were sent.
    pub fn attempts(&self, i: usize) -> Vec<AttemptRecord> {
        let mut out = Vec::new();
        let mut at = self.w.calls.get(i).map_or(NIL, |c| c.last_job);
        while let Some(j) = self.w.jobs.get(at as usize) {
            out.push(AttemptRecord {
                attempt: j.attempt,
                node: usize::from(j.node),
                sent: j.sent,
                hedge: j.hedge,
                first_byte: j.first_byte,
                corrupt: j.corrupt,
                crashed: j.crashed,
                end: j.end,
            });
            at = j.prev;
        }
        out.reverse();
        out
    }

    /// The report of everything run so far.
    pub fn report(&self) -> Report {
        let mut failed = BTreeMap::new();
        let mut rejected = BTreeMap::new();
        let (mut succeeded, mut cancelled, mut lost) = (0, 0, 0);
        let mut ok = vec![0u64; self.w.nodes.len()];
        let mut gateways = vec![GatewayReport::default(); self.gateways.len()];
        let mut ttft = Vec::new();
        let mut latency = Vec::new();
        let mut queue_wait = Vec::with_capacity(self.w.calls.len());
        let mut last_outcome = Instant::ZERO;
        for c in &self.w.calls {
            if c.first_send != NEVER {
                queue_wait.push(c.first_send - c.start);
            }
            let Some(outcome) = c.outcome else {
                lost += 1;
                continue;
            };
            let gw = &mut gateways[usize::from(c.gateway)];
            gw.calls += 1;
            last_outcome = last_outcome.max(c.end);
            match outcome {
                Outcome::Succeeded { node, .. } => {
                    succeeded += 1;
                    gw.succeeded += 1;
                    if let Some(i) = self.w.by_id.get(usize::from(node.0)).copied().flatten() {
                        ok[usize::from(i)] += 1;
                    }
                    latency.push(c.end - c.start);
                    let first = if c.first_byte == NEVER {
                        c.end
                    } else {
                        c.first_byte
                    };
                    ttft.push(first - c.start);
                }
                Outcome::Failed { failure, .. } => *failed.entry(failure.label()).or_insert(0) += 1,
                Outcome::Rejected(r) => *rejected.entry(r.label()).or_insert(0) += 1,
                Outcome::Cancelled { .. } => cancelled += 1,
            }
        }
        for (gw, g) in gateways.iter_mut().zip(&self.gateways) {
            let m = g.router.metrics();
            gw.failovers = m.failovers;
            gw.hedges = m.hedges;
        }
        ttft.sort_unstable();
        latency.sort_unstable();
        queue_wait.sort_unstable();
        let (mut lookups, mut hits) = (0u64, 0u64);
        let nodes = self
            .w
            .nodes
            .iter()
            .zip(&ok)
            .map(|(n, &ok)| {
                let k = n.counters;
                lookups += k.prefix_lookups;
                hits += k.prefix_hits;
                NodeReport {
                    name: n.spec.name.clone(),
                    ok,
                    share: ratio(ok, succeeded).unwrap_or(0.0),
                    attempts: k.attempts,
                    errors: k.errors,
                    refused: k.refused,
                    hung: k.hung,
                    dropped: k.dropped,
                    overloads: k.overloads,
                    invalid: k.corrupted,
                    breaker_opens: self
                        .gateways
                        .iter()
                        .filter_map(|g| g.router.metrics().node(n.id))
                        .map(|m| m.breaker_opens)
                        .sum(),
                    prefix_hit_rate: ratio(k.prefix_hits, k.prefix_lookups),
                }
            })
            .collect();
        let q = |v: &[Duration], p| percentile(v, p);
        Report {
            calls: self.w.calls.len() as u64,
            succeeded,
            failed,
            rejected,
            cancelled,
            lost,
            ttft_p50: q(&ttft, 0.5),
            ttft_p90: q(&ttft, 0.9),
            ttft_p99: q(&ttft, 0.99),
            ttft_p999: q(&ttft, 0.999),
            latency_p50: q(&latency, 0.5),
            latency_p90: q(&latency, 0.9),
            latency_p99: q(&latency, 0.99),
            latency_p999: q(&latency, 0.999),
            queue_wait_p50: q(&queue_wait, 0.5),
            queue_wait_p99: q(&queue_wait, 0.99),
            prefix_hit_rate: ratio(hits, lookups),
            failovers: gateways.iter().map(|g| g.failovers).sum(),
            hedges: gateways.iter().map(|g| g.hedges).sum(),
            nodes,
            gateways,
            series: self.w.series.clone(),
            last_outcome,
            stalled: self.w.stalled,
        }
    }
}

/// `a / b`, or `None` when `b` is 0.
fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}
