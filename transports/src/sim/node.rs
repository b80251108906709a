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
//! With a **prefix cache** ([`PrefixCacheModel`]) the node keeps an LRU of
//! prompt block hashes ([`PrefixCache`](super::PrefixCache)); the leading run of a prompt's
//! blocks found there is not prefilled again (`block_tokens` tokens each).
//!
//! Static faults, each decided when an attempt arrives:
//!
//! - **crash window** `[from, until)`: the node is down, connections are
//!   refused, and at `from` every request it holds is dropped (a stream that
//!   had started breaks);
//! - **overload**: when its queue already holds `queue_limit` requests it
//!   answers 429 with an optional Retry-After instead of queueing;
//! - **failure rate**: that fraction of attempts get a 5xx before the first
//!   byte.
//!
//! Scheduled faults ([`Fault`](super::Fault)) change the same state at run
//! time. Refusals, 429s and 5xx come back after `reply_latency`.
//!
//! With `heartbeat: Some(interval)` the node reports its
//! [`Telemetry`](drover_core::health::Telemetry)
//! (slots, free slots, queue) to every gateway each `interval`, except while
//! it is down or its heartbeats are stale-faulted; without, it never does
//! and routers judge it passively.

use std::fmt;

use drover_core::node::Capabilities;
use drover_core::{Duration, Instant};

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

/// A node's prefix cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixCacheModel {
    /// Blocks it holds (LRU beyond that).
    pub blocks: usize,
    /// Prompt tokens per block: a cached block saves this much prefill.
    pub block_tokens: u32,
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
    /// Heartbeat interval; `None` (the default): no heartbeats, the node is
    /// judged passively.
    pub heartbeat: Option<Duration>,
    /// Prefix cache (default none: every prompt is prefilled in full).
    pub prefix_cache: Option<PrefixCacheModel>,
    /// Service time of an embedding call (jittered, slowed like the rest);
    /// `None` (the default): the prompt's prefill time.
    pub embed: Option<Duration>,
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
            heartbeat: None,
            prefix_cache: None,
            embed: None,
        }
    }
    /// Sends heartbeats every `interval`.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = Some(interval);
        self
    }
    /// Keeps a prefix cache of `blocks` blocks of `block_tokens` tokens.
    pub fn prefix_cache(mut self, blocks: usize, block_tokens: u32) -> Self {
        self.prefix_cache = Some(PrefixCacheModel {
            blocks,
            block_tokens,
        });
        self
    }
    /// Sets the prefill model.
    pub fn prefill(mut self, base: Duration, per_token: Duration) -> Self {
        self.prefill_base = base;
        self.prefill_per_token = per_token;
        self
    }
    /// Sets a fixed embedding service time (instead of the prefill model).
    pub fn embed_time(mut self, d: Duration) -> Self {
        self.embed = Some(d);
        self
    }

    /// Decode speed of one request, in tokens per second.
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
        if self.heartbeat == Some(Duration::ZERO) {
            return bad("heartbeat interval must be longer than zero");
        }
        if self.prefix_cache.is_some_and(|p| p.block_tokens == 0) {
            return bad("prefix cache block_tokens must be at least 1");
        }
        Ok(())
    }
}

/// Seconds as a [`Duration`], rounded half up to the nanosecond; negative
/// or NaN is zero. (`+ 0.5` and truncation rather than `f64::round`, which
/// is a library call on the simulator's hot path.)
pub(crate) fn secs(s: f64) -> Duration {
    let ns = s * 1e9;
    if ns.is_nan() || ns <= 0.0 {
        Duration::ZERO
    } else if ns >= u64::MAX as f64 {
        Duration::MAX
    } else {
        Duration::from_nanos((ns + 0.5) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (SimNode::new("a", 1).heartbeat(Duration::ZERO), "heartbeat"),
            (SimNode::new("a", 1).prefix_cache(4, 0), "prefix cache"),
        ] {
            let e = node.validate().unwrap_err();
            assert!(e.problem.starts_with(want), "{want}: {e}");
        }
    }

    #[test]
    fn secs_rounds_and_clamps() {
        assert_eq!(secs(0.0015), Duration::from_micros(1500));
        assert_eq!(secs(1.4e-9), Duration::from_nanos(1));
        assert_eq!(secs(1.6e-9), Duration::from_nanos(2));
        assert_eq!(secs(0.4e-9), Duration::ZERO);
        assert_eq!(secs(-1.0), Duration::ZERO);
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(1e30), Duration::MAX);
    }
}
