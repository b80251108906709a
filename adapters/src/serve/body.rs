//! Response bodies: a whole answer, or a stream forwarded chunk by chunk.
//!
//! A [`StreamBody`] is what turns "the first token arrived" into a full
//! answer. It reads the upstream stream, translates each chunk to the
//! client's format and reports the end to the core:
//!
//! - the upstream's end marker and a clean EOF: `Completed`;
//! - a broken connection, bytes that are not a valid stream, an EOF without
//!   an end marker, the call's deadline (`timeouts.stream_total` after the
//!   call began), or no upstream bytes for `timeouts.stream_idle`: a
//!   well-formed terminal error event (SSE error object or NDJSON error
//!   line) goes to the client, then the body ends, and the core hears
//!   `Failed` (the node is charged);
//! - the client going away: hyper drops the body, the call handle inside it
//!   reports `ClientCancelled` (never charged) and the upstream connection
//!   is closed at once.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use drover_core::call::{Action, AttemptId, Event};
use drover_core::reason::Failure;
use hyper::body::{Body, Frame, SizeHint};

use super::attempt::StreamRest;
use super::call::GwHandle;
use super::gateway::Gateway;

/// The body of every gateway response.
pub enum GwBody {
    /// A whole answer (or nothing, once sent).
    Full(Option<Bytes>),
    /// A streamed answer.
    Stream(Box<StreamBody>),
}

impl GwBody {
    /// A whole answer.
    pub fn full(b: impl Into<Bytes>) -> GwBody {
        GwBody::Full(Some(b.into()))
    }
    /// No body.
    pub fn empty() -> GwBody {
        GwBody::Full(None)
    }
}

impl Body for GwBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            GwBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            GwBody::Stream(s) => s.poll_next(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GwBody::Full(b) => b.is_none(),
            GwBody::Stream(s) => s.ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GwBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            GwBody::Full(None) => SizeHint::with_exact(0),
            GwBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// The rest of a streamed answer after its first token.
pub struct StreamBody {
    gw: Arc<Gateway>,
    rest: Box<StreamRest>,
    handle: Option<GwHandle>,
    attempt: AttemptId,
    /// Fires at the call's deadline.
    deadline: drover_transports::smol::Timer,
    /// Fires when the stream may have been idle for `stream_idle`; checked
    /// against `last_progress` (rearmed lazily rather than per chunk).
    idle: drover_transports::smol::Timer,
    /// When the upstream last sent bytes.
    last_progress: std::time::Instant,
    out: Vec<u8>,
    ended: bool,
    trailing: usize,
    /// Upstream bytes read after the first token.
    received: usize,
}

/// Most bytes read and discarded after a stream's end marker while waiting
/// for the upstream's EOF.
const MAX_TRAILING: usize = 64 * 1024;

/// Most bytes gathered into one chunk for the client.
const COALESCE_LIMIT: usize = 16 * 1024;

impl StreamBody {
    /// Wraps the stream of `attempt`, whose first bytes are `head`; the
    /// stream is cut at `deadline`, the call's deadline.
    pub(crate) fn new(
        gw: Arc<Gateway>,
        head: Vec<u8>,
        rest: Box<StreamRest>,
        handle: GwHandle,
        attempt: AttemptId,
        deadline: std::time::Instant,
    ) -> StreamBody {
        let now = std::time::Instant::now();
        let idle = drover_transports::smol::Timer::at(now + gw.cfg.timeouts.stream_idle);
        StreamBody {
            gw,
            rest,
            handle: Some(handle),
            attempt,
            deadline: drover_transports::smol::Timer::at(deadline),
            idle,
            last_progress: now,
            // The first bytes open the first chunk.
            out: head,
            ended: false,
            trailing: 0,
            received: 0,
        }
    }

    /// The next chunk for the client: everything the upstream has ready
    /// now, translated, in one chunk (so one write), up to
    /// [`COALESCE_LIMIT`] bytes.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            if self.rest.done {
                if !self.out.is_empty() {
                    return Poll::Ready(Some(self.take_out()));
                }
                // The end marker was seen: the answer is complete. Report it
                // now, then read the upstream body to its end (whatever
                // follows the marker is not forwarded) so that its
                // connection goes back to the keep-alive pool.
                if self.handle.is_some() {
                    let _ = self.end(Ok(()));
                    self.ended = false;
                }
                return self.drain_upstream(cx);
            }
            if self.out.len() >= COALESCE_LIMIT {
                return Poll::Ready(Some(self.take_out()));
            }
            match Pin::new(&mut self.rest.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if !data.is_empty() {
                        self.last_progress = std::time::Instant::now();
                    }
                    self.received += data.len();
                    if self.received > self.gw.cfg.limits.max_response_bytes {
                        return self.fail(
                            Failure::BrokenStream,
                            "the answer exceeded the gateway's response size limit",
                        );
                    }
                    // Translated output is about as long as its input:
                    // one allocation instead of doubling.
                    self.out.reserve(data.len() + data.len() / 8);
                    match self.rest.translator.push(&data, &mut self.out) {
                        Ok(p) => self.rest.done = p.done,
                        Err(_) => {
                            return self.fail(
                                Failure::BrokenStream,
                                "the model server sent an invalid stream",
                            );
                        }
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    return self.fail(
                        Failure::BrokenStream,
                        "the connection to the model server broke mid-stream",
                    );
                }
                Poll::Ready(None) => {
                    return match self.rest.translator.finish(&mut self.out) {
                        Ok(()) => {
                            let _ = self.end(Ok(()));
                            Poll::Ready(Some(self.take_out()).filter(|b| !b.is_empty()))
                        }
                        Err(_) => self.fail(
                            Failure::BrokenStream,
                            "the model server ended the stream without finishing it",
                        ),
                    };
                }
                Poll::Pending => {
                    if !self.out.is_empty() {
                        return Poll::Ready(Some(self.take_out()));
                    }
                    if Pin::new(&mut self.deadline).poll(cx).is_ready() {
                        return self.fail(
                            Failure::Timeout,
                            "the stream exceeded the gateway's total time limit",
                        );
                    }
                    if self.idle_expired(cx) {
                        return self.fail(
                            Failure::Timeout,
                            "the model server sent nothing for longer than the gateway's \
                             stream idle limit",
                        );
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// True when the upstream has sent nothing for `stream_idle`. Otherwise
    /// the idle timer is armed for the moment that would be true and
    /// registered with `cx`.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.gw.cfg.timeouts.stream_idle;
        loop {
            if Pin::new(&mut self.idle).poll(cx).is_pending() {
                return false;
            }
            let due = self.last_progress + limit;
            if std::time::Instant::now() >= due {
                return true;
            }
            // Progress since the timer was armed: rearm it, and poll it
            // once more so that it holds this task's waker.
            self.idle.set_at(due);
        }
    }

    /// Ends the stream with an error: what was translated so far, then the
    /// terminal error event.
    fn fail(&mut self, failure: Failure, message: &str) -> Poll<Option<Bytes>> {
        let tail = self.end(Err((failure, message)));
        if let Some(t) = tail {
            self.out.extend_from_slice(&t);
        }
        Poll::Ready(Some(self.take_out()).filter(|b| !b.is_empty()))
    }

    /// The chunk gathered in `out`. A stream that goes on copies it and
    /// keeps the buffer for the next one; a stream past its end marker
    /// hands the buffer over whole.
    fn take_out(&mut self) -> Bytes {
        if self.rest.done || self.ended {
            return Bytes::from(std::mem::take(&mut self.out));
        }
        let b = Bytes::copy_from_slice(&self.out);
        self.out.clear();
        b
    }

    /// After the end marker: waits for the upstream's EOF, discarding at
    /// most [`MAX_TRAILING`] bytes, so its connection can be reused.
    fn drain_upstream(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            match Pin::new(&mut self.rest.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let n = frame.data_ref().map_or(0, Bytes::len);
                    self.last_progress = std::time::Instant::now();
                    self.trailing += n;
                    if self.trailing > MAX_TRAILING {
                        // Not worth keeping: the connection is dropped with
                        // the body.
                        self.ended = true;
                        return Poll::Ready(None);
                    }
                }
                Poll::Ready(Some(Err(_)) | None) => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if Pin::new(&mut self.deadline).poll(cx).is_ready() || self.idle_expired(cx) {
                        // The answer is complete; only the connection's
                        // reuse is lost.
                        self.ended = true;
                        return Poll::Ready(None);
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// Ends the stream: reports to the core and returns the last bytes to
    /// send (the terminal error event, if any).
    fn end(&mut self, result: Result<(), (Failure, &str)>) -> Option<Bytes> {
        self.ended = true;
        let mut tail = Vec::new();
        let event = match result {
            Ok(()) => Event::Completed(self.attempt),
            Err((failure, message)) => {
                self.rest.translator.error_event(message, &mut tail);
                self.gw.stats.record_stream_broken();
                tracing::warn!(failure = failure.label(), "{message}");
                Event::Failed(self.attempt, failure)
            }
        };
        if let Some(mut h) = self.handle.take() {
            let now = self.gw.now();
            let _ = h.handle(event, now);
            // After the first byte the core only finishes: drain it to Done.
            for _ in 0..16 {
                match h.poll(now) {
                    Action::Done => break,
                    Action::Wait { .. } => break,
                    _ => {}
                }
            }
            drop(h);
            self.gw.deliver_wakeups();
        }
        (!tail.is_empty()).then(|| Bytes::from(tail))
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        if self.handle.is_some() {
            // The client went away mid-stream: the handle's own drop reports
            // ClientCancelled; count it and free queued calls it unblocks.
            self.gw.stats.record_client_disconnect();
            drop(self.handle.take());
            self.gw.deliver_wakeups();
        }
    }
}

use std::future::Future as _;
