//! [`Client`]: upstream HTTP/1 requests over per-address keep-alive pools.
//!
//! A pool is a stack of idle connections per [`SocketAddr`], behind one short
//! mutex held only to push or pop. A connection goes back to its pool when
//! the response body has been read to its end ([`PooledBody`] holds it until
//! then); a body dropped early closes the connection, so dropping is how a
//! caller cancels an upstream request. Idle connections are reused newest
//! first, only if their driver says they are ready and they have been idle
//! no longer than [`ClientConfig::idle_timeout`].
//!
//! # No connection task
//!
//! A connection's hyper driver (its [`http1::Connection`]) is not spawned
//! as a task of its own: it travels with the connection and is polled by
//! whoever uses it. [`Client::send`]'s future polls it while the request is
//! written and the head awaited; the [`PooledBody`] polls it before each
//! read of the body. So the socket is read and the frames are taken in the
//! same poll of the same task: an upstream stream whose events arrived
//! together is forwarded in one write, and no frame waits for another task
//! to be scheduled. An idle pooled connection is polled by nobody; when it
//! is checked out it is polled once, which notices an upstream that closed
//! it meanwhile (its FIN is read), and such a connection is dropped without
//! the request ever being written to it.
//!
//! The client sends the request as given: the URI should be in origin form
//! (`/v1/chat/completions`) and the caller sets the `Host` header (and any
//! auth header). It never resolves names; callers pass the pinned address.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use std::future::Future as _;

use smol::future::FutureExt as _;

use super::Runtime;
use super::io::TcpIo;
use super::reactor::{self, Timer};

/// The request type [`Client::send`] takes.
pub type UpstreamRequest = http::Request<Full<Bytes>>;

type Sender = SendRequest<Full<Bytes>>;

/// A connection's hyper state machine, polled by its user (see the module
/// docs).
type Driver = http1::Connection<TcpIo, Full<Bytes>>;

/// One upstream connection: the handle requests are sent through and the
/// driver that does its I/O. The driver (about 700 bytes of hyper state)
/// is boxed, so that moving a connection in and out of the pool, and through
/// the futures and bodies that hold it, copies a pointer instead.
struct Conn {
    sender: Sender,
    driver: Box<Driver>,
    /// The driver has finished (the connection is closed); it must not be
    /// polled again.
    closed: bool,
}

impl Conn {
    /// Polls the driver once, unless it has finished. Returns whether the
    /// connection is still open.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed {
            if let Poll::Ready(result) = Pin::new(&mut *self.driver).poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
                self.closed = true;
            }
        }
        !self.closed
    }

    /// Whether a request can be written on this connection now. Polls the
    /// driver (with `cx`) so that an idle connection notices a close by the
    /// upstream and a finished exchange moves the connection back to idle.
    fn poll_reusable(&mut self, cx: &mut Context<'_>) -> bool {
        // Two rounds: the first lets a connection whose last response has
        // just been read return to idle, the second hands out its slot.
        for _ in 0..2 {
            if !self.drive(cx) || self.sender.is_closed() {
                return false;
            }
            match self.sender.poll_ready(cx) {
                Poll::Ready(Ok(())) => return true,
                Poll::Ready(Err(_)) => return false,
                Poll::Pending => {}
            }
        }
        false
    }

    /// Writes `req` and waits for the response head, driving the
    /// connection meanwhile. The connection comes back with the head unless
    /// it closed on the way; `Err((Some(req), _))` hands back a request that
    /// was never written (the connection was not ready or closed first).
    async fn exchange(
        mut self,
        req: UpstreamRequest,
    ) -> Result<(Option<Conn>, http::Response<Incoming>), (Option<UpstreamRequest>, hyper::Error)>
    {
        let mut response = std::pin::pin!(self.sender.try_send_request(req));
        let polled = std::future::poll_fn(|cx| {
            let open = self.drive(cx);
            match response.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                // The driver is gone with the request still unanswered:
                // its answer can only be an error, delivered once the
                // driver is dropped (below).
                Poll::Pending if !open => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        let result = match polled {
            Some(r) => r,
            None => {
                drop(self);
                return match response.await {
                    // Not expected; the body then fails as it is read.
                    Ok(head) => Ok((None, head)),
                    Err(mut e) => Err((e.take_message(), e.into_error())),
                };
            }
        };
        match result {
            Ok(head) => Ok((Some(self), head)),
            Err(mut e) => Err((e.take_message(), e.into_error())),
        }
    }
}

/// Timeouts and pool size of a [`Client`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// How long a connection may sit idle in a pool and still be reused. Keep
    /// it below the upstream's own keep-alive timeout (uvicorn, behind vLLM,
    /// closes after 5 s), so the client does not write to a connection the
    /// upstream is closing.
    pub idle_timeout: Duration,
    /// Most idle connections kept per address; `0` disables pooling.
    pub max_idle_per_host: usize,
}

impl Default for ClientConfig {
    /// 2 s connect timeout, 4 s idle timeout, 32 idle connections per address.
    fn default() -> ClientConfig {
        ClientConfig {
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(4),
            max_idle_per_host: 32,
        }
    }
}

/// Why [`Client::send`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// The TCP connect failed (refused, unreachable, out of sockets, or the
    /// runtime is gone). Nothing was sent: safe to retry anywhere.
    Connect(io::Error),
    /// The TCP connect did not finish within
    /// [`ClientConfig::connect_timeout`]. Nothing was sent.
    ConnectTimeout,
    /// The connection failed after the request was handed to it; the upstream
    /// may have seen it.
    Http(hyper::Error),
}

impl SendError {
    /// Whether the request never left this process (`Connect` or
    /// `ConnectTimeout`), so retrying it on any node is safe.
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_) | SendError::ConnectTimeout)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect failed: {e}"),
            SendError::ConnectTimeout => f.write_str("connect timed out"),
            SendError::Http(e) => write!(f, "upstream connection failed: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(e) => Some(e),
            SendError::ConnectTimeout => None,
            SendError::Http(e) => Some(e),
        }
    }
}

/// An HTTP/1 client with a keep-alive pool per upstream address. Cloning is
/// cheap and clones share the pools.
///
/// Connections are driven by the futures and bodies that use them (see the
/// module docs), so the client needs no task of its own and works from any
/// executor, including `smol::block_on`. The [`Runtime`] given to
/// [`Client::new`] only decides the pools: each of its workers reuses the
/// connections it opened, so no connection's I/O wakes another thread.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ClientConfig,
    runtime: usize,
    /// Idle connections by (worker, address). Threads that are not workers
    /// share slot `usize::MAX`.
    pools: Mutex<HashMap<(usize, SocketAddr), Vec<Idle>>>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client whose pools follow the workers of `rt`.
    pub fn new(cfg: ClientConfig, rt: &Runtime) -> Client {
        Client {
            inner: Arc::new(Inner {
                cfg,
                runtime: rt.id(),
                pools: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Sends one request to `addr`, on an idle pooled connection if one is
    /// ready, else on a new one. The connection returns to the pool only when
    /// the response body has been read to its end; a body dropped early
    /// closes the connection (so cancel = drop). Dropping the returned future
    /// before the response head arrives also closes the connection.
    ///
    /// If a pooled connection turns out to be closed before the request was
    /// written to it, the request goes on another connection; errors after
    /// that are returned as [`SendError::Http`].
    ///
    /// # Errors
    ///
    /// See [`SendError`]; [`SendError::is_connect`] tells whether the request
    /// may have reached the upstream.
    pub async fn send(
        &self,
        addr: SocketAddr,
        req: UpstreamRequest,
    ) -> Result<http::Response<PooledBody>, SendError> {
        let mut req = req;
        let key = (self.inner.slot(), addr);
        while let Some(conn) = self.inner.checkout(key).await {
            match conn.exchange(req).await {
                Ok((conn, response)) => return Ok(self.inner.wrap(key, conn, response)),
                Err((Some(unsent), _)) => req = unsent, // not written: next one
                Err((None, e)) => return Err(SendError::Http(e)),
            }
        }
        let conn = self.inner.connect(addr).await?;
        match conn.exchange(req).await {
            Ok((conn, response)) => Ok(self.inner.wrap(key, conn, response)),
            Err((_, e)) => Err(SendError::Http(e)),
        }
    }

    /// How many idle connections the pool holds for `addr` now.
    pub fn idle_connections(&self, addr: SocketAddr) -> usize {
        self.inner
            .lock()
            .iter()
            .filter(|((_, a), _)| *a == addr)
            .map(|(_, idle)| idle.len())
            .sum()
    }
}

impl Inner {
    /// The pool slot of the calling thread: its worker index, or
    /// `usize::MAX` for a thread that is not one of the runtime's workers.
    fn slot(&self) -> usize {
        Runtime::worker_of(self.runtime).unwrap_or(usize::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Vec<Idle>>> {
        // Pool operations are single pushes and pops; a panic cannot leave a
        // pool half-changed, so a poisoned lock is still usable.
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pops idle connections to `addr`, newest first, until one is fresh
    /// and ready for a request. The others are dropped (closed) outside the
    /// lock.
    async fn checkout(&self, key: Key) -> Option<Conn> {
        loop {
            let mut idle = {
                let mut pools = self.lock();
                pools.get_mut(&key)?.pop()?
            };
            if idle.since.elapsed() > self.cfg.idle_timeout {
                continue;
            }
            if std::future::poll_fn(|cx| Poll::Ready(idle.conn.poll_reusable(cx))).await {
                return Some(idle.conn);
            }
        }
    }

    /// Returns a connection whose response has ended to the pool.
    fn checkin(&self, key: Key, conn: Conn) {
        if conn.closed || conn.sender.is_closed() || self.cfg.max_idle_per_host == 0 {
            return;
        }
        let idle = Idle {
            conn,
            since: Instant::now(),
        };
        let mut pools = self.lock();
        let pool = pools.entry(key).or_default();
        if pool.len() < self.cfg.max_idle_per_host {
            pool.push(idle);
            return;
        }
        drop(pools);
        // Full: `idle` is dropped here, outside the lock, closing it.
    }

    fn wrap(
        self: &Arc<Self>,
        key: Key,
        conn: Option<Conn>,
        response: http::Response<Incoming>,
    ) -> http::Response<PooledBody> {
        response.map(|body| {
            let held = conn.map(|conn| Held {
                pool: Arc::clone(self),
                key,
                conn,
            });
            let mut body = PooledBody { body, held };
            if body.body.is_end_stream() {
                // No body to read (204, 304, Content-Length: 0): the
                // connection is free now.
                body.release();
            }
            body
        })
    }

    /// Opens a connection, bounded by the connect timeout.
    async fn connect(&self, addr: SocketAddr) -> Result<Conn, SendError> {
        // The timer is polled first, so an elapsed deadline wins even if the
        // connect is ready in the same poll.
        let stream = async {
            Timer::after(self.cfg.connect_timeout).await;
            Err(SendError::ConnectTimeout)
        }
        .or(async { reactor::connect(addr).await.map_err(SendError::Connect) })
        .await?;
        if let Err(e) = stream.get_ref().and_then(|s| s.set_nodelay(true)) {
            tracing::debug!(%addr, error = %e, "TCP_NODELAY not set");
        }
        // Reads of 4 KiB: an LLM reply arrives a token (tens of bytes) at a
        // time, and with thousands of streams open each connection's read
        // buffer is most of what it costs.
        let (sender, driver) = http1::Builder::new()
            .read_buf_exact_size(Some(4096))
            .handshake(TcpIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        Ok(Conn {
            sender,
            driver: Box::new(driver),
            closed: false,
        })
    }
}

/// A response body from [`Client::send`]. It holds the connection, and
/// drives it, until the body has been read to its end, then returns it to
/// the pool; dropped before that, it closes the connection.
pub struct PooledBody {
    body: Incoming,
    held: Option<Held>,
}

struct Held {
    pool: Arc<Inner>,
    key: Key,
    conn: Conn,
}

/// A pool's key: (worker slot, upstream address).
type Key = (usize, SocketAddr);

impl PooledBody {
    fn release(&mut self) {
        if let Some(held) = self.held.take() {
            held.pool.checkin(held.key, held.conn);
        }
    }
}

impl fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBody")
            .field("holds_connection", &self.held.is_some())
            .finish()
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        // Read the socket first, so that the frame it yields (if any) is
        // taken in this same poll.
        if let Some(held) = &mut this.held {
            held.conn.drive(cx);
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            // A consumer such as hyper's server stops polling once
            // `is_end_stream` is true, so release as soon as it is.
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.held = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Why [`read_capped`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The body is longer than the cap (known from its length, or counted).
    TooLarge,
    /// Reading the body failed.
    Http(hyper::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::TooLarge => f.write_str("body larger than the cap"),
            ReadError::Http(e) => write!(f, "reading the body failed: {e}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::TooLarge => None,
            ReadError::Http(e) => Some(e),
        }
    }
}

/// Reads a whole body, failing with [`ReadError::TooLarge`] as soon as it is
/// known to exceed `cap` bytes: at once if its declared length is over, else
/// when the frames read so far add up to more. At most `cap` plus one frame
/// is buffered. A body of one data frame is returned without copying.
/// Trailers are ignored. Works for request bodies ([`Incoming`]) as well as
/// [`PooledBody`].
///
/// # Errors
///
/// [`ReadError::TooLarge`] or the body's own error as [`ReadError::Http`].
pub async fn read_capped<B>(body: B, cap: usize) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<hyper::Error>,
{
    let hint = body.size_hint();
    if usize::try_from(hint.lower()).map_or(true, |lower| lower > cap) {
        return Err(ReadError::TooLarge);
    }
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| ReadError::Http(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > cap {
            return Err(ReadError::TooLarge);
        }
        match (&mut first, &mut joined) {
            (_, Some(joined)) => joined.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (Some(head), None) => {
                let expected = hint.exact().and_then(|n| usize::try_from(n).ok());
                let mut buf = BytesMut::with_capacity(expected.unwrap_or(total).max(total));
                buf.extend_from_slice(head);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
        }
    }
    Ok(match (first, joined) {
        (_, Some(joined)) => joined.freeze(),
        (Some(only), None) => only,
        (None, None) => Bytes::new(),
    })
}
