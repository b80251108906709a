//! Invariants the driver checks on every run. A violation stops the run:
//! [`Driver::try_run`](super::Driver::try_run) returns it and
//! [`Driver::run`](super::Driver::run) panics with it; its message names
//! the seed, the call and the gateway, so the run can be replayed.
//!
//! On every `Send` (before the attempt reaches its node):
//!
//! - the call has not finished, and no byte of its answer has reached the
//!   client (**no failover or hedge after the first byte**);
//! - the node is known to the gateway's router, not disabled, its breaker
//!   not open, and its heartbeats neither stale nor lost. The router's hard
//!   filters exclude such nodes from every route, and refuse the call when
//!   no other node is eligible, so a send to one is a violation whether or
//!   not another node was eligible.
//!
//! On every `Finish`:
//!
//! - it is the call's first (**exactly one outcome per call**);
//! - a success comes from an attempt on that node whose reply was complete
//!   and valid (**a corrupted reply is never a success**);
//! - the outcome's attempt count is the number of sends, `Rejected` had
//!   none, and `after_first_byte` says whether a first byte went out.
//!
//! At the end of a run: **every call has an outcome** (none lost, the event
//! budget not exhausted).

use std::fmt;

use drover_core::Instant;
use drover_core::breaker::BreakerState;
use drover_core::call::Outcome;
use drover_core::health::Freshness;
use drover_core::node::{Mode, NodeId};
use drover_core::router::Router;

/// What went wrong. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViolationKind {
    /// An attempt was sent to a node the router does not have.
    UnknownNode(NodeId),
    /// An attempt was sent to a disabled node.
    Disabled(NodeId),
    /// An attempt was sent to a node whose breaker is open.
    BreakerOpen(NodeId),
    /// An attempt was sent to a node whose heartbeats are stale or lost.
    Stale(NodeId),
    /// An attempt (failover or hedge) was sent after the first byte.
    AfterFirstByte(NodeId),
    /// An attempt was sent for a call that had finished.
    AfterFinish(NodeId),
    /// A call finished twice.
    SecondOutcome,
    /// A call succeeded without a complete, valid reply from that node.
    InvalidSuccess(NodeId),
    /// The outcome's attempt count is not the number of sends.
    AttemptCount {
        /// What the outcome says.
        reported: u8,
        /// Attempts the driver executed.
        sent: u8,
    },
    /// The outcome's `after_first_byte` disagrees with what was delivered.
    FirstByte {
        /// What the outcome says.
        reported: bool,
    },
    /// The run ended with this call unfinished.
    Lost,
    /// The run hit its event budget (a livelock) with this call unfinished.
    Stalled {
        /// Events processed.
        events: u64,
    },
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViolationKind::UnknownNode(n) => write!(f, "an attempt went to unknown node {n}"),
            ViolationKind::Disabled(n) => write!(f, "an attempt went to disabled node {n}"),
            ViolationKind::BreakerOpen(n) => {
                write!(f, "an attempt went to node {n} with an open breaker")
            }
            ViolationKind::Stale(n) => {
                write!(f, "an attempt went to node {n} with stale heartbeats")
            }
            ViolationKind::AfterFirstByte(n) => {
                write!(f, "an attempt went to node {n} after the first byte")
            }
            ViolationKind::AfterFinish(n) => {
                write!(f, "an attempt went to node {n} after the call finished")
            }
            ViolationKind::SecondOutcome => f.write_str("the call finished twice"),
            ViolationKind::InvalidSuccess(n) => write!(
                f,
                "the call succeeded on node {n} without a valid complete reply from it"
            ),
            ViolationKind::AttemptCount { reported, sent } => write!(
                f,
                "the outcome counts {reported} attempts but {sent} were sent"
            ),
            ViolationKind::FirstByte { reported } => write!(
                f,
                "the outcome says after_first_byte = {reported}, which is not what was delivered"
            ),
            ViolationKind::Lost => f.write_str("the call never got an outcome"),
            ViolationKind::Stalled { events } => write!(
                f,
                "the run stopped at its event budget ({events} events) with the call unfinished"
            ),
        }
    }
}

/// A broken invariant, with what is needed to replay it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The simulation's seed.
    pub seed: u64,
    /// The call's index in the workload (its trace id).
    pub call: u64,
    /// The gateway that ran it.
    pub gateway: usize,
    /// Virtual time of the violation.
    pub at: Instant,
    /// The name of the node concerned, if any.
    pub node: Option<String>,
    /// What was broken.
    pub kind: ViolationKind,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation invariant violated (seed {}, call {}, gateway {}, at {:?}): {}",
            self.seed, self.call, self.gateway, self.at, self.kind
        )?;
        if let Some(n) = &self.node {
            write!(f, " [node {n:?}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// What the driver knows about a call when it checks it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CallFacts {
    /// A first byte reached the client.
    pub(crate) committed: bool,
    /// The call already has an outcome.
    pub(crate) finished: bool,
    /// Attempts sent so far.
    pub(crate) sent: u8,
    /// The node of the attempt that delivered a complete, valid reply.
    pub(crate) valid_reply: Option<NodeId>,
}

/// Checks a `Send` to `node` at `now` by `router` for a call with `facts`.
pub(crate) fn on_send<const N: usize, const C: usize, const Q: usize>(
    router: &Router<N, C, Q>,
    node: NodeId,
    now: Instant,
    facts: CallFacts,
) -> Result<(), ViolationKind> {
    if facts.finished {
        return Err(ViolationKind::AfterFinish(node));
    }
    if facts.committed {
        return Err(ViolationKind::AfterFirstByte(node));
    }
    let Some(n) = router.node(node) else {
        return Err(ViolationKind::UnknownNode(node));
    };
    if n.mode == Mode::Disabled {
        return Err(ViolationKind::Disabled(node));
    }
    if matches!(n.breaker.state(now), BreakerState::Open { .. }) {
        return Err(ViolationKind::BreakerOpen(node));
    }
    match n.health.freshness(now, &router.config().health) {
        Freshness::Stale | Freshness::Lost => Err(ViolationKind::Stale(node)),
        Freshness::Fresh | Freshness::Passive => Ok(()),
    }
}

/// Checks a call's `Finish(outcome)`.
pub(crate) fn on_finish(outcome: &Outcome, facts: CallFacts) -> Result<(), ViolationKind> {
    if facts.finished {
        return Err(ViolationKind::SecondOutcome);
    }
    let count = |reported: u8| {
        if reported == facts.sent {
            Ok(())
        } else {
            Err(ViolationKind::AttemptCount {
                reported,
                sent: facts.sent,
            })
        }
    };
    let first_byte = |reported: bool| {
        if reported == facts.committed {
            Ok(())
        } else {
            Err(ViolationKind::FirstByte { reported })
        }
    };
    match *outcome {
        Outcome::Succeeded { node, attempts } => {
            if facts.valid_reply != Some(node) {
                return Err(ViolationKind::InvalidSuccess(node));
            }
            count(attempts)
        }
        Outcome::Failed {
            after_first_byte,
            attempts,
            ..
        } => {
            first_byte(after_first_byte)?;
            count(attempts)
        }
        Outcome::Rejected(_) => count(0),
        Outcome::Cancelled { after_first_byte } => first_byte(after_first_byte),
    }
}

#[cfg(test)]
mod tests {
    use drover_core::Duration;
    use drover_core::config::RouterConfig;
    use drover_core::health::Telemetry;
    use drover_core::node::{NodeKind, NodeSpec};
    use drover_core::reason::{Failure, Reject};

    use super::*;

    fn router() -> (Router<4>, NodeId) {
        let mut r = Router::new(RouterConfig::default(), 1).unwrap();
        let id = r
            .add_node(NodeSpec::new("a", NodeKind::Ollama).unwrap())
            .unwrap();
        (r, id)
    }

    #[test]
    fn sends_to_excluded_nodes_are_violations() {
        let t = Instant::from_secs(1);
        let ok = CallFacts::default();
        let (mut r, id) = router();
        assert_eq!(on_send(&r, id, t, ok), Ok(()));
        assert_eq!(
            on_send(&r, NodeId(9), t, ok),
            Err(ViolationKind::UnknownNode(NodeId(9)))
        );
        let committed = CallFacts {
            committed: true,
            ..ok
        };
        assert_eq!(
            on_send(&r, id, t, committed),
            Err(ViolationKind::AfterFirstByte(id))
        );
        let done = CallFacts {
            finished: true,
            ..ok
        };
        assert_eq!(
            on_send(&r, id, t, done),
            Err(ViolationKind::AfterFinish(id))
        );
        // Stale: a heartbeat, then silence past stale_after.
        r.handle_heartbeat(id, Telemetry::default(), t).unwrap();
        assert_eq!(on_send(&r, id, t, ok), Ok(()));
        let later = t + Duration::from_secs(6);
        assert_eq!(on_send(&r, id, later, ok), Err(ViolationKind::Stale(id)));
        r.handle_heartbeat(id, Telemetry::default(), later).unwrap();
        assert_eq!(on_send(&r, id, later, ok), Ok(()));
        r.set_mode(id, Mode::Disabled, later).unwrap();
        assert_eq!(on_send(&r, id, later, ok), Err(ViolationKind::Disabled(id)));
    }

    #[test]
    fn outcomes_must_agree_with_what_happened() {
        let id = NodeId(0);
        let facts = CallFacts {
            committed: false,
            finished: false,
            sent: 2,
            valid_reply: Some(id),
        };
        let ok = Outcome::Succeeded {
            node: id,
            attempts: 2,
        };
        assert_eq!(on_finish(&ok, facts), Ok(()));
        let twice = CallFacts {
            finished: true,
            ..facts
        };
        assert_eq!(on_finish(&ok, twice), Err(ViolationKind::SecondOutcome));
        let corrupt = CallFacts {
            valid_reply: None,
            ..facts
        };
        assert_eq!(
            on_finish(&ok, corrupt),
            Err(ViolationKind::InvalidSuccess(id))
        );
        let other = Outcome::Succeeded {
            node: NodeId(1),
            attempts: 2,
        };
        assert_eq!(
            on_finish(&other, facts),
            Err(ViolationKind::InvalidSuccess(NodeId(1)))
        );
        let miscounted = Outcome::Succeeded {
            node: id,
            attempts: 1,
        };
        assert_eq!(
            on_finish(&miscounted, facts),
            Err(ViolationKind::AttemptCount {
                reported: 1,
                sent: 2
            })
        );
        let failed = Outcome::Failed {
            failure: Failure::BrokenStream,
            node: Some(id),
            after_first_byte: false,
            attempts: 2,
        };
        assert_eq!(on_finish(&failed, facts), Ok(()));
        let committed = CallFacts {
            committed: true,
            ..facts
        };
        assert_eq!(
            on_finish(&failed, committed),
            Err(ViolationKind::FirstByte { reported: false })
        );
        let rejected = Outcome::Rejected(Reject::QueueFull);
        assert!(on_finish(&rejected, facts).is_err());
        let none = CallFacts { sent: 0, ..facts };
        assert_eq!(on_finish(&rejected, none), Ok(()));
        let cancelled = Outcome::Cancelled {
            after_first_byte: true,
        };
        assert_eq!(on_finish(&cancelled, committed), Ok(()));
        assert!(on_finish(&cancelled, facts).is_err());
    }

    #[test]
    fn messages_name_the_seed_call_and_node() {
        let v = Violation {
            seed: 42,
            call: 7,
            gateway: 1,
            at: Instant::from_secs(3),
            node: Some("gpu".into()),
            kind: ViolationKind::BreakerOpen(NodeId(2)),
        };
        let s = v.to_string();
        assert!(s.contains("seed 42") && s.contains("call 7"), "{s}");
        assert!(s.contains("gateway 1") && s.contains("\"gpu\""), "{s}");
        assert!(s.contains("open breaker"), "{s}");
    }
}
