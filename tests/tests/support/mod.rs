//! Shared pieces of the gateway end-to-end tests (`tests/gateway_*.rs`):
//! fake model servers and a gateway in front of them, all on 127.0.0.1
//! with ports picked by the kernel, and a small blocking HTTP/1.1 client.
//!
//! The client is written here on `std::net::TcpStream` rather than taken
//! from a crate because the tests need byte-level control: read a stream
//! chunk by chunk and stop after the first one, drop a connection
//! mid-stream, and see exactly how a chunked body ends. Every read has a
//! timeout ([`IO_TIMEOUT`]), so a gateway that hangs fails the test instead
//! of stalling it. Every request says `Connection: close`, so each one has
//! its own connection.
//!
//! Everything stops by itself: dropping a [`FakeServer`] or a [`Running`]
//! gateway stops it. Declare the fakes first and the gateway after them so
//! that the gateway stops first.

#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use drover::config::{GatewayConfig, NodeConfig};
use drover::fake::{Behaviour, FakeServer, FakeSpec};
use drover::serve::{Running, ServeOptions};
use drover_core::node::NodeKind;
use serde_json::Value;

/// Longest a single read from the gateway may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------- fakes

/// A healthy, instant fake of `kind` serving `models`.
pub fn fake(kind: NodeKind, models: &[&str]) -> FakeServer {
    FakeServer::start(FakeSpec::new(kind, models)).expect("a fake server starts on 127.0.0.1:0")
}

/// A fake of `kind` serving `models` that starts with `behaviour`.
pub fn fake_with(kind: NodeKind, models: &[&str], behaviour: Behaviour) -> FakeServer {
    let mut spec = FakeSpec::new(kind, models);
    spec.behaviour = behaviour;
    FakeServer::start(spec).expect("a fake server starts on 127.0.0.1:0")
}

/// A behaviour that always fails with `fail` (the default rate is 1.0).
pub fn failing(fail: drover::fake::Fail) -> Behaviour {
    Behaviour {
        fail,
        ..Behaviour::default()
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn dead_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("a bound listener has an address");
    drop(l);
    addr
}

// -------------------------------------------------------------- gateway

/// A node named `name` at `addr`, of `kind`, serving `models`, with
/// `aliases` (requested name → node model), 8 at once.
pub fn node_at(
    name: &str,
    kind: NodeKind,
    addr: SocketAddr,
    models: &[&str],
    aliases: &[(&str, &str)],
) -> NodeConfig {
    NodeConfig::local(
        name,
        kind,
        addr,
        8,
        models.iter().map(|m| (*m).to_owned()).collect(),
        aliases
            .iter()
            .map(|(a, m)| ((*a).to_owned(), (*m).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// A node for a fake server, serving the same models as the fake.
pub fn node(name: &str, fake: &FakeServer, models: &[&str]) -> NodeConfig {
    node_at(name, fake.kind(), fake.addr(), models, &[])
}

/// A gateway config on 127.0.0.1:0 with `nodes` and short timeouts:
/// connect 300 ms, TTFT 500 ms, attempt 3 s, stream total 10 s, queue wait
/// 200 ms, header timeout 2 s, shutdown grace 3 s.
pub fn config(nodes: Vec<NodeConfig>) -> GatewayConfig {
    let mut cfg = GatewayConfig::default_local();
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.nodes = nodes;
    cfg.timeouts.connect = ms(300);
    cfg.timeouts.ttft = ms(500);
    cfg.timeouts.attempt = Duration::from_secs(3);
    cfg.timeouts.stream_total = Duration::from_secs(10);
    cfg.timeouts.queue_wait = ms(200);
    cfg.timeouts.shutdown_grace = Duration::from_secs(3);
    cfg.limits.header_timeout = Duration::from_secs(2);
    cfg
}

/// Starts a gateway (no state file).
pub fn start(cfg: GatewayConfig) -> Running {
    start_with(cfg, &ServeOptions::default())
}

/// Starts a gateway with `opts`.
///
/// On a thread with an 8 MiB stack: in unoptimised builds,
/// `Gateway::build` moves the ~340 KB router through enough stack
/// temporaries to overflow a 2 MiB test thread.
pub fn start_with(cfg: GatewayConfig, opts: &ServeOptions) -> Running {
    try_start(cfg, opts).expect("the gateway starts")
}

/// [`start_with`], returning the gateway's refusal instead of panicking.
pub fn try_start(cfg: GatewayConfig, opts: &ServeOptions) -> Result<Running, String> {
    let opts = opts.clone();
    std::thread::Builder::new()
        .name("start-gateway".into())
        .stack_size(8 << 20)
        .spawn(move || drover::serve::start(cfg, &opts))
        .expect("spawn a thread")
        .join()
        .expect("starting the gateway does not panic")
}

/// The router's active calls.
pub fn active_calls(gw: &Running) -> u32 {
    gw.gateway.router.with(|r| r.active_calls())
}

/// Attempts in flight on node `name`.
pub fn in_flight(gw: &Running, name: &str) -> u32 {
    gw.gateway.router.with(|r| {
        let id = r.nodes().find(name).expect("the node exists");
        r.node(id).expect("the node exists").in_flight
    })
}

/// Consecutive failures counted by node `name`'s breaker.
pub fn breaker_failures(gw: &Running, name: &str) -> u16 {
    gw.gateway.router.with(|r| {
        let id = r.nodes().find(name).expect("the node exists");
        r.node(id)
            .expect("the node exists")
            .breaker
            .consecutive_failures()
    })
}

/// Waits (polling every 10 ms) until `cond` holds; panics naming `what`
/// after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(ms(10));
    }
}

/// `GET /nodes`, as a map from node name to its object.
pub fn nodes(addr: SocketAddr) -> BTreeMap<String, Value> {
    let r = get(addr, "/nodes");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["nodes"]
        .as_array()
        .expect("`nodes` is an array")
        .iter()
        .map(|n| (n["name"].as_str().expect("a name").to_owned(), n.clone()))
        .collect()
}

/// `POST /nodes/{name}/mode` with `body`.
pub fn set_mode(addr: SocketAddr, name: &str, body: &Value) -> Reply {
    post(addr, &format!("/nodes/{name}/mode"), body)
}

// ---------------------------------------------------------------- client

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], b"")
}

/// `POST path` with a JSON body.
pub fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    send(addr, "POST", path, &[], body.to_string().as_bytes())
}

/// Sends one request and reads the whole response.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    Streaming::open(addr, method, path, headers, body).into_reply()
}

/// How a response body is framed.
#[derive(Debug)]
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

/// A response whose body is read piece by piece.
pub struct Streaming {
    reader: BufReader<TcpStream>,
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    framing: Framing,
    done: bool,
}

impl Streaming {
    /// Sends the request and reads the status line and headers.
    pub fn open(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Streaming {
        let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to the gateway");
        s.set_read_timeout(Some(IO_TIMEOUT))
            .expect("set a read timeout");
        s.set_write_timeout(Some(IO_TIMEOUT))
            .expect("set a write timeout");
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        s.write_all(&bytes).expect("send the request");
        Streaming::read_head(BufReader::new(s))
    }

    /// Reads a response head from a connection the caller wrote to.
    pub fn read_head(mut reader: BufReader<TcpStream>) -> Streaming {
        let status_line = read_line(&mut reader);
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = read_line(&mut reader);
            if line.is_empty() {
                break;
            }
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let framing = if find_header(&headers, "transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            Framing::Chunked
        } else if let Some(n) = find_header(&headers, "content-length") {
            Framing::Length(n.parse().expect("a numeric content-length"))
        } else {
            Framing::Close
        };
        Streaming {
            reader,
            status,
            headers,
            framing,
            done: false,
        }
    }

    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The next piece of the body (one chunk of a chunked body), or `None`
    /// at its end. Panics if the body is cut (the connection closes
    /// inside a chunk or before the last chunk) or a read times out.
    pub fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        match self.framing {
            Framing::Length(n) => {
                self.done = true;
                let mut buf = vec![0; n];
                self.reader
                    .read_exact(&mut buf)
                    .expect("the whole content-length body");
                Some(buf)
            }
            Framing::Close => {
                self.done = true;
                let mut buf = Vec::new();
                self.reader
                    .read_to_end(&mut buf)
                    .expect("the body up to EOF");
                Some(buf)
            }
            Framing::Chunked => {
                let line = read_line(&mut self.reader);
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                if size == 0 {
                    // Trailers, then the blank line.
                    while !read_line(&mut self.reader).is_empty() {}
                    self.done = true;
                    return None;
                }
                let mut buf = vec![0; size];
                self.reader
                    .read_exact(&mut buf)
                    .expect("a whole chunk (the body was cut)");
                let crlf = read_line(&mut self.reader);
                assert!(crlf.is_empty(), "chunk not followed by CRLF: {crlf:?}");
                Some(buf)
            }
        }
    }

    /// The rest of the body.
    pub fn rest(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = self.next_chunk() {
            out.extend_from_slice(&c);
        }
        out
    }

    /// Reads the rest of the body into a [`Reply`].
    pub fn into_reply(mut self) -> Reply {
        let body = self.rest();
        Reply {
            status: self.status,
            headers: self.headers,
            body,
        }
    }
}

/// One CRLF-terminated line, without its terminator.
fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = Vec::new();
    let n = r
        .read_until(b'\n', &mut line)
        .unwrap_or_else(|e| panic!("reading from the gateway: {e}"));
    assert!(
        n > 0,
        "the connection closed before the end of the response"
    );
    assert!(line.ends_with(b"\n"), "the connection closed mid-line");
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line).expect("an ASCII line")
}

// ------------------------------------------------------ stream formats

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(body).expect("SSE is UTF-8");
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim().to_owned())
        .collect()
}

/// Checks an SSE body: JSON events, then exactly one `[DONE]`, last.
/// Returns the JSON events.
pub fn sse_events(body: &[u8]) -> Vec<Value> {
    let data = sse_data(body);
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "an SSE stream ends with data: [DONE]: {}",
        String::from_utf8_lossy(body)
    );
    assert_eq!(data.iter().filter(|d| *d == "[DONE]").count(), 1);
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("bad SSE event {d:?}: {e}")))
        .collect()
}

/// The text of OpenAI chat chunks (`choices[0].delta.content`).
pub fn sse_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// The lines of an NDJSON body, each parsed.
pub fn ndjson(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).expect("NDJSON is UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "NDJSON ends with a newline: {text:?}"
    );
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}")))
        .collect()
}

/// A chat request body for `path`'s front.
pub fn chat_body(model: &str, stream: Option<bool>) -> Value {
    let mut v = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "hello there"}],
    });
    if let Some(s) = stream {
        v["stream"] = Value::Bool(s);
    }
    v
}

/// Round-robin, and no prefix affinity (every call in these tests has the
/// same prompt, which would otherwise send them all to one node).
pub fn round_robin(mut cfg: GatewayConfig) -> GatewayConfig {
    cfg.router.policy = drover_core::config::Policy::RoundRobin;
    cfg.router.affinity.prefix_key_blocks = 0;
    cfg
}

/// The events of `GET /trace/{id}`.
pub fn trace(gw: &Running, id: &str) -> Vec<Value> {
    let r = get(gw.addr, &format!("/trace/{id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"].as_array().unwrap().clone()
}

/// The failure labels of the trace's failed attempts on `node`.
pub fn failures_on(events: &[Value], node: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "attempt_failed" && e["node"] == node)
        .map(|e| e["failure"].as_str().unwrap().to_owned())
        .collect()
}

/// `config(nodes)` with round-robin and fast probes (health every 150 ms,
/// inventory every `inventory_ms`, 100 ms timeout, no jitter) and a breaker
/// that opens after 2 failures for `cooldown_ms` (at most twice that).
pub fn probing_config(
    nodes: Vec<NodeConfig>,
    inventory_ms: u64,
    cooldown_ms: u64,
) -> GatewayConfig {
    let mut cfg = round_robin(config(nodes));
    let p = &mut cfg.router.probe;
    assert!(p.enabled, "probes are on by default");
    p.health_interval = drover_core::Duration::from_millis(150);
    p.inventory_interval = drover_core::Duration::from_millis(inventory_ms);
    p.timeout = drover_core::Duration::from_millis(100);
    p.jitter = 0.0;
    let b = &mut cfg.router.breaker;
    b.failure_threshold = 2;
    b.base_cooldown = drover_core::Duration::from_millis(cooldown_ms);
    b.max_cooldown = drover_core::Duration::from_millis(cooldown_ms * 2);
    b.jitter = 0.0;
    cfg
}
