//! [`TcpIo`]: a TCP socket as hyper's `Read` and `Write`, for the server's
//! and the client's connections.
//!
//! smol-hyper's generic adapter costs every read two things this one does
//! not:
//!
//! - **It zeroes the whole read buffer before each read** (8 KiB for a
//!   server connection), even a read that finds nothing. That is a memset
//!   per poll, and it makes every page of every connection's buffer
//!   resident, which with thousands of open streams is most of their
//!   memory. Here a read goes into a per-thread scratch buffer, initialised
//!   once, and only the bytes received are copied into hyper's buffer.
//! - **It tries the `recv` before asking the reactor**, so every poll of a
//!   socket with nothing to read is a failed system call. A connection is
//!   polled more often than it has news (its driver is polled whenever its
//!   request's task wakes, see the client), so this one remembers that the
//!   last read found the socket empty and, until the reactor says it is
//!   readable, answers `Pending` without a system call.

use std::cell::RefCell;
use std::io::{self, Read as _};
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use hyper::rt::ReadBufCursor;
use smol::Async;
use smol::io::AsyncWrite;

/// Most bytes one read takes. hyper asks for at most its buffer's free
/// space (8 KiB by default, more for large bodies); a read of 16 KiB is
/// enough to keep the system calls per byte low.
const SCRATCH_LEN: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH_LEN].into_boxed_slice());
}

/// A connected, non-blocking TCP socket for hyper.
pub(crate) struct TcpIo {
    stream: Async<TcpStream>,
    /// The last read found nothing; the next one waits for the reactor.
    read_blocked: bool,
}

impl TcpIo {
    pub(crate) fn new(stream: Async<TcpStream>) -> TcpIo {
        TcpIo {
            stream,
            read_blocked: false,
        }
    }

    pub(crate) fn get_ref(&self) -> &Async<TcpStream> {
        &self.stream
    }

    pub(crate) fn get_mut(&mut self) -> &mut Async<TcpStream> {
        &mut self.stream
    }

    /// Reads what the socket has into `buf` (at most its free space), and
    /// shows the bytes read to `seen` first. `Ready(Ok)` with nothing added
    /// means end of stream.
    pub(crate) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBufCursor<'_>,
        seen: impl FnOnce(&[u8]),
    ) -> Poll<io::Result<()>> {
        let want = buf.remaining().min(SCRATCH_LEN);
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut seen = Some(seen);
        loop {
            if self.read_blocked {
                ready!(self.stream.poll_readable(cx))?;
                self.read_blocked = false;
            }
            let read = SCRATCH.with_borrow_mut(|scratch| {
                let n = self.stream.get_ref().read(&mut scratch[..want])?;
                if let Some(seen) = seen.take() {
                    seen(&scratch[..n]);
                }
                buf.put_slice(&scratch[..n]);
                Ok::<_, io::Error>(n)
            });
            match read {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.read_blocked = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl hyper::rt::Read for TcpIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_recv(cx, &mut buf, |_| {})
    }
}

impl hyper::rt::Write for TcpIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A TCP socket has no user-space buffer to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }
}
