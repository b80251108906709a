//! Tests of [`StreamTranslator`]: every mode, split at every byte position,
//! and the unhappy paths.

use drover_core::node::NodeKind::{self, Ollama, OpenAiCompat};
use serde_json::{Value, json};

use super::*;

fn inbound(endpoint: Endpoint, extra: Value) -> Inbound {
    let mut body = match endpoint {
        Endpoint::OllamaGenerate => json!({"model": "client-m", "prompt": "p"}),
        _ => {
            json!({"model": "client-m", "messages": [{"role": "user", "content": "hi"}], "stream": true})
        }
    };
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let mut inb = decode(endpoint, &serde_json::to_vec(&body).expect("JSON")).expect("valid");
    inb.call_id = 1;
    inb
}

type Run = (Vec<u8>, Result<(), InvalidReply>);

fn drive(inb: &Inbound, kind: NodeKind, chunks: &[&[u8]]) -> Run {
    let mut t = StreamTranslator::with_max_line(inb, kind, 4096);
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = t.push(c, &mut out) {
            return (out, Err(e));
        }
    }
    let r = t.finish(&mut out);
    (out, r)
}

/// Runs `input` whole, split at every position and byte by byte; all runs
/// must give the same bytes and result.
fn all_splits(inb: &Inbound, kind: NodeKind, input: &[u8]) -> Run {
    let whole = drive(inb, kind, &[input]);
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(drive(inb, kind, &[a, b]), whole, "split at {i}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(drive(inb, kind, &bytes), whole, "byte by byte");
    whole
}

fn sse_events(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).expect("UTF-8");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    text.split("\n\n")
        .filter(|e| !e.is_empty() && *e != "data: [DONE]" && !e.starts_with(':'))
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event {e:?}"));
            serde_json::from_str(data).expect("event JSON")
        })
        .collect()
}

fn lines(out: &[u8]) -> Vec<Value> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("line JSON"))
        .collect()
}

const OPENAI_STREAM: &str = concat!(
    ": ping\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1714566896,\"model\":\"node-m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1714566896,\"model\":\"node-m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\r\n\r\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1714566896,\"model\":\"node-m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1714566896,\"model\":\"node-m\",\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5}}\n\n",
    "data: [DONE]\n\n",
);

const OLLAMA_STREAM: &str = concat!(
    "{\"model\":\"node-m\",\"created_at\":\"2024-05-01T12:34:56.1Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":false}\n",
    "{\"model\":\"node-m\",\"created_at\":\"2024-05-01T12:34:56.2Z\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\r\n",
    "{\"model\":\"node-m\",\"created_at\":\"2024-05-01T12:34:56.3Z\",\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},\"done\":false}\n",
    "{\"model\":\"node-m\",\"created_at\":\"2024-05-01T12:34:56.4Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":2,\"eval_count\":3}\n",
);

#[test]
fn sse_passes_through_with_the_clients_model() {
    let inb = inbound(Endpoint::ChatCompletions, json!({}));
    let (out, r) = all_splits(&inb, OpenAiCompat, OPENAI_STREAM.as_bytes());
    assert_eq!(r, Ok(()));
    let want = OPENAI_STREAM
        .replace("\"node-m\"", "\"client-m\"")
        .replace("\r\n\r\n", "\n\n");
    assert_eq!(String::from_utf8_lossy(&out), want);
    // With the client's name already there, the bytes go out as received.
    let same = OPENAI_STREAM.replace("node-m", "client-m");
    let (out, r) = drive(&inb, OpenAiCompat, &[same.as_bytes()]);
    assert_eq!(
        (String::from_utf8_lossy(&out).as_ref(), r),
        (same.as_str(), Ok(()))
    );
}

#[test]
fn ndjson_passes_through_with_the_clients_model() {
    let inb = inbound(Endpoint::OllamaChat, json!({}));
    let (out, r) = all_splits(&inb, Ollama, OLLAMA_STREAM.as_bytes());
    assert_eq!(r, Ok(()));
    let want = OLLAMA_STREAM
        .replace("\"node-m\"", "\"client-m\"")
        .replace("\r\n", "\n");
    assert_eq!(String::from_utf8_lossy(&out), want);
    let inb = inbound(Endpoint::OllamaGenerate, json!({}));
    let gen_stream = "{\"model\":\"n\",\"response\":\"a\",\"done\":false}\n{\"model\":\"n\",\"response\":\"\",\"done\":true}";
    let (out, r) = all_splits(&inb, Ollama, gen_stream.as_bytes());
    assert_eq!(r, Ok(()), "the last line may lack its newline");
    assert_eq!(
        lines(&out)[1],
        json!({"model": "client-m", "response": "", "done": true})
    );
}

#[test]
fn first_token_and_end_are_detected_where_they_happen() {
    // Progress after each event or line, fed one at a time.
    type Case<'a> = (Endpoint, NodeKind, Vec<&'a str>, Vec<(bool, bool)>);
    let cases: [Case<'_>; 4] = [
        (
            Endpoint::ChatCompletions,
            OpenAiCompat,
            OPENAI_STREAM.split_inclusive("\n\n").collect(),
            // The `\r\n\r\n` event and the next one come as one part.
            vec![
                (false, false),
                (false, false),
                (true, false),
                (true, false),
                (true, true),
            ],
        ),
        (
            Endpoint::OllamaChat,
            OpenAiCompat,
            OPENAI_STREAM.split_inclusive("\n\n").collect(),
            // The `\r\n\r\n` event and the next one come as one part.
            vec![
                (false, false),
                (false, false),
                (true, false),
                (true, false),
                (true, true),
            ],
        ),
        (
            Endpoint::OllamaChat,
            Ollama,
            OLLAMA_STREAM.split_inclusive('\n').collect(),
            vec![(false, false), (true, false), (true, false), (true, true)],
        ),
        (
            Endpoint::ChatCompletions,
            Ollama,
            OLLAMA_STREAM.split_inclusive('\n').collect(),
            vec![(false, false), (true, false), (true, false), (true, true)],
        ),
    ];
    for (endpoint, kind, parts, want) in cases {
        let inb = inbound(endpoint, json!({}));
        let mut t = StreamTranslator::new(&inb, kind);
        let mut out = Vec::new();
        let got: Vec<(bool, bool)> = parts
            .iter()
            .map(|p| {
                let pr = t.push(p.as_bytes(), &mut out).expect("valid stream");
                (pr.first_token, pr.done)
            })
            .collect();
        assert_eq!(got, want, "{endpoint:?} from {kind:?}");
        assert_eq!(
            t.progress(),
            Progress {
                first_token: true,
                done: true
            }
        );
    }
}

#[test]
fn reasoning_and_tool_calls_count_as_tokens_roles_do_not() {
    let inb = inbound(Endpoint::ChatCompletions, json!({}));
    let token = |data: &str| {
        let mut t = StreamTranslator::new(&inb, OpenAiCompat);
        let mut out = Vec::new();
        t.push(format!("data: {data}\n\n").as_bytes(), &mut out)
            .expect("valid")
            .first_token
    };
    assert!(!token(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#));
    assert!(!token(r#"{"choices":[{"delta":{"content":null}}]}"#));
    assert!(!token(r#"{"choices":[]}"#));
    assert!(token(
        r#"{"choices":[{"delta":{"reasoning_content":"h"}}]}"#
    ));
    assert!(token(r#"{"choices":[{"delta":{"reasoning":"h"}}]}"#));
    assert!(token(
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}"#
    ));
    assert!(!token(r#"{"choices":[{"delta":{"tool_calls":[]}}]}"#));
    let inb = inbound(Endpoint::OllamaGenerate, json!({}));
    let token = |line: &str| {
        let mut t = StreamTranslator::new(&inb, Ollama);
        let mut out = Vec::new();
        t.push(format!("{line}\n").as_bytes(), &mut out)
            .expect("valid")
            .first_token
    };
    assert!(!token(r#"{"response":"","done":false}"#));
    assert!(token(r#"{"response":"","thinking":"x"}"#));
    assert!(token(
        r#"{"message":{"content":"","tool_calls":[{"function":{"name":"f"}}]}}"#
    ));
    assert!(token(r#"{"message":{"thinking":"x"}}"#));
}

#[test]
fn ollama_chat_becomes_openai_chunks() {
    let inb = inbound(
        Endpoint::ChatCompletions,
        json!({"stream_options": {"include_usage": true}}),
    );
    let (out, r) = all_splits(&inb, Ollama, OLLAMA_STREAM.as_bytes());
    assert_eq!(r, Ok(()));
    let events = sse_events(&out);
    assert_eq!(events.len(), 4, "{events:#?}");
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-0000000000000001", "object": "chat.completion.chunk", "created": 1_714_566_896,
               "model": "client-m", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    assert_eq!(
        events[0],
        chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null)
    );
    assert_eq!(events[1], chunk(json!({"content": "lo"}), Value::Null));
    assert_eq!(events[2], chunk(json!({}), json!("stop")));
    assert_eq!(events[3]["choices"], json!([]));
    assert_eq!(
        events[3]["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5})
    );
    // Without include_usage, no usage chunk; tool calls and thinking translate.
    let inb = inbound(Endpoint::ChatCompletions, json!({}));
    let stream = concat!(
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hmm\"},\"done\":false}\n",
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1}}}]},\"done\":false}\n",
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\"}\n",
    );
    let (out, r) = all_splits(&inb, Ollama, stream.as_bytes());
    assert_eq!(r, Ok(()));
    let events = sse_events(&out);
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[0]["choices"][0]["delta"],
        json!({"role": "assistant", "reasoning_content": "hmm"})
    );
    assert_eq!(
        events[1]["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}])
    );
    assert_eq!(events[2]["choices"][0]["finish_reason"], "tool_calls");
    // A stream with no token at all still ends well-formed.
    let (out, r) = all_splits(
        &inb,
        Ollama,
        b"{\"message\":{\"content\":\"\"},\"done\":true}\n",
    );
    assert_eq!(r, Ok(()));
    assert_eq!(
        sse_events(&out)[0]["choices"][0]["delta"],
        json!({"role": "assistant"})
    );
}

#[test]
fn openai_chunks_become_ollama_chat_lines() {
    let inb = inbound(Endpoint::OllamaChat, json!({}));
    let (out, r) = all_splits(&inb, OpenAiCompat, OPENAI_STREAM.as_bytes());
    assert_eq!(r, Ok(()));
    let at = "2024-05-01T12:34:56Z";
    assert_eq!(
        lines(&out),
        vec![
            json!({"model": "client-m", "created_at": at, "message": {"role": "assistant", "content": "Hel"}, "done": false}),
            json!({"model": "client-m", "created_at": at, "message": {"role": "assistant", "content": "lo"}, "done": false}),
            json!({"model": "client-m", "created_at": at, "message": {"role": "assistant", "content": ""},
                   "done": true, "done_reason": "stop", "prompt_eval_count": 2, "eval_count": 3}),
        ]
    );
    // Tool call arguments streamed in pieces come out whole, once.
    let stream = concat!(
        "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"r\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c0\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"ci\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"name\":\"other\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\":\\\"Oslo\\\"}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    let (out, r) = all_splits(&inb, OpenAiCompat, stream.as_bytes());
    assert_eq!(r, Ok(()));
    let got = lines(&out);
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0]["message"],
        json!({"role": "assistant", "content": "", "thinking": "r"})
    );
    assert_eq!(
        got[1]["message"]["tool_calls"],
        json!([{"function": {"name": "get", "arguments": {"city": "Oslo"}}},
               {"function": {"name": "other", "arguments": {}}}])
    );
    assert_eq!(got[2]["done_reason"], "length");
    assert_eq!(got[2]["done"], true);
}

#[test]
fn openai_completions_become_ollama_generate_lines() {
    let inb = inbound(Endpoint::OllamaGenerate, json!({}));
    let stream = concat!(
        "data: {\"object\":\"text_completion\",\"created\":0,\"choices\":[{\"text\":\"Hi\",\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n",
        "data: [DONE]\n\n",
    );
    let (out, r) = all_splits(&inb, OpenAiCompat, stream.as_bytes());
    assert_eq!(r, Ok(()));
    let at = "1970-01-01T00:00:00Z";
    assert_eq!(
        lines(&out),
        vec![
            json!({"model": "client-m", "created_at": at, "response": "Hi", "done": false}),
            json!({"model": "client-m", "created_at": at, "response": "", "done": true,
                   "done_reason": "stop", "prompt_eval_count": 1, "eval_count": 1}),
        ]
    );
}

#[test]
fn missing_end_marker_is_an_invalid_reply() {
    let cut = &OPENAI_STREAM[..OPENAI_STREAM.len() - "data: [DONE]\n\n".len()];
    for endpoint in [Endpoint::ChatCompletions, Endpoint::OllamaChat] {
        let inb = inbound(endpoint, json!({}));
        let (out, r) = all_splits(&inb, OpenAiCompat, cut.as_bytes());
        assert!(r.is_err(), "{endpoint:?}");
        assert!(!out.is_empty(), "the complete events went out");
    }
    let cut = &OLLAMA_STREAM[..OLLAMA_STREAM.len() - 20];
    for endpoint in [Endpoint::ChatCompletions, Endpoint::OllamaChat] {
        let inb = inbound(endpoint, json!({}));
        let (out, r) = all_splits(&inb, Ollama, cut.as_bytes());
        assert!(r.is_err(), "{endpoint:?}");
        if endpoint == Endpoint::OllamaChat {
            assert!(out.ends_with(b"\n"), "only complete lines went out");
        }
    }
    let inb = inbound(Endpoint::OllamaChat, json!({}));
    assert!(all_splits(&inb, Ollama, b"").1.is_err());
    assert!(all_splits(&inb, OpenAiCompat, b"").1.is_err());
}

#[test]
fn garbage_error_objects_and_overlong_lines_are_invalid() {
    let chat = inbound(Endpoint::ChatCompletions, json!({}));
    let ollama = inbound(Endpoint::OllamaChat, json!({}));
    let cases: &[(&Inbound, NodeKind, &str, &str)] = &[
        (
            &chat,
            OpenAiCompat,
            "<html><body>502</body></html>\n",
            "not a server-sent event stream",
        ),
        (
            &chat,
            OpenAiCompat,
            "{\"error\":\"x\"}\n",
            "not a server-sent event stream",
        ),
        (
            &chat,
            OpenAiCompat,
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {not json\n\n",
            "bad event",
        ),
        (&chat, OpenAiCompat, "data: 42\n\n", "not a JSON object"),
        (
            &chat,
            OpenAiCompat,
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [true]\n\n",
            "not a JSON object",
        ),
        (
            &chat,
            OpenAiCompat,
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[]\n\n",
            "bad event",
        ),
        (
            &chat,
            OpenAiCompat,
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":\"late\"}\n\n",
            "upstream error: late",
        ),
        (
            &ollama,
            Ollama,
            "{\"message\":{\"content\":\"a\"}}\n{\"done\":\"yes\"}\n",
            "bad line",
        ),
        (
            &ollama,
            Ollama,
            "{\"message\":{\"content\":\"a\"}}\n{\"error\":\"late\"}\n",
            "upstream error: late",
        ),
        (
            &chat,
            OpenAiCompat,
            "data: {\"error\":{\"message\":\"overloaded\"}}\n\n",
            "upstream error: overloaded",
        ),
        (
            &ollama,
            OpenAiCompat,
            "data: {\"choices\":{}}\n\n",
            "bad event",
        ),
        (
            &ollama,
            Ollama,
            "{\"message\":{\"content\":\"a\"}}\nnot json\n",
            "not a JSON object",
        ),
        (
            &ollama,
            Ollama,
            "{\"message\":{\"content\":\"a\"}}\n{not json\n",
            "bad line",
        ),
        (&ollama, Ollama, "[1,2]\n", "not a JSON object"),
        (
            &ollama,
            Ollama,
            "{\"error\":\"out of memory\"}\n",
            "upstream error: out of memory",
        ),
        (
            &chat,
            Ollama,
            "{\"error\":\"boom\"}\n",
            "upstream error: boom",
        ),
        (
            &chat,
            Ollama,
            "{\"done\":false}\n",
            "stream line without `message`",
        ),
    ];
    for (inb, kind, input, want) in cases {
        let (_, r) = all_splits(inb, *kind, input.as_bytes());
        let reason = r.expect_err(input).reason;
        assert!(reason.contains(want), "{input:?}: {reason}");
    }
    let (_, r) = all_splits(
        &chat,
        OpenAiCompat,
        b"data: {\"choices\":[],\"x\":\"\xff\"}\n\n",
    );
    assert!(r.expect_err("not UTF-8").reason.contains("UTF-8"));
    let (_, r) = all_splits(&ollama, Ollama, b"{\"x\":\"\xe2\x82\"}\n");
    assert!(r.expect_err("not UTF-8").reason.contains("UTF-8"));
    let long = format!("{{\"message\":{{\"content\":\"{}\"}}}}\n", "x".repeat(5000));
    let (out, r) = drive(&ollama, Ollama, &[long.as_bytes()]);
    assert!(out.is_empty());
    assert!(r.expect_err("too long").reason.contains("longer than 4096"));
    let long = format!("data: {}\n\n", "x".repeat(5000));
    let (_, r) = drive(&chat, OpenAiCompat, &[long.as_bytes()]);
    assert!(r.is_err());
    // Past the first token, where one scan replaces the parse: bad bytes
    // and bad JSON are still refused, with the parse's reasons.
    let sse_token = &b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"[..];
    let ndjson_token = &b"{\"message\":{\"content\":\"a\"}}\n"[..];
    // (request, node kind, first-token bytes, late bytes, expected reason)
    type Late<'a> = (&'a Inbound, NodeKind, &'a [u8], &'a [u8], &'a str);
    let late_cases: [Late<'_>; 6] = [
        (
            &chat,
            OpenAiCompat,
            sse_token,
            b"data: {\"x\":\"\xff\"}\n\n",
            "UTF-8",
        ),
        (
            &chat,
            OpenAiCompat,
            sse_token,
            b"data: {\"x\":01}\n\n",
            "bad event",
        ),
        (
            &chat,
            OpenAiCompat,
            sse_token,
            b"data: {\"done\":\"yes\"}\n\n",
            "bad event",
        ),
        (
            &ollama,
            Ollama,
            ndjson_token,
            b"{\"x\":\"\xe2\x82\"}\n",
            "UTF-8",
        ),
        (&ollama, Ollama, ndjson_token, b"{\"x\":[1,]}\n", "bad line"),
        (&ollama, Ollama, ndjson_token, b"{\"done\":1}\n", "bad line"),
    ];
    for (inb, kind, token, late, want) in late_cases {
        let (out, r) = all_splits(inb, kind, &[token, late].concat());
        assert!(r.expect_err(want).reason.contains(want));
        assert_eq!(out, token, "only the first token went out");
    }
}

#[test]
fn bytes_after_the_end_are_ignored() {
    let inb = inbound(Endpoint::ChatCompletions, json!({}));
    let input = format!("{OPENAI_STREAM}data: garbage\n\n");
    let (out, r) = all_splits(&inb, OpenAiCompat, input.as_bytes());
    assert_eq!(r, Ok(()));
    assert!(out.ends_with(b"data: [DONE]\n\n"));
    let inb = inbound(Endpoint::OllamaChat, json!({}));
    let input = format!("{OLLAMA_STREAM}garbage\n");
    assert_eq!(all_splits(&inb, Ollama, input.as_bytes()).1, Ok(()));
}

#[test]
fn embeddings_are_not_streamed() {
    let inb = decode(Endpoint::Embeddings, br#"{"model":"m","input":"x"}"#).expect("valid");
    let mut t = StreamTranslator::new(&inb, OpenAiCompat);
    let mut out = Vec::new();
    assert!(t.push(b"data: [DONE]\n\n", &mut out).is_err());
    assert!(t.finish(&mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn error_events_are_well_formed_terminals() {
    let inb = inbound(Endpoint::ChatCompletions, json!({}));
    let t = StreamTranslator::new(&inb, Ollama);
    assert_eq!(t.content_type(), "text/event-stream");
    let mut out = Vec::new();
    t.error_event("node \"a\" broke", &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "data: {\"error\":{\"message\":\"node \\\"a\\\" broke\",\"type\":\"upstream_error\"}}\n\ndata: [DONE]\n\n"
    );
    let inb = inbound(Endpoint::OllamaGenerate, json!({}));
    let t = StreamTranslator::new(&inb, OpenAiCompat);
    assert_eq!(t.content_type(), "application/x-ndjson");
    let mut out = Vec::new();
    t.error_event("broke", &mut out);
    assert_eq!(out, b"{\"error\":\"broke\"}\n");
    // Mid-stream: complete events, then the error, parse cleanly.
    let inb = inbound(Endpoint::ChatCompletions, json!({}));
    let mut t = StreamTranslator::new(&inb, OpenAiCompat);
    let mut out = Vec::new();
    let half = &OPENAI_STREAM[..OPENAI_STREAM.len() / 2];
    t.push(half.as_bytes(), &mut out).expect("valid so far");
    assert!(t.finish(&mut out).is_err());
    t.error_event("upstream broke", &mut out);
    let events = sse_events(&out);
    assert_eq!(
        events.last().expect("error event")["error"]["type"],
        "upstream_error"
    );
}

/// Found by the `sse` fuzz target: an upstream event with a key drover
/// does not read, holding a number beyond `f64` (`17e4566896`), is valid
/// JSON and goes to the client as it came, like any passed-through event:
/// drover checks the syntax of what it does not read, not ranges
/// (`serde_json::Value` would refuse it, a browser would read `Infinity`).
/// A field drover reads (`created`) must fit its type.
#[test]
fn a_number_beyond_f64_in_an_unread_key_is_passed_through_unchanged() {
    let inb = inbound(Endpoint::ChatCompletions, json!({}));
    let event = |key: &str| {
        format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"{key}\":17e4566896,\
             \"model\":\"client-m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"Hel\"}},\
             \"finish_reason\":null}}]}}\n\ndata: [DONE]\n\n"
        )
    };
    let input = event("x_created");
    let (out, r) = all_splits(&inb, OpenAiCompat, input.as_bytes());
    assert_eq!(r, Ok(()));
    assert_eq!(String::from_utf8_lossy(&out), input);
    let data = input.lines().next().expect("a line")["data: ".len()..].to_owned();
    assert!(serde_json::from_str::<Value>(&data).is_err());
    let (_, r) = drive(&inb, OpenAiCompat, &[event("created").as_bytes()]);
    assert!(r.is_err(), "a `created` beyond u64 is not a valid reply");
}
