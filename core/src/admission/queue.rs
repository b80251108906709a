//! The bounded wait queue: which waiting call is considered next, and what
//! each ticket resolved to.
//!
//! `Q` entries in a fixed array, addressed by generational [`Ticket`]s. Each
//! priority has an intrusive doubly linked list of its waiting entries in
//! arrival order, so "highest priority first, then oldest" is a walk of the
//! interactive list followed by the background list, and unlinking an entry
//! (grant, cancel, expiry) is O(1). Free entries form a singly linked free
//! list through the same link fields.
//!
//! An entry lives through `Waiting → Granted | Expired → (taken) Free`, or is
//! freed directly by cancel. Granted and expired entries keep their slot until
//! their caller has taken the outcome, so a caller always learns what
//! happened to its call exactly once.

use super::permits::PermitId;
use super::types::{Pool, Priority};
use crate::time::Instant;

/// Marks "no entry" in the links.
const NONE: u32 = u32::MAX;

/// Identifies one queue entry: a slot and the generation it was filled at.
/// A ticket whose entry has been taken or cancelled is stale and resolves to
/// [`TicketStatus::Unknown`](super::TicketStatus::Unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket {
    /// Slot in the queue.
    pub index: u32,
    /// Generation of the slot when the call was enqueued.
    pub generation: u32,
}

/// Where a queued call stands, without consuming its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueuedState {
    /// Still waiting for a permit.
    Waiting,
    /// A permit was granted and is parked in the entry until taken.
    Granted,
    /// The wait deadline passed; the outcome has not been taken yet.
    Expired,
}

/// A copy of one queue entry, for the router (what does the granted call
/// need?) and for status pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queued<T> {
    /// The router's payload, as given to `enqueue`.
    pub payload: T,
    /// The class pool the call needs.
    pub pool: Pool,
    /// The call's priority.
    pub priority: Priority,
    /// When the call was enqueued.
    pub enqueued_at: Instant,
    /// When the call stops waiting.
    pub deadline: Instant,
    /// Arrival order: strictly increasing across all enqueues of one admission.
    pub seq: u64,
    /// Where the call stands.
    pub state: QueuedState,
}

/// The state of one slot; links live inside the variants that use them.
#[derive(Clone, Copy, Debug)]
enum State<T> {
    Free { next: u32 },
    Waiting { payload: T, prev: u32, next: u32 },
    Granted { payload: T, permit: PermitId },
    Expired { payload: T },
}

/// One queue slot. The metadata fields are meaningless while the slot is free.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry<T> {
    enqueued_at: Instant,
    deadline: Instant,
    seq: u64,
    generation: u32,
    pool: Pool,
    priority: Priority,
    state: State<T>,
}

impl<T: Copy> Entry<T> {
    const FREE: Entry<T> = Entry {
        enqueued_at: Instant::ZERO,
        deadline: Instant::ZERO,
        seq: 0,
        generation: 0,
        pool: Pool::Chat,
        priority: Priority::Interactive,
        state: State::Free { next: NONE },
    };

    fn view(&self) -> Option<Queued<T>> {
        let (payload, state) = match self.state {
            State::Free { .. } => return None,
            State::Waiting { payload, .. } => (payload, QueuedState::Waiting),
            State::Granted { payload, .. } => (payload, QueuedState::Granted),
            State::Expired { payload } => (payload, QueuedState::Expired),
        };
        Some(Queued {
            payload,
            pool: self.pool,
            priority: self.priority,
            enqueued_at: self.enqueued_at,
            deadline: self.deadline,
            seq: self.seq,
            state,
        })
    }
}

/// What [`WaitQueue::take`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    Waiting(Instant),
    Granted(PermitId, Pool),
    Expired,
    Unknown,
}

/// Fixed-capacity wait queue with per-priority FIFO lists.
pub(crate) struct WaitQueue<T, const Q: usize> {
    entries: [Entry<T>; Q],
    free_head: u32,
    /// Entries `fresh..Q` have never been used and are not on the free list.
    fresh: u32,
    /// Entries not free (waiting, granted or expired).
    occupied: u32,
    /// Oldest and newest waiting entry per priority.
    head: [u32; 2],
    tail: [u32; 2],
    /// Waiting entries per `[pool][priority]`.
    waiting: [[u32; 2]; 4],
    next_seq: u64,
}

impl<T: Copy, const Q: usize> WaitQueue<T, Q> {
    /// An empty queue. `Q` must fit in a `u32` below [`NONE`] (checked at compile time).
    pub(crate) const fn new() -> Self {
        const { assert!(Q < NONE as usize, "queue capacity must be below u32::MAX") };
        WaitQueue {
            entries: [Entry::FREE; Q],
            free_head: NONE,
            fresh: 0,
            occupied: 0,
            head: [NONE; 2],
            tail: [NONE; 2],
            waiting: [[0; 2]; 4],
            next_seq: 0,
        }
    }

    /// Entries still waiting.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.iter().flatten().map(|&n| n as usize).sum()
    }

    /// Waiting entries of one priority.
    pub(crate) fn waiting_with(&self, priority: Priority) -> usize {
        self.waiting
            .iter()
            .map(|row| row[priority.index()] as usize)
            .sum()
    }

    /// Waiting entries of one pool and priority.
    pub(crate) const fn waiting_for(&self, pool: Pool, priority: Priority) -> u32 {
        self.waiting[pool.index()][priority.index()]
    }

    /// Waiting entries of `pool` that an immediate acquire at `priority` must
    /// not overtake: those of equal or higher priority.
    pub(crate) const fn ahead_of(&self, pool: Pool, priority: Priority) -> u32 {
        let row = self.waiting[pool.index()];
        match priority {
            Priority::Interactive => row[0],
            Priority::Background => row[0] + row[1],
        }
    }

    /// Occupied entries (waiting, granted or expired, not yet taken).
    pub(crate) const fn occupied(&self) -> usize {
        self.occupied as usize
    }

    /// Fill a free entry and append it to its priority's list. `None` if full.
    pub(crate) fn push(
        &mut self,
        payload: T,
        pool: Pool,
        priority: Priority,
        now: Instant,
        deadline: Instant,
    ) -> Option<Ticket> {
        let index = if self.free_head != NONE {
            let index = self.free_head;
            let State::Free { next } = self.entries[index as usize].state else {
                // The free list only links free entries; refuse rather than overwrite.
                return None;
            };
            self.free_head = next;
            index
        } else if (self.fresh as usize) < Q {
            let index = self.fresh;
            self.fresh += 1;
            index
        } else {
            return None;
        };
        let p = priority.index();
        let tail = self.tail[p];
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = &mut self.entries[index as usize];
        entry.enqueued_at = now;
        entry.deadline = deadline;
        entry.seq = seq;
        entry.pool = pool;
        entry.priority = priority;
        entry.state = State::Waiting {
            payload,
            prev: tail,
            next: NONE,
        };
        let generation = entry.generation;
        if tail == NONE {
            self.head[p] = index;
        } else {
            self.set_next(tail, index);
        }
        self.tail[p] = index;
        self.waiting[pool.index()][p] += 1;
        self.occupied += 1;
        Some(Ticket { index, generation })
    }

    /// The slot of a live (not free) ticket.
    fn find(&self, ticket: Ticket) -> Option<usize> {
        let i = ticket.index as usize;
        let entry = self.entries.get(i)?;
        let live =
            entry.generation == ticket.generation && !matches!(entry.state, State::Free { .. });
        live.then_some(i)
    }

    /// A copy of a live entry.
    pub(crate) fn peek(&self, ticket: Ticket) -> Option<Queued<T>> {
        self.entries[self.find(ticket)?].view()
    }

    fn set_next(&mut self, i: u32, to: u32) {
        if let State::Waiting { next, .. } = &mut self.entries[i as usize].state {
            *next = to;
        }
    }

    fn set_prev(&mut self, i: u32, to: u32) {
        if let State::Waiting { prev, .. } = &mut self.entries[i as usize].state {
            *prev = to;
        }
    }

    /// Remove a waiting entry from its list and counters; returns its payload.
    /// The caller sets the new state. `None` if the entry is not waiting.
    fn unlink(&mut self, i: usize) -> Option<T> {
        let entry = &self.entries[i];
        let State::Waiting {
            payload,
            prev,
            next,
        } = entry.state
        else {
            return None;
        };
        let p = entry.priority.index();
        let pool = entry.pool.index();
        if prev == NONE {
            self.head[p] = next;
        } else {
            self.set_next(prev, next);
        }
        if next == NONE {
            self.tail[p] = prev;
        } else {
            self.set_prev(next, prev);
        }
        self.waiting[pool][p] -= 1;
        Some(payload)
    }

    /// Return an entry to the free list; its old tickets become stale.
    fn free(&mut self, i: usize) {
        let entry = &mut self.entries[i];
        entry.generation = entry.generation.wrapping_add(1);
        entry.state = State::Free {
            next: self.free_head,
        };
        self.free_head = i as u32;
        self.occupied -= 1;
    }

    /// Mark a waiting entry expired (it keeps its slot until taken).
    fn expire_at(&mut self, i: usize) {
        if let Some(payload) = self.unlink(i) {
            self.entries[i].state = State::Expired { payload };
        }
    }

    /// Walk waiting entries in service order (interactive before background,
    /// oldest first). Entries whose deadline is `<= now` are marked expired
    /// as they are passed. Returns the first live entry for which `fits`
    /// returns true; it stays waiting until [`WaitQueue::grant`].
    pub(crate) fn select(
        &mut self,
        now: Instant,
        mut fits: impl FnMut(&T, Pool) -> bool,
    ) -> Option<usize> {
        for p in 0..2 {
            let mut cur = self.head[p];
            while cur != NONE {
                let i = cur as usize;
                let entry = &self.entries[i];
                let State::Waiting { payload, next, .. } = entry.state else {
                    // Lists only hold waiting entries; stop rather than loop.
                    break;
                };
                if entry.deadline <= now {
                    self.expire_at(i);
                } else if fits(&payload, entry.pool) {
                    return Some(i);
                }
                cur = next;
            }
        }
        None
    }

    /// The pool of the entry at `i`.
    pub(crate) fn pool_at(&self, i: usize) -> Pool {
        self.entries[i].pool
    }

    /// Park `permit` in the waiting entry at `i`; returns its ticket.
    pub(crate) fn grant(&mut self, i: usize, permit: PermitId) -> Option<Ticket> {
        let payload = self.unlink(i)?;
        let entry = &mut self.entries[i];
        entry.state = State::Granted { payload, permit };
        Some(Ticket {
            index: i as u32,
            generation: entry.generation,
        })
    }

    /// Claim the outcome of `ticket`. Granted and expired outcomes (including
    /// a waiting entry whose deadline is `<= now`) free the slot.
    pub(crate) fn take(&mut self, ticket: Ticket, now: Instant) -> Taken {
        let Some(i) = self.find(ticket) else {
            return Taken::Unknown;
        };
        let entry = &self.entries[i];
        let pool = entry.pool;
        let deadline = entry.deadline;
        let taken = match entry.state {
            State::Free { .. } => return Taken::Unknown,
            State::Waiting { .. } if deadline > now => return Taken::Waiting(deadline),
            State::Waiting { .. } => {
                self.unlink(i);
                Taken::Expired
            }
            State::Granted { permit, .. } => Taken::Granted(permit, pool),
            State::Expired { .. } => Taken::Expired,
        };
        self.free(i);
        taken
    }

    /// Drop the entry of `ticket` whatever its state; returns the parked
    /// permit if it had been granted.
    pub(crate) fn cancel(&mut self, ticket: Ticket) -> Option<(PermitId, Pool)> {
        let i = self.find(ticket)?;
        let entry = &self.entries[i];
        let parked = match entry.state {
            State::Granted { permit, .. } => Some((permit, entry.pool)),
            _ => None,
        };
        self.unlink(i);
        self.free(i);
        parked
    }

    /// Mark every waiting entry with `deadline <= now` expired; returns how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let mut expired = 0;
        for p in 0..2 {
            let mut cur = self.head[p];
            while cur != NONE {
                let i = cur as usize;
                let State::Waiting { next, .. } = self.entries[i].state else {
                    break;
                };
                if self.entries[i].deadline <= now {
                    self.expire_at(i);
                    expired += 1;
                }
                cur = next;
            }
        }
        expired
    }

    /// The earliest deadline among waiting entries.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.iter().map(|(_, q)| q.deadline).min()
    }

    /// Waiting entries in service order.
    pub(crate) fn iter(&self) -> WaitingIter<'_, T, Q> {
        WaitingIter {
            queue: self,
            priority: 0,
            cur: self.head[0],
        }
    }
}

/// Iterator over waiting entries in service order: interactive before
/// background, oldest first. Created by
/// [`Admission::iter_waiting`](super::Admission::iter_waiting).
pub struct WaitingIter<'a, T, const Q: usize> {
    queue: &'a WaitQueue<T, Q>,
    priority: usize,
    cur: u32,
}

impl<T: Copy, const Q: usize> Iterator for WaitingIter<'_, T, Q> {
    type Item = (Ticket, Queued<T>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.cur == NONE {
                if self.priority + 1 >= self.queue.head.len() {
                    return None;
                }
                self.priority += 1;
                self.cur = self.queue.head[self.priority];
                continue;
            }
            let i = self.cur as usize;
            let entry = &self.queue.entries[i];
            let State::Waiting { next, .. } = entry.state else {
                self.cur = NONE;
                continue;
            };
            self.cur = next;
            let ticket = Ticket {
                index: i as u32,
                generation: entry.generation,
            };
            if let Some(view) = entry.view() {
                return Some((ticket, view));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn entry_is_small() {
        // (u64, u64) payload: 16 payload + 8 links + tag, 24 times, 8 generation/pool/priority.
        assert_eq!(core::mem::size_of::<Entry<(u64, u64)>>(), 64);
        assert_eq!(core::mem::size_of::<Entry<u32>>(), 48);
    }

    #[test]
    fn lists_stay_consistent_under_middle_removal() {
        let mut q = WaitQueue::<u32, 4>::new();
        let a = q
            .push(1, Pool::Chat, Priority::Interactive, t(0), t(10))
            .unwrap();
        let b = q
            .push(2, Pool::Chat, Priority::Interactive, t(0), t(10))
            .unwrap();
        let c = q
            .push(3, Pool::Chat, Priority::Interactive, t(0), t(10))
            .unwrap();
        assert_eq!(q.cancel(b), None);
        let order: heapless::Vec<u32, 4> = q.iter().map(|(_, e)| e.payload).collect();
        assert_eq!(order.as_slice(), &[1, 3]);
        assert_eq!(q.cancel(c), None);
        assert_eq!(q.cancel(a), None);
        assert_eq!(q.iter().count(), 0);
        assert_eq!(q.head, [NONE; 2]);
        assert_eq!(q.tail, [NONE; 2]);
        assert_eq!(q.occupied(), 0);
        // Freed slots are reused, with new generations.
        let d = q
            .push(4, Pool::Embed, Priority::Background, t(0), t(10))
            .unwrap();
        assert_eq!(d.index, a.index);
        assert_ne!(d.generation, a.generation);
        assert_eq!(q.take(a, t(0)), Taken::Unknown);
        assert_eq!(q.peek(d).map(|e| e.payload), Some(4));
    }

    #[test]
    fn seq_is_strictly_increasing() {
        let mut q = WaitQueue::<u32, 2>::new();
        let mut last = None;
        for n in 0..10 {
            let tk = q
                .push(n, Pool::Chat, Priority::Interactive, t(0), t(1))
                .unwrap();
            let seq = q.peek(tk).unwrap().seq;
            assert!(last.is_none_or(|l| seq > l));
            last = Some(seq);
            assert_eq!(q.take(tk, t(5)), Taken::Expired);
        }
    }
}
