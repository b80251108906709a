//! Targets without `epoll`: there is no worker reactor, so every socket and
//! timer uses async-io's (see the parent module).

use std::future::Future;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::Dir;

/// Never constructed on this target.
#[derive(Debug)]
pub(crate) enum Reactor {}

/// Never constructed on this target.
pub(crate) enum Registration {}

pub(crate) fn current() -> Option<Arc<Reactor>> {
    None
}

pub(crate) fn block_on<T>(reactor: Arc<Reactor>, _future: impl Future<Output = T>) -> T {
    match *reactor {}
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Arc<Reactor>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no epoll on this target; workers use async-io's reactor",
        ))
    }

    pub(crate) fn register(self: &Arc<Self>, _fd: BorrowedFd<'_>) -> io::Result<Registration> {
        match **self {}
    }

    pub(crate) fn insert_timer(&self, _at: Instant, _waker: Waker) -> u64 {
        match *self {}
    }

    pub(crate) fn update_timer(&self, _at: Instant, _id: u64, _waker: &Waker) {
        match *self {}
    }

    pub(crate) fn remove_timer(&self, _at: Instant, _id: u64) {
        match *self {}
    }
}

impl Registration {
    pub(crate) fn poll_io<R>(
        &self,
        _dir: Dir,
        _cx: &mut Context<'_>,
        _op: impl FnMut() -> io::Result<R>,
        _drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        match *self {}
    }

    pub(crate) fn deregister(&self, _fd: BorrowedFd<'_>) {
        match *self {}
    }
}
