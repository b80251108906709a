//! Admission: may a call start now, must it wait, or is it refused? And who
//! holds which unit of concurrency.
//!
//! # What it decides
//!
//! Every call needs one unit of the **global pool** and one unit of its
//! **class pool** ([`Pool::Chat`], [`Pool::Stream`], [`Pool::Embed`],
//! [`Pool::Background`]) for as long as it runs: a bulkhead per operation
//! class under one overall cap (Nygard, *Release It!*, "Bulkheads"; Envoy's
//! `max_requests` / `max_pending_requests` circuit-breaker thresholds are the
//! same idea). A held pair of units is a [`Permit`].
//!
//! - [`Admission::try_acquire`] answers *now*: a permit, or a [`Refusal`]
//!   naming the full pool.
//! - A call that cannot start may wait in a bounded queue
//!   ([`Admission::enqueue`]) until its own deadline. When units free up the
//!   driver calls [`Admission::grant_next`], which serves waiting calls
//!   **interactive before background, oldest first**, skipping calls whose
//!   class pool is still full or that the router's predicate rejects (for
//!   example: no node currently has a free slot for that call's model).
//! - The waiting call claims its outcome exactly once with
//!   [`Admission::take`]: still [waiting](TicketStatus::Waiting),
//!   [granted](TicketStatus::Granted) (with its permit), or
//!   [expired](TicketStatus::Expired) (refusal reason
//!   [`Refusal::QueueWaitExpired`]).
//!
//! Admission knows nothing about nodes; the router combines it with per-node
//! slots, through the payload `T` it stores with each waiting call and the
//! predicate it passes to [`Admission::grant_next`].
//!
//! # Fairness rule for immediate acquires
//!
//! An immediate [`Admission::try_acquire`]`(pool, priority)` never takes a unit
//! that a waiting call could use: it succeeds only if, after counting one
//! reserved unit for every call **waiting in the same class pool with equal
//! or higher priority** (`ahead`), there is still a free unit:
//!
//! ```text
//! outstanding   + ahead < limits.global     else BusyGlobalPool
//! in_use(pool)  + ahead < limits.get(pool)  else BusyPool(pool)
//! ```
//!
//! For an interactive call `ahead` counts the interactive waiters of its pool;
//! for a background call, all waiters of its pool. Waiters of *other* pools
//! are not reserved for (they are served from the global pool by
//! `grant_next`, which the driver calls on every release), so a backlog in one
//! class cannot block another class that has room. Waiters held back only by
//! the router's predicate still reserve their units until granted, cancelled
//! or expired: their deadline bounds how long. An overdue waiter reserves
//! until something marks it expired ([`Admission::expire`], which the driver
//! calls at [`Admission::next_deadline`], or `take`, or a `grant_next` walk).
//!
//! # Permits and double release
//!
//! Permits live in a slab of `C` generational slots (8 bytes each). A permit
//! is a move-only value; [`Permit::id`] gives a copyable [`PermitId`] for
//! drivers that must carry it across a boundary, and
//! [`Admission::release_id`] detects at run time an id that was already
//! released ([`ReleaseError::AlreadyReleased`]) or never issued
//! ([`ReleaseError::UnknownPermit`]). A failed release changes no counter.
//! Permits parked in granted queue entries count as outstanding.
//!
//! # Cancel
//!
//! [`Admission::cancel`] frees a queue entry whatever its state and **returns
//! the parked permit if the call had already been granted**: the caller must
//! release it (and then call `grant_next`, since a unit came free). So under
//! any interleaving of release, grant, expiry and cancel, a queued call ends
//! exactly once: granted (the permit reaches `take` or `cancel`, never both)
//! or timed out or cancelled. A grant is final: a granted entry whose deadline
//! passes before `take` is still granted.
//!
//! # Time
//!
//! Admission never reads a clock. Deadlines are absolute [`Instant`]s given to
//! `enqueue`; a call is expired when `deadline <= now`. Expiry happens in
//! [`Admission::expire`], in `take`, and for entries `grant_next` walks past.
//! [`Admission::next_deadline`] tells the driver when to call `expire`.
//!
//! # Costs
//!
//! `try_acquire`, `release`, `release_id`, `enqueue`, `take`, `cancel`, `peek`
//! and the counters are O(1). `grant_next` walks waiting entries in service
//! order until one fits (O(waiting) worst case, O(1) when the global pool is
//! full); `expire` and `next_deadline` are O(waiting). Construction writes
//! the arrays once and links nothing. `size_of::<Admission<T, C, Q>>()` is
//! about `8·C + Q·size_of::<Entry>() + 120` bytes; the queue entry is
//! 48 bytes for a 4-byte payload and 64 bytes for a 16-byte one. With large
//! `C` and `Q` place it in a `static` or a `Box` rather than on a small stack.
//!
//! # Driving it
//!
//! ```
//! use drover_core::admission::{Admission, Pool, PoolLimits, Priority, Refusal, TicketStatus};
//! use drover_core::time::{Duration, Instant};
//!
//! // The payload is whatever the router needs to place the call later: here a model id.
//! let limits = PoolLimits { global: 2, chat: 1, ..PoolLimits::uniform(2) };
//! let mut adm: Admission<u32, 64, 16> = Admission::new(limits)?;
//! let now = Instant::from_millis(0);
//!
//! // A chat call starts at once.
//! let running = adm.try_acquire(Pool::Chat, Priority::Interactive)?;
//!
//! // The chat pool is full: the next chat call waits, at most 5 s.
//! let refused = adm.try_acquire(Pool::Chat, Priority::Interactive);
//! assert_eq!(refused.err(), Some(Refusal::BusyPool(Pool::Chat)));
//! let deadline = now + Duration::from_secs(5);
//! let ticket = adm.enqueue(7, Pool::Chat, Priority::Interactive, now, deadline)?;
//! assert_eq!(adm.next_deadline(), Some(deadline)); // -> the driver's poll_timeout
//!
//! // The running call ends: release, then hand freed units to waiters.
//! let now = now + Duration::from_millis(300);
//! adm.release(running)?;
//! while let Some(granted) = adm.grant_next(now, |model, _pool| {
//!     *model == 7 // "some node serving this model has a free slot"
//! }) {
//!     // wake the task waiting on `granted`
//!     assert_eq!(granted, ticket);
//! }
//!
//! // The woken call claims its permit exactly once.
//! match adm.take(ticket, now) {
//!     TicketStatus::Granted(permit) => adm.release(permit)?,
//!     other => panic!("expected a grant, got {other:?}"),
//! }
//! assert_eq!(adm.take(ticket, now), TicketStatus::Unknown);
//! assert_eq!(adm.outstanding(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod permits;
mod queue;
mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_random;

use core::fmt;

use crate::time::Instant;
use permits::PermitSlab;
pub use permits::{Permit, PermitId};
pub use queue::{Queued, QueuedState, Ticket, WaitingIter};
use queue::{Taken, WaitQueue};
pub use types::{LimitsError, Pool, PoolLimits, Priority, Refusal, ReleaseError};

/// What became of a queued call, as claimed by [`Admission::take`].
#[must_use = "a granted permit must be released"]
#[derive(Debug, PartialEq, Eq)]
pub enum TicketStatus {
    /// Still waiting; it will stop waiting at `deadline`.
    Waiting {
        /// The call's wait deadline.
        deadline: Instant,
    },
    /// A permit was granted; it now belongs to the caller, who releases it
    /// when the call ends.
    Granted(Permit),
    /// The wait deadline passed first (reason [`Refusal::QueueWaitExpired`]).
    Expired,
    /// No such entry: already taken, cancelled, or a stale/forged ticket.
    Unknown,
}

impl TicketStatus {
    /// The refusal this status stands for: [`Refusal::QueueWaitExpired`] for
    /// [`TicketStatus::Expired`], `None` otherwise.
    pub const fn refusal(&self) -> Option<Refusal> {
        match self {
            TicketStatus::Expired => Some(Refusal::QueueWaitExpired),
            _ => None,
        }
    }
}

/// Global and per-class concurrency pools, the permits that hold them, and a
/// bounded priority queue of calls waiting for them.
///
/// - `T`: the router's payload stored with each waiting call (small, `Copy`).
/// - `C`: permit slots; must be at least `limits.global`.
/// - `Q`: queue slots (0 disables waiting: every `enqueue` is
///   [`Refusal::QueueFull`]).
///
/// See the [module documentation](self) for the fairness rule, cancel
/// semantics and costs.
pub struct Admission<T, const C: usize, const Q: usize> {
    limits: PoolLimits,
    permits: PermitSlab<C>,
    queue: WaitQueue<T, Q>,
}

impl<T: Copy, const C: usize, const Q: usize> Admission<T, C, Q> {
    /// Permit slots (`C`).
    pub const PERMIT_CAPACITY: usize = C;
    /// Queue slots (`Q`).
    pub const QUEUE_CAPACITY: usize = Q;

    /// An admission with nothing held and nothing waiting.
    ///
    /// Errors if `limits` is invalid ([`PoolLimits::validate`]) or
    /// `limits.global > C`.
    pub const fn new(limits: PoolLimits) -> Result<Self, LimitsError> {
        if let Err(e) = Self::check_limits(&limits) {
            return Err(e);
        }
        Ok(Admission {
            limits,
            permits: PermitSlab::new(),
            queue: WaitQueue::new(),
        })
    }

    const fn check_limits(limits: &PoolLimits) -> Result<(), LimitsError> {
        if let Err(e) = limits.validate() {
            return Err(e);
        }
        if limits.global as usize > C {
            return Err(LimitsError::GlobalExceedsCapacity {
                global: limits.global,
                capacity: C,
            });
        }
        Ok(())
    }

    // ---- getters ---------------------------------------------------------

    /// The current limits.
    pub const fn limits(&self) -> PoolLimits {
        self.limits
    }

    /// Permits outstanding (the global pool's usage), including permits
    /// parked in granted queue entries not yet taken.
    pub const fn outstanding(&self) -> u32 {
        self.permits.held()
    }

    /// Permits outstanding for one class pool (including parked ones).
    pub const fn in_use(&self, pool: Pool) -> u32 {
        self.permits.in_use(pool)
    }

    /// Whether `id` is a live permit, and of which pool.
    pub fn permit_pool(&self, id: PermitId) -> Result<Pool, ReleaseError> {
        self.permits.check(id)
    }

    /// Calls waiting for a permit (queue depth; excludes granted and expired
    /// entries whose outcome has not been taken yet).
    pub fn waiting(&self) -> usize {
        self.queue.waiting()
    }

    /// Calls waiting at one priority.
    pub fn len_by_priority(&self, priority: Priority) -> usize {
        self.queue.waiting_with(priority)
    }

    /// Calls waiting for one class pool at one priority.
    pub const fn waiting_for(&self, pool: Pool, priority: Priority) -> u32 {
        self.queue.waiting_for(pool, priority)
    }

    /// Occupied queue slots: waiting calls plus granted or expired outcomes
    /// not yet taken. `enqueue` refuses with [`Refusal::QueueFull`] when this
    /// reaches `Q`.
    pub const fn queued(&self) -> usize {
        self.queue.occupied()
    }

    /// A copy of a queued call (any state), or `None` for a stale ticket.
    /// The router uses it to place a granted call.
    pub fn peek(&self, ticket: Ticket) -> Option<Queued<T>> {
        self.queue.peek(ticket)
    }

    /// Waiting calls in service order: interactive before background, oldest
    /// first (the order `grant_next` considers them in).
    pub fn iter_waiting(&self) -> WaitingIter<'_, T, Q> {
        self.queue.iter()
    }

    /// The earliest deadline among waiting calls: when the driver should next
    /// call [`Admission::expire`]. O(waiting).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.next_deadline()
    }

    /// What [`Admission::try_acquire`] would answer, without acquiring.
    pub const fn check(&self, pool: Pool, priority: Priority) -> Result<(), Refusal> {
        let ahead = self.queue.ahead_of(pool, priority);
        if self.permits.held().saturating_add(ahead) >= self.limits.global {
            return Err(Refusal::BusyGlobalPool);
        }
        if self.permits.in_use(pool).saturating_add(ahead) >= self.limits.get(pool) {
            return Err(Refusal::BusyPool(pool));
        }
        Ok(())
    }

    // ---- inputs ----------------------------------------------------------

    /// Replace the limits.
    ///
    /// Shrinking below current usage is allowed and corrupts nothing: held
    /// permits stay valid and are released normally, and new acquisitions
    /// (immediate or granted) simply wait until usage falls below the new
    /// limits. After raising limits, call [`Admission::grant_next`] so
    /// waiting calls get the new room. On error nothing changes.
    pub fn set_limits(&mut self, limits: PoolLimits) -> Result<(), LimitsError> {
        Self::check_limits(&limits)?;
        self.limits = limits;
        Ok(())
    }

    /// Take a permit for `pool` now, or say why not.
    ///
    /// Follows the fairness rule in the [module documentation](self): units
    /// needed by calls already waiting in the same pool with equal or higher
    /// priority are not taken. When the global check fails the reason is
    /// [`Refusal::BusyGlobalPool`], otherwise [`Refusal::BusyPool`]. O(1).
    pub fn try_acquire(&mut self, pool: Pool, priority: Priority) -> Result<Permit, Refusal> {
        self.check(pool, priority)?;
        // Cannot fail: held < global <= C, so a slot is free. Report the
        // global pool rather than panic should that ever be wrong.
        let id = self.permits.acquire(pool).ok_or(Refusal::BusyGlobalPool)?;
        Ok(Permit::new(id, pool))
    }

    /// Release a permit. Afterwards call [`Admission::grant_next`] until it
    /// returns `None`, so waiting calls get the freed units.
    ///
    /// Errors (changing nothing) only for a permit from another admission or
    /// one whose id was already released through [`Admission::release_id`].
    pub fn release(&mut self, permit: Permit) -> Result<(), ReleaseError> {
        self.permits.release(permit.id()).map(|_| ())
    }

    /// Release a permit by id; returns its pool. A second release of the same
    /// id is [`ReleaseError::AlreadyReleased`], an id never issued
    /// [`ReleaseError::UnknownPermit`]; neither changes a counter. O(1).
    pub fn release_id(&mut self, id: PermitId) -> Result<Pool, ReleaseError> {
        self.permits.release(id)
    }

    /// Put a call in the wait queue until `deadline`.
    ///
    /// `payload` is stored and shown to the predicate of
    /// [`Admission::grant_next`]. Refuses with [`Refusal::QueueWaitExpired`]
    /// if `deadline <= now` (the call cannot wait at all) and with
    /// [`Refusal::QueueFull`] if all `Q` slots are occupied. Does not try to
    /// grant: call [`Admission::try_acquire`] first, or `grant_next` after. O(1).
    pub fn enqueue(
        &mut self,
        payload: T,
        pool: Pool,
        priority: Priority,
        now: Instant,
        deadline: Instant,
    ) -> Result<Ticket, Refusal> {
        if deadline <= now {
            return Err(Refusal::QueueWaitExpired);
        }
        self.queue
            .push(payload, pool, priority, now, deadline)
            .ok_or(Refusal::QueueFull)
    }

    /// Grant a permit to the first waiting call that fits, if any.
    ///
    /// Considers waiting calls interactive first, then oldest first (by
    /// sequence number). Skips a call whose class pool is full, or for which
    /// `fits(payload, pool)` returns false; marks expired (never grants) a
    /// call whose `deadline <= now`. The first call that fits gets a permit,
    /// parked in its entry until [`Admission::take`]; its ticket is returned
    /// so the driver can wake it. `fits` is called only for calls the pools
    /// have room for, at most once per call per invocation.
    ///
    /// Call repeatedly until `None` to grant as many as fit (for example after
    /// every release and after raising limits). Returns `None` at once, without
    /// walking the queue, when the global pool is full.
    pub fn grant_next<F>(&mut self, now: Instant, mut fits: F) -> Option<Ticket>
    where
        F: FnMut(&T, Pool) -> bool,
    {
        if self.permits.held() >= self.limits.global {
            return None;
        }
        let permits = &self.permits;
        let limits = &self.limits;
        let i = self.queue.select(now, |payload, pool| {
            permits.in_use(pool) < limits.get(pool) && fits(payload, pool)
        })?;
        // Cannot fail: held < global <= C. Should it, the call keeps waiting.
        let id = self.permits.acquire(self.queue.pool_at(i))?;
        self.queue.grant(i, id)
    }

    /// Claim the outcome of a queued call. Granted and expired outcomes are
    /// handed out exactly once; afterwards the ticket is
    /// [`TicketStatus::Unknown`]. A waiting call whose `deadline <= now` is
    /// expired here. O(1).
    pub fn take(&mut self, ticket: Ticket, now: Instant) -> TicketStatus {
        match self.queue.take(ticket, now) {
            Taken::Waiting(deadline) => TicketStatus::Waiting { deadline },
            Taken::Granted(id, pool) => TicketStatus::Granted(Permit::new(id, pool)),
            Taken::Expired => TicketStatus::Expired,
            Taken::Unknown => TicketStatus::Unknown,
        }
    }

    /// The waiting call went away (client cancelled): drop its entry whatever
    /// its state. If it had already been granted, its parked permit is
    /// returned and the caller must [release](Admission::release) it (then
    /// call `grant_next`). `None` if it was waiting, expired, or the ticket
    /// is stale. O(1).
    #[must_use = "a returned permit must be released"]
    pub fn cancel(&mut self, ticket: Ticket) -> Option<Permit> {
        self.queue
            .cancel(ticket)
            .map(|(id, pool)| Permit::new(id, pool))
    }

    /// Mark every waiting call with `deadline <= now` expired; returns how
    /// many. They leave the waiting order (and stop reserving units) at once;
    /// their callers get [`TicketStatus::Expired`] from `take`, which frees
    /// their slots. O(waiting).
    pub fn expire(&mut self, now: Instant) -> usize {
        self.queue.expire(now)
    }
}

impl<T: Copy, const C: usize, const Q: usize> fmt::Debug for Admission<T, C, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let in_use = Pool::ALL.map(|p| self.in_use(p));
        f.debug_struct("Admission")
            .field("limits", &self.limits)
            .field("outstanding", &self.outstanding())
            .field("in_use", &in_use)
            .field("waiting", &self.waiting())
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}
