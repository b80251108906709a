//! Response bodies of a fake server: whole, timed streams, and bodies cut
//! on purpose.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;

use super::state::Guard;

/// The body type of every fake response.
pub(super) type FakeBody = UnsyncBoxBody<Bytes, io::Error>;

/// A whole body.
pub(super) fn full(bytes: Bytes) -> FakeBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// What a stream does after its last step.
pub(super) enum Tail {
    /// Ends normally (the last chunk of a chunked body).
    End,
    /// Fails, so hyper closes the connection without ending the body;
    /// after [`BREAK_PAUSE`], so that what was sent reaches the wire
    /// (hyper drops its unflushed buffer on a body error).
    Break,
}

/// The pause before a [`Tail::Break`].
const BREAK_PAUSE: Duration = Duration::from_millis(10);

/// A body sent as timed steps: each waits its delay, then sends its bytes.
pub(super) struct Script {
    pub(super) steps: VecDeque<(Duration, Bytes)>,
    pub(super) tail: Tail,
    /// Finished when the body ends (or breaks on purpose); dropped
    /// earlier, it counts the request as cancelled.
    pub(super) guard: Option<Guard>,
}

/// The body that plays `script`.
pub(super) fn stream(script: Script) -> FakeBody {
    let frames = smol::stream::unfold(script, |mut s| async move {
        if let Some((delay, bytes)) = s.steps.pop_front() {
            if !delay.is_zero() {
                drover_transports::smol::Timer::after(delay).await;
            }
            return Some((Ok(Frame::data(bytes)), s));
        }
        let guard = s.guard.take()?;
        match s.tail {
            Tail::End => {
                guard.finish();
                None
            }
            Tail::Break => {
                drover_transports::smol::Timer::after(BREAK_PAUSE).await;
                guard.finish();
                Some((Err(io::Error::other("fake server: broken on purpose")), s))
            }
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

/// `bytes` cut half-way: the caller announces the whole length in
/// `Content-Length`, the body sends the first half and breaks.
pub(super) fn cut(bytes: Bytes, guard: Guard) -> FakeBody {
    let half = bytes.slice(..bytes.len() / 2);
    stream(Script {
        steps: VecDeque::from([(Duration::ZERO, half)]),
        tail: Tail::Break,
        guard: Some(guard),
    })
}
