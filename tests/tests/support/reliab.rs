//! Helpers of the reliability tests (`tests/reliability_*.rs`): a client
//! that never panics on a bad answer but says what it got, and the
//! classification of every call into a definite outcome or a lost one.
//!
//! The client in `support/mod.rs` panics when a body is cut; under fault
//! injection a cut body is exactly what has to be counted, so this one
//! reads to EOF within a deadline and reports what it saw.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What one call ended with, as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seen {
    /// 200 with a whole, valid answer (a complete stream included).
    Ok,
    /// A non-200 status with an error body (the status).
    Status(u16),
    /// 200, then a stream that ended with a well-formed terminal error
    /// event (SSE error object and `[DONE]`, or an NDJSON error line).
    ErrorEvent,
    /// No definite outcome: the connection broke, the body was cut or
    /// malformed, or nothing came by the deadline (why).
    Lost(String),
}

impl Seen {
    /// True for every outcome but [`Seen::Lost`].
    pub fn is_definite(&self) -> bool {
        !matches!(self, Seen::Lost(_))
    }
}

/// A raw response read to EOF.
#[derive(Debug, Default)]
pub struct Raw {
    /// Status code (0 when no status line came).
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The de-chunked body.
    pub body: Vec<u8>,
    /// The body's framing was complete (last chunk, or the whole
    /// Content-Length).
    pub complete: bool,
    /// Why reading stopped early, if it did.
    pub error: Option<String>,
    /// From the request's first byte written to the last byte read.
    pub elapsed: Duration,
}

impl Raw {
    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `POST path` with `body` and `headers`, `Connection: close`, reading
/// until EOF or `limit` (then [`Raw::error`] says so). Never panics on
/// what the server does.
pub fn post_raw(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> Raw {
    let start = Instant::now();
    let mut raw = Raw::default();
    let mut s = match TcpStream::connect_timeout(&addr, limit) {
        Ok(s) => s,
        Err(e) => {
            raw.error = Some(format!("connect: {e}"));
            return raw;
        }
    };
    let _ = s.set_write_timeout(Some(limit));
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    if let Err(e) = s.write_all(&bytes) {
        raw.error = Some(format!("write: {e}"));
        return raw;
    }
    let deadline = start + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            raw.error = Some(format!("no EOF within {limit:?}"));
            break;
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                raw.error = Some(format!("read: {e}"));
                break;
            }
        }
    }
    raw.elapsed = start.elapsed();
    parse_response(&buf, &mut raw);
    raw
}

/// Fills `raw`'s status, headers, body and `complete` from the bytes read.
fn parse_response(buf: &[u8], raw: &mut Raw) {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        raw.error.get_or_insert_with(|| "no response head".into());
        return;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    raw.status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            raw.headers
                .push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let rest = &buf[head_end + 4..];
    let chunked = raw
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        let (body, complete) = dechunk(rest);
        raw.body = body;
        raw.complete = complete;
    } else if let Some(n) = raw.header("content-length").and_then(|v| v.parse().ok()) {
        let n: usize = n;
        raw.complete = rest.len() >= n;
        raw.body = rest[..rest.len().min(n)].to_vec();
    } else {
        raw.body = rest.to_vec();
        raw.complete = raw.error.is_none();
    }
}

/// A chunked body and whether its last chunk came.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let line = String::from_utf8_lossy(&rest[..eol]);
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
        else {
            return (body, false);
        };
        rest = &rest[eol + 2..];
        if size == 0 {
            return (body, true);
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(&rest[..rest.len().min(size)]);
            return (body, false);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Which wire format a call's answer is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// OpenAI JSON (`/v1/chat/completions`, not streamed).
    OpenAiWhole,
    /// OpenAI SSE chunks ending with `data: [DONE]`.
    OpenAiStream,
    /// Ollama JSON (`/api/chat` with `"stream": false`).
    OllamaWhole,
    /// Ollama NDJSON ending with a `done: true` line.
    OllamaStream,
}

/// Classifies a call: a definite outcome, or lost and why.
pub fn classify(raw: &Raw, shape: Shape) -> Seen {
    if raw.status == 0 {
        return Seen::Lost(raw.error.clone().unwrap_or_else(|| "no status".into()));
    }
    if !raw.complete {
        return Seen::Lost(format!(
            "status {} with a cut body ({}): {}",
            raw.status,
            raw.error.as_deref().unwrap_or("no error"),
            tail(&raw.text())
        ));
    }
    if raw.status != 200 {
        // An error body in either front's shape.
        return match serde_json::from_slice::<Value>(&raw.body) {
            Ok(v) if !v["error"].is_null() => Seen::Status(raw.status),
            _ => Seen::Lost(format!(
                "status {} without an error body: {}",
                raw.status,
                tail(&raw.text())
            )),
        };
    }
    let text = raw.text();
    match shape {
        Shape::OpenAiWhole => match serde_json::from_slice::<Value>(&raw.body) {
            Ok(v) if v["choices"][0]["message"]["content"].is_string() => Seen::Ok,
            _ => Seen::Lost(format!("200 without a chat answer: {}", tail(&text))),
        },
        Shape::OllamaWhole => match serde_json::from_slice::<Value>(&raw.body) {
            Ok(v) if v["done"] == true => Seen::Ok,
            _ => Seen::Lost(format!("200 without a done answer: {}", tail(&text))),
        },
        Shape::OpenAiStream => {
            let data: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            if data.last() != Some(&"[DONE]")
                || data.iter().filter(|d| **d == "[DONE]").count() != 1
            {
                return Seen::Lost(format!("SSE without one final [DONE]: {}", tail(&text)));
            }
            let mut events = Vec::new();
            for d in &data[..data.len() - 1] {
                match serde_json::from_str::<Value>(d) {
                    Ok(v) => events.push(v),
                    Err(_) => return Seen::Lost(format!("bad SSE event {d:?}")),
                }
            }
            let finished = events
                .iter()
                .any(|v| v["choices"][0]["finish_reason"].is_string());
            match events.last() {
                Some(v) if !v["error"].is_null() => Seen::ErrorEvent,
                Some(_) if finished => Seen::Ok,
                _ => Seen::Lost(format!("SSE without a finish: {}", tail(&text))),
            }
        }
        Shape::OllamaStream => {
            if !text.ends_with('\n') {
                return Seen::Lost(format!("NDJSON without a final newline: {}", tail(&text)));
            }
            let Some(last) = text.lines().rfind(|l| !l.is_empty()) else {
                return Seen::Lost("empty NDJSON".into());
            };
            match serde_json::from_str::<Value>(last) {
                Ok(v) if v["error"].is_string() => Seen::ErrorEvent,
                Ok(v) if v["done"] == true => Seen::Ok,
                _ => Seen::Lost(format!("NDJSON without a done line: {}", tail(&text))),
            }
        }
    }
}

fn tail(s: &str) -> String {
    let n = s.chars().count();
    s.chars().skip(n.saturating_sub(300)).collect()
}

/// A chat body with `stream` and a user message `content`.
pub fn chat(model: &str, stream: bool, content: &str) -> Vec<u8> {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": content}],
    })
    .to_string()
    .into_bytes()
}

/// The path and shape of a chat call on `front` (`true`: OpenAI).
pub fn chat_call(openai: bool, stream: bool) -> (&'static str, Shape) {
    match (openai, stream) {
        (true, false) => ("/v1/chat/completions", Shape::OpenAiWhole),
        (true, true) => ("/v1/chat/completions", Shape::OpenAiStream),
        (false, false) => ("/api/chat", Shape::OllamaWhole),
        (false, true) => ("/api/chat", Shape::OllamaStream),
    }
}

/// One call: `POST` a chat of `shape` with request id `id`, classified.
pub fn call(
    addr: SocketAddr,
    openai: bool,
    stream: bool,
    id: &str,
    limit: Duration,
) -> (Seen, Raw) {
    let (path, shape) = chat_call(openai, stream);
    let raw = post_raw(
        addr,
        path,
        &[("X-Request-ID", id)],
        &chat("m", stream, &format!("hello from {id}")),
        limit,
    );
    (classify(&raw, shape), raw)
}

/// The error object of an answer in either front's shape: (code, message).
pub fn error_of(raw: &Raw) -> (String, String) {
    let v: Value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
    match &v["error"] {
        Value::String(m) => (String::new(), m.clone()),
        e => (
            e["code"].as_str().unwrap_or("").to_owned(),
            e["message"].as_str().unwrap_or("").to_owned(),
        ),
    }
}

/// A tally of outcomes.
#[derive(Debug, Default)]
pub struct Tally {
    /// Calls by outcome.
    pub by: std::collections::BTreeMap<Seen, u64>,
}

impl Tally {
    /// Counts one outcome.
    pub fn add(&mut self, s: Seen) {
        *self.by.entry(s).or_insert(0) += 1;
    }
    /// All calls.
    pub fn total(&self) -> u64 {
        self.by.values().sum()
    }
    /// Calls of `s`.
    pub fn count(&self, s: &Seen) -> u64 {
        self.by.get(s).copied().unwrap_or(0)
    }
    /// Calls without a definite outcome.
    pub fn lost(&self) -> u64 {
        self.by
            .iter()
            .filter(|(s, _)| !s.is_definite())
            .map(|(_, n)| n)
            .sum()
    }
    /// Merges another tally into this one.
    pub fn merge(&mut self, other: Tally) {
        for (s, n) in other.by {
            *self.by.entry(s).or_insert(0) += n;
        }
    }
}
