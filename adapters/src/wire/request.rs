//! Upstream requests: the client's object for the chosen node's kind.
//!
//! Same kind: the client's object is written out as it came, with only
//! `model` (the node-local name) and `stream` (always explicit) replaced.
//! When `decode`'s quick path took the request these are edits in the
//! client's own bytes (key order, spacing and number spellings kept);
//! otherwise the decoded map is written out with the two values replaced.
//! Other kind, field by field (fields not listed pass through unchanged):
//!
//! | client | node | path | translated |
//! |---|---|---|---|
//! | `/v1/chat/completions` | Ollama | `/api/chat` | `max_completion_tokens` or else `max_tokens` → `options.num_predict`; `temperature`, `top_p`, `seed`, `frequency_penalty`, `presence_penalty`, `stop` → `options.*`; `response_format` → `format`; content parts → `content` text + `images` (data URLs only; other image URLs are dropped); `tool_calls[].function.arguments` JSON text → object; `stream_options` dropped |
//! | `/api/chat` | OpenAI | `/v1/chat/completions` | the reverse: `options.*` with an OpenAI equivalent → top level (the others are dropped), `format` → `response_format`, `images` → `image_url` parts, tool calls get ids and tool results the matching `tool_call_id`; `keep_alive` dropped |
//! | `/api/generate` | OpenAI | `/v1/completions` | `system` + blank line + `prompt` → `prompt`, `options.*` as above, `suffix` kept; `template`, `context`, `raw`, `images`, `format`, `keep_alive` dropped |
//! | `/v1/embeddings` | Ollama | `/api/embed` | `input`, `dimensions` kept; `encoding_format` (handled in the reply) and `user` dropped |
//! | `/api/embed` | OpenAI | `/v1/embeddings` | `input`, `dimensions`; `encoding_format: "float"`; `truncate`, `options`, `keep_alive` dropped |
//! | `/api/embeddings` | OpenAI | `/v1/embeddings` | `prompt` → `input`; `encoding_format: "float"`; `options`, `keep_alive` dropped |
//!
//! `/v1/completions` may default to a short `max_tokens` on some servers;
//! `/api/generate` without `options.num_predict` passes none.

use drover_core::node::NodeKind;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use super::{Endpoint, Inbound, Outbound, json as j};

/// The upstream request for a node of `kind`, with `node_model`
/// substituted for the client's model name.
pub fn upstream_request(inb: &Inbound, kind: NodeKind, node_model: &str) -> Outbound {
    let stream = (!inb.endpoint.op_is_embed()).then_some(inb.stream);
    let same = |path| Outbound {
        path,
        body: match inb.raw() {
            Some(raw) => raw.patched(node_model, stream),
            None => j::to_vec(&Patched {
                base: inb.body(),
                model: node_model,
                stream,
            }),
        },
    };
    let translated = |path, map: Map<String, Value>| Outbound {
        path,
        body: j::to_vec(&map),
    };
    match (inb.endpoint, kind) {
        (Endpoint::ChatCompletions, NodeKind::OpenAiCompat) => same("/v1/chat/completions"),
        (Endpoint::Embeddings, NodeKind::OpenAiCompat) => same("/v1/embeddings"),
        (Endpoint::OllamaChat, NodeKind::Ollama) => same("/api/chat"),
        (Endpoint::OllamaGenerate, NodeKind::Ollama) => same("/api/generate"),
        (Endpoint::OllamaEmbed, NodeKind::Ollama) => same("/api/embed"),
        (Endpoint::OllamaEmbeddings, NodeKind::Ollama) => same("/api/embeddings"),
        (Endpoint::ChatCompletions, NodeKind::Ollama) => {
            translated("/api/chat", chat_to_ollama(inb, node_model))
        }
        (Endpoint::OllamaChat, NodeKind::OpenAiCompat) => {
            translated("/v1/chat/completions", chat_to_openai(inb, node_model))
        }
        (Endpoint::OllamaGenerate, NodeKind::OpenAiCompat) => {
            translated("/v1/completions", generate_to_openai(inb, node_model))
        }
        (Endpoint::Embeddings, NodeKind::Ollama) => {
            let mut out = header(node_model, None);
            for (k, v) in inb.body() {
                if !matches!(k.as_str(), "model" | "encoding_format" | "user") {
                    out.insert(k.clone(), v.clone());
                }
            }
            translated("/api/embed", out)
        }
        (Endpoint::OllamaEmbed | Endpoint::OllamaEmbeddings, NodeKind::OpenAiCompat) => {
            let mut out = header(node_model, None);
            out.insert("encoding_format".into(), "float".into());
            for (k, v) in inb.body() {
                match k.as_str() {
                    "prompt" if inb.endpoint == Endpoint::OllamaEmbeddings => {
                        out.insert("input".into(), v.clone());
                    }
                    "model" | "truncate" | "options" | "keep_alive" | "encoding_format" => {}
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            translated("/v1/embeddings", out)
        }
    }
}

/// The client's object with `model` and (when `Some`) `stream` replaced,
/// serialised in place.
struct Patched<'a> {
    base: &'a Map<String, Value>,
    model: &'a str,
    stream: Option<bool>,
}

impl Serialize for Patched<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let extra = usize::from(self.stream.is_some() && !self.base.contains_key("stream"));
        let mut map = s.serialize_map(Some(self.base.len() + extra))?;
        for (k, v) in self.base {
            match (k.as_str(), self.stream) {
                ("model", _) => map.serialize_entry(k, self.model)?,
                ("stream", Some(stream)) => map.serialize_entry(k, &stream)?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        if extra == 1 {
            map.serialize_entry("stream", &self.stream)?;
        }
        map.end()
    }
}

fn header(model: &str, stream: Option<bool>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    if let Some(stream) = stream {
        out.insert("stream".into(), stream.into());
    }
    out
}

/// OpenAI sampling fields that Ollama keeps under `options` with the same
/// name.
const SHARED_OPTIONS: [&str; 6] = [
    "temperature",
    "top_p",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "stop",
];

fn chat_to_ollama(inb: &Inbound, node_model: &str) -> Map<String, Value> {
    let mut out = header(node_model, Some(inb.stream));
    let mut options = match inb.body().get("options") {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    for (k, v) in inb.body() {
        match k.as_str() {
            "model" | "stream" | "options" | "stream_options" => {}
            "messages" => {
                let messages = v
                    .as_array()
                    .map(|a| a.iter().map(message_to_ollama).collect());
                out.insert(k.clone(), Value::Array(messages.unwrap_or_default()));
            }
            "max_tokens" if inb.body().contains_key("max_completion_tokens") => {}
            "max_tokens" | "max_completion_tokens" => {
                options.insert("num_predict".into(), v.clone());
            }
            "stop" if v.is_string() => {
                options.insert(k.clone(), Value::Array(vec![v.clone()]));
            }
            k if SHARED_OPTIONS.contains(&k) => {
                options.insert(k.to_owned(), v.clone());
            }
            "response_format" => match v.get("type").and_then(Value::as_str) {
                Some("json_object") => {
                    out.insert("format".into(), "json".into());
                }
                Some("json_schema") => {
                    if let Some(schema) = v.get("json_schema").and_then(|s| s.get("schema")) {
                        out.insert("format".into(), schema.clone());
                    }
                }
                _ => {}
            },
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !options.is_empty() {
        out.insert("options".into(), Value::Object(options));
    }
    out
}

fn message_to_ollama(m: &Value) -> Value {
    let Value::Object(m) = m else {
        return m.clone();
    };
    let mut out = Map::new();
    let mut images = match m.get("images") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    for (k, v) in m {
        match (k.as_str(), v) {
            ("images", _) => {}
            ("content", Value::Null) => {
                out.insert(k.clone(), "".into());
            }
            ("content", Value::Array(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match part.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            if !text.is_empty() {
                                text.push('\n');
                            }
                            text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""));
                        }
                        Some("image_url") => {
                            let url = part.get("image_url").and_then(|u| match u {
                                Value::String(s) => Some(s.as_str()),
                                u => u.get("url").and_then(Value::as_str),
                            });
                            if let Some((_, data)) = url.and_then(|u| u.split_once(";base64,")) {
                                images.push(data.into());
                            }
                        }
                        _ => {}
                    }
                }
                out.insert(k.clone(), text.into());
            }
            ("tool_calls", Value::Array(calls)) => {
                let calls = calls.iter().map(|c| {
                    let mut c = c.clone();
                    if let Some(f) = c.get_mut("function").and_then(Value::as_object_mut) {
                        if let Some(Value::String(args)) = f.get("arguments") {
                            let parsed = serde_json::from_str::<Value>(args)
                                .unwrap_or_else(|_| Value::String(args.clone()));
                            f.insert("arguments".into(), parsed);
                        }
                    }
                    c
                });
                out.insert(k.clone(), Value::Array(calls.collect()));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !images.is_empty() {
        out.insert("images".into(), Value::Array(images));
    }
    Value::Object(out)
}

/// Moves Ollama `options` with an OpenAI equivalent to the top level of
/// `out`; the others have none and are dropped.
fn options_to_openai(options: Option<&Value>, out: &mut Map<String, Value>) {
    let Some(Value::Object(options)) = options else {
        return;
    };
    for (k, v) in options {
        match k.as_str() {
            "num_predict" => {
                out.insert("max_tokens".into(), v.clone());
            }
            k if SHARED_OPTIONS.contains(&k) => {
                out.insert(k.to_owned(), v.clone());
            }
            _ => {}
        }
    }
}

fn chat_to_openai(inb: &Inbound, node_model: &str) -> Map<String, Value> {
    let mut out = header(node_model, Some(inb.stream));
    for (k, v) in inb.body() {
        match k.as_str() {
            "model" | "stream" | "keep_alive" | "options" => {}
            "messages" => {
                let messages = v.as_array().map(|a| messages_to_openai(a));
                out.insert(k.clone(), Value::Array(messages.unwrap_or_default()));
            }
            "format" => match v {
                Value::String(f) if f == "json" => {
                    out.insert("response_format".into(), json!({"type": "json_object"}));
                }
                Value::Object(_) => {
                    let schema = json!({"name": "response", "schema": v});
                    let format = json!({"type": "json_schema", "json_schema": schema});
                    out.insert("response_format".into(), format);
                }
                _ => {}
            },
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    options_to_openai(inb.body().get("options"), &mut out);
    out.entry("messages")
        .or_insert_with(|| Value::Array(Vec::new()));
    out
}

/// The MIME type of a base64 image, from its first bytes.
fn image_mime(b64: &str) -> &'static str {
    if b64.starts_with("iVBOR") {
        "image/png"
    } else if b64.starts_with("R0lG") {
        "image/gif"
    } else if b64.starts_with("UklG") {
        "image/webp"
    } else {
        "image/jpeg"
    }
}

fn messages_to_openai(messages: &[Value]) -> Vec<Value> {
    // Ids given to the last assistant message's tool calls, by name, for the
    // tool results that follow it.
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let Value::Object(m) = m else {
            out.push(m.clone());
            continue;
        };
        let mut o = Map::new();
        for (k, v) in m {
            match (k.as_str(), v) {
                ("images" | "tool_name", _) => {}
                ("tool_calls", Value::Array(calls)) => {
                    pending.clear();
                    let calls = calls.iter().enumerate().map(|(n, c)| {
                        let f = c.get("function");
                        let name = f.and_then(|f| f.get("name")).cloned().unwrap_or_default();
                        let args = match f.and_then(|f| f.get("arguments")) {
                            Some(Value::String(s)) => s.clone(),
                            Some(a) => a.to_string(),
                            None => "{}".to_owned(),
                        };
                        let id = format!("call_{i}_{n}");
                        pending.push((name.as_str().unwrap_or("").to_owned(), id.clone()));
                        let function = json!({"name": name, "arguments": args});
                        json!({"id": id, "type": "function", "function": function})
                    });
                    o.insert(k.clone(), Value::Array(calls.collect()));
                }
                _ => {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        let images = m.get("images").and_then(Value::as_array);
        if let Some(images) = images.filter(|a| !a.is_empty()) {
            let text = m.get("content").and_then(Value::as_str).unwrap_or("");
            let mut parts = vec![json!({"type": "text", "text": text})];
            for img in images.iter().filter_map(Value::as_str) {
                let url = format!("data:{};base64,{img}", image_mime(img));
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            o.insert("content".into(), Value::Array(parts));
        }
        let is_tool = m.get("role").and_then(Value::as_str) == Some("tool");
        if is_tool && !o.contains_key("tool_call_id") && !pending.is_empty() {
            let name = m.get("tool_name").and_then(Value::as_str);
            let at = name
                .and_then(|n| pending.iter().position(|(p, _)| p == n))
                .unwrap_or(0);
            let (_, id) = pending.remove(at);
            o.insert("tool_call_id".into(), id.into());
        }
        out.push(Value::Object(o));
    }
    out
}

fn generate_to_openai(inb: &Inbound, node_model: &str) -> Map<String, Value> {
    let mut out = header(node_model, Some(inb.stream));
    let system = inb
        .body()
        .get("system")
        .and_then(Value::as_str)
        .unwrap_or("");
    let prompt = inb
        .body()
        .get("prompt")
        .and_then(Value::as_str)
        .unwrap_or("");
    let prompt = if system.is_empty() {
        prompt.to_owned()
    } else {
        format!("{system}\n\n{prompt}")
    };
    out.insert("prompt".into(), prompt.into());
    for (k, v) in inb.body() {
        match k.as_str() {
            "model" | "stream" | "prompt" | "system" | "template" | "context" | "raw"
            | "images" | "format" | "keep_alive" | "options" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    options_to_openai(inb.body().get("options"), &mut out);
    out
}
