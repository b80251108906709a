//! The gateway's HTTP front on raw bytes. One in-process gateway (started
//! once, on 127.0.0.1, in front of two healthy fake model servers, one
//! OpenAI-compatible and one Ollama, both serving the model `m`) takes each
//! input as the bytes a client sends on a fresh TCP connection.
//!
//! What must hold for any bytes:
//! - the gateway answers with a well-formed HTTP/1.1 status line (HTTP/1.0
//!   to an HTTP/1.0 request), or closes
//!   the connection without an answer; never a `500` (a handler panic);
//! - the connection ends within [`DEADLINE`] once the client has sent all
//!   it will (the input ends with a half-close: for an input without a
//!   complete request head at once, else after the first bytes of the
//!   answer or [`ANSWER_WAIT`], whichever comes first);
//! - no answer shows the gateway's tokens;
//! - the gateway stays alive: every [`STATUS_EVERY`] inputs (and the first
//!   time), `GET /status` on a new connection answers `200`.
//!
//! Client tokens are required on loopback too (`tokens_on_loopback`), so
//! the authentication paths are reached: the client token is
//! [`CLIENT_TOKEN`], the operator token [`OPERATOR_TOKEN`] and the heartbeat
//! token [`HEARTBEAT_TOKEN`].

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover::config::{GatewayConfig, NodeConfig, Secret};
use drover::fake::{FakeServer, FakeSpec};
use drover::serve::ServeOptions;
use drover_core::node::NodeKind;

/// The client token the gateway accepts.
pub const CLIENT_TOKEN: &str = "fuzz-client-token-0123456789";
/// The operator token.
pub const OPERATOR_TOKEN: &str = "fuzz-operator-token-0123456789";
/// The heartbeat token.
pub const HEARTBEAT_TOKEN: &str = "fuzz-heartbeat-token-0123456789";

/// Longest a connection may stay open after the client's half-close.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How long to wait for the first bytes of an answer to a complete head
/// before half-closing (a request whose body is shorter than its
/// `Content-Length` waits for the rest until then).
pub const ANSWER_WAIT: Duration = Duration::from_millis(300);
/// How often the gateway's liveness is checked, in inputs.
pub const STATUS_EVERY: u64 = 50;
/// Most answer bytes kept for the checks.
const KEEP: usize = 64 * 1024;

static GATEWAY: OnceLock<SocketAddr> = OnceLock::new();
static INPUTS: AtomicU64 = AtomicU64::new(0);

fn node(name: &str, fake: &FakeServer) -> NodeConfig {
    NodeConfig::local(
        name,
        fake.kind(),
        fake.addr(),
        8,
        vec!["m".to_owned()],
        BTreeMap::from([("alias".to_owned(), "m".to_owned())]),
    )
}

/// Starts the fakes and the gateway; they live as long as the process.
fn start() -> SocketAddr {
    let start_fake = |kind| {
        FakeServer::start(FakeSpec::new(kind, &["m"])).expect("a fake server starts on 127.0.0.1:0")
    };
    let openai = start_fake(NodeKind::OpenAiCompat);
    let ollama = start_fake(NodeKind::Ollama);
    let mut cfg = GatewayConfig::default_local();
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.nodes = vec![node("fuzz-openai", &openai), node("fuzz-ollama", &ollama)];
    cfg.client_tokens = vec![Secret::new(CLIENT_TOKEN)];
    cfg.tokens_on_loopback = true;
    cfg.operator_token = Some(Secret::new(OPERATOR_TOKEN));
    cfg.heartbeat_token = Some(Secret::new(HEARTBEAT_TOKEN));
    cfg.limits.header_timeout = Duration::from_secs(2);
    cfg.timeouts.connect = Duration::from_millis(300);
    cfg.timeouts.ttft = Duration::from_secs(1);
    cfg.timeouts.attempt = Duration::from_secs(2);
    cfg.timeouts.stream_total = Duration::from_secs(3);
    cfg.timeouts.queue_wait = Duration::from_millis(100);
    // On a thread with an 8 MiB stack: unoptimised, building the gateway
    // moves its router through enough stack temporaries to overflow 2 MiB.
    let running = std::thread::Builder::new()
        .name("fuzz-gateway".into())
        .stack_size(8 << 20)
        .spawn(move || drover::serve::start(cfg, &ServeOptions::default()))
        .expect("spawn a thread")
        .join()
        .expect("starting the gateway does not panic")
        .expect("the gateway starts");
    let addr = running.addr;
    // Kept running until the process exits.
    std::mem::forget((openai, ollama, running));
    addr
}

/// Whether `data` holds the end of a request head (a blank line).
fn has_head(data: &[u8]) -> bool {
    data.windows(2).any(|w| w == b"\n\n") || data.windows(4).any(|w| w == b"\r\n\r\n")
}

/// Sends `data` on a new connection and returns what came back before the
/// gateway closed it; panics if it stays open past [`DEADLINE`].
pub fn exchange(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect to the gateway");
    s.set_write_timeout(Some(DEADLINE)).expect("set a timeout");
    // The gateway may answer and close before it has read everything (a
    // head too large, a bad request line): a failed write is fine.
    let _ = s.write_all(data);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    if has_head(data) {
        s.set_read_timeout(Some(ANSWER_WAIT))
            .expect("set a timeout");
        match s.read(&mut buf) {
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return out, // reset: closed
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    let end = Instant::now() + DEADLINE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the connection is still open {DEADLINE:?} after the request ended; got {:?}",
            String::from_utf8_lossy(&out[..out.len().min(200)])
        );
        s.set_read_timeout(Some(left)).expect("set a timeout");
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = KEEP.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => break, // reset: closed
        }
    }
    out
}

/// The status code of an answer that starts with a well-formed status line:
/// `HTTP/1.1` (or `HTTP/1.0`, the answer to an HTTP/1.0 request), a space,
/// three digits, a space, a UTF-8 reason and CRLF.
pub fn status_of(answer: &[u8]) -> Option<u16> {
    let rest = answer
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| answer.strip_prefix(b"HTTP/1.0 "))?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(3) != Some(&b' ') {
        return None;
    }
    let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
    std::str::from_utf8(&rest[..line_end]).ok()?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Checks one fuzz input; panics on a finding.
pub fn check(data: &[u8]) {
    let addr = *GATEWAY.get_or_init(start);
    let n = INPUTS.fetch_add(1, Ordering::Relaxed);
    if n % STATUS_EVERY == 0 {
        let answer = exchange(
            addr,
            b"GET /status HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        );
        assert_eq!(
            status_of(&answer),
            Some(200),
            "GET /status after {n} inputs: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        );
    }
    let answer = exchange(addr, data);
    if answer.is_empty() {
        return; // closed without an answer
    }
    let shown = || String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned();
    let Some(status) = status_of(&answer) else {
        panic!("not an HTTP/1.x status line: {:?}", shown());
    };
    assert!(
        (100..=599).contains(&status),
        "status {status}: {:?}",
        shown()
    );
    assert_ne!(status, 500, "a handler panicked: {:?}", shown());
    let holds = |hay: &[u8], s: &str| hay.windows(s.len()).any(|w| w == s.as_bytes());
    for secret in [CLIENT_TOKEN, OPERATOR_TOKEN, HEARTBEAT_TOKEN] {
        // A token the client sent may come back (in `X-Request-ID`, say).
        let shows = holds(&answer, secret) && !holds(data, secret);
        assert!(!shows, "the answer shows a token: {:?}", shown());
    }
}
