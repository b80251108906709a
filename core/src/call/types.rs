//! The values that cross the [`Router`](crate::Router)'s call API: what
//! a driver starts ([`Request`]), what it is told to do ([`Action`]), what
//! it reports ([`Event`]), how a call ends ([`Outcome`]) and what the
//! decision trace records ([`TraceEvent`]).

use crate::admission::Pool;
use crate::catalog::ModelId;
use crate::node::NodeId;
use crate::probe::ProbeKind;
use crate::reason::{Failure, Reject};
use crate::route::Query;
use crate::time::{Duration, Instant};
use crate::trace::TraceId;

/// What the driver asks the router to start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    /// Unique id of this call (keys traces and wakeups).
    pub trace: TraceId,
    /// What the call needs from a node.
    pub query: Query,
    /// Background work uses the background pool and waits behind interactive calls.
    pub background: bool,
    /// Request body size, checked against `max_payload_bytes`.
    pub payload_bytes: u32,
}

impl Request {
    /// An interactive request with an empty body.
    pub const fn new(trace: TraceId, query: Query) -> Self {
        Request {
            trace,
            query,
            background: false,
            payload_bytes: 0,
        }
    }
}

/// Identifies one attempt within its call (0, 1, 2, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId(pub u8);

/// What the driver must do next.
#[derive(Clone, Copy, Debug, PartialEq)]
#[must_use]
pub enum Action {
    /// Send the request to `node`.
    Send {
        /// The attempt to report events for.
        attempt: AttemptId,
        /// Where to send it.
        node: NodeId,
        /// The model name to use on that node (alias resolved), if the call named one.
        model: Option<ModelId>,
        /// True for a hedge (a second, concurrent attempt).
        hedge: bool,
    },
    /// Abort an attempt (timeout, lost hedge, cancel). No event is expected for it.
    Cancel {
        /// The attempt.
        attempt: AttemptId,
        /// Its node.
        node: NodeId,
    },
    /// Nothing to do until `until` (if any) or an event.
    Wait {
        /// When to poll again even without an event.
        until: Option<Instant>,
    },
    /// The call is over: answer the client accordingly. Returned exactly once.
    Finish(Outcome),
    /// The call already finished; there is nothing more.
    Done,
}

/// How a call ended. Exactly one per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A full answer came from `node`.
    Succeeded {
        /// The node that answered.
        node: NodeId,
        /// Attempts sent, hedges included.
        attempts: u8,
    },
    /// The call failed.
    Failed {
        /// The last failure.
        failure: Failure,
        /// The node of the last attempt, if one was sent.
        node: Option<NodeId>,
        /// True when part of the answer had already reached the client.
        after_first_byte: bool,
        /// Attempts sent.
        attempts: u8,
    },
    /// Refused before any attempt.
    Rejected(Reject),
    /// The client went away.
    Cancelled {
        /// True when part of the answer had already reached the client.
        after_first_byte: bool,
    },
}

/// What happened to an attempt, or to the call's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The first byte (first token) of the answer is going to the client.
    /// From now on the call cannot fail over.
    FirstByte(AttemptId),
    /// The attempt finished with a full, valid answer.
    Completed(AttemptId),
    /// The attempt failed (connect, timeout, 5xx, invalid reply, broken stream).
    Failed(AttemptId, Failure),
    /// The node answered 429/503, with its Retry-After if any.
    Overloaded(AttemptId, Option<Duration>),
    /// The node rejected the request as invalid (a 4xx other than 429).
    ClientError(AttemptId, u16),
    /// The client disconnected or gave up.
    ClientCancelled,
}

/// Whether [`Router::handle`](crate::Router::handle) used an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Handled {
    /// It changed the call.
    Applied,
    /// It was for an attempt already cancelled or a call already finished.
    Stale,
}

/// One entry of the decision trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TraceEvent {
    /// Admitted at once to a pool.
    Admitted(Pool),
    /// Put in the queue.
    Queued(Pool),
    /// Granted after waiting.
    Granted,
    /// An attempt was sent.
    Sent {
        /// Attempt.
        attempt: AttemptId,
        /// Node.
        node: NodeId,
        /// Hedge or not.
        hedge: bool,
    },
    /// The first byte went to the client.
    FirstByte {
        /// Attempt.
        attempt: AttemptId,
        /// Node.
        node: NodeId,
    },
    /// An attempt failed.
    AttemptFailed {
        /// Attempt.
        attempt: AttemptId,
        /// Node.
        node: NodeId,
        /// Why.
        failure: Failure,
    },
    /// An attempt was cancelled.
    AttemptCancelled {
        /// Attempt.
        attempt: AttemptId,
        /// Node.
        node: NodeId,
    },
    /// The call ended.
    Finished(Outcome),
    /// The retry budget refused a failover or a hedge
    /// (`retry_budget_exhausted`); a refused failover ends the call with
    /// its last failure.
    RetryDenied {
        /// True for a hedge.
        hedge: bool,
    },
    /// A probe was issued (recorded under
    /// [`PROBE_TRACE`](crate::probe::PROBE_TRACE)).
    ProbeSent {
        /// Node.
        node: NodeId,
        /// Health or inventory.
        kind: ProbeKind,
    },
    /// A probe ended (under [`PROBE_TRACE`](crate::probe::PROBE_TRACE)).
    ProbeEnded {
        /// Node.
        node: NodeId,
        /// Health or inventory.
        kind: ProbeKind,
        /// Why it failed (a probe past its deadline: `Timeout`); `None` for success.
        failure: Option<Failure>,
    },
}
