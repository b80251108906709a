//! A closed-loop HTTP/1.1 load generator: `concurrency` keep-alive
//! connections, each on its own OS thread, each sending the next request
//! as soon as the previous response has been read to its end (the model
//! of `wrk -c N`, without pipelining). Latency is measured per request,
//! from the first byte written to the last byte of the body read.
//!
//! Its own parser reads `Content-Length` and chunked bodies and checks the
//! status (200) and, for streams, the `data: [DONE]` end marker, so a
//! broken proxy shows up as errors instead of fast numbers.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// One measurement cell: where, what, how hard, how long.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Connection `i` goes to `addrs[i % addrs.len()]`.
    pub addrs: Vec<SocketAddr>,
    /// The request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The JSON request body.
    pub body: Vec<u8>,
    /// The body must end with `data: [DONE]` (an SSE stream).
    pub expect_done: bool,
    /// Connections (and threads).
    pub concurrency: usize,
    /// Requests run but not recorded before the measurement.
    pub warmup: Duration,
    /// The measured span.
    pub duration: Duration,
    /// Stop after this many requests in all (split evenly over the
    /// connections, the first ones taking the remainder) once the warm-up
    /// is over, even if `duration` has not passed. Errors count toward it,
    /// so a dead target still ends the cell.
    pub max_requests: Option<u64>,
}

/// What one cell measured.
#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    /// Recorded requests (answered whole and correctly in the span).
    pub requests: u64,
    /// Failed requests (connect or I/O error, wrong status, bad body).
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// The measured span.
    pub duration: Duration,
    /// Recorded latencies in nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
}

impl LoadResult {
    /// Requests per second over the measured span.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the latency, in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return f64::NAN;
        }
        let last = self.latencies_ns.len() - 1;
        let i = ((last as f64) * q.clamp(0.0, 1.0)).round() as usize;
        self.latencies_ns[i.min(last)] as f64 / 1_000.0
    }
}

/// Runs one cell: connects, warms up, measures, returns the merged result.
pub fn run(spec: &LoadSpec) -> LoadResult {
    let n = spec.concurrency.max(1);
    let barrier = Barrier::new(n);
    let results: Vec<LoadResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let addr = spec.addrs[i % spec.addrs.len().max(1)];
                let barrier = &barrier;
                let quota = spec.max_requests.map(|m| {
                    let n = n as u64;
                    m / n + u64::from((i as u64) < m % n)
                });
                scope.spawn(move || worker(spec, addr, barrier, quota))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut merged = LoadResult {
        duration: spec.duration,
        ..LoadResult::default()
    };
    for r in results {
        merged.requests += r.requests;
        merged.errors += r.errors;
        if merged.first_error.is_none() {
            merged.first_error = r.first_error;
        }
        merged.latencies_ns.extend(r.latencies_ns);
    }
    merged.latencies_ns.sort_unstable();
    merged
}

/// Errors in a row after which a worker gives up (a dead target).
const MAX_ERRORS_IN_A_ROW: u32 = 50;

fn worker(spec: &LoadSpec, addr: SocketAddr, barrier: &Barrier, quota: Option<u64>) -> LoadResult {
    let request = request_bytes(addr, &spec.path, &spec.body);
    let mut out = LoadResult {
        duration: spec.duration,
        latencies_ns: Vec::with_capacity(1 << 16),
        ..LoadResult::default()
    };
    let mut conn: Option<Conn> = Conn::open(addr).ok();
    barrier.wait();
    let start = Instant::now();
    let (measure_from, end) = (start + spec.warmup, start + spec.warmup + spec.duration);
    let mut in_a_row = 0;
    loop {
        let t0 = Instant::now();
        if t0 >= end
            || in_a_row >= MAX_ERRORS_IN_A_ROW
            || quota.is_some_and(|q| out.requests + out.errors >= q)
        {
            break;
        }
        let c = match conn.take().map_or_else(|| Conn::open(addr), Ok) {
            Ok(c) => conn.insert(c),
            Err(e) => {
                note(&mut out, t0 >= measure_from, format!("connect: {e}"));
                in_a_row += 1;
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        match c.exchange(&request, spec.expect_done) {
            Ok(keep_alive) => {
                in_a_row = 0;
                let t1 = Instant::now();
                if t0 >= measure_from && t1 <= end {
                    out.requests += 1;
                    out.latencies_ns
                        .push(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
                }
                if !keep_alive {
                    conn = None;
                }
            }
            Err(e) => {
                in_a_row += 1;
                conn = None;
                note(&mut out, t0 >= measure_from, e.to_string());
            }
        }
    }
    out
}

fn note(out: &mut LoadResult, counted: bool, error: String) {
    if counted {
        out.errors += 1;
    }
    if out.first_error.is_none() {
        out.first_error = Some(error);
    }
}

fn request_bytes(addr: SocketAddr, path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// One keep-alive connection and its read buffer.
struct Conn {
    stream: TcpStream,
    /// Bytes `pos..end` are read and not yet consumed.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Conn {
    fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Conn {
            stream,
            buf: vec![0; 16 << 10],
            pos: 0,
            end: 0,
        })
    }

    /// Reads more bytes (moving or growing the buffer when full); an error
    /// at EOF. Offsets relative to `pos` stay valid.
    fn fill(&mut self) -> io::Result<()> {
        if self.end == self.buf.len() {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        match self.stream.read(&mut self.buf[self.end..])? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                self.end += n;
                Ok(())
            }
        }
    }

    /// The next line (without CRLF) as a range of `buf`.
    fn line(&mut self) -> io::Result<(usize, usize)> {
        let mut scanned = 0;
        loop {
            let unread = &self.buf[self.pos + scanned..self.end];
            if let Some(i) = unread.windows(2).position(|w| w == b"\r\n") {
                let line = (self.pos, self.pos + scanned + i);
                self.pos = line.1 + 2;
                return Ok(line);
            }
            scanned = (self.end - self.pos).saturating_sub(1);
            self.fill()?;
        }
    }

    /// Consumes `n` bytes; returns their range.
    fn take(&mut self, n: usize) -> io::Result<(usize, usize)> {
        while self.end - self.pos < n {
            self.fill()?;
        }
        let r = (self.pos, self.pos + n);
        self.pos += n;
        Ok(r)
    }

    /// Sends one request and reads its response whole. Ok(keep-alive).
    fn exchange(&mut self, request: &[u8], expect_done: bool) -> io::Result<bool> {
        if self.pos == self.end {
            (self.pos, self.end) = (0, 0);
        }
        self.stream.write_all(request)?;
        let (a, b) = self.line()?;
        let status_ok = self.buf[a..b].starts_with(b"HTTP/1.1 200");
        if !status_ok {
            let line = String::from_utf8_lossy(&self.buf[a..b]).into_owned();
            return Err(bad(format!("status: {line}")));
        }
        let (mut length, mut chunked, mut keep_alive) = (None, false, true);
        loop {
            let (a, b) = self.line()?;
            if a == b {
                break;
            }
            let h = &self.buf[a..b];
            let Some(colon) = h.iter().position(|c| *c == b':') else {
                return Err(bad("header without a colon"));
            };
            let (name, value) = (&h[..colon], h[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                let v = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                length = Some(v.ok_or_else(|| bad("bad content-length"))?);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = value.eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                keep_alive = !value.eq_ignore_ascii_case(b"close");
            }
        }
        let ends_done = if chunked {
            let mut tail: Vec<u8> = Vec::new();
            loop {
                let (a, b) = self.line()?;
                let size = std::str::from_utf8(&self.buf[a..b])
                    .ok()
                    .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
                    .ok_or_else(|| bad("bad chunk size"))?;
                let (a, b) = self.take(size)?;
                if expect_done && size > 0 {
                    tail.extend_from_slice(&self.buf[a..b]);
                    let keep = tail.len().saturating_sub(32);
                    tail.drain(..keep);
                }
                self.line()?;
                if size == 0 {
                    break;
                }
            }
            tail.ends_with(b"data: [DONE]\n\n")
        } else {
            let (a, b) = self.take(length.ok_or_else(|| bad("no body length"))?)?;
            self.buf[a..b].ends_with(b"data: [DONE]\n\n")
        };
        if expect_done && !ends_done {
            return Err(bad("the stream did not end with data: [DONE]"));
        }
        Ok(keep_alive)
    }
}

#[cfg(test)]
mod tests {
    use drover::fake::{Behaviour, Fail, FakeServer, FakeSpec};
    use drover_core::node::NodeKind;

    use super::*;

    fn spec(server: &FakeServer, stream: bool, concurrency: usize) -> LoadSpec {
        let body = format!(
            r#"{{"model":"m","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        LoadSpec {
            addrs: vec![server.addr()],
            path: "/v1/chat/completions".into(),
            body: body.into_bytes(),
            expect_done: stream,
            concurrency,
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(200),
            max_requests: None,
        }
    }

    #[test]
    fn measures_whole_and_streamed_replies_over_keep_alive() {
        let s = FakeServer::start(FakeSpec::new(NodeKind::OpenAiCompat, &["m"])).expect("start");
        for stream in [false, true] {
            let r = run(&spec(&s, stream, 2));
            assert_eq!(r.errors, 0, "{:?}", r.first_error);
            assert!(r.requests > 10, "{} requests", r.requests);
            assert_eq!(r.latencies_ns.len() as u64, r.requests);
            assert!(r.latencies_ns.windows(2).all(|w| w[0] <= w[1]), "sorted");
            assert!(r.quantile_us(0.5) <= r.quantile_us(0.99));
            assert!(r.rps() > 0.0);
        }
        assert!(s.requests().total > 20);
    }

    #[test]
    fn a_request_cap_ends_the_cell_at_exactly_that_count() {
        let s = FakeServer::start(FakeSpec::new(NodeKind::OpenAiCompat, &["m"])).expect("start");
        let capped = LoadSpec {
            warmup: Duration::ZERO,
            duration: Duration::from_secs(30),
            max_requests: Some(101),
            ..spec(&s, true, 3)
        };
        let started = Instant::now();
        let r = run(&capped);
        assert_eq!((r.requests, r.errors), (101, 0), "{:?}", r.first_error);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stopped by the cap"
        );
        assert_eq!(s.requests().total, 101);
    }

    #[test]
    fn counts_broken_streams_and_error_statuses_as_errors() {
        let s = FakeServer::start(FakeSpec::new(NodeKind::OpenAiCompat, &["m"])).expect("start");
        s.set(Behaviour {
            fail: Fail::Garbage,
            ..Behaviour::default()
        });
        // No warm-up: a worker gives up after 50 errors in a row, which a
        // fast machine reaches within a warm-up, whose errors are not
        // counted.
        let long = |stream| LoadSpec {
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            ..spec(&s, stream, 1)
        };
        let r = run(&long(true));
        assert_eq!(r.requests, 0);
        assert!(r.errors > 0, "{r:?}");
        assert!(
            r.first_error.as_deref().unwrap_or("").contains("[DONE]"),
            "{:?}",
            r.first_error
        );
        s.set(Behaviour {
            fail: Fail::Status(503),
            ..Behaviour::default()
        });
        let r = run(&long(false));
        assert_eq!(r.requests, 0);
        assert!(
            r.first_error.as_deref().unwrap_or("").contains("503"),
            "{:?}",
            r.first_error
        );
    }
}
