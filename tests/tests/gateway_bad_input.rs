//! Each row of the bad-input table: over capacity (429 + Retry-After),
//! body over the cap (413), malformed JSON or a wrong field type (400
//! naming the field), unknown model (404), no eligible node (503 with the
//! reason), missing or wrong token (401), slow or oversized request
//! headers (408/431). Errors come in the front's own shape, and nothing
//! reaches a node.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use drover::config::Secret;
use drover::fake::{Behaviour, FakeServer};
use drover::serve::Running;
use drover_core::admission::PoolLimits;
use drover_core::node::NodeKind;
use serde_json::{Value, json};
use support::*;

const MODEL: &str = "m";

fn one_node(f: &FakeServer) -> Running {
    start(config(vec![node("a", f, &[MODEL])]))
}

/// An OpenAI error body: `{"error": {"message", "type", "code"}}`;
/// returns (code, message).
fn openai_error(r: &Reply) -> (String, String) {
    let v = r.json();
    let e = &v["error"];
    let code = e["code"].as_str().unwrap_or_else(|| panic!("{v}"));
    let msg = e["message"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(e["type"].is_string(), "{v}");
    (code.to_owned(), msg.to_owned())
}

/// An Ollama error body: `{"error": "..."}`.
fn ollama_error(r: &Reply) -> String {
    let v = r.json();
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned()
}

/// A gateway with one global permit in front of a node that answers after
/// `hold`; a call is started in the background and holds the permit.
fn hold_the_only_permit(
    queue_wait_ms: u64,
) -> (FakeServer, Running, std::thread::JoinHandle<Reply>) {
    let f = fake_with(
        NodeKind::Ollama,
        &[MODEL],
        Behaviour::paced(ms(800), ms(0), 2),
    );
    let mut cfg = config(vec![node("a", &f, &[MODEL])]);
    cfg.router.pools = PoolLimits {
        global: 1,
        chat: 1,
        stream: 1,
        embed: 1,
        background: 1,
    };
    cfg.timeouts.queue_wait = ms(queue_wait_ms);
    let gw = start(cfg);
    let addr = gw.addr;
    let first = std::thread::spawn(move || post(addr, "/api/chat", &chat_body(MODEL, Some(false))));
    wait_until(ms(2000), "the first call to hold the permit", || {
        active_calls(&gw) == 1 && f.requests().in_flight == 1
    });
    (f, gw, first)
}

#[test]
fn over_capacity_is_429_with_retry_after_and_the_admitted_call_finishes() {
    let (f, gw, first) = hold_the_only_permit(0);
    let t0 = Instant::now();
    let r = post(gw.addr, "/v1/chat/completions", &chat_body(MODEL, None));
    assert!(t0.elapsed() < ms(500), "no queue: refused at once");
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    let (code, msg) = openai_error(&r);
    assert!(code.starts_with("busy_"), "{code}: {msg}");
    assert!(msg.contains("limit"), "the reason is given: {msg}");
    // The Ollama front answers in its own shape.
    let r = post(
        gw.addr,
        "/api/generate",
        &json!({"model": MODEL, "prompt": "x"}),
    );
    assert_eq!(r.status, 429);
    assert!(!ollama_error(&r).is_empty());
    // The admitted call is not disturbed.
    let ok = first.join().unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(f.requests().calls, 1, "refused calls never reach the node");
}

#[test]
fn a_full_queue_wait_expires_into_429() {
    let (f, gw, first) = hold_the_only_permit(200);
    let t0 = Instant::now();
    let r = post(
        gw.addr,
        "/v1/embeddings",
        &json!({"model": MODEL, "input": "x"}),
    );
    let waited = t0.elapsed();
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        waited >= ms(180) && waited < ms(700),
        "waited the queue time: {waited:?}"
    );
    assert!(r.header("retry-after").is_some());
    let (code, _) = openai_error(&r);
    assert_eq!(code, "queue_wait_expired");
    assert_eq!(first.join().unwrap().status, 200);
    assert_eq!(f.requests().calls, 1);
    let metrics = get(gw.addr, "/metrics").text();
    assert!(
        metrics.contains("drover_http_rejections_total{reason=\"queue_wait_expired\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_body_over_the_cap_is_413_declared_or_chunked() {
    let f = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let mut cfg = config(vec![node("a", &f, &[MODEL])]);
    cfg.limits.max_body_bytes = 1024;
    let gw = start(cfg);
    let mut big = chat_body(MODEL, None);
    big["messages"][0]["content"] = json!("x".repeat(2000));
    let r = post(gw.addr, "/v1/chat/completions", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    let (code, msg) = openai_error(&r);
    assert_eq!(code, "body_too_large");
    assert!(msg.contains("1024"), "{msg}");
    // Without a Content-Length the cap holds while reading.
    let body = big.to_string();
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let head = "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut req = head.as_bytes().to_vec();
    for part in body.as_bytes().chunks(500) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).unwrap();
    let r = Streaming::read_head(BufReader::new(s)).into_reply();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(ollama_error(&r).contains("1024"));
    // A body under the cap passes.
    assert_eq!(
        post(gw.addr, "/v1/chat/completions", &chat_body(MODEL, None)).status,
        200
    );
    assert_eq!(f.requests().calls, 1);
}

#[test]
fn malformed_json_and_wrong_field_types_are_400_naming_the_field() {
    let f = fake(NodeKind::Ollama, &[MODEL]);
    let gw = one_node(&f);
    let cases: [(&str, &[u8], &str); 7] = [
        ("/v1/chat/completions", b"{\"model\": \"m\", ", "body"),
        ("/v1/chat/completions", b"[1, 2]", "body"),
        (
            "/v1/chat/completions",
            br#"{"model": 5, "messages": []}"#,
            "model",
        ),
        (
            "/v1/chat/completions",
            br#"{"model": "m", "messages": "hi"}"#,
            "messages",
        ),
        (
            "/v1/chat/completions",
            br#"{"model": "m", "messages": [{"role": "user", "content": 7}]}"#,
            "messages[0].content",
        ),
        (
            "/v1/embeddings",
            br#"{"model": "m", "input": {"a": 1}}"#,
            "input",
        ),
        (
            "/v1/chat/completions",
            br#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}"#,
            "stream",
        ),
    ];
    for (path, body, field) in cases {
        let r = send(gw.addr, "POST", path, &[], body);
        assert_eq!(
            r.status,
            400,
            "{path} {}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        let (code, msg) = openai_error(&r);
        assert_eq!(code, "invalid_request");
        assert!(
            msg.contains(&format!("field `{field}`")),
            "names `{field}`: {msg}"
        );
    }
    let ollama: [(&str, Value, &str); 3] = [
        (
            "/api/generate",
            json!({"model": MODEL, "prompt": 5}),
            "prompt",
        ),
        (
            "/api/chat",
            json!({"model": MODEL, "messages": [{"role": "user", "content": ["x"]}]}),
            "messages[0].content",
        ),
        (
            "/api/embed",
            json!({"model": MODEL, "input": true}),
            "input",
        ),
    ];
    for (path, body, field) in ollama {
        let r = post(gw.addr, path, &body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text());
        let msg = ollama_error(&r);
        assert!(
            msg.contains(&format!("field `{field}`")),
            "names `{field}`: {msg}"
        );
    }
    assert_eq!(f.requests().calls, 0, "nothing malformed reaches a node");
}

#[test]
fn an_unknown_model_is_404_on_both_fronts() {
    let f = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let gw = one_node(&f);
    let r = post(gw.addr, "/v1/chat/completions", &chat_body("nope", None));
    assert_eq!(r.status, 404, "{}", r.text());
    let (code, msg) = openai_error(&r);
    assert_eq!(code, "model_not_found");
    assert!(msg.contains("nope"), "{msg}");
    let r = post(
        gw.addr,
        "/api/embed",
        &json!({"model": "nope", "input": "x"}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(ollama_error(&r).contains("nope"));
    assert_eq!(f.requests().calls, 0);
}

#[test]
fn no_eligible_node_is_503_with_the_reason() {
    let a = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let b = fake(NodeKind::Ollama, &[MODEL]);
    let gw = start(config(vec![
        node("a", &a, &[MODEL]),
        node("b", &b, &[MODEL]),
    ]));
    for n in ["a", "b"] {
        let r = set_mode(
            gw.addr,
            n,
            &json!({"mode": "disabled", "reason": "maintenance"}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = post(
        gw.addr,
        "/v1/chat/completions",
        &chat_body(MODEL, Some(true)),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    let (code, msg) = openai_error(&r);
    assert_eq!(code, "no_eligible_node");
    assert!(msg.contains("disabled"), "the reason: {msg}");
    let r = post(gw.addr, "/api/chat", &chat_body(MODEL, None));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(ollama_error(&r).contains("disabled"));
    assert_eq!(a.requests().calls + b.requests().calls, 0);
}

#[test]
fn client_tokens_are_required_when_set_and_wrong_ones_refused() {
    let f = fake(NodeKind::Ollama, &[MODEL]);
    let mut cfg = config(vec![node("a", &f, &[MODEL])]);
    cfg.client_tokens = vec![Secret::new("s3cret"), Secret::new("other")];
    // Loopback clients need one too (as behind a local TLS proxy).
    cfg.tokens_on_loopback = true;
    let gw = start(cfg);
    let body = chat_body(MODEL, Some(false)).to_string();
    let chat = |auth: &[(&str, &str)]| {
        send(
            gw.addr,
            "POST",
            "/v1/chat/completions",
            auth,
            body.as_bytes(),
        )
    };

    let r = chat(&[]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(openai_error(&r).0, "missing_token");
    let r = chat(&[("Authorization", "Bearer s3cre")]);
    assert_eq!(r.status, 401);
    assert_eq!(openai_error(&r).0, "invalid_token");
    let r = chat(&[("Authorization", "Basic s3cret")]);
    assert_eq!(r.status, 401, "only bearer tokens count");
    let r = send(gw.addr, "POST", "/api/chat", &[], body.as_bytes());
    assert_eq!(r.status, 401);
    assert!(!ollama_error(&r).is_empty());
    assert_eq!(
        get(gw.addr, "/v1/models").status,
        401,
        "catalogs need a token"
    );
    assert_eq!(get(gw.addr, "/api/tags").status, 401);
    assert_eq!(f.requests().calls, 0);

    for token in ["Bearer s3cret", "bearer other"] {
        let r = chat(&[("Authorization", token)]);
        assert_eq!(r.status, 200, "{token}: {}", r.text());
    }
    let r = send(
        gw.addr,
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        get(gw.addr, "/api/version").status,
        200,
        "liveness needs none"
    );
    assert_eq!(f.requests().calls, 2);
}

/// Reads what the gateway answers on a raw connection (up to its close).
fn raw_answer(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn slow_request_headers_get_408() {
    let f = fake(NodeKind::Ollama, &[MODEL]);
    let mut cfg = config(vec![node("a", &f, &[MODEL])]);
    cfg.limits.header_timeout = ms(300);
    let gw = start(cfg);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let t0 = Instant::now();
    let answer = raw_answer(s);
    let took = t0.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(took >= ms(250) && took < ms(2000), "{took:?}");
    // A client that sends nothing at all is closed as well.
    let s = TcpStream::connect(gw.addr).unwrap();
    let t0 = Instant::now();
    let _ = raw_answer(s);
    assert!(t0.elapsed() < ms(2000), "an idle connection is closed");
    assert_eq!(f.requests().calls, 0);
}

#[test]
fn too_many_or_too_large_request_headers_get_431() {
    let f = fake(NodeKind::Ollama, &[MODEL]);
    let gw = one_node(&f);
    let mut many = String::from("GET /api/version HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let mut large = String::from("GET /api/version HTTP/1.1\r\nHost: x\r\n");
    large.push_str(&format!("X-Big: {}\r\n\r\n", "a".repeat(20 * 1024)));
    for req in [many, large] {
        let mut s = TcpStream::connect(gw.addr).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let answer = raw_answer(s);
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    }
    // A normal request on the same gateway is fine.
    assert_eq!(get(gw.addr, "/api/version").status, 200);
}
