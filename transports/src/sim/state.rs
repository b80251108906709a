//! A simulated node at run time ([`NodeState`]): its slots and queue, its
//! fault state, its prefix cache, and how it serves an attempt. What the
//! node *is* comes from its [`SimNode`] description.

use std::collections::VecDeque;

use drover_core::Duration;
use drover_core::health::Telemetry;
use drover_core::node::NodeId;
use drover_core::route::Op;
use fastrand::Rng;

use super::faults::{Change, CrashMode};
use super::node::{OverloadModel, SimNode, secs};
use super::prefix::PrefixCache;

/// Index of a simulated attempt in the driver's job list.
pub(crate) type JobId = u32;

/// A free slot.
const NO_JOB: JobId = JobId::MAX;

/// What a node does with an arriving attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Down: connection refused.
    Refused,
    /// Down and hung: accepted, never answered.
    Hung,
    /// 429, with this Retry-After.
    Overloaded(Option<Duration>),
    /// A 5xx before the first byte.
    Fails,
    /// Accepted into this slot at once: start serving it.
    Started(u16),
    /// Accepted into the queue.
    Queued,
}

/// How long an attempt takes once it has a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Service {
    /// From start to first byte (streams only; chat and embed answer at `total`).
    pub(crate) first_byte: Duration,
    /// From start to the end of the answer.
    pub(crate) total: Duration,
}

/// Counters kept per node by the simulator (what the node saw, not what the
/// router believes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeCounters {
    pub(crate) attempts: u64,
    pub(crate) refused: u64,
    pub(crate) hung: u64,
    pub(crate) errors: u64,
    pub(crate) overloads: u64,
    pub(crate) dropped: u64,
    pub(crate) corrupted: u64,
    /// Prompt blocks looked up in the prefix cache, and leading hits.
    pub(crate) prefix_lookups: u64,
    pub(crate) prefix_hits: u64,
}

/// A simulated node at run time.
#[derive(Debug)]
pub(crate) struct NodeState {
    pub(crate) spec: SimNode,
    pub(crate) id: NodeId,
    rng: Rng,
    /// Corruption draws: a stream of their own, drawn only while a corrupt
    /// fault is active, so other draws never shift.
    reply_rng: Rng,
    /// The job in each slot ([`NO_JOB`] when free), and the free slots.
    slots: Vec<JobId>,
    free: Vec<u16>,
    waiting: VecDeque<JobId>,
    /// Crash and flap windows holding it down, and how the latest treats
    /// connections.
    down: u32,
    crash_mode: CrashMode,
    /// Stale-heartbeat windows open.
    stale: u32,
    /// Product of the slow factors in force.
    slow: f64,
    /// Overload windows open, and the bound of the latest.
    overload_windows: u32,
    overload_fault: Option<OverloadModel>,
    /// Sum of the corruption rates in force.
    corrupt: f64,
    cache: Option<PrefixCache>,
    pub(crate) counters: NodeCounters,
}

impl NodeState {
    pub(crate) fn new(spec: SimNode, id: NodeId, seed: u64, reply_seed: u64) -> Self {
        let cache = spec.prefix_cache.map(|p| PrefixCache::new(p.blocks));
        let slots = usize::from(spec.slots);
        NodeState {
            slots: vec![NO_JOB; slots],
            // Popped from the end: slot 0 is used first.
            free: (0..spec.slots).rev().collect(),
            spec,
            id,
            rng: Rng::with_seed(seed),
            reply_rng: Rng::with_seed(reply_seed),
            waiting: VecDeque::new(),
            down: 0,
            crash_mode: CrashMode::Refuse,
            stale: 0,
            slow: 1.0,
            overload_windows: 0,
            overload_fault: None,
            corrupt: 0.0,
            cache,
            counters: NodeCounters::default(),
        }
    }

    /// Requests in slots plus requests waiting.
    pub(crate) fn holding(&self) -> usize {
        self.slots.len() - self.free.len() + self.waiting.len()
    }

    /// How it answers a probe now: `Some(true)` up, `Some(false)` refused
    /// (crashed or flapping down), `None` never (hung).
    pub(crate) fn probe_answer(&self) -> Option<bool> {
        match (self.down, self.crash_mode) {
            (0, _) => Some(true),
            (_, CrashMode::Refuse) => Some(false),
            (_, CrashMode::Hang) => None,
        }
    }

    /// True while it sends heartbeats: up and not stale-faulted.
    pub(crate) fn beats(&self) -> bool {
        self.down == 0 && self.stale == 0
    }

    /// What a heartbeat reports now.
    pub(crate) fn telemetry(&self) -> Telemetry {
        let slots = self.spec.slots;
        Telemetry {
            max_slots: slots,
            free_slots: self.free.len().min(usize::from(slots)) as u16,
            queued: self.waiting.len().min(usize::from(u16::MAX)) as u16,
            drain: false,
            catalog_fingerprint: 0,
            protocol_version: 1,
        }
    }

    /// Decides what happens to `job`, which arrives now.
    pub(crate) fn arrive(&mut self, job: JobId) -> Arrival {
        self.counters.attempts += 1;
        // One draw per attempt whatever the outcome, so a fault elsewhere
        // does not shift this node's random stream.
        let fails = self.rng.f64() < self.spec.failure_rate;
        if self.down > 0 {
            return match self.crash_mode {
                CrashMode::Refuse => {
                    self.counters.refused += 1;
                    Arrival::Refused
                }
                CrashMode::Hang => {
                    self.counters.hung += 1;
                    Arrival::Hung
                }
            };
        }
        if fails {
            self.counters.errors += 1;
            return Arrival::Fails;
        }
        if let Some(slot) = self.free.pop() {
            self.slots[usize::from(slot)] = job;
            return Arrival::Started(slot);
        }
        if let Some(o) = self.overload_fault.or(self.spec.overload) {
            if self.waiting.len() >= o.queue_limit as usize {
                self.counters.overloads += 1;
                return Arrival::Overloaded(o.retry_after);
            }
        }
        self.waiting.push_back(job);
        Arrival::Queued
    }

    /// Removes `job` (finished or cancelled) from `slot`, or from the queue
    /// when it has none. Returns the queued job that takes the freed slot,
    /// if any, and the slot: the driver starts serving it. O(1) for a job
    /// in a slot, O(queue) for a queued one.
    pub(crate) fn release(&mut self, job: JobId, slot: Option<u16>) -> Option<(JobId, u16)> {
        if let Some(s) = slot {
            if self.slots.get(usize::from(s)) == Some(&job) {
                if let Some(next) = self.waiting.pop_front() {
                    self.slots[usize::from(s)] = next;
                    return Some((next, s));
                }
                self.slots[usize::from(s)] = NO_JOB;
                self.free.push(s);
            }
            return None;
        }
        if let Some(i) = self.waiting.iter().position(|&j| j == job) {
            self.waiting.remove(i);
        }
        None
    }

    /// Another crash window opens. If the node was up it goes down: returns
    /// every job it held, in slot then queue order, and forgets its cache.
    pub(crate) fn crash(&mut self, mode: CrashMode) -> Vec<JobId> {
        self.down += 1;
        self.crash_mode = mode;
        if self.down > 1 {
            return Vec::new();
        }
        if let Some(c) = self.cache.as_mut() {
            c.clear();
        }
        let mut dropped: Vec<JobId> = self
            .slots
            .iter()
            .copied()
            .filter(|&j| j != NO_JOB)
            .collect();
        dropped.extend(self.waiting.drain(..));
        self.slots.fill(NO_JOB);
        self.free = (0..self.spec.slots).rev().collect();
        self.counters.dropped += dropped.len() as u64;
        dropped
    }

    /// A crash window closes; the node is up once none is open.
    pub(crate) fn recover(&mut self) {
        self.down = self.down.saturating_sub(1);
    }

    /// Applies a change other than going down or up.
    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::Down(mode) => {
                let _ = self.crash(mode);
            }
            Change::Up => self.recover(),
            Change::StaleOn => self.stale += 1,
            Change::StaleOff => self.stale = self.stale.saturating_sub(1),
            Change::SlowOn(f) => self.slow *= f,
            Change::SlowOff(f) => {
                self.slow /= f;
                if (self.slow - 1.0).abs() < 1e-9 {
                    self.slow = 1.0; // no drift once every window has closed
                }
            }
            Change::OverloadOn(m) => {
                self.overload_windows += 1;
                self.overload_fault = Some(m);
            }
            Change::OverloadOff => {
                self.overload_windows = self.overload_windows.saturating_sub(1);
                if self.overload_windows == 0 {
                    self.overload_fault = None;
                }
            }
            Change::CorruptOn(r) => self.corrupt += r,
            Change::CorruptOff(r) => self.corrupt = (self.corrupt - r).max(0.0),
        }
    }

    /// Whether the reply of an attempt that just got a slot is corrupted.
    pub(crate) fn corrupts(&mut self) -> bool {
        if self.corrupt <= 0.0 {
            return false;
        }
        let c = self.reply_rng.f64() < self.corrupt.min(1.0);
        self.counters.corrupted += u64::from(c);
        c
    }

    /// Draws the service time of an attempt that has just got a slot. With
    /// a prefix cache, `blocks` are looked up (and then held): the prefill
    /// of the leading cached run is skipped.
    pub(crate) fn service(
        &mut self,
        op: Op,
        prompt_tokens: u32,
        output_tokens: u32,
        blocks: Option<&[u64]>,
    ) -> Service {
        let mut skipped = 0u32;
        if let (Some(cache), Some(model), Some(b)) =
            (self.cache.as_mut(), self.spec.prefix_cache, blocks)
        {
            let hits = cache.serve(b);
            self.counters.prefix_lookups += b.len() as u64;
            self.counters.prefix_hits += hits as u64;
            let saved = (hits as u64).saturating_mul(u64::from(model.block_tokens));
            skipped = saved.min(u64::from(prompt_tokens)) as u32;
        }
        let prefill = self.spec.prefill_base
            + self
                .spec
                .prefill_per_token
                .saturating_mul(u64::from(prompt_tokens - skipped));
        let prefill = scale(prefill, self.factor() * self.slow);
        let decode_secs = f64::from(output_tokens) / self.spec.decode_tokens_per_sec;
        let decode = scale(secs(decode_secs), self.factor() * self.slow);
        match op {
            Op::Stream => Service {
                first_byte: prefill,
                total: prefill + decode,
            },
            Op::Chat => Service {
                first_byte: prefill + decode,
                total: prefill + decode,
            },
            Op::Embed => {
                let t = self
                    .spec
                    .embed
                    .map_or(prefill, |e| scale(e, self.factor() * self.slow));
                Service {
                    first_byte: t,
                    total: t,
                }
            }
        }
    }

    /// A jitter factor in `[1 − jitter, 1 + jitter]`.
    fn factor(&mut self) -> f64 {
        1.0 + self.spec.jitter * (2.0 * self.rng.f64() - 1.0)
    }
}

/// `d × f`, rounded to the nanosecond (`f` is positive and finite).
fn scale(d: Duration, f: f64) -> Duration {
    secs(d.as_secs_f64() * f)
}

#[cfg(test)]
mod tests {
    use drover_core::Instant;

    use super::*;

    fn state(spec: SimNode) -> NodeState {
        NodeState::new(spec, NodeId(0), 1, 2)
    }

    #[test]
    fn slots_then_fifo_queue_then_release_promotes_oldest() {
        let mut n = state(SimNode::new("a", 2));
        assert_eq!(n.arrive(0), Arrival::Started(0));
        assert_eq!(n.arrive(1), Arrival::Started(1));
        assert_eq!(n.arrive(2), Arrival::Queued);
        assert_eq!(n.arrive(3), Arrival::Queued);
        assert_eq!(n.holding(), 4);
        // Cancelling a queued job frees no slot.
        assert_eq!(n.release(3, None), None);
        assert_eq!(n.release(0, Some(0)), Some((2, 0)));
        assert_eq!(n.release(1, Some(1)), None);
        assert_eq!(n.telemetry().free_slots, 1);
        assert_eq!(n.release(2, Some(0)), None);
        assert_eq!(n.holding(), 0);
        // Releasing an unknown job, or from the wrong slot, is harmless.
        assert_eq!(n.release(99, None), None);
        assert_eq!(n.arrive(4), Arrival::Started(0));
        assert_eq!(n.release(99, Some(0)), None);
        assert_eq!(n.release(99, Some(7)), None);
        assert_eq!(n.holding(), 1);
    }

    #[test]
    fn overload_answers_429_when_queue_is_full() {
        let retry = Some(Duration::from_millis(500));
        let mut n = state(SimNode::new("a", 1).overload(1, retry));
        assert_eq!(n.arrive(0), Arrival::Started(0));
        assert_eq!(n.arrive(1), Arrival::Queued);
        assert_eq!(n.arrive(2), Arrival::Overloaded(retry));
        assert_eq!(n.counters.overloads, 1);
    }

    #[test]
    fn crash_window_refuses_and_crash_drops_everything() {
        let spec = SimNode::new("a", 1).crash(Instant::from_secs(10), Instant::from_secs(20));
        let mut n = state(spec);
        assert_eq!(n.arrive(0), Arrival::Started(0));
        assert_eq!(n.arrive(1), Arrival::Queued);
        assert_eq!(n.crash(CrashMode::Refuse), vec![0, 1]);
        assert_eq!(n.holding(), 0);
        assert_eq!(n.arrive(2), Arrival::Refused);
        n.recover();
        assert_eq!(n.arrive(3), Arrival::Started(0));
        assert_eq!(n.counters.refused, 1);
        assert_eq!(n.counters.dropped, 2);
    }

    #[test]
    fn failure_rate_one_always_fails_zero_never() {
        let mut bad = state(SimNode::new("a", 4).failure_rate(1.0));
        let mut good = state(SimNode::new("b", 4));
        for j in 0..4 {
            assert_eq!(bad.arrive(j), Arrival::Fails);
            assert_eq!(good.arrive(j), Arrival::Started(j as u16));
        }
    }

    #[test]
    fn service_follows_the_model_within_jitter() {
        let spec = SimNode::new("a", 1)
            .prefill(Duration::from_millis(100), Duration::from_millis(1))
            .decode(50.0)
            .jitter(0.1);
        let mut n = state(spec);
        for _ in 0..100 {
            // prefill 100 + 400 = 500 ms ± 10 %; decode 100 / 50 = 2 s ± 10 %.
            let s = n.service(Op::Stream, 400, 100, None);
            let fb = s.first_byte.as_millis();
            assert!((450..=550).contains(&fb), "first byte {fb} ms");
            let decode = (s.total - s.first_byte).as_millis();
            assert!((1800..=2200).contains(&decode), "decode {decode} ms");
            let e = n.service(Op::Embed, 400, 100, None);
            assert_eq!(e.first_byte, e.total);
            assert!(e.total.as_millis() <= 550);
            let c = n.service(Op::Chat, 400, 100, None);
            assert_eq!(c.first_byte, c.total);
            assert!(c.total.as_millis() >= 2250);
        }
        let mut exact = state(SimNode::new("x", 1).jitter(0.0).decode(10.0));
        let s = exact.service(Op::Stream, 100, 10, None);
        assert_eq!(s.first_byte, Duration::from_millis(150));
        assert_eq!(s.total, Duration::from_millis(1150));
    }

    #[test]
    fn prefix_cache_skips_the_prefill_of_cached_leading_blocks() {
        // 100 ms + 1 ms/token, no jitter, blocks of 100 tokens.
        let spec = SimNode::new("a", 1)
            .jitter(0.0)
            .prefill(Duration::from_millis(100), Duration::from_millis(1))
            .prefix_cache(8, 100);
        let mut n = state(spec);
        let prompt = [1, 2, 3, 4];
        let first = n.service(Op::Embed, 400, 0, Some(&prompt));
        assert_eq!(first.total, Duration::from_millis(500));
        // Three of four blocks shared: 300 tokens not prefilled again.
        let second = n.service(Op::Embed, 400, 0, Some(&[1, 2, 3, 9]));
        assert_eq!(second.total, Duration::from_millis(200));
        // Hits never skip more than the prompt.
        let short = n.service(Op::Embed, 50, 0, Some(&prompt));
        assert_eq!(short.total, Duration::from_millis(100));
        assert_eq!(n.counters.prefix_lookups, 12);
        assert_eq!(n.counters.prefix_hits, 7);
        // A crash forgets the cache.
        assert!(n.crash(CrashMode::Refuse).is_empty());
        n.recover();
        let cold = n.service(Op::Embed, 400, 0, Some(&prompt));
        assert_eq!(cold.total, Duration::from_millis(500));
        // A node without a cache ignores blocks.
        let mut plain = state(SimNode::new("b", 1).jitter(0.0));
        let _ = plain.service(Op::Embed, 400, 0, Some(&prompt));
        assert_eq!(plain.counters.prefix_lookups, 0);
    }

    #[test]
    fn fault_changes_compose_and_undo() {
        let spec = SimNode::new("a", 1)
            .jitter(0.0)
            .prefill(Duration::from_millis(100), Duration::ZERO)
            .heartbeat(Duration::from_secs(1));
        let mut n = state(spec);
        assert!(n.beats());
        // Slow factors multiply and undo exactly.
        n.apply(Change::SlowOn(2.0));
        n.apply(Change::SlowOn(3.0));
        let s = n.service(Op::Embed, 0, 0, None);
        assert_eq!(s.total, Duration::from_millis(600));
        n.apply(Change::SlowOff(2.0));
        n.apply(Change::SlowOff(3.0));
        assert_eq!(
            n.service(Op::Embed, 0, 0, None).total,
            Duration::from_millis(100)
        );
        // Two overlapping crash windows: up only when both closed; the
        // second crash drops nothing more.
        assert_eq!(n.arrive(0), Arrival::Started(0));
        assert_eq!(n.crash(CrashMode::Hang), vec![0]);
        assert!(!n.beats());
        assert!(n.crash(CrashMode::Hang).is_empty());
        n.recover();
        assert_eq!(n.arrive(1), Arrival::Hung);
        n.recover();
        assert_eq!(n.arrive(2), Arrival::Started(0));
        assert_eq!(n.counters.hung, 1);
        // Stale heartbeats, while serving.
        n.apply(Change::StaleOn);
        assert!(!n.beats());
        n.apply(Change::StaleOff);
        assert!(n.beats());
        // An overload window bounds the queue, then lifts.
        let m = OverloadModel {
            queue_limit: 0,
            retry_after: None,
        };
        n.apply(Change::OverloadOn(m));
        assert_eq!(n.arrive(3), Arrival::Overloaded(None));
        n.apply(Change::OverloadOff);
        assert_eq!(n.arrive(4), Arrival::Queued);
        let t = n.telemetry();
        assert_eq!((t.max_slots, t.free_slots, t.queued), (1, 0, 1));
        // Corruption: rate 1 always, 0 never, and counted.
        assert!(!n.corrupts());
        n.apply(Change::CorruptOn(1.0));
        assert!(n.corrupts() && n.corrupts());
        n.apply(Change::CorruptOff(1.0));
        assert!(!n.corrupts());
        assert_eq!(n.counters.corrupted, 2);
    }
}
