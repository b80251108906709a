//! Server behaviour proved over raw sockets: 408, 431, 400, 500 after a
//! panic, and graceful shutdown.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;

use super::*;

fn ok(body: &'static str) -> http::Response<Full<Bytes>> {
    http::Response::new(Full::new(Bytes::from_static(body.as_bytes())))
}

async fn hello(_req: http::Request<Incoming>, _info: ConnInfo) -> http::Response<Full<Bytes>> {
    ok("hello")
}

#[test]
fn slow_request_head_gets_408_within_the_timeout() {
    let rt = Runtime::new(2).expect("runtime");
    let timeout = Duration::from_millis(300);
    let cfg = ServerConfig {
        header_timeout: timeout,
        ..quick_cfg()
    };
    let server = TestServer::start(&rt, cfg, hello);
    let mut s = raw(server.addr);
    let started = Instant::now();
    send_raw(&mut s, b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    let answer = read_until_close(&mut s);
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "got {text:?}"
    );
    assert!(text.contains("connection: close"), "got {text:?}");
    assert!(
        took >= timeout - Duration::from_millis(50),
        "answered after {took:?}"
    );
    assert!(
        took < timeout + Duration::from_secs(2),
        "answered after {took:?}"
    );
    server.stop(&rt);
}

#[test]
fn connection_that_never_sends_is_closed_silently() {
    let rt = Runtime::new(2).expect("runtime");
    let cfg = ServerConfig {
        header_timeout: Duration::from_millis(200),
        ..quick_cfg()
    };
    let server = TestServer::start(&rt, cfg, hello);
    let mut fresh = raw(server.addr);
    // A keep-alive connection after one answered request is idle too.
    let mut used = raw(server.addr);
    send_raw(&mut used, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(read_response(&mut used).status, 200);
    let started = Instant::now();
    assert_eq!(read_until_close(&mut fresh), b"");
    assert_eq!(read_until_close(&mut used), b"");
    assert!(started.elapsed() < Duration::from_secs(3));
    server.stop(&rt);
}

fn request_with_headers(count: usize, value_len: usize) -> Vec<u8> {
    let mut req = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    // `Host` is the first header; add `count - 1` more.
    for i in 1..count {
        req.extend_from_slice(format!("X-H{i}: {}\r\n", "v".repeat(value_len)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req
}

#[test]
fn too_many_headers_get_431_and_the_limit_itself_passes() {
    let rt = Runtime::new(2).expect("runtime");
    assert_eq!(quick_cfg().max_headers, 100);
    assert_header_limit(&rt, quick_cfg());
    // A limit other than hyper's default is passed to hyper.
    assert_header_limit(
        &rt,
        ServerConfig {
            max_headers: 10,
            ..quick_cfg()
        },
    );
}

/// `cfg.max_headers` headers pass; one more gets 431.
fn assert_header_limit(rt: &Runtime, cfg: ServerConfig) {
    let limit = cfg.max_headers;
    let server = TestServer::start(rt, cfg, hello);
    let mut s = raw(server.addr);
    send_raw(&mut s, &request_with_headers(limit, 1));
    assert_eq!(read_response(&mut s).status, 200, "{limit} headers");
    let mut s = raw(server.addr);
    send_raw(&mut s, &request_with_headers(limit + 1, 1));
    let text = String::from_utf8_lossy(&read_until_close(&mut s)).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 431 "),
        "{} headers: got {text:?}",
        limit + 1
    );
    server.stop(rt);
}

#[test]
fn oversized_head_gets_431_and_a_smaller_one_passes() {
    let rt = Runtime::new(2).expect("runtime");
    let server = TestServer::start(&rt, quick_cfg(), hello);
    assert_eq!(quick_cfg().max_header_bytes, 16 * 1024);

    let mut s = raw(server.addr);
    send_raw(&mut s, &request_with_headers(2, 15 * 1024));
    assert_eq!(read_response(&mut s).status, 200);

    let mut s = raw(server.addr);
    send_raw(&mut s, &request_with_headers(2, 17 * 1024));
    let text = String::from_utf8_lossy(&read_until_close(&mut s)).into_owned();
    assert!(text.starts_with("HTTP/1.1 431 "), "got {text:?}");
    server.stop(&rt);
}

#[test]
fn garbage_request_line_gets_400() {
    let rt = Runtime::new(2).expect("runtime");
    let server = TestServer::start(&rt, quick_cfg(), hello);
    for garbage in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ] {
        let mut s = raw(server.addr);
        send_raw(&mut s, garbage);
        let text = String::from_utf8_lossy(&read_until_close(&mut s)).into_owned();
        assert!(
            text.starts_with("HTTP/1.1 400 "),
            "{garbage:?} got {text:?}"
        );
    }
    server.stop(&rt);
}

#[test]
fn a_panicking_handler_gets_500_and_the_server_keeps_serving() {
    let rt = Runtime::new(2).expect("runtime");
    let handler = |req: http::Request<Incoming>, _info: ConnInfo| {
        if req.uri().path() == "/panic-now" {
            panic!("test panic while creating the handler future");
        }
        async move {
            if req.uri().path() == "/panic-later" {
                panic!("test panic inside the handler future");
            }
            ok("fine")
        }
    };
    let server = TestServer::start(&rt, quick_cfg(), handler);
    let mut s = raw(server.addr);
    for path in ["/panic-now", "/", "/panic-later", "/"] {
        send_raw(
            &mut s,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
        let response = read_response(&mut s);
        let expected = if path == "/" { 200 } else { 500 };
        assert_eq!(response.status, expected, "{path}: {response:?}");
    }
    let mut other = raw(server.addr);
    send_raw(&mut other, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = read_response(&mut other);
    assert_eq!((response.status, &response.body[..]), (200, &b"fine"[..]));
    server.stop(&rt);
}

#[test]
fn handler_sees_both_ends_of_the_connection() {
    let rt = Runtime::new(2).expect("runtime");
    let handler = |_req: http::Request<Incoming>, info: ConnInfo| async move {
        http::Response::new(Full::new(Bytes::from(format!(
            "{} {}",
            info.peer, info.local
        ))))
    };
    let server = TestServer::start(&rt, quick_cfg(), handler);
    let mut s = raw(server.addr);
    send_raw(&mut s, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let body = String::from_utf8(read_response(&mut s).body).expect("utf-8");
    let expected = format!("{} {}", s.local_addr().expect("local"), server.addr);
    assert_eq!(body, expected);
    server.stop(&rt);
}

#[test]
fn graceful_shutdown_finishes_in_flight_closes_idle_and_refuses_new() {
    let rt = Runtime::new(2).expect("runtime");
    let (started_tx, started_rx) = mpsc::sync_channel::<()>(1);
    let handler = move |req: http::Request<Incoming>, _info: ConnInfo| {
        let started = started_tx.clone();
        async move {
            if req.uri().path() == "/slow" {
                let _ = started.try_send(());
                smol::Timer::after(Duration::from_millis(400)).await;
                return ok("slow done");
            }
            ok("quick")
        }
    };
    let server = TestServer::start(&rt, quick_cfg(), handler);
    let addr = server.addr;

    let mut idle = raw(addr);
    send_raw(&mut idle, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(read_response(&mut idle).status, 200);

    let mut busy = raw(addr);
    send_raw(&mut busy, b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    started_rx
        .recv_timeout(LIMIT)
        .expect("slow handler started");

    server.shutdown.trigger();
    // The idle keep-alive connection is closed at once, with no bytes.
    let started = Instant::now();
    assert_eq!(read_until_close(&mut idle), b"");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "idle close took {:?}",
        started.elapsed()
    );
    // The in-flight response completes, marked as the connection's last.
    let response = read_response(&mut busy);
    assert_eq!(
        (response.status, &response.body[..]),
        (200, &b"slow done"[..])
    );
    assert!(
        response
            .head
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{}",
        response.head
    );
    assert_eq!(read_until_close(&mut busy), b"");

    let summary = within(&rt, LIMIT, server.task).expect("server run");
    assert_eq!(
        summary,
        ServeSummary {
            accepted: 2,
            open_at_shutdown: 2,
            cut: 0
        }
    );
    let refused = TcpStream::connect(addr).expect_err("listener must be closed");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn shutdown_cuts_connections_still_open_after_the_grace() {
    let rt = Runtime::new(2).expect("runtime");
    let handler = |_req: http::Request<Incoming>, _info: ConnInfo| async {
        smol::future::pending::<()>().await;
        ok("never")
    };
    let grace = Duration::from_millis(200);
    let cfg = ServerConfig {
        shutdown_grace: grace,
        ..quick_cfg()
    };
    let server = TestServer::start(&rt, cfg, handler);
    let mut hung = raw(server.addr);
    send_raw(&mut hung, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    // Give the request time to reach the handler.
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let summary = server.stop(&rt);
    let took = started.elapsed();
    assert!(
        took >= grace && took < grace + Duration::from_secs(2),
        "stop took {took:?}"
    );
    assert_eq!(
        summary,
        ServeSummary {
            accepted: 1,
            open_at_shutdown: 1,
            cut: 1
        }
    );
    assert_eq!(read_until_close(&mut hung), b"");
}

#[test]
fn keep_alive_off_closes_after_each_response() {
    let rt = Runtime::new(2).expect("runtime");
    let cfg = ServerConfig {
        keep_alive: false,
        ..quick_cfg()
    };
    let server = TestServer::start(&rt, cfg, hello);
    let mut s = raw(server.addr);
    send_raw(&mut s, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = read_response(&mut s);
    assert_eq!(response.status, 200);
    assert!(
        response
            .head
            .to_ascii_lowercase()
            .contains("connection: close")
    );
    assert_eq!(read_until_close(&mut s), b"");
    server.stop(&rt);
}
