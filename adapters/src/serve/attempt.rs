//! One upstream attempt: build the node's request, send it, and classify
//! what came back into the event the core expects.
//!
//! An attempt never decides anything: it reports. A refused connection, a
//! 5xx, a reply that fails validation or a stream that ends before its first
//! token become [`Failure`]s; a 429/503 becomes an overload with its
//! Retry-After; any other 4xx is the client's fault and is passed back to
//! the client. The core then says whether to fail over.
//!
//! A streamed attempt reads until the [`StreamTranslator`] has seen the first
//! token, then hands its connection to the call, which answers the client.
//! Until then nothing has reached the client, so failover stays possible.

use std::sync::Arc;

use bytes::Bytes;
use drover_core::node::NodeId;
use drover_core::reason::Failure;
use drover_core::time::Duration;
use drover_transports::smol::{PooledBody, read_capped};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};

use super::gateway::Gateway;
use crate::wire::{Inbound, StreamTranslator};

/// Largest error body read from an upstream 4xx (it is passed to the client).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What one attempt produced.
pub(crate) enum AttemptMsg {
    /// A whole, valid, non-streamed answer, already in the client's format.
    Full(Bytes),
    /// A stream whose first token has arrived: what to send first, and the
    /// rest of the upstream stream.
    FirstToken {
        /// Client-format bytes produced so far (includes the first token).
        head: Vec<u8>,
        /// The upstream body and its translator.
        rest: Box<StreamRest>,
    },
    /// The attempt failed; the node may be charged.
    Failed(Failure),
    /// The node is overloaded (429/503).
    Overloaded(Option<Duration>),
    /// The node refused the request as invalid (4xx other than 429).
    ClientError {
        /// Upstream status.
        status: u16,
        /// The upstream's error message, if one could be read.
        message: String,
    },
}

/// The part of a streamed answer still to come.
pub(crate) struct StreamRest {
    /// The upstream body (its connection returns to the pool at its end).
    pub body: PooledBody,
    /// Turns upstream chunks into the client's format.
    pub translator: StreamTranslator,
    /// True when the end marker has already been seen.
    pub done: bool,
}

/// Runs one attempt of `inb` on `node`, asking for `node_model`.
pub(crate) async fn run(
    gw: Arc<Gateway>,
    node: NodeId,
    node_model: Arc<str>,
    inb: Arc<Inbound>,
    request_id: HeaderValue,
) -> AttemptMsg {
    let Some(up) = gw.upstream(node) else {
        // The node was removed between the decision and now.
        return AttemptMsg::Failed(Failure::Connect);
    };
    let out = crate::wire::upstream_request(&inb, up.kind, &node_model);
    let mut path = String::with_capacity(up.base_path.len() + out.path.len());
    path.push_str(&up.base_path);
    path.push_str(out.path);
    let mut builder = http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, up.authority.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // The client's request id goes upstream too, so that a node's logs
    // can be matched with the gateway's (it was checked to be 1 to 128
    // visible ASCII characters).
    builder = builder.header(super::http::REQUEST_ID, request_id);
    if let Some(auth) = &up.auth {
        builder = builder.header(AUTHORIZATION, auth.clone());
    }
    let req = match builder.body(Full::new(Bytes::from(out.body))) {
        Ok(r) => r,
        // The path comes from config (validated) and a static suffix.
        Err(_) => return AttemptMsg::Failed(Failure::Connect),
    };
    let addr = match gw.connect_addr(&up).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(node = %up.name, "{e}");
            return AttemptMsg::Failed(Failure::Connect);
        }
    };
    let resp = match gw.client.send(addr, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(node = %up.name, error = %e, "upstream request failed");
            return AttemptMsg::Failed(Failure::Connect);
        }
    };
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        let retry = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return AttemptMsg::Overloaded(retry);
    }
    if status.is_server_error() {
        return AttemptMsg::Failed(Failure::Upstream5xx(status.as_u16()));
    }
    if status.is_client_error() {
        let body = read_capped(resp.into_body(), MAX_ERROR_BODY).await;
        let message = body
            .ok()
            .map(|b| upstream_error_message(&b))
            .unwrap_or_default();
        return AttemptMsg::ClientError {
            status: status.as_u16(),
            message,
        };
    }
    if !status.is_success() {
        return AttemptMsg::Failed(Failure::InvalidReply);
    }
    if inb.stream {
        first_token(resp.into_body(), StreamTranslator::new(&inb, up.kind)).await
    } else {
        let max = gw.cfg.limits.max_response_bytes;
        match read_capped(resp.into_body(), max).await {
            Ok(bytes) => match crate::wire::translate_response(&inb, up.kind, &bytes) {
                Ok(body) => AttemptMsg::Full(Bytes::from(body)),
                Err(_) => AttemptMsg::Failed(Failure::InvalidReply),
            },
            Err(_) => AttemptMsg::Failed(Failure::InvalidReply),
        }
    }
}

/// Reads a streamed answer until its first token (or its end).
async fn first_token(mut body: PooledBody, mut translator: StreamTranslator) -> AttemptMsg {
    let mut head = Vec::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers carry no tokens
                };
                head.reserve(data.len() + data.len() / 8);
                match translator.push(&data, &mut head) {
                    Ok(p) if p.first_token || p.done => {
                        return AttemptMsg::FirstToken {
                            head,
                            rest: Box::new(StreamRest {
                                body,
                                translator,
                                done: p.done,
                            }),
                        };
                    }
                    Ok(_) => {}
                    Err(_) => return AttemptMsg::Failed(Failure::InvalidReply),
                }
            }
            // The stream broke before any token reached the client.
            Some(Err(_)) => return AttemptMsg::Failed(Failure::InvalidReply),
            // Ended without an end marker or a token: not a valid answer.
            None => return AttemptMsg::Failed(Failure::InvalidReply),
        }
    }
}

/// The human-readable message of an upstream error body (OpenAI's
/// `{"error":{"message":..}}`, Ollama's `{"error":".."}`), or the body's
/// first line as text.
pub(crate) fn upstream_error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let e = &v["error"];
        if let Some(s) = e.as_str() {
            return s.to_owned();
        }
        if let Some(s) = e["message"].as_str() {
            return s.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(512)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::upstream_error_message;

    #[test]
    fn error_messages_are_read_from_both_shapes() {
        assert_eq!(
            upstream_error_message(br#"{"error":{"message":"bad max_tokens","type":"x"}}"#),
            "bad max_tokens"
        );
        assert_eq!(
            upstream_error_message(br#"{"error":"model 'x' not found"}"#),
            "model 'x' not found"
        );
        assert_eq!(upstream_error_message(b"plain text\nmore"), "plain text");
        assert_eq!(upstream_error_message(b""), "");
    }
}
