//! Workloads: the calls a simulation runs, as a list of [`Arrival`]s (or a
//! [`Workload`]: arrivals plus the block hashes of their prompts), and a
//! seeded generator of Poisson traffic ([`WorkloadSpec`]).
//!
//! Inter-arrival gaps are exponential with mean `1 / rate` (a Poisson
//! process, the standard open-loop model of independent users), drawn by
//! inversion: `gap = −ln(U) / rate`. Operations are drawn from a weighted
//! mix; prompt and output lengths uniformly from inclusive ranges.
//!
//! # Block hashes
//!
//! A prompt can carry the hashes of its fixed-size token blocks (as the
//! Mooncake trace's `hash_ids`): equal leading hashes mean a shared prefix,
//! which prefix affinity and a simulated prefix cache exploit. The hashes
//! live in one arena owned by the [`Workload`]; an [`Arrival`] holds only a
//! [`Blocks`] range into it (8 bytes), so `Arrival` stays `Copy`, a
//! million-call run makes no per-call allocation and no reference counting,
//! and the turns of a generated session share one stored list (turn k's
//! range is a prefix of turn k+1's).

use std::fmt;
use std::ops::Deref;

use drover_core::route::Op;
use drover_core::{Duration, Instant};
use fastrand::Rng;

use super::node::secs;
use super::seed;

/// One call of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// The conversation this call belongs to, for session affinity.
    pub session: Option<u64>,
    /// The prompt's block hashes, a range of its [`Workload`]'s arena
    /// (read them with [`Workload::blocks`]); empty when unknown.
    pub prefix_blocks: Blocks,
}

impl Arrival {
    /// A call of `op` at `at` with the given lengths, a patient client, no
    /// session and no block hashes.
    pub fn new(at: Instant, op: Op, prompt_tokens: u32, output_tokens: u32) -> Self {
        Arrival {
            at,
            op,
            prompt_tokens,
            output_tokens,
            cancel_after: None,
            session: None,
            prefix_blocks: Blocks::NONE,
        }
    }
    /// The same call in session `key`.
    pub fn in_session(mut self, key: u64) -> Self {
        self.session = Some(key);
        self
    }
    /// The same call with the prompt blocks `blocks` (from
    /// [`Workload::add_blocks`] of the workload it goes into).
    pub fn with_blocks(mut self, blocks: Blocks) -> Self {
        self.prefix_blocks = blocks;
        self
    }
}

/// Where a prompt's block hashes sit in its [`Workload`]'s arena: a start
/// and a length, `Copy` and 8 bytes. Meaningful only with the workload that
/// made it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Blocks {
    start: u32,
    len: u32,
}

impl Blocks {
    /// No blocks.
    pub const NONE: Blocks = Blocks { start: 0, len: 0 };

    /// How many blocks.
    pub fn len(self) -> usize {
        self.len as usize
    }
    /// Whether there are none.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }
    /// The first `n` blocks (all of them if there are fewer).
    pub fn prefix(self, n: usize) -> Blocks {
        Blocks {
            start: self.start,
            len: self.len.min(u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }
}

/// A [`Workload`]'s arena already holds `u32::MAX` block hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaFull;

impl fmt::Display for ArenaFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a workload holds at most {} block hashes", u32::MAX)
    }
}

impl std::error::Error for ArenaFull {}

/// The calls of a simulation with the block hashes of their prompts: a list
/// of [`Arrival`]s and one arena of hashes their [`Blocks`] point into.
///
/// It dereferences to `[Arrival]`, so `driver.run(&workload)` works as with
/// a plain list; [`Workload::blocks`] reads a call's hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    arrivals: Vec<Arrival>,
    hashes: Vec<u64>,
}

impl Workload {
    /// An empty workload.
    pub fn new() -> Self {
        Workload::default()
    }
    /// An empty workload with room for `calls` arrivals and `hashes` block
    /// hashes.
    pub fn with_capacity(calls: usize, hashes: usize) -> Self {
        Workload {
            arrivals: Vec::with_capacity(calls),
            hashes: Vec::with_capacity(hashes),
        }
    }
    /// Appends a call. Its [`Blocks`] must come from this workload.
    pub fn push(&mut self, arrival: Arrival) {
        self.arrivals.push(arrival);
    }
    /// Stores `hashes` in the arena and returns their range.
    pub fn add_blocks(&mut self, hashes: &[u64]) -> Result<Blocks, ArenaFull> {
        let start = self.hashes.len();
        let end = start.checked_add(hashes.len()).ok_or(ArenaFull)?;
        let (start, len) = match (u32::try_from(start), u32::try_from(hashes.len())) {
            (Ok(s), Ok(l)) if u32::try_from(end).is_ok() => (s, l),
            _ => return Err(ArenaFull),
        };
        self.hashes.extend_from_slice(hashes);
        Ok(Blocks { start, len })
    }
    /// Appends the calls of `other`, their block ranges moved to where its
    /// hashes land in this arena (a range `other` could not read becomes
    /// empty). Sessions keep their keys: generated session keys restart at 0
    /// in every workload. Call [`Workload::sort_by_time`] to interleave.
    pub fn append(&mut self, other: &Workload) -> Result<(), ArenaFull> {
        self.extend_from(Calls::from(other))
    }
    /// The hashes of `blocks` (empty if `blocks` is not from this workload).
    pub fn blocks(&self, blocks: Blocks) -> &[u64] {
        let start = blocks.start as usize;
        self.hashes
            .get(start..start + blocks.len as usize)
            .unwrap_or(&[])
    }
    /// The calls, in the order they were pushed.
    pub fn arrivals(&self) -> &[Arrival] {
        &self.arrivals
    }
    /// The calls, to adjust (for example their `cancel_after`).
    pub fn arrivals_mut(&mut self) -> &mut [Arrival] {
        &mut self.arrivals
    }
    /// Each call with its prompt's block hashes.
    pub fn iter(&self) -> impl Iterator<Item = (&Arrival, &[u64])> {
        self.arrivals
            .iter()
            .map(|a| (a, self.blocks(a.prefix_blocks)))
    }
    /// How many block hashes the arena holds (shared ranges count once).
    pub fn hash_count(&self) -> usize {
        self.hashes.len()
    }
    /// Keeps the first `calls` calls (their blocks stay in the arena).
    pub fn truncate(&mut self, calls: usize) {
        self.arrivals.truncate(calls);
    }

    /// Orders the calls by send time; calls sent at the same instant keep
    /// their order.
    pub fn sort_by_time(&mut self) {
        self.arrivals.sort_by_key(|a| a.at);
    }
    /// The calls and the arena.
    pub fn into_parts(self) -> (Vec<Arrival>, Vec<u64>) {
        (self.arrivals, self.hashes)
    }
}

/// A borrowed view of calls and the arena their [`Blocks`] point into:
/// what [`Driver::run`](super::Driver::run) and
/// [`Driver::load`](super::Driver::load) take, so they accept a
/// [`Workload`] (block hashes kept) as well as a plain slice of arrivals
/// (which must then carry no blocks).
#[derive(Clone, Copy, Debug)]
pub struct Calls<'a> {
    arrivals: &'a [Arrival],
    hashes: &'a [u64],
}

impl<'a> Calls<'a> {
    /// The arrivals.
    pub fn arrivals(&self) -> &'a [Arrival] {
        self.arrivals
    }
}

impl<'a> From<&'a [Arrival]> for Calls<'a> {
    fn from(arrivals: &'a [Arrival]) -> Self {
        Calls {
            arrivals,
            hashes: &[],
        }
    }
}

impl<'a> From<&'a Vec<Arrival>> for Calls<'a> {
    fn from(arrivals: &'a Vec<Arrival>) -> Self {
        Calls {
            arrivals,
            hashes: &[],
        }
    }
}

impl<'a, const N: usize> From<&'a [Arrival; N]> for Calls<'a> {
    fn from(arrivals: &'a [Arrival; N]) -> Self {
        Calls {
            arrivals,
            hashes: &[],
        }
    }
}

impl<'a> From<&'a Workload> for Calls<'a> {
    fn from(w: &'a Workload) -> Self {
        Calls {
            arrivals: &w.arrivals,
            hashes: &w.hashes,
        }
    }
}

impl Workload {
    /// An owned copy of borrowed calls (their block ranges stay valid).
    pub fn from_calls(calls: Calls<'_>) -> Self {
        Workload {
            arrivals: calls.arrivals.to_vec(),
            hashes: calls.hashes.to_vec(),
        }
    }

    /// Appends borrowed calls, moving their block ranges to this arena.
    pub fn extend_from(&mut self, calls: Calls<'_>) -> Result<(), ArenaFull> {
        let base = self.add_blocks(calls.hashes)?;
        self.arrivals.extend(calls.arrivals.iter().map(|a| {
            let b = a.prefix_blocks;
            // In range, so `base.start + b.start` fits (add_blocks checked it).
            let moved = if !b.is_empty() && b.start as usize + b.len() <= calls.hashes.len() {
                Blocks {
                    start: base.start + b.start,
                    len: b.len,
                }
            } else {
                Blocks::NONE
            };
            a.with_blocks(moved)
        }));
        Ok(())
    }
}

impl Deref for Workload {
    type Target = [Arrival];
    fn deref(&self) -> &[Arrival] {
        &self.arrivals
    }
}

impl From<Vec<Arrival>> for Workload {
    /// Calls without block hashes (their [`Blocks`] should be empty).
    fn from(arrivals: Vec<Arrival>) -> Self {
        Workload {
            arrivals,
            hashes: Vec::new(),
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
    /// Streamed chat only (the mix of a replayed trace unless told).
    pub const STREAM: OpMix = OpMix {
        stream: 1,
        chat: 0,
        embed: 0,
    };

    pub(crate) fn total(&self) -> u64 {
        u64::from(self.stream) + u64::from(self.chat) + u64::from(self.embed)
    }
    pub(crate) fn pick(&self, rng: &mut Rng) -> Op {
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
    /// A range of turns or blocks has its low end above its high end, or
    /// sessions would have no turn.
    Range,
    /// A mean state duration of a bursty workload is zero.
    StateDuration,
    /// The block hashes would not fit a workload's arena.
    Arena,
}

impl fmt::Display for BadWorkload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadWorkload::Rate => "workload rate must be a finite number above 0",
            BadWorkload::EmptyMix => "workload mix must give some operation a weight",
            BadWorkload::TokenRange => "workload token range must have low <= high",
            BadWorkload::Range => "workload turn and block ranges must have 1 <= low <= high",
            BadWorkload::StateDuration => "bursty workload state durations must be above 0",
            BadWorkload::Arena => "workload has more block hashes than an arena holds",
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
    fn workloads_store_block_ranges_in_one_arena() {
        let mut w = Workload::new();
        let a = w.add_blocks(&[1, 2, 3]).unwrap();
        let b = w.add_blocks(&[]).unwrap();
        let c = w.add_blocks(&[9]).unwrap();
        assert_eq!((a.len(), b.is_empty(), c.len()), (3, true, 1));
        assert_eq!(w.blocks(a), [1, 2, 3]);
        assert_eq!(w.blocks(a.prefix(2)), [1, 2]);
        assert_eq!(w.blocks(a.prefix(10)), [1, 2, 3]);
        assert_eq!(w.blocks(c), [9]);
        assert_eq!(w.blocks(Blocks::NONE), [] as [u64; 0]);
        // A range from a bigger workload reads as empty, without a panic.
        let mut big = Workload::new();
        let far = big.add_blocks(&[0; 10]).unwrap();
        assert_eq!(w.blocks(far), [] as [u64; 0]);
        assert_eq!(w.hash_count(), 4);

        let t = Instant::from_secs;
        w.push(
            Arrival::new(t(2), Op::Chat, 1, 1)
                .with_blocks(a)
                .in_session(7),
        );
        w.push(Arrival::new(t(1), Op::Stream, 2, 2).with_blocks(c));
        w.push(Arrival::new(t(1), Op::Embed, 3, 0));
        w.sort_by_time();
        // Sorted by time; equal times keep their order.
        let got: Vec<_> = w
            .iter()
            .map(|(x, b)| (x.prompt_tokens, x.session, b))
            .collect();
        let want: [(u32, Option<u64>, &[u64]); 3] =
            [(2, None, &[9]), (3, None, &[]), (1, Some(7), &[1, 2, 3])];
        assert_eq!(got, want);
        // It reads as a slice of arrivals, as `Driver::run` takes.
        let slice: &[Arrival] = &w;
        assert_eq!(slice.len(), 3);
        w.arrivals_mut()[0].cancel_after = Some(Duration::from_secs(1));
        assert_eq!(w.arrivals()[0].cancel_after, Some(Duration::from_secs(1)));
        let (calls, hashes) = w.into_parts();
        assert_eq!((calls.len(), hashes), (3, vec![1, 2, 3, 9]));
        let plain = Workload::from(vec![Arrival::new(t(0), Op::Chat, 1, 1)]);
        assert_eq!((plain.len(), plain.hash_count()), (1, 0));
    }

    #[test]
    fn appended_workloads_keep_their_blocks() {
        let t = Instant::from_secs;
        let mut a = Workload::new();
        let x = a.add_blocks(&[1, 2]).unwrap();
        a.push(Arrival::new(t(5), Op::Stream, 1, 1).with_blocks(x));
        let mut b = Workload::new();
        let y = b.add_blocks(&[7, 8, 9]).unwrap();
        b.push(Arrival::new(t(1), Op::Stream, 2, 1).with_blocks(y.prefix(2)));
        b.push(Arrival::new(t(3), Op::Chat, 3, 1));
        // A range `b` cannot read stays unreadable.
        b.push(Arrival::new(t(4), Op::Chat, 4, 1).with_blocks(Blocks { start: 2, len: 5 }));
        let far = Blocks {
            start: u32::MAX,
            len: 1,
        };
        b.push(Arrival::new(t(6), Op::Chat, 6, 1).with_blocks(far));
        a.append(&b).unwrap();
        a.append(&Workload::new()).unwrap();
        a.sort_by_time();
        let got: Vec<_> = a
            .iter()
            .map(|(c, h)| (c.prompt_tokens, h.to_vec()))
            .collect();
        let want = [
            (2, vec![7, 8]),
            (3, vec![]),
            (4, vec![]),
            (1, vec![1, 2]),
            (6, vec![]),
        ];
        assert_eq!(got, want);
        assert_eq!(a.hash_count(), 5);
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
