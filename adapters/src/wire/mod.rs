//! Protocol formats of the gateway, pure (no I/O, no clock): OpenAI `/v1/*`
//! and Ollama `/api/*` requests and responses, the translation between them,
//! incremental stream parsers and error bodies.
//!
//! The gateway drives one call like this:
//!
//! 1. [`decode`] checks the client's body for the fields drover needs
//!    (naming the field and the reason in a [`WireError`], a 400) and keeps
//!    the whole JSON object, so unknown fields pass through untouched.
//!    [`Inbound::op`], [`Inbound::session`] and [`Inbound::prefix_blocks`]
//!    feed the core's `Query`.
//! 2. For each attempt, [`upstream_request`] builds the body for the chosen
//!    node's kind with the node-local model name (same kind: the client's
//!    object with only `model` and `stream` replaced; other kind: translated).
//! 3. A non-streamed reply goes through [`translate_response`]; a streamed one
//!    through a [`StreamTranslator`], fed upstream bytes at any chunk
//!    boundary. Either reports an [`InvalidReply`] when the upstream's bytes
//!    are not what its protocol promises, which the gateway treats as a node
//!    failure (fail over before the first byte, [`StreamTranslator::error_event`]
//!    after it).
//!
//! Replies always carry the model name the client asked for, never the
//! node-local one.
//!
//! Streams: OpenAI-compatible servers stream Server-Sent Events (parsed by
//! [`SseParser`], ending with `data: [DONE]`); Ollama streams JSON lines
//! (parsed by [`NdjsonParser`], ending with a line carrying `"done": true`).
//! Both parsers bound the line length and give the same items whatever the
//! chunking of their input (checked by the fuzz targets `sse` and `ndjson`).

mod decode;
mod decode_quick;
mod json;
mod ndjson;
mod request;
mod response;
mod sse;
mod stream;

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod request_tests;
#[cfg(test)]
mod response_tests;
#[cfg(test)]
mod stream_tests;

use std::fmt;
use std::sync::OnceLock;

use drover_core::route::Op;
use serde::Serialize;
use serde_json::{Map, Value};

pub use decode::{PREFIX_BLOCK_BYTES, PREFIX_MAX_BLOCKS, decode, decode_full};
pub(crate) use json::hex16;
pub(crate) use json::kind as json_kind;
pub use json::{TopLevel, scan_object};
pub use ndjson::NdjsonParser;
pub use request::upstream_request;
pub use response::translate_response;
pub use sse::{SseItem, SseParser};
pub use stream::{Progress, StreamTranslator};

/// The longest stream line (SSE line or JSON line, and an SSE event's joined
/// data) the stream parsers accept by default: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// The Ollama version `GET /api/version` reports: the Ollama API drover
/// speaks (clients use it to decide which fields they may send).
pub const OLLAMA_VERSION: &str = "0.12.0";

/// Which API family a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Front {
    /// OpenAI's `/v1/*`: JSON replies, SSE streams.
    OpenAi,
    /// Ollama's `/api/*`: JSON replies, NDJSON streams.
    Ollama,
}

/// A client-facing inference endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /api/chat`.
    OllamaChat,
    /// `POST /api/generate`.
    OllamaGenerate,
    /// `POST /api/embed` (`input`: a string or strings).
    OllamaEmbed,
    /// `POST /api/embeddings`, Ollama's legacy embedding call (`prompt`).
    OllamaEmbeddings,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::ChatCompletions,
        Endpoint::Embeddings,
        Endpoint::OllamaChat,
        Endpoint::OllamaGenerate,
        Endpoint::OllamaEmbed,
        Endpoint::OllamaEmbeddings,
    ];

    /// The API family this endpoint belongs to.
    pub fn front(self) -> Front {
        match self {
            Endpoint::ChatCompletions | Endpoint::Embeddings => Front::OpenAi,
            _ => Front::Ollama,
        }
    }

    /// True for the embedding endpoints (core `Op::Embed`).
    pub fn op_is_embed(self) -> bool {
        matches!(
            self,
            Endpoint::Embeddings | Endpoint::OllamaEmbed | Endpoint::OllamaEmbeddings
        )
    }

    /// A short stable name for logs and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::OllamaChat => "api_chat",
            Endpoint::OllamaGenerate => "api_generate",
            Endpoint::OllamaEmbed => "api_embed",
            Endpoint::OllamaEmbeddings => "api_embeddings",
        }
    }

    /// The request path clients `POST` to.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::OllamaChat => "/api/chat",
            Endpoint::OllamaGenerate => "/api/generate",
            Endpoint::OllamaEmbed => "/api/embed",
            Endpoint::OllamaEmbeddings => "/api/embeddings",
        }
    }

    /// The endpoint served at `path`, if any (exact match, no query string).
    pub fn from_path(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.path() == path)
    }
}

/// A decoded client request; keeps the original JSON object so unknown
/// fields pass through.
///
/// The object is kept as the client's bytes when [`decode`]'s quick path
/// took the request (then a node of the same kind gets those bytes with
/// only `model` and `stream` patched, and [`Inbound::body`] parses them on
/// first use), else as the map the full decode built.
#[derive(Clone, Debug)]
pub struct Inbound {
    /// Where the request came in.
    pub endpoint: Endpoint,
    /// The model the client asked for (non-empty); replies carry this name.
    pub model: String,
    /// Whether the client wants a stream (Ollama's chat and generate default
    /// to true, as Ollama does; OpenAI defaults to false; embeddings: false).
    pub stream: bool,
    /// The client's whole JSON object, unknown fields included: filled by
    /// the full decode, or on first use from `raw`.
    body: OnceLock<Map<String, Value>>,
    /// The client's bytes, when the quick path decoded them.
    raw: Option<decode_quick::Raw>,
    /// The session the client named, for session affinity: the `session_id`
    /// field (a drover extension, either front) or else OpenAI's `user`
    /// field; `None` when absent or empty.
    pub session: Option<String>,
    /// Hashes of the leading prompt in [`PREFIX_BLOCK_BYTES`]-byte blocks (at
    /// most [`PREFIX_MAX_BLOCKS`]), for `drover_core::route::prefix_key`;
    /// empty for embeddings.
    pub prefix_blocks: Vec<u64>,
    /// An id the gateway may set (its trace id) before translating replies:
    /// it names translated OpenAI replies (`chatcmpl-<hex>`). 0 from
    /// [`decode`].
    pub call_id: u64,
}

impl PartialEq for Inbound {
    /// Equal requests: the same fields and the same JSON object, however
    /// each is kept.
    fn eq(&self, other: &Inbound) -> bool {
        self.endpoint == other.endpoint
            && self.model == other.model
            && self.stream == other.stream
            && self.session == other.session
            && self.prefix_blocks == other.prefix_blocks
            && self.call_id == other.call_id
            && self.body() == other.body()
    }
}

impl Inbound {
    /// The client's whole JSON object, unknown fields included.
    pub fn body(&self) -> &Map<String, Value> {
        self.body.get_or_init(|| {
            let raw = self.raw.as_ref().map_or(&b"{}"[..], |r| &r.bytes[..]);
            // The quick path only keeps bytes its strict scan proved to
            // parse as a map.
            let parsed = serde_json::from_slice(raw);
            debug_assert!(parsed.is_ok(), "kept bytes parse as a map");
            parsed.unwrap_or_default()
        })
    }

    /// The client's bytes, when the quick path decoded the request.
    pub(crate) fn raw(&self) -> Option<&decode_quick::Raw> {
        self.raw.as_ref()
    }

    /// The core operation: `Embed` for embeddings, else `Stream` when
    /// streamed, else `Chat`.
    pub fn op(&self) -> Op {
        if self.endpoint.op_is_embed() {
            Op::Embed
        } else if self.stream {
            Op::Stream
        } else {
            Op::Chat
        }
    }
}

/// A 400-class problem with a client's body: names the JSON field (e.g.
/// `messages[2].content`, or `body` for the body as a whole) and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    /// The JSON path of the offending field.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl WireError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> WireError {
        WireError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.reason)
    }
}

impl std::error::Error for WireError {}

/// An upstream reply that is not what its protocol promises (bad JSON, a
/// missing field, an error object, a stream without its end marker). The
/// gateway treats it as a node failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidReply {
    /// What was wrong.
    pub reason: String,
}

impl InvalidReply {
    /// An invalid reply for `reason`.
    pub fn new(reason: impl Into<String>) -> InvalidReply {
        InvalidReply {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for InvalidReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid upstream reply: {}", self.reason)
    }
}

impl std::error::Error for InvalidReply {}

/// Why a stream parser gave up. Once failed, a parser keeps returning the
/// same error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// A line (or an SSE event's joined data) is longer than the limit.
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// A strict SSE parser met a line that is not `data`, `event`, `id`,
    /// `retry`, a comment or blank (the upstream is not speaking SSE).
    NotSse,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::LineTooLong { limit } => write!(f, "stream line longer than {limit} bytes"),
            ParseError::NotSse => f.write_str("not a server-sent event stream"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The upstream request for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// The path on the node, below its base URL (e.g. `/api/chat`).
    pub path: &'static str,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// An error body in `front`'s shape. OpenAI:
/// `{"error":{"message","type","param":null,"code"}}` with `type` derived
/// from `status` (`invalid_request_error`, `authentication_error`,
/// `permission_error`, `not_found_error`, `rate_limit_error`,
/// `server_error`) and `code` null when empty; Ollama: `{"error":"message"}`.
pub fn error_body(front: Front, status: u16, code: &str, message: &str) -> Vec<u8> {
    error_body_param(front, status, code, None, message)
}

/// The error body for a [`WireError`] (status 400): OpenAI's `param` names
/// the field; Ollama's message reads "field `x`: reason".
pub fn wire_error_body(front: Front, err: &WireError) -> Vec<u8> {
    let message = err.to_string();
    error_body_param(
        front,
        400,
        "invalid_request",
        Some(err.field.as_str()),
        &message,
    )
}

fn error_body_param(
    front: Front,
    status: u16,
    code: &str,
    param: Option<&str>,
    message: &str,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct OpenAiError<'a> {
        message: &'a str,
        r#type: &'static str,
        param: Option<&'a str>,
        code: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct OpenAiBody<'a> {
        error: OpenAiError<'a>,
    }
    #[derive(Serialize)]
    struct OllamaBody<'a> {
        error: &'a str,
    }
    match front {
        Front::OpenAi => {
            let r#type = match status {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                400..=499 => "invalid_request_error",
                _ => "server_error",
            };
            let error = OpenAiError {
                message,
                r#type,
                param,
                code: (!code.is_empty()).then_some(code),
            };
            json::to_vec(&OpenAiBody { error })
        }
        Front::Ollama => json::to_vec(&OllamaBody { error: message }),
    }
}

/// `GET /v1/models`: `{"object":"list","data":[{"id","object":"model",
/// "created":0,"owned_by":"drover"}]}`.
pub fn models_openai(models: &[String]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Model<'a> {
        id: &'a str,
        object: &'static str,
        created: u64,
        owned_by: &'static str,
    }
    #[derive(Serialize)]
    struct List<'a> {
        object: &'static str,
        data: Vec<Model<'a>>,
    }
    let data = models
        .iter()
        .map(|m| Model {
            id: m,
            object: "model",
            created: 0,
            owned_by: "drover",
        })
        .collect();
    json::to_vec(&List {
        object: "list",
        data,
    })
}

/// `GET /api/tags`: `{"models":[{"name","model","modified_at","size",
/// "digest","details"}]}` with neutral values where drover knows nothing
/// (size 0, empty digest, the Unix epoch).
pub fn tags_ollama(models: &[String]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Details {
        parent_model: &'static str,
        format: &'static str,
        family: &'static str,
        families: Option<()>,
        parameter_size: &'static str,
        quantization_level: &'static str,
    }
    #[derive(Serialize)]
    struct Tag<'a> {
        name: &'a str,
        model: &'a str,
        modified_at: &'static str,
        size: u64,
        digest: &'static str,
        details: Details,
    }
    #[derive(Serialize)]
    struct Tags<'a> {
        models: Vec<Tag<'a>>,
    }
    let models = models
        .iter()
        .map(|m| Tag {
            name: m,
            model: m,
            modified_at: "1970-01-01T00:00:00Z",
            size: 0,
            digest: "",
            details: Details {
                parent_model: "",
                format: "",
                family: "",
                families: None,
                parameter_size: "",
                quantization_level: "",
            },
        })
        .collect();
    json::to_vec(&Tags { models })
}

/// `GET /api/version`: `{"version":"<OLLAMA_VERSION>"}`.
pub fn version_ollama() -> Vec<u8> {
    format!("{{\"version\":\"{OLLAMA_VERSION}\"}}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("test bodies are JSON")
    }

    #[test]
    fn endpoints_paths_round_trip_and_classify() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_path(e.path()), Some(e));
        }
        assert_eq!(Endpoint::from_path("/v1/completions"), None);
        assert_eq!(Endpoint::from_path("/api/chat/"), None);
        assert_eq!(Endpoint::ChatCompletions.front(), Front::OpenAi);
        assert_eq!(Endpoint::Embeddings.front(), Front::OpenAi);
        assert_eq!(Endpoint::OllamaEmbeddings.front(), Front::Ollama);
        let embeds: Vec<_> = Endpoint::ALL
            .into_iter()
            .filter(|e| e.op_is_embed())
            .collect();
        assert_eq!(
            embeds,
            [
                Endpoint::Embeddings,
                Endpoint::OllamaEmbed,
                Endpoint::OllamaEmbeddings
            ]
        );
        let labels: std::collections::BTreeSet<_> =
            Endpoint::ALL.into_iter().map(Endpoint::label).collect();
        assert_eq!(labels.len(), 6);
    }

    #[test]
    fn error_display_names_field() {
        let e = WireError::new("messages[2].content", "expected a string, got number");
        assert_eq!(
            e.to_string(),
            "field `messages[2].content`: expected a string, got number"
        );
        assert_eq!(
            InvalidReply::new("no choices").to_string(),
            "invalid upstream reply: no choices"
        );
    }

    #[test]
    fn error_bodies_have_each_fronts_shape() {
        let v = parse(&error_body(Front::OpenAi, 429, "pool_full", "too \"busy\""));
        assert_eq!(v["error"]["message"], "too \"busy\"");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["code"], "pool_full");
        assert!(v["error"]["param"].is_null());
        let v = parse(&error_body(Front::OpenAi, 503, "", "no node"));
        assert_eq!(v["error"]["type"], "server_error");
        assert!(v["error"]["code"].is_null());
        let v = parse(&error_body(Front::OpenAi, 404, "model_not_found", "x"));
        assert_eq!(v["error"]["type"], "not_found_error");
        let v = parse(&error_body(
            Front::Ollama,
            404,
            "model_not_found",
            "no such model",
        ));
        assert_eq!(v, serde_json::json!({"error": "no such model"}));
        let err = WireError::new("model", "missing");
        let v = parse(&wire_error_body(Front::OpenAi, &err));
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["message"], "field `model`: missing");
        let v = parse(&wire_error_body(Front::Ollama, &err));
        assert_eq!(v["error"], "field `model`: missing");
    }

    #[test]
    fn catalog_bodies() {
        let models = vec!["llama3".to_owned(), "qwen\"2".to_owned()];
        let v = parse(&models_openai(&models));
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][1]["id"], "qwen\"2");
        assert_eq!(v["data"][0]["object"], "model");
        let v = parse(&tags_ollama(&models));
        assert_eq!(v["models"][0]["name"], "llama3");
        assert_eq!(v["models"][1]["model"], "qwen\"2");
        assert!(v["models"][0]["details"].is_object());
        assert_eq!(parse(&models_openai(&[]))["data"], serde_json::json!([]));
        assert_eq!(parse(&version_ollama())["version"], OLLAMA_VERSION);
    }
}
