//! Every decision explains itself: the reasons the router can give.
//!
//! [`Reject`] says why a call was refused before any attempt, [`Exclusion`]
//! why one node was left out of a route, and [`Failure`] why an attempt or a
//! call failed. Status pages, logs, metrics labels and route previews print
//! these values, so they carry what the core decided rather than a guess.
//! Each has a stable snake_case [`label`](Reject::label) for metrics.

use core::fmt;

use crate::admission::Pool;
use crate::time::{Duration, Instant};

/// Why no node could be chosen although nodes may exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum NoNode {
    /// The node table is empty.
    NoNodes,
    /// Every node is disabled.
    AllDisabled,
    /// The pinned node cannot take the call.
    PinnedUnavailable(Exclusion),
    /// No node has the capability the call needs.
    NoCapability,
    /// No node serves the requested model (directly or by alias).
    ModelNotServed,
    /// No node serves the call's scope.
    ScopeMismatch,
    /// No node carries the required tags.
    MissingTags,
    /// Every otherwise eligible node has stopped sending heartbeats.
    AllStale,
    /// Every otherwise eligible node has an open circuit breaker (all are
    /// ejected). The call fails fast rather than trying a node anyway.
    AllBreakersOpen {
        /// Until the earliest breaker turns half-open (zero when one already
        /// is and its trial is under way): a Retry-After hint.
        retry_after: Duration,
    },
    /// Every otherwise eligible node has already been tried by this call.
    AllTried,
}

impl NoNode {
    /// A stable metrics label.
    pub fn label(self) -> &'static str {
        match self {
            NoNode::NoNodes => "no_nodes",
            NoNode::AllDisabled => "all_disabled",
            NoNode::PinnedUnavailable(_) => "pinned_unavailable",
            NoNode::NoCapability => "no_capability",
            NoNode::ModelNotServed => "model_not_served",
            NoNode::ScopeMismatch => "scope_mismatch",
            NoNode::MissingTags => "missing_tags",
            NoNode::AllStale => "all_stale",
            NoNode::AllBreakersOpen { .. } => "all_breakers_open",
            NoNode::AllTried => "all_tried",
        }
    }
}

impl fmt::Display for NoNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoNode::NoNodes => f.write_str("no nodes are configured"),
            NoNode::AllDisabled => f.write_str("every node is disabled"),
            NoNode::PinnedUnavailable(e) => write!(f, "the requested node cannot take it: {e}"),
            NoNode::NoCapability => f.write_str("no node has the needed capability"),
            NoNode::ModelNotServed => f.write_str("no node serves the requested model"),
            NoNode::ScopeMismatch => f.write_str("no node serves this scope"),
            NoNode::MissingTags => f.write_str("no node has the required tags"),
            NoNode::AllStale => f.write_str("every eligible node has stale heartbeats"),
            NoNode::AllBreakersOpen { retry_after } => write!(
                f,
                "every eligible node has an open circuit breaker; retry after {retry_after}"
            ),
            NoNode::AllTried => f.write_str("every eligible node was already tried"),
        }
    }
}

/// Why a call was refused before (or instead of) being sent anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Reject {
    /// The global pool is full and the call could not wait.
    BusyGlobalPool,
    /// The call's operation pool is full and the call could not wait.
    BusyPool(Pool),
    /// Every eligible node is at its concurrency limit and the call could not wait.
    AllNodesSaturated,
    /// Every eligible node is cooling down after 429/503 replies.
    AllNodesOverloaded {
        /// When the first cooldown ends (a Retry-After hint).
        retry_after: Duration,
    },
    /// No node can serve this call.
    NoEligibleNode(NoNode),
    /// The request body exceeds the configured limit.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u32,
    },
    /// The wait queue is full.
    QueueFull,
    /// The call waited for its whole queue deadline without being admitted.
    QueueWaitExpired,
}

impl Reject {
    /// A stable metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Reject::BusyGlobalPool => "busy_global_pool",
            Reject::BusyPool(_) => "busy_pool",
            Reject::AllNodesSaturated => "all_nodes_saturated",
            Reject::AllNodesOverloaded { .. } => "all_nodes_overloaded",
            Reject::NoEligibleNode(_) => "no_eligible_node",
            Reject::PayloadTooLarge { .. } => "payload_too_large",
            Reject::QueueFull => "queue_full",
            Reject::QueueWaitExpired => "queue_wait_expired",
        }
    }

    /// True when retrying later may succeed (HTTP 429/503 with Retry-After),
    /// false when the request itself cannot be served as sent. Every node
    /// ejected by its breaker is transient: breakers turn half-open.
    pub fn is_transient(self) -> bool {
        match self {
            Reject::NoEligibleNode(NoNode::AllBreakersOpen { .. }) => true,
            Reject::PayloadTooLarge { .. } | Reject::NoEligibleNode(_) => false,
            _ => true,
        }
    }

    /// The router's own Retry-After hint, when it has one: the end of the
    /// earliest overload cooldown, or the earliest instant a breaker turns
    /// half-open when every eligible node is ejected.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            Reject::AllNodesOverloaded { retry_after }
            | Reject::NoEligibleNode(NoNode::AllBreakersOpen { retry_after }) => Some(retry_after),
            _ => None,
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::BusyGlobalPool => f.write_str("the gateway is at its global concurrency limit"),
            Reject::BusyPool(p) => write!(f, "the {} pool is at its concurrency limit", p.as_str()),
            Reject::AllNodesSaturated => {
                f.write_str("every eligible node is at its concurrency limit")
            }
            Reject::AllNodesOverloaded { retry_after } => {
                write!(
                    f,
                    "every eligible node is overloaded; retry after {retry_after}"
                )
            }
            Reject::NoEligibleNode(why) => write!(f, "no eligible node: {why}"),
            Reject::PayloadTooLarge { limit } => write!(f, "request body exceeds {limit} bytes"),
            Reject::QueueFull => f.write_str("the wait queue is full"),
            Reject::QueueWaitExpired => f.write_str("waited too long in the queue"),
        }
    }
}

impl core::error::Error for Reject {}

/// Why one node was left out of a route (route preview and traces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Exclusion {
    /// Mode is disabled.
    Disabled,
    /// Another node was pinned.
    NotPinned,
    /// Lacks a needed capability.
    MissingCapability,
    /// Does not serve the model.
    ModelNotServed,
    /// Reserved for another scope.
    ScopeMismatch,
    /// Lacks a required tag.
    MissingTags,
    /// Heartbeats stopped for longer than the lost grace period.
    Lost,
    /// Heartbeats stopped for longer than the stale threshold.
    Stale,
    /// Circuit breaker is open.
    BreakerOpen {
        /// When it turns half-open.
        until: Instant,
    },
    /// Cooling down after a 429/503.
    Overloaded {
        /// When the cooldown ends.
        until: Instant,
    },
    /// This call already tried the node.
    AlreadyTried,
    /// At its concurrency limit right now.
    Saturated,
    /// Draining, and an enabled node is eligible.
    Draining,
}

impl Exclusion {
    /// A stable label.
    pub fn label(self) -> &'static str {
        match self {
            Exclusion::Disabled => "disabled",
            Exclusion::NotPinned => "not_pinned",
            Exclusion::MissingCapability => "missing_capability",
            Exclusion::ModelNotServed => "model_not_served",
            Exclusion::ScopeMismatch => "scope_mismatch",
            Exclusion::MissingTags => "missing_tags",
            Exclusion::Lost => "lost",
            Exclusion::Stale => "stale",
            Exclusion::BreakerOpen { .. } => "breaker_open",
            Exclusion::Overloaded { .. } => "overloaded",
            Exclusion::AlreadyTried => "already_tried",
            Exclusion::Saturated => "saturated",
            Exclusion::Draining => "draining",
        }
    }
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::BreakerOpen { until } => write!(f, "circuit breaker open until {until:?}"),
            Exclusion::Overloaded { until } => write!(f, "overload cooldown until {until:?}"),
            other => f.write_str(other.label()),
        }
    }
}

/// Why an attempt (and possibly its call) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Failure {
    /// The connection was refused or could not be made.
    Connect,
    /// The attempt ran past its timeout.
    Timeout,
    /// A streamed attempt produced no first byte within the TTFT timeout.
    TtftTimeout,
    /// The node answered with a 5xx status (other than 503).
    Upstream5xx(u16),
    /// The reply failed validation (bad JSON, digest mismatch, truncated).
    InvalidReply,
    /// The node answered 429/503 (cooldown; not a breaker failure).
    Overloaded,
    /// The node refused the request as invalid (4xx): the client's fault,
    /// never counted against the node and never retried.
    ClientError(u16),
    /// The call's total deadline passed.
    DeadlineExceeded,
    /// The stream broke after its first byte had reached the client.
    BrokenStream,
}

impl Failure {
    /// A stable metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::TtftTimeout => "ttft_timeout",
            Failure::Upstream5xx(_) => "upstream_5xx",
            Failure::InvalidReply => "invalid_reply",
            Failure::Overloaded => "overloaded",
            Failure::ClientError(_) => "client_error",
            Failure::DeadlineExceeded => "deadline_exceeded",
            Failure::BrokenStream => "broken_stream",
        }
    }
    /// True when the node is to blame (the breaker counts it).
    pub fn charges_node(self) -> bool {
        matches!(
            self,
            Failure::Connect
                | Failure::Timeout
                | Failure::TtftTimeout
                | Failure::Upstream5xx(_)
                | Failure::InvalidReply
                | Failure::BrokenStream
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect => f.write_str("could not connect to the node"),
            Failure::Timeout => f.write_str("the node did not answer in time"),
            Failure::TtftTimeout => f.write_str("no first token within the TTFT timeout"),
            Failure::Upstream5xx(s) => write!(f, "the node answered with status {s}"),
            Failure::InvalidReply => f.write_str("the node's reply was invalid"),
            Failure::Overloaded => f.write_str("the node is overloaded"),
            Failure::ClientError(s) => write!(f, "the node rejected the request with status {s}"),
            Failure::DeadlineExceeded => f.write_str("the call's deadline passed"),
            Failure::BrokenStream => f.write_str("the stream broke after it had started"),
        }
    }
}

impl core::error::Error for Failure {}
