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
//!   request's task wakes, see the client). The socket here is a
//!   [`Socket`], which remembers whether the last read drained it (it found
//!   nothing, or less than it asked for) and until the worker's reactor
//!   reports an event answers `Pending` without a system call.

use std::cell::RefCell;
use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::ReadBufCursor;

use super::reactor::{Dir, Socket};

/// Most bytes one read takes. hyper asks for at most its buffer's free
/// space (8 KiB by default, more for large bodies); a read of 16 KiB is
/// enough to keep the system calls per byte low.
const SCRATCH_LEN: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH_LEN].into_boxed_slice());
}

/// A connected, non-blocking TCP socket for hyper.
pub(crate) struct TcpIo {
    stream: Socket<TcpStream>,
}

impl TcpIo {
    pub(crate) fn new(stream: Socket<TcpStream>) -> TcpIo {
        TcpIo { stream }
    }

    pub(crate) fn get_ref(&self) -> io::Result<&TcpStream> {
        self.stream.get_ref()
    }

    pub(crate) fn get_mut(&mut self) -> &mut Socket<TcpStream> {
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
        self.stream
            .poll_with(
                Dir::Read,
                cx,
                |mut stream| {
                    SCRATCH.with_borrow_mut(|scratch| {
                        let n = stream.read(&mut scratch[..want])?;
                        if let Some(seen) = seen.take() {
                            seen(&scratch[..n]);
                        }
                        buf.put_slice(&scratch[..n]);
                        Ok(n)
                    })
                },
                // A short read emptied the socket; zero is the end of stream,
                // which stays readable.
                |&n| n > 0 && n < want,
            )
            .map_ok(|_| ())
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
        let len = buf.len();
        self.get_mut().stream.poll_with(
            Dir::Write,
            cx,
            |mut stream| stream.write(buf),
            |&n| n < len,
        )
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        self.get_mut().stream.poll_with(
            Dir::Write,
            cx,
            |mut stream| stream.write_vectored(bufs),
            |&n| n < len,
        )
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A TCP socket has no user-space buffer to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(
            self.get_ref()
                .and_then(|s| s.shutdown(std::net::Shutdown::Write)),
        )
    }
}
