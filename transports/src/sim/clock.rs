//! Virtual time: a [`Clock`] that owns "now" and a queue of future events.
//!
//! This is discrete-event simulation in its plainest form: nothing happens
//! between events, so the clock jumps straight to the next one. Events due at
//! the same instant come out in the order they were scheduled (each gets a
//! sequence number), so a run never depends on how a heap breaks ties.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use drover_core::{Duration, Instant};

/// One scheduled event. Ordered by `(at, seq)` only, earliest first.
#[derive(Debug)]
struct Entry<E> {
    at: Instant,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest entry.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Virtual time and the events waiting for it.
///
/// [`schedule`](Clock::schedule) and [`pop`](Clock::pop) cost `O(log n)`.
/// Time never goes backwards: an event scheduled in the past is due now.
#[derive(Debug)]
pub struct Clock<E> {
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Entry<E>>,
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
            queue: BinaryHeap::new(),
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Schedules `event` at `at`, or now if `at` has passed.
    pub fn schedule(&mut self, at: Instant, event: E) {
        let at = at.max(self.now);
        self.queue.push(Entry {
            at,
            seq: self.seq,
            event,
        });
        self.seq += 1;
    }

    /// Schedules `event` `after` from now.
    pub fn schedule_in(&mut self, after: Duration, event: E) {
        self.schedule(self.now + after, event);
    }

    /// When the next event is due, if any.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|e| e.at)
    }

    /// Advances to the next event and returns it with its time.
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        let e = self.queue.pop()?;
        self.now = e.at;
        Some((e.at, e.event))
    }

    /// Events still scheduled.
    pub fn pending(&self) -> usize {
        self.queue.len()
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
