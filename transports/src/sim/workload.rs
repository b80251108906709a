//! Workloads: the calls a simulation runs, as a list of [`Arrival`]s, and a
//! seeded generator of Poisson traffic ([`WorkloadSpec`]).
//!
//! Inter-arrival gaps are exponential with mean `1 / rate` (a Poisson
//! process, the standard open-loop model of independent users), drawn by
//! inversion: `gap = −ln(U) / rate`. Operations are drawn from a weighted
//! mix; prompt and output lengths uniformly from inclusive ranges.

use std::fmt;
use std::sync::Arc;

use drover_core::route::Op;
use drover_core::{Duration, Instant};
use fastrand::Rng;

use super::node::secs;
use super::seed;

/// One call of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// When the client sends it.
    pub at: Instant,
    /// Chat, stream or embed.
    pub op: Op,
    /// Prompt length (drives prefill time).
    pub prompt_tokens: u32,
    /// Answer length (drives decode time; ignored for embeddings).
    pub output_tokens: u32,
    /// The client gives up this long after sending, if the call has not
    /// finished by then.
    pub cancel_after: Option<Duration>,
    /// The conversation or session the call belongs to (already hashed):
    /// becomes the router's session-affinity key.
    pub session: Option<u64>,
    /// The prompt's block hashes, in order (as in the Mooncake trace's
    /// `hash_ids`): a node's prefix cache skips the prefill of a cached
    /// leading run, and the first blocks give the router's prefix key.
    pub blocks: Option<Arc<[u64]>>,
}

impl Arrival {
    /// A call of `op` at `at` with the given lengths and a patient client.
    pub fn new(at: Instant, op: Op, prompt_tokens: u32, output_tokens: u32) -> Self {
        Arrival {
            at,
            op,
            prompt_tokens,
            output_tokens,
            cancel_after: None,
            session: None,
            blocks: None,
        }
    }
}

/// Relative weights of the operations in a generated workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpMix {
    /// Weight of streamed chat.
    pub stream: u32,
    /// Weight of non-streamed chat.
    pub chat: u32,
    /// Weight of embeddings.
    pub embed: u32,
}

impl Default for OpMix {
    /// 50 % stream, 30 % chat, 20 % embed.
    fn default() -> Self {
        OpMix {
            stream: 50,
            chat: 30,
            embed: 20,
        }
    }
}

impl OpMix {
    fn total(&self) -> u64 {
        u64::from(self.stream) + u64::from(self.chat) + u64::from(self.embed)
    }
    fn pick(&self, rng: &mut Rng) -> Op {
        let x = rng.u64(0..self.total());
        if x < u64::from(self.stream) {
            Op::Stream
        } else if x < u64::from(self.stream) + u64::from(self.chat) {
            Op::Chat
        } else {
            Op::Embed
        }
    }
}

/// Parameters of a seeded Poisson workload (exponential gaps, weighted
/// operation mix, uniform token lengths).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkloadSpec {
    /// Number of calls (default 1,000).
    pub calls: usize,
    /// Mean arrivals per second (default 4).
    pub rate_per_sec: f64,
    /// Operation mix (default [`OpMix::default`]).
    pub mix: OpMix,
    /// Inclusive range of prompt lengths (default 50 to 1,000 tokens).
    pub prompt_tokens: (u32, u32),
    /// Inclusive range of answer lengths (default 20 to 300 tokens).
    pub output_tokens: (u32, u32),
    /// When the first gap starts (default [`Instant::ZERO`]).
    pub start: Instant,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            calls: 1_000,
            rate_per_sec: 4.0,
            mix: OpMix::default(),
            prompt_tokens: (50, 1_000),
            output_tokens: (20, 300),
            start: Instant::ZERO,
        }
    }
}

/// Why a [`WorkloadSpec`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadWorkload {
    /// `rate_per_sec` is not a finite number above zero.
    Rate,
    /// Every weight of the mix is zero.
    EmptyMix,
    /// A token range has its low end above its high end.
    TokenRange,
}

impl fmt::Display for BadWorkload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadWorkload::Rate => "workload rate must be a finite number above 0",
            BadWorkload::EmptyMix => "workload mix must give some operation a weight",
            BadWorkload::TokenRange => "workload token range must have low <= high",
        })
    }
}

impl std::error::Error for BadWorkload {}

impl WorkloadSpec {
    /// The same spec with `calls` calls.
    pub fn calls(mut self, calls: usize) -> Self {
        self.calls = calls;
        self
    }
    /// The same spec at `per_sec` arrivals per second.
    pub fn rate(mut self, per_sec: f64) -> Self {
        self.rate_per_sec = per_sec;
        self
    }

    /// The expected time from `start` to the last arrival (`calls / rate`).
    pub fn expected_span(&self) -> Duration {
        secs(self.calls as f64 / self.rate_per_sec)
    }

    /// Draws the arrivals, in time order. Equal seeds give equal lists.
    pub fn generate(&self, seed: u64) -> Result<Vec<Arrival>, BadWorkload> {
        if !(self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0) {
            return Err(BadWorkload::Rate);
        }
        if self.mix.total() == 0 {
            return Err(BadWorkload::EmptyMix);
        }
        let ((p_lo, p_hi), (o_lo, o_hi)) = (self.prompt_tokens, self.output_tokens);
        if p_lo > p_hi || o_lo > o_hi {
            return Err(BadWorkload::TokenRange);
        }
        let mut rng = Rng::with_seed(seed::derive(seed, seed::WORKLOAD));
        let mut at = self.start;
        let mut out = Vec::with_capacity(self.calls);
        for _ in 0..self.calls {
            // 1 − U is in (0, 1], so the logarithm is finite.
            let u = 1.0 - rng.f64();
            at = at + secs(-u.ln() / self.rate_per_sec);
            let op = self.mix.pick(&mut rng);
            let prompt_tokens = rng.u32(p_lo..=p_hi);
            let output_tokens = rng.u32(o_lo..=o_hi);
            let output_tokens = if op == Op::Embed { 0 } else { output_tokens };
            out.push(Arrival::new(at, op, prompt_tokens, output_tokens));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_seeded_sorted_and_matches_the_spec() {
        let spec = WorkloadSpec::default().calls(4_000).rate(10.0);
        let a = spec.generate(1).unwrap();
        assert_eq!(a, spec.generate(1).unwrap());
        assert_ne!(a, spec.generate(2).unwrap());
        assert_eq!(a.len(), 4_000);
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        // Mean gap 100 ms: the last arrival lands near 400 s.
        let end = a[a.len() - 1].at.as_nanos() as f64 / 1e9;
        assert!((360.0..440.0).contains(&end), "end {end}");
        let count = |op| a.iter().filter(|x| x.op == op).count();
        let (s, c, e) = (count(Op::Stream), count(Op::Chat), count(Op::Embed));
        assert!((1_800..2_200).contains(&s), "{s}");
        assert!((1_000..1_400).contains(&c), "{c}");
        assert!((600..1_000).contains(&e), "{e}");
        for x in &a {
            assert!((50..=1_000).contains(&x.prompt_tokens));
            if x.op == Op::Embed {
                assert_eq!(x.output_tokens, 0);
            } else {
                assert!((20..=300).contains(&x.output_tokens));
            }
        }
        assert_eq!(spec.expected_span(), Duration::from_secs(400));
    }

    #[test]
    fn bad_specs_are_refused() {
        let s = WorkloadSpec::default();
        assert_eq!(s.rate(0.0).generate(1), Err(BadWorkload::Rate));
        assert_eq!(s.rate(f64::NAN).generate(1), Err(BadWorkload::Rate));
        let mut m = s;
        m.mix = OpMix {
            stream: 0,
            chat: 0,
            embed: 0,
        };
        assert_eq!(m.generate(1), Err(BadWorkload::EmptyMix));
        let mut r = s;
        r.output_tokens = (10, 5);
        assert_eq!(r.generate(1), Err(BadWorkload::TokenRange));
        assert_eq!(s.calls(0).generate(1), Ok(Vec::new()));
    }
}
