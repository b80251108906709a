//! [`SharedRouter`]: one [`Router`] shared by the threads of a gateway
//! (feature `std`).
//!
//! The core takes `&mut self` and never locks. A gateway whose request tasks
//! run on many threads wraps its router in a `SharedRouter`, a cloneable
//! handle to an `Arc<Mutex<Box<Router>>>`: each method locks, makes one
//! router call and unlocks, so the router's own transitions stay atomic
//! with respect to each other. Nothing is held across an `await` or an
//! upstream request: a task polls, unlocks, sends, and locks again to report
//! what happened.
//!
//! # Calls that are never finished
//!
//! A request task can be dropped at any point (its client went away, the
//! server shut down, the task panicked). A [`Call`] dropped before its
//! [`Action::Finish`] would keep its permit, its queue entry or its node
//! slots for ever. [`SharedRouter::begin`] therefore returns a
//! [`CallHandle`] that owns the call: if it is dropped unfinished it feeds
//! [`Event::ClientCancelled`] and polls the call to [`Action::Done`], so
//! every permit, queue entry, reservation and in-flight count is returned
//! exactly once. The core never reads a clock, so that cancel is stamped
//! with the latest `now` the handle was given (by `begin`, `poll` or
//! `handle`). The `Cancel` actions produced on drop are discarded: the
//! upstream requests they name belonged to the dropped task and went with
//! it. A wakeup for the dropped call may still come out of
//! [`SharedRouter::poll_wakeup`]; the driver ignores trace ids it no longer
//! knows.
//!
//! # Lock poisoning
//!
//! A panic while the lock is held poisons the mutex. Every method here
//! recovers the router instead ([`PoisonError::into_inner`]) and carries on,
//! for these reasons:
//!
//! - **Memory safety is not at stake.** The core has no `unsafe`; the router
//!   is plain data (counters, fixed tables, generational slabs), so any
//!   state a panic can leave behind is a valid Rust value.
//! - **The core does not panic by design** (no `unwrap`, bounded tables that
//!   refuse rather than overflow, saturating time arithmetic). A panic under
//!   the lock is a bug, in the core or in a closure given to
//!   [`with_mut`](SharedRouter::with_mut).
//! - **A half-done transition degrades, it does not cascade.** Each router
//!   method is one state transition over several fields; a panic in the
//!   middle of one is *not* rolled back. What it can leave behind is a
//!   counter off by one (a permit or node slot never returned, an
//!   `active_calls` too high) or a queue entry nobody takes, which its
//!   deadline then expires. Releases are checked (generational permits,
//!   stale tickets answer `Unknown`, counters saturate), so later calls
//!   neither panic nor double-count because of it. The cost is bounded:
//!   at worst a little capacity lost until restart.
//! - **The alternative is worse.** Propagating the poison would turn one bug
//!   in one request into a gateway that fails every request from then on.
//!
//! [`is_poisoned`](SharedRouter::is_poisoned) stays true after such a panic,
//! so a health endpoint can report it and an operator can restart at leisure.
//!
//! # Deadlocks
//!
//! The lock is not re-entrant. Inside a [`with`](SharedRouter::with) or
//! [`with_mut`](SharedRouter::with_mut) closure do not call another
//! `SharedRouter` method and do not drop an unfinished [`CallHandle`]: both
//! lock again and would deadlock (or panic, as `std::sync::Mutex` may).
//!
//! # Example
//!
//! ```
//! use drover_core::call::{Action, Event, Outcome, Request};
//! use drover_core::config::RouterConfig;
//! use drover_core::node::{NodeKind, NodeSpec};
//! use drover_core::route::{Op, Query};
//! use drover_core::shared::SharedRouter;
//! use drover_core::trace::TraceId;
//! use drover_core::Instant;
//!
//! let router: SharedRouter<4, 64, 16> = SharedRouter::new(RouterConfig::default(), 1)?;
//! router.with_mut(|r| r.add_node(NodeSpec::new("gpu-a", NodeKind::Ollama)?))?;
//!
//! let workers: Vec<_> = (0..4u64)
//!     .map(|i| {
//!         let router = router.clone();
//!         std::thread::spawn(move || {
//!             let now = Instant::from_millis(i); // a real gateway reads its clock here
//!             let mut call = router.begin(Request::new(TraceId(i), Query::new(Op::Chat)), now);
//!             let mut sent = None;
//!             loop {
//!                 match call.poll(now) {
//!                     // A real gateway sends the request upstream here, unlocked.
//!                     Action::Send { attempt, .. } => sent = Some(attempt),
//!                     Action::Cancel { .. } => {}
//!                     Action::Wait { .. } => match sent.take() {
//!                         // ... and reports the reply when it arrives.
//!                         Some(a) => { let _ = call.handle(Event::Completed(a), now); }
//!                         // Queued: sleep until `poll_wakeup` names this call.
//!                         None => return None,
//!                     },
//!                     Action::Finish(outcome) => return Some(outcome),
//!                     Action::Done => return None,
//!                 }
//!             }
//!         })
//!     })
//!     .collect();
//! for w in workers {
//!     assert!(matches!(w.join().unwrap(), Some(Outcome::Succeeded { .. })));
//! }
//! assert_eq!(router.with(|r| r.permits_outstanding()), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`PoisonError::into_inner`]: std::sync::PoisonError::into_inner

use std::boxed::Box;

use crate::call::{Action, Call, Event, Handled, Request};
use crate::config::{ConfigError, RouterConfig};
use crate::health::{HeartbeatChange, Telemetry};
use crate::node::{Mode, NodeError, NodeId};
use crate::router::Router;
use crate::sync::{self, Arc, Mutex, MutexGuard};
use crate::time::Instant;
use crate::trace::TraceId;

/// Polls a dropped call gets to reach [`Action::Done`]: its queued actions
/// (at most two cancels, a send and the finish) and the `Done`, with room.
const DRAIN_LIMIT: usize = 16;

/// A [`Router`] shared between threads. Cloning is cheap (an `Arc`); every
/// clone drives the same router. See the [module docs](self).
pub struct SharedRouter<const N: usize, const C: usize = 1024, const Q: usize = 256> {
    inner: Arc<Mutex<Box<Router<N, C, Q>>>>,
}

impl<const N: usize, const C: usize, const Q: usize> Clone for SharedRouter<N, C, Q> {
    fn clone(&self) -> Self {
        SharedRouter {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<const N: usize, const C: usize, const Q: usize> core::fmt::Debug for SharedRouter<N, C, Q> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedRouter")
            .field("nodes", &N)
            .field("permits", &C)
            .field("queue", &Q)
            .finish_non_exhaustive()
    }
}

impl<const N: usize, const C: usize, const Q: usize> SharedRouter<N, C, Q> {
    /// A shared router with no nodes; see [`Router::new`]. The router is
    /// built and then moved into a `Box` (moved once, not copied in place:
    /// large routers briefly occupy the caller's stack).
    pub fn new(cfg: RouterConfig, seed: u64) -> Result<Self, ConfigError> {
        Ok(Self::from_box(Box::new(Router::new(cfg, seed)?)))
    }

    /// Shares an existing router (for example one restored from a snapshot).
    pub fn from_box(router: Box<Router<N, C, Q>>) -> Self {
        SharedRouter {
            inner: Arc::new(Mutex::new(router)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Box<Router<N, C, Q>>> {
        sync::lock(&self.inner)
    }

    /// True once a thread has panicked while holding the router. The router
    /// keeps working (see "Lock poisoning" in the [module docs](self)), but
    /// its counters may be off by the transition that was interrupted.
    pub fn is_poisoned(&self) -> bool {
        sync::is_poisoned(&self.inner)
    }

    /// Runs `f` with the router locked, for reads: getters, metrics, the
    /// trace, [`Router::preview`]. Keep `f` short: every other thread waits.
    pub fn with<R>(&self, f: impl FnOnce(&Router<N, C, Q>) -> R) -> R {
        f(&self.lock())
    }

    /// Runs `f` with the router locked, for any change not mirrored below
    /// (nodes, config, catalog). A panic in `f` leaves whatever `f` had
    /// changed so far in place.
    pub fn with_mut<R>(&self, f: impl FnOnce(&mut Router<N, C, Q>) -> R) -> R {
        f(&mut self.lock())
    }

    /// Starts a call owned by a [`CallHandle`], which cancels it if dropped
    /// unfinished. Prefer this to [`start`](SharedRouter::start).
    pub fn begin(&self, req: Request, now: Instant) -> CallHandle<N, C, Q> {
        let call = self.start(req, now);
        CallHandle {
            router: self.clone(),
            call,
            last_now: now,
        }
    }

    /// [`Router::start`]. The caller must drive the returned call to
    /// [`Action::Finish`] (or feed it [`Event::ClientCancelled`]); otherwise
    /// its capacity is never returned. [`begin`](SharedRouter::begin) does
    /// that on drop.
    pub fn start(&self, req: Request, now: Instant) -> Call {
        self.lock().start(req, now)
    }

    /// [`Router::poll`].
    pub fn poll(&self, call: &mut Call, now: Instant) -> Action {
        self.lock().poll(call, now)
    }

    /// [`Router::handle`].
    pub fn handle(&self, call: &mut Call, event: Event, now: Instant) -> Handled {
        self.lock().handle(call, event, now)
    }

    /// [`Router::poll_wakeup`]: a queued call that was granted capacity.
    #[must_use]
    pub fn poll_wakeup(&self) -> Option<TraceId> {
        self.lock().poll_wakeup()
    }

    /// [`Router::poll_timeout`]: when to call
    /// [`handle_timeout`](SharedRouter::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lock().poll_timeout()
    }

    /// [`Router::handle_timeout`]: expires overdue queue entries and grants
    /// freed capacity.
    pub fn handle_timeout(&self, now: Instant) {
        self.lock().handle_timeout(now);
    }

    /// [`Router::handle_heartbeat`].
    pub fn handle_heartbeat(
        &self,
        id: NodeId,
        report: Telemetry,
        now: Instant,
    ) -> Result<HeartbeatChange, NodeError> {
        self.lock().handle_heartbeat(id, report, now)
    }

    /// [`Router::set_mode`].
    pub fn set_mode(&self, id: NodeId, mode: Mode, now: Instant) -> Result<(), NodeError> {
        self.lock().set_mode(id, mode, now)
    }
}

/// A [`Call`] started by [`SharedRouter::begin`], bound to its router.
///
/// Dropping it before the call has finished cancels the call
/// ([`Event::ClientCancelled`], stamped with [`last_now`](CallHandle::last_now))
/// and polls it to the end, so no permit, queue entry or in-flight slot
/// outlives the task that owned it. Dropping a finished call takes no lock.
#[derive(Debug)]
pub struct CallHandle<const N: usize, const C: usize = 1024, const Q: usize = 256> {
    router: SharedRouter<N, C, Q>,
    call: Call,
    last_now: Instant,
}

impl<const N: usize, const C: usize, const Q: usize> CallHandle<N, C, Q> {
    /// The call's next action: [`Router::poll`].
    pub fn poll(&mut self, now: Instant) -> Action {
        self.seen(now);
        self.router.poll(&mut self.call, now)
    }

    /// Feeds an event for the call: [`Router::handle`].
    pub fn handle(&mut self, event: Event, now: Instant) -> Handled {
        self.seen(now);
        self.router.handle(&mut self.call, event, now)
    }

    /// The call (state, attempts, trace id).
    pub fn call(&self) -> &Call {
        &self.call
    }

    /// The call's trace id, as [`SharedRouter::poll_wakeup`] names it.
    pub fn trace(&self) -> TraceId {
        self.call.trace()
    }

    /// True once the call's outcome has been produced.
    pub fn is_finished(&self) -> bool {
        self.call.is_finished()
    }

    /// The latest `now` this handle was given; a drop cancels at this time.
    pub fn last_now(&self) -> Instant {
        self.last_now
    }

    /// The router the call runs on.
    pub fn router(&self) -> &SharedRouter<N, C, Q> {
        &self.router
    }

    fn seen(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
    }
}

impl<const N: usize, const C: usize, const Q: usize> Drop for CallHandle<N, C, Q> {
    fn drop(&mut self) {
        if self.call.is_finished() {
            return; // everything was returned when the outcome was produced
        }
        let now = self.last_now;
        let mut router = self.router.lock();
        let _ = router.handle(&mut self.call, Event::ClientCancelled, now);
        // A cancel always finishes the call, so this ends with `Done` after
        // the queued cancels and the finish; the bound is a guard only.
        for _ in 0..DRAIN_LIMIT {
            if router.poll(&mut self.call, now) == Action::Done {
                break;
            }
        }
        debug_assert!(self.call.is_finished(), "a cancelled call is finished");
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
