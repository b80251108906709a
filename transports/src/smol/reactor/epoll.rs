//! The reactor on Linux: `epoll` in edge-triggered mode, an eventfd, and a
//! timer queue (see the parent module).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{EventfdFlags, eventfd};

use super::Dir;

/// The eventfd's key in `epoll`; sources use their slot index.
const NOTIFY_KEY: u64 = u64::MAX;

/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;

/// The longest single wait; a later timer is reconsidered after it.
const MAX_WAIT: Duration = Duration::from_secs(3600);

thread_local! {
    /// The reactor of the worker this thread is, if it is one.
    static CURRENT: RefCell<Option<Arc<Reactor>>> = const { RefCell::new(None) };
}

/// The calling thread's reactor, if it is a worker running [`block_on`].
pub(crate) fn current() -> Option<Arc<Reactor>> {
    CURRENT.with_borrow(Clone::clone)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding a lock except an allocation
    // failure, which aborts; the state is consistent in any case.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One worker's `epoll`, eventfd and timers.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    notify: OwnedFd,
    /// The worker is in (or about to enter) `epoll_wait`: a wakeup from
    /// another thread must write the eventfd.
    sleeping: AtomicBool,
    /// The worker's future was woken since the worker last polled it.
    woken: AtomicBool,
    state: Mutex<Slots>,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").finish_non_exhaustive()
    }
}

struct Slots {
    sources: Vec<Option<Arc<Source>>>,
    free: Vec<usize>,
    timers: BTreeMap<(Instant, u64), Waker>,
    next_timer: u64,
}

/// The readiness of one registered socket, per direction.
struct Source {
    dirs: Mutex<[Readiness; 2]>,
}

struct Readiness {
    /// The last operation may not have drained the socket (or an event
    /// came since): try before waiting.
    ready: bool,
    /// Counts events, so clearing `ready` does not lose one that arrived
    /// after the operation that found the socket empty.
    tick: u64,
    waker: Option<Waker>,
}

impl Readiness {
    const READY: Readiness = Readiness {
        ready: true,
        tick: 0,
        waker: None,
    };
}

impl Source {
    fn poll_ready(&self, dir: Dir, cx: &mut Context<'_>) -> Poll<u64> {
        let mut dirs = lock(&self.dirs);
        let d = &mut dirs[dir as usize];
        if d.ready {
            return Poll::Ready(d.tick);
        }
        match &d.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => d.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn clear_ready(&self, dir: Dir, tick: u64) {
        let mut dirs = lock(&self.dirs);
        let d = &mut dirs[dir as usize];
        if d.tick == tick {
            d.ready = false;
        }
    }

    fn set_ready(&self, read: bool, write: bool, wakers: &mut Vec<Waker>) {
        let mut dirs = lock(&self.dirs);
        for (d, hit) in dirs.iter_mut().zip([read, write]) {
            if hit {
                d.ready = true;
                d.tick = d.tick.wrapping_add(1);
                if let Some(w) = d.waker.take() {
                    wakers.push(w);
                }
            }
        }
    }
}

/// A socket's place in a reactor; see [`Socket`](super::Socket).
pub(crate) struct Registration {
    reactor: Arc<Reactor>,
    source: Arc<Source>,
    key: usize,
}

impl Registration {
    pub(crate) fn poll_io<R>(
        &self,
        dir: Dir,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        loop {
            let Poll::Ready(tick) = self.source.poll_ready(dir, cx) else {
                return Poll::Pending;
            };
            match op() {
                Ok(r) => {
                    if drained(&r) {
                        self.source.clear_ready(dir, tick);
                    }
                    return Poll::Ready(Ok(r));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.source.clear_ready(dir, tick);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Removes the socket from `epoll` (before it is closed) and frees its
    /// slot.
    pub(crate) fn deregister(&self, fd: BorrowedFd<'_>) {
        // Fails only if the fd was never added or is already closed;
        // either way there is nothing left to remove.
        let _ = epoll::delete(&self.reactor.epoll, fd);
        let mut slots = lock(&self.reactor.state);
        if let Some(slot) = slots.sources.get_mut(self.key) {
            *slot = None;
            slots.free.push(self.key);
        }
    }
}

impl Reactor {
    /// A reactor for the calling thread; [`block_on`] makes it current.
    pub(crate) fn new() -> io::Result<Arc<Reactor>> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let notify = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &notify,
            EventData::new_u64(NOTIFY_KEY),
            EventFlags::IN,
        )?;
        Ok(Arc::new(Reactor {
            epoll,
            notify,
            sleeping: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            state: Mutex::new(Slots {
                sources: Vec::new(),
                free: Vec::new(),
                timers: BTreeMap::new(),
                next_timer: 0,
            }),
        }))
    }

    /// Makes `fd` non-blocking and adds it, for both directions,
    /// edge-triggered.
    pub(crate) fn register(self: &Arc<Self>, fd: BorrowedFd<'_>) -> io::Result<Registration> {
        rustix::io::ioctl_fionbio(fd, true)?;
        let source = Arc::new(Source {
            dirs: Mutex::new([Readiness::READY, Readiness::READY]),
        });
        let mut slots = lock(&self.state);
        let key = match slots.free.pop() {
            Some(key) => key,
            None => {
                slots.sources.push(None);
                slots.sources.len() - 1
            }
        };
        let flags = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        if let Err(e) = epoll::add(&self.epoll, fd, EventData::new_u64(key as u64), flags) {
            slots.free.push(key);
            return Err(e.into());
        }
        slots.sources[key] = Some(Arc::clone(&source));
        Ok(Registration {
            reactor: Arc::clone(self),
            source,
            key,
        })
    }

    /// Adds a timer; returns its id.
    pub(crate) fn insert_timer(&self, at: Instant, waker: Waker) -> u64 {
        let mut slots = lock(&self.state);
        let id = slots.next_timer;
        slots.next_timer += 1;
        slots.timers.insert((at, id), waker);
        drop(slots);
        // Only another thread can see the worker asleep; its wait must
        // be recomputed.
        if self.sleeping.load(Ordering::SeqCst) {
            self.notify();
        }
        id
    }

    /// Keeps the timer's waker current (re-adding the timer if it fired
    /// early, which it does not).
    pub(crate) fn update_timer(&self, at: Instant, id: u64, waker: &Waker) {
        let mut slots = lock(&self.state);
        match slots.timers.get_mut(&(at, id)) {
            Some(w) if w.will_wake(waker) => {}
            Some(w) => *w = waker.clone(),
            None => {
                slots.timers.insert((at, id), waker.clone());
            }
        }
    }

    pub(crate) fn remove_timer(&self, at: Instant, id: u64) {
        lock(&self.state).timers.remove(&(at, id));
    }

    /// Timers waiting in the queue.
    #[cfg(test)]
    pub(crate) fn timers(&self) -> usize {
        lock(&self.state).timers.len()
    }

    /// Sockets registered.
    #[cfg(test)]
    pub(crate) fn sources(&self) -> usize {
        let slots = lock(&self.state);
        slots.sources.iter().filter(|s| s.is_some()).count()
    }

    fn notify(&self) {
        // Fails only when the counter is about to overflow, and then the
        // worker is woken anyway.
        let _ = rustix::io::write(&self.notify, &1u64.to_ne_bytes());
    }

    fn wake(&self) {
        if !self.woken.swap(true, Ordering::SeqCst) && self.sleeping.load(Ordering::SeqCst) {
            self.notify();
        }
    }

    /// Waits for events (at most `timeout`, `None` for the next timer),
    /// marks the sockets ready, fires due timers and wakes their tasks.
    fn react(&self, timeout: Option<Duration>, bufs: &mut Buffers) -> io::Result<()> {
        let timeout = timeout.or_else(|| {
            let slots = lock(&self.state);
            slots
                .timers
                .first_key_value()
                .map(|((at, _), _)| at.saturating_duration_since(Instant::now()))
        });
        let timespec = timeout.map(|t| {
            let t = t.min(MAX_WAIT);
            rustix::event::Timespec {
                tv_sec: t.as_secs() as _,
                tv_nsec: t.subsec_nanos() as _,
            }
        });
        let waited = epoll::wait(&self.epoll, &mut bufs.events[..], timespec.as_ref());
        self.sleeping.store(false, Ordering::SeqCst);
        let n = match waited {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => 0,
            Err(e) => return Err(e.into()),
        };
        {
            let mut slots = lock(&self.state);
            for ev in &bufs.events[..n] {
                let key = ev.data.u64();
                if key == NOTIFY_KEY {
                    let mut buf = [0u8; 8];
                    // Resets the counter; empty (another read got it) is fine.
                    let _ = rustix::io::read(&self.notify, &mut buf);
                    continue;
                }
                let flags = ev.flags;
                let read = flags.intersects(
                    EventFlags::IN
                        | EventFlags::PRI
                        | EventFlags::RDHUP
                        | EventFlags::HUP
                        | EventFlags::ERR,
                );
                let write = flags.intersects(EventFlags::OUT | EventFlags::HUP | EventFlags::ERR);
                // A key freed since the event was taken may belong to a new
                // socket now; marking it ready costs it one failed try.
                if let Some(Some(source)) =
                    usize::try_from(key).ok().and_then(|k| slots.sources.get(k))
                {
                    source.set_ready(read, write, &mut bufs.wakers);
                }
            }
            if !slots.timers.is_empty() {
                let now = Instant::now();
                while let Some(entry) = slots.timers.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    bufs.wakers.push(entry.remove());
                }
            }
        }
        for w in bufs.wakers.drain(..) {
            w.wake();
        }
        Ok(())
    }
}

struct Buffers {
    events: Vec<epoll::Event>,
    wakers: Vec<Waker>,
}

/// The waker of the future a worker runs: marks it woken, and writes the
/// eventfd if the worker is asleep.
struct WorkerWaker(Arc<Reactor>);

impl Wake for WorkerWaker {
    fn wake(self: Arc<Self>) {
        self.0.wake();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake();
    }
}

/// Runs `future` on the calling thread with `reactor` as its reactor:
/// polls it, and whenever it is not woken, waits in `epoll` for sockets,
/// timers and wakeups from other threads.
pub(crate) fn block_on<T>(reactor: Arc<Reactor>, future: impl Future<Output = T>) -> T {
    struct Reset(Option<Arc<Reactor>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with_borrow_mut(|c| *c = self.0.take());
        }
    }
    let _reset = Reset(CURRENT.with_borrow_mut(|c| c.replace(Arc::clone(&reactor))));
    let waker = Waker::from(Arc::new(WorkerWaker(Arc::clone(&reactor))));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut bufs = Buffers {
        events: vec![
            epoll::Event {
                flags: EventFlags::empty(),
                data: EventData::new_u64(0),
            };
            EVENTS
        ],
        wakers: Vec::with_capacity(EVENTS),
    };
    loop {
        reactor.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(t) = future.as_mut().poll(&mut cx) {
            return t;
        }
        let timeout = if reactor.woken.load(Ordering::SeqCst) {
            // Woken while polled (it yielded): look for events without
            // sleeping, then poll again.
            Some(Duration::ZERO)
        } else {
            reactor.sleeping.store(true, Ordering::SeqCst);
            if reactor.woken.load(Ordering::SeqCst) {
                Some(Duration::ZERO)
            } else {
                None
            }
        };
        if let Err(e) = reactor.react(timeout, &mut bufs) {
            // epoll_wait fails only on a bad descriptor or buffer, which
            // would be a bug here; do not spin on it.
            tracing::error!(error = %e, "epoll_wait failed");
            reactor.sleeping.store(false, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
