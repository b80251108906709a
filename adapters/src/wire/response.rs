//! Non-streamed replies: the upstream body in the client's shape.
//!
//! Same kind: the body is checked (valid JSON, no `error` field, the field
//! the client relies on present: `choices` for chat, `message` for Ollama
//! chat, `response` for generate, `data`, `embeddings` or `embedding` for
//! embeddings) and goes out byte for byte, except that a top-level `model`
//! naming the node-local model is replaced by the client's (a scan, no
//! re-serialisation). Other kind: parsed and rebuilt:
//!
//! - Ollama chat → `chat.completion`: `message` → `choices[0].message`
//!   (`thinking` → `reasoning_content`, tool call arguments → JSON text with
//!   ids `call_<n>`), `done_reason` → `finish_reason` (`length` stays, tool
//!   calls give `tool_calls`, else `stop`), `prompt_eval_count` /
//!   `eval_count` → `usage`, `created_at` → `created`, id
//!   `chatcmpl-<call_id hex>`.
//! - `chat.completion` → Ollama chat, and `text_completion` → Ollama
//!   generate: the reverse (`finish_reason` `length` stays, else `stop`;
//!   `usage` → eval counts; `created` → `created_at`; no durations).
//! - Ollama `/api/embed` → OpenAI list: one `{object:"embedding",index,
//!   embedding}` per vector (base64 of little-endian f32 when the client set
//!   `encoding_format: "base64"`, as OpenAI's SDKs do), `usage` from
//!   `prompt_eval_count`.
//! - OpenAI list → `{model,embeddings,prompt_eval_count}` (vectors in
//!   `index` order) or, for `/api/embeddings`, `{embedding}` of the first.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use drover_core::node::NodeKind;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Endpoint, Inbound, InvalidReply, json as j};

/// Turns a non-streamed upstream body into the client's shape; an
/// [`InvalidReply`] when it is not a valid reply of the node's protocol.
pub fn translate_response(
    inb: &Inbound,
    kind: NodeKind,
    upstream: &[u8],
) -> Result<Vec<u8>, InvalidReply> {
    match (inb.endpoint, kind) {
        (Endpoint::ChatCompletions, NodeKind::OpenAiCompat) => pass::<PassChat>(
            inb,
            upstream,
            (b"choices", Shape::NonEmptyArray),
            |p| p.choices.0 > 0,
            "empty `choices`",
        ),
        (Endpoint::Embeddings, NodeKind::OpenAiCompat) => {
            pass::<PassData>(inb, upstream, (b"data", Shape::Array), |_| true, "")
        }
        (Endpoint::OllamaChat, NodeKind::Ollama) => {
            pass::<PassMessage>(inb, upstream, (b"message", Shape::Object), |_| true, "")
        }
        (Endpoint::OllamaGenerate, NodeKind::Ollama) => {
            pass::<PassResponse>(inb, upstream, (b"response", Shape::String), |_| true, "")
        }
        (Endpoint::OllamaEmbed, NodeKind::Ollama) => {
            pass::<PassEmbeddings>(inb, upstream, (b"embeddings", Shape::Array), |_| true, "")
        }
        (Endpoint::OllamaEmbeddings, NodeKind::Ollama) => {
            pass::<PassEmbedding>(inb, upstream, (b"embedding", Shape::Array), |_| true, "")
        }
        (Endpoint::ChatCompletions, NodeKind::Ollama) => ollama_chat_to_openai(inb, upstream),
        (Endpoint::OllamaChat | Endpoint::OllamaGenerate, NodeKind::OpenAiCompat) => {
            openai_to_ollama(inb, upstream)
        }
        (Endpoint::Embeddings, NodeKind::Ollama) => ollama_embed_to_openai(inb, upstream),
        (Endpoint::OllamaEmbed | Endpoint::OllamaEmbeddings, NodeKind::OpenAiCompat) => {
            openai_embed_to_ollama(inb, upstream)
        }
    }
}

/// Parses an upstream reply; when that fails, an `error` field in it (a
/// 200 carrying an error, as some servers send) names the reason.
pub(crate) fn parse<'a, T: Deserialize<'a>>(upstream: &'a [u8]) -> Result<T, InvalidReply> {
    serde_json::from_slice(upstream).map_err(|e| {
        match serde_json::from_slice::<ErrorOnly<'_>>(upstream) {
            Ok(ErrorOnly { error: Some(err) }) => {
                InvalidReply::new(format!("upstream error: {}", err.message()))
            }
            _ => InvalidReply::new(e.to_string()),
        }
    })
}

/// The JSON type a pass-through reply's required field must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Array,
    NonEmptyArray,
    Object,
    /// A string without escapes: one with escapes is left to serde, which
    /// refuses some (a lone surrogate) that the scan lets through.
    String,
}

impl Shape {
    /// Whether the valid JSON value `v` has this shape.
    fn fits(self, v: &[u8]) -> bool {
        match self {
            Shape::Array => v[0] == b'[',
            Shape::NonEmptyArray => {
                v[0] == b'[' && v[1..].trim_ascii_start().first() != Some(&b']')
            }
            Shape::Object => v[0] == b'{',
            Shape::String => v[0] == b'"' && !v.contains(&b'\\'),
        }
    }
}

/// The fast path of [`pass`]: one validating scan proves the reply a JSON
/// object in UTF-8 whose field `key` appears once, unescaped, with the
/// right `shape`. Then it yields the range of the first top-level `model`
/// when that is a string (what [`j::write_with_model`] would replace).
/// `None` sends the reply to the full parse, which accepts or refuses it
/// with its precise reason.
fn scan_pass(upstream: &[u8], key: &[u8], shape: Shape) -> Option<Option<Range<usize>>> {
    let (mut found, mut fits, mut escaped_key) = (0u32, false, false);
    let mut model: Option<Option<Range<usize>>> = None;
    j::scan_members(upstream, |k, escaped, v| {
        if escaped {
            // It might spell `key` or `model`.
            escaped_key = true;
        } else if k == key {
            found += 1;
            fits = shape.fits(&upstream[v]);
        } else if k == b"model" && model.is_none() {
            model = Some((upstream[v.start] == b'"').then_some(v));
        }
    })?;
    (!escaped_key && found == 1 && fits).then(|| model.flatten())
}

fn pass<'a, T: Deserialize<'a>>(
    inb: &Inbound,
    upstream: &'a [u8],
    (key, shape): (&[u8], Shape),
    ok: impl Fn(&T) -> bool,
    why: &str,
) -> Result<Vec<u8>, InvalidReply> {
    match scan_pass(upstream, key, shape) {
        Some(model) => {
            let mut out = Vec::with_capacity(upstream.len() + inb.model.len());
            j::write_with_model_at(upstream, model, &j::quoted(&inb.model), &mut out);
            Ok(out)
        }
        None => pass_parsed::<T>(inb, upstream, ok, why),
    }
}

/// The full path of [`pass`]: a serde parse that names what is wrong.
fn pass_parsed<'a, T: Deserialize<'a>>(
    inb: &Inbound,
    upstream: &'a [u8],
    ok: impl Fn(&T) -> bool,
    why: &str,
) -> Result<Vec<u8>, InvalidReply> {
    let reply: T = parse(upstream)?;
    // Skipped parts are not checked by the parse; the bytes go out as they are.
    if std::str::from_utf8(upstream).is_err() {
        return Err(InvalidReply::new("reply is not UTF-8"));
    }
    if !ok(&reply) {
        return Err(InvalidReply::new(why));
    }
    let mut out = Vec::with_capacity(upstream.len() + inb.model.len());
    j::write_with_model(upstream, &j::quoted(&inb.model), &mut out);
    Ok(out)
}

/// Accepts a JSON object and skips its contents (no allocation).
pub(crate) struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<AnyObject, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyObject)
            }
        }
        d.deserialize_map(V)
    }
}

/// Accepts a JSON array, skips its contents and counts them.
pub(crate) struct AnyArray(pub(crate) usize);

impl<'de> Deserialize<'de> for AnyArray {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyArray;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<AnyArray, A::Error> {
                let mut n = 0;
                while s.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(AnyArray(n))
            }
        }
        d.deserialize_seq(V)
    }
}

/// An upstream `error` field: Ollama's string or OpenAI's object.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum UpstreamError<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Object {
        #[serde(default, borrow)]
        message: Option<Cow<'a, str>>,
    },
    Other(IgnoredAny),
}

/// The [`InvalidReply`] for an `error` field an upstream sent.
pub(crate) fn upstream_error(error: &Option<UpstreamError<'_>>) -> Result<(), InvalidReply> {
    match error {
        Some(e) => Err(InvalidReply::new(format!(
            "upstream error: {}",
            e.message()
        ))),
        None => Ok(()),
    }
}

impl UpstreamError<'_> {
    pub(crate) fn message(&self) -> &str {
        match self {
            UpstreamError::Text(t) => t,
            UpstreamError::Object { message: Some(m) } => m,
            _ => "(no message)",
        }
    }
}

#[derive(Deserialize)]
struct ErrorOnly<'a> {
    #[serde(default, borrow)]
    error: Option<UpstreamError<'a>>,
}

#[derive(Deserialize)]
struct PassChat {
    choices: AnyArray,
}
#[derive(Deserialize)]
struct PassData {
    #[serde(rename = "data")]
    _data: AnyArray,
}
#[derive(Deserialize)]
struct PassMessage {
    #[serde(rename = "message")]
    _message: AnyObject,
}
#[derive(Deserialize)]
struct PassResponse<'a> {
    #[serde(rename = "response", borrow)]
    _response: Cow<'a, str>,
}
#[derive(Deserialize)]
struct PassEmbeddings {
    #[serde(rename = "embeddings")]
    _embeddings: AnyArray,
}
#[derive(Deserialize)]
struct PassEmbedding {
    #[serde(rename = "embedding")]
    _embedding: AnyArray,
}

/// An Ollama chat message (reply side).
#[derive(Deserialize, Default)]
pub(crate) struct OllamaMessage<'a> {
    #[serde(default, borrow)]
    pub(crate) content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) thinking: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) tool_calls: Option<Vec<Value>>,
}

/// An Ollama chat or generate reply (or one stream line).
#[derive(Deserialize)]
pub(crate) struct OllamaReply<'a> {
    #[serde(default, borrow)]
    pub(crate) created_at: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) message: Option<OllamaMessage<'a>>,
    #[serde(default, borrow)]
    pub(crate) response: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) thinking: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) done: bool,
    #[serde(default, borrow)]
    pub(crate) done_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub(crate) eval_count: Option<u64>,
    #[serde(default, borrow)]
    pub(crate) error: Option<UpstreamError<'a>>,
}

/// OpenAI token usage.
#[derive(Deserialize, Serialize, Clone, Copy, Default, Debug, PartialEq)]
pub(crate) struct Usage {
    #[serde(default)]
    pub(crate) prompt_tokens: u64,
    #[serde(default)]
    pub(crate) completion_tokens: u64,
    #[serde(default)]
    pub(crate) total_tokens: u64,
}

impl Usage {
    pub(crate) fn new(prompt: Option<u64>, completion: Option<u64>) -> Usage {
        let (p, c) = (prompt.unwrap_or(0), completion.unwrap_or(0));
        Usage {
            prompt_tokens: p,
            completion_tokens: c,
            total_tokens: p + c,
        }
    }
}

/// An OpenAI message or stream delta.
#[derive(Deserialize, Default)]
pub(crate) struct OpenAiMessage<'a> {
    #[serde(default, borrow)]
    pub(crate) content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) reasoning: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) tool_calls: Option<Vec<Value>>,
}

impl OpenAiMessage<'_> {
    pub(crate) fn thinking(&self) -> Option<&str> {
        self.reasoning_content
            .as_deref()
            .or(self.reasoning.as_deref())
    }
}

/// One choice of an OpenAI reply or stream chunk.
#[derive(Deserialize)]
pub(crate) struct OpenAiChoice<'a> {
    #[serde(default, borrow)]
    pub(crate) message: Option<OpenAiMessage<'a>>,
    #[serde(default, borrow)]
    pub(crate) delta: Option<OpenAiMessage<'a>>,
    #[serde(default, borrow)]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) finish_reason: Option<Cow<'a, str>>,
}

/// An OpenAI `chat.completion`, `text_completion` or stream chunk.
#[derive(Deserialize)]
pub(crate) struct OpenAiReply<'a> {
    #[serde(default)]
    pub(crate) created: Option<i64>,
    #[serde(default, borrow)]
    pub(crate) choices: Vec<OpenAiChoice<'a>>,
    #[serde(default)]
    pub(crate) usage: Option<Usage>,
    #[serde(default, borrow)]
    pub(crate) error: Option<UpstreamError<'a>>,
}

/// Ollama's `done_reason` for OpenAI's `finish_reason`.
pub(crate) fn done_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "length",
        _ => "stop",
    }
}

/// OpenAI's `finish_reason` for Ollama's `done_reason`.
pub(crate) fn finish_reason(done: Option<&str>, tool_calls: bool) -> &'static str {
    match done {
        Some("length") => "length",
        _ if tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// Ollama tool calls (arguments as objects) in OpenAI's shape (arguments as
/// JSON text, ids `call_<n>` from `first`).
pub(crate) fn tool_calls_to_openai(calls: &[Value], first: usize, stream: bool) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(n, c)| {
            let f = c.get("function");
            let name = f.and_then(|f| f.get("name")).cloned().unwrap_or_default();
            let args = match f.and_then(|f| f.get("arguments")) {
                Some(Value::String(s)) => s.clone(),
                Some(a) => a.to_string(),
                None => "{}".to_owned(),
            };
            let id = format!("call_{}", first + n);
            let function = json!({"name": name, "arguments": args});
            if stream {
                json!({"index": first + n, "id": id, "type": "function", "function": function})
            } else {
                json!({"id": id, "type": "function", "function": function})
            }
        })
        .collect()
}

/// An OpenAI tool call's `function` with JSON-text arguments in Ollama's
/// shape (arguments as an object when they parse).
pub(crate) fn tool_call_to_ollama(name: &str, arguments: &str) -> Value {
    let args = serde_json::from_str::<Value>(arguments)
        .unwrap_or_else(|_| Value::String(arguments.to_owned()));
    json!({"function": {"name": name, "arguments": args}})
}

fn created_of(created_at: Option<&str>) -> i64 {
    created_at.and_then(j::rfc3339_to_unix).unwrap_or(0)
}

fn ollama_chat_to_openai(inb: &Inbound, upstream: &[u8]) -> Result<Vec<u8>, InvalidReply> {
    let reply: OllamaReply<'_> = parse(upstream)?;
    upstream_error(&reply.error)?;
    let Some(message) = reply.message else {
        return Err(InvalidReply::new("missing `message`"));
    };
    let calls = message.tool_calls.as_deref().unwrap_or(&[]);
    let content = message.content.as_deref().unwrap_or("");
    let mut msg = json!({
        "role": "assistant",
        "content": if content.is_empty() && !calls.is_empty() { Value::Null } else { content.into() },
    });
    if let Some(t) = message.thinking.as_deref().filter(|t| !t.is_empty()) {
        msg["reasoning_content"] = t.into();
    }
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(tool_calls_to_openai(calls, 0, false));
    }
    let finish = finish_reason(reply.done_reason.as_deref(), !calls.is_empty());
    let body = json!({
        "id": j::prefixed_hex("chatcmpl-", inb.call_id),
        "object": "chat.completion",
        "created": created_of(reply.created_at.as_deref()),
        "model": inb.model,
        "choices": [{"index": 0, "message": msg, "logprobs": null, "finish_reason": finish}],
        "usage": Usage::new(reply.prompt_eval_count, reply.eval_count),
    });
    Ok(j::to_vec(&body))
}

fn openai_to_ollama(inb: &Inbound, upstream: &[u8]) -> Result<Vec<u8>, InvalidReply> {
    let reply: OpenAiReply<'_> = parse(upstream)?;
    upstream_error(&reply.error)?;
    let Some(choice) = reply.choices.into_iter().next() else {
        return Err(InvalidReply::new("empty `choices`"));
    };
    let usage = reply.usage.unwrap_or_default();
    let mut body = json!({
        "model": inb.model,
        "created_at": j::unix_to_rfc3339(reply.created.unwrap_or(0)),
    });
    if inb.endpoint == Endpoint::OllamaChat {
        let Some(message) = choice.message else {
            return Err(InvalidReply::new("missing `choices[0].message`"));
        };
        let mut msg =
            json!({"role": "assistant", "content": message.content.as_deref().unwrap_or("")});
        if let Some(t) = message.thinking().filter(|t| !t.is_empty()) {
            msg["thinking"] = t.into();
        }
        let calls = message.tool_calls.as_deref().unwrap_or(&[]);
        if !calls.is_empty() {
            let calls = calls.iter().map(|c| {
                let f = c.get("function");
                let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
                let args = f.and_then(|f| f.get("arguments")).and_then(Value::as_str);
                tool_call_to_ollama(name.unwrap_or(""), args.unwrap_or("{}"))
            });
            msg["tool_calls"] = Value::Array(calls.collect());
        }
        body["message"] = msg;
    } else {
        let Some(text) = choice.text else {
            return Err(InvalidReply::new("missing `choices[0].text`"));
        };
        body["response"] = text.as_ref().into();
    }
    body["done_reason"] = done_reason(choice.finish_reason.as_deref()).into();
    body["done"] = true.into();
    body["prompt_eval_count"] = usage.prompt_tokens.into();
    body["eval_count"] = usage.completion_tokens.into();
    Ok(j::to_vec(&body))
}

fn ollama_embed_to_openai(inb: &Inbound, upstream: &[u8]) -> Result<Vec<u8>, InvalidReply> {
    #[derive(Deserialize)]
    struct Embed {
        embeddings: Vec<Vec<f64>>,
        #[serde(default)]
        prompt_eval_count: Option<u64>,
    }
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Vector<'a> {
        Float(&'a [f64]),
        Base64(String),
    }
    #[derive(Serialize)]
    struct Item<'a> {
        object: &'static str,
        index: usize,
        embedding: Vector<'a>,
    }
    let reply: Embed = parse(upstream)?;
    let base64 = inb.body().get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Item<'_>> = reply
        .embeddings
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect();
                let mut s = String::new();
                j::base64_into(&bytes, &mut s);
                Vector::Base64(s)
            } else {
                Vector::Float(v)
            };
            Item {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    #[derive(Serialize)]
    struct EmbedUsage {
        prompt_tokens: u64,
        total_tokens: u64,
    }
    #[derive(Serialize)]
    struct List<'a> {
        object: &'static str,
        data: Vec<Item<'a>>,
        model: &'a str,
        usage: EmbedUsage,
    }
    let n = reply.prompt_eval_count.unwrap_or(0);
    Ok(j::to_vec(&List {
        object: "list",
        data,
        model: &inb.model,
        usage: EmbedUsage {
            prompt_tokens: n,
            total_tokens: n,
        },
    }))
}

fn openai_embed_to_ollama(inb: &Inbound, upstream: &[u8]) -> Result<Vec<u8>, InvalidReply> {
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        index: Option<usize>,
        embedding: Vec<f64>,
    }
    #[derive(Deserialize)]
    struct List {
        data: Vec<Item>,
        #[serde(default)]
        usage: Option<Usage>,
    }
    let mut reply: List = parse(upstream)?;
    reply.data.sort_by_key(|item| item.index);
    if inb.endpoint == Endpoint::OllamaEmbeddings {
        let Some(first) = reply.data.first() else {
            return Err(InvalidReply::new("empty `data`"));
        };
        #[derive(Serialize)]
        struct Legacy<'a> {
            embedding: &'a [f64],
        }
        return Ok(j::to_vec(&Legacy {
            embedding: &first.embedding,
        }));
    }
    #[derive(Serialize)]
    struct Embed<'a> {
        model: &'a str,
        embeddings: Vec<&'a [f64]>,
        prompt_eval_count: u64,
    }
    Ok(j::to_vec(&Embed {
        model: &inb.model,
        embeddings: reply.data.iter().map(|i| i.embedding.as_slice()).collect(),
        prompt_eval_count: reply.usage.unwrap_or_default().prompt_tokens,
    }))
}

#[cfg(test)]
mod tests {
    use drover_core::node::NodeKind::{Ollama, OpenAiCompat};
    use serde_json::{Value, json};

    use super::*;
    use crate::wire::decode;

    fn inbound(endpoint: Endpoint, body: Value) -> Inbound {
        decode(endpoint, &serde_json::to_vec(&body).expect("JSON")).expect("valid body")
    }

    /// The pass-through scan takes a reply only where the full parse would
    /// accept it, and then writes the same bytes; what it declines, the full
    /// parse judges (and these tests see its verdict through
    /// `translate_response`).
    #[test]
    fn the_pass_through_scan_agrees_with_the_full_parse() {
        let inb = inbound(
            Endpoint::ChatCompletions,
            json!({"model": "client-m", "messages": [{"role": "user", "content": "hi"}]}),
        );
        type Verdicts = (Option<Option<Range<usize>>>, Result<Vec<u8>, InvalidReply>);
        let chat = |up: &[u8]| -> Verdicts {
            let full = pass_parsed::<PassChat>(&inb, up, |p| p.choices.0 > 0, "empty `choices`");
            (scan_pass(up, b"choices", Shape::NonEmptyArray), full)
        };
        // Taken by the scan, with the same output as the full parse.
        let taken: &[&[u8]] = &[
            br#"{"model":"node-m","choices":[{"message":{"content":"hi"}}]}"#,
            br#" { "choices" : [ 1 ] , "model" : "client-m" } "#,
            br#"{"choices":[{}],"model":5,"x":{"model":"inner"}}"#,
            br#"{"choices":[{}],"model":null,"model":"second"}"#,
            br#"{"choices":[{}],"error":{"message":"ignored as before"}}"#,
            "{\"choices\":[\"caf\u{e9} \u{1f600}\"],\"model\":\"n\\\"m\"}".as_bytes(),
            br#"{"choices":[{"x":"\ud800"}],"usage":{"total_tokens":1e400}}"#,
        ];
        for up in taken {
            let (fast, full) = chat(up);
            let model =
                fast.unwrap_or_else(|| panic!("scan declined {}", String::from_utf8_lossy(up)));
            let full = full.unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(up)));
            let mut out = Vec::new();
            j::write_with_model_at(up, model, &j::quoted(&inb.model), &mut out);
            assert_eq!(out, full, "{}", String::from_utf8_lossy(up));
            assert_eq!(
                translate_response(&inb, OpenAiCompat, up).expect("valid"),
                full
            );
        }
        // Declined by the scan: the full parse decides, accepting some.
        let declined: &[(&[u8], bool)] = &[
            (br#"{"choices":[]}"#, false),
            (br#"{"choices":[ ]}"#, false),
            (br#"{"choices":{}}"#, false),
            (br#"{"choices":[1],"choices":[2]}"#, false),
            (br#"{"ch\u006fices":[1]}"#, true),
            (br#"{"choices":[1],"m\u006fdel":"x"}"#, true),
            (br#"{"model":"m"}"#, false),
            (b"{\"choices\":[\"\xff\"]}", false),
            (br#"{"choices":[1]} x"#, false),
            (br#"{"choices":[01]}"#, false),
        ];
        for (up, accepted) in declined {
            let (fast, full) = chat(up);
            assert_eq!(fast, None, "{}", String::from_utf8_lossy(up));
            assert_eq!(full.is_ok(), *accepted, "{}", String::from_utf8_lossy(up));
            assert_eq!(
                translate_response(&inb, OpenAiCompat, up).is_ok(),
                *accepted,
                "{}",
                String::from_utf8_lossy(up)
            );
        }
        // Each shape, and a string with escapes left to serde (which refuses
        // a lone surrogate the scan would let through).
        assert!(scan_pass(br#"{"data":[]}"#, b"data", Shape::Array).is_some());
        assert!(scan_pass(br#"{"data":{}}"#, b"data", Shape::Array).is_none());
        assert!(scan_pass(br#"{"message":{}}"#, b"message", Shape::Object).is_some());
        assert!(scan_pass(br#"{"message":"x"}"#, b"message", Shape::Object).is_none());
        assert!(scan_pass(br#"{"response":"ok"}"#, b"response", Shape::String).is_some());
        assert!(scan_pass(br#"{"response":"\ud800"}"#, b"response", Shape::String).is_none());
        let ol_gen = inbound(Endpoint::OllamaGenerate, json!({"model": "m"}));
        assert!(translate_response(&ol_gen, Ollama, br#"{"response":"\ud800"}"#).is_err());
        assert!(translate_response(&ol_gen, Ollama, br#"{"response":"\u00e9"}"#).is_ok());
    }
}
