//! Virtual time: a [`Clock`] that owns "now" and a queue of future events.
//!
//! This is discrete-event simulation in its plainest form: nothing happens
//! between events, so the clock jumps straight to the next one. Events due at
//! the same instant come out in the order they were scheduled (each gets a
//! sequence number), so a run never depends on how a heap breaks ties.

use drover_core::{Duration, Instant};

/// One scheduled event, keyed by `(at, seq)` packed into one `u128`.
#[derive(Debug)]
struct Entry<E> {
    key: u128,
    event: E,
}

impl<E> Entry<E> {
    fn at(&self) -> Instant {
        Instant::from_nanos((self.key >> 64) as u64)
    }
}

/// Children per node of the heap: a 4-ary heap has half the levels of a
/// binary one and its children share a cache line or two, which matters
/// when the simulator pops millions of events.
const ARITY: usize = 4;

/// Virtual time and the events waiting for it.
///
/// [`schedule`](Clock::schedule) and [`pop`](Clock::pop) cost `O(log n)`
/// (an implicit 4-ary min-heap on `(time, sequence)`). Time never goes
/// backwards: an event scheduled in the past is due now.
#[derive(Debug)]
pub struct Clock<E> {
    now: Instant,
    seq: u64,
    heap: Vec<Entry<E>>,
}

impl<E> Default for Clock<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Clock<E> {
    /// A clock at [`Instant::ZERO`] with nothing scheduled.
    pub fn new() -> Self {
        Clock {
            now: Instant::ZERO,
            seq: 0,
            heap: Vec::new(),
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Schedules `event` at `at`, or now if `at` has passed.
    pub fn schedule(&mut self, at: Instant, event: E) {
        let at = at.max(self.now);
        let key = (u128::from(at.as_nanos()) << 64) | u128::from(self.seq);
        self.seq += 1;
        self.heap.push(Entry { key, event });
        let mut i = self.heap.len() - 1;
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if self.heap[parent].key <= key {
                break;
            }
            self.heap.swap(parent, i);
            i = parent;
        }
    }

    /// Schedules `event` `after` from now.
    pub fn schedule_in(&mut self, after: Duration, event: E) {
        self.schedule(self.now + after, event);
    }

    /// When the next event is due, if any.
    pub fn next_at(&self) -> Option<Instant> {
        self.heap.first().map(Entry::at)
    }

    /// Advances to the next event and returns it with its time.
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        let last = self.heap.pop()?;
        let e = if self.heap.is_empty() {
            last
        } else {
            let top = std::mem::replace(&mut self.heap[0], last);
            self.sift_down(0);
            top
        };
        self.now = e.at();
        Some((e.at(), e.event))
    }

    /// Moves "now" forward to `t` without an event (no-op if `t` has passed).
    pub fn advance_to(&mut self, t: Instant) {
        self.now = self.now.max(t);
    }

    /// Drops the scheduled events `keep` rejects (given each event's time).
    /// The rest keep their order. O(n).
    pub fn retain(&mut self, mut keep: impl FnMut(Instant, &E) -> bool) {
        self.heap.retain(|e| keep(e.at(), &e.event));
        for i in (0..self.heap.len().div_ceil(ARITY)).rev() {
            self.sift_down(i);
        }
    }

    /// Moves entry `i` down to its place.
    fn sift_down(&mut self, mut i: usize) {
        let heap = &mut self.heap[..];
        let n = heap.len();
        let Some(key) = heap.get(i).map(|e| e.key) else {
            return;
        };
        loop {
            let first = ARITY * i + 1;
            if first >= n {
                return;
            }
            let kids = &heap[first..(first + ARITY).min(n)];
            let (mut min, mut min_key) = (0, kids[0].key);
            for (j, k) in kids.iter().enumerate().skip(1) {
                if k.key < min_key {
                    (min, min_key) = (j, k.key);
                }
            }
            if min_key >= key {
                return;
            }
            heap.swap(i, first + min);
            i = first + min;
        }
    }

    /// Events still scheduled.
    pub fn pending(&self) -> usize {
        self.heap.len()
    }

    /// Events scheduled since the clock was made.
    pub fn scheduled_total(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_and_ties_in_schedule_order() {
        let mut c = Clock::new();
        c.schedule(Instant::from_millis(30), "c");
        c.schedule(Instant::from_millis(10), "a1");
        c.schedule(Instant::from_millis(20), "b");
        c.schedule(Instant::from_millis(10), "a2");
        c.schedule(Instant::from_millis(10), "a3");
        assert_eq!(c.next_at(), Some(Instant::from_millis(10)));
        let order: Vec<_> = std::iter::from_fn(|| c.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ["a1", "a2", "a3", "b", "c"]);
        assert_eq!(c.now(), Instant::from_millis(30));
        assert_eq!(c.pending(), 0);
        assert_eq!(c.pop(), None);
        assert_eq!(c.scheduled_total(), 5);
    }

    #[test]
    fn retain_and_advance_keep_the_order() {
        let mut c = Clock::new();
        for (i, ms) in [30, 10, 20, 10, 40].into_iter().enumerate() {
            c.schedule(Instant::from_millis(ms), i);
        }
        c.retain(|at, &e| e != 2 && at != Instant::from_millis(40));
        c.advance_to(Instant::from_millis(5));
        assert_eq!(c.now(), Instant::from_millis(5));
        c.advance_to(Instant::from_millis(1));
        assert_eq!(c.now(), Instant::from_millis(5));
        let order: Vec<_> = std::iter::from_fn(|| c.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, [1, 3, 0]);
    }

    #[test]
    fn matches_a_sort_by_time_then_schedule_order() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut c = Clock::new();
        let mut want = Vec::new();
        let mut n = 0u32;
        for round in 0..50 {
            for _ in 0..rng.usize(0..200) {
                let at = c.now() + Duration::from_micros(rng.u64(0..50));
                c.schedule(at, n);
                want.push((at, n));
                n += 1;
            }
            if round % 7 == 3 {
                c.retain(|_, &e| e % 3 != 0);
                want.retain(|&(_, e)| e % 3 != 0);
            }
            want.sort_by_key(|&(at, e)| (at, e));
            for _ in 0..rng.usize(0..150) {
                let got = c.pop();
                assert_eq!(got, (!want.is_empty()).then(|| want.remove(0)));
            }
        }
        assert_eq!(c.pending(), want.len());
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut c = Clock::new();
        c.schedule(Instant::from_secs(5), 1);
        assert_eq!(c.pop(), Some((Instant::from_secs(5), 1)));
        c.schedule(Instant::from_secs(1), 2);
        c.schedule_in(Duration::from_millis(1), 3);
        assert_eq!(c.pop(), Some((Instant::from_secs(5), 2)));
        assert_eq!(
            c.pop(),
            Some((Instant::from_secs(5) + Duration::from_millis(1), 3))
        );
    }
}
