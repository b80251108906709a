//! Every endpoint of both kinds and every failure mode, over real sockets
//! on 127.0.0.1, with a raw client and bounded timeouts.

mod client;

use std::time::{Duration, Instant};

use drover_core::node::NodeKind;
use serde_json::Value;

use self::client::{Client, call, call_with, json};
use super::{Behaviour, Fail, FakeServer, FakeSpec, Outcome, PROBE_PATHS, demo_specs};

fn ollama() -> FakeServer {
    FakeServer::start(FakeSpec::new(NodeKind::Ollama, &["llama3.2", "all-minilm"])).expect("start")
}

fn openai() -> FakeServer {
    FakeServer::start(FakeSpec::new(NodeKind::OpenAiCompat, &["qwen", "embed"])).expect("start")
}

const CHAT: &str = r#"{"model":"llama3.2","messages":[{"role":"user","content":"hello there"}]}"#;
const OAI_CHAT: &str = r#"{"model":"qwen","messages":[{"role":"user","content":"hello there"}]}"#;
const OAI_STREAM: &str =
    r#"{"model":"qwen","stream":true,"messages":[{"role":"user","content":"hello there"}]}"#;

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ndjson(body: &[u8]) -> Vec<Value> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(json)
        .collect()
}

/// The `data:` payloads of an SSE body.
fn sse(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    assert!(
        text.ends_with("\n\n"),
        "SSE ends with a blank line: {text:?}"
    );
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("data: line").to_owned())
        .collect()
}

#[test]
fn ollama_chat_streams_ndjson_by_default_and_matches_the_whole_reply() {
    let s = ollama();
    let (head, body) = call(s.addr(), "POST", "/api/chat", CHAT);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("application/x-ndjson"));
    let lines = ndjson(&body);
    assert_eq!(lines.len(), 9, "8 tokens and the done object");
    let streamed: String = lines[..8]
        .iter()
        .map(|l| {
            assert_eq!(l["done"], false);
            assert_eq!(l["message"]["role"], "assistant");
            l["message"]["content"]
                .as_str()
                .expect("content")
                .to_owned()
        })
        .collect();
    let last = &lines[8];
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["eval_count"], 8);
    assert!(
        last["created_at"]
            .as_str()
            .expect("created_at")
            .ends_with('Z')
    );

    let whole = CHAT.replace("\"messages\"", "\"stream\":false,\"messages\"");
    let (head, body) = call(s.addr(), "POST", "/api/chat", &whole);
    assert_eq!(head.status, 200);
    let v = json(&body);
    assert_eq!(v["done"], true);
    assert_eq!(v["eval_count"], 8);
    assert_eq!(
        v["message"]["content"],
        streamed.as_str(),
        "same words either way"
    );
    assert_eq!(streamed.split(' ').count(), 8);
    assert_eq!(s.requests().path("/api/chat"), 2);
    assert_eq!(s.requests().outcome(Outcome::Ok), 2);
}

#[test]
fn ollama_generate_streamed_and_whole() {
    let s = ollama();
    let req = r#"{"model":"llama3.2","prompt":"why is the sky blue?"}"#;
    let (_, body) = call(s.addr(), "POST", "/api/generate", req);
    let lines = ndjson(&body);
    assert_eq!(lines.len(), 9);
    assert!(lines[0]["response"].is_string());
    assert_eq!(lines[8]["done"], true);
    assert!(lines[8]["context"].is_array());
    let whole = r#"{"model":"llama3.2","prompt":"why is the sky blue?","stream":false}"#;
    let v = json(&call(s.addr(), "POST", "/api/generate", whole).1);
    let streamed: String = lines[..8]
        .iter()
        .map(|l| l["response"].as_str().expect("response").to_owned())
        .collect();
    assert_eq!(v["response"], streamed.as_str());
    assert_eq!(v["prompt_eval_count"], 5);
    // Another prompt gives other words (the seed and the prompt pick them).
    let other = r#"{"model":"llama3.2","prompt":"tell me a story","stream":false}"#;
    let w = json(&call(s.addr(), "POST", "/api/generate", other).1);
    assert_ne!(w["response"], v["response"]);
}

#[test]
fn ollama_embed_and_embeddings() {
    let s = ollama();
    let one = json(
        &call(
            s.addr(),
            "POST",
            "/api/embed",
            r#"{"model":"all-minilm","input":"a b"}"#,
        )
        .1,
    );
    assert_eq!(one["model"], "all-minilm");
    let e = one["embeddings"].as_array().expect("embeddings");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].as_array().expect("vector").len(), 8);
    let two = json(
        &call(
            s.addr(),
            "POST",
            "/api/embed",
            r#"{"model":"all-minilm","input":["a b","c"]}"#,
        )
        .1,
    );
    let e2 = two["embeddings"].as_array().expect("embeddings");
    assert_eq!(e2.len(), 2);
    assert_eq!(e2[0], e[0], "same text, same vector");
    assert_ne!(e2[1], e[0]);
    let old = json(
        &call(
            s.addr(),
            "POST",
            "/api/embeddings",
            r#"{"model":"all-minilm","prompt":"a b"}"#,
        )
        .1,
    );
    assert_eq!(old["embedding"], e[0]);
    let norm: f64 = e[0]
        .as_array()
        .expect("vector")
        .iter()
        .map(|x| x.as_f64().expect("number").powi(2))
        .sum();
    assert!((norm - 1.0).abs() < 1e-3, "unit vector, norm² = {norm}");
}

#[test]
fn ollama_tags_version_and_unknown_route() {
    let s = ollama();
    let tags = json(&call(s.addr(), "GET", "/api/tags", "").1);
    let names: Vec<&str> = tags["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["llama3.2", "all-minilm"]);
    let v = json(&call(s.addr(), "GET", "/api/version", "").1);
    assert!(v["version"].is_string());
    let (head, body) = call(s.addr(), "GET", "/v1/models", "");
    assert_eq!(head.status, 404);
    assert_eq!(body, b"404 page not found");
    let (head, _) = call(s.addr(), "GET", "/api/chat", "");
    assert_eq!(head.status, 404, "wrong method");
    assert_eq!(s.requests().outcome(Outcome::NotFound), 2);
}

#[test]
fn openai_chat_stream_is_sse_with_role_chunk_deltas_finish_and_done() {
    let s = openai();
    let (head, body) = call(s.addr(), "POST", "/v1/chat/completions", OAI_STREAM);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let events = sse(&body);
    assert_eq!(events.len(), 11, "role, 8 deltas, finish, [DONE]");
    assert_eq!(events[10], "[DONE]");
    let chunks: Vec<Value> = events[..10].iter().map(|e| json(e.as_bytes())).collect();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "qwen");
        assert_eq!(c["id"], chunks[0]["id"]);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "");
    let text: String = chunks[1..9]
        .iter()
        .map(|c| {
            assert!(c["choices"][0]["finish_reason"].is_null());
            c["choices"][0]["delta"]["content"]
                .as_str()
                .expect("delta")
                .to_owned()
        })
        .collect();
    assert_eq!(chunks[9]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[9]["choices"][0]["delta"], serde_json::json!({}));

    let (head, body) = call(s.addr(), "POST", "/v1/chat/completions", OAI_CHAT);
    assert_eq!(head.status, 200);
    let v = json(&body);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], text.as_str());
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert_eq!(v["usage"]["prompt_tokens"], 2);
    assert_eq!(v["usage"]["total_tokens"], 10);

    let usage = OAI_STREAM.replace(
        "\"stream\":true",
        "\"stream\":true,\"stream_options\":{\"include_usage\":true}",
    );
    let events = sse(&call(s.addr(), "POST", "/v1/chat/completions", &usage).1);
    assert_eq!(events.len(), 12);
    let u = json(events[10].as_bytes());
    assert_eq!(u["choices"], serde_json::json!([]));
    assert_eq!(u["usage"]["total_tokens"], 10);
}

#[test]
fn openai_completions_embeddings_and_models() {
    let s = openai();
    let req = r#"{"model":"qwen","prompt":"once upon"}"#;
    let v = json(&call(s.addr(), "POST", "/v1/completions", req).1);
    assert_eq!(v["object"], "text_completion");
    let text = v["choices"][0]["text"].as_str().expect("text").to_owned();
    let streamed = r#"{"model":"qwen","prompt":"once upon","stream":true}"#;
    let events = sse(&call(s.addr(), "POST", "/v1/completions", streamed).1);
    assert_eq!(events.len(), 10, "8 tokens, finish, [DONE]");
    let joined: String = events[..8]
        .iter()
        .map(|e| {
            json(e.as_bytes())["choices"][0]["text"]
                .as_str()
                .expect("t")
                .to_owned()
        })
        .collect();
    assert_eq!(joined, text);
    assert_eq!(
        json(events[8].as_bytes())["choices"][0]["finish_reason"],
        "stop"
    );

    let one = json(
        &call(
            s.addr(),
            "POST",
            "/v1/embeddings",
            r#"{"model":"embed","input":"x"}"#,
        )
        .1,
    );
    assert_eq!(one["object"], "list");
    assert_eq!(one["data"][0]["object"], "embedding");
    assert_eq!(one["data"][0]["embedding"].as_array().expect("v").len(), 8);
    let many = r#"{"model":"embed","input":["x","y","z"]}"#;
    let many = json(&call(s.addr(), "POST", "/v1/embeddings", many).1);
    assert_eq!(many["data"].as_array().expect("data").len(), 3);
    assert_eq!(many["data"][2]["index"], 2);
    assert_eq!(many["data"][0]["embedding"], one["data"][0]["embedding"]);

    let models = json(&call(s.addr(), "GET", "/v1/models", "").1);
    assert_eq!(models["data"][0]["id"], "qwen");
    assert_eq!(models["data"][1]["id"], "embed");
    let (head, body) = call(s.addr(), "GET", "/api/tags", "");
    assert_eq!(head.status, 404);
    assert_eq!(json(&body)["detail"], "Not Found");
}

#[test]
fn unknown_model_is_404_and_bad_input_400_in_each_servers_shape() {
    let o = ollama();
    let (head, body) = call(
        o.addr(),
        "POST",
        "/api/chat",
        r#"{"model":"nope","messages":[]}"#,
    );
    assert_eq!(head.status, 404);
    assert_eq!(
        json(&body)["error"],
        "model \"nope\" not found, try pulling it first"
    );
    let (head, body) = call(o.addr(), "POST", "/api/chat", "{not json");
    assert_eq!(head.status, 400);
    assert!(
        json(&body)["error"]
            .as_str()
            .expect("error")
            .contains("invalid JSON")
    );
    let bad_type = r#"{"model":"llama3.2","messages":[{"role":"user","content":7}]}"#;
    let (head, body) = call(o.addr(), "POST", "/api/chat", bad_type);
    assert_eq!(head.status, 400);
    assert!(
        json(&body)["error"]
            .as_str()
            .expect("error")
            .contains("messages[0].content")
    );
    let (head, _) = call(o.addr(), "POST", "/api/embed", r#"{"input":"x"}"#);
    assert_eq!(head.status, 400, "model is required");

    let a = openai();
    let (head, body) = call(
        a.addr(),
        "POST",
        "/v1/chat/completions",
        r#"{"model":"gpt-9","messages":[]}"#,
    );
    assert_eq!(head.status, 404);
    let e = &json(&body)["error"];
    assert_eq!(e["code"], "model_not_found");
    assert_eq!(e["param"], "model");
    let (head, body) = call(a.addr(), "POST", "/v1/chat/completions", "[1,2");
    assert_eq!(head.status, 400);
    assert_eq!(json(&body)["error"]["type"], "invalid_request_error");
    let (head, _) = call(
        a.addr(),
        "POST",
        "/v1/chat/completions",
        r#"{"model":"qwen","stream":"yes","messages":[]}"#,
    );
    assert_eq!(head.status, 400, "stream must be a boolean");
    let (head, _) = call(a.addr(), "POST", "/v1/embeddings", r#"{"model":"embed"}"#);
    assert_eq!(head.status, 400, "input is required");
    assert_eq!(a.requests().outcome(Outcome::BadRequest), 3);
    assert_eq!(a.requests().outcome(Outcome::NotFound), 1);
}

#[test]
fn injected_statuses_carry_retry_after_and_the_servers_error_shape() {
    let s = openai();
    s.set(Behaviour {
        fail: Fail::Status(500),
        ..Behaviour::default()
    });
    let (head, body) = call(s.addr(), "POST", "/v1/chat/completions", OAI_CHAT);
    assert_eq!(head.status, 500);
    assert_eq!(json(&body)["error"]["type"], "server_error");
    s.set(Behaviour {
        fail: Fail::TooMany { retry_after_s: 7 },
        ..Behaviour::default()
    });
    let (head, _) = call(s.addr(), "POST", "/v1/chat/completions", OAI_STREAM);
    assert_eq!(head.status, 429);
    assert_eq!(head.header("retry-after"), Some("7"));
    let o = ollama();
    o.set(Behaviour {
        fail: Fail::Unavailable,
        ..Behaviour::default()
    });
    let (head, body) = call(o.addr(), "POST", "/api/chat", CHAT);
    assert_eq!(head.status, 503);
    assert_eq!(head.header("retry-after"), Some("1"));
    assert!(json(&body)["error"].is_string());
    let c = s.requests();
    assert_eq!(
        (c.outcome(Outcome::Status), c.outcome(Outcome::TooMany)),
        (1, 1)
    );
    assert_eq!(o.requests().outcome(Outcome::Unavailable), 1);
}

#[test]
fn garbage_is_a_200_that_is_not_json_streamed_or_not() {
    let s = openai();
    s.set(Behaviour {
        fail: Fail::Garbage,
        ..Behaviour::default()
    });
    let (head, body) = call(s.addr(), "POST", "/v1/chat/completions", OAI_CHAT);
    assert_eq!(head.status, 200);
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    let (head, body) = call(s.addr(), "POST", "/v1/chat/completions", OAI_STREAM);
    assert_eq!(head.status, 200);
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(text.starts_with("data: "), "framed as SSE: {text:?}");
    assert!(!text.contains("[DONE]"));
    let payload = text.trim_start_matches("data: ").trim();
    assert!(serde_json::from_str::<Value>(payload).is_err());
    let o = ollama();
    o.set(Behaviour {
        fail: Fail::Garbage,
        ..Behaviour::default()
    });
    let (_, body) = call(o.addr(), "POST", "/api/chat", CHAT);
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    assert_eq!(o.requests().outcome(Outcome::Garbage), 1);
}

#[test]
fn break_after_k_tokens_cuts_the_stream_without_its_end() {
    let s = openai();
    s.set(Behaviour {
        fail: Fail::BreakAfter(3),
        ..Behaviour::default()
    });
    let mut c = Client::connect(s.addr());
    c.send("POST", "/v1/chat/completions", OAI_STREAM, &[]);
    let head = c.head().expect("head");
    assert_eq!(head.status, 200);
    let mut data = Vec::new();
    let err = loop {
        match c.chunk() {
            Ok(Some(d)) => data.extend_from_slice(&d),
            Ok(None) => panic!(
                "the stream ended normally: {}",
                String::from_utf8_lossy(&data)
            ),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ),
        "{err}"
    );
    let events = sse(&data);
    assert_eq!(events.len(), 4, "role chunk and 3 tokens: {events:?}");
    assert!(!events.iter().any(|e| e == "[DONE]"));

    // Non-streamed: Content-Length promises more than arrives.
    let o = ollama();
    o.set(Behaviour {
        fail: Fail::BreakAfter(1),
        ..Behaviour::default()
    });
    let whole = r#"{"model":"llama3.2","prompt":"x","stream":false}"#;
    let mut c = Client::connect(o.addr());
    c.send("POST", "/api/generate", whole, &[]);
    let head = c.head().expect("head");
    assert_eq!(head.status, 200);
    assert!(c.body(&head).is_err(), "the body is cut short");
    assert_eq!(o.requests().outcome(Outcome::Broken), 1);
    assert_eq!(
        o.requests().cancelled,
        0,
        "a deliberate break is not a cancel"
    );
}

#[test]
fn refuse_closes_without_an_answer_and_hang_never_answers() {
    let s = ollama();
    s.set(Behaviour {
        fail: Fail::Refuse,
        ..Behaviour::default()
    });
    let mut c = Client::connect(s.addr());
    c.send("POST", "/api/chat", CHAT, &[]);
    assert!(c.head().is_err(), "no status line");
    assert_eq!(s.requests().outcome(Outcome::Refused), 1);

    s.set(Behaviour {
        fail: Fail::Hang,
        ..Behaviour::default()
    });
    let mut c = Client::with_timeout(s.addr(), Duration::from_millis(300));
    c.send("POST", "/api/chat", CHAT, &[]);
    let err = c.head().expect_err("a hang answers nothing");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    eventually("the hung request to be in flight", || {
        s.requests().in_flight == 1
    });
    drop(c);
    eventually("the hung request to count as cancelled", || {
        let r = s.requests();
        r.cancelled == 1 && r.in_flight == 0
    });
}

#[test]
fn ttft_and_token_interval_pace_the_stream_and_headers_come_first() {
    let s = openai();
    let ms = Duration::from_millis;
    s.set(Behaviour::paced(ms(200), ms(50), 3));
    let mut c = Client::connect(s.addr());
    let t0 = Instant::now();
    c.send("POST", "/v1/chat/completions", OAI_STREAM, &[]);
    let head = c.head().expect("head");
    assert_eq!(head.status, 200);
    assert!(t0.elapsed() < ms(150), "headers before the first token");
    let first = c.chunk().expect("chunk").expect("data");
    let at_first = t0.elapsed();
    assert!(
        at_first >= ms(200),
        "first token after ttft, got {at_first:?}"
    );
    assert!(String::from_utf8_lossy(&first).contains("\"role\":\"assistant\""));
    while c.chunk().expect("chunk").is_some() {}
    let total = t0.elapsed();
    assert!(
        total >= ms(300),
        "two more tokens 50 ms apart, got {total:?}"
    );
    assert!(total < ms(2000));
}

#[test]
fn a_client_leaving_mid_stream_counts_as_cancelled() {
    let s = ollama();
    s.set(Behaviour::paced(
        Duration::ZERO,
        Duration::from_millis(50),
        100,
    ));
    let mut c = Client::connect(s.addr());
    c.send("POST", "/api/chat", CHAT, &[]);
    let head = c.head().expect("head");
    assert_eq!(head.status, 200);
    assert!(c.chunk().expect("chunk").is_some());
    assert_eq!(s.requests().in_flight, 1);
    drop(c);
    eventually("the stream to count as cancelled", || {
        let r = s.requests();
        r.cancelled == 1 && r.in_flight == 0
    });
    // A stream read to its end is not cancelled.
    s.set(Behaviour::default());
    let _ = call(s.addr(), "POST", "/api/chat", CHAT);
    assert_eq!(s.requests().cancelled, 1);
}

#[test]
fn records_paths_last_body_and_headers_and_serves_keep_alive() {
    let s = openai();
    let mut c = Client::connect(s.addr());
    c.send(
        "GET",
        "/v1/models",
        "",
        &[("Authorization", "Bearer sk-one")],
    );
    let h = c.head().expect("head");
    c.body(&h).expect("body");
    c.send(
        "POST",
        "/v1/chat/completions",
        OAI_CHAT,
        &[("Authorization", "Bearer sk-two")],
    );
    let h = c.head().expect("second response on the same connection");
    assert_eq!(h.status, 200);
    c.body(&h).expect("body");
    let r = s.requests();
    assert_eq!(r.total, 2);
    assert_eq!(r.path("/v1/models"), 1);
    assert_eq!(r.path("/v1/chat/completions"), 1);
    assert_eq!(s.last_body().as_deref(), Some(OAI_CHAT.as_bytes()));
    let headers = s.last_headers().expect("headers");
    assert_eq!(headers.get("authorization").expect("auth"), "Bearer sk-two");
}

#[test]
fn probe_reads_meet_the_failure_only_with_fail_probes() {
    let mut spec = FakeSpec::new(NodeKind::Ollama, &["m"]);
    spec.behaviour = Behaviour {
        fail: Fail::Status(500),
        ..Behaviour::default()
    };
    let s = FakeServer::start(spec).expect("start");
    for path in PROBE_PATHS {
        call(s.addr(), "GET", path, "");
    }
    assert_eq!(call(s.addr(), "GET", "/api/version", "").0.status, 200);
    assert_eq!(call(s.addr(), "POST", "/api/chat", CHAT).0.status, 500);
    let c = s.requests();
    assert_eq!((c.total, c.calls), (5, 1), "{c:?}");
    assert_eq!(s.last_body().as_deref(), Some(CHAT.as_bytes()));
    s.set(Behaviour {
        fail: Fail::Status(500),
        fail_probes: true,
        ..Behaviour::default()
    });
    assert_eq!(call(s.addr(), "GET", "/api/version", "").0.status, 500);
}

#[test]
fn fail_rate_is_seeded_and_reproducible() {
    let run = |seed: u64| -> Vec<u16> {
        let mut spec = FakeSpec::new(NodeKind::Ollama, &["m"]);
        spec.seed = seed;
        spec.behaviour = Behaviour {
            fail: Fail::Status(500),
            fail_rate: 0.5,
            ..Behaviour::default()
        };
        let s = FakeServer::start(spec).expect("start");
        (0..40)
            .map(|_| {
                call(
                    s.addr(),
                    "POST",
                    "/api/embed",
                    r#"{"model":"m","input":"x"}"#,
                )
                .0
                .status
            })
            .collect()
    };
    let a = run(7);
    let failed = a.iter().filter(|s| **s == 500).count();
    assert!((8..=32).contains(&failed), "about half fail: {failed}/40");
    assert!(a.iter().all(|s| *s == 500 || *s == 200));
    assert_eq!(run(7), a, "same seed, same draws");
    assert_ne!(run(8), a, "another seed, other draws");
}

#[test]
fn stop_closes_the_listener_and_cuts_open_connections() {
    let s = ollama();
    let addr = s.addr();
    s.set(Behaviour {
        fail: Fail::Hang,
        ..Behaviour::default()
    });
    let mut c = Client::connect(addr);
    c.send("POST", "/api/chat", CHAT, &[]);
    eventually("the request to arrive", || s.requests().in_flight == 1);
    let t0 = Instant::now();
    s.stop();
    assert!(t0.elapsed() < Duration::from_secs(2), "stop is prompt");
    assert!(c.closed(), "the hung connection is cut");
    let refused = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    assert!(refused.is_err(), "nothing listens after stop");
}

#[test]
fn the_demo_swarm_is_three_named_simulated_nodes_one_flaky() {
    let specs = demo_specs(1);
    let names: Vec<&str> = specs.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["sim-fast", "sim-slow", "sim-flaky"]);
    let flaky = &specs[2].1.behaviour;
    assert_eq!(flaky.fail, Fail::Status(500));
    assert!(flaky.fail_rate > 0.0 && flaky.fail_rate < 1.0);
    assert!(specs[0].1.behaviour.ttft < specs[1].1.behaviour.ttft);
    let fast = FakeServer::start(specs[0].1.clone()).expect("start");
    let req = r#"{"model":"demo","messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(
        call_with(fast.addr(), "POST", "/v1/chat/completions", req, &[])
            .0
            .status,
        200
    );
}
