//! Generators beyond Poisson: bursty arrivals ([`BurstySpec`]) and
//! multi-turn chat sessions whose prompts share prefixes ([`SessionSpec`]).
//!
//! # Bursty arrivals
//!
//! A two-state Markov-modulated Poisson process (MMPP-2; Fischer and
//! Meier-Hellstern, "The Markov-modulated Poisson process (MMPP) cookbook",
//! 1993): the source alternates between an *on* and an *off* state, staying
//! in each for an exponential time with the given mean, and sends Poisson
//! arrivals at the state's rate meanwhile. With the off rate at zero it is
//! the classic on-off source. The long-run rate is the time-weighted mean of
//! the two rates; counts over windows vary more than a Poisson process's of
//! the same rate (index of dispersion above 1), which is what stresses
//! queues, breakers and admission.
//!
//! # Sessions
//!
//! Sessions start as a Poisson process. Each is a sequence of turns with an
//! exponential think time between sends (open loop: counted from the
//! previous send, not its answer). Every turn carries the session key and a
//! prompt given as block hashes: one of a few shared system prompts, then
//! the session's own blocks, growing each turn (the previous answer and the
//! new message). Turn k's blocks are a prefix of turn k+1's, and sessions
//! with the same system prompt share their first blocks, so session and
//! prefix affinity have something to exploit, as in the Mooncake
//! conversation trace.

use drover_core::route::Op;
use drover_core::{Duration, Instant};
use fastrand::Rng;

use super::node::secs;
use super::seed;
use super::workload::{Arrival, BadWorkload, OpMix, Workload};

/// Most on/off state changes a bursty workload may take per call before
/// generation gives up (validation makes this practically unreachable).
const MAX_SWITCHES_PER_CALL: usize = 4_096;

/// An exponential draw with mean `mean` seconds, by inversion.
fn exp_secs(rng: &mut Rng, mean: f64) -> f64 {
    // 1 − U is in (0, 1], so the logarithm is finite.
    -(1.0 - rng.f64()).ln() * mean
}

fn check_tokens(range: (u32, u32)) -> Result<(), BadWorkload> {
    if range.0 > range.1 {
        return Err(BadWorkload::TokenRange);
    }
    Ok(())
}

fn check_mix(mix: &OpMix) -> Result<(), BadWorkload> {
    if mix.total() == 0 {
        return Err(BadWorkload::EmptyMix);
    }
    Ok(())
}

/// Parameters of a seeded bursty workload: a two-state MMPP (see the
/// [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurstySpec {
    /// Number of calls (default 1,000).
    pub calls: usize,
    /// Arrivals per second in the on state (default 16).
    pub on_rate: f64,
    /// Arrivals per second in the off state (default 1; 0 for an on-off
    /// source).
    pub off_rate: f64,
    /// Mean time in the on state (default 5 s).
    pub mean_on: Duration,
    /// Mean time in the off state (default 20 s).
    pub mean_off: Duration,
    /// Operation mix (default [`OpMix::default`]).
    pub mix: OpMix,
    /// Inclusive range of prompt lengths (default 50 to 1,000 tokens).
    pub prompt_tokens: (u32, u32),
    /// Inclusive range of answer lengths (default 20 to 300 tokens).
    pub output_tokens: (u32, u32),
    /// When the process starts (default [`Instant::ZERO`]).
    pub start: Instant,
}

impl Default for BurstySpec {
    /// Bursts of 16/s for 5 s between 20 s lulls at 1/s: 4/s on average,
    /// like [`WorkloadSpec::default`](super::WorkloadSpec).
    fn default() -> Self {
        BurstySpec {
            calls: 1_000,
            on_rate: 16.0,
            off_rate: 1.0,
            mean_on: Duration::from_secs(5),
            mean_off: Duration::from_secs(20),
            mix: OpMix::default(),
            prompt_tokens: (50, 1_000),
            output_tokens: (20, 300),
            start: Instant::ZERO,
        }
    }
}

impl BurstySpec {
    /// The same spec with `calls` calls.
    pub fn calls(mut self, calls: usize) -> Self {
        self.calls = calls;
        self
    }
    /// The same spec with `rate` arrivals per second for a mean `mean`
    /// in the on state.
    pub fn on(mut self, rate: f64, mean: Duration) -> Self {
        self.on_rate = rate;
        self.mean_on = mean;
        self
    }
    /// The same spec with `rate` arrivals per second for a mean `mean`
    /// in the off state.
    pub fn off(mut self, rate: f64, mean: Duration) -> Self {
        self.off_rate = rate;
        self.mean_off = mean;
        self
    }

    /// The long-run arrival rate per second: the rates weighted by the
    /// mean time spent in each state.
    pub fn mean_rate(&self) -> f64 {
        let (on, off) = (self.mean_on.as_secs_f64(), self.mean_off.as_secs_f64());
        (self.on_rate * on + self.off_rate * off) / (on + off)
    }

    fn check(&self) -> Result<(), BadWorkload> {
        let rate_ok = |r: f64| r.is_finite() && r >= 0.0;
        if !rate_ok(self.on_rate) || !rate_ok(self.off_rate) {
            return Err(BadWorkload::Rate);
        }
        if self.mean_on == Duration::ZERO || self.mean_off == Duration::ZERO {
            return Err(BadWorkload::StateDuration);
        }
        // Fewer than one call per 1,000 on/off cycles is no workload (and
        // would spin through states for a long time).
        let per_cycle =
            self.on_rate * self.mean_on.as_secs_f64() + self.off_rate * self.mean_off.as_secs_f64();
        if per_cycle < 1e-3 {
            return Err(BadWorkload::Rate);
        }
        check_mix(&self.mix)?;
        check_tokens(self.prompt_tokens)?;
        check_tokens(self.output_tokens)
    }

    /// Draws the arrivals, in time order. Equal seeds give equal lists.
    ///
    /// The first state is drawn from the stationary distribution (on with
    /// probability `mean_on / (mean_on + mean_off)`).
    pub fn generate(&self, seed: u64) -> Result<Vec<Arrival>, BadWorkload> {
        self.check()?;
        let mut rng = Rng::with_seed(seed::derive(seed, seed::BURSTY));
        let (mean_on, mean_off) = (self.mean_on.as_secs_f64(), self.mean_off.as_secs_f64());
        let mut on = rng.f64() * (mean_on + mean_off) < mean_on;
        let mut t = 0.0_f64;
        let mut state_end = exp_secs(&mut rng, if on { mean_on } else { mean_off });
        let mut out = Vec::with_capacity(self.calls);
        let mut switches_left = MAX_SWITCHES_PER_CALL
            .saturating_mul(self.calls)
            .saturating_add(MAX_SWITCHES_PER_CALL);
        while out.len() < self.calls {
            let rate = if on { self.on_rate } else { self.off_rate };
            let next = if rate > 0.0 {
                t + exp_secs(&mut rng, 1.0 / rate)
            } else {
                f64::INFINITY
            };
            if next < state_end {
                t = next;
                out.push(self.draw_call(&mut rng, self.start + secs(t)));
                continue;
            }
            // The state ends first. Gaps are memoryless, so the partial gap
            // is dropped and redrawn at the new state's rate.
            switches_left = switches_left.checked_sub(1).ok_or(BadWorkload::Rate)?;
            t = state_end;
            on = !on;
            state_end = t + exp_secs(&mut rng, if on { mean_on } else { mean_off });
        }
        Ok(out)
    }

    fn draw_call(&self, rng: &mut Rng, at: Instant) -> Arrival {
        let op = self.mix.pick(rng);
        let prompt = rng.u32(self.prompt_tokens.0..=self.prompt_tokens.1);
        let output = rng.u32(self.output_tokens.0..=self.output_tokens.1);
        let output = if op == Op::Embed { 0 } else { output };
        Arrival::new(at, op, prompt, output)
    }
}

/// Parameters of seeded multi-turn sessions with shared prompt prefixes
/// (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionSpec {
    /// Number of sessions (default 100).
    pub sessions: usize,
    /// New sessions per second, a Poisson process (default 1).
    pub session_rate: f64,
    /// Inclusive range of turns per session, uniform (default 2 to 8).
    pub turns: (u32, u32),
    /// Mean think time between a session's sends, exponential (default
    /// 10 s).
    pub think_time: Duration,
    /// Distinct system prompts; each session picks one uniformly (default
    /// 4; 0 for none).
    pub system_prompts: u32,
    /// Blocks of each system prompt (default 4).
    pub system_blocks: u32,
    /// Inclusive range of new blocks each turn adds, uniform (default 1 to
    /// 4).
    pub turn_blocks: (u32, u32),
    /// Tokens per block: a prompt has `blocks × block_tokens` tokens
    /// (default 512, as in the Mooncake trace).
    pub block_tokens: u32,
    /// Inclusive range of answer lengths (default 20 to 300 tokens).
    pub output_tokens: (u32, u32),
    /// Operation mix (default [`OpMix::STREAM`]).
    pub mix: OpMix,
    /// When the first gap between session starts begins (default
    /// [`Instant::ZERO`]).
    pub start: Instant,
}

impl Default for SessionSpec {
    fn default() -> Self {
        SessionSpec {
            sessions: 100,
            session_rate: 1.0,
            turns: (2, 8),
            think_time: Duration::from_secs(10),
            system_prompts: 4,
            system_blocks: 4,
            turn_blocks: (1, 4),
            block_tokens: 512,
            output_tokens: (20, 300),
            mix: OpMix::STREAM,
            start: Instant::ZERO,
        }
    }
}

impl SessionSpec {
    /// The same spec with `n` sessions.
    pub fn sessions(mut self, n: usize) -> Self {
        self.sessions = n;
        self
    }
    /// The same spec with `per_sec` new sessions per second.
    pub fn rate(mut self, per_sec: f64) -> Self {
        self.session_rate = per_sec;
        self
    }
    /// The same spec with `low..=high` turns per session.
    pub fn turns(mut self, low: u32, high: u32) -> Self {
        self.turns = (low, high);
        self
    }

    fn check(&self) -> Result<(), BadWorkload> {
        if !(self.session_rate.is_finite() && self.session_rate > 0.0) {
            return Err(BadWorkload::Rate);
        }
        let range_ok = |(lo, hi): (u32, u32)| 1 <= lo && lo <= hi;
        if !range_ok(self.turns) || !range_ok(self.turn_blocks) {
            return Err(BadWorkload::Range);
        }
        check_mix(&self.mix)?;
        check_tokens(self.output_tokens)?;
        // The longest session's blocks, and all of them, must fit the arena.
        let longest =
            u64::from(self.system_blocks) + u64::from(self.turns.1) * u64::from(self.turn_blocks.1);
        let all = longest.saturating_mul(self.sessions as u64);
        if all > u64::from(u32::MAX) {
            return Err(BadWorkload::Arena);
        }
        Ok(())
    }

    /// Draws the sessions: a [`Workload`] in time order whose calls carry
    /// `session: Some(i)` for the `i`-th session started and their prompt
    /// blocks. Equal seeds give equal workloads.
    pub fn generate(&self, seed: u64) -> Result<Workload, BadWorkload> {
        self.check()?;
        let mut rng = Rng::with_seed(seed::derive(seed, seed::SESSIONS));
        let prompts: Vec<Vec<u64>> = (0..self.system_prompts)
            .map(|_| (0..self.system_blocks).map(|_| rng.u64(..)).collect())
            .collect();
        let mean_turns = (f64::from(self.turns.0) + f64::from(self.turns.1)) / 2.0;
        let mut w = Workload::with_capacity((self.sessions as f64 * mean_turns) as usize, 0);
        let mut blocks = Vec::new();
        let mut lens = Vec::new();
        let mut begin = self.start;
        for key in 0..self.sessions as u64 {
            begin = begin + secs(exp_secs(&mut rng, 1.0 / self.session_rate));
            blocks.clear();
            if !prompts.is_empty() {
                blocks.extend_from_slice(&prompts[rng.usize(..prompts.len())]);
            }
            lens.clear();
            for _ in 0..rng.u32(self.turns.0..=self.turns.1) {
                for _ in 0..rng.u32(self.turn_blocks.0..=self.turn_blocks.1) {
                    blocks.push(rng.u64(..));
                }
                lens.push(blocks.len());
            }
            // One stored list per session: each turn's range is a prefix.
            let all = w.add_blocks(&blocks).map_err(|_| BadWorkload::Arena)?;
            let mut at = begin;
            for (turn, &len) in lens.iter().enumerate() {
                if turn > 0 {
                    at = at + secs(exp_secs(&mut rng, self.think_time.as_secs_f64()));
                }
                let op = self.mix.pick(&mut rng);
                let output = rng.u32(self.output_tokens.0..=self.output_tokens.1);
                let output = if op == Op::Embed { 0 } else { output };
                let tokens = u32::try_from(len)
                    .unwrap_or(u32::MAX)
                    .saturating_mul(self.block_tokens);
                let call = Arrival::new(at, op, tokens, output)
                    .in_session(key)
                    .with_blocks(all.prefix(len));
                w.push(call);
            }
        }
        w.sort_by_time();
        Ok(w)
    }
}

#[cfg(test)]
#[path = "generators_tests.rs"]
mod tests;
