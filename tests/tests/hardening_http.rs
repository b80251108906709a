//! Issue 6, items 7 and 8: HTTP/1 abuse is refused and nothing reaches an
//! upstream; slow request heads are cut by the header timeout.
//!
//! One test per case. Each abusive request is a valid chat call apart from
//! its abuse, so a gateway that accepted it would forward it: every test
//! asserts the fake node received zero requests, then that a well-formed
//! request on the same gateway still works.

#[path = "support/harden.rs"]
mod harden;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover::config::GatewayConfig;
use drover_transports::smol::ServerConfig;
use harden::*;
use support::{IO_TIMEOUT, ms};

fn cl() -> String {
    format!("Content-Length: {}", CHAT.len())
}

// ------------------------------------------------------------ smuggling

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let raw = assert_refused(
        &post_raw(
            &[&cl(), "Transfer-Encoding: chunked"],
            &chunked(CHAT.as_bytes()),
        ),
        &[400],
    );
    assert!(raw.text.contains("connection: close"), "{}", raw.text);
    // The other order too.
    assert_refused(
        &post_raw(
            &["Transfer-Encoding: chunked", &cl()],
            &chunked(CHAT.as_bytes()),
        ),
        &[400],
    );
}

#[test]
fn duplicate_content_length_with_the_same_value_is_400() {
    assert_refused(&post_raw(&[&cl(), &cl()], CHAT.as_bytes()), &[400]);
}

#[test]
fn duplicate_content_length_with_different_values_is_400() {
    let other = format!("Content-Length: {}", CHAT.len() + 1);
    assert_refused(&post_raw(&[&cl(), &other], CHAT.as_bytes()), &[400]);
}

#[test]
fn a_content_length_list_is_400() {
    let list = format!("Content-Length: {0}, {0}", CHAT.len());
    assert_refused(&post_raw(&[&list], CHAT.as_bytes()), &[400]);
}

#[test]
fn a_negative_content_length_is_400() {
    assert_refused(&post_raw(&["Content-Length: -1"], CHAT.as_bytes()), &[400]);
}

#[test]
fn an_exponent_content_length_is_400() {
    assert_refused(&post_raw(&["Content-Length: 1e3"], CHAT.as_bytes()), &[400]);
}

#[test]
fn a_signed_content_length_is_400() {
    let plus = format!("Content-Length: +{}", CHAT.len());
    assert_refused(&post_raw(&[&plus], CHAT.as_bytes()), &[400]);
}

#[test]
fn a_content_length_beyond_u64_is_400() {
    assert_refused(
        &post_raw(
            &["Content-Length: 99999999999999999999999999"],
            CHAT.as_bytes(),
        ),
        &[400],
    );
}

#[test]
fn a_transfer_encoding_other_than_chunked_is_400() {
    // hyper alone answers 400 to `gzip`; the server refuses `gzip, chunked`
    // (which hyper would accept) as well.
    assert_refused(
        &post_raw(&["Transfer-Encoding: gzip"], CHAT.as_bytes()),
        &[400],
    );
    assert_refused(
        &post_raw(
            &["Transfer-Encoding: gzip, chunked"],
            &chunked(CHAT.as_bytes()),
        ),
        &[400],
    );
}

#[test]
fn transfer_encoding_chunked_then_identity_is_400() {
    assert_refused(
        &post_raw(
            &["Transfer-Encoding: chunked, identity"],
            &chunked(CHAT.as_bytes()),
        ),
        &[400],
    );
}

#[test]
fn a_repeated_transfer_encoding_is_400() {
    assert_refused(
        &post_raw(
            &["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
            &chunked(CHAT.as_bytes()),
        ),
        &[400],
    );
}

#[test]
fn a_non_hex_chunk_size_is_400() {
    let mut body = b"zz\r\n".to_vec();
    body.extend_from_slice(&chunked(CHAT.as_bytes()));
    assert_refused(&post_raw(&["Transfer-Encoding: chunked"], &body), &[400]);
}

#[test]
fn an_overflowing_chunk_size_is_400() {
    let mut body = b"fffffffffffffffffffff\r\n".to_vec();
    body.extend_from_slice(CHAT.as_bytes());
    assert_refused(&post_raw(&["Transfer-Encoding: chunked"], &body), &[400]);
}

#[test]
fn a_chunk_longer_than_its_size_is_400() {
    // The size says 4, the data runs on: the bytes after the 4th are not
    // a CRLF, so the chunked body is malformed.
    let mut body = b"4\r\n".to_vec();
    body.extend_from_slice(CHAT.as_bytes());
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_refused(&post_raw(&["Transfer-Encoding: chunked"], &body), &[400]);
}

#[test]
fn obsolete_line_folding_is_400() {
    assert_refused(
        &post_raw(&[&cl(), "X-Folded: first", " second"], CHAT.as_bytes()),
        &[400],
    );
}

// ---------------------------------------------------- header names/values

#[test]
fn a_header_name_with_a_space_is_400() {
    assert_refused(&post_raw(&[&cl(), "Bad Name: x"], CHAT.as_bytes()), &[400]);
}

#[test]
fn a_space_before_the_colon_is_400() {
    // `Content-Length : N` is the classic way to hide a length from one
    // parser and show it to another.
    let spaced = format!("Content-Length : {}", CHAT.len());
    assert_refused(&post_raw(&[&spaced], CHAT.as_bytes()), &[400]);
}

#[test]
fn a_header_without_a_colon_is_400() {
    assert_refused(&post_raw(&[&cl(), "NoColonHere"], CHAT.as_bytes()), &[400]);
}

#[test]
fn non_token_bytes_in_a_header_name_are_400() {
    for name in ["Bad@Name: x", "Bad\"Name: x", "Bad\u{1}Name: x", "Bäd: x"] {
        assert_refused(&post_raw(&[&cl(), name], CHAT.as_bytes()), &[400]);
    }
}

#[test]
fn a_bare_cr_in_a_header_value_is_400() {
    assert_refused(
        &post_raw(&[&cl(), "X-Inject: a\rInjected: b"], CHAT.as_bytes()),
        &[400],
    );
}

#[test]
fn a_nul_in_a_header_value_is_400() {
    assert_refused(&post_raw(&[&cl(), "X-Nul: a\0b"], CHAT.as_bytes()), &[400]);
}

#[test]
fn a_bare_lf_cannot_smuggle_a_second_content_length() {
    // A bare LF ends a header line (RFC 9112 §2.2 lets a server accept it),
    // so this value becomes a second Content-Length line: refused as a
    // duplicate, never read as a different body length.
    let inject = format!("X-Inject: a\nContent-Length: {}", CHAT.len() - 5);
    assert_refused(&post_raw(&[&cl(), &inject], CHAT.as_bytes()), &[400]);
}

// ------------------------------------------------------- header limits

#[test]
fn the_default_limits_are_100_headers_16_kib_and_10_s() {
    let limits = GatewayConfig::default_local().limits;
    assert_eq!(limits.max_headers, 100);
    assert_eq!(limits.max_header_bytes, 16 * 1024);
    assert_eq!(limits.header_timeout, Duration::from_secs(10));
    let server = ServerConfig::default();
    assert_eq!(server.max_headers, 100);
    assert_eq!(server.max_header_bytes, 16 * 1024);
    assert_eq!(server.header_timeout, Duration::from_secs(10));
    // The test gateways keep the defaults for the header limits.
    let test = support::config(Vec::new()).limits;
    assert_eq!((test.max_headers, test.max_header_bytes), (100, 16 * 1024));
}

/// `n` headers in all: Host, Content-Type, Connection, Content-Length and
/// `n - 4` of `X-H{i}`.
fn with_headers(n: usize) -> Vec<u8> {
    let extra: Vec<String> = (0..n - 4).map(|i| format!("X-H{i}: v")).collect();
    let mut lines: Vec<&str> = vec!["Connection: close"];
    let len = cl();
    lines.push(&len);
    lines.extend(extra.iter().map(String::as_str));
    post_raw(&lines, CHAT.as_bytes())
}

#[test]
fn exactly_100_headers_pass() {
    let (f, gw) = gateway(4 << 20);
    let raw = exchange(gw.addr, &with_headers(100));
    assert_eq!(raw.status, Some(200), "{}", raw.text);
    assert_eq!(f.requests().calls, 1);
}

#[test]
fn more_than_100_headers_get_431() {
    assert_refused(&with_headers(101), &[431]);
}

/// A request whose head is `size` bytes long in all.
fn head_of(size: usize) -> Vec<u8> {
    let base = post_raw(&["Connection: close", &cl(), "X-Pad: "], b"").len();
    let pad = "p".repeat(size - base);
    let req = post_raw(
        &["Connection: close", &cl(), &format!("X-Pad: {pad}")],
        CHAT.as_bytes(),
    );
    assert_eq!(req.len() - CHAT.len(), size);
    req
}

#[test]
fn a_head_of_15_kib_passes() {
    let (f, gw) = gateway(4 << 20);
    let raw = exchange(gw.addr, &head_of(15 * 1024));
    assert_eq!(raw.status, Some(200), "{}", raw.text);
    assert_eq!(f.requests().calls, 1);
}

#[test]
fn a_head_over_16_kib_gets_431() {
    assert_refused(&head_of(16 * 1024 + 1), &[431]);
}

#[test]
fn a_head_far_over_16_kib_gets_431() {
    assert_refused(&head_of(1 << 20), &[431]);
}

// ------------------------------------------------------------ body caps

const CAP: usize = 64 * 1024;

/// The head of a chat request with `lines`.
fn head(lines: &[&str]) -> Vec<u8> {
    post_raw(lines, b"")
}

#[test]
fn a_declared_1_gib_body_gets_413_before_any_of_it_is_sent() {
    let (f, gw) = gateway(CAP);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(&head(&["Content-Length: 1073741824"])).unwrap();
    // Not a byte of the body is written: the answer comes anyway.
    let (raw, took) = timed(|| {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        Raw::from_bytes(&buf)
    });
    assert_eq!(raw.status, Some(413), "{}", raw.text);
    assert!(raw.text.contains("65536"), "the cap is named: {}", raw.text);
    assert!(
        took < Duration::from_secs(3),
        "answered and closed: {took:?}"
    );
    // The connection is closed: the rest of the body cannot be sent.
    let chunk = vec![b'x'; 64 * 1024];
    let refused = (0..256).any(|_| s.write_all(&chunk).is_err());
    assert!(refused, "the gateway stopped reading the 1 GiB body");
    assert_eq!(f.requests().calls, 0);
}

#[test]
fn an_endless_chunked_body_gets_413_after_about_the_cap() {
    let (f, gw) = gateway(CAP);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(&head(&["Transfer-Encoding: chunked"])).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    // Writes 1 KiB chunks, pausing 1 ms every 16 KiB so the gateway keeps
    // up and little waits in kernel buffers; stops at the first error (the
    // gateway closed) or at 16 MiB.
    let writer = {
        let mut s = s.try_clone().unwrap();
        let written = written.clone();
        std::thread::spawn(move || {
            let mut chunk = b"400\r\n".to_vec();
            chunk.extend_from_slice(&[b'x'; 1024]);
            chunk.extend_from_slice(b"\r\n");
            let mut total = 0u64;
            while total < 16 << 20 {
                if s.write_all(&chunk).is_err() {
                    return (total, true);
                }
                total += 1024;
                written.store(total, Ordering::Relaxed);
                if total % (16 * 1024) == 0 {
                    std::thread::sleep(ms(1));
                }
            }
            (total, false)
        })
    };
    let mut first = [0u8; 1];
    let got = s.read(&mut first);
    let at_answer = written.load(Ordering::Relaxed);
    let mut buf = first.to_vec();
    let _ = s.read_to_end(&mut buf);
    let (total, failed) = writer.join().unwrap();
    let raw = Raw::from_bytes(&buf);
    eprintln!(
        "cap {CAP} B: body bytes written when the answer arrived {at_answer}, \
         written in all {total}, writer stopped by an error: {failed}"
    );
    assert!(got.is_ok(), "the answer arrived before any reset: {got:?}");
    assert_eq!(raw.status, Some(413), "{}", raw.text);
    assert!(
        at_answer >= CAP as u64,
        "the cap was read before refusing: {at_answer}"
    );
    assert!(
        at_answer <= (CAP + 256 * 1024) as u64,
        "refused soon after the cap: {at_answer} bytes written"
    );
    assert!(
        failed,
        "the gateway closed the connection ({total} B written)"
    );
    assert!(total < 16 << 20, "it did not read on: {total}");
    assert_eq!(f.requests().calls, 0);
}

// ---------------------------------------------------------- slow heads

#[test]
fn a_head_dripped_a_byte_at_a_time_is_cut_at_the_header_timeout() {
    // The timeout covers the whole head, not the gap between bytes: a
    // client that keeps sending one byte every 50 ms is still cut.
    let f = support::fake(drover_core::node::NodeKind::OpenAiCompat, &[MODEL]);
    let mut cfg = support::config(vec![support::node("a", &f, &[MODEL])]);
    cfg.limits.header_timeout = ms(500);
    let gw = support::start(cfg);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(ms(20))).unwrap();
    let req = post_raw(&[&cl()], CHAT.as_bytes());
    let t0 = Instant::now();
    let mut answer = Vec::new();
    for b in req.iter().cycle().take(200) {
        if s.write_all(std::slice::from_ref(b)).is_err() {
            break;
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if !answer.is_empty() {
            break;
        }
        std::thread::sleep(ms(30));
    }
    let took = t0.elapsed();
    let raw = Raw::from_bytes(&answer);
    assert_eq!(raw.status, Some(408), "{took:?}: {}", raw.text);
    assert!(
        took >= ms(450) && took < ms(2000),
        "cut at about the timeout: {took:?}"
    );
    assert_eq!(f.requests().calls, 0);
}

// ------------------------------------------------- no false positives

#[test]
fn well_framed_requests_pipelined_on_one_connection_all_pass() {
    // A JSON body with blank lines and header-like text in it (between
    // tokens, so still valid JSON), a chunked body with an extension and a
    // trailer, then a plain one, pipelined on one keep-alive connection:
    // the framing check follows each body and refuses none.
    let (f, gw) = gateway(4 << 20);
    let odd = "{\"model\":\"m\",\n\n\"messages\":[{\"role\":\"user\",\"content\":\"Content-Length: 1\"}]\r\n\r\n}";
    let mut bytes = post_raw(&[&format!("Content-Length: {}", odd.len())], odd.as_bytes());
    let mut chunked_body = format!("{:x};ext=1\r\n", CHAT.len()).into_bytes();
    chunked_body.extend_from_slice(CHAT.as_bytes());
    chunked_body.extend_from_slice(b"\r\n0\r\nX-Trailer: t\r\n\r\n");
    bytes.extend_from_slice(&post_raw(&["Transfer-Encoding: chunked"], &chunked_body));
    bytes.extend_from_slice(&post_raw(&["Connection: close", &cl()], CHAT.as_bytes()));
    let raw = exchange(gw.addr, &bytes);
    let answers = raw.text.matches("HTTP/1.1 200 OK").count();
    assert_eq!(answers, 3, "three answers: {}", raw.text);
    assert_eq!(f.requests().calls, 3);
}
