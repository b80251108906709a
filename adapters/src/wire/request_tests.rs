//! Tests of [`upstream_request`]: every endpoint against both node kinds.

use drover_core::node::NodeKind::{Ollama, OpenAiCompat};
use serde_json::{Value, json};

use super::*;

fn inbound(endpoint: Endpoint, body: Value) -> Inbound {
    decode(endpoint, &serde_json::to_vec(&body).expect("test JSON")).expect("valid test body")
}

fn up(inb: &Inbound, kind: drover_core::node::NodeKind) -> (&'static str, Value) {
    let out = upstream_request(inb, kind, "node-model");
    let body = serde_json::from_slice(&out.body).expect("upstream bodies are JSON");
    (out.path, body)
}

#[test]
fn same_kind_passes_through_with_model_and_stream_replaced() {
    let cases = [
        (
            Endpoint::ChatCompletions,
            OpenAiCompat,
            "/v1/chat/completions",
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "x": {"y": [1]}, "max_tokens": 5}),
        ),
        (
            Endpoint::OllamaChat,
            Ollama,
            "/api/chat",
            json!({"model": "m", "messages": [], "options": {"num_ctx": 8192}, "keep_alive": "5m"}),
        ),
        (
            Endpoint::OllamaGenerate,
            Ollama,
            "/api/generate",
            json!({"model": "m", "prompt": "p", "raw": true, "stream": false}),
        ),
    ];
    for (endpoint, kind, path, body) in cases {
        let inb = inbound(endpoint, body.clone());
        let (p, got) = up(&inb, kind);
        assert_eq!(p, path);
        let mut want = body.as_object().cloned().expect("object");
        want.insert("model".into(), "node-model".into());
        want.insert("stream".into(), inb.stream.into());
        assert_eq!(got, Value::Object(want), "{endpoint:?}");
    }
    // Ollama's default (stream) is made explicit.
    let inb = inbound(Endpoint::OllamaChat, json!({"model": "m"}));
    assert_eq!(up(&inb, Ollama).1["stream"], true);
    // Embeddings get no `stream` field.
    for (endpoint, kind, path, body) in [
        (
            Endpoint::Embeddings,
            OpenAiCompat,
            "/v1/embeddings",
            json!({"model": "m", "input": [[1, 2]], "encoding_format": "base64"}),
        ),
        (
            Endpoint::OllamaEmbed,
            Ollama,
            "/api/embed",
            json!({"model": "m", "input": "x", "truncate": false}),
        ),
        (
            Endpoint::OllamaEmbeddings,
            Ollama,
            "/api/embeddings",
            json!({"model": "m", "prompt": "x"}),
        ),
    ] {
        let inb = inbound(endpoint, body.clone());
        let (p, got) = up(&inb, kind);
        assert_eq!(p, path);
        let mut want = body;
        want["model"] = "node-model".into();
        assert_eq!(got, want);
    }
}

#[test]
fn openai_chat_to_ollama_moves_sampling_into_options() {
    let inb = inbound(
        Endpoint::ChatCompletions,
        json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true},
            "max_tokens": 10, "max_completion_tokens": 20, "temperature": 0.5, "top_p": 0.9,
            "seed": 7, "stop": "END", "presence_penalty": 0.1, "frequency_penalty": 0.2,
            "response_format": {"type": "json_object"}, "tools": [{"type": "function"}],
            "vendor_thing": 1,
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0"}},
                    {"type": "image_url", "image_url": {"url": "https://example.invalid/x.png"}},
                    {"type": "text", "text": "here"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "not json"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ]
        }),
    );
    let (path, got) = up(&inb, Ollama);
    assert_eq!(path, "/api/chat");
    assert_eq!(got["model"], "node-model");
    assert_eq!(got["stream"], true);
    assert_eq!(
        got["options"],
        json!({"num_predict": 20, "temperature": 0.5, "top_p": 0.9, "seed": 7, "stop": ["END"],
               "presence_penalty": 0.1, "frequency_penalty": 0.2})
    );
    assert_eq!(got["format"], "json");
    assert_eq!(got["tools"], json!([{"type": "function"}]));
    assert_eq!(got["vendor_thing"], 1);
    for gone in [
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "stop",
        "response_format",
        "stream_options",
    ] {
        assert!(got.get(gone).is_none(), "{gone} left at the top level");
    }
    let m = &got["messages"];
    assert_eq!(m[0], json!({"role": "system", "content": "s"}));
    assert_eq!(
        m[1],
        json!({"role": "user", "content": "look\nhere", "images": ["iVBORw0"]})
    );
    assert_eq!(m[2]["content"], "");
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"],
        json!({"a": 1})
    );
    assert_eq!(m[2]["tool_calls"][1]["function"]["arguments"], "not json");
    assert_eq!(m[3]["content"], "42");

    // Non-streamed must say so: Ollama streams by default.
    let inb = inbound(
        Endpoint::ChatCompletions,
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3,
               "stop": ["a", "b"],
               "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}}),
    );
    let (_, got) = up(&inb, Ollama);
    assert_eq!(got["stream"], false);
    assert_eq!(
        got["options"],
        json!({"num_predict": 3, "stop": ["a", "b"]})
    );
    assert_eq!(got["format"], json!({"type": "object"}));
}

#[test]
fn ollama_chat_to_openai_lifts_options() {
    let inb = inbound(
        Endpoint::OllamaChat,
        json!({
            "model": "m", "keep_alive": "5m", "format": "json", "think": true,
            "options": {"num_predict": 50, "temperature": 0.2, "seed": 1, "stop": ["x"], "num_ctx": 4096, "top_k": 40},
            "messages": [
                {"role": "user", "content": "what is this", "images": ["iVBORxx", "/9j/yy"]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "f", "arguments": {"a": 1}}},
                    {"function": {"name": "g", "arguments": {}}}]},
                {"role": "tool", "tool_name": "g", "content": "G"},
                {"role": "tool", "content": "F"}
            ]
        }),
    );
    let (path, got) = up(&inb, OpenAiCompat);
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(got["stream"], true, "Ollama's default");
    assert_eq!(got["max_tokens"], 50);
    assert_eq!(got["temperature"], 0.2);
    assert_eq!(got["seed"], 1);
    assert_eq!(got["stop"], json!(["x"]));
    assert_eq!(got["response_format"], json!({"type": "json_object"}));
    assert_eq!(got["think"], true, "unknown fields pass");
    for gone in ["options", "keep_alive", "format", "num_ctx", "top_k"] {
        assert!(got.get(gone).is_none(), "{gone}");
    }
    let m = &got["messages"];
    assert_eq!(
        m[0]["content"],
        json!([{"type": "text", "text": "what is this"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORxx"}},
               {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/yy"}}])
    );
    assert!(m[0].get("images").is_none());
    let calls = &m[1]["tool_calls"];
    assert_eq!(
        calls[0],
        json!({"id": "call_1_0", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}})
    );
    assert_eq!(calls[1]["function"]["arguments"], "{}");
    assert_eq!(m[2]["tool_call_id"], "call_1_1", "matched by tool_name");
    assert!(m[2].get("tool_name").is_none());
    assert_eq!(m[3]["tool_call_id"], "call_1_0", "the remaining call");

    let inb = inbound(
        Endpoint::OllamaChat,
        json!({"model": "m", "stream": false, "format": {"type": "object"}}),
    );
    let (_, got) = up(&inb, OpenAiCompat);
    assert_eq!(got["stream"], false);
    assert_eq!(got["messages"], json!([]));
    assert_eq!(
        got["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}})
    );
}

#[test]
fn generate_to_openai_completions() {
    let inb = inbound(
        Endpoint::OllamaGenerate,
        json!({"model": "m", "system": "Be brief.", "prompt": "Why?", "suffix": "END",
               "options": {"num_predict": 9, "top_p": 0.5}, "context": [1, 2], "raw": false,
               "template": "t", "images": [], "keep_alive": 0, "format": "json", "extra": "kept"}),
    );
    let (path, got) = up(&inb, OpenAiCompat);
    assert_eq!(path, "/v1/completions");
    assert_eq!(
        got,
        json!({"model": "node-model", "stream": true, "prompt": "Be brief.\n\nWhy?", "suffix": "END",
               "max_tokens": 9, "top_p": 0.5, "extra": "kept"})
    );
    let inb = inbound(
        Endpoint::OllamaGenerate,
        json!({"model": "m", "stream": false}),
    );
    assert_eq!(
        up(&inb, OpenAiCompat).1,
        json!({"model": "node-model", "stream": false, "prompt": ""})
    );
}

#[test]
fn embeddings_cross_both_ways() {
    let inb = inbound(
        Endpoint::Embeddings,
        json!({"model": "m", "input": ["a", "b"], "dimensions": 8, "encoding_format": "base64", "user": "u"}),
    );
    assert_eq!(
        up(&inb, Ollama),
        (
            "/api/embed",
            json!({"model": "node-model", "input": ["a", "b"], "dimensions": 8})
        )
    );
    let inb = inbound(
        Endpoint::OllamaEmbed,
        json!({"model": "m", "input": "a", "truncate": true, "keep_alive": "1m", "options": {}, "dimensions": 4}),
    );
    assert_eq!(
        up(&inb, OpenAiCompat),
        (
            "/v1/embeddings",
            json!({"model": "node-model", "input": "a", "encoding_format": "float", "dimensions": 4})
        )
    );
    let inb = inbound(
        Endpoint::OllamaEmbeddings,
        json!({"model": "m", "prompt": "p", "options": {}}),
    );
    assert_eq!(
        up(&inb, OpenAiCompat),
        (
            "/v1/embeddings",
            json!({"model": "node-model", "input": "p", "encoding_format": "float"})
        )
    );
}

#[test]
fn node_model_is_escaped() {
    let inb = inbound(
        Endpoint::OllamaEmbeddings,
        json!({"model": "m", "prompt": "p"}),
    );
    let out = upstream_request(&inb, Ollama, "we\"ird\\name");
    let v: Value = serde_json::from_slice(&out.body).expect("JSON");
    assert_eq!(v["model"], "we\"ird\\name");
}

/// Found by the `decode` fuzz target: without serde_json's `float_roundtrip`
/// feature, a number in a field drover passes through could reach the
/// model server changed in its last digit (serde_json's fast float parser
/// is not correctly rounded: `3.333333333333533e75` became
/// `3.3333333333335328e75`, the next double).
#[test]
fn numbers_in_passed_through_fields_reach_the_upstream_exactly() {
    let literals = [
        "3333333333333533333333333333333333333333333333333333333333333333333333333330",
        "3.333333333333533e75",
        "3.3333333333335328e75",
        "0.1",
        "0.7",
        "1e-7",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
    ];
    for lit in literals {
        let body = format!(r#"{{"model":"m","prompt":"p","x":{lit}}}"#);
        let inb = decode(Endpoint::OllamaGenerate, body.as_bytes()).expect("valid");
        for kind in [Ollama, OpenAiCompat] {
            let out = upstream_request(&inb, kind, "m");
            let text = String::from_utf8(out.body).expect("JSON is UTF-8");
            let at = text.find("\"x\":").expect("x is passed through") + 4;
            let sent: String = text[at..]
                .chars()
                .take_while(|c| !matches!(c, ',' | '}'))
                .collect();
            // Rust's own parser is correctly rounded.
            let want: f64 = lit.parse().expect("a number");
            let got: f64 = sent.parse().expect("a number");
            assert_eq!(got, want, "{lit} went to a {kind:?} node as {sent}");
        }
    }
}
