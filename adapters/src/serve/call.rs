//! The call driver: a thin loop that executes what the core decides.
//!
//! ```text
//! begin ─▶ poll ─▶ Send    ─▶ start an attempt future (several at once when hedging)
//!            ▲     Cancel  ─▶ drop that attempt (closes its upstream connection)
//!            │     Wait    ─▶ sleep until an attempt reports, `until` passes,
//!            │                or the queue grants the call
//!            └──── handle(event) ◀── what the attempt reported
//!                  Finish  ─▶ answer the client
//! ```
//!
//! Nothing reaches the client before the core has seen `FirstByte`, so every
//! failover happens before the client has a byte. A streamed call returns
//! as soon as its first token is in hand; the rest of the stream is
//! forwarded by [`StreamBody`](super::body::StreamBody), which reports the
//! stream's end (or its break) to the core.
//!
//! The [`CallHandle`] owns the call: if the request future is dropped (the
//! client went away, the server is shutting down) the handle cancels the
//! call, which returns every permit and node slot and never counts against
//! a node.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use drover_core::call::{Action, AttemptId, Event, Handled, Outcome, Request};
use drover_core::reason::{Failure, NoNode, Reject};
use drover_core::route::Query;
use drover_core::shared::CallHandle;
use drover_core::trace::TraceId;
use http::HeaderValue;
use smol::channel::Receiver;

use super::attempt::{self, AttemptMsg, StreamRest};
use super::gateway::{Gateway, MAX_CALLS, MAX_NODES, MAX_QUEUED};
use crate::wire::Inbound;

/// The gateway's call handle.
pub(crate) type GwHandle = CallHandle<MAX_NODES, MAX_CALLS, MAX_QUEUED>;

type AttemptFuture = Pin<Box<dyn Future<Output = AttemptMsg> + Send>>;

/// How a call answers its client.
#[allow(clippy::large_enum_variant)] // one per call, moved once; boxing would cost an allocation
pub(crate) enum Reply {
    /// A whole non-streamed answer (status 200).
    Full(Bytes),
    /// A stream that has its first token.
    Stream {
        /// The client-format bytes to send first.
        head: Vec<u8>,
        /// The rest of the upstream stream.
        rest: Box<StreamRest>,
        /// The call, still open until the stream ends.
        handle: GwHandle,
        /// The attempt whose stream this is.
        attempt: AttemptId,
    },
    /// The call failed or was refused.
    Error(CallError),
}

/// A call that ends without an answer, and the HTTP status it maps to.
#[derive(Debug)]
pub(crate) struct CallError {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable code (the core's reason label).
    pub code: &'static str,
    /// What to tell the client.
    pub message: String,
    /// Seconds for `Retry-After`, when retrying later may help.
    pub retry_after: Option<u64>,
}

/// Runs one call to its first answer.
pub(crate) async fn drive(
    gw: &Arc<Gateway>,
    inb: Arc<Inbound>,
    query: Query,
    trace: TraceId,
    payload_bytes: u32,
    request_id: HeaderValue,
) -> Reply {
    let req = Request {
        trace,
        query,
        background: false,
        payload_bytes,
    };
    let mut h = gw.router.begin(req, gw.now());
    let requested: Arc<str> = Arc::from(inb.model.as_str());
    let mut attempts: Vec<(AttemptId, AttemptFuture)> = Vec::with_capacity(2);
    let mut waiter: Option<Receiver<()>> = None;
    let mut full: Option<Bytes> = None;
    let mut client_error: Option<(u16, String)> = None;
    let mut stream: Option<(AttemptId, Vec<u8>, Box<StreamRest>)> = None;
    loop {
        let now = gw.now();
        match h.poll(now) {
            Action::Send {
                attempt,
                node,
                model,
                ..
            } => {
                let name = model
                    .and_then(|m| gw.model_name(m))
                    .unwrap_or_else(|| requested.clone());
                let fut = attempt::run(gw.clone(), node, name, inb.clone(), request_id.clone());
                attempts.push((attempt, Box::pin(fut)));
            }
            Action::Cancel { attempt, .. } => attempts.retain(|(a, _)| *a != attempt),
            Action::Wait { until } => {
                if let Some((attempt, head, rest)) = stream.take() {
                    release_waiter(gw, trace, &mut waiter);
                    return Reply::Stream {
                        head,
                        rest,
                        handle: h,
                        attempt,
                    };
                }
                if attempts.is_empty() && waiter.is_none() && h.call().is_queued() {
                    // Register, then poll again: a grant between the poll
                    // above and the registration is then not missed.
                    waiter = Some(gw.register_waiter(trace));
                    continue;
                }
                if attempts.is_empty() && waiter.is_none() && until.is_none() {
                    // Nothing could ever wake this call: answer rather than
                    // hang (the core does not do this; this guards the
                    // gateway against a future change that would).
                    release_waiter(gw, trace, &mut waiter);
                    return Reply::Error(internal("the router waits with nothing in flight"));
                }
                let until = until.map(|u| gw.wall(u));
                if let Some((i, msg)) = wait(&mut attempts, until, waiter.as_ref()).await {
                    let (id, _) = attempts.swap_remove(i);
                    let now = gw.now();
                    match msg {
                        AttemptMsg::Full(body) => {
                            if h.handle(Event::FirstByte(id), now) == Handled::Applied
                                && h.handle(Event::Completed(id), now) == Handled::Applied
                            {
                                full = Some(body);
                            }
                        }
                        AttemptMsg::FirstToken { head, rest } => {
                            if h.handle(Event::FirstByte(id), now) == Handled::Applied {
                                if rest.done {
                                    let _ = h.handle(Event::Completed(id), now);
                                }
                                stream = Some((id, head, rest));
                            }
                        }
                        AttemptMsg::Failed(f) => {
                            let _ = h.handle(Event::Failed(id, f), now);
                        }
                        AttemptMsg::Overloaded(after) => {
                            let _ = h.handle(Event::Overloaded(id, after), now);
                        }
                        AttemptMsg::ClientError { status, message } => {
                            if h.handle(Event::ClientError(id, status), now) == Handled::Applied {
                                client_error = Some((status, message));
                            }
                        }
                    }
                }
            }
            Action::Finish(outcome) => {
                release_waiter(gw, trace, &mut waiter);
                drop(attempts);
                gw.deliver_wakeups();
                return match outcome {
                    Outcome::Succeeded { .. } => match (full, stream) {
                        (Some(body), _) => Reply::Full(body),
                        (None, Some((attempt, head, rest))) => Reply::Stream {
                            head,
                            rest,
                            handle: h,
                            attempt,
                        },
                        // The core only reports success after Completed,
                        // which is only sent with an answer in hand.
                        (None, None) => Reply::Error(internal("success without an answer")),
                    },
                    other => Reply::Error(error_of(other, client_error)),
                };
            }
            Action::Done => {
                release_waiter(gw, trace, &mut waiter);
                return Reply::Error(internal("the call ended without an outcome"));
            }
        }
    }
}

fn release_waiter(gw: &Gateway, trace: TraceId, waiter: &mut Option<Receiver<()>>) {
    if waiter.take().is_some() {
        gw.unregister_waiter(trace);
    }
}

/// Waits for the first of: an attempt's report (returned with its index),
/// `until`, or a queue grant (both returned as `None`).
async fn wait(
    attempts: &mut [(AttemptId, AttemptFuture)],
    until: Option<std::time::Instant>,
    waiter: Option<&Receiver<()>>,
) -> Option<(usize, AttemptMsg)> {
    let mut timer = until.map(drover_transports::smol::Timer::at);
    // Boxed only while the call is queued, which is rare.
    let mut wake = waiter.map(|w| Box::pin(w.recv()));
    std::future::poll_fn(|cx| {
        for (i, (_, fut)) in attempts.iter_mut().enumerate() {
            if let Poll::Ready(msg) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some((i, msg)));
            }
        }
        if let Some(t) = timer.as_mut() {
            if Pin::new(t).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        if let Some(w) = wake.as_mut() {
            if w.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    })
    .await
}

fn internal(what: &str) -> CallError {
    CallError {
        status: 500,
        code: "internal",
        message: format!("internal error: {what}"),
        retry_after: None,
    }
}

/// The HTTP answer for a call that did not succeed.
pub(crate) fn error_of(outcome: Outcome, client_error: Option<(u16, String)>) -> CallError {
    match outcome {
        Outcome::Rejected(r) => reject_error(r),
        Outcome::Failed {
            failure: Failure::ClientError(status),
            ..
        } => {
            let message = match client_error {
                Some((_, m)) if !m.is_empty() => {
                    format!("the model server refused the request: {m}")
                }
                _ => format!("the model server refused the request with status {status}"),
            };
            CallError {
                status,
                code: "upstream_rejected_request",
                message,
                retry_after: None,
            }
        }
        Outcome::Failed {
            failure, attempts, ..
        } => {
            let status = match failure {
                Failure::Timeout | Failure::TtftTimeout | Failure::DeadlineExceeded => 504,
                _ => 502,
            };
            CallError {
                status,
                code: failure.label(),
                message: format!(
                    "every attempt failed ({attempts} tried); last failure: {}",
                    failure.label()
                ),
                retry_after: None,
            }
        }
        Outcome::Cancelled { .. } => CallError {
            status: 499,
            code: "client_cancelled",
            message: "the client cancelled the call".into(),
            retry_after: None,
        },
        Outcome::Succeeded { .. } => internal("success reported as an error"),
    }
}

/// The HTTP answer for an admission or routing refusal.
pub(crate) fn reject_error(r: Reject) -> CallError {
    let (status, retry_after) = match r {
        Reject::PayloadTooLarge { .. } => (413, None),
        Reject::NoEligibleNode(NoNode::ModelNotServed) => (404, None),
        // Every node ejected: retry when the first breaker turns half-open.
        Reject::NoEligibleNode(_) => (
            503,
            Some(
                r.retry_after()
                    .map_or(1, |d| d.as_millis().div_ceil(1000).max(1)),
            ),
        ),
        Reject::AllNodesOverloaded { retry_after } => {
            (429, Some(retry_after.as_millis().div_ceil(1000).max(1)))
        }
        _ => (429, Some(1)),
    };
    CallError {
        status,
        code: r.label(),
        message: r.to_string(),
        retry_after,
    }
}
