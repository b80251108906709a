//! Tests of [`decode`]: every checked field, happy and unhappy.

use drover_core::route::Op;
use serde_json::json;

use super::*;

fn ok(endpoint: Endpoint, body: serde_json::Value) -> Inbound {
    let bytes = serde_json::to_vec(&body).expect("test JSON");
    decode(endpoint, &bytes).unwrap_or_else(|e| panic!("{body}: {e}"))
}

fn err(endpoint: Endpoint, body: &str) -> (String, String) {
    match decode(endpoint, body.as_bytes()) {
        Ok(inb) => panic!("{body} decoded: {inb:?}"),
        Err(e) => (e.field, e.reason),
    }
}

fn field(endpoint: Endpoint, body: &str) -> String {
    err(endpoint, body).0
}

#[test]
fn openai_chat_decodes_and_keeps_unknown_fields() {
    let inb = ok(
        Endpoint::ChatCompletions,
        json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}],
               "x_vendor": {"deep": [1, 2]}, "user": "alice"}),
    );
    assert_eq!(inb.model, "llama3");
    assert!(!inb.stream, "OpenAI defaults to not streaming");
    assert_eq!(inb.op(), Op::Chat);
    assert_eq!(inb.body()["x_vendor"], json!({"deep": [1, 2]}));
    assert_eq!(inb.session.as_deref(), Some("alice"));
    assert_eq!(inb.prefix_blocks.len(), 1, "a short prompt is one block");
    assert_eq!(inb.call_id, 0);
    let streamed = ok(
        Endpoint::ChatCompletions,
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": null},
               {"role": "user", "content": [{"type": "text", "text": "a"},
                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}),
    );
    assert!(streamed.stream);
    assert_eq!(streamed.op(), Op::Stream);
    assert_eq!(streamed.session, None);
}

#[test]
fn ollama_defaults_to_streaming() {
    let chat = ok(
        Endpoint::OllamaChat,
        json!({"model": "m", "messages": [{"role": "user", "content": "hi", "images": ["AAAA"]}]}),
    );
    assert!(chat.stream);
    assert_eq!(chat.op(), Op::Stream);
    let chat = ok(Endpoint::OllamaChat, json!({"model": "m", "stream": false}));
    assert!(!chat.stream, "explicit false; no messages loads the model");
    let generate = ok(
        Endpoint::OllamaGenerate,
        json!({"model": "m", "prompt": "p", "system": "s", "stream": null}),
    );
    assert!(generate.stream);
    let generate = ok(Endpoint::OllamaGenerate, json!({"model": "m"}));
    assert!(generate.stream);
    assert_eq!(generate.prefix_blocks.len(), 1);
}

#[test]
fn embeddings_are_never_streamed_and_accept_every_input_form() {
    for input in [
        json!("one"),
        json!(["a", "b"]),
        json!([1, 2, 3]),
        json!([[1, 2], [3]]),
    ] {
        let inb = ok(
            Endpoint::Embeddings,
            json!({"model": "e", "input": input, "stream": true}),
        );
        assert!(!inb.stream);
        assert_eq!(inb.op(), Op::Embed);
        assert!(inb.prefix_blocks.is_empty());
    }
    for input in [json!("one"), json!(["a", "b"]), json!([])] {
        let inb = ok(Endpoint::OllamaEmbed, json!({"model": "e", "input": input}));
        assert_eq!(inb.op(), Op::Embed);
    }
    let inb = ok(
        Endpoint::OllamaEmbeddings,
        json!({"model": "e", "prompt": "text"}),
    );
    assert_eq!(inb.op(), Op::Embed);
}

#[test]
fn malformed_json_names_body_with_line_and_column() {
    let (f, reason) = err(Endpoint::ChatCompletions, "{\"model\":\n \"m\",,}");
    assert_eq!(f, "body");
    assert!(reason.contains("line 2 column"), "{reason}");
    let (f, reason) = err(Endpoint::OllamaChat, "");
    assert_eq!(f, "body");
    assert!(reason.contains("EOF"), "{reason}");
    assert_eq!(field(Endpoint::OllamaChat, "\u{feff}{}"), "body");
    assert_eq!(
        field(Endpoint::Embeddings, "{\"model\":\"m\"} trailing"),
        "body"
    );
    for body in ["[]", "\"x\"", "42", "null", "true"] {
        let (f, reason) = err(Endpoint::ChatCompletions, body);
        assert_eq!(f, "body");
        assert!(reason.starts_with("expected a JSON object"), "{reason}");
    }
    let deep = "[".repeat(10_000);
    assert_eq!(field(Endpoint::ChatCompletions, &deep), "body");
}

#[test]
fn model_must_be_a_non_empty_string() {
    let cases = [
        (r#"{"messages":[]}"#, "missing"),
        (r#"{"model":null}"#, "missing"),
        (r#"{"model":""}"#, "must not be empty"),
        (r#"{"model":3}"#, "expected a string, got number"),
        (r#"{"model":["m"]}"#, "expected a string, got array"),
    ];
    for e in Endpoint::ALL {
        for (body, reason) in cases {
            assert_eq!(
                err(e, body),
                ("model".to_owned(), reason.to_owned()),
                "{e:?} {body}"
            );
        }
    }
}

#[test]
fn wrong_types_name_their_field() {
    use Endpoint::*;
    let cases: &[(Endpoint, &str, &str)] = &[
        (ChatCompletions, r#"{"model":"m"}"#, "messages"),
        (
            ChatCompletions,
            r#"{"model":"m","messages":[]}"#,
            "messages",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","messages":{}}"#,
            "messages",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user"},"x"]}"#,
            "messages[1]",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","messages":[{"content":"x"}]}"#,
            "messages[0].role",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","messages":[{"role":1}]}"#,
            "messages[0].role",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u","content":"a"},{"role":"u"},{"role":"u","content":5}]}"#,
            "messages[2].content",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u","content":[1]}]}"#,
            "messages[0].content[0]",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u","content":[{}]}]}"#,
            "messages[0].content[0].type",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u","content":[{"type":"text","text":1}]}]}"#,
            "messages[0].content[0].text",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u"}],"stream":"yes"}"#,
            "stream",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u"}],"user":7}"#,
            "user",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u"}],"session_id":{}}"#,
            "session_id",
        ),
        (OllamaChat, r#"{"model":"m","messages":"hi"}"#, "messages"),
        (
            OllamaChat,
            r#"{"model":"m","messages":[{"role":"u","content":[]}]}"#,
            "messages[0].content",
        ),
        (
            OllamaChat,
            r#"{"model":"m","messages":[{"role":"u","images":"x"}]}"#,
            "messages[0].images",
        ),
        (
            OllamaChat,
            r#"{"model":"m","messages":[{"role":"u","images":["a",2]}]}"#,
            "messages[0].images[1]",
        ),
        (OllamaChat, r#"{"model":"m","stream":1}"#, "stream"),
        (OllamaChat, r#"{"model":"m","options":[]}"#, "options"),
        (OllamaGenerate, r#"{"model":"m","prompt":["a"]}"#, "prompt"),
        (OllamaGenerate, r#"{"model":"m","system":false}"#, "system"),
        (
            OllamaGenerate,
            r#"{"model":"m","images":[null]}"#,
            "images[0]",
        ),
        (Embeddings, r#"{"model":"m"}"#, "input"),
        (Embeddings, r#"{"model":"m","input":[]}"#, "input"),
        (Embeddings, r#"{"model":"m","input":{}}"#, "input"),
        (Embeddings, r#"{"model":"m","input":[null]}"#, "input[0]"),
        (Embeddings, r#"{"model":"m","input":["a",1]}"#, "input[1]"),
        (Embeddings, r#"{"model":"m","input":[1,-2]}"#, "input[1]"),
        (Embeddings, r#"{"model":"m","input":[1.5]}"#, "input[0]"),
        (
            Embeddings,
            r#"{"model":"m","input":[[1],[2,"x"]]}"#,
            "input[1]",
        ),
        (OllamaEmbed, r#"{"model":"m","input":[[1]]}"#, "input[0]"),
        (OllamaEmbed, r#"{"model":"m","input":[1]}"#, "input[0]"),
        (OllamaEmbed, r#"{"model":"m","input":5}"#, "input"),
        (OllamaEmbeddings, r#"{"model":"m"}"#, "prompt"),
        (
            OllamaEmbeddings,
            r#"{"model":"m","prompt":["a"]}"#,
            "prompt",
        ),
    ];
    for (e, body, want) in cases {
        let (got, reason) = err(*e, body);
        assert_eq!(got, *want, "{e:?} {body}: {reason}");
        assert!(!reason.is_empty());
    }
    let (_, reason) = err(
        ChatCompletions,
        r#"{"model":"m","messages":[{"role":"u"}],"stream":"yes"}"#,
    );
    assert_eq!(reason, "expected a boolean, got string");
}

#[test]
fn session_prefers_session_id_then_user() {
    let inb = ok(
        Endpoint::ChatCompletions,
        json!({"model": "m", "messages": [{"role": "u"}], "user": "u1", "session_id": "s1"}),
    );
    assert_eq!(inb.session.as_deref(), Some("s1"));
    let inb = ok(
        Endpoint::ChatCompletions,
        json!({"model": "m", "messages": [{"role": "u"}], "user": "u1", "session_id": ""}),
    );
    assert_eq!(inb.session.as_deref(), Some("u1"));
    let inb = ok(
        Endpoint::OllamaChat,
        json!({"model": "m", "session_id": "s2"}),
    );
    assert_eq!(inb.session.as_deref(), Some("s2"));
    let inb = ok(Endpoint::OllamaChat, json!({"model": "m", "user": ""}));
    assert_eq!(inb.session, None);
}

fn chat(front: Endpoint, system: &str, user: &str) -> Vec<u64> {
    ok(
        front,
        json!({"model": "m", "messages": [{"role": "system", "content": system},
                                           {"role": "user", "content": user}]}),
    )
    .prefix_blocks
}

#[test]
fn prefix_blocks_follow_the_leading_prompt() {
    let system = "You are a helpful assistant. ".repeat(30); // 870 bytes
    let a = chat(Endpoint::ChatCompletions, &system, "question one");
    let b = chat(Endpoint::ChatCompletions, &system, "a different question");
    assert_eq!(a.len(), 3, "870 + 30 bytes make three full 256-byte blocks");
    assert_eq!(a, b, "the shared system prompt gives the same blocks");
    assert_eq!(
        a,
        chat(Endpoint::OllamaChat, &system, "question one"),
        "either front hashes the same conversation the same"
    );
    let c = chat(
        Endpoint::ChatCompletions,
        &"Another system. ".repeat(60),
        "q",
    );
    assert_ne!(a[0], c[0]);
    let long = chat(Endpoint::ChatCompletions, &"x".repeat(100_000), "q");
    assert_eq!(long.len(), PREFIX_MAX_BLOCKS);
    assert_ne!(
        long[0], long[1],
        "the first block holds the role, the second only text"
    );
    let short1 = chat(Endpoint::ChatCompletions, "s", "hello");
    let short2 = chat(Endpoint::ChatCompletions, "s", "hello!");
    assert_eq!(short1.len(), 1);
    assert_ne!(short1, short2);
    assert_eq!(
        short1,
        chat(Endpoint::ChatCompletions, "s", "hello"),
        "stable"
    );
    // Generate hashes system + prompt like a chat with the same two messages.
    let generate = ok(
        Endpoint::OllamaGenerate,
        json!({"model": "m", "system": system, "prompt": "question one"}),
    );
    assert_eq!(generate.prefix_blocks, a);
    // Role boundaries matter.
    assert_ne!(
        chat(Endpoint::ChatCompletions, "ab", "c"),
        chat(Endpoint::ChatCompletions, "a", "bc")
    );
}

#[test]
fn block_hash_is_stable() {
    // Pinned values: the hash must not change between builds or releases,
    // or every prefix would move to a new home node after an upgrade.
    assert_eq!(
        super::decode::block_hash(b""),
        super::decode::block_hash(b"")
    );
    let pinned = [
        super::decode::block_hash(b"abc"),
        super::decode::block_hash(&[7u8; 256]),
    ];
    assert_eq!(pinned, [0x8865_62ff_fd9e_a98f, 0x5ad3_6432_169c_3561]);
    assert_ne!(
        super::decode::block_hash(b"abc"),
        super::decode::block_hash(b"abc\0")
    );
}

#[test]
fn a_body_naming_an_upstream_is_refused_on_that_field() {
    let keys = [
        "api_base",
        "base_url",
        "baseUrl",
        "BASE-URL",
        "api_url",
        "apiHost",
        "upstream",
        "upstream_url",
        "endpoint",
        "url",
        "proxy",
        "proxy_url",
        "host",
    ];
    let endpoints = [
        (
            Endpoint::ChatCompletions,
            r#""messages":[{"role":"user","content":"hi"}]"#,
        ),
        (Endpoint::OllamaChat, r#""messages":[]"#),
        (Endpoint::OllamaGenerate, r#""prompt":"hi""#),
        (Endpoint::Embeddings, r#""input":"hi""#),
        (Endpoint::OllamaEmbed, r#""input":"hi""#),
        (Endpoint::OllamaEmbeddings, r#""prompt":"hi""#),
    ];
    for (ep, rest) in endpoints {
        for key in keys {
            // Whatever the value: a string, null, an object.
            for value in [r#""http://169.254.169.254:80""#, "null", r#"{"x":1}"#] {
                let body = format!(r#"{{"model":"m",{rest},"{key}":{value}}}"#);
                let (field, reason) = err(ep, &body);
                assert_eq!(field, key, "{body}");
                assert!(reason.contains("names an upstream"), "{body}: {reason}");
            }
        }
        // Keys that merely contain such a word pass through.
        for key in ["url_context", "my_endpoint_hint", "hosted"] {
            let body = format!(r#"{{"model":"m",{rest},"{key}":"x"}}"#);
            assert!(decode(ep, body.as_bytes()).is_ok(), "{body}");
        }
    }
    // Nested keys are the upstream's business (e.g. image `url` parts).
    let inb = ok(
        Endpoint::ChatCompletions,
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
    );
    assert_eq!(inb.model, "m");
}

/// Both decodes of `body` for `endpoint`: the quick path's verdict (`None`
/// when it declines) and the full decode's.
fn both(endpoint: Endpoint, body: &[u8]) -> (Option<Inbound>, Result<Inbound, WireError>) {
    let quick =
        decode_quick::decode(endpoint, body).map(|_| decode(endpoint, body).expect("quick"));
    (quick, decode::decode_full(endpoint, body))
}

/// What the quick path takes, the full decode takes with the same fields,
/// the same map and the same upstream body; what it declines, the full
/// decode judges (accepting some).
#[test]
fn the_quick_path_agrees_with_the_full_decode() {
    use drover_core::node::NodeKind;
    let long = "word ".repeat(400);
    // Every escape form, at every offset within a 256-byte block.
    let esc = r#"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00\u0000 "#.repeat(160);
    let taken: Vec<(Endpoint, String)> = vec![
        (Endpoint::ChatCompletions, r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#.into()),
        (Endpoint::ChatCompletions, format!(
            r#" {{ "messages" : [ {{"role":"system","content":"be \"brief\"\n"}}, {{"role":"user","content":[{{"type":"text","text":"{long}"}},{{"type":"image_url","image_url":{{"url":"data:x"}}}},{{"type":"input_audio"}}]}}, {{"role":"assistant","content":null,"tool_calls":[]}} ], "model":"caf\u00e9", "stream":true, "temperature":0.7, "seed":12345678901234567890, "user":"u", "n":[1,{{"deep":[null,false]}}] }} "#
        )),
        (Endpoint::ChatCompletions, r#"{"model":"m","messages":[{"role":"user","content":"x"}],"session_id":"","user":"alice","stream":null}"#.into()),
        (Endpoint::ChatCompletions, r#"{"model":"m","messages":[{"role":"user","content":"x"}],"session_id":"s","user":5}"#.into()),
        (Endpoint::OllamaChat, r#"{"model":"m"}"#.into()),
        (Endpoint::OllamaChat, r#"{"model":"m","messages":[{"role":"user","content":"x","images":["aGk=","b"]}],"options":{"num_ctx":8},"stream":false}"#.into()),
        (Endpoint::OllamaChat, r#"{"model":"m","messages":[],"options":null,"keep_alive":"5m"}"#.into()),
        (Endpoint::OllamaGenerate, r#"{"model":"m","prompt":"p","system":"s","images":["x"],"raw":true}"#.into()),
        (Endpoint::OllamaGenerate, r#"{"model":"m","prompt":null}"#.into()),
        (Endpoint::Embeddings, r#"{"model":"m","input":"x","encoding_format":"base64"}"#.into()),
        (Endpoint::Embeddings, r#"{"model":"m","input":[[1,2],[],[4294967295]]}"#.into()),
        (Endpoint::Embeddings, r#"{"model":"m","input":[0,7],"stream":"ignored"}"#.into()),
        (Endpoint::OllamaEmbed, r#"{"model":"m","input":[]}"#.into()),
        (Endpoint::OllamaEmbed, r#"{"model":"m","input":["a","b\u0041"],"truncate":true}"#.into()),
        (Endpoint::OllamaEmbeddings, r#"{"model":"m","prompt":"x"}"#.into()),
        // Escapes across block boundaries and past the last block.
        (Endpoint::ChatCompletions, format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{esc}"}},{{"role":"assistant","content":"{esc}"}}]}}"#
        )),
        (Endpoint::OllamaChat, format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{esc}","images":["{esc}","{long}"]}}]}}"#
        )),
        (Endpoint::OllamaGenerate, format!(r#"{{"model":"m","system":"{esc}","prompt":"{esc}"}}"#)),
        (Endpoint::OllamaGenerate, format!(r#"{{"model":"m","prompt":"{long}"}}"#)),
    ];
    for (endpoint, body) in &taken {
        let (quick, full) = both(*endpoint, body.as_bytes());
        let quick = quick.unwrap_or_else(|| panic!("declined {body}"));
        let full = full.unwrap_or_else(|e| panic!("{body}: {e}"));
        assert!(quick.raw().is_some() && full.raw().is_none());
        assert_eq!(quick, full, "{body}");
        let parsed: Map<String, Value> = serde_json::from_str(body).expect("JSON");
        assert_eq!(quick.body(), &parsed, "{body}");
        for kind in [NodeKind::Ollama, NodeKind::OpenAiCompat] {
            for node_model in ["node-m", "n\"m\\é"] {
                let (q, f) = (
                    upstream_request(&quick, kind, node_model),
                    upstream_request(&full, kind, node_model),
                );
                assert_eq!(q.path, f.path);
                let q: Value = serde_json::from_slice(&q.body).expect("quick upstream JSON");
                let f: Value = serde_json::from_slice(&f.body).expect("full upstream JSON");
                assert_eq!(q, f, "{body} to {kind:?}");
            }
        }
    }
    // Declined; the full decode accepts the ones marked true.
    let declined: &[(Endpoint, &str, bool)] = &[
        (
            Endpoint::ChatCompletions,
            r#"{"m\u006fdel":"m","messages":[{"role":"user"}]}"#,
            true,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"a","model":"b","messages":[{"role":"user"}]}"#,
            true,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"r\u006fle":"user"}]}"#,
            true,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user","r\u006fle":5}]}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u","content":[{"type":"text","text":"a","t\u0065xt":5}]}]}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user"}],"x":1e3}"#,
            true,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user"}],"x":1e400}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user"}],"x":"\ude00\ud83d"}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user"}],"x":"\ud83d\u0041"}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user"}],"x":"\ud83d"}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user"}],"x":"\ud800"}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user"}],"api_base":"http://x"}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user"}],"Proxy-URL":1}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[]}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"","messages":[{"role":"user"}]}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":1}]}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u","content":{}}]}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u","content":[{"type":"text"}]}]}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u"}],"stream":1}"#,
            false,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"u"}],"user":5}"#,
            false,
        ),
        (
            Endpoint::OllamaChat,
            r#"{"model":"m","messages":[{"role":"u","content":[]}]}"#,
            false,
        ),
        (
            Endpoint::OllamaChat,
            r#"{"model":"m","messages":[{"role":"u","images":[1]}]}"#,
            false,
        ),
        (Endpoint::OllamaChat, r#"{"model":"m","options":[]}"#, false),
        (Endpoint::Embeddings, r#"{"model":"m","input":[]}"#, false),
        (
            Endpoint::Embeddings,
            r#"{"model":"m","input":[1.0]}"#,
            false,
        ),
        (
            Endpoint::Embeddings,
            r#"{"model":"m","input":[4294967296]}"#,
            false,
        ),
        (
            Endpoint::Embeddings,
            r#"{"model":"m","input":["a",1]}"#,
            false,
        ),
        (
            Endpoint::OllamaEmbed,
            r#"{"model":"m","input":[[1]]}"#,
            false,
        ),
        (Endpoint::OllamaEmbeddings, r#"{"model":"m"}"#, false),
        (
            Endpoint::OllamaGenerate,
            r#"{"model":"m","images":"x"}"#,
            false,
        ),
        (Endpoint::OllamaGenerate, r#"[{"model":"m"}]"#, false),
        (Endpoint::OllamaGenerate, r#"{"model":"m"} x"#, false),
    ];
    for (endpoint, body, accepted) in declined {
        let (quick, full) = both(*endpoint, body.as_bytes());
        assert!(quick.is_none(), "took {body}");
        assert_eq!(full.is_ok(), *accepted, "{body}: {full:?}");
        assert_eq!(decode(*endpoint, body.as_bytes()), full, "{body}");
    }
    // Nesting: the quick path stops at 64 levels, the full decode at 128.
    let nested = |n: usize| {
        format!(
            r#"{{"model":"m","prompt":"p","x":{}{}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    // (The top-level object is one level.)
    assert!(
        both(Endpoint::OllamaGenerate, nested(63).as_bytes())
            .0
            .is_some()
    );
    let (quick, full) = both(Endpoint::OllamaGenerate, nested(64).as_bytes());
    assert!(quick.is_none() && full.is_ok());
}

/// The same-kind upstream body is the client's bytes with `model` and
/// `stream` edited in place, in either order, or `stream` added.
#[test]
fn the_quick_path_patches_the_clients_bytes() {
    let body = |endpoint, b: &str, kind| {
        let inb = decode(endpoint, b.as_bytes()).expect("valid");
        assert!(inb.raw().is_some(), "quick path for {b}");
        String::from_utf8(upstream_request(&inb, kind, "n\"m").body).expect("UTF-8")
    };
    use drover_core::node::NodeKind::{Ollama, OpenAiCompat};
    assert_eq!(
        body(
            Endpoint::ChatCompletions,
            r#"{ "stream": null, "model" : "m", "messages":[{"role":"u"}] }"#,
            OpenAiCompat
        ),
        r#"{ "stream": false, "model" : "n\"m", "messages":[{"role":"u"}] }"#
    );
    assert_eq!(
        body(
            Endpoint::OllamaGenerate,
            "{\"model\":\"m\",\"x\":1.50}\n",
            Ollama
        ),
        "{\"model\":\"n\\\"m\",\"x\":1.50,\"stream\":true}\n"
    );
    assert_eq!(
        body(
            Endpoint::OllamaEmbed,
            r#"{"input":"x","stream":"kept","model":"m"}"#,
            Ollama
        ),
        r#"{"input":"x","stream":"kept","model":"n\"m"}"#
    );
}
