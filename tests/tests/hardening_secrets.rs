//! Issue 6, item 15: secrets stay secret.
//!
//! One gateway holds recognisable secrets: two client tokens, the operator
//! token, a node API key (sent upstream) and the heartbeat token. The test
//! drives every endpoint and every error path it can reach (missing, wrong
//! and right tokens; bad JSON; an unknown model; a body over the cap;
//! upstream 500, 401, garbage, a hang, a broken stream, a refused
//! connection; malformed HTTP) while the whole process logs at TRACE into
//! a buffer, then searches every response (status line, headers, body) and
//! every log line for each secret and for a prefix of it. None may appear.
//! It also checks that only the node's key goes upstream: a client's token
//! is never forwarded to a node.
//!
//! One test in this file: the log subscriber is process-global.

#[path = "support/harden.rs"]
mod harden;
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover::config::Secret;
use drover::fake::{Behaviour, Fail, FakeServer};
use drover_core::node::NodeKind;
use harden::{Raw, exchange};
use serde_json::json;
use support::*;

const CLIENT: &str = "cliQZXtokenKw9one";
const CLIENT2: &str = "cliQZXtokenKw9two";
const OPERATOR: &str = "opQZXsecretVv4";
const API_KEY: &str = "keyQZXupstreamJj2";
const HEARTBEAT: &str = "hbQZXagentRr8";
const SECRETS: [&str; 5] = [CLIENT, CLIENT2, OPERATOR, API_KEY, HEARTBEAT];

/// A log sink shared with the subscriber.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything a client saw: one entry per response.
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, what: impl Into<String>, r: &Reply) {
        let mut text = format!("{}\n", r.status);
        for (k, v) in &r.headers {
            text.push_str(&format!("{k}: {v}\n"));
        }
        text.push_str(&r.text());
        self.0.push((what.into(), text));
    }
    fn raw(&mut self, what: impl Into<String>, r: &Raw) {
        self.0.push((what.into(), r.text.clone()));
    }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// A fake serving `model` that fails with `fail` (or not).
fn fake_for(kind: NodeKind, model: &str, fail: Fail) -> FakeServer {
    fake_with(
        kind,
        &[model],
        Behaviour {
            fail,
            ..Behaviour::default()
        },
    )
}

#[test]
fn no_secret_appears_in_any_response_or_log_line() {
    let sink = Sink::default();
    let writer = sink.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let ok = fake_for(NodeKind::OpenAiCompat, "ok", Fail::None);
    let ollama = fake_for(NodeKind::Ollama, "llama", Fail::None);
    let s500 = fake_for(NodeKind::OpenAiCompat, "s500", Fail::Status(500));
    let s401 = fake_for(NodeKind::OpenAiCompat, "s401", Fail::Status(401));
    let garbage = fake_for(NodeKind::OpenAiCompat, "garbage", Fail::Garbage);
    let hang = fake_for(NodeKind::Ollama, "hang", Fail::Hang);
    let broken = fake_for(NodeKind::OpenAiCompat, "broken", Fail::BreakAfter(2));
    let mut nodes = vec![
        node("ok", &ok, &["ok"]),
        node("ollama", &ollama, &["llama"]),
        node("s500", &s500, &["s500"]),
        node("s401", &s401, &["s401"]),
        node("garbage", &garbage, &["garbage"]),
        node("hang", &hang, &["hang"]),
        node("broken", &broken, &["broken"]),
        node_at("dead", NodeKind::Ollama, dead_port(), &["dead"], &[]),
    ];
    for n in &mut nodes {
        n.api_key = Some(Secret::new(API_KEY));
        n.send_auth = true;
    }
    let mut cfg = config(nodes);
    cfg.client_tokens = vec![Secret::new(CLIENT), Secret::new(CLIENT2)];
    cfg.tokens_on_loopback = true;
    cfg.operator_token = Some(Secret::new(OPERATOR));
    cfg.heartbeat_token = Some(Secret::new(HEARTBEAT));
    cfg.limits.max_body_bytes = 4096;
    cfg.timeouts.attempt = Duration::from_millis(800);
    cfg.timeouts.ttft = Duration::from_millis(500);
    let gw = start(cfg);
    let a = gw.addr;
    let mut seen = Seen(Vec::new());

    let good = bearer(CLIENT);
    let wrong = bearer("wrongTOKEN");
    let op = bearer(OPERATOR);
    // Tokens offered in the wrong place: an operator token to a client
    // endpoint, a client token to an operator endpoint, a heartbeat token
    // to both.
    let auths: Vec<(&str, Option<String>)> = vec![
        ("none", None),
        ("wrong", Some(wrong.clone())),
        ("client", Some(good.clone())),
        ("client2", Some(bearer(CLIENT2))),
        ("operator", Some(op.clone())),
        ("heartbeat", Some(bearer(HEARTBEAT))),
        ("basic", Some(format!("Basic {CLIENT}"))),
    ];
    let send_as = |auth: &Option<String>, method: &str, path: &str, body: &[u8]| {
        let h: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|v| vec![("Authorization", v)])
            .unwrap_or_default();
        send(a, method, path, &h, body)
    };

    // Every client endpoint, with every kind of token.
    let chat = |m: &str, stream: bool| chat_body(m, Some(stream)).to_string();
    let client_calls: Vec<(&str, &str, String)> = vec![
        ("POST", "/v1/chat/completions", chat("ok", false)),
        ("POST", "/v1/chat/completions", chat("ok", true)),
        (
            "POST",
            "/v1/embeddings",
            json!({"model": "ok", "input": "x"}).to_string(),
        ),
        ("POST", "/api/chat", chat("llama", false)),
        ("POST", "/api/chat", chat("llama", true)),
        (
            "POST",
            "/api/generate",
            json!({"model": "llama", "prompt": "x"}).to_string(),
        ),
        (
            "POST",
            "/api/embed",
            json!({"model": "llama", "input": "x"}).to_string(),
        ),
        (
            "POST",
            "/api/embeddings",
            json!({"model": "llama", "prompt": "x"}).to_string(),
        ),
        ("GET", "/v1/models", String::new()),
        ("GET", "/api/tags", String::new()),
        ("GET", "/api/version", String::new()),
        ("GET", "/", String::new()),
        ("GET", "/status", String::new()),
    ];
    let mut trace_id = None;
    for (who, auth) in &auths {
        for (m, p, body) in &client_calls {
            let r = send_as(auth, m, p, body.as_bytes());
            if *who == "client" && p.starts_with("/v1/chat") {
                assert_eq!(r.status, 200, "{}", r.text());
                trace_id = r.header("x-drover-trace").map(str::to_owned);
            }
            if *who == "none" && m == &"POST" {
                assert_eq!(r.status, 401, "{p}: tokens are required on loopback");
            }
            seen.add(format!("{who} {m} {p}"), &r);
        }
    }
    // The node got its key, and never a client's token.
    let headers = ok.last_headers().expect("the node was called");
    let sent = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(sent, bearer(API_KEY), "the node's own key goes upstream");
    for n in [&ok, &ollama] {
        let h = n.last_headers().expect("called");
        let all = format!("{h:?}");
        for t in [CLIENT, CLIENT2, OPERATOR, HEARTBEAT] {
            assert!(!all.contains(t), "a gateway token was forwarded upstream");
        }
    }

    // Every error path of an inference call, with a good token.
    let g = Some(good.clone());
    let errors: Vec<(&str, &str, Vec<u8>)> = vec![
        ("bad json", "/v1/chat/completions", b"{not json".to_vec()),
        (
            "bad field",
            "/api/chat",
            br#"{"model":"ok","messages":"x"}"#.to_vec(),
        ),
        (
            "unknown model",
            "/v1/chat/completions",
            chat("nope", false).into_bytes(),
        ),
        ("too large", "/v1/chat/completions", vec![b' '; 8192]),
        (
            "upstream 500",
            "/v1/chat/completions",
            chat("s500", false).into_bytes(),
        ),
        (
            "upstream 500 stream",
            "/v1/chat/completions",
            chat("s500", true).into_bytes(),
        ),
        (
            "upstream 401",
            "/v1/chat/completions",
            chat("s401", false).into_bytes(),
        ),
        (
            "garbage",
            "/v1/chat/completions",
            chat("garbage", false).into_bytes(),
        ),
        (
            "garbage stream",
            "/v1/chat/completions",
            chat("garbage", true).into_bytes(),
        ),
        ("hang", "/api/chat", chat("hang", false).into_bytes()),
        (
            "broken stream",
            "/v1/chat/completions",
            chat("broken", true).into_bytes(),
        ),
        (
            "broken",
            "/v1/chat/completions",
            chat("broken", false).into_bytes(),
        ),
        ("dead node", "/api/chat", chat("dead", false).into_bytes()),
        (
            "dead node stream",
            "/api/chat",
            chat("dead", true).into_bytes(),
        ),
    ];
    for (what, p, body) in &errors {
        let r = send_as(&g, "POST", p, body);
        // A stream that broke after its first token is a 200 whose body
        // ends with a terminal error event.
        assert!(
            r.status != 200 || r.text().contains("\"error\""),
            "{what} is an error: {}",
            r.text()
        );
        seen.add(*what, &r);
    }
    let r = send_as(&g, "GET", "/v1/chat/completions", b"");
    assert_eq!(r.status, 405);
    seen.add("405", &r);
    let r = send_as(&g, "GET", "/no/such/path", b"");
    assert_eq!(r.status, 404);
    seen.add("404", &r);

    // Every operator endpoint, with every kind of token.
    let trace_id = trace_id.expect("a call had a trace id");
    let operator_calls: Vec<(&str, String, String)> = vec![
        ("GET", "/metrics".into(), String::new()),
        ("GET", "/nodes".into(), String::new()),
        ("GET", format!("/trace/{trace_id}"), String::new()),
        ("GET", "/trace/0000000000000000".into(), String::new()),
        ("GET", "/trace/not-hex".into(), String::new()),
        (
            "POST",
            "/route/preview".into(),
            json!({"model": "ok"}).to_string(),
        ),
        ("POST", "/route/preview".into(), "{bad".into()),
        (
            "POST",
            "/nodes/s500/mode".into(),
            json!({"mode": "drain", "reason": "test"}).to_string(),
        ),
        (
            "POST",
            "/nodes/s500/mode".into(),
            json!({"mode": "enabled"}).to_string(),
        ),
        (
            "POST",
            "/nodes/nope/mode".into(),
            json!({"mode": "drain"}).to_string(),
        ),
        (
            "POST",
            "/nodes/ok/mode".into(),
            json!({"mode": 3}).to_string(),
        ),
    ];
    for (who, auth) in &auths {
        for (m, p, body) in &operator_calls {
            let r = send_as(auth, m, p, body.as_bytes());
            if *who == "operator" && p == "/metrics" {
                assert_eq!(r.status, 200, "{}", r.text());
            } else if *who != "operator" {
                assert_eq!(r.status, 401, "{who} {p}: {}", r.text());
            }
            seen.add(format!("{who} {m} {p}"), &r);
        }
        // Heartbeats: good, bad body, unknown node.
        for body in [
            json!({"node": "ok", "protocolVersion": 1, "maxSlots": 4}),
            json!({"node": "ok", "protocolVersion": 1, "maxSlots": "x"}),
            json!({"node": "nope", "protocolVersion": 1, "maxSlots": 4}),
        ] {
            let r = send_as(
                auth,
                "POST",
                "/nodes/heartbeat",
                body.to_string().as_bytes(),
            );
            if *who == "heartbeat" && body["node"] == "ok" && body["maxSlots"] == 4 {
                assert_eq!(r.status, 200, "{}", r.text());
            }
            seen.add(format!("{who} heartbeat {body}"), &r);
        }
    }
    // The operator sees the detail views with secrets configured.
    for p in ["/status", "/status?detail=1", "/metrics", "/nodes"] {
        let r = send_as(&Some(op.clone()), "GET", p, b"");
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        seen.add(format!("operator {p}"), &r);
    }
    // Malformed HTTP, answered by the server itself.
    for (what, bytes) in [
        (
            "bad head",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n".to_vec(),
        ),
        (
            "ambiguous",
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer {CLIENT}\r\n\
                 Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            )
            .into_bytes(),
        ),
    ] {
        seen.raw(what, &exchange(a, &bytes));
    }

    drop(gw);
    let logs =
        String::from_utf8_lossy(&sink.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the logs were captured at a fine level"
    );
    assert!(
        logs.contains("broke mid-stream") || logs.contains("invalid stream"),
        "upstream failures were logged: {logs}"
    );
    assert!(seen.0.len() > 200, "{} responses checked", seen.0.len());
    for s in SECRETS {
        // The whole secret, and its first 9 bytes (a truncated leak).
        for needle in [s, &s[..9]] {
            for (what, text) in &seen.0 {
                assert!(
                    !text.contains(needle),
                    "`{needle}` in the answer to {what}:\n{text}"
                );
            }
            if let Some(line) = logs.lines().find(|l| l.contains(needle)) {
                panic!("`{needle}` in a log line: {line}");
            }
        }
    }
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{logs}");
    }
    eprintln!(
        "checked {} responses and {} log lines ({} bytes) for {} secrets",
        seen.0.len(),
        logs.lines().count(),
        logs.len(),
        SECRETS.len()
    );
}
