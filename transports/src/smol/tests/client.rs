//! Client behaviour: round trips, pool reuse and its limits, connect errors,
//! and `read_capped`.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Body as _, Frame};

use super::*;
use crate::smol::{Client, ClientConfig, ReadError, SendError, read_capped};

fn get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header(http::header::HOST, "upstream.test")
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

/// Echoes the request body, prefixed by the method and path.
async fn echo(req: http::Request<Incoming>, _info: ConnInfo) -> http::Response<Full<Bytes>> {
    let prefix = format!("{} {} ", req.method(), req.uri().path());
    let body = read_capped(req.into_body(), 1 << 20)
        .await
        .expect("request body");
    let mut out = prefix.into_bytes();
    out.extend_from_slice(&body);
    http::Response::new(Full::new(Bytes::from(out)))
}

fn roundtrip(rt: &Runtime, client: &Client, addr: SocketAddr, path: &str) -> Bytes {
    within(rt, LIMIT, async {
        let response = client.send(addr, get(path)).await.expect("send");
        assert_eq!(response.status(), 200);
        read_capped(response.into_body(), 1 << 20)
            .await
            .expect("body")
    })
}

#[test]
fn echo_roundtrip() {
    let rt = Runtime::new(2).expect("runtime");
    let server = TestServer::start(&rt, quick_cfg(), echo);
    let client = Client::new(ClientConfig::default(), &rt);
    let req = http::Request::post("/v1/echo")
        .header(http::header::HOST, "upstream.test")
        .body(Full::new(Bytes::from_static(b"{\"x\":1}")))
        .expect("valid request");
    let body = within(&rt, LIMIT, async {
        let response = client.send(server.addr, req).await.expect("send");
        read_capped(response.into_body(), 1024).await.expect("body")
    });
    assert_eq!(body, "POST /v1/echo {\"x\":1}");
    assert_eq!(client.idle_connections(server.addr), 1);
    server.stop(&rt);
}

#[test]
fn sequential_requests_reuse_one_connection() {
    let rt = Runtime::new(2).expect("runtime");
    let server = TestServer::start(&rt, quick_cfg(), echo);
    let client = Client::new(ClientConfig::default(), &rt);
    for i in 0..100 {
        let body = roundtrip(&rt, &client, server.addr, &format!("/{i}"));
        assert_eq!(body, format!("GET /{i} "));
    }
    assert_eq!(server.stop(&rt).accepted, 1);
}

#[test]
fn chunked_bodies_read_to_the_end_return_the_connection() {
    let rt = Runtime::new(2).expect("runtime");
    let handler = |_req: http::Request<Incoming>, _info: ConnInfo| async {
        let frames = ["data: a\n\n", "data: b\n\n", "data: [DONE]\n\n"]
            .map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from_static(s.as_bytes()))));
        http::Response::new(StreamBody::new(smol::stream::iter(frames)))
    };
    let server = TestServer::start(&rt, quick_cfg(), handler);
    let client = Client::new(ClientConfig::default(), &rt);
    for _ in 0..3 {
        let body = roundtrip(&rt, &client, server.addr, "/stream");
        assert_eq!(body, "data: a\n\ndata: b\n\ndata: [DONE]\n\n");
    }
    assert_eq!(server.stop(&rt).accepted, 1);
}

#[test]
fn a_body_dropped_early_closes_its_connection() {
    let rt = Runtime::new(2).expect("runtime");
    let handler = |_req: http::Request<Incoming>, _info: ConnInfo| async {
        http::Response::new(Full::new(Bytes::from(vec![b'x'; 256 * 1024])))
    };
    let server = TestServer::start(&rt, quick_cfg(), handler);
    let client = Client::new(ClientConfig::default(), &rt);
    within(&rt, LIMIT, async {
        let response = client.send(server.addr, get("/big")).await.expect("send");
        assert!(!response.body().is_end_stream());
        drop(response);
    });
    assert_eq!(client.idle_connections(server.addr), 0);
    let body = roundtrip(&rt, &client, server.addr, "/big");
    assert_eq!(body.len(), 256 * 1024);
    assert_eq!(client.idle_connections(server.addr), 1);
    assert_eq!(server.stop(&rt).accepted, 2);
}

#[test]
fn a_connection_the_server_closed_is_not_reused() {
    let rt = Runtime::new(2).expect("runtime");
    // The server closes idle keep-alive connections after 150 ms.
    let cfg = ServerConfig {
        header_timeout: Duration::from_millis(150),
        ..quick_cfg()
    };
    let server = TestServer::start(&rt, cfg, echo);
    let client = Client::new(ClientConfig::default(), &rt);
    assert_eq!(roundtrip(&rt, &client, server.addr, "/a"), "GET /a ");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(roundtrip(&rt, &client, server.addr, "/b"), "GET /b ");
    assert_eq!(server.stop(&rt).accepted, 2);
}

#[test]
fn idle_timeout_and_pool_size_limit_reuse() {
    let rt = Runtime::new(2).expect("runtime");
    let server = TestServer::start(&rt, quick_cfg(), echo);
    let expired = Client::new(
        ClientConfig {
            idle_timeout: Duration::ZERO,
            ..ClientConfig::default()
        },
        &rt,
    );
    let unpooled = Client::new(
        ClientConfig {
            max_idle_per_host: 0,
            ..ClientConfig::default()
        },
        &rt,
    );
    for client in [&expired, &unpooled] {
        for _ in 0..3 {
            roundtrip(&rt, client, server.addr, "/");
        }
    }
    assert_eq!(unpooled.idle_connections(server.addr), 0);
    assert_eq!(server.stop(&rt).accepted, 6);
}

/// An address on loopback that nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local addr")
}

#[test]
fn refused_connect_is_a_connect_error_and_quick() {
    let rt = Runtime::new(2).expect("runtime");
    let client = Client::new(ClientConfig::default(), &rt);
    let addr = closed_port();
    let started = Instant::now();
    let err = within(&rt, LIMIT, client.send(addr, get("/"))).expect_err("nothing listens");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(err.is_connect(), "{err}");
    match err {
        SendError::Connect(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected Connect, got {other:?}"),
    }
}

#[test]
fn connect_timeout_is_a_connect_error() {
    let rt = Runtime::new(2).expect("runtime");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let client = Client::new(
        ClientConfig {
            connect_timeout: Duration::ZERO,
            ..ClientConfig::default()
        },
        &rt,
    );
    let err = within(&rt, LIMIT, client.send(addr, get("/"))).expect_err("zero timeout");
    assert!(matches!(err, SendError::ConnectTimeout), "{err:?}");
    assert!(err.is_connect());
    assert_eq!(err.to_string(), "connect timed out");
}

#[test]
fn connect_timeout_fires_when_the_upstream_does_not_answer_the_handshake() {
    let rt = Runtime::new(2).expect("runtime");
    // A listener that never accepts: once its accept queue is full, Linux
    // drops further SYNs, so a connect neither succeeds nor is refused.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let mut queued = Vec::new();
    let full = (0..5000).any(|_| {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
            Ok(s) => {
                queued.push(s);
                false
            }
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
                true
            }
        }
    });
    assert!(
        full,
        "accept queue never filled after {} connects",
        queued.len()
    );
    let timeout = Duration::from_millis(200);
    let client = Client::new(
        ClientConfig {
            connect_timeout: timeout,
            ..ClientConfig::default()
        },
        &rt,
    );
    let started = Instant::now();
    let err =
        within(&rt, LIMIT, client.send(addr, get("/"))).expect_err("handshake never completes");
    let took = started.elapsed();
    assert!(matches!(err, SendError::ConnectTimeout), "{err:?}");
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(2),
        "took {took:?}"
    );
}

#[test]
fn errors_after_the_request_was_sent_are_not_connect_errors() {
    let rt = Runtime::new(2).expect("runtime");
    // A "server" that accepts, reads the request, and closes without
    // answering.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let closer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(LIMIT)).expect("timeout");
        let mut buf = [0u8; 1024];
        let _ = std::io::Read::read(&mut s, &mut buf);
    });
    let client = Client::new(ClientConfig::default(), &rt);
    let err = within(&rt, LIMIT, client.send(addr, get("/"))).expect_err("no answer");
    assert!(!err.is_connect(), "{err:?}");
    assert!(matches!(err, SendError::Http(_)), "{err:?}");
    closer.join().expect("closer thread");
}

#[test]
fn the_client_needs_no_runtime_of_its_own() {
    // Connections are driven by the futures that use them, so a client
    // outlives the runtime it was made with and works under block_on.
    let server_rt = Runtime::new(1).expect("runtime");
    let server = TestServer::start(&server_rt, quick_cfg(), echo);
    let rt = Runtime::new(1).expect("runtime");
    let client = Client::new(ClientConfig::default(), &rt);
    drop(rt);
    let body = smol::block_on(async {
        let response = client.send(server.addr, get("/")).await.expect("send");
        read_capped(response.into_body(), 1024).await.expect("body")
    });
    assert_eq!(body, "GET / ");
    assert_eq!(client.idle_connections(server.addr), 1, "kept for reuse");
    server.stop(&server_rt);
    let err = smol::block_on(client.send(closed_port(), get("/"))).expect_err("refused");
    match err {
        SendError::Connect(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected Connect, got {other:?}"),
    }
}

fn never(e: Infallible) -> hyper::Error {
    match e {}
}

#[test]
fn read_capped_stops_at_the_cap() {
    let rt = Runtime::new(2).expect("runtime");
    // Declared length over the cap: refused before reading.
    let declared = Full::new(Bytes::from_static(b"0123456789"));
    let err = rt
        .block_on(read_capped(declared.map_err(never), 9))
        .expect_err("over cap");
    assert!(matches!(err, ReadError::TooLarge));
    let exact = rt
        .block_on(read_capped(
            Full::new(Bytes::from_static(b"0123456789")).map_err(never),
            10,
        ))
        .expect("at cap");
    assert_eq!(exact, "0123456789");

    // Chunked upstream body, no declared length: counted while reading.
    let handler = |_req: http::Request<Incoming>, _info: ConnInfo| async {
        let frames =
            (0..8).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'y'; 1000]))));
        http::Response::new(StreamBody::new(smol::stream::iter(frames)))
    };
    let server = TestServer::start(&rt, quick_cfg(), handler);
    let client = Client::new(ClientConfig::default(), &rt);
    within(&rt, LIMIT, async {
        let response = client.send(server.addr, get("/")).await.expect("send");
        let err = read_capped(response.into_body(), 7999)
            .await
            .expect_err("over cap");
        assert!(matches!(err, ReadError::TooLarge));
        let response = client.send(server.addr, get("/")).await.expect("send");
        let body = read_capped(response.into_body(), 8000)
            .await
            .expect("at cap");
        assert_eq!(body.len(), 8000);
    });
    server.stop(&rt);
}
