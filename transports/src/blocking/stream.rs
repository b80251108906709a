//! [`ChunkStream`]: the rest of a streamed answer, as an iterator that keeps
//! the core informed.

use std::io::Read;
use std::sync::Arc;

use drover_core::call::{Action, AttemptId, Event};
use drover_core::node::NodeId;
use drover_core::reason::Failure;
use drover_core::shared::CallHandle;
use ureq::BodyReader;

use super::attempt::{READ_BUF, is_timeout};
use super::driver::Inner;
use super::{Decoder, StreamError};

/// Most bytes read and discarded after a stream's end marker while waiting
/// for the upstream's EOF (so the connection can be reused).
const MAX_TRAILING: usize = 64 * 1024;

/// A streamed answer after its first token: each item is what the decoder
/// made of the bytes one read brought (never empty).
///
/// - The end marker (then EOF): [`Event::Completed`] goes to the core and
///   the iterator ends.
/// - A broken connection, an invalid stream, an EOF without the end marker,
///   too long a silence or the call's deadline: [`Event::Failed`] goes to
///   the core (the node is charged), the last item is the
///   [`StreamError`], then the iterator ends. It never hangs past the
///   per-read bound.
/// - Dropped before its end: the upstream connection is closed and the call
///   cancelled ([`Event::ClientCancelled`]; the node is not charged), which
///   returns its permit and node slot.
pub struct ChunkStream<D, const N: usize, const C: usize = 1024, const Q: usize = 256> {
    inner: Arc<Inner<N, C, Q>>,
    handle: Option<CallHandle<N, C, Q>>,
    attempt: AttemptId,
    node: NodeId,
    head: Option<Vec<u8>>,
    reader: Option<BodyReader<'static>>,
    decoder: D,
    done: bool,
    buf: Vec<u8>,
}

impl<D, const N: usize, const C: usize, const Q: usize> std::fmt::Debug
    for ChunkStream<D, N, C, Q>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStream")
            .field("node", &self.node)
            .field("attempt", &self.attempt)
            .field("done", &self.done)
            .field("open", &self.reader.is_some())
            .finish_non_exhaustive()
    }
}

impl<D: Decoder, const N: usize, const C: usize, const Q: usize> ChunkStream<D, N, C, Q> {
    #[allow(clippy::too_many_arguments)] // built once, by the driver only
    pub(super) fn new(
        inner: Arc<Inner<N, C, Q>>,
        handle: CallHandle<N, C, Q>,
        attempt: AttemptId,
        node: NodeId,
        head: Vec<u8>,
        reader: BodyReader<'static>,
        decoder: D,
        done: bool,
    ) -> Self {
        ChunkStream {
            inner,
            handle: Some(handle),
            attempt,
            node,
            head: Some(head),
            reader: Some(reader),
            decoder,
            done,
            buf: Vec::new(),
        }
    }

    /// The node that streams the answer.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Attempts the call took (1 without failover).
    pub fn attempts(&self) -> u8 {
        self.handle.as_ref().map_or(0, |h| h.call().attempts())
    }

    /// Ends the call with `event` and returns the node's slot.
    fn end(&mut self, event: Event) {
        if let Some(mut h) = self.handle.take() {
            let now = self.inner.now();
            let _ = h.handle(event, now);
            // After the first byte the core only finishes: drain it to Done.
            for _ in 0..16 {
                if matches!(h.poll(now), Action::Done | Action::Wait { .. }) {
                    break;
                }
            }
            drop(h);
            self.inner.deliver_wakeups();
        }
    }

    fn fail(&mut self, failure: Failure, message: &str) -> Option<Result<Vec<u8>, StreamError>> {
        // Close the connection first: a broken stream is not reused.
        self.reader = None;
        self.end(Event::Failed(self.attempt, failure));
        Some(Err(StreamError {
            failure,
            message: message.to_owned(),
        }))
    }

    /// After the end marker: reports completion, then reads the upstream to
    /// its EOF (at most [`MAX_TRAILING`] bytes) so its connection can go back
    /// to the pool.
    fn complete(&mut self) {
        self.end(Event::Completed(self.attempt));
        if let Some(mut reader) = self.reader.take() {
            let mut trailing = 0usize;
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                trailing += n;
                if n == 0 || trailing > MAX_TRAILING {
                    break;
                }
            }
        }
    }
}

impl<D: Decoder, const N: usize, const C: usize, const Q: usize> Iterator
    for ChunkStream<D, N, C, Q>
{
    type Item = Result<Vec<u8>, StreamError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(h) = self.head.take() {
            if !h.is_empty() {
                return Some(Ok(h));
            }
        }
        self.handle.as_ref()?;
        if self.done {
            self.complete();
            return None;
        }
        if self.buf.len() < READ_BUF {
            self.buf.resize(READ_BUF, 0);
        }
        loop {
            let reader = self.reader.as_mut()?;
            let mut out = Vec::new();
            match reader.read(&mut self.buf) {
                Ok(0) => {
                    return match self.decoder.finish(&mut out) {
                        Ok(()) => {
                            self.reader = None;
                            self.end(Event::Completed(self.attempt));
                            (!out.is_empty()).then_some(Ok(out))
                        }
                        Err(_) => self.fail(
                            Failure::BrokenStream,
                            "the model server ended the stream without finishing it",
                        ),
                    };
                }
                Ok(n) => match self
                    .decoder
                    .push(self.buf.get(..n).unwrap_or_default(), &mut out)
                {
                    Ok(p) => {
                        self.done = p.done;
                        if !out.is_empty() {
                            return Some(Ok(out));
                        }
                        if self.done {
                            self.complete();
                            return None;
                        }
                    }
                    Err(e) => {
                        let message = format!("the model server sent an invalid stream: {}", e.0);
                        return self.fail(Failure::BrokenStream, &message);
                    }
                },
                Err(e) if is_timeout(&e) => {
                    return self.fail(
                        Failure::Timeout,
                        "the model server went silent mid-stream, or the call's time limit passed",
                    );
                }
                Err(e) => {
                    let message =
                        format!("the connection to the model server broke mid-stream: {e}");
                    return self.fail(Failure::BrokenStream, &message);
                }
            }
        }
    }
}

impl<D, const N: usize, const C: usize, const Q: usize> Drop for ChunkStream<D, N, C, Q> {
    fn drop(&mut self) {
        if self.handle.is_some() {
            // Dropped mid-stream: close the upstream connection (ureq does
            // not pool a body that was not read to its end), then the
            // handle's own drop cancels the call and returns its capacity.
            self.reader = None;
            drop(self.handle.take());
            self.inner.deliver_wakeups();
        }
    }
}
