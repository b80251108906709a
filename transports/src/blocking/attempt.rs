//! One attempt on the calling thread: send with ureq, bounded by the core's
//! deadline, and classify what came back into the event the core expects.

use std::io::Read;
use std::time::{Duration, Instant};

use drover_core::node::NodeId;
use drover_core::reason::Failure;
use ureq::BodyReader;

use super::{Decoder, DriverConfig, Exchange, Outgoing};

/// Largest 4xx error body read (its message goes to the caller).
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Bytes read from the upstream per `read`.
pub(super) const READ_BUF: usize = 16 * 1024;

/// What one attempt produced.
pub(super) enum AttemptMsg<D> {
    /// A whole, valid answer.
    Full(Vec<u8>),
    /// A stream whose first token (or end) has arrived.
    FirstToken {
        /// The caller's bytes so far.
        head: Vec<u8>,
        /// The rest of the upstream body.
        reader: BodyReader<'static>,
        /// Its decoder.
        decoder: D,
        /// True when the end marker has been seen already.
        done: bool,
    },
    /// The attempt failed before its answer.
    Failed(Failure, String),
    /// ureq's timeout fired: the core's deadline has come (it decides which
    /// timeout it was).
    TimedOut(String),
    /// 429 or 503, with its Retry-After.
    Overloaded(Option<drover_core::time::Duration>),
    /// Any other 4xx.
    ClientError(u16, String),
}

/// Runs one attempt of `ex` on `node`. `deadline` is the core's `Wait`
/// deadline; `body_end` bounds a stream's whole body (the call's deadline).
pub(super) fn run<E: Exchange>(
    agent: &ureq::Agent,
    cfg: &DriverConfig,
    ex: &E,
    node: NodeId,
    model: Option<drover_core::catalog::ModelId>,
    deadline: Instant,
    body_end: Instant,
) -> AttemptMsg<E::Decoder> {
    let out = match ex.request(node, model) {
        Ok(o) => o,
        Err(f) => return AttemptMsg::Failed(f, "the node is no longer configured".into()),
    };
    let start = Instant::now();
    let budget = deadline.saturating_duration_since(start);
    if budget.is_zero() {
        return AttemptMsg::TimedOut("no time left for the attempt".into());
    }
    let stream = ex.is_stream();
    let resp = match send(agent, cfg, &out, budget, stream, body_end) {
        Ok(r) => r,
        Err(e) => return classify_send_error(e),
    };
    let status = resp.status().as_u16();
    if status == 429 || status == 503 {
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(drover_core::time::Duration::from_secs);
        return AttemptMsg::Overloaded(retry);
    }
    if (500..600).contains(&status) {
        return AttemptMsg::Failed(Failure::Upstream5xx(status), format!("status {status}"));
    }
    if (400..500).contains(&status) {
        let mut body = resp.into_body();
        let bytes = body
            .with_config()
            .limit(MAX_ERROR_BODY)
            .read_to_vec()
            .unwrap_or_default();
        return AttemptMsg::ClientError(status, ex.error_message(&bytes));
    }
    if !(200..300).contains(&status) {
        return AttemptMsg::Failed(Failure::InvalidReply, format!("status {status}"));
    }
    let limit = u64::try_from(cfg.max_response_bytes).unwrap_or(u64::MAX);
    let reader = resp.into_body().into_with_config().limit(limit).reader();
    if stream {
        first_token(reader, ex.decoder(node), deadline)
    } else {
        whole(reader, ex, node, deadline)
    }
}

fn send(
    agent: &ureq::Agent,
    cfg: &DriverConfig,
    out: &Outgoing,
    budget: Duration,
    stream: bool,
    body_end: Instant,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let mut req = agent
        .post(&out.url)
        .header("content-type", "application/json");
    for (k, v) in &out.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    // No global or per-call timeout: either would make ureq resolve the
    // host on a helper thread (see the module docs).
    let recv_body = if stream {
        body_end.saturating_duration_since(Instant::now())
    } else {
        budget
    };
    req.config()
        .timeout_connect(Some(cfg.connect_timeout.min(budget)))
        .timeout_send_request(Some(budget))
        .timeout_send_body(Some(budget))
        .timeout_recv_response(Some(budget))
        .timeout_recv_body(Some(recv_body.max(Duration::from_millis(1))))
        .timeout_per_read(Some(budget))
        .build()
        .send(&out.body[..])
}

fn classify_send_error<D>(e: ureq::Error) -> AttemptMsg<D> {
    match e {
        ureq::Error::Timeout(ureq::Timeout::Connect) => {
            AttemptMsg::Failed(Failure::Connect, "connect timed out".into())
        }
        ureq::Error::Timeout(t) => AttemptMsg::TimedOut(format!("{t:?} timed out")),
        ureq::Error::Io(io) if is_timeout(&io) => AttemptMsg::TimedOut(io.to_string()),
        ureq::Error::Io(io) => AttemptMsg::Failed(Failure::Connect, io.to_string()),
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
            AttemptMsg::Failed(Failure::Connect, e.to_string())
        }
        other => AttemptMsg::Failed(Failure::InvalidReply, other.to_string()),
    }
}

/// True when an I/O error is a timeout (ureq wraps its own errors in
/// `io::Error` inside body readers).
pub(super) fn is_timeout(e: &std::io::Error) -> bool {
    if matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) {
        return true;
    }
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|u| match u {
            ureq::Error::Timeout(_) => true,
            ureq::Error::Io(io) => is_timeout(io),
            _ => false,
        })
}

/// Reads a whole reply, checking the deadline between reads.
fn whole<E: Exchange>(
    mut reader: BodyReader<'static>,
    ex: &E,
    node: NodeId,
    deadline: Instant,
) -> AttemptMsg<E::Decoder> {
    let mut body = Vec::new();
    let mut buf = vec![0u8; READ_BUF];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                body.extend_from_slice(buf.get(..n).unwrap_or_default());
                if Instant::now() >= deadline {
                    return AttemptMsg::TimedOut("the reply was still coming".into());
                }
            }
            Err(e) if is_timeout(&e) => return AttemptMsg::TimedOut(e.to_string()),
            Err(e) => return AttemptMsg::Failed(Failure::InvalidReply, e.to_string()),
        }
    }
    match ex.reply(node, &body) {
        Ok(answer) => AttemptMsg::Full(answer),
        Err(e) => AttemptMsg::Failed(Failure::InvalidReply, e.to_string()),
    }
}

/// Reads a stream until its first token (or its end marker).
fn first_token<D: Decoder>(
    mut reader: BodyReader<'static>,
    mut decoder: D,
    deadline: Instant,
) -> AttemptMsg<D> {
    let mut head = Vec::new();
    let mut buf = vec![0u8; READ_BUF];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => {
                // Ended before any token: not a valid answer (even when the
                // decoder accepts the end, there is nothing to give).
                return AttemptMsg::Failed(
                    Failure::InvalidReply,
                    "the stream ended before its first token".into(),
                );
            }
            Ok(n) => match decoder.push(buf.get(..n).unwrap_or_default(), &mut head) {
                Ok(p) if p.first_token || p.done => {
                    return AttemptMsg::FirstToken {
                        head,
                        reader,
                        decoder,
                        done: p.done,
                    };
                }
                Ok(_) if Instant::now() >= deadline => {
                    return AttemptMsg::TimedOut("no first token by the deadline".into());
                }
                Ok(_) => {}
                Err(e) => return AttemptMsg::Failed(Failure::InvalidReply, e.to_string()),
            },
            Err(e) if is_timeout(&e) => return AttemptMsg::TimedOut(e.to_string()),
            Err(e) => return AttemptMsg::Failed(Failure::InvalidReply, e.to_string()),
        }
    }
}
