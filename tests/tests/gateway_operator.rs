//! Operator surfaces end to end: node modes through `POST /nodes/{name}/mode`
//! (disable, drain, enable; bad input), modes surviving a restart through
//! the state file, the operator token, route previews, `/metrics` passing
//! `promtool check metrics` without leaking node URLs, and the URL policy
//! refusing a metadata-service node (SSRF).

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use drover::config::{GatewayConfig, Secret};
use drover::fake::FakeServer;
use drover::serve::{Running, ServeOptions};
use drover_core::config::Policy;
use drover_core::node::NodeKind;
use serde_json::{Value, json};
use support::*;

const MODEL: &str = "m";

/// Nodes `a` and `b`, round-robin, no prefix affinity (all prompts here
/// are the same).
fn pair(a: &FakeServer, b: &FakeServer) -> GatewayConfig {
    let mut cfg = config(vec![node("a", a, &[MODEL]), node("b", b, &[MODEL])]);
    cfg.router.policy = Policy::RoundRobin;
    cfg.router.affinity.prefix_key_blocks = 0;
    cfg
}

fn chat_ok(gw: &Running) {
    let r = post(gw.addr, "/v1/chat/completions", &chat_body(MODEL, None));
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A temporary file path, unique to this test run.
fn temp_path(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("drover-e2e-{tag}-{}-{nanos}", std::process::id()))
}

#[test]
fn disable_drain_and_enable_through_the_api() {
    let a = fake(NodeKind::Ollama, &[MODEL]);
    let b = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let gw = start(pair(&a, &b));

    let r = set_mode(gw.addr, "a", &json!({"mode": "disabled", "reason": "x"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"node": "a", "mode": "disabled", "reason": "x"})
    );
    let n = nodes(gw.addr);
    assert_eq!(n["a"]["mode"], "disabled");
    assert_eq!(n["a"]["mode_reason"], "x");
    assert_eq!(n["b"]["mode"], "enabled");
    assert_eq!(n["b"]["mode_reason"], Value::Null);
    for _ in 0..6 {
        chat_ok(&gw);
    }
    assert_eq!(a.requests().calls, 0, "a disabled node gets no new call");
    assert_eq!(b.requests().calls, 6);
    // The preview says why.
    let p = post(gw.addr, "/route/preview", &json!({"model": MODEL}));
    assert_eq!(p.status, 200, "{}", p.text());
    let p = p.json();
    let verdict = |name: &str| {
        p["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{p}"))
    };
    assert_eq!(verdict("a")["verdict"], "excluded", "{p}");
    assert_eq!(verdict("a")["reason"], "disabled", "{p}");
    assert_eq!(verdict("b")["verdict"], "candidate", "{p}");
    assert_eq!(p["plan"], json!(["b"]), "{p}");

    // Draining: no new calls while another node can take them.
    let r = set_mode(gw.addr, "a", &json!({"mode": "drain", "reason": "upgrade"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(nodes(gw.addr)["a"]["mode"], "drain");
    for _ in 0..4 {
        chat_ok(&gw);
    }
    assert_eq!(a.requests().calls, 0, "a draining node gets no new call");

    // Enabled again, it gets its share.
    let r = set_mode(gw.addr, "a", &json!({"mode": "enabled"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let n = nodes(gw.addr);
    assert_eq!(n["a"]["mode"], "enabled");
    assert_eq!(n["a"]["mode_reason"], "");
    for _ in 0..4 {
        chat_ok(&gw);
    }
    assert_eq!(a.requests().calls, 2, "round-robin again");
}

#[test]
fn bad_mode_requests_are_refused_and_change_nothing() {
    let a = fake(NodeKind::Ollama, &[MODEL]);
    let b = fake(NodeKind::Ollama, &[MODEL]);
    let gw = start(pair(&a, &b));
    let cases: [(&str, &[u8], u16, &str); 6] = [
        ("a", br#"{"mode": "off"}"#, 400, "mode"),
        ("a", br#"{"reason": "no mode"}"#, 400, "mode"),
        ("a", br#"{"mode": 1}"#, 400, "mode"),
        ("a", br#"{"mode": "drain", "reason": 5}"#, 400, "reason"),
        ("a", b"{mode", 400, "body"),
        ("zzz", br#"{"mode": "drain"}"#, 404, ""),
    ];
    for (name, body, status, field) in cases {
        let path = format!("/nodes/{name}/mode");
        let r = send(gw.addr, "POST", &path, &[], body);
        assert_eq!(
            r.status,
            status,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
        if status == 400 {
            assert!(msg.contains(&format!("field `{field}`")), "{msg}");
        } else {
            assert_eq!(r.json()["error"]["code"], "node_not_found");
            assert!(msg.contains("zzz"), "{msg}");
        }
    }
    let long = json!({"mode": "drain", "reason": "r".repeat(300)});
    let r = set_mode(gw.addr, "a", &long);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("field `reason`"), "{}", r.text());
    assert_eq!(get(gw.addr, "/nodes/a/mode").status, 405);
    let n = nodes(gw.addr);
    assert_eq!(n["a"]["mode"], "enabled", "nothing changed");
    assert_eq!(n["a"]["mode_reason"], Value::Null);
}

#[test]
fn a_mode_survives_a_restart_through_the_state_file() {
    let a = fake(NodeKind::Ollama, &[MODEL]);
    let b = fake(NodeKind::Ollama, &[MODEL]);
    let state = temp_path("state.json");
    let opts = ServeOptions {
        state: Some(state.clone()),
        ..ServeOptions::default()
    };
    let gw = start_with(pair(&a, &b), &opts);
    let r = set_mode(
        gw.addr,
        "a",
        &json!({"mode": "disabled", "reason": "broken fan"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(state.exists(), "the mode is saved at once");
    gw.stop().unwrap();

    let gw = start_with(pair(&a, &b), &opts);
    let n = nodes(gw.addr);
    assert_eq!(n["a"]["mode"], "disabled", "{:?}", n["a"]);
    assert_eq!(n["a"]["mode_reason"], "broken fan");
    assert_eq!(n["b"]["mode"], "enabled");
    for _ in 0..3 {
        chat_ok(&gw);
    }
    assert_eq!(a.requests().calls, 0, "still disabled after the restart");
    drop(gw);
    std::fs::remove_file(&state).unwrap();
}

#[test]
fn operator_endpoints_need_the_operator_token_when_set() {
    let a = fake(NodeKind::Ollama, &[MODEL]);
    let mut cfg = config(vec![node("a", &a, &[MODEL])]);
    cfg.operator_token = Some(Secret::new("op-token"));
    cfg.client_tokens = vec![Secret::new("client-token")];
    let gw = start(cfg);
    for path in ["/nodes", "/metrics", "/trace/00000000000000ff"] {
        let r = get(gw.addr, path);
        assert_eq!(r.status, 401, "{path}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "missing_token");
        for wrong in ["Bearer client-token", "Bearer op-toke"] {
            let r = send(gw.addr, "GET", path, &[("Authorization", wrong)], b"");
            assert_eq!(r.status, 401, "{path} with {wrong}");
            assert_eq!(r.json()["error"]["code"], "invalid_token");
        }
    }
    let mode = json!({"mode": "disabled"}).to_string();
    let r = send(gw.addr, "POST", "/nodes/a/mode", &[], mode.as_bytes());
    assert_eq!(r.status, 401);
    let op = [("Authorization", "Bearer op-token")];
    let r = send(gw.addr, "GET", "/nodes", &op, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["nodes"][0]["mode"],
        "enabled",
        "the refused POST did nothing"
    );
    assert_eq!(send(gw.addr, "GET", "/metrics", &op, b"").status, 200);
    let r = send(gw.addr, "POST", "/nodes/a/mode", &op, mode.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    // /status is public; client calls from loopback need no client token.
    assert_eq!(get(gw.addr, "/status").status, 200);
    assert_eq!(get(gw.addr, "/api/tags").status, 200);
}

/// `promtool check metrics` on `text`; `None` when promtool is missing.
fn promtool(text: &str) -> Option<(bool, String)> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("promtool: {e}"),
    };
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

#[test]
fn metrics_pass_promtool_and_name_nodes_not_urls() {
    let a = fake(NodeKind::Ollama, &[MODEL]);
    let b = fake_with(
        NodeKind::OpenAiCompat,
        &[MODEL],
        failing(drover::fake::Fail::Status(500)),
    );
    let gw = start(pair(&a, &b));
    // Some traffic of every kind: successes, failovers, a stream, an
    // embedding, a 404 and a 400.
    for _ in 0..3 {
        chat_ok(&gw);
    }
    let r = post(gw.addr, "/api/chat", &chat_body(MODEL, None));
    assert_eq!(r.status, 200);
    let r = post(
        gw.addr,
        "/v1/embeddings",
        &json!({"model": MODEL, "input": "x"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        post(gw.addr, "/api/chat", &chat_body("nope", None)).status,
        404
    );
    assert_eq!(send(gw.addr, "POST", "/api/chat", &[], b"{").status, 400);

    let r = get(gw.addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.header("content-type")
    );
    let text = r.text();
    for addr in [a.addr(), b.addr()] {
        assert!(!text.contains(&addr.port().to_string()), "no node port");
    }
    assert!(
        !text.contains("127.0.0.1"),
        "no node address in the metrics"
    );
    assert!(text.contains("node=\"a\""), "nodes are labelled by name");
    assert!(text.contains("drover_failovers_total"), "{text}");
    assert!(
        text.contains("drover_http_rejections_total{reason=\"unknown_model\"} 1"),
        "{text}"
    );
    match promtool(&text) {
        None => eprintln!("note: promtool is not on PATH; `promtool check metrics` skipped"),
        Some((ok, said)) => assert!(ok, "promtool check metrics failed:\n{said}\n{text}"),
    }
    // Nor do the other operator surfaces show URLs.
    for path in ["/nodes", "/status"] {
        let body = get(gw.addr, path).text();
        assert!(!body.contains("127.0.0.1"), "{path}: {body}");
    }
}

#[test]
fn a_metadata_service_node_is_refused_at_load_and_start() {
    let dir = temp_path("ssrf");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("drover.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:0\"\n\n[[nodes]]\nname = \"meta\"\nkind = \"ollama\"\n\
         baseUrl = \"http://169.254.169.254:80\"\n",
    )
    .unwrap();
    let problems = GatewayConfig::load(&file).expect_err("a link-local node is refused");
    assert_eq!(problems.0.len(), 1, "{problems}");
    let p = &problems.0[0];
    assert_eq!(p.field, "nodes[0].baseUrl", "{problems}");
    assert!(p.reason.contains("link-local"), "{problems}");
    let opts = ServeOptions {
        config: Some(file.clone()),
        ..ServeOptions::default()
    };
    let err = drover::serve::resolve_config(&opts).expect_err("drover serve refuses to start");
    assert!(
        err.contains("169.254.169.254") || err.contains("link-local"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
