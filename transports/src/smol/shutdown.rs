//! [`Shutdown`]: a one-shot, cloneable "stop now" signal.
//!
//! A waiting [`Fired`] future takes the signal's lock only when it first
//! registers and when it is dropped; polling it again is one atomic load. That
//! matters because every server connection polls one alongside its hyper
//! connection on every wake-up, so a lock there would be taken per request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A one-shot signal shared by clones: [`trigger`](Shutdown::trigger) fires
/// it once and for all, and every [`fired`](Shutdown::fired) future (waiting
/// now or created later) completes.
///
/// [`Server::run`](super::Server::run) stops accepting when its `Shutdown`
/// fires; the gateway triggers it from its SIGINT/SIGTERM handler.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Signal>,
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Fires the signal and wakes every waiter. Calling it again does nothing.
    pub fn trigger(&self) {
        self.inner.trigger();
    }

    /// Whether [`trigger`](Shutdown::trigger) has been called on any clone.
    pub fn is_triggered(&self) -> bool {
        self.inner.is_triggered()
    }

    /// A future that completes once the signal has fired (at once if it
    /// already has). It owns a reference to the signal, so it is `'static`.
    pub fn fired(&self) -> Fired {
        Fired {
            signal: Arc::clone(&self.inner),
            slot: None,
            waker: None,
        }
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

/// The future returned by [`Shutdown::fired`].
#[must_use = "futures do nothing unless polled"]
pub struct Fired {
    signal: Arc<Signal>,
    /// Where this future's waker sits in `signal.waiters`, once registered.
    slot: Option<usize>,
    /// A copy of the registered waker, compared without the lock.
    waker: Option<Waker>,
}

impl fmt::Debug for Fired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fired")
            .field("triggered", &self.signal.is_triggered())
            .finish()
    }
}

impl Future for Fired {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.signal.is_triggered() {
            return Poll::Ready(());
        }
        if let Some(registered) = &this.waker {
            if registered.will_wake(cx.waker()) {
                return Poll::Pending;
            }
        }
        let mut waiters = this.signal.lock();
        // Checked again under the lock: `trigger` sets the flag before it
        // drains the waiters, so a waker stored after that drain would never
        // be woken.
        if this.signal.is_triggered() {
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        match this.slot {
            Some(slot) => waiters.replace(slot, waker.clone()),
            None => this.slot = Some(waiters.insert(waker.clone())),
        }
        this.waker = Some(waker);
        Poll::Pending
    }
}

impl Drop for Fired {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.signal.lock().remove(slot);
        }
    }
}

/// The shared state behind [`Shutdown`].
#[derive(Default)]
struct Signal {
    triggered: AtomicBool,
    waiters: Mutex<Waiters>,
}

impl Signal {
    fn trigger(&self) {
        if self.triggered.swap(true, Ordering::SeqCst) {
            return;
        }
        let wakers = std::mem::take(&mut self.lock().slots);
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Waiters> {
        // A panic while holding this lock leaves the slab consistent (every
        // operation on it is a single push, pop or assignment), so a
        // poisoned lock is still safe to use.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A small slab of wakers; freed slots are reused.
#[derive(Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Waiters {
    fn insert(&mut self, waker: Waker) -> usize {
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(waker);
                slot
            }
            None => {
                self.slots.push(Some(waker));
                self.slots.len() - 1
            }
        }
    }

    fn replace(&mut self, slot: usize, waker: Waker) {
        if let Some(entry) = self.slots.get_mut(slot) {
            *entry = Some(waker);
        }
    }

    fn remove(&mut self, slot: usize) {
        // After `trigger` the slab is empty and slots are meaningless.
        if let Some(entry) = self.slots.get_mut(slot) {
            if entry.take().is_some() {
                self.free.push(slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn poll_once(fired: &mut Fired) -> Poll<()> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(fired).poll(&mut cx)
    }

    fn slots(shutdown: &Shutdown) -> (usize, usize) {
        let waiters = shutdown.inner.lock();
        (waiters.slots.len(), waiters.free.len())
    }

    #[test]
    fn trigger_wakes_waiters_on_other_threads_and_later_futures_are_ready() {
        let shutdown = Shutdown::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let fired = shutdown.fired();
                std::thread::spawn(move || smol::block_on(fired))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!shutdown.is_triggered());
        let clone = shutdown.clone();
        clone.trigger();
        clone.trigger();
        for waiter in waiters {
            waiter.join().expect("waiter woke");
        }
        assert!(shutdown.is_triggered());
        assert_eq!(poll_once(&mut shutdown.fired()), Poll::Ready(()));
    }

    #[test]
    fn waiters_register_once_and_free_their_slot_on_drop() {
        let shutdown = Shutdown::new();
        let mut a = shutdown.fired();
        assert_eq!(poll_once(&mut a), Poll::Pending);
        assert_eq!(poll_once(&mut a), Poll::Pending);
        assert_eq!(slots(&shutdown), (1, 0));
        drop(a);
        assert_eq!(slots(&shutdown), (1, 1));
        let mut b = shutdown.fired();
        assert_eq!(poll_once(&mut b), Poll::Pending);
        assert_eq!(slots(&shutdown), (1, 0));
        shutdown.trigger();
        assert_eq!(poll_once(&mut b), Poll::Ready(()));
        drop(b);
        assert_eq!(slots(&shutdown).0, 0);
    }
}
