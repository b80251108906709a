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
//! The client sends the request as given: the URI should be in origin form
//! (`/v1/chat/completions`) and the caller sets the `Host` header (and any
//! auth header). It never resolves names; callers pass the pinned address.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use smol::future::FutureExt as _;
use smol::{Async, Timer};
use smol_hyper::rt::FuturesIo;

use super::Runtime;

/// The request type [`Client::send`] takes.
pub type UpstreamRequest = http::Request<Full<Bytes>>;

type Sender = SendRequest<Full<Bytes>>;

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
/// Connection drivers run on the [`Runtime`] given to [`Client::new`]; once
/// that runtime is dropped, [`send`](Client::send) fails with
/// [`SendError::Connect`] (`NotConnected`).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ClientConfig,
    /// The runtime's workers, by index; connection drivers run on the
    /// worker that opened them.
    executors: Vec<Weak<smol::Executor<'static>>>,
    runtime: usize,
    /// Idle connections by (worker, address): a request reuses only a
    /// connection driven on its own worker, so neither wakes the other
    /// across threads. Threads that are not workers share slot
    /// `usize::MAX` (their connections are driven on worker 0).
    pools: Mutex<HashMap<(usize, SocketAddr), Vec<Idle>>>,
}

struct Idle {
    sender: Sender,
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
    /// A client whose connections are driven on `rt`.
    pub fn new(cfg: ClientConfig, rt: &Runtime) -> Client {
        Client {
            inner: Arc::new(Inner {
                cfg,
                executors: rt.executors().iter().map(Arc::downgrade).collect(),
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
        while let Some(mut sender) = self.inner.checkout(key) {
            if !sender.is_ready() && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(response) => return Ok(self.inner.wrap(key, sender, response)),
                Err(mut e) => match e.take_message() {
                    // Not written: try the next connection.
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
        let mut sender = self.inner.connect(key).await?;
        match sender.send_request(req).await {
            Ok(response) => Ok(self.inner.wrap(key, sender, response)),
            Err(e) => Err(SendError::Http(e)),
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

    /// Pops the newest idle connection to `addr` that is open and fresh.
    /// Stale ones are dropped (after the lock is released).
    fn checkout(&self, key: Key) -> Option<Sender> {
        let mut stale = Vec::new();
        let found = {
            let mut pools = self.lock();
            let idle = pools.get_mut(&key)?;
            let mut found = None;
            while let Some(conn) = idle.pop() {
                if conn.sender.is_closed() || conn.since.elapsed() > self.cfg.idle_timeout {
                    stale.push(conn);
                } else {
                    found = Some(conn.sender);
                    break;
                }
            }
            found
        };
        drop(stale);
        found
    }

    /// Returns a connection whose response has ended to the pool.
    fn checkin(&self, key: Key, sender: Sender) {
        if sender.is_closed() || self.cfg.max_idle_per_host == 0 {
            return;
        }
        let idle = Idle {
            sender,
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
        sender: Sender,
        response: http::Response<Incoming>,
    ) -> http::Response<PooledBody> {
        response.map(|body| {
            if body.is_end_stream() {
                // No body to read (204, 304, Content-Length: 0): the
                // connection is free now.
                self.checkin(key, sender);
                PooledBody { body, held: None }
            } else {
                PooledBody {
                    body,
                    held: Some(Held {
                        pool: Arc::clone(self),
                        key,
                        sender,
                    }),
                }
            }
        })
    }

    /// Opens a connection (bounded by the connect timeout) and starts its
    /// driver on the runtime.
    async fn connect(&self, key: Key) -> Result<Sender, SendError> {
        let (slot, addr) = key;
        // The driver runs on the calling worker (or worker 0 for other
        // threads), beside the requests that will use the connection.
        let worker = if slot == usize::MAX { 0 } else { slot };
        let Some(executor) = self.executors.get(worker).and_then(Weak::upgrade) else {
            return Err(SendError::Connect(io::Error::new(
                io::ErrorKind::NotConnected,
                "the runtime that drives upstream connections has stopped",
            )));
        };
        // The timer is polled first, so an elapsed deadline wins even if the
        // connect is ready in the same poll.
        let stream = async {
            Timer::after(self.cfg.connect_timeout).await;
            Err(SendError::ConnectTimeout)
        }
        .or(async {
            Async::<TcpStream>::connect(addr)
                .await
                .map_err(SendError::Connect)
        })
        .await?;
        if let Err(e) = stream.get_ref().set_nodelay(true) {
            tracing::debug!(%addr, error = %e, "TCP_NODELAY not set");
        }
        // Reads of 4 KiB: an LLM reply arrives a token (tens of bytes) at a
        // time, and with thousands of streams open each connection's read
        // buffer is most of what it costs.
        let (sender, conn) = http1::Builder::new()
            .read_buf_exact_size(Some(4096))
            .handshake(FuturesIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        executor
            .spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%addr, error = %e, "upstream connection ended with an error");
                }
            })
            .detach();
        Ok(sender)
    }
}

/// A response body from [`Client::send`]. It holds the connection until the
/// body has been read to its end, then returns it to the pool; dropped
/// before that, it closes the connection.
pub struct PooledBody {
    body: Incoming,
    held: Option<Held>,
}

struct Held {
    pool: Arc<Inner>,
    key: Key,
    sender: Sender,
}

/// A pool's key: (worker slot, upstream address).
type Key = (usize, SocketAddr);

impl PooledBody {
    fn release(&mut self) {
        if let Some(held) = self.held.take() {
            held.pool.checkin(held.key, held.sender);
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
