//! Simulated model servers: what a [`SimNode`] is told to be, and how it
//! serves attempts.
//!
//! A simulated node has `slots` (requests it generates for at once); further
//! requests wait in its own FIFO queue, as in Ollama's `OLLAMA_NUM_PARALLEL`
//! plus its request queue or vLLM's `max_num_seqs`. A request's service time
//! follows the usual two-phase model of LLM inference:
//!
//! - **prefill** (time to first token): `prefill_base + prompt_tokens ×
//!   prefill_per_token`;
//! - **decode**: `output_tokens / decode_tokens_per_sec`.
//!
//! Each phase is multiplied by its own factor drawn uniformly from
//! `[1 − jitter, 1 + jitter]`. Embeddings have a prefill and no decode;
//! non-streamed chat sends its whole answer at the end.
//!
//! Faults, each decided when an attempt arrives:
//!
//! - **crash window** `[from, until)`: the node is down, connections are
//!   refused, and at `from` every request it holds is dropped (a stream that
//!   had started breaks);
//! - **overload**: when its queue already holds `queue_limit` requests it
//!   answers 429 with an optional Retry-After instead of queueing;
//! - **failure rate**: that fraction of attempts get a 5xx before the first
//!   byte.
//!
//! Refusals, 429s and 5xx come back after `reply_latency`.

use std::collections::VecDeque;
use std::fmt;

use drover_core::node::{Capabilities, NodeId};
use drover_core::route::Op;
use drover_core::{Duration, Instant};
use fastrand::Rng;

/// Answers 429 when the node's own queue is full.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverloadModel {
    /// A request that finds this many already waiting (all slots busy) is
    /// answered 429. Zero: 429 as soon as every slot is busy.
    pub queue_limit: u32,
    /// The Retry-After sent with the 429, if any.
    pub retry_after: Option<Duration>,
}

/// When a node is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashWindow {
    /// The node crashes at this instant, dropping everything it holds.
    pub from: Instant,
    /// It accepts connections again from this instant, empty.
    pub until: Instant,
}

impl CrashWindow {
    /// True when the node is down at `t`.
    pub fn contains(&self, t: Instant) -> bool {
        self.from <= t && t < self.until
    }
}

/// A simulated model server's description. Start from [`SimNode::new`] and
/// adjust with the builder methods or the public fields.
#[derive(Clone, Debug, PartialEq)]
pub struct SimNode {
    /// Unique name (also the router's node name).
    pub name: String,
    /// Requests generated at once; the rest queue FIFO inside the node.
    pub slots: u16,
    /// The `maxConcurrency` the router is told. It may exceed `slots`, which
    /// lets requests queue inside the node (default `2 × slots`).
    pub max_concurrency: u16,
    /// The router's weight for this node (default 1).
    pub weight: u16,
    /// What it serves (default chat, stream and embed).
    pub capabilities: Capabilities,
    /// Fixed part of the time to first token (default 100 ms).
    pub prefill_base: Duration,
    /// Time to first token per prompt token (default 0.5 ms).
    pub prefill_per_token: Duration,
    /// Decode speed of one request (default 40 tokens/s).
    pub decode_tokens_per_sec: f64,
    /// Relative jitter of each phase, in `[0, 1)` (default 0.2: ±20 %).
    pub jitter: f64,
    /// Probability in `[0, 1]` that an attempt fails with a 5xx before its
    /// first byte (default 0).
    pub failure_rate: f64,
    /// 429 behaviour (default none: the queue is unbounded).
    pub overload: Option<OverloadModel>,
    /// When the node is down (default never).
    pub crash: Option<CrashWindow>,
    /// How long a refusal, 429 or 5xx takes to come back (default 2 ms).
    pub reply_latency: Duration,
}

/// Why a [`SimNode`] was refused: the node's name and the field at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadNode {
    /// The node's name.
    pub node: String,
    /// The offending field, and what it must be.
    pub problem: &'static str,
}

impl fmt::Display for BadNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "simulated node {:?}: {}", self.node, self.problem)
    }
}

impl SimNode {
    /// A healthy node with `slots` slots and the defaults listed on each field.
    pub fn new(name: &str, slots: u16) -> Self {
        SimNode {
            name: name.to_owned(),
            slots,
            max_concurrency: slots.saturating_mul(2),
            weight: 1,
            capabilities: Capabilities::default(),
            prefill_base: Duration::from_millis(100),
            prefill_per_token: Duration::from_micros(500),
            decode_tokens_per_sec: 40.0,
            jitter: 0.2,
            failure_rate: 0.0,
            overload: None,
            crash: None,
            reply_latency: Duration::from_millis(2),
        }
    }
    /// Sets the prefill model.
    pub fn prefill(mut self, base: Duration, per_token: Duration) -> Self {
        self.prefill_base = base;
        self.prefill_per_token = per_token;
        self
    }
    /// Sets the decode speed.
    pub fn decode(mut self, tokens_per_sec: f64) -> Self {
        self.decode_tokens_per_sec = tokens_per_sec;
        self
    }
    /// Sets the jitter.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }
    /// Sets the 5xx probability.
    pub fn failure_rate(mut self, p: f64) -> Self {
        self.failure_rate = p;
        self
    }
    /// Answers 429 once `queue_limit` requests wait.
    pub fn overload(mut self, queue_limit: u32, retry_after: Option<Duration>) -> Self {
        self.overload = Some(OverloadModel {
            queue_limit,
            retry_after,
        });
        self
    }
    /// Down from `from` until `until`.
    pub fn crash(mut self, from: Instant, until: Instant) -> Self {
        self.crash = Some(CrashWindow { from, until });
        self
    }
    /// Sets the `maxConcurrency` the router is told.
    pub fn max_concurrency(mut self, n: u16) -> Self {
        self.max_concurrency = n;
        self
    }
    /// Sets the router's weight.
    pub fn weight(mut self, w: u16) -> Self {
        self.weight = w;
        self
    }

    /// Checks every field; names the first bad one.
    pub fn validate(&self) -> Result<(), BadNode> {
        let bad = |problem| {
            Err(BadNode {
                node: self.name.clone(),
                problem,
            })
        };
        if self.slots == 0 {
            return bad("slots must be at least 1");
        }
        if self.max_concurrency == 0 {
            return bad("max_concurrency must be at least 1");
        }
        if self.weight == 0 {
            return bad("weight must be at least 1");
        }
        if !(self.decode_tokens_per_sec.is_finite() && self.decode_tokens_per_sec > 0.0) {
            return bad("decode_tokens_per_sec must be a finite number above 0");
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return bad("jitter must be in [0, 1)");
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return bad("failure_rate must be in [0, 1]");
        }
        if self.crash.is_some_and(|c| c.from >= c.until) {
            return bad("crash window must end after it starts");
        }
        Ok(())
    }
}

/// Index of a simulated attempt in the driver's job list.
pub(crate) type JobId = usize;

/// What a node does with an arriving attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Down: connection refused.
    Refused,
    /// 429, with this Retry-After.
    Overloaded(Option<Duration>),
    /// A 5xx before the first byte.
    Fails,
    /// Accepted into a slot at once: start serving it.
    Started,
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
    pub(crate) errors: u64,
    pub(crate) overloads: u64,
    pub(crate) dropped: u64,
}

/// A simulated node at run time.
#[derive(Debug)]
pub(crate) struct NodeState {
    pub(crate) spec: SimNode,
    pub(crate) id: NodeId,
    rng: Rng,
    serving: Vec<JobId>,
    waiting: VecDeque<JobId>,
    down: bool,
    pub(crate) counters: NodeCounters,
}

impl NodeState {
    pub(crate) fn new(spec: SimNode, id: NodeId, seed: u64) -> Self {
        NodeState {
            spec,
            id,
            rng: Rng::with_seed(seed),
            serving: Vec::new(),
            waiting: VecDeque::new(),
            down: false,
            counters: NodeCounters::default(),
        }
    }

    /// Requests in slots plus requests waiting.
    #[cfg(test)]
    pub(crate) fn holding(&self) -> usize {
        self.serving.len() + self.waiting.len()
    }

    /// Decides what happens to `job`, which arrives at `now`.
    pub(crate) fn arrive(&mut self, job: JobId, now: Instant) -> Arrival {
        self.counters.attempts += 1;
        // One draw per attempt whatever the outcome, so a fault elsewhere
        // does not shift this node's random stream.
        let fails = self.rng.f64() < self.spec.failure_rate;
        if self.down || self.spec.crash.is_some_and(|c| c.contains(now)) {
            self.counters.refused += 1;
            return Arrival::Refused;
        }
        if fails {
            self.counters.errors += 1;
            return Arrival::Fails;
        }
        if self.serving.len() < usize::from(self.spec.slots) {
            self.serving.push(job);
            return Arrival::Started;
        }
        if let Some(o) = self.spec.overload {
            if self.waiting.len() >= o.queue_limit as usize {
                self.counters.overloads += 1;
                return Arrival::Overloaded(o.retry_after);
            }
        }
        self.waiting.push_back(job);
        Arrival::Queued
    }

    /// Removes `job` (finished or cancelled). Returns the queued job that
    /// takes the freed slot, if any: the driver starts serving it.
    pub(crate) fn release(&mut self, job: JobId) -> Option<JobId> {
        if let Some(i) = self.serving.iter().position(|&j| j == job) {
            self.serving.swap_remove(i);
            let next = self.waiting.pop_front()?;
            self.serving.push(next);
            return Some(next);
        }
        if let Some(i) = self.waiting.iter().position(|&j| j == job) {
            self.waiting.remove(i);
        }
        None
    }

    /// Goes down: returns every job it held, in slot then queue order.
    pub(crate) fn crash(&mut self) -> Vec<JobId> {
        self.down = true;
        let mut dropped: Vec<JobId> = self.serving.drain(..).collect();
        dropped.extend(self.waiting.drain(..));
        self.counters.dropped += dropped.len() as u64;
        dropped
    }

    /// Comes back up, empty.
    pub(crate) fn recover(&mut self) {
        self.down = false;
    }

    /// Draws the service time of an attempt that has just got a slot.
    pub(crate) fn service(&mut self, op: Op, prompt_tokens: u32, output_tokens: u32) -> Service {
        let prefill = self.spec.prefill_base
            + self
                .spec
                .prefill_per_token
                .saturating_mul(u64::from(prompt_tokens));
        let prefill = scale(prefill, self.factor());
        let decode_secs = f64::from(output_tokens) / self.spec.decode_tokens_per_sec;
        let decode = scale(secs(decode_secs), self.factor());
        match op {
            Op::Stream => Service {
                first_byte: prefill,
                total: prefill + decode,
            },
            Op::Chat => Service {
                first_byte: prefill + decode,
                total: prefill + decode,
            },
            Op::Embed => Service {
                first_byte: prefill,
                total: prefill,
            },
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

/// Seconds as a [`Duration`], rounded; negative or NaN is zero.
pub(crate) fn secs(s: f64) -> Duration {
    let ns = (s * 1e9).round();
    if ns.is_nan() || ns <= 0.0 {
        Duration::ZERO
    } else if ns >= u64::MAX as f64 {
        Duration::MAX
    } else {
        Duration::from_nanos(ns as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(spec: SimNode) -> NodeState {
        NodeState::new(spec, NodeId(0), 1)
    }

    #[test]
    fn validation_names_the_field() {
        assert!(SimNode::new("a", 1).validate().is_ok());
        let e = SimNode::new("a", 0).validate().unwrap_err();
        assert_eq!(e.problem, "slots must be at least 1");
        assert!(e.to_string().contains("\"a\""));
        for (node, want) in [
            (SimNode::new("a", 1).decode(0.0), "decode_tokens_per_sec"),
            (
                SimNode::new("a", 1).decode(f64::NAN),
                "decode_tokens_per_sec",
            ),
            (SimNode::new("a", 1).jitter(1.0), "jitter"),
            (SimNode::new("a", 1).failure_rate(1.5), "failure_rate"),
            (SimNode::new("a", 1).max_concurrency(0), "max_concurrency"),
            (SimNode::new("a", 1).weight(0), "weight"),
            (
                SimNode::new("a", 1).crash(Instant::from_secs(2), Instant::from_secs(2)),
                "crash window",
            ),
        ] {
            let e = node.validate().unwrap_err();
            assert!(e.problem.starts_with(want), "{want}: {e}");
        }
    }

    #[test]
    fn slots_then_fifo_queue_then_release_promotes_oldest() {
        let mut n = state(SimNode::new("a", 2));
        let t = Instant::ZERO;
        assert_eq!(n.arrive(0, t), Arrival::Started);
        assert_eq!(n.arrive(1, t), Arrival::Started);
        assert_eq!(n.arrive(2, t), Arrival::Queued);
        assert_eq!(n.arrive(3, t), Arrival::Queued);
        assert_eq!(n.holding(), 4);
        // Cancelling a queued job frees no slot.
        assert_eq!(n.release(3), None);
        assert_eq!(n.release(0), Some(2));
        assert_eq!(n.release(1), None);
        assert_eq!(n.release(2), None);
        assert_eq!(n.holding(), 0);
        // Releasing an unknown job is harmless.
        assert_eq!(n.release(99), None);
    }

    #[test]
    fn overload_answers_429_when_queue_is_full() {
        let retry = Some(Duration::from_millis(500));
        let mut n = state(SimNode::new("a", 1).overload(1, retry));
        let t = Instant::ZERO;
        assert_eq!(n.arrive(0, t), Arrival::Started);
        assert_eq!(n.arrive(1, t), Arrival::Queued);
        assert_eq!(n.arrive(2, t), Arrival::Overloaded(retry));
        assert_eq!(n.counters.overloads, 1);
    }

    #[test]
    fn crash_window_refuses_and_crash_drops_everything() {
        let spec = SimNode::new("a", 1).crash(Instant::from_secs(10), Instant::from_secs(20));
        let mut n = state(spec);
        assert_eq!(n.arrive(0, Instant::from_secs(1)), Arrival::Started);
        assert_eq!(n.arrive(1, Instant::from_secs(1)), Arrival::Queued);
        assert_eq!(n.crash(), vec![0, 1]);
        assert_eq!(n.holding(), 0);
        assert_eq!(n.arrive(2, Instant::from_secs(15)), Arrival::Refused);
        n.recover();
        assert_eq!(n.arrive(3, Instant::from_secs(20)), Arrival::Started);
        assert_eq!(n.counters.refused, 1);
        assert_eq!(n.counters.dropped, 2);
    }

    #[test]
    fn failure_rate_one_always_fails_zero_never() {
        let mut bad = state(SimNode::new("a", 4).failure_rate(1.0));
        let mut good = state(SimNode::new("b", 4));
        for j in 0..4 {
            assert_eq!(bad.arrive(j, Instant::ZERO), Arrival::Fails);
            assert_eq!(good.arrive(j, Instant::ZERO), Arrival::Started);
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
            let s = n.service(Op::Stream, 400, 100);
            let fb = s.first_byte.as_millis();
            assert!((450..=550).contains(&fb), "first byte {fb} ms");
            let decode = (s.total - s.first_byte).as_millis();
            assert!((1800..=2200).contains(&decode), "decode {decode} ms");
            let e = n.service(Op::Embed, 400, 100);
            assert_eq!(e.first_byte, e.total);
            assert!(e.total.as_millis() <= 550);
            let c = n.service(Op::Chat, 400, 100);
            assert_eq!(c.first_byte, c.total);
            assert!(c.total.as_millis() >= 2250);
        }
        let mut exact = state(SimNode::new("x", 1).jitter(0.0).decode(10.0));
        let s = exact.service(Op::Stream, 100, 10);
        assert_eq!(s.first_byte, Duration::from_millis(150));
        assert_eq!(s.total, Duration::from_millis(1150));
    }

    #[test]
    fn secs_rounds_and_clamps() {
        assert_eq!(secs(0.0015), Duration::from_micros(1500));
        assert_eq!(secs(-1.0), Duration::ZERO);
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(1e30), Duration::MAX);
    }
}
