//! The bytes a fake server sends: the words of a reply, embeddings, and
//! the JSON bodies, NDJSON lines and SSE events of Ollama and of the
//! OpenAI API, as the real servers shape them.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};

use super::state::splitmix;

/// The vocabulary of fake replies (no character needs JSON escaping).
const WORDS: [&str; 32] = [
    "the", "swarm", "routes", "every", "call", "to", "a", "node", "that", "answers", "fast", "and",
    "well", "tokens", "flow", "like", "water", "over", "stones", "while", "drover", "keeps",
    "herd", "on", "its", "way", "home", "through", "quiet", "hills", "at", "dusk",
];

/// Dimensions of a fake embedding.
pub(super) const EMBED_DIMS: usize = 8;

/// FNV-1a, 64 bits: a stable hash of the prompt.
pub(super) fn fnv(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `n` (at least one) deterministic tokens for `prompt`; each but the first
/// starts with a space, so their concatenation reads as a sentence.
pub(super) fn tokens(seed: u64, prompt: &str, n: u32) -> Vec<String> {
    let mut state = seed ^ fnv(prompt.as_bytes());
    (0..n.max(1))
        .map(|i| {
            let w = WORDS[(splitmix(&mut state) % WORDS.len() as u64) as usize];
            if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            }
        })
        .collect()
}

/// A deterministic unit vector of [`EMBED_DIMS`] dimensions for `text`.
pub(super) fn embedding(seed: u64, text: &str) -> Vec<f32> {
    let mut state = seed ^ fnv(text.as_bytes()) ^ 0xE4BE_DD00;
    let raw: Vec<f64> = (0..EMBED_DIMS)
        .map(|_| (splitmix(&mut state) >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-9);
    raw.iter().map(|x| (x / norm) as f32).collect()
}

/// Whitespace-separated words of `text`, at least one: the fake prompt
/// token count.
pub(super) fn count_tokens(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count())
        .unwrap_or(u32::MAX)
        .max(1)
}

/// Seconds since the Unix epoch.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now as RFC 3339 with nanoseconds in UTC, as Ollama's `created_at`.
pub(super) fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's
/// `civil_from_days` for non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

fn to_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// Ollama's error body: `{"error": "..."}`.
pub(super) fn ollama_error(message: &str) -> Bytes {
    to_bytes(&json!({ "error": message }))
}

/// The OpenAI API's error body.
pub(super) fn openai_error(message: &str, kind: &str, param: Option<&str>, code: &str) -> Bytes {
    to_bytes(&json!({
        "error": { "message": message, "type": kind, "param": param, "code": code }
    }))
}

/// A generating endpoint, which shapes the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gen {
    /// Ollama `/api/chat`.
    OllamaChat,
    /// Ollama `/api/generate`.
    OllamaGenerate,
    /// OpenAI `/v1/chat/completions`.
    OpenAiChat,
    /// OpenAI `/v1/completions`.
    OpenAiCompletions,
}

/// Everything a reply's rendering needs.
pub(super) struct Reply {
    pub(super) gen_kind: Gen,
    pub(super) model: String,
    pub(super) tokens: Vec<String>,
    pub(super) prompt_tokens: u32,
    /// `stream_options.include_usage` (OpenAI streams).
    pub(super) include_usage: bool,
    pub(super) id: String,
    pub(super) created: u64,
    /// Nanoseconds the whole generation took (Ollama's durations).
    pub(super) total_ns: u64,
}

impl Reply {
    fn completion_tokens(&self) -> u32 {
        u32::try_from(self.tokens.len()).unwrap_or(u32::MAX)
    }

    fn usage(&self) -> Value {
        let (p, c) = (self.prompt_tokens, self.completion_tokens());
        json!({ "prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c })
    }

    /// Ollama's timing and count fields of a final object.
    fn ollama_done(&self, mut v: Value) -> Value {
        if let Value::Object(m) = &mut v {
            m.insert("done_reason".into(), json!("stop"));
            m.insert("done".into(), json!(true));
            m.insert("total_duration".into(), json!(self.total_ns + 1_000_000));
            m.insert("load_duration".into(), json!(1_000_000));
            m.insert("prompt_eval_count".into(), json!(self.prompt_tokens));
            m.insert("prompt_eval_duration".into(), json!(500_000));
            m.insert("eval_count".into(), json!(self.completion_tokens()));
            m.insert("eval_duration".into(), json!(self.total_ns.max(1)));
        }
        v
    }

    /// The whole reply of a non-streamed call.
    pub(super) fn full(&self) -> Bytes {
        let text: String = self.tokens.concat();
        let (model, id, created) = (&self.model, &self.id, self.created);
        let v = match self.gen_kind {
            Gen::OllamaChat => self.ollama_done(json!({
                "model": model, "created_at": rfc3339_now(),
                "message": { "role": "assistant", "content": text },
            })),
            Gen::OllamaGenerate => self.ollama_done(json!({
                "model": model, "created_at": rfc3339_now(), "response": text,
                "context": [1, 2, 3],
            })),
            Gen::OpenAiChat => json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{
                    "index": 0, "message": { "role": "assistant", "content": text },
                    "logprobs": null, "finish_reason": "stop",
                }],
                "usage": self.usage(),
            }),
            Gen::OpenAiCompletions => json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [{ "text": text, "index": 0, "logprobs": null, "finish_reason": "stop" }],
                "usage": self.usage(),
            }),
        };
        to_bytes(&v)
    }

    /// The stream's content type.
    pub(super) fn stream_content_type(&self) -> &'static str {
        match self.gen_kind {
            Gen::OllamaChat | Gen::OllamaGenerate => "application/x-ndjson",
            Gen::OpenAiChat | Gen::OpenAiCompletions => "text/event-stream",
        }
    }

    fn line(&self, v: &Value) -> Bytes {
        let json = serde_json::to_vec(v).unwrap_or_default();
        let mut out = Vec::with_capacity(json.len() + 8);
        match self.gen_kind {
            Gen::OllamaChat | Gen::OllamaGenerate => {
                out.extend_from_slice(&json);
                out.push(b'\n');
            }
            Gen::OpenAiChat | Gen::OpenAiCompletions => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&json);
                out.extend_from_slice(b"\n\n");
            }
        }
        Bytes::from(out)
    }

    fn chat_chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        })
    }

    fn completion_chunk(&self, text: &str, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "text_completion", "created": self.created,
            "model": self.model,
            "choices": [{ "text": text, "index": 0, "logprobs": null, "finish_reason": finish }],
        })
    }

    /// The stream event carrying token `i`; OpenAI chat's first one is
    /// preceded by the role-only chunk.
    pub(super) fn token(&self, i: usize) -> Bytes {
        let text = self.tokens.get(i).map_or("", String::as_str);
        match self.gen_kind {
            Gen::OllamaChat => self.line(&json!({
                "model": self.model, "created_at": rfc3339_now(),
                "message": { "role": "assistant", "content": text }, "done": false,
            })),
            Gen::OllamaGenerate => self.line(&json!({
                "model": self.model, "created_at": rfc3339_now(), "response": text, "done": false,
            })),
            Gen::OpenAiChat => {
                let content = self.line(&self.chat_chunk(json!({ "content": text }), None));
                if i > 0 {
                    return content;
                }
                let role = json!({ "role": "assistant", "content": "" });
                let mut out = self.line(&self.chat_chunk(role, None)).to_vec();
                out.extend_from_slice(&content);
                Bytes::from(out)
            }
            Gen::OpenAiCompletions => self.line(&self.completion_chunk(text, None)),
        }
    }

    /// The stream's end: Ollama's `done: true` object, or OpenAI's final
    /// chunk (finish_reason), the usage chunk if asked, and `data: [DONE]`.
    pub(super) fn end(&self) -> Bytes {
        let v = match self.gen_kind {
            Gen::OllamaChat => self.ollama_done(json!({
                "model": self.model, "created_at": rfc3339_now(),
                "message": { "role": "assistant", "content": "" },
            })),
            Gen::OllamaGenerate => self.ollama_done(json!({
                "model": self.model, "created_at": rfc3339_now(), "response": "",
                "context": [1, 2, 3],
            })),
            Gen::OpenAiChat => self.chat_chunk(json!({}), Some("stop")),
            Gen::OpenAiCompletions => self.completion_chunk("", Some("stop")),
        };
        let mut out = self.line(&v).to_vec();
        if matches!(self.gen_kind, Gen::OpenAiChat | Gen::OpenAiCompletions) {
            if self.include_usage {
                let object = if self.gen_kind == Gen::OpenAiChat {
                    "chat.completion.chunk"
                } else {
                    "text_completion"
                };
                out.extend_from_slice(&self.line(&json!({
                    "id": self.id, "object": object, "created": self.created,
                    "model": self.model, "choices": [], "usage": self.usage(),
                })));
            }
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
        Bytes::from(out)
    }

    /// A stream line that is not JSON, in the stream's framing.
    pub(super) fn garbage_line(&self) -> Bytes {
        match self.gen_kind {
            Gen::OllamaChat | Gen::OllamaGenerate => {
                Bytes::from_static(b"{\"model\": oops <html>\n")
            }
            Gen::OpenAiChat | Gen::OpenAiCompletions => {
                Bytes::from_static(b"data: {\"id\": oops <html>\n\n")
            }
        }
    }
}

/// Ollama `/api/tags`.
pub(super) fn ollama_tags(models: &[String]) -> Bytes {
    let list: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({
                "name": m, "model": m, "modified_at": "2025-01-01T00:00:00Z",
                "size": 2_019_393_189_u64,
                "digest": format!("{:064x}", u128::from(fnv(m.as_bytes()))),
                "details": {
                    "parent_model": "", "format": "gguf", "family": "fake",
                    "families": ["fake"], "parameter_size": "3.2B",
                    "quantization_level": "Q4_K_M",
                },
            })
        })
        .collect();
    to_bytes(&json!({ "models": list }))
}

/// Ollama `/api/version`.
pub(super) fn ollama_version() -> Bytes {
    Bytes::from_static(b"{\"version\":\"0.6.0\"}")
}

/// OpenAI `/v1/models`.
pub(super) fn openai_models(models: &[String]) -> Bytes {
    let created = unix_now();
    let data: Vec<Value> = models
        .iter()
        .map(|m| json!({ "id": m, "object": "model", "created": created, "owned_by": "drover-fake" }))
        .collect();
    to_bytes(&json!({ "object": "list", "data": data }))
}

/// Ollama `/api/embed`: one vector per input.
pub(super) fn ollama_embed(model: &str, vectors: &[Vec<f32>], prompt_tokens: u32) -> Bytes {
    to_bytes(&json!({
        "model": model, "embeddings": vectors, "total_duration": 1_000_000,
        "load_duration": 100_000, "prompt_eval_count": prompt_tokens,
    }))
}

/// Ollama's older `/api/embeddings`: one vector.
pub(super) fn ollama_embeddings(vector: &[f32]) -> Bytes {
    to_bytes(&json!({ "embedding": vector }))
}

/// OpenAI `/v1/embeddings`.
pub(super) fn openai_embeddings(model: &str, vectors: &[Vec<f32>], prompt_tokens: u32) -> Bytes {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| json!({ "object": "embedding", "embedding": v, "index": i }))
        .collect();
    to_bytes(&json!({
        "object": "list", "data": data, "model": model,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    }))
}
