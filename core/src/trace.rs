//! A bounded ring of decision events keyed by trace id.
//!
//! The router explains itself after the fact: every decision it takes for a
//! call (candidates filtered, node chosen, failover, hedge, rejection and
//! its reason) can be pushed into a [`TraceRing`] together with the call's
//! [`TraceId`]. An operator can then ask "what did the router decide for
//! call X" ([`TraceRing::for_trace`]) or tail the stream of decisions
//! ([`TraceRing::since`]).
//!
//! This is the flight-recorder pattern (the Linux kernel's ftrace ring
//! buffer, Go's `runtime/trace` flight recorder): a fixed amount of memory
//! holds the most recent `N` events, and the oldest is overwritten when a new
//! one arrives, so recording never blocks, never allocates and never fails.
//! Overwritten events are counted ([`TraceRing::dropped`]) so a reader knows
//! history was lost.
//!
//! Every pushed event gets a sequence number, starting at 1 and increasing
//! by one per push, also for events that are dropped at once because
//! `N = 0`. Sequence numbers survive [`TraceRing::clear`], so a tailer's
//! cursor stays valid, and a gap between two sequence numbers it reads
//! tells it how many events it missed.
//!
//! # Cost
//!
//! Memory is `N` slots of `Option<Record<E>>` plus four words. [`push`]
//! is O(1). The readers ([`iter`], [`for_trace`], [`since`]) are lazy
//! iterators that scan at most the `N` stored records.
//!
//! [`push`]: TraceRing::push
//! [`iter`]: TraceRing::iter
//! [`for_trace`]: TraceRing::for_trace
//! [`since`]: TraceRing::since

use core::fmt;

use crate::time::Instant;

/// Identifies one routed call across all the events it causes.
///
/// Shown as 16 lowercase hex digits (`Display`), the form used in logs,
/// response headers and operator queries; [`TraceId::parse_hex`] reads it
/// back.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TraceId(pub u64);

impl TraceId {
    /// Parse 1 to 16 hexadecimal digits (either case), nothing else: no
    /// `0x` prefix, sign, whitespace or separators. Returns `None` for
    /// anything else, including the empty string.
    pub fn parse_hex(s: &str) -> Option<TraceId> {
        let bytes = s.as_bytes();
        if bytes.is_empty() || bytes.len() > 16 {
            return None;
        }
        let mut v = 0u64;
        for &b in bytes {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return None,
            };
            // At most 16 digits, so the shifts never lose bits.
            v = (v << 4) | u64::from(digit);
        }
        Some(TraceId(v))
    }
}

impl fmt::Display for TraceId {
    /// Exactly 16 lowercase hex digits, zero-padded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({:016x})", self.0)
    }
}

/// One stored event.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Record<E> {
    /// Sequence number: 1 for the first push, then one more per push.
    pub seq: u64,
    /// When the event happened, as the caller reported it.
    pub at: Instant,
    /// The call the event belongs to.
    pub trace: TraceId,
    /// The event itself.
    pub event: E,
}

/// A ring buffer holding the last `N` decision events.
///
/// See the [module docs](self) for semantics. `N = 0` is allowed: every push
/// is counted as dropped and nothing is stored.
#[derive(Clone, Debug)]
pub struct TraceRing<E, const N: usize> {
    /// Slots. Invariant: while not full, `head == 0` and exactly
    /// `buf[..len]` is `Some`; once full, every slot is `Some` and `head`
    /// is the oldest record.
    buf: [Option<Record<E>>; N],
    /// Physical index of the oldest record.
    head: usize,
    /// Number of stored records, `<= N`.
    len: usize,
    /// Sequence number the next push gets.
    next_seq: u64,
    /// Records overwritten (or never stored, when `N = 0`).
    dropped: u64,
}

impl<E, const N: usize> Default for TraceRing<E, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E, const N: usize> TraceRing<E, N> {
    /// An empty ring.
    pub const fn new() -> Self {
        TraceRing {
            buf: [const { None }; N],
            head: 0,
            len: 0,
            next_seq: 1,
            dropped: 0,
        }
    }

    /// Append an event, overwriting the oldest record when the ring is
    /// full. O(1). Returns the sequence number given to the event.
    pub fn push(&mut self, trace: TraceId, at: Instant, event: E) -> u64 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        let record = Record {
            seq,
            at,
            trace,
            event,
        };
        if N == 0 {
            self.dropped = self.dropped.saturating_add(1);
        } else if self.len < N {
            // Not full: head == 0, so the next free slot is `len` (< N).
            self.buf[self.len] = Some(record);
            self.len += 1;
        } else {
            // Full: overwrite the oldest and advance head (N > 0 here).
            self.buf[self.head] = Some(record);
            self.head = if self.head + 1 == N { 0 } else { self.head + 1 };
            self.dropped = self.dropped.saturating_add(1);
        }
        seq
    }

    /// Number of stored records.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// `true` if no record is stored.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of stored records, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Records overwritten so far (with `N = 0`, every push).
    /// [`clear`](Self::clear) does not reset it.
    pub const fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The sequence number the next [`push`](Self::push) will get; every
    /// stored record has a smaller one. A tailer that has seen everything
    /// has a cursor of `next_seq() - 1`.
    pub const fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// All stored records, oldest first (use `.rev()` for newest first).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Record<E>> + '_ {
        // While not full head == 0, so the first part is the whole buffer and
        // the empty tail slots are skipped by `flatten`.
        let (newer, older) = self.buf.split_at(self.head);
        older.iter().chain(newer.iter()).flatten()
    }

    /// The stored records of one call, oldest first. Scans the whole ring.
    pub fn for_trace(&self, trace: TraceId) -> impl DoubleEndedIterator<Item = &Record<E>> + '_ {
        self.iter().filter(move |r| r.trace == trace)
    }

    /// Stored records with a sequence number greater than `seq`, oldest
    /// first: pass the last sequence number you have seen (0 at the start)
    /// to tail the ring.
    pub fn since(&self, seq: u64) -> impl DoubleEndedIterator<Item = &Record<E>> + '_ {
        self.iter().filter(move |r| r.seq > seq)
    }

    /// Remove every stored record. Sequence numbers keep increasing and
    /// [`dropped`](Self::dropped) is kept, so tailers are not confused.
    pub fn clear(&mut self) {
        for slot in self.buf.iter_mut() {
            *slot = None;
        }
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::vec::Vec;

    fn seqs<'a>(it: impl Iterator<Item = &'a Record<u32>>) -> Vec<u64> {
        it.map(|r| r.seq).collect()
    }

    fn events<'a>(it: impl Iterator<Item = &'a Record<u32>>) -> Vec<u32> {
        it.map(|r| r.event).collect()
    }

    #[test]
    fn trace_id_display_and_parse() {
        assert_eq!(format!("{}", TraceId(0xab)), "00000000000000ab");
        assert_eq!(format!("{}", TraceId(u64::MAX)), "ffffffffffffffff");
        assert_eq!(format!("{:?}", TraceId(1)), "TraceId(0000000000000001)");
        assert_eq!(TraceId::parse_hex("ab"), Some(TraceId(0xab)));
        assert_eq!(TraceId::parse_hex("0"), Some(TraceId(0)));
        assert_eq!(TraceId::parse_hex("DeadBeef"), Some(TraceId(0xdead_beef)));
        assert_eq!(
            TraceId::parse_hex("ffffffffffffffff"),
            Some(TraceId(u64::MAX))
        );
        for id in [0, 1, 0x1234_5678_9abc_def0, u64::MAX] {
            let s = format!("{}", TraceId(id));
            assert_eq!(TraceId::parse_hex(&s), Some(TraceId(id)));
        }
        for bad in [
            "",
            "1ffffffffffffffff",
            "0x12",
            "+1",
            "-1",
            " 1",
            "1 ",
            "g",
            "12_34",
            "é",
        ] {
            assert_eq!(TraceId::parse_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fills_then_wraps_in_order() {
        let mut r: TraceRing<u32, 3> = TraceRing::new();
        assert!(r.is_empty());
        assert_eq!(r.capacity(), 3);
        for e in 0..2 {
            r.push(TraceId(1), Instant::from_millis(e.into()), e);
        }
        assert_eq!(events(r.iter()), [0, 1]);
        assert_eq!(r.dropped(), 0);
        for e in 2..8 {
            r.push(TraceId(1), Instant::from_millis(e.into()), e);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.dropped(), 5);
        assert_eq!(events(r.iter()), [5, 6, 7]);
        assert_eq!(events(r.iter().rev()), [7, 6, 5]);
        assert_eq!(seqs(r.iter()), [6, 7, 8]);
        assert_eq!(r.iter().next().map(|x| x.at), Some(Instant::from_millis(5)));
    }

    #[test]
    fn seq_is_monotonic_and_returned() {
        let mut r: TraceRing<u32, 4> = TraceRing::new();
        for i in 1..=10u64 {
            assert_eq!(r.next_seq(), i);
            assert_eq!(r.push(TraceId(i % 3), Instant::ZERO, 0), i);
            let s = seqs(r.iter());
            assert!(s.windows(2).all(|w| w[1] == w[0] + 1), "{s:?}");
            assert_eq!(s.last(), Some(&i));
        }
        assert_eq!(r.dropped() + r.len() as u64, 10);
    }

    #[test]
    fn for_trace_after_wrap() {
        let mut r: TraceRing<u32, 4> = TraceRing::new();
        // Traces interleave: a, b, a, a, b, a  (6 pushes, 2 overwritten).
        let a = TraceId(0xa);
        let b = TraceId(0xb);
        for (e, t) in [a, b, a, a, b, a].into_iter().enumerate() {
            r.push(t, Instant::from_secs(e as u64), e as u32);
        }
        assert_eq!(r.dropped(), 2);
        assert_eq!(events(r.for_trace(a)), [2, 3, 5]);
        assert_eq!(events(r.for_trace(b)), [4]);
        assert_eq!(r.for_trace(TraceId(0xc)).count(), 0);
    }

    #[test]
    fn since_tails() {
        let mut r: TraceRing<u32, 4> = TraceRing::new();
        assert_eq!(r.since(0).count(), 0);
        for e in 0..3 {
            r.push(TraceId(7), Instant::ZERO, e);
        }
        assert_eq!(seqs(r.since(0)), [1, 2, 3]);
        assert_eq!(seqs(r.since(2)), [3]);
        assert_eq!(r.since(3).count(), 0);
        assert_eq!(r.since(u64::MAX).count(), 0);
        // A tailer at cursor 3 falls behind by 5; the ring kept the last 4.
        for e in 3..8 {
            r.push(TraceId(7), Instant::ZERO, e);
        }
        assert_eq!(seqs(r.since(3)), [5, 6, 7, 8]); // the gap 3→5 shows one lost
        assert_eq!(seqs(r.since(6)), [7, 8]);
    }

    #[test]
    fn zero_capacity_records_nothing() {
        let mut r: TraceRing<u32, 0> = TraceRing::new();
        assert_eq!(r.capacity(), 0);
        assert_eq!(r.push(TraceId(1), Instant::ZERO, 1), 1);
        assert_eq!(r.push(TraceId(1), Instant::ZERO, 2), 2);
        assert_eq!(r.len(), 0);
        assert!(r.is_empty());
        assert_eq!(r.dropped(), 2);
        assert_eq!(r.iter().count(), 0);
        assert_eq!(r.for_trace(TraceId(1)).count(), 0);
        assert_eq!(r.since(0).count(), 0);
        r.clear();
        assert_eq!(r.next_seq(), 3);
    }

    #[test]
    fn capacity_one_keeps_the_newest() {
        let mut r: TraceRing<u32, 1> = TraceRing::default();
        r.push(TraceId(1), Instant::ZERO, 10);
        assert_eq!(events(r.iter()), [10]);
        assert_eq!(r.dropped(), 0);
        r.push(TraceId(2), Instant::ZERO, 20);
        r.push(TraceId(3), Instant::ZERO, 30);
        assert_eq!(events(r.iter()), [30]);
        assert_eq!(seqs(r.iter()), [3]);
        assert_eq!(r.len(), 1);
        assert_eq!(r.dropped(), 2);
        assert_eq!(r.for_trace(TraceId(2)).count(), 0);
        assert_eq!(events(r.for_trace(TraceId(3))), [30]);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn record_serde_round_trip() {
        let rec = Record {
            seq: 3,
            at: Instant::from_millis(12),
            trace: TraceId(0xfeed),
            event: 7u32,
        };
        let mut buf = [0u8; 64];
        let bytes = postcard::to_slice(&rec, &mut buf).unwrap();
        let back: Record<u32> = postcard::from_bytes(bytes).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn clear_keeps_seq_and_dropped() {
        let mut r: TraceRing<u32, 2> = TraceRing::new();
        for e in 0..5 {
            r.push(TraceId(1), Instant::ZERO, e);
        }
        r.clear();
        assert!(r.is_empty());
        assert_eq!(r.iter().count(), 0);
        assert_eq!(r.dropped(), 3);
        assert_eq!(r.push(TraceId(1), Instant::ZERO, 9), 6);
        assert_eq!(seqs(r.iter()), [6]);
        r.push(TraceId(1), Instant::ZERO, 10);
        r.push(TraceId(1), Instant::ZERO, 11);
        assert_eq!(events(r.iter()), [10, 11]);
    }
}
