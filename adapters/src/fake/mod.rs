//! Fake model servers: real HTTP/1.1 on `127.0.0.1`, speaking Ollama's
//! `/api/*` or the OpenAI-compatible `/v1/*` wire format, with behaviour
//! (speed, failures) that a test can switch at runtime.
//!
//! `drover serve --demo` runs three of them in-process (see [`demo_specs`]),
//! and every gateway end-to-end test and the gateway bench use them as
//! upstreams.
//!
//! Each [`FakeServer`] binds `127.0.0.1:0`, runs hyper 1 (HTTP/1.1,
//! keep-alive) on its own smol executor on one or more OS threads of its
//! own, and stops when dropped: the listener closes (later connects are
//! refused), open connections are cut, and the threads are joined (bounded).
//!
//! ```no_run
//! use drover::fake::{Behaviour, Fail, FakeServer, FakeSpec};
//! use drover_core::node::NodeKind;
//!
//! let spec = FakeSpec::new(NodeKind::OpenAiCompat, &["qwen2.5:7b"]);
//! let server = FakeServer::start(spec)?;
//! println!("fake vLLM at {}", server.base_url());
//! server.set(Behaviour { fail: Fail::TooMany { retry_after_s: 2 }, ..Behaviour::default() });
//! assert_eq!(server.requests().total, 0);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # What the servers answer
//! - Ollama: `POST /api/chat`, `/api/generate` (NDJSON streamed unless
//!   `"stream": false`, then one object with `done: true`, `eval_count`, …),
//!   `/api/embed` (`input` string or array), `/api/embeddings` (`prompt`),
//!   `GET /api/tags`, `/api/version`. Errors are `{"error": "..."}`; an
//!   unknown route is Go's plain-text `404 page not found`.
//! - OpenAI-compatible: `POST /v1/chat/completions` and `/v1/completions`
//!   (SSE `data:` lines ending with `data: [DONE]` when `"stream": true`,
//!   else one object with `usage`), `/v1/embeddings`, `GET /v1/models`.
//!   Errors are `{"error": {"message", "type", "param", "code"}}`; an
//!   unknown route is `{"detail": "Not Found"}` (FastAPI's).
//!
//! An unknown model is a 404 and malformed JSON or a wrong field type a 400,
//! each in the server's own error shape. Replies are deterministic: the
//! words come from the spec's seed and the prompt, embeddings are 8
//! dimensions derived the same way.
//!
//! # Timing
//! A streamed reply sends its headers at once, the first token after
//! [`Behaviour::ttft`] (for OpenAI, the role-only chunk goes with it), then
//! one token every [`Behaviour::token_interval`]. A non-streamed reply is
//! sent whole after `ttft + tokens × token_interval`; embeddings after
//! [`Behaviour::embed_time`].

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use drover_core::node::NodeKind;

mod body;
mod handler;
mod render;
mod state;

#[cfg(test)]
mod tests;

use state::Shared;

/// How a fake server fails, when it does (see [`Behaviour::fail_rate`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fail {
    /// Never fails.
    #[default]
    None,
    /// Answers this status with an error body in the server's shape.
    Status(u16),
    /// 429 Too Many Requests with `Retry-After: retry_after_s`.
    TooMany {
        /// The `Retry-After` header, in seconds.
        retry_after_s: u32,
    },
    /// 503 Service Unavailable with `Retry-After: 1`.
    Unavailable,
    /// 200, then a body that is not JSON (or, for a stream, a line that is
    /// not JSON and no end marker).
    Garbage,
    /// Accepts the request and never answers (not even headers).
    Hang,
    /// Streams this many tokens, then closes the connection mid-body (a
    /// chunked body without its last chunk). A non-streamed reply is cut
    /// half-way through its `Content-Length`.
    BreakAfter(u32),
    /// Closes the connection at once, without any answer.
    Refuse,
}

/// How a fake server answers; switch it at runtime with [`FakeServer::set`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Behaviour {
    /// Delay before the first token (the headers of a stream go at once).
    pub ttft: Duration,
    /// Delay between two tokens.
    pub token_interval: Duration,
    /// Tokens in a reply (at least one is sent).
    pub tokens: u32,
    /// The failure a request meets, with probability [`Behaviour::fail_rate`].
    pub fail: Fail,
    /// The probability that a request meets [`Behaviour::fail`]: 1.0 (the
    /// default) means every request, 0.2 a flaky node. Drawn from a
    /// generator seeded by [`FakeSpec::seed`], so a run is reproducible
    /// when requests arrive in the same order.
    pub fail_rate: f64,
    /// Time to compute an embedding reply.
    pub embed_time: Duration,
    /// Whether the probe reads ([`PROBE_PATHS`]) meet [`Behaviour::fail`]
    /// too. Default false: they answer normally, like a server whose
    /// generation fails while its HTTP front is up; set it to play a server
    /// that is down as a whole.
    pub fail_probes: bool,
}

impl Default for Behaviour {
    /// Instant answers of 8 tokens, no failure.
    fn default() -> Self {
        Behaviour {
            ttft: Duration::ZERO,
            token_interval: Duration::ZERO,
            tokens: 8,
            fail: Fail::None,
            fail_rate: 1.0,
            embed_time: Duration::ZERO,
            fail_probes: false,
        }
    }
}

impl Behaviour {
    /// A healthy server of this speed: `ttft`, then `tokens` tokens
    /// `token_interval` apart; embeddings take `ttft`.
    pub fn paced(ttft: Duration, token_interval: Duration, tokens: u32) -> Behaviour {
        Behaviour {
            ttft,
            token_interval,
            tokens,
            embed_time: ttft,
            ..Behaviour::default()
        }
    }
}

/// What to start: the wire format, the models served, the first
/// behaviour, and the seed of the words, vectors and failure draws.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeSpec {
    /// Ollama (`/api/*`) or OpenAI-compatible (`/v1/*`).
    pub kind: NodeKind,
    /// The model names it serves; any other is a 404.
    pub models: Vec<String>,
    /// The behaviour at start.
    pub behaviour: Behaviour,
    /// Seeds the generated words, embeddings and failure draws.
    pub seed: u64,
}

impl FakeSpec {
    /// A healthy, instant server of `kind` serving `models`, seed 0.
    pub fn new(kind: NodeKind, models: &[&str]) -> FakeSpec {
        FakeSpec {
            kind,
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            behaviour: Behaviour::default(),
            seed: 0,
        }
    }
}

/// What a fake server chose to answer a request with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// A normal answer (2xx).
    Ok,
    /// 400: malformed JSON or a wrong field.
    BadRequest,
    /// 404: unknown model or route.
    NotFound,
    /// An injected [`Fail::Status`].
    Status,
    /// An injected 429.
    TooMany,
    /// An injected 503.
    Unavailable,
    /// An injected garbage body.
    Garbage,
    /// An injected hang.
    Hang,
    /// An injected break mid-body.
    Broken,
    /// An injected connection close without an answer.
    Refused,
}

/// What a gateway's health and inventory probes read: `GET /api/version`,
/// `/api/tags`, `/v1/models`. [`Counters::calls`] leaves them out, and they
/// do not replace [`FakeServer::last_body`].
pub const PROBE_PATHS: [&str; 3] = ["/api/version", "/api/tags", "/v1/models"];

/// A snapshot of a fake server's request counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests received (whole request read).
    pub total: u64,
    /// Requests received other than the catalog and version reads that a
    /// gateway's probes send ([`PROBE_PATHS`]): the calls routed here.
    pub calls: u64,
    /// Requests by path (without the query string).
    pub by_path: BTreeMap<String, u64>,
    /// Requests by what the server chose to answer.
    pub by_outcome: BTreeMap<Outcome, u64>,
    /// Requests whose answer was abandoned before its end: the client
    /// closed the connection during the delay, the hang or the stream
    /// (also counts answers cut by the server stopping).
    pub cancelled: u64,
    /// Requests being answered right now.
    pub in_flight: u64,
}

impl Counters {
    /// Requests seen on `path`.
    pub fn path(&self, path: &str) -> u64 {
        self.by_path.get(path).copied().unwrap_or(0)
    }

    /// Requests answered with `outcome`.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.by_outcome.get(&outcome).copied().unwrap_or(0)
    }
}

/// How long [`FakeServer::stop`] waits for each server thread.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// A running fake model server; dropping it stops it.
pub struct FakeServer {
    addr: SocketAddr,
    kind: NodeKind,
    shared: Arc<Shared>,
    /// Closing this channel stops the executor threads.
    stop: Option<smol::channel::Sender<()>>,
    threads: Vec<(JoinHandle<()>, mpsc::Receiver<()>)>,
}

impl FakeServer {
    /// Binds `127.0.0.1:0` and serves `spec` on one thread of its own.
    pub fn start(spec: FakeSpec) -> io::Result<FakeServer> {
        FakeServer::start_on(spec, SocketAddr::from(([127, 0, 0, 1], 0)), 1)
    }

    /// Like [`FakeServer::start`], on `addr` (port 0 picks a free port),
    /// with an executor run by `threads` OS threads (at least one): a
    /// fixed port for an upstream configured elsewhere, more threads for a
    /// fast upstream in benches.
    pub fn start_on(spec: FakeSpec, addr: SocketAddr, threads: usize) -> io::Result<FakeServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let listener = smol::net::TcpListener::try_from(listener)?;
        let kind = spec.kind;
        let shared = Arc::new(Shared::new(spec));
        let executor = Arc::new(smol::Executor::<'static>::new());
        let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
        executor
            .spawn(handler::accept_loop(
                listener,
                Arc::downgrade(&executor),
                Arc::clone(&shared),
            ))
            .detach();
        let mut server = FakeServer {
            addr,
            kind,
            shared,
            stop: Some(stop_tx),
            threads: Vec::new(),
        };
        for i in 0..threads.max(1) {
            let ex = Arc::clone(&executor);
            let stop = stop_rx.clone();
            let (done_tx, done_rx) = mpsc::channel();
            let handle = std::thread::Builder::new()
                .name(format!("fake-{}-{i}", addr.port()))
                .spawn(move || {
                    // Runs until the stop channel closes; the last thread
                    // out drops the executor, which drops every task (so
                    // hung and streaming connections close).
                    smol::block_on(ex.run(async move {
                        let _ = stop.recv().await;
                    }));
                    drop(ex);
                    let _ = done_tx.send(());
                })?;
            server.threads.push((handle, done_rx));
        }
        Ok(server)
    }

    /// The address it listens on (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The wire format it speaks.
    pub fn kind(&self) -> NodeKind {
        self.kind
    }

    /// Switches the behaviour; requests already being answered keep theirs.
    pub fn set(&self, behaviour: Behaviour) {
        self.shared.set(behaviour);
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> Behaviour {
        self.shared.behaviour()
    }

    /// A snapshot of the request counters.
    pub fn requests(&self) -> Counters {
        self.shared.counters()
    }

    /// The body of the last request received (probe reads aside), if any.
    pub fn last_body(&self) -> Option<Bytes> {
        self.shared.last_body()
    }

    /// The headers of the last request received, if any (to check that
    /// `Authorization` was or was not forwarded).
    pub fn last_headers(&self) -> Option<http::HeaderMap> {
        self.shared.last_headers()
    }

    /// The `X-Request-ID` header of each request received that had one, in
    /// arrival order (the latest 16384): which calls touched this server.
    pub fn request_ids(&self) -> Vec<String> {
        self.shared.request_ids()
    }

    /// Stops the server (as dropping it does): the listener closes, open
    /// connections are cut, and each thread is joined if it ends within
    /// 2 s (it is left to finish on its own otherwise).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.close();
        }
        for (handle, done) in self.threads.drain(..) {
            if done.recv_timeout(STOP_WAIT).is_ok() {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The three SIMULATED nodes of `drover serve --demo`, with their names:
/// a fast OpenAI-compatible server, a slow Ollama, and a flaky Ollama that
/// answers 500 to a fifth of its requests. All serve `demo`.
pub fn demo_specs(seed: u64) -> [(&'static str, FakeSpec); 3] {
    let ms = Duration::from_millis;
    let spec = |kind, behaviour, salt: u64| FakeSpec {
        kind,
        models: vec!["demo".to_owned()],
        behaviour,
        seed: seed ^ salt,
    };
    [
        (
            "sim-fast",
            spec(
                NodeKind::OpenAiCompat,
                Behaviour::paced(ms(80), ms(15), 24),
                1,
            ),
        ),
        (
            "sim-slow",
            spec(NodeKind::Ollama, Behaviour::paced(ms(400), ms(60), 24), 2),
        ),
        (
            "sim-flaky",
            spec(
                NodeKind::Ollama,
                Behaviour {
                    fail: Fail::Status(500),
                    fail_rate: 0.2,
                    ..Behaviour::paced(ms(150), ms(30), 24)
                },
                3,
            ),
        ),
    ]
}
