//! HTTP/1 on smol: the server and upstream client the gateway is built from
//! (feature `smol`).
//!
//! hyper 1 does the HTTP; smol's executors run it, one per worker thread,
//! and each worker waits for its own sockets and timers in a reactor of
//! its own (`epoll` on Linux; async-io's reactor elsewhere and off the
//! workers). [`Timer`] is a timer on that reactor. This module knows nothing of OpenAI or Ollama (that
//! is in the `drover` crate's adapters); it moves requests and bytes and
//! enforces the limits that belong to the connection:
//!
//! - [`Runtime`]: a fixed number of worker threads, one executor and one
//!   reactor each, which every connection task runs on.
//! - [`Server`]: the accept loop. `TCP_NODELAY`, a header-read timeout that
//!   answers `408`, header count and size limits that answer `431`, `400`
//!   for malformed heads, keep-alive, a `500` for a handler that panicked,
//!   connection tracking and a graceful [`Shutdown`] (see [Server](#server)
//!   below for which of these hyper does by itself).
//! - [`Client`]: upstream requests over per-address keep-alive pools, with
//!   a connect timeout. A connection has no task of its own: the request
//!   that uses it drives it. [`PooledBody`] returns the connection when read
//!   to the end; [`read_capped`] bounds a body's size.
//!
//! # Server
//!
//! hyper answers malformed heads (`400`) and heads with too many or too
//! large headers (`431`) itself. Its header-read timeout only closes the
//! connection; the server here notices the timeout, and if part of a request
//! had arrived it writes the `408` itself. After these answers the socket is
//! closed the lingering way (write side shut, unread input drained briefly),
//! so the client reads the answer rather than a reset. The header timeout
//! also closes idle keep-alive connections, silently. A handler that panics
//! is answered `500` (with unwinding; under `panic = "abort"` the process
//! aborts). On [`Shutdown`], [`Server::run`] closes the listener, lets each
//! connection finish its current response (idle ones close at once), waits
//! up to [`ServerConfig::shutdown_grace`] and cuts the rest.
//!
//! # Client
//!
//! One pool of idle connections per upstream [`SocketAddr`](std::net::SocketAddr).
//! The caller sets the `Host` header and gives an origin-form URI; the
//! client never resolves names. [`SendError::is_connect`] says whether the
//! request can have reached the upstream.
//!
//! # Example
//!
//! ```
//! use drover_transports::smol::{
//!     read_capped, Client, ClientConfig, Runtime, Server, ServerConfig, Shutdown,
//! };
//! use bytes::Bytes;
//! use http_body_util::Full;
//!
//! let rt = Runtime::new(2)?;
//! let server = Server::bind(([127, 0, 0, 1], 0).into(), ServerConfig::default())?;
//! let addr = server.local_addr();
//! let shutdown = Shutdown::new();
//! let serving = rt.spawn(server.run(
//!     &rt,
//!     |_req, _conn| async { http::Response::new(Full::new(Bytes::from_static(b"hi"))) },
//!     shutdown.clone(),
//! ));
//!
//! let client = Client::new(ClientConfig::default(), &rt);
//! let req = http::Request::get("/")
//!     .header(http::header::HOST, "127.0.0.1")
//!     .body(Full::new(Bytes::new()))?;
//! let body = rt.block_on(async {
//!     let response = client.send(addr, req).await?;
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(read_capped(response.into_body(), 1024).await?)
//! })?;
//! assert_eq!(body, "hi");
//!
//! shutdown.trigger();
//! let summary = rt.block_on(serving)?;
//! assert_eq!(summary.accepted, 1);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

mod client;
mod framing;
mod io;
mod reactor;
mod runtime;
mod server;
mod shutdown;

#[cfg(test)]
mod tests;

pub use client::{
    Client, ClientConfig, PooledBody, ReadError, SendError, UpstreamRequest, read_capped,
};
pub use reactor::Timer;
pub use runtime::{Runtime, Spawner};
pub use server::{ConnInfo, ServeSummary, Server, ServerConfig};
pub use shutdown::{Fired, Shutdown};
