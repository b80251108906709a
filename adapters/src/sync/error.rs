//! The errors of the synchronous client.

use std::fmt;

use crate::config::Problems;
use crate::wire::WireError;

/// Why a [`Client`](super::Client) could not be built, or a call gave no
/// answer.
#[derive(Debug)]
pub enum Error {
    /// The config file has problems (each names its file, line and field).
    Config(Problems),
    /// A node cannot be used (unresolvable address, https URL, full table).
    Node {
        /// The node's name.
        node: String,
        /// Why.
        reason: String,
    },
    /// The request is not valid; names the JSON field and the reason.
    BadRequest(WireError),
    /// No configured node serves this model.
    UnknownModel(String),
    /// Admission or routing refused the call before any attempt.
    Rejected {
        /// The core's reason label (`no_eligible_node`, `queue_full`, ...).
        reason: &'static str,
        /// The reason in words.
        message: String,
    },
    /// Every attempt failed.
    AllAttemptsFailed {
        /// Attempts made.
        attempts: u8,
        /// The last attempt's failure label (`connect`, `upstream_5xx`,
        /// `timeout`, `ttft_timeout`, `invalid_reply`, `overloaded`, ...).
        last_failure: &'static str,
        /// The node of the last attempt.
        last_node: Option<String>,
        /// What was seen of the last failure (status, I/O error).
        detail: String,
    },
    /// A node refused the request as invalid (4xx other than 429); not
    /// retried on another node.
    UpstreamRejected {
        /// The node's status.
        status: u16,
        /// The node's error message.
        message: String,
    },
    /// A stream broke after its first chunk (the last item of a
    /// [`ChatStream`](super::ChatStream)).
    StreamBroken {
        /// The failure label (`broken_stream` or `timeout`).
        failure: &'static str,
        /// What happened.
        message: String,
    },
    /// A bug: the router or a translation did something unexpected.
    Internal(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(p) => write!(f, "configuration: {p}"),
            Error::Node { node, reason } => write!(f, "node `{node}`: {reason}"),
            Error::BadRequest(e) => write!(f, "bad request: {e}"),
            Error::UnknownModel(m) => write!(f, "model `{m}` is not served by any configured node"),
            Error::Rejected { reason, message } => write!(f, "rejected ({reason}): {message}"),
            Error::AllAttemptsFailed {
                attempts,
                last_failure,
                last_node,
                detail,
            } => {
                write!(
                    f,
                    "every attempt failed ({attempts} tried); last failure: {last_failure}"
                )?;
                if let Some(n) = last_node {
                    write!(f, " on node `{n}`")?;
                }
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            Error::UpstreamRejected { status, message } if message.is_empty() => {
                write!(
                    f,
                    "the model server refused the request with status {status}"
                )
            }
            Error::UpstreamRejected { status, message } => {
                write!(
                    f,
                    "the model server refused the request ({status}): {message}"
                )
            }
            Error::StreamBroken { failure, message } => {
                write!(
                    f,
                    "the stream broke after it started ({failure}): {message}"
                )
            }
            Error::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

impl std::error::Error for Error {}
