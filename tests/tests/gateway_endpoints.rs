//! Every client endpoint of `drover serve`, through both fronts (OpenAI
//! `/v1/*`, Ollama `/api/*`) and against both node kinds, streamed and not.
//!
//! One gateway fronts two fake nodes: `o`, an Ollama serving `llama-o`, and
//! `v`, an OpenAI-compatible server serving `qwen-v`. Clients ask for the
//! aliases `chat-o` and `chat-v`, so each request lands on a known node and
//! the fake's last request shows the alias was mapped to the node's name.

mod support;

use drover::fake::FakeServer;
use drover::serve::Running;
use drover_core::node::NodeKind;
use serde_json::{Value, json};
use support::*;

struct Swarm {
    o: FakeServer,
    v: FakeServer,
    gw: Running,
}

impl Swarm {
    fn start() -> Swarm {
        let o = fake(NodeKind::Ollama, &["llama-o"]);
        let v = fake(NodeKind::OpenAiCompat, &["qwen-v"]);
        let cfg = config(vec![
            node_at(
                "o",
                NodeKind::Ollama,
                o.addr(),
                &["llama-o"],
                &[("chat-o", "llama-o")],
            ),
            node_at(
                "v",
                NodeKind::OpenAiCompat,
                v.addr(),
                &["qwen-v"],
                &[("chat-v", "qwen-v")],
            ),
        ]);
        let gw = start(cfg);
        Swarm { o, v, gw }
    }

    /// (alias, node name, node model, the fake) for both node kinds.
    fn cases(&self) -> [(&'static str, &'static str, &'static str, &FakeServer); 2] {
        [
            ("chat-o", "o", "llama-o", &self.o),
            ("chat-v", "v", "qwen-v", &self.v),
        ]
    }
}

/// The fake's last request, parsed.
fn last_body(f: &FakeServer) -> Value {
    serde_json::from_slice(&f.last_body().expect("the node got a request")).expect("JSON")
}

/// The events of `GET /trace/{id}` for the trace of `reply`.
fn trace_events(gw: &Running, trace: &str) -> Vec<Value> {
    let r = get(gw.addr, &format!("/trace/{trace}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["finished"], true, "{v}");
    v["events"].as_array().expect("events").clone()
}

/// Checks that the trace of a successful call says it was sent to `node`
/// and succeeded there.
fn assert_traced_to(gw: &Running, trace: &str, node: &str) {
    let events = trace_events(gw, trace);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"admitted"), "{events:?}");
    let sent: Vec<&Value> = events.iter().filter(|e| e["event"] == "sent").collect();
    assert_eq!(sent.len(), 1, "{events:?}");
    assert_eq!(sent[0]["node"], node, "{events:?}");
    assert!(kinds.contains(&"first_byte"), "{events:?}");
    let fin = events.last().expect("a finished event");
    assert_eq!(fin["event"], "finished", "{events:?}");
    assert_eq!(fin["outcome"], "succeeded", "{events:?}");
    assert_eq!(fin["node"], node, "{events:?}");
}

/// Checks the two id headers; returns the trace id.
fn ids(r_id: Option<&str>, r_trace: Option<&str>, sent_id: Option<&str>) -> String {
    let trace = r_trace.expect("X-Drover-Trace on every response");
    assert_eq!(trace.len(), 16, "{trace}");
    assert!(trace.bytes().all(|b| b.is_ascii_hexdigit()), "{trace}");
    let id = r_id.expect("X-Request-ID on every response");
    match sent_id {
        Some(s) => assert_eq!(id, s, "the client's request id is echoed"),
        None => assert_eq!(id, format!("drover-{trace}"), "a request id is made"),
    }
    trace.to_owned()
}

#[test]
fn openai_chat_whole_through_both_node_kinds() {
    let s = Swarm::start();
    for (alias, name, node_model, f) in s.cases() {
        let mut body = chat_body(alias, Some(false));
        body["x_custom"] = json!({"keep": [1, 2]});
        body["temperature"] = json!(0.5);
        let r = send(
            s.gw.addr,
            "POST",
            "/v1/chat/completions",
            &[("X-Request-ID", "req-abc-1")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{alias}: {}", r.text());
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        let trace = ids(
            r.header("x-request-id"),
            r.header("x-drover-trace"),
            Some("req-abc-1"),
        );
        let v = r.json();
        assert_eq!(v["object"], "chat.completion", "{v}");
        assert_eq!(v["model"], alias, "the reply names the requested model");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        let text = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(!text.trim().is_empty(), "{v}");
        let up = last_body(f);
        assert_eq!(
            up["model"], node_model,
            "the alias maps to the node's model"
        );
        assert_eq!(
            up["x_custom"],
            json!({"keep": [1, 2]}),
            "unknown fields pass"
        );
        assert_eq!(up["stream"], false);
        match f.kind() {
            NodeKind::Ollama => {
                assert_eq!(f.requests().path("/api/chat"), 1);
                assert_eq!(up["options"]["temperature"], 0.5, "{up}");
            }
            NodeKind::OpenAiCompat => {
                assert_eq!(f.requests().path("/v1/chat/completions"), 1);
                assert_eq!(up["temperature"], 0.5, "{up}");
            }
        }
        assert_traced_to(&s.gw, &trace, name);
    }
}

#[test]
fn openai_chat_streamed_through_both_node_kinds() {
    let s = Swarm::start();
    for (alias, name, node_model, f) in s.cases() {
        let whole = post(s.gw.addr, "/v1/chat/completions", &chat_body(alias, None));
        assert_eq!(whole.status, 200, "{}", whole.text());
        let whole_text = whole.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned();

        let mut body = chat_body(alias, Some(true));
        body["x_custom"] = json!("through");
        let r = post(s.gw.addr, "/v1/chat/completions", &body);
        assert_eq!(r.status, 200, "{alias}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let trace = ids(r.header("x-request-id"), r.header("x-drover-trace"), None);
        let events = sse_events(&r.body);
        assert!(events.len() >= 2, "{events:?}");
        for e in &events {
            assert_eq!(e["object"], "chat.completion.chunk", "{e}");
            assert_eq!(e["model"], alias, "{e}");
            assert!(e.get("error").is_none(), "{e}");
        }
        assert_eq!(
            sse_text(&events),
            whole_text,
            "{alias}: the stream carries the same words as the whole answer"
        );
        let finish = events
            .iter()
            .filter_map(|e| e["choices"][0]["finish_reason"].as_str())
            .collect::<Vec<_>>();
        assert_eq!(finish, ["stop"], "{events:?}");
        let up = last_body(f);
        assert_eq!(up["model"], node_model);
        assert_eq!(up["stream"], true);
        assert_eq!(up["x_custom"], "through");
        assert_traced_to(&s.gw, &trace, name);
    }
}

#[test]
fn openai_embeddings_string_and_array_through_both_node_kinds() {
    let s = Swarm::start();
    for (alias, _, node_model, f) in s.cases() {
        for (input, n) in [(json!("one text"), 1), (json!(["a", "b", "c"]), 3)] {
            let r = post(
                s.gw.addr,
                "/v1/embeddings",
                &json!({"model": alias, "input": input, "x_custom": 7}),
            );
            assert_eq!(r.status, 200, "{alias}: {}", r.text());
            let v = r.json();
            assert_eq!(v["object"], "list", "{v}");
            assert_eq!(v["model"], alias, "{v}");
            let data = v["data"].as_array().unwrap();
            assert_eq!(data.len(), n, "{v}");
            for (i, d) in data.iter().enumerate() {
                assert_eq!(d["index"], i, "{v}");
                let emb = d["embedding"].as_array().unwrap();
                assert_eq!(emb.len(), 8, "{v}");
                assert!(emb.iter().all(Value::is_f64), "{v}");
            }
            let up = last_body(f);
            assert_eq!(up["model"], node_model);
            assert_eq!(up["input"], input);
            assert_eq!(up["x_custom"], 7, "{up}");
        }
        let path = match f.kind() {
            NodeKind::Ollama => "/api/embed",
            NodeKind::OpenAiCompat => "/v1/embeddings",
        };
        assert_eq!(f.requests().path(path), 2);
    }
}

#[test]
fn ollama_chat_streams_ndjson_by_default_and_whole_on_request() {
    let s = Swarm::start();
    for (alias, name, node_model, f) in s.cases() {
        // No `stream` field: Ollama streams.
        let mut body = chat_body(alias, None);
        body["x_custom"] = json!({"a": null});
        let r = post(s.gw.addr, "/api/chat", &body);
        assert_eq!(r.status, 200, "{alias}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        let trace = ids(r.header("x-request-id"), r.header("x-drover-trace"), None);
        let lines = ndjson(&r.body);
        assert!(lines.len() >= 2, "{lines:?}");
        let (last, tokens) = lines.split_last().unwrap();
        for l in tokens {
            assert_eq!(l["model"], alias, "{l}");
            assert_eq!(l["done"], false, "{l}");
            assert_eq!(l["message"]["role"], "assistant", "{l}");
        }
        assert_eq!(last["done"], true, "{last}");
        assert_eq!(last["model"], alias, "{last}");
        let streamed: String = lines
            .iter()
            .filter_map(|l| l["message"]["content"].as_str())
            .collect();
        let up = last_body(f);
        assert_eq!(up["model"], node_model);
        assert_eq!(up["stream"], true, "{up}");
        assert_eq!(up["x_custom"], json!({"a": null}), "{up}");
        assert_traced_to(&s.gw, &trace, name);

        let r = post(s.gw.addr, "/api/chat", &chat_body(alias, Some(false)));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        let v = r.json();
        assert_eq!(v["model"], alias, "{v}");
        assert_eq!(v["done"], true, "{v}");
        assert_eq!(v["message"]["content"], streamed.as_str(), "{v}");
        assert_eq!(last_body(f)["stream"], false);
    }
}

#[test]
fn ollama_generate_streamed_and_whole() {
    let s = Swarm::start();
    for (alias, _, node_model, f) in s.cases() {
        let body = json!({"model": alias, "prompt": "why is the sky blue", "x_custom": true});
        let r = post(s.gw.addr, "/api/generate", &body);
        assert_eq!(r.status, 200, "{alias}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        let lines = ndjson(&r.body);
        assert!(lines.len() >= 2, "{lines:?}");
        assert!(lines.iter().all(|l| l["model"] == alias), "{lines:?}");
        assert_eq!(lines.last().unwrap()["done"], true);
        assert_eq!(lines.iter().filter(|l| l["done"] == true).count(), 1);
        let streamed: String = lines
            .iter()
            .filter_map(|l| l["response"].as_str())
            .collect();
        assert!(!streamed.trim().is_empty(), "{lines:?}");
        let up = last_body(f);
        assert_eq!(up["model"], node_model);
        assert_eq!(up["x_custom"], true, "{up}");
        let path = match f.kind() {
            NodeKind::Ollama => "/api/generate",
            NodeKind::OpenAiCompat => "/v1/completions",
        };
        assert_eq!(f.requests().path(path), 1);

        let mut whole = body.clone();
        whole["stream"] = json!(false);
        let r = post(s.gw.addr, "/api/generate", &whole);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["model"], alias, "{v}");
        assert_eq!(v["done"], true, "{v}");
        assert_eq!(v["response"], streamed.as_str(), "{v}");
    }
}

#[test]
fn ollama_embed_and_embeddings_through_both_node_kinds() {
    let s = Swarm::start();
    for (alias, _, node_model, f) in s.cases() {
        for (input, n) in [(json!("one"), 1), (json!(["x", "y"]), 2)] {
            let r = post(
                s.gw.addr,
                "/api/embed",
                &json!({"model": alias, "input": input}),
            );
            assert_eq!(r.status, 200, "{alias}: {}", r.text());
            let v = r.json();
            assert_eq!(v["model"], alias, "{v}");
            let embs = v["embeddings"].as_array().unwrap();
            assert_eq!(embs.len(), n, "{v}");
            assert!(embs.iter().all(|e| e.as_array().unwrap().len() == 8), "{v}");
            assert_eq!(last_body(f)["model"], node_model);
        }
        let r = post(
            s.gw.addr,
            "/api/embeddings",
            &json!({"model": alias, "prompt": "legacy", "x_custom": "k"}),
        );
        assert_eq!(r.status, 200, "{alias}: {}", r.text());
        let v = r.json();
        assert_eq!(v["embedding"].as_array().unwrap().len(), 8, "{v}");
        let up = last_body(f);
        assert_eq!(up["model"], node_model);
        assert_eq!(up["x_custom"], "k", "{up}");
        match f.kind() {
            NodeKind::Ollama => assert_eq!(up["prompt"], "legacy"),
            NodeKind::OpenAiCompat => assert_eq!(up["input"], "legacy"),
        }
    }
}

#[test]
fn catalogs_list_models_and_aliases_and_version_answers() {
    let s = Swarm::start();
    let want = ["chat-o", "chat-v", "llama-o", "qwen-v"];
    let r = get(s.gw.addr, "/v1/models");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-drover-trace").is_some());
    let v = r.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, want, "{v}");

    let r = get(s.gw.addr, "/api/tags");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let names: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, want, "{v}");

    let r = get(s.gw.addr, "/api/version");
    assert_eq!(r.status, 200);
    assert!(r.json()["version"].is_string(), "{}", r.text());
    // Catalogs are answered by the gateway itself.
    assert_eq!(s.o.requests().calls + s.v.requests().calls, 0);
}

#[test]
fn request_ids_are_made_or_echoed_on_errors_too() {
    let s = Swarm::start();
    let r = send(
        s.gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("X-Request-ID", "client-7")],
        b"{not json",
    );
    assert_eq!(r.status, 400);
    ids(
        r.header("x-request-id"),
        r.header("x-drover-trace"),
        Some("client-7"),
    );
    // An id with a space is not echoed: a fresh one is made.
    let r = send(
        s.gw.addr,
        "GET",
        "/api/tags",
        &[("X-Request-ID", "has space")],
        b"",
    );
    assert_eq!(r.status, 200);
    ids(r.header("x-request-id"), r.header("x-drover-trace"), None);
    // Two calls get two traces.
    let a = get(s.gw.addr, "/api/version");
    let b = get(s.gw.addr, "/api/version");
    assert_ne!(a.header("x-drover-trace"), b.header("x-drover-trace"));
    // An unknown trace is a 404, a malformed one a 400.
    assert_eq!(get(s.gw.addr, "/trace/00000000000000ff").status, 404);
    assert_eq!(get(s.gw.addr, "/trace/xyz").status, 400);
}
