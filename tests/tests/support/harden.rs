//! Helpers of the hardening tests (`tests/hardening_*.rs`): raw-socket
//! requests whose bytes the test controls exactly, a gateway with one fake
//! node that counts what reaches it, and small measuring tools (latency
//! percentiles, the gateway's file descriptors and resident memory).
//!
//! Declared from a test file after `mod support;` with
//! `#[path = "support/harden.rs"] mod harden;`.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use drover::fake::FakeServer;
use drover::serve::Running;
use drover_core::node::NodeKind;

use crate::support::{IO_TIMEOUT, config, fake, node, start};

/// The model every hardening gateway serves.
pub const MODEL: &str = "m";

/// A valid chat request body: if the gateway accepted the request around
/// it, the call would reach the fake node.
pub const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#;

/// A gateway (the test [`config`], with `max_body_bytes` = `cap`) in front
/// of one instant OpenAI-compatible fake.
pub fn gateway(cap: usize) -> (FakeServer, Running) {
    let f = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let mut cfg = config(vec![node("a", &f, &[MODEL])]);
    cfg.limits.max_body_bytes = cap;
    // No probe reads: "nothing reached the node" then means nothing at all.
    cfg.router.probe.enabled = false;
    let gw = start(cfg);
    (f, gw)
}

/// What came back on a raw connection.
#[derive(Debug)]
pub struct Raw {
    /// The status of the first response, if one arrived.
    pub status: Option<u16>,
    /// Everything read, lossily as text.
    pub text: String,
}

impl Raw {
    /// Parses what was read.
    pub fn from_bytes(bytes: &[u8]) -> Raw {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let status = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|t| t.get(..3))
            .and_then(|s| s.parse().ok());
        Raw { status, text }
    }
}

/// Connects to `addr`, writes `bytes` as they are, and reads until the
/// gateway closes (or [`IO_TIMEOUT`] passes without a byte).
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Raw {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to the gateway");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    // A refusal may close the connection before everything is written.
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    Raw::from_bytes(&buf)
}

/// A request head for `POST /v1/chat/completions` with `lines` (each
/// without its CRLF), followed by the blank line, then `body`.
pub fn post_raw(lines: &[&str], body: &[u8]) -> Vec<u8> {
    let mut req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".to_vec();
    for l in lines {
        req.extend_from_slice(l.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    req
}

/// `body` as one chunk, then the last chunk.
pub fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    out
}

/// Sends `request` and checks that it is refused with one of `statuses`,
/// that nothing reached the fake node, and that the gateway still serves
/// a well-formed request afterwards (which does reach the node).
pub fn assert_refused(request: &[u8], statuses: &[u16]) -> Raw {
    let (f, gw) = gateway(4 << 20);
    let raw = exchange(gw.addr, request);
    let status = raw.status.unwrap_or_else(|| {
        panic!(
            "no response to {:?}: {:?}",
            String::from_utf8_lossy(request),
            raw.text
        )
    });
    assert!(
        statuses.contains(&status),
        "{status} is not one of {statuses:?} for {:?}: {}",
        String::from_utf8_lossy(request),
        raw.text
    );
    let seen = f.requests();
    assert_eq!(
        (seen.total, seen.in_flight),
        (0, 0),
        "nothing reaches the node: {seen:?}"
    );
    let ok = exchange(
        gw.addr,
        &post_raw(
            &[
                "Connection: close",
                &format!("Content-Length: {}", CHAT.len()),
            ],
            CHAT.as_bytes(),
        ),
    );
    assert_eq!(
        ok.status,
        Some(200),
        "a good request still works: {}",
        ok.text
    );
    assert_eq!(f.requests().calls, 1);
    raw
}

// ------------------------------------------------------------ measuring

/// The `q`-quantile (0..=1) of `samples` (sorted here), or zero if empty.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let i = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[i.min(samples.len() - 1)]
}

/// Resident set size of process `pid` in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Times `f`, returning its result and how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t0 = Instant::now();
    let out = f();
    (out, t0.elapsed())
}
