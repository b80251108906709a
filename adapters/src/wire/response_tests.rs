//! Tests of [`translate_response`]: pass-through, both translations, and
//! invalid replies.

use drover_core::node::NodeKind::{self, Ollama, OpenAiCompat};
use serde_json::{Value, json};

use super::*;

fn inbound(endpoint: Endpoint, body: Value) -> Inbound {
    let mut inb = decode(endpoint, &serde_json::to_vec(&body).expect("JSON")).expect("valid body");
    inb.call_id = 0xabc;
    inb
}

fn chat_in(endpoint: Endpoint) -> Inbound {
    inbound(
        endpoint,
        json!({"model": "client-m", "messages": [{"role": "user", "content": "hi"}]}),
    )
}

fn translate(inb: &Inbound, kind: NodeKind, upstream: &Value) -> Value {
    let bytes = serde_json::to_vec(upstream).expect("JSON");
    let out = translate_response(inb, kind, &bytes).unwrap_or_else(|e| panic!("{upstream}: {e}"));
    serde_json::from_slice(&out).expect("replies are JSON")
}

fn invalid(inb: &Inbound, kind: NodeKind, upstream: &[u8]) -> String {
    match translate_response(inb, kind, upstream) {
        Ok(out) => panic!(
            "{} accepted: {}",
            String::from_utf8_lossy(upstream),
            String::from_utf8_lossy(&out)
        ),
        Err(e) => e.reason,
    }
}

#[test]
fn same_kind_goes_out_byte_for_byte_with_the_clients_model() {
    let inb = chat_in(Endpoint::ChatCompletions);
    let up = br#"{"id":"x","object":"chat.completion","model":"node-m","choices":[{"index":0,"message":{"role":"assistant","content":"model: \"node-m\""}}],"usage":{"total_tokens":3}}"#;
    let out = translate_response(&inb, OpenAiCompat, up).expect("valid");
    let want =
        String::from_utf8_lossy(up).replacen("\"model\":\"node-m\"", "\"model\":\"client-m\"", 1);
    assert_eq!(String::from_utf8_lossy(&out), want);
    // Already the client's name: untouched.
    let up = br#"{"model":"client-m","choices":[{}],"extra":[1,2]}"#;
    assert_eq!(
        translate_response(&inb, OpenAiCompat, up).expect("valid"),
        up
    );

    let inb = chat_in(Endpoint::OllamaChat);
    let up = br#"{"model":"node-m","created_at":"2024-05-01T12:00:00Z","message":{"role":"assistant","content":"hi"},"done":true}"#;
    let out: Value = serde_json::from_slice(&translate_response(&inb, Ollama, up).expect("valid"))
        .expect("JSON");
    assert_eq!(out["model"], "client-m");
    assert_eq!(out["message"]["content"], "hi");

    let inb = inbound(
        Endpoint::OllamaGenerate,
        json!({"model": "client-m", "prompt": "p"}),
    );
    let out = translate(
        &inb,
        Ollama,
        &json!({"model": "n", "response": "r", "done": true, "context": [1]}),
    );
    assert_eq!(
        out,
        json!({"model": "client-m", "response": "r", "done": true, "context": [1]})
    );
    let inb = inbound(
        Endpoint::Embeddings,
        json!({"model": "client-m", "input": "x"}),
    );
    let out = translate(
        &inb,
        OpenAiCompat,
        &json!({"object": "list", "model": "n", "data": []}),
    );
    assert_eq!(out["model"], "client-m");
    let inb = inbound(
        Endpoint::OllamaEmbed,
        json!({"model": "client-m", "input": "x"}),
    );
    let out = translate(&inb, Ollama, &json!({"model": "n", "embeddings": [[0.5]]}));
    assert_eq!(out, json!({"model": "client-m", "embeddings": [[0.5]]}));
    let inb = inbound(
        Endpoint::OllamaEmbeddings,
        json!({"model": "client-m", "prompt": "x"}),
    );
    let out = translate(&inb, Ollama, &json!({"embedding": [0.25, 1]}));
    assert_eq!(out, json!({"embedding": [0.25, 1]}));
}

#[test]
fn ollama_chat_becomes_a_chat_completion() {
    let inb = chat_in(Endpoint::ChatCompletions);
    let out = translate(
        &inb,
        Ollama,
        &json!({"model": "node-m", "created_at": "2024-05-01T12:34:56.5Z",
                "message": {"role": "assistant", "content": "Hello", "thinking": "hmm"},
                "done": true, "done_reason": "length", "prompt_eval_count": 5, "eval_count": 7,
                "total_duration": 123}),
    );
    assert_eq!(
        out,
        json!({"id": "chatcmpl-0000000000000abc", "object": "chat.completion", "created": 1_714_566_896,
               "model": "client-m",
               "choices": [{"index": 0, "logprobs": null, "finish_reason": "length",
                            "message": {"role": "assistant", "content": "Hello", "reasoning_content": "hmm"}}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})
    );
    let out = translate(
        &inb,
        Ollama,
        &json!({"message": {"role": "assistant", "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}, "done": true}),
    );
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}])
    );
    assert_eq!(out["created"], 0, "no created_at");
    assert_eq!(out["usage"]["total_tokens"], 0);
}

#[test]
fn chat_completion_becomes_ollama_chat_and_completion_generate() {
    let inb = chat_in(Endpoint::OllamaChat);
    let out = translate(
        &inb,
        OpenAiCompat,
        &json!({"id": "x", "object": "chat.completion", "created": 1_714_566_896, "model": "node-m",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                  "content": null, "reasoning_content": "think",
                  "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\":[1]}"}}]}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}),
    );
    assert_eq!(
        out,
        json!({"model": "client-m", "created_at": "2024-05-01T12:34:56Z",
               "message": {"role": "assistant", "content": "", "thinking": "think",
                           "tool_calls": [{"function": {"name": "f", "arguments": {"a": [1]}}}]},
               "done_reason": "stop", "done": true, "prompt_eval_count": 3, "eval_count": 4})
    );
    let inb = inbound(
        Endpoint::OllamaGenerate,
        json!({"model": "client-m", "prompt": "p"}),
    );
    let out = translate(
        &inb,
        OpenAiCompat,
        &json!({"object": "text_completion", "choices": [{"text": "answer", "finish_reason": "length"}]}),
    );
    assert_eq!(
        out,
        json!({"model": "client-m", "created_at": "1970-01-01T00:00:00Z", "response": "answer",
               "done_reason": "length", "done": true, "prompt_eval_count": 0, "eval_count": 0})
    );
}

#[test]
fn embeddings_translate_both_ways() {
    let inb = inbound(
        Endpoint::Embeddings,
        json!({"model": "client-m", "input": ["a", "b"]}),
    );
    let out = translate(
        &inb,
        Ollama,
        &json!({"model": "n", "embeddings": [[0.5, -1], [2]], "prompt_eval_count": 4}),
    );
    assert_eq!(
        out,
        json!({"object": "list", "model": "client-m",
               "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
                        {"object": "embedding", "index": 1, "embedding": [2.0]}],
               "usage": {"prompt_tokens": 4, "total_tokens": 4}})
    );
    // OpenAI SDKs ask for base64 of little-endian f32.
    let inb = inbound(
        Endpoint::Embeddings,
        json!({"model": "client-m", "input": "a", "encoding_format": "base64"}),
    );
    let out = translate(&inb, Ollama, &json!({"embeddings": [[1.0, -2.0]]}));
    // 1.0f32 = 00 00 80 3f, -2.0f32 = 00 00 00 c0.
    assert_eq!(out["data"][0]["embedding"], "AACAPwAAAMA=");

    let list = json!({"object": "list", "model": "n",
        "data": [{"object": "embedding", "index": 1, "embedding": [3]},
                 {"object": "embedding", "index": 0, "embedding": [1, 2]}],
        "usage": {"prompt_tokens": 6, "total_tokens": 6}});
    let inb = inbound(
        Endpoint::OllamaEmbed,
        json!({"model": "client-m", "input": ["x", "y"]}),
    );
    assert_eq!(
        translate(&inb, OpenAiCompat, &list),
        json!({"model": "client-m", "embeddings": [[1.0, 2.0], [3.0]], "prompt_eval_count": 6})
    );
    let inb = inbound(
        Endpoint::OllamaEmbeddings,
        json!({"model": "client-m", "prompt": "x"}),
    );
    assert_eq!(
        translate(&inb, OpenAiCompat, &list),
        json!({"embedding": [1.0, 2.0]})
    );
}

#[test]
fn invalid_replies_are_reported() {
    let oa_chat = chat_in(Endpoint::ChatCompletions);
    let ol_chat = chat_in(Endpoint::OllamaChat);
    let ol_gen = inbound(Endpoint::OllamaGenerate, json!({"model": "m"}));
    let oa_emb = inbound(Endpoint::Embeddings, json!({"model": "m", "input": "x"}));
    let ol_emb = inbound(Endpoint::OllamaEmbed, json!({"model": "m", "input": "x"}));
    let ol_legacy = inbound(
        Endpoint::OllamaEmbeddings,
        json!({"model": "m", "prompt": "x"}),
    );
    let cases: &[(&Inbound, NodeKind, &[u8])] = &[
        (&oa_chat, OpenAiCompat, b"<html>502 Bad Gateway</html>"),
        (&oa_chat, OpenAiCompat, b""),
        (&oa_chat, OpenAiCompat, br#"{"choices":[]}"#),
        (&oa_chat, OpenAiCompat, br#"{"choices":{}}"#),
        (&oa_chat, OpenAiCompat, br#"[{"choices":[{}]}]"#),
        (&oa_chat, OpenAiCompat, br#"{"choices":[{}]"#),
        (&oa_chat, Ollama, br#"{"done":true}"#),
        (&oa_chat, Ollama, br#"{"message":"hi"}"#),
        (&oa_chat, Ollama, br#"{"message":{"content":5}}"#),
        (&ol_chat, Ollama, br#"{"done":true}"#),
        (&ol_chat, OpenAiCompat, br#"{"choices":[]}"#),
        (&ol_chat, OpenAiCompat, br#"{"choices":[{"text":"x"}]}"#),
        (&ol_gen, Ollama, br#"{"response":1}"#),
        (&ol_gen, OpenAiCompat, br#"{"choices":[{"message":{}}]}"#),
        (&oa_emb, OpenAiCompat, br#"{"object":"list"}"#),
        (&oa_emb, Ollama, br#"{"embeddings":[["x"]]}"#),
        (&oa_emb, Ollama, br#"{"embedding":[1]}"#),
        (&ol_emb, Ollama, br#"{"embedding":[1]}"#),
        (&ol_emb, OpenAiCompat, br#"{"data":[{"embedding":"AAAA"}]}"#),
        (&ol_legacy, Ollama, br#"{"embeddings":[[1]]}"#),
        (&ol_legacy, OpenAiCompat, br#"{"data":[]}"#),
        // Invalid UTF-8 inside a part the pass-through check skips.
        (&oa_chat, OpenAiCompat, b"{\"choices\":[{\"x\":\"\xff\"}]}"),
        (&ol_emb, Ollama, b"{\"embeddings\":[],\"x\":\"\xc3\"}"),
    ];
    for (inb, kind, up) in cases {
        let reason = invalid(inb, *kind, up);
        assert!(!reason.is_empty());
    }
    // An error object in a 200 says so.
    assert_eq!(
        invalid(&ol_chat, Ollama, br#"{"error":"model 'x' not found"}"#),
        "upstream error: model 'x' not found"
    );
    assert_eq!(
        invalid(
            &oa_chat,
            OpenAiCompat,
            br#"{"error":{"message":"overloaded","type":"server_error"}}"#
        ),
        "upstream error: overloaded"
    );
    assert_eq!(
        invalid(
            &oa_chat,
            Ollama,
            br#"{"error":"boom","message":{"content":"x"}}"#
        ),
        "upstream error: boom"
    );
}
