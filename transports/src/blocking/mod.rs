//! A synchronous driver on [ureq] 3 (feature `blocking`): runs a core
//! [`Call`](drover_core::call::Call) to its end on the calling thread.
//!
//! ```text
//! begin ─▶ poll ─▶ Send   ─▶ queue the attempt (one at a time: no hedging)
//!            ▲     Cancel ─▶ forget a queued attempt
//!            │     Wait   ─▶ run the next attempt with ureq, bounded by the
//!            │               Wait deadline (attempt, TTFT and call
//!            │               timeouts), or sleep until a queue grant
//!            └──── handle(event) ◀── FirstByte / Completed / Failed /
//!                                     Overloaded(Retry-After) / ClientError
//!                  Finish ─▶ return the answer (or the typed error)
//! ```
//!
//! The driver knows HTTP, not API formats: the caller supplies the protocol
//! through [`Exchange`] (build the upstream request for a node, validate a
//! whole reply) and [`Decoder`] (classify a stream's chunks: first token,
//! end marker, invalid reply). The `drover` crate implements them for the
//! OpenAI and Ollama formats (`drover::sync`).
//!
//! # One attempt at a time
//!
//! A blocking driver has one thread per call, the caller's, so it never
//! hedges: [`Driver::new`] turns [`HedgeConfig::enabled`] off in the
//! router's config. Failover is sequential, exactly as the core orders it.
//!
//! # Timeouts without threads
//!
//! No thread is spawned, per call or otherwise. Every attempt is bounded by
//! ureq's per-request timeouts, computed from the core's `Wait` deadline
//! (`until`, the earliest of the attempt timeout, the TTFT timeout for
//! streams and the call's own deadline):
//!
//! - connecting: the driver's connect timeout, or less if the deadline is
//!   nearer;
//! - sending the request and receiving the response headers: until the
//!   deadline;
//! - a whole (non-streamed) reply: every read until the deadline (and the
//!   deadline is checked between reads);
//! - a stream before its first token: every read is bounded by the time
//!   left to the deadline when the attempt started, and the deadline is
//!   checked between reads, so an upstream that sends its headers and then
//!   stalls is cut at the deadline (at worst one read timeout late if the
//!   headers themselves came just before it);
//! - a stream after its first token: the same per-read bound is the longest
//!   silence allowed between two chunks, and the call's deadline
//!   (`call_timeout`, the gateway's `stream_total`) bounds the whole body.
//!
//! ureq's global and per-call timeouts are deliberately not used: with
//! either set, ureq resolves the host name on a helper thread; node URLs
//! here are IP addresses resolved once, so resolution never blocks.
//!
//! # Active probes
//!
//! [`Driver::run_due_probes`] sends the health and inventory probes the core
//! has due (see `drover_core::probe`), each a `GET` bounded by the probe
//! timeout, with the paths and catalog parsing of a [`ProbeTarget`]. It runs
//! on the caller's thread, when the caller asks: from its own loop, or from
//! one thread paced by [`Driver::next_probe_at`].
//!
//! # Cancellation
//!
//! A [`ChunkStream`] dropped before its end closes the upstream connection
//! (it is never returned to ureq's pool) and cancels the call
//! ([`Event::ClientCancelled`](drover_core::call::Event::ClientCancelled)):
//! its permit and node slot are returned, and the node is not charged.
//!
//! # Queued calls
//!
//! A call that the router queues waits on a condition variable until a
//! finishing call's [`poll_wakeup`](drover_core::Router::poll_wakeup) names
//! it, or until its queue deadline.
//!
//! [`HedgeConfig::enabled`]: drover_core::config::HedgeConfig::enabled

use std::fmt;

use drover_core::catalog::ModelId;
use drover_core::node::NodeId;
use drover_core::reason::{Failure, Reject};

mod attempt;
mod driver;
mod probe;
mod stream;

pub use driver::Driver;
pub use probe::ProbeTarget;
pub use stream::ChunkStream;

/// Settings of a [`Driver`] that the router's config does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// Longest time to open a connection to a node.
    pub connect_timeout: std::time::Duration,
    /// Largest upstream reply read, streamed or not; a larger one is an
    /// invalid reply (before the first token) or a broken stream (after).
    pub max_response_bytes: usize,
    /// Idle keep-alive connections kept per node.
    pub max_idle_per_node: usize,
}

impl Default for DriverConfig {
    /// 2 s to connect, 16 MiB replies, 8 idle connections per node.
    fn default() -> Self {
        DriverConfig {
            connect_timeout: std::time::Duration::from_secs(2),
            max_response_bytes: 16 << 20,
            max_idle_per_node: 8,
        }
    }
}

/// An upstream request: `POST url` with a JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The full URL, `http://ip:port/path`.
    pub url: String,
    /// The JSON body.
    pub body: Vec<u8>,
    /// Extra headers (e.g. `Authorization`); `Content-Type:
    /// application/json` is always sent.
    pub headers: Vec<(String, String)>,
}

/// How far a stream has come, as its [`Decoder`] sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// A token has been seen so far: the answer can go to the caller.
    pub first_token: bool,
    /// The end marker has been seen: the answer is complete.
    pub done: bool,
}

/// A reply that is not a valid answer (the attempt fails over), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid reply: {}", self.0)
    }
}

/// The protocol of one call: what to send to a node and how to read its
/// answer. Implemented by the `drover` crate for its API formats.
pub trait Exchange {
    /// Reads one streamed attempt.
    type Decoder: Decoder;

    /// True when the answer is a stream.
    fn is_stream(&self) -> bool;

    /// The request for an attempt on `node`; `model` is the core's choice
    /// of model (an alias resolved to the node's name), if any.
    ///
    /// # Errors
    ///
    /// The node is unknown (removed meanwhile): the attempt fails with this
    /// failure (usually [`Failure::Connect`]).
    fn request(&self, node: NodeId, model: Option<ModelId>) -> Result<Outgoing, Failure>;

    /// Validates a whole (non-streamed) reply of `node` and turns it into
    /// the caller's answer.
    ///
    /// # Errors
    ///
    /// The reply is not a valid answer: the attempt fails over.
    fn reply(&self, node: NodeId, body: &[u8]) -> Result<Vec<u8>, Invalid>;

    /// A fresh decoder for a streamed attempt on `node`.
    fn decoder(&self, node: NodeId) -> Self::Decoder;

    /// The message of a 4xx error body (passed to the caller). By default
    /// its first line, at most 512 characters.
    fn error_message(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        text.lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(512)
            .collect()
    }
}

/// Reads a stream: fed upstream bytes at any chunk boundary, writes the
/// caller's bytes and says how far the stream has come.
pub trait Decoder {
    /// Feeds upstream bytes; appends output to `out`.
    ///
    /// # Errors
    ///
    /// The bytes are not a valid stream.
    fn push(&mut self, upstream: &[u8], out: &mut Vec<u8>) -> Result<Progress, Invalid>;

    /// The upstream ended (EOF); appends any last output.
    ///
    /// # Errors
    ///
    /// The stream ended without its end marker.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Invalid>;
}

/// A whole answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The answer, as [`Exchange::reply`] made it.
    pub body: Vec<u8>,
    /// The node that answered.
    pub node: NodeId,
    /// Attempts sent (1 without failover).
    pub attempts: u8,
}

/// Why a call ended without an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Admission or routing refused the call (no node, overloaded, queue
    /// full or expired, payload too large, ...).
    Rejected(Reject),
    /// Every attempt failed; `failure` is the last one.
    Failed {
        /// The last attempt's failure.
        failure: Failure,
        /// Attempts sent.
        attempts: u8,
        /// The node of the last attempt, if any was tried.
        node: Option<NodeId>,
        /// What the driver saw of the last failure (status, I/O error).
        detail: String,
    },
    /// A node refused the request as invalid (a 4xx other than 429): the
    /// caller's fault, never retried.
    UpstreamRejected {
        /// The node's status.
        status: u16,
        /// The node's error message.
        message: String,
    },
    /// The router ended the call in a way the driver did not expect (a bug).
    Internal(&'static str),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => write!(f, "rejected ({}): {r}", r.label()),
            CallError::Failed {
                failure,
                attempts,
                detail,
                ..
            } => {
                write!(
                    f,
                    "every attempt failed ({attempts} tried); last failure: {}",
                    failure.label()
                )?;
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            CallError::UpstreamRejected { status, message } if message.is_empty() => {
                write!(
                    f,
                    "the model server refused the request with status {status}"
                )
            }
            CallError::UpstreamRejected { status, message } => {
                write!(
                    f,
                    "the model server refused the request ({status}): {message}"
                )
            }
            CallError::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

impl std::error::Error for CallError {}

/// Why a stream ended early, after its first token: the last item of a
/// [`ChunkStream`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamError {
    /// What the core was told ([`Failure::BrokenStream`] or
    /// [`Failure::Timeout`]).
    pub failure: Failure,
    /// What happened.
    pub message: String,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream ended early ({}): {}",
            self.failure.label(),
            self.message
        )
    }
}

impl std::error::Error for StreamError {}
