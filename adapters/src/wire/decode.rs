//! Client request decoding: the body becomes a raw JSON object (unknown
//! fields kept), then only the fields drover reads or translates are
//! checked, each problem naming its JSON path.
//!
//! Checked fields: `model` (non-empty string, every endpoint); `stream`
//! (boolean or null; chat and generate only); `messages` (chat: an array of
//! objects with a string `role`; OpenAI `content` is a string, null or an
//! array of part objects with a string `type`; Ollama `content` a string or
//! null and `images` an array of strings; OpenAI needs at least one message,
//! Ollama accepts none, which loads the model); `prompt` and `system`
//! (generate: strings when present); `input` (OpenAI embeddings: a string, or
//! a non-empty array of strings, of integers, or of integer arrays; Ollama
//! `/api/embed`: a string or an array of strings); `prompt` (legacy
//! `/api/embeddings`: required string); `options` (Ollama: an object or
//! null); `session_id` and `user` (strings when present).
//!
//! A body that names where to send it is refused whatever the value: any
//! top-level key that is, once lower-cased and stripped of `_` and `-`, one
//! of [`UPSTREAM_KEYS`] (`api_base`, `base_url`, `baseUrl`, `api_url`,
//! `api_host`, `upstream`, `upstream_url`, `endpoint`, `url`, `proxy`,
//! `proxy_url`, `host`). Drover sends calls only to the nodes of its
//! configuration and forwards unknown fields to them, so such a field
//! could only be meant for a proxy behind a node (LiteLLM, for one, reads
//! `api_base` from the body): a server-side request forgery.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::json::kind;
use super::{Endpoint, Front, Inbound, WireError};

/// Bytes per prefix block hashed into [`Inbound::prefix_blocks`].
pub const PREFIX_BLOCK_BYTES: usize = 256;
/// At most this many prefix blocks are hashed (the first 4 KiB of prompt).
pub const PREFIX_MAX_BLOCKS: usize = 16;

/// Top-level request keys that name an upstream, normalised (lower case,
/// no `_` or `-`): a body holding one is refused (see the module docs).
pub const UPSTREAM_KEYS: [&str; 11] = [
    "apibase",
    "baseurl",
    "apiurl",
    "apihost",
    "upstream",
    "upstreamurl",
    "endpoint",
    "url",
    "proxy",
    "proxyurl",
    "host",
];

/// The first top-level key of `body` that names an upstream, if any.
fn upstream_key(body: &Map<String, Value>) -> Option<&str> {
    body.keys().map(String::as_str).find(|k| {
        let norm: String = k
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        UPSTREAM_KEYS.contains(&norm.as_str())
    })
}

/// Decodes a client body for `endpoint`. Malformed JSON is a [`WireError`]
/// on field `body` whose reason gives serde_json's line and column; so is a
/// body that is not a JSON object. A key naming an upstream is a
/// [`WireError`] on that key.
///
/// Most requests take a quick path that builds no JSON tree (see
/// `decode_quick`); any other goes through the full decode, which gives the
/// same result and names what is wrong.
pub fn decode(endpoint: Endpoint, body: &[u8]) -> Result<Inbound, WireError> {
    if let Some(q) = super::decode_quick::decode(endpoint, body) {
        return Ok(Inbound {
            endpoint,
            model: q.model,
            stream: q.stream,
            body: OnceLock::new(),
            raw: Some(q.raw),
            session: q.session,
            prefix_blocks: q.prefix_blocks,
            call_id: 0,
        });
    }
    decode_full(endpoint, body)
}

/// The full decode alone: the body parsed as a map, then checked field by
/// field. [`decode`] gives the same result (its quick path only takes what
/// this accepts, and decodes it the same); tests and the fuzz target
/// `decode` compare the two.
pub fn decode_full(endpoint: Endpoint, body: &[u8]) -> Result<Inbound, WireError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| WireError::new("body", format!("malformed JSON: {e}")))?;
    let Value::Object(body) = value else {
        return Err(WireError::new(
            "body",
            format!("expected a JSON object, got {}", kind(&value)),
        ));
    };
    if let Some(key) = upstream_key(&body) {
        return Err(WireError::new(
            key,
            "names an upstream; drover sends calls only to the nodes in its configuration, \
             so remove this field",
        ));
    }
    let model = match body.get("model") {
        None | Some(Value::Null) => return Err(WireError::new("model", "missing")),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(WireError::new("model", "must not be empty"));
        }
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(expected("model", "a string", v)),
    };
    let front = endpoint.front();
    let mut blocks = Blocks::new();
    let stream = match endpoint {
        Endpoint::ChatCompletions | Endpoint::OllamaChat => {
            check_messages(&body, front, &mut blocks)?;
            stream_flag(&body, front == Front::Ollama)?
        }
        Endpoint::OllamaGenerate => {
            let system = optional_str(&body, "system")?;
            let prompt = optional_str(&body, "prompt")?;
            check_images(&body, "images")?;
            if let Some(system) = system {
                blocks.feed_message(b"system", system.as_bytes());
            }
            blocks.feed_message(b"user", prompt.unwrap_or_default().as_bytes());
            stream_flag(&body, true)?
        }
        Endpoint::Embeddings => {
            check_input(&body, true)?;
            false
        }
        Endpoint::OllamaEmbed => {
            check_input(&body, false)?;
            false
        }
        Endpoint::OllamaEmbeddings => {
            match body.get("prompt") {
                Some(Value::String(_)) => {}
                None => return Err(WireError::new("prompt", "missing")),
                Some(v) => return Err(expected("prompt", "a string", v)),
            }
            false
        }
    };
    if front == Front::Ollama {
        match body.get("options") {
            None | Some(Value::Null | Value::Object(_)) => {}
            Some(v) => return Err(expected("options", "an object", v)),
        }
    }
    let session = match optional_str(&body, "session_id")? {
        Some(s) if !s.is_empty() => Some(s.to_owned()),
        _ => optional_str(&body, "user")?
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    };
    Ok(Inbound {
        endpoint,
        model,
        stream,
        body: OnceLock::from(body),
        raw: None,
        session,
        prefix_blocks: blocks.finish(),
        call_id: 0,
    })
}

fn expected(field: impl Into<String>, what: &str, got: &Value) -> WireError {
    WireError::new(field, format!("expected {what}, got {}", kind(got)))
}

fn stream_flag(body: &Map<String, Value>, default: bool) -> Result<bool, WireError> {
    match body.get("stream") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(expected("stream", "a boolean", v)),
    }
}

fn optional_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, WireError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(expected(key, "a string", v)),
    }
}

fn check_images(obj: &Map<String, Value>, path: &str) -> Result<(), WireError> {
    match obj.get("images") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(a)) => match a.iter().position(|v| !v.is_string()) {
            None => Ok(()),
            Some(i) => Err(expected(format!("{path}[{i}]"), "a string", &a[i])),
        },
        Some(v) => Err(expected(path, "an array of strings", v)),
    }
}

fn check_messages(
    body: &Map<String, Value>,
    front: Front,
    blocks: &mut Blocks,
) -> Result<(), WireError> {
    let messages = match body.get("messages") {
        None | Some(Value::Null) if front == Front::Ollama => return Ok(()),
        None | Some(Value::Null) => return Err(WireError::new("messages", "missing")),
        Some(Value::Array(a)) => a,
        Some(v) => return Err(expected("messages", "an array", v)),
    };
    if messages.is_empty() && front == Front::OpenAi {
        return Err(WireError::new("messages", "must not be empty"));
    }
    for (i, m) in messages.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(expected(format!("messages[{i}]"), "an object", m));
        };
        let role = match m.get("role") {
            Some(Value::String(r)) => r,
            None => return Err(WireError::new(format!("messages[{i}].role"), "missing")),
            Some(v) => return Err(expected(format!("messages[{i}].role"), "a string", v)),
        };
        let content = m.get("content");
        match (front, content) {
            (_, None | Some(Value::Null)) => blocks.feed_message(role.as_bytes(), b""),
            (_, Some(Value::String(s))) => blocks.feed_message(role.as_bytes(), s.as_bytes()),
            (Front::OpenAi, Some(Value::Array(parts))) => {
                blocks.feed(role.as_bytes());
                blocks.feed(&[0x1f]);
                check_parts(i, parts, blocks)?;
                blocks.feed(&[0x1e]);
            }
            (Front::OpenAi, Some(v)) => {
                return Err(expected(
                    format!("messages[{i}].content"),
                    "a string, null or an array of parts",
                    v,
                ));
            }
            (Front::Ollama, Some(v)) => {
                return Err(expected(format!("messages[{i}].content"), "a string", v));
            }
        }
        if front == Front::Ollama {
            check_images(m, &format!("messages[{i}].images"))?;
            if let Some(Value::Array(images)) = m.get("images") {
                for image in images.iter().filter_map(Value::as_str) {
                    blocks.feed(image.as_bytes());
                }
            }
        }
    }
    Ok(())
}

fn check_parts(i: usize, parts: &[Value], blocks: &mut Blocks) -> Result<(), WireError> {
    for (k, part) in parts.iter().enumerate() {
        let field = || format!("messages[{i}].content[{k}]");
        let Value::Object(part) = part else {
            return Err(expected(field(), "an object", part));
        };
        let ty = match part.get("type") {
            Some(Value::String(t)) => t,
            None => return Err(WireError::new(format!("{}.type", field()), "missing")),
            Some(v) => return Err(expected(format!("{}.type", field()), "a string", v)),
        };
        if ty == "text" {
            match part.get("text") {
                Some(Value::String(t)) => blocks.feed(t.as_bytes()),
                None => return Err(WireError::new(format!("{}.text", field()), "missing")),
                Some(v) => return Err(expected(format!("{}.text", field()), "a string", v)),
            }
        } else if let Some(url) = part
            .get("image_url")
            .and_then(|u| u.get("url"))
            .and_then(Value::as_str)
        {
            blocks.feed(url.as_bytes());
        } else {
            blocks.feed(ty.as_bytes());
        }
    }
    Ok(())
}

fn check_input(body: &Map<String, Value>, tokens_allowed: bool) -> Result<(), WireError> {
    let what = if tokens_allowed {
        "a string, an array of strings or an array of token arrays"
    } else {
        "a string or an array of strings"
    };
    let items = match body.get("input") {
        Some(Value::String(_)) => return Ok(()),
        None => return Err(WireError::new("input", "missing")),
        Some(Value::Array(a)) => a,
        Some(v) => return Err(expected("input", what, v)),
    };
    let Some(first) = items.first() else {
        return if tokens_allowed {
            Err(WireError::new("input", "must not be empty"))
        } else {
            Ok(())
        };
    };
    let is_token = |v: &Value| v.as_u64().is_some_and(|t| t <= u64::from(u32::MAX));
    let is_tokens = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(is_token));
    // Every element must have the first one's form.
    let (ok, elem): (&dyn Fn(&Value) -> bool, &str) = match first {
        Value::String(_) => (&Value::is_string, "a string"),
        Value::Number(_) if tokens_allowed => (&is_token, "a token id (integer)"),
        Value::Array(_) if tokens_allowed => (&is_tokens, "an array of token ids"),
        v => return Err(expected("input[0]", what, v)),
    };
    match items.iter().position(|v| !ok(v)) {
        None => Ok(()),
        Some(i) => Err(expected(format!("input[{i}]"), elem, &items[i])),
    }
}

/// Hashes the leading prompt in fixed-size blocks: each message contributes
/// its role, a 0x1f byte, its text (text parts, image URLs or images) and a
/// 0x1e byte. Only full blocks count, except that a prompt shorter than one
/// block counts as one block, so short repeated prompts still share a key.
/// The same conversation hashes the same through either front.
pub(crate) struct Blocks {
    buf: [u8; PREFIX_BLOCK_BYTES],
    len: usize,
    hashes: Vec<u64>,
}

impl Blocks {
    pub(crate) fn new() -> Blocks {
        Blocks {
            buf: [0; PREFIX_BLOCK_BYTES],
            len: 0,
            hashes: Vec::new(),
        }
    }

    pub(crate) fn feed_message(&mut self, role: &[u8], text: &[u8]) {
        self.feed(role);
        self.feed(&[0x1f]);
        self.feed(text);
        self.feed(&[0x1e]);
    }

    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.hashes.len() < PREFIX_MAX_BLOCKS {
            let take = (PREFIX_BLOCK_BYTES - self.len).min(bytes.len());
            self.buf[self.len..self.len + take].copy_from_slice(&bytes[..take]);
            self.len += take;
            bytes = &bytes[take..];
            if self.len == PREFIX_BLOCK_BYTES {
                self.hashes.push(block_hash(&self.buf));
                self.len = 0;
            }
        }
    }

    /// How many more bytes count towards the hashes.
    pub(crate) fn room(&self) -> usize {
        (PREFIX_MAX_BLOCKS - self.hashes.len()) * PREFIX_BLOCK_BYTES - self.len
    }

    pub(crate) fn finish(mut self) -> Vec<u64> {
        if self.hashes.is_empty() && self.len > 0 {
            self.hashes.push(block_hash(&self.buf[..self.len]));
        }
        self.hashes
    }
}

/// A stable 64-bit hash of one block: 8 bytes at a time, multiply-rotate,
/// then SplitMix64's finaliser. Stable across builds and platforms (it only
/// uses little-endian loads and fixed constants), so keys survive restarts.
pub(crate) fn block_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(K).rotate_left(29);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut a = [0u8; 8];
        a[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(K).rotate_left(29);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}
