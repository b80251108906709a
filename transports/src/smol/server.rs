//! [`Server`]: the HTTP/1 accept loop, its limits and its graceful shutdown.
//!
//! # What hyper does and what this module adds
//!
//! - **Malformed request line or header** (`GET\0 / HTTP/1.1`, a bad header
//!   name): hyper answers `400 Bad Request` and closes.
//! - **Too many headers** (over [`ServerConfig::max_headers`]) or a **head
//!   too large** (over [`ServerConfig::max_header_bytes`], request line
//!   included): hyper answers `431 Request Header Fields Too Large` and
//!   closes (its `max_headers` and `max_header_size` options).
//! - **Header read timeout**: hyper's `header_read_timeout` only closes the
//!   connection, without a response. This module keeps the socket, and if any
//!   byte of a request had arrived it writes
//!   `408 Request Timeout` (`connection: close`) before closing. A connection
//!   that sent nothing since its last response is an idle keep-alive
//!   connection, and is closed silently.
//! - **Ambiguous body framing** (`Content-Length` with `Transfer-Encoding`,
//!   a repeated `Content-Length`, an encoding other than a lone `chunked`):
//!   hyper would accept these (RFC 9112 lets it), but each is how request
//!   smuggling starts, so this module answers `400 Bad Request` and closes
//!   before the handler is called (see `framing.rs`).
//! - After any of these answers, and whenever a connection closes with
//!   unread input waiting (a handler that refused a body without reading
//!   it, such as a `413`), the socket is closed in the "lingering" way
//!   (write side shut, unread input drained for a moment), so the client
//!   reads the answer instead of a reset.
//! - A handler that **panics** is answered `500 Internal Server Error`; the
//!   connection and every other connection carry on. (This needs unwinding:
//!   a binary built with `panic = "abort"` aborts instead.)
//!
//! The header timeout runs whenever a connection waits for a request head,
//! so it is also the keep-alive idle timeout.
//!
//! # Graceful shutdown
//!
//! When the [`Shutdown`] passed to [`Server::run`] fires, the listener is
//! closed (new connections are refused), every connection is asked to close
//! after its current response (idle keep-alive connections close at once),
//! and the server waits up to [`ServerConfig::shutdown_grace`]. Connections
//! still open then are cut.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use smol::future::{self, FutureExt as _};

use super::framing::FramingGuard;
use super::io::TcpIo;
use super::reactor::{Dir, HyperTimer, Socket, Timer};
use super::{Fired, Runtime, Shutdown};

/// Limits and timeouts of a [`Server`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// How long a client may take to send a request head (request line and
    /// headers), counted from when the connection starts waiting for it; also
    /// the idle timeout of keep-alive connections. Over it: `408` if part of a
    /// request arrived, a silent close otherwise. `Duration::ZERO` disables it.
    pub header_timeout: Duration,
    /// Most headers in one request; more get `431`. Up to 100 the parser's
    /// header table lives on the stack; above 100 it is allocated per request.
    pub max_headers: usize,
    /// Most bytes in a request head, request line included; more get `431`.
    pub max_header_bytes: usize,
    /// Whether connections may carry more than one request.
    pub keep_alive: bool,
    /// How long [`Server::run`] waits, after its shutdown fired, for open
    /// connections to finish their current response before cutting them.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    /// 10 s header timeout, 100 headers, 16 KiB of head, keep-alive on,
    /// 10 s grace.
    fn default() -> ServerConfig {
        ServerConfig {
            header_timeout: Duration::from_secs(10),
            max_headers: HYPER_MAX_HEADERS,
            max_header_bytes: 16 * 1024,
            keep_alive: true,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The two ends of the connection a request came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The server's address on this connection.
    pub local: SocketAddr,
}

/// What [`Server::run`] did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Connections accepted over the server's life.
    pub accepted: u64,
    /// Connections open when the server stopped accepting.
    pub open_at_shutdown: usize,
    /// Connections still open when the grace period ended, which were cut.
    pub cut: usize,
}

/// After an accept error that is not about one connection (out of file
/// descriptors, out of memory), wait this long before accepting again, so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Lingering close: how long to drain a client's unread input, and how much
/// of it, after answering 400/408/431, before closing the socket.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// After the grace period, how long to wait for cut connections to finish
/// dropping their sockets.
const CUT_WAIT: Duration = Duration::from_secs(1);

/// hyper's smallest allowed read/write buffer limit.
const MIN_BUF: usize = 8 * 1024;

const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
const PANIC_BODY: &[u8] = b"internal server error\n";
const AMBIGUOUS_BODY: &[u8] = b"ambiguous request framing (Content-Length with Transfer-Encoding, \
a repeated Content-Length, or a Transfer-Encoding other than chunked)\n";

/// An HTTP/1 server bound to a TCP address. [`run`](Server::run) serves it.
pub struct Server {
    listener: Socket<TcpListener>,
    local: SocketAddr,
    cfg: ServerConfig,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local", &self.local)
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// The body of every response the server writes: the handler's, or the
/// server's own `500` after a handler panicked.
type ResponseBody<B> = Either<B, Full<Bytes>>;

impl Server {
    /// Binds `addr` now (so a taken port or a bad address is reported before
    /// anything runs). Port 0 picks a free port; see
    /// [`local_addr`](Server::local_addr).
    ///
    /// # Errors
    ///
    /// The socket could not be bound or registered with the reactor.
    pub fn bind(addr: SocketAddr, cfg: ServerConfig) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        // Registered with the reactor of the worker (or thread) that runs
        // the accept loop, when it first waits.
        let listener = Socket::new(listener);
        Ok(Server {
            listener,
            local,
            cfg,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Accepts until `shutdown` fires, then stops accepting, asks every
    /// connection to close after its current response (hyper's graceful
    /// shutdown; idle keep-alive connections close at once), waits up to
    /// [`ServerConfig::shutdown_grace`], cuts what is still open, and returns
    /// the counts.
    ///
    /// Each connection runs as its own task on `rt`; the handler is called
    /// once per request, on that task. The returned future does not borrow
    /// `rt`, so it can be spawned or `block_on`-ed.
    ///
    /// # Errors
    ///
    /// The listener reported `InvalidInput` (it is not a listening socket any
    /// more); the server then drains its connections as on shutdown before
    /// returning the error. Other accept errors are logged and retried: those
    /// about one connection at once, the others (such as running out of file
    /// descriptors) after a short pause.
    pub fn run<H, Fut, B>(
        self,
        rt: &Runtime,
        handler: H,
        shutdown: Shutdown,
    ) -> impl Future<Output = io::Result<ServeSummary>> + Send + 'static
    where
        H: Fn(http::Request<Incoming>, ConnInfo) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = http::Response<B>> + Send + 'static,
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // New connections are dealt to the workers in turn; each stays on
        // its worker (see `Runtime`).
        let executors: Vec<Arc<smol::Executor<'static>>> = rt.executors().to_vec();
        let builder = Arc::new(builder(&self.cfg));
        async move {
            let Server {
                mut listener,
                local,
                cfg,
            } = self;
            let tracker = Arc::new(Tracker::default());
            let drain = Shutdown::new();
            let cut = Shutdown::new();
            let mut stop = shutdown.fired();
            let mut accepted = 0u64;
            let mut fatal = None;
            loop {
                let next = async { Some(listener.io_with(Dir::Read, TcpListener::accept).await) }
                    .or(async {
                        (&mut stop).await;
                        None
                    })
                    .await;
                match next {
                    None => break,
                    Some(Ok((stream, peer))) => {
                        accepted += 1;
                        let conn = serve_conn(
                            stream,
                            peer,
                            local,
                            Arc::clone(&builder),
                            cfg.max_header_bytes,
                            handler.clone(),
                            drain.fired(),
                        );
                        let guard = tracker.enter();
                        let cut = cut.fired();
                        let worker = usize::try_from(accepted).unwrap_or(0) % executors.len();
                        executors[worker]
                            .spawn(async move {
                                conn.or(cut).await;
                                drop(guard);
                            })
                            .detach();
                    }
                    Some(Err(e)) => match e.kind() {
                        io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut => {}
                        io::ErrorKind::InvalidInput => {
                            tracing::error!(error = %e, "accept failed; server stops");
                            fatal = Some(e);
                            break;
                        }
                        _ => {
                            tracing::warn!(error = %e, "accept failed; pausing {ACCEPT_BACKOFF:?}");
                            let stopped = async {
                                Timer::after(ACCEPT_BACKOFF).await;
                                false
                            }
                            .or(async {
                                (&mut stop).await;
                                true
                            })
                            .await;
                            if stopped {
                                break;
                            }
                        }
                    },
                }
            }
            // Closing the listener makes the kernel refuse new connections.
            drop(listener);
            // Counted before the connections are told to close, so ones that
            // close at once (idle) still count as open at shutdown.
            let open_at_shutdown = tracker.close();
            drain.trigger();
            let mut left = open_at_shutdown;
            if left > 0 {
                let drained = tracker.drained.fired();
                wait_or(drained, cfg.shutdown_grace).await;
                left = tracker.live();
                if left > 0 {
                    cut.trigger();
                    wait_or(tracker.drained.fired(), CUT_WAIT).await;
                }
            }
            if let Some(e) = fatal {
                return Err(e);
            }
            Ok(ServeSummary {
                accepted,
                open_at_shutdown,
                cut: left,
            })
        }
    }
}

/// Waits for `fired` or `limit`, whichever comes first.
async fn wait_or(fired: Fired, limit: Duration) {
    fired
        .or(async {
            Timer::after(limit).await;
        })
        .await;
}

fn builder(cfg: &ServerConfig) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(HyperTimer)
        .keep_alive(cfg.keep_alive)
        .max_header_size(cfg.max_header_bytes)
        // The buffer limit bounds memory per connection; the head limit
        // above is what answers 431, so leave room past it.
        .max_buf_size(cfg.max_header_bytes.saturating_add(MIN_BUF).max(MIN_BUF))
        .header_read_timeout(if cfg.header_timeout.is_zero() {
            None
        } else {
            Some(cfg.header_timeout)
        });
    // hyper's default is 100 headers, parsed into arrays on the stack.
    // Setting any limit, even 100, makes it fill arrays of that size
    // element by element for every request (about 6 KiB of writes), so
    // only a different limit is set.
    if cfg.max_headers != HYPER_MAX_HEADERS {
        b.max_headers(cfg.max_headers);
    }
    b
}

/// hyper's header-count limit when none is set.
const HYPER_MAX_HEADERS: usize = 100;

/// Serves one connection until it closes, then answers 408 if a request
/// head timed out part-way, and lingers after any error answer.
async fn serve_conn<H, Fut, B>(
    stream: TcpStream,
    peer: SocketAddr,
    listen: SocketAddr,
    builder: Arc<http1::Builder>,
    max_head: usize,
    handler: H,
    mut drain: Fired,
) where
    H: Fn(http::Request<Incoming>, ConnInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = http::Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "TCP_NODELAY not set");
    }
    // A listener on a wildcard address has a different local address per
    // connection; on error fall back to the listener's.
    let local = stream.local_addr().unwrap_or(listen);
    let info = ConnInfo { peer, local };
    let refused = Arc::new(AtomicBool::new(false));
    let io = ServerIo {
        // Registered with this worker's reactor when first read.
        io: TcpIo::new(Socket::new(stream)),
        unanswered: false,
        guard: FramingGuard::new(max_head),
        refused: Arc::clone(&refused),
    };
    let service = {
        let refused = Arc::clone(&refused);
        hyper::service::service_fn(move |req| {
            respond(&handler, req, info, refused.load(Ordering::Relaxed))
        })
    };
    let mut conn = builder.serve_connection(io, service);
    let mut draining = false;
    let result = future::poll_fn(|cx| {
        if !draining && Pin::new(&mut drain).poll(cx).is_ready() {
            draining = true;
            Pin::new(&mut conn).graceful_shutdown();
        }
        Pin::new(&mut conn).poll(cx)
    })
    .await;
    let e = match result {
        Ok(()) => {
            // Closed by hyper after a response. If the client's input is
            // still waiting (a body the handler refused unread, or a
            // refused request), close the lingering way so the answer is
            // read rather than destroyed by a reset.
            let mut io = conn.into_parts().io;
            let pending = matches!(
                io.io.get_ref().and_then(|s| s.peek(&mut [0u8; 1])),
                Ok(n) if n > 0
            );
            if pending || refused.load(Ordering::Relaxed) {
                linger(io.io.get_mut()).await;
            }
            return;
        }
        Err(e) => e,
    };
    let timed_out = e.is_timeout();
    if !timed_out && !e.is_parse() && !e.is_parse_too_large() {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
        return;
    }
    let mut io = conn.into_parts().io;
    if timed_out {
        if !io.unanswered {
            // Idle keep-alive connection: nothing to answer.
            return;
        }
        tracing::debug!(%peer, "request head timed out; answering 408");
        let written = async { write_all(io.io.get_mut(), REQUEST_TIMEOUT).await.is_ok() }
            .or(async {
                Timer::after(LINGER_TIME).await;
                false
            })
            .await;
        if !written {
            return;
        }
    } else {
        tracing::debug!(%peer, error = %e, "bad request head; hyper answered it");
    }
    linger(io.io.get_mut()).await;
}

/// Shuts the write side and reads (and discards) what the client still
/// sends, for a bounded time and amount. Closing a socket with unread input
/// makes the kernel send a reset, which can destroy the answer just written
/// before the client reads it.
async fn write_all(stream: &mut Socket<TcpStream>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = stream
            .io_with(Dir::Write, |mut s| io::Write::write(&mut s, bytes))
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

async fn linger(stream: &mut Socket<TcpStream>) {
    if stream
        .get_ref()
        .and_then(|s| s.shutdown(std::net::Shutdown::Write))
        .is_err()
    {
        return;
    }
    async {
        // Allocated only on this error path, so it does not enlarge every
        // connection's task.
        let mut buf = vec![0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match stream
                .io_with(Dir::Read, |mut s| io::Read::read(&mut s, &mut buf))
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    }
    .or(async {
        Timer::after(LINGER_TIME).await;
    })
    .await;
}

/// Calls the handler with unwinding caught: a panic while creating or polling
/// its future becomes a `500`.
///
/// The returned future holds the handler's future once, in place. (An async
/// block here held it up to three times over, once per stage it went
/// through, and hyper keeps that future in a box per connection and moves
/// each request's into it.)
fn respond<H, Fut, B>(
    handler: &H,
    req: http::Request<Incoming>,
    info: ConnInfo,
    ambiguous: bool,
) -> Respond<Fut>
where
    H: Fn(http::Request<Incoming>, ConnInfo) -> Fut,
    Fut: Future<Output = http::Response<B>> + Send + 'static,
    B: Send + 'static,
{
    if ambiguous {
        // Never reaches the handler; the connection closes after this.
        tracing::debug!(peer = %info.peer, "ambiguous request framing; answered 400");
        return Respond::Ambiguous;
    }
    match std::panic::catch_unwind(AssertUnwindSafe(|| handler(req, info))) {
        Ok(fut) => Respond::Running {
            fut: AssertUnwindSafe(fut).catch_unwind(),
            peer: info.peer,
        },
        Err(_) => {
            tracing::error!(peer = %info.peer, "request handler panicked; answered 500");
            Respond::Panicked
        }
    }
}

pin_project_lite::pin_project! {
    /// The future [`respond`] returns.
    #[project = RespondProj]
    enum Respond<Fut> {
        /// The handler's future, with unwinding caught.
        Running {
            #[pin]
            fut: future::CatchUnwind<AssertUnwindSafe<Fut>>,
            peer: SocketAddr,
        },
        /// The request had ambiguous framing: `400` and close.
        Ambiguous,
        /// Creating the handler's future panicked: `500`.
        Panicked,
    }
}

impl<Fut, B> Future for Respond<Fut>
where
    Fut: Future<Output = http::Response<B>>,
{
    type Output = Result<http::Response<ResponseBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(match self.project() {
            RespondProj::Running { fut, peer } => match std::task::ready!(fut.poll(cx)) {
                Ok(response) => response.map(Either::Left),
                Err(_) => {
                    tracing::error!(peer = %peer, "request handler panicked; answered 500");
                    panic_response()
                }
            },
            RespondProj::Ambiguous => {
                let mut response = text_response(
                    http::StatusCode::BAD_REQUEST,
                    Bytes::from_static(AMBIGUOUS_BODY),
                );
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
                response
            }
            RespondProj::Panicked => panic_response(),
        }))
    }
}

fn panic_response<B>() -> http::Response<ResponseBody<B>> {
    text_response(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        Bytes::from_static(PANIC_BODY),
    )
}

/// A plain-text answer written by the server itself.
fn text_response<B>(status: http::StatusCode, body: Bytes) -> http::Response<ResponseBody<B>> {
    let mut response = http::Response::new(Either::Right(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The socket as hyper sees it, noting whether request bytes arrived since
/// the last response bytes were written, which tells a timed-out request
/// head (answer 408) from an idle keep-alive connection (close silently).
///
/// A pipelined request that arrives in the same read as the end of the
/// previous one, and then stalls, is closed silently: its bytes were read
/// before the previous response was written.
struct ServerIo {
    io: TcpIo,
    unanswered: bool,
    /// Follows the request framing in the bytes read.
    guard: FramingGuard,
    /// Set once `guard` saw an ambiguous head: every request still to be
    /// answered on this connection is refused.
    refused: Arc<AtomicBool>,
}

impl hyper::rt::Read for ServerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let (unanswered, guard, refused) = (&mut this.unanswered, &mut this.guard, &this.refused);
        this.io.poll_recv(cx, &mut buf, |bytes| {
            *unanswered |= !bytes.is_empty();
            if !guard.refuse() {
                guard.feed(bytes);
                if guard.refuse() {
                    refused.store(true, Ordering::Relaxed);
                }
            }
        })
    }
}

impl hyper::rt::Write for ServerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.unanswered &= n == 0;
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.unanswered &= n == 0;
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Counts open connections and says when the last one closed after the
/// server stopped accepting.
#[derive(Default)]
struct Tracker {
    live: AtomicUsize,
    closing: AtomicBool,
    drained: Shutdown,
}

/// One open connection; dropping it ends the connection's count.
struct ConnGuard(Arc<Tracker>);

impl Tracker {
    fn enter(self: &Arc<Self>) -> ConnGuard {
        self.live.fetch_add(1, Ordering::SeqCst);
        ConnGuard(Arc::clone(self))
    }

    /// Marks the server closed and returns how many connections are open.
    fn close(&self) -> usize {
        // SeqCst on both sides: either this load sees the last guard's
        // decrement, or that guard sees `closing` and fires `drained`.
        self.closing.store(true, Ordering::SeqCst);
        let live = self.live.load(Ordering::SeqCst);
        if live == 0 {
            self.drained.trigger();
        }
        live
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 && self.0.closing.load(Ordering::SeqCst)
        {
            self.0.drained.trigger();
        }
    }
}
