//! The blocking driver without any API format: a toy line protocol, a
//! refused node and a tiny upstream server on 127.0.0.1 in this process.
//!
//! ```text
//! cargo run -p drover-transports --features blocking --example blocking_raw
//! ```
//!
//! The upstream answers `POST /complete` with a chunked body of lines, one
//! word per line, ending with the line `END`. The [`Exchange`] below builds
//! that request; its [`Decoder`] says a word is a token and `END` the end
//! marker. Calls go first to a node where nothing listens (round-robin), so
//! the output shows the failover.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use drover_core::call::Request;
use drover_core::catalog::ModelId;
use drover_core::config::{Policy, RouterConfig};
use drover_core::node::{NodeId, NodeKind, NodeSpec};
use drover_core::reason::Failure;
use drover_core::route::{Op, Query};
use drover_core::shared::SharedRouter;
use drover_core::trace::TraceId;
use drover_transports::blocking::{
    Decoder, Driver, DriverConfig, Exchange, Invalid, Outgoing, Progress,
};

/// The toy protocol: node addresses by node id, and the prompt.
struct Lines<'a> {
    addrs: &'a [SocketAddr],
    prompt: &'a str,
    stream: bool,
}

impl Exchange for Lines<'_> {
    type Decoder = LineDecoder;

    fn is_stream(&self) -> bool {
        self.stream
    }

    fn request(&self, node: NodeId, _model: Option<ModelId>) -> Result<Outgoing, Failure> {
        let addr = self
            .addrs
            .get(usize::from(node.0))
            .ok_or(Failure::Connect)?;
        Ok(Outgoing {
            url: format!("http://{addr}/complete"),
            body: self.prompt.as_bytes().to_vec(),
            headers: Vec::new(),
        })
    }

    fn reply(&self, _node: NodeId, body: &[u8]) -> Result<Vec<u8>, Invalid> {
        let text = std::str::from_utf8(body).map_err(|_| Invalid("not UTF-8".into()))?;
        match text.strip_suffix("END\n") {
            Some(words) => Ok(words.replace('\n', " ").into_bytes()),
            None => Err(Invalid("no END line".into())),
        }
    }

    fn decoder(&self, _node: NodeId) -> LineDecoder {
        LineDecoder::default()
    }
}

/// Splits lines; a word is a token, `END` the end marker.
#[derive(Default)]
struct LineDecoder {
    partial: Vec<u8>,
    progress: Progress,
}

impl Decoder for LineDecoder {
    fn push(&mut self, upstream: &[u8], out: &mut Vec<u8>) -> Result<Progress, Invalid> {
        self.partial.extend_from_slice(upstream);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            if line == b"END\n" {
                self.progress.done = true;
            } else if !self.progress.done {
                self.progress.first_token = true;
                out.extend_from_slice(line.trim_ascii_end());
                out.push(b' ');
            }
        }
        Ok(self.progress)
    }

    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), Invalid> {
        if self.progress.done {
            Ok(())
        } else {
            Err(Invalid("ended without END".into()))
        }
    }
}

/// Answers each connection's one request with a few chunked lines.
fn serve(listener: TcpListener, connections: usize) {
    for conn in listener.incoming().take(connections) {
        let Ok(mut conn) = conn else { continue };
        let _ = answer(&mut conn);
    }
}

fn answer(conn: &mut TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut prompt = vec![0u8; length];
    reader.read_exact(&mut prompt)?;
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )?;
    let words = String::from_utf8_lossy(&prompt).to_uppercase();
    for w in words.split_whitespace().chain(["END"]) {
        let line = format!("{w}\n");
        write!(conn, "{:x}\r\n{line}\r\n", line.len())?;
        conn.flush()?;
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    write!(conn, "0\r\n\r\n")?;
    conn.flush()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = TcpListener::bind("127.0.0.1:0")?;
    let live = upstream.local_addr()?;
    // Two calls, two connections; then the server thread ends by itself.
    let server = std::thread::spawn(move || serve(upstream, 2));
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()? // released at the end of this block: connects are refused
    };

    let rc = RouterConfig {
        policy: Policy::RoundRobin,
        ..RouterConfig::default()
    };
    let router: SharedRouter<4, 64, 16> = SharedRouter::new(rc, 7)?;
    router.with_mut(|r| {
        r.add_node(NodeSpec::new("dead", NodeKind::OpenAiCompat)?)?;
        r.add_node(NodeSpec::new("live", NodeKind::OpenAiCompat)?)
    })?;
    let addrs = [dead, live];
    let driver = Driver::new(router, DriverConfig::default())?;

    let ex = Lines {
        addrs: &addrs,
        prompt: "the quick brown fox",
        stream: false,
    };
    let reply = driver.call(Request::new(TraceId(1), Query::new(Op::Chat)), &ex)?;
    println!(
        "whole: {:?} from node {} after {} attempt(s)",
        String::from_utf8_lossy(&reply.body),
        reply.node.0,
        reply.attempts
    );

    let ex = Lines { stream: true, ..ex };
    let stream = driver.stream(Request::new(TraceId(2), Query::new(Op::Stream)), &ex)?;
    println!(
        "stream from node {} after {} attempt(s):",
        stream.node().0,
        stream.attempts()
    );
    for chunk in stream {
        println!("  chunk {:?}", String::from_utf8_lossy(&chunk?));
    }
    let (permits, dead_failures) = driver.router().with(|r| {
        let failures = r
            .node(NodeId(0))
            .map_or(0, |n| n.breaker.consecutive_failures());
        (r.permits_outstanding(), failures)
    });
    println!("permits in use: {permits}; failures charged to `dead`: {dead_failures}");
    server.join().map_err(|_| "the upstream thread panicked")?;
    Ok(())
}
