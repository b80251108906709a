//! A reactor per worker thread: the sockets and timers of the tasks that
//! run on a worker are waited for by that worker, in its own `epoll`.
//!
//! async-io, which smol uses, has one reactor for the whole process. With
//! several workers they take turns at it, and async-io's own helper thread
//! takes it whenever the workers are busy; the one holding it then wakes
//! the owner of each socket that became ready, from another thread (a futex
//! call and a context switch per event). It also re-arms each socket's
//! interest after every wait (one-shot mode: an `epoll_ctl` per wait), and
//! every timer created or dropped wakes the reactor through an eventfd.
//! strace counted about 11 system calls per socket event on the gateway's
//! request path, 4 of them `futex`.
//!
//! Here each worker owns a [`Reactor`]: an `epoll` instance, an eventfd to
//! be woken from other threads, and a timer queue. A worker runs its
//! executor until it has nothing to do, then waits in its own `epoll` until
//! the next timer is due ([`block_on`]). Tasks stay on their worker (see
//! [`Runtime`](super::Runtime)), so a socket is registered with the reactor
//! of the worker whose task first uses it, and its events are handled there:
//!
//! - **Edge-triggered readiness.** A socket is registered once, for reading
//!   and writing, in edge-triggered mode. Each direction keeps a `ready`
//!   flag and a tick. An operation that finds the socket empty (or reads
//!   less than it asked for, or writes less than it offered) clears the
//!   flag, unless an event arrived meanwhile (the tick moved), and the task
//!   waits for the next event. No `epoll_ctl` per wait, and no failed
//!   `recv` after a short read.
//! - **Timers without notifications.** A timer is an entry in its worker's
//!   queue; the worker computes its `epoll_wait` timeout from the queue, so
//!   a timer set by the worker itself costs no system call. One set from
//!   another thread wakes the worker only if it is asleep.
//! - **Wakeups from other threads** (a task spawned from outside, a channel
//!   sent to from another worker) write the eventfd only if the worker is
//!   asleep in `epoll_wait`.
//!
//! A socket or timer first used on a thread that is not a worker (a test's
//! `smol::block_on`, the serve thread) falls back to async-io's global
//! reactor, so everything here also works without a [`Runtime`]. On targets
//! without `epoll` every socket and timer takes that path.
//!
//! [`Runtime`]: super::Runtime

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use smol::Async;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use epoll::{Reactor, Registration, block_on, current};

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod unsupported;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) use unsupported::{Reactor, Registration, block_on, current};

/// Which way a socket is waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

/// A non-blocking socket registered with the reactor of the thread that
/// first waits for it: its worker's (see the module docs) or else
/// async-io's.
pub(crate) struct Socket<T: std::os::fd::AsFd> {
    state: State<T>,
}

enum State<T: std::os::fd::AsFd> {
    /// Not waited for yet.
    Fresh(T),
    /// Registered with a worker's reactor.
    Local(T, Registration),
    /// Registered with async-io's reactor.
    Global(Async<T>),
    /// Registration failed and took the socket with it.
    Gone,
}

impl<T: std::os::fd::AsFd> Socket<T> {
    pub(crate) fn new(io: T) -> Socket<T> {
        Socket {
            state: State::Fresh(io),
        }
    }

    /// The socket; an error once registering it failed (which closed it).
    pub(crate) fn get_ref(&self) -> io::Result<&T> {
        match &self.state {
            State::Fresh(io) | State::Local(io, _) => Ok(io),
            State::Global(io) => Ok(io.get_ref()),
            State::Gone => Err(gone()),
        }
    }

    fn register(&mut self) -> io::Result<()> {
        if !matches!(self.state, State::Fresh(_)) {
            return if matches!(self.state, State::Gone) {
                Err(gone())
            } else {
                Ok(())
            };
        }
        let State::Fresh(io) = std::mem::replace(&mut self.state, State::Gone) else {
            return Err(gone());
        };
        self.state = match current() {
            Some(reactor) => match reactor.register(io.as_fd()) {
                Ok(reg) => State::Local(io, reg),
                Err(e) => {
                    self.state = State::Fresh(io);
                    return Err(e);
                }
            },
            None => State::Global(Async::new(io)?),
        };
        Ok(())
    }

    /// Runs `op` until it does not fail with `WouldBlock`, waiting for the
    /// socket to be ready in direction `dir` between tries. `drained` says
    /// of a successful result whether it proves the socket empty (a short
    /// read) or full (a short write), so the next try waits for an event
    /// instead of failing first.
    pub(crate) fn poll_with<R>(
        &mut self,
        dir: Dir,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        self.register()?;
        match &self.state {
            State::Local(io, reg) => reg.poll_io(dir, cx, || op(io), drained),
            State::Global(io) => loop {
                match op(io.get_ref()) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => match dir {
                        Dir::Read => ready!(io.poll_readable(cx))?,
                        Dir::Write => ready!(io.poll_writable(cx))?,
                    },
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => return Poll::Ready(r),
                }
            },
            // register() leaves neither behind when it succeeds.
            State::Fresh(_) | State::Gone => Poll::Ready(Err(gone())),
        }
    }

    /// Waits until `op` does not fail with `WouldBlock`.
    pub(crate) async fn io_with<R>(
        &mut self,
        dir: Dir,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_with(dir, cx, &mut op, |_| false)).await
    }
}

impl<T: std::os::fd::AsFd> Drop for Socket<T> {
    fn drop(&mut self) {
        if let State::Local(io, reg) = &self.state {
            reg.deregister(io.as_fd());
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "socket closed: registering it with a reactor failed earlier",
    )
}

/// A timer on the calling worker's reactor (or async-io's, see the module
/// docs): a future that completes at its deadline, with the deadline.
///
/// The same interface as `smol::Timer`: [`at`](Timer::at),
/// [`after`](Timer::after), [`set_at`](Timer::set_at). A deadline too far
/// to represent never fires.
#[derive(Debug)]
pub struct Timer {
    deadline: Option<Instant>,
    state: TimerState,
}

#[derive(Debug)]
enum TimerState {
    Unset,
    Local(Arc<Reactor>, u64),
    Global(smol::Timer),
}

impl Timer {
    /// Fires at `deadline`.
    pub fn at(deadline: Instant) -> Timer {
        Timer {
            deadline: Some(deadline),
            state: TimerState::Unset,
        }
    }

    /// Fires `after` from now (never, if that is too far to represent).
    pub fn after(after: Duration) -> Timer {
        Timer {
            deadline: Instant::now().checked_add(after),
            state: TimerState::Unset,
        }
    }

    /// Moves the deadline (the timer fires again if it had fired).
    pub fn set_at(&mut self, deadline: Instant) {
        match &mut self.state {
            TimerState::Global(t) => t.set_at(deadline),
            state => {
                if let TimerState::Local(reactor, id) = state {
                    if let Some(old) = self.deadline {
                        reactor.remove_timer(old, *id);
                    }
                }
                *state = TimerState::Unset;
            }
        }
        self.deadline = Some(deadline);
    }
}

impl Future for Timer {
    type Output = Instant;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        let this = self.get_mut();
        let Some(deadline) = this.deadline else {
            return Poll::Pending;
        };
        if let TimerState::Global(t) = &mut this.state {
            return Pin::new(t).poll(cx);
        }
        if Instant::now() >= deadline {
            if let TimerState::Local(reactor, id) = &this.state {
                reactor.remove_timer(deadline, *id);
            }
            this.state = TimerState::Unset;
            return Poll::Ready(deadline);
        }
        match &this.state {
            TimerState::Local(reactor, id) => reactor.update_timer(deadline, *id, cx.waker()),
            _ => match current() {
                Some(reactor) => {
                    let id = reactor.insert_timer(deadline, cx.waker().clone());
                    this.state = TimerState::Local(reactor, id);
                }
                None => {
                    let mut t = smol::Timer::at(deadline);
                    let poll = Pin::new(&mut t).poll(cx);
                    this.state = TimerState::Global(t);
                    return poll;
                }
            },
        }
        Poll::Pending
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let (TimerState::Local(reactor, id), Some(deadline)) = (&self.state, self.deadline) {
            reactor.remove_timer(deadline, *id);
        }
    }
}

/// hyper's timer (for the server's header-read timeout) on [`Timer`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HyperTimer;

struct HyperSleep(Timer);

impl Future for HyperSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.get_mut().0).poll(cx).map(|_| ())
    }
}

impl hyper::rt::Sleep for HyperSleep {}

impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(Timer::after(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(Timer::at(deadline)))
    }
}

/// Opens a TCP connection to `addr` without blocking the thread: on a
/// worker, a non-blocking `connect` whose completion the worker's reactor
/// reports; elsewhere async-io's.
pub(crate) async fn connect(addr: std::net::SocketAddr) -> io::Result<Socket<std::net::TcpStream>> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if current().is_some() {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        let family = if addr.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let fd = rustix::net::socket_with(
            family,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        let mut socket = Socket::new(std::net::TcpStream::from(fd));
        // Writable means connected or failed; SO_ERROR says which.
        socket
            .io_with(Dir::Write, |s| {
                if let Some(e) = s.take_error()? {
                    return Err(e);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        return Ok(socket);
    }
    let stream = Async::<std::net::TcpStream>::connect(addr).await?;
    Ok(Socket::new(stream.into_inner()?))
}
