//! Loopback tests of the smol HTTP driver. Every test binds 127.0.0.1:0,
//! bounds each wait, and stops its server and runtime before returning.

mod client;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod reactor;
mod server;

use std::future::Future;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use hyper::body::Incoming;
use smol::future::FutureExt as _;

use super::{ConnInfo, Runtime, ServeSummary, Server, ServerConfig, Shutdown};

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(10);

/// Runs `fut` on `rt`'s caller thread, failing the test if it takes longer
/// than `limit`.
fn within<T>(rt: &Runtime, limit: Duration, fut: impl Future<Output = T>) -> T {
    rt.block_on(fut.or(async move {
        smol::Timer::after(limit).await;
        panic!("test step took longer than {limit:?}");
    }))
}

/// A server running on a runtime, stopped by [`TestServer::stop`].
struct TestServer {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: smol::Task<io::Result<ServeSummary>>,
}

impl TestServer {
    fn start<H, Fut, B>(rt: &Runtime, cfg: ServerConfig, handler: H) -> TestServer
    where
        H: Fn(http::Request<Incoming>, ConnInfo) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = http::Response<B>> + Send + 'static,
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let server = Server::bind(([127, 0, 0, 1], 0).into(), cfg).expect("bind loopback");
        let addr = server.local_addr();
        let shutdown = Shutdown::new();
        let task = rt.spawn(server.run(rt, handler, shutdown.clone()));
        TestServer {
            addr,
            shutdown,
            task,
        }
    }

    fn stop(self, rt: &Runtime) -> ServeSummary {
        self.shutdown.trigger();
        within(rt, LIMIT, self.task).expect("server run")
    }
}

/// Test config: short header timeout and grace so failures show quickly.
fn quick_cfg() -> ServerConfig {
    ServerConfig {
        header_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(3),
        ..ServerConfig::default()
    }
}

/// A blocking loopback socket whose reads give up after [`LIMIT`].
fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect loopback");
    s.set_read_timeout(Some(LIMIT)).expect("set read timeout");
    s
}

/// Reads until the peer closes (or a reset or the read timeout ends it) and
/// returns what arrived.
fn read_until_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A parsed response read off a raw socket.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one response with a `content-length` body, leaving the
/// connection open.
fn read_response(s: &mut TcpStream) -> RawResponse {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).expect("read response head");
        assert!(
            n > 0,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let status = head[9..12].parse().expect("status code");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().expect("content-length"))
        })
        .unwrap_or(0);
    let mut body = data[head_end..].to_vec();
    while body.len() < length {
        let n = s.read(&mut buf).expect("read response body");
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&buf[..n]);
    }
    RawResponse { status, head, body }
}

fn send_raw(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).expect("write request");
}
