//! Streamed replies: upstream stream bytes in, client stream bytes out, at
//! any chunk boundary.
//!
//! OpenAI-compatible nodes stream SSE `chat.completion.chunk` (or
//! `text_completion` for `/v1/completions`) events ending with
//! `data: [DONE]`; Ollama streams JSON lines ending with a line carrying
//! `"done": true`. Same format: every complete event or line is parsed (to
//! find the first token and the end, and to catch bad JSON and error
//! objects) and written out as received, except that a top-level `model`
//! naming the node-local model is replaced by the client's (a scan, no
//! re-serialisation). Other format: translated event by event.
//!
//! Only complete events and lines are written, so the output can always be
//! ended cleanly by [`StreamTranslator::error_event`]. Output for an OpenAI
//! client always ends with `data: [DONE]\n\n`. Bytes after the end marker are
//! ignored.
//!
//! **First token**: the first event or line carrying non-empty text
//! (`delta.content`, `text`, Ollama `message.content` or `response`),
//! reasoning text (`reasoning_content`/`reasoning`, Ollama `thinking`) or a
//! tool call. A chunk with only a role, or an empty final line, is not a
//! token; a stream may end without one.
//!
//! Translation OpenAI → Ollama sends tool calls, whose arguments OpenAI
//! streams in pieces, as one line once the stream ends; Ollama → OpenAI sends
//! a `usage` chunk only when the client asked for it with
//! `stream_options.include_usage`. Only the first choice of an OpenAI chunk
//! is translated.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::response::{
    OllamaReply, OpenAiReply, UpstreamError, Usage, done_reason, finish_reason,
    tool_call_to_ollama, tool_calls_to_openai, upstream_error,
};
use super::{DEFAULT_MAX_LINE, Endpoint, Front, Inbound, InvalidReply, json as j};
use super::{NdjsonParser, ParseError, SseItem, SseParser};
use drover_core::node::NodeKind;

/// How far a stream has come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// A token has been seen so far (see the module docs for the rule).
    pub first_token: bool,
    /// The upstream's end marker has been seen; the output is complete.
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// OpenAI client, OpenAI node: SSE as received.
    PassSse,
    /// Ollama client, Ollama node: lines as received.
    PassNdjson,
    /// OpenAI chat client, Ollama chat node.
    OllamaToOpenAi,
    /// Ollama chat client, OpenAI chat node.
    OpenAiToOllamaChat,
    /// Ollama generate client, OpenAI `/v1/completions` node.
    OpenAiToOllamaGenerate,
    /// Embeddings are never streamed.
    Unsupported,
}

#[derive(Debug)]
enum Upstream {
    Sse(SseParser),
    Ndjson(NdjsonParser),
}

/// A tool call being assembled from OpenAI stream deltas.
#[derive(Debug, Default)]
struct ToolCall {
    index: u64,
    name: String,
    arguments: String,
}

/// Translates (or passes through) one streamed reply: fed upstream bytes at
/// any chunk boundary, writes client-format bytes.
#[derive(Debug)]
pub struct StreamTranslator {
    mode: Mode,
    client: Front,
    upstream: Upstream,
    model: String,
    quoted_model: Vec<u8>,
    id: String,
    created: Option<i64>,
    created_at: String,
    include_usage: bool,
    first_token: bool,
    done: bool,
    role_sent: bool,
    tool_calls: usize,
    finish: Option<&'static str>,
    usage: Option<Usage>,
    tools: Vec<ToolCall>,
    scratch: Vec<u8>,
}

#[derive(Serialize, Default)]
struct DeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<Value>>,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    delta: DeltaOut<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: Vec<ChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<Value>>,
}

#[derive(Serialize)]
struct LineOut<'a> {
    model: &'a str,
    created_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a str>,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    done_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_eval_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eval_count: Option<u64>,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Pass-through bytes go out as received, but the parse skips what it does
/// not need without checking it.
fn not_utf8(bytes: &[u8]) -> Result<(), InvalidReply> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(()),
        Err(_) => Err(InvalidReply::new("stream data is not UTF-8")),
    }
}

/// What a pass-through stream needs from an event or line once the first
/// token was seen.
#[derive(Deserialize)]
struct Light<'a> {
    #[serde(default)]
    done: bool,
    #[serde(default, borrow)]
    error: Option<UpstreamError<'a>>,
}

/// Stream events and lines must be JSON objects.
fn object(bytes: &[u8]) -> Result<(), InvalidReply> {
    match bytes.trim_ascii_start().first() {
        Some(b'{') => Ok(()),
        _ => Err(InvalidReply::new("stream data is not a JSON object")),
    }
}

fn invalid(e: ParseError) -> InvalidReply {
    InvalidReply::new(e.to_string())
}

fn bad_json(what: &str, e: &serde_json::Error) -> InvalidReply {
    InvalidReply::new(format!("bad {what} in stream: {e}"))
}

impl StreamTranslator {
    /// A translator for `inb`'s reply from a node of `kind`, with the
    /// parsers' default line limit ([`DEFAULT_MAX_LINE`]).
    pub fn new(inb: &Inbound, kind: NodeKind) -> Self {
        StreamTranslator::with_max_line(inb, kind, DEFAULT_MAX_LINE)
    }

    /// A translator whose upstream parser accepts lines up to `max_line`
    /// bytes. Embedding endpoints are never streamed: for them every
    /// [`push`](StreamTranslator::push) fails.
    pub fn with_max_line(inb: &Inbound, kind: NodeKind, max_line: usize) -> Self {
        let mode = match (inb.endpoint, kind) {
            (Endpoint::ChatCompletions, NodeKind::OpenAiCompat) => Mode::PassSse,
            (Endpoint::ChatCompletions, NodeKind::Ollama) => Mode::OllamaToOpenAi,
            (Endpoint::OllamaChat | Endpoint::OllamaGenerate, NodeKind::Ollama) => Mode::PassNdjson,
            (Endpoint::OllamaChat, NodeKind::OpenAiCompat) => Mode::OpenAiToOllamaChat,
            (Endpoint::OllamaGenerate, NodeKind::OpenAiCompat) => Mode::OpenAiToOllamaGenerate,
            _ => Mode::Unsupported,
        };
        let upstream = match kind {
            NodeKind::OpenAiCompat => Upstream::Sse(SseParser::strict(max_line)),
            NodeKind::Ollama => Upstream::Ndjson(NdjsonParser::new(max_line)),
        };
        // Only a translated OpenAI stream reports usage itself (and only it
        // needs the parsed body).
        let include_usage = mode == Mode::OllamaToOpenAi
            && inb
                .body()
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                == Some(true);
        StreamTranslator {
            mode,
            client: inb.endpoint.front(),
            upstream,
            model: inb.model.clone(),
            quoted_model: j::quoted(&inb.model),
            // Only translated streams name an id or a time; pass-through
            // streams skip making them.
            id: match mode {
                Mode::OllamaToOpenAi => j::prefixed_hex("chatcmpl-", inb.call_id),
                _ => String::new(),
            },
            created: None,
            created_at: match mode {
                Mode::OpenAiToOllamaChat | Mode::OpenAiToOllamaGenerate => j::unix_to_rfc3339(0),
                _ => String::new(),
            },
            include_usage,
            first_token: false,
            done: false,
            role_sent: false,
            tool_calls: 0,
            finish: None,
            usage: None,
            tools: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The client's `Content-Type`: `text/event-stream` (OpenAI) or
    /// `application/x-ndjson` (Ollama).
    pub fn content_type(&self) -> &'static str {
        match self.client {
            Front::OpenAi => "text/event-stream",
            Front::Ollama => "application/x-ndjson",
        }
    }

    /// How far the stream has come.
    pub fn progress(&self) -> Progress {
        Progress {
            first_token: self.first_token,
            done: self.done,
        }
    }

    /// Feeds upstream bytes and appends the client bytes of every event or
    /// line they complete to `out`. An [`InvalidReply`] (bad JSON, an error
    /// object, an overlong line, not SSE) ends the stream: the caller fails
    /// over or, once bytes reached the client, writes
    /// [`error_event`](StreamTranslator::error_event).
    pub fn push(&mut self, upstream: &[u8], out: &mut Vec<u8>) -> Result<Progress, InvalidReply> {
        if self.mode == Mode::Unsupported {
            return Err(InvalidReply::new("embeddings are not streamed"));
        }
        if !self.done {
            match &mut self.upstream {
                Upstream::Sse(p) => p.feed(upstream),
                Upstream::Ndjson(p) => p.feed(upstream),
            }
            self.drain(out)?;
        }
        Ok(self.progress())
    }

    /// The upstream's end of input: completes a last unterminated event or
    /// line; an [`InvalidReply`] when the end marker was never seen.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), InvalidReply> {
        if self.mode == Mode::Unsupported {
            return Err(InvalidReply::new("embeddings are not streamed"));
        }
        if !self.done {
            match &mut self.upstream {
                Upstream::Sse(p) => p.finish(),
                Upstream::Ndjson(p) => p.finish(),
            }
            self.drain(out)?;
        }
        if self.done {
            Ok(())
        } else {
            Err(InvalidReply::new("stream ended without its end marker"))
        }
    }

    /// Appends a well-formed terminal error in the client's format: SSE
    /// `data: {"error":{"message":..,"type":"upstream_error"}}` and
    /// `data: [DONE]`, or the NDJSON line `{"error":".."}`.
    pub fn error_event(&self, message: &str, out: &mut Vec<u8>) {
        match self.client {
            Front::OpenAi => {
                out.extend_from_slice(b"data: ");
                let error = json!({"error": {"message": message, "type": "upstream_error"}});
                j::write(out, &error);
                out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
            }
            Front::Ollama => {
                j::write(out, &json!({ "error": message }));
                out.push(b'\n');
            }
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) -> Result<(), InvalidReply> {
        // The parser is taken out of `self` while its items borrow it.
        let mut upstream =
            std::mem::replace(&mut self.upstream, Upstream::Ndjson(NdjsonParser::new(0)));
        let result = match &mut upstream {
            Upstream::Sse(p) => self.drain_sse(p, out),
            Upstream::Ndjson(p) => self.drain_ndjson(p, out),
        };
        self.upstream = upstream;
        result
    }

    fn drain_sse(&mut self, p: &mut SseParser, out: &mut Vec<u8>) -> Result<(), InvalidReply> {
        while !self.done {
            match p.next_item().map_err(invalid)? {
                None => break,
                Some(SseItem::Done { .. }) => {
                    self.done = true;
                    match self.mode {
                        Mode::PassSse => out.extend_from_slice(b"data: [DONE]\n\n"),
                        _ => self.end_ollama(out),
                    }
                }
                Some(SseItem::Empty { raw }) => {
                    if self.mode == Mode::PassSse && (raw.ends_with(b"\n") || raw.ends_with(b"\r"))
                    {
                        out.extend_from_slice(raw);
                    }
                }
                Some(SseItem::Data { data, raw }) => {
                    object(data)?;
                    if self.mode == Mode::PassSse && self.first_token {
                        // Past the first token only the end, errors and
                        // validity matter: one validating scan, or a
                        // cheaper parse when the scan cannot decide.
                        if let Some(top) = j::scan_object(data).filter(|t| !t.unusual) {
                            self.pass_sse_with(data, raw, top.model, out);
                            continue;
                        }
                        let light: Light<'_> =
                            serde_json::from_slice(data).map_err(|e| bad_json("event", &e))?;
                        upstream_error(&light.error)?;
                        not_utf8(data)?;
                        self.pass_sse(data, raw, out);
                        continue;
                    }
                    let chunk: OpenAiReply<'_> =
                        serde_json::from_slice(data).map_err(|e| bad_json("event", &e))?;
                    upstream_error(&chunk.error)?;
                    match self.mode {
                        Mode::PassSse => {
                            not_utf8(data)?;
                            self.first_token |= chunk.choices.iter().any(|c| {
                                let d = c.delta.as_ref();
                                non_empty(d.and_then(|d| d.content.as_deref())).is_some()
                                    || non_empty(d.and_then(|d| d.thinking())).is_some()
                                    || d.and_then(|d| d.tool_calls.as_ref())
                                        .is_some_and(|t| !t.is_empty())
                                    || non_empty(c.text.as_deref()).is_some()
                            });
                            self.pass_sse(data, raw, out);
                        }
                        _ => self.openai_to_ollama(&chunk, out),
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes one SSE event as received, or normalised with the client's
    /// model when the event names another.
    fn pass_sse(&mut self, data: &[u8], raw: &[u8], out: &mut Vec<u8>) {
        let model = j::top_level_string(data, "model");
        self.pass_sse_with(data, raw, model, out);
    }

    /// [`Self::pass_sse`] with the range of the event's `model` string
    /// already known.
    fn pass_sse_with(
        &mut self,
        data: &[u8],
        raw: &[u8],
        model: Option<std::ops::Range<usize>>,
        out: &mut Vec<u8>,
    ) {
        match model {
            Some(r) if data[r.clone()] != self.quoted_model[..] => {
                self.scratch.clear();
                j::write_with_model_at(data, Some(r), &self.quoted_model, &mut self.scratch);
                for line in self.scratch.split(|&b| b == b'\n') {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(line);
                    out.push(b'\n');
                }
                out.push(b'\n');
            }
            _ => out.extend_from_slice(raw),
        }
    }

    fn drain_ndjson(
        &mut self,
        p: &mut NdjsonParser,
        out: &mut Vec<u8>,
    ) -> Result<(), InvalidReply> {
        while !self.done {
            let Some(line) = p.next_line().map_err(invalid)? else {
                break;
            };
            object(line)?;
            if self.mode == Mode::PassNdjson && self.first_token {
                if let Some(top) = j::scan_object(line).filter(|t| !t.unusual) {
                    j::write_with_model_at(line, top.model, &self.quoted_model, out);
                    out.push(b'\n');
                    self.done = top.done.unwrap_or(false);
                    continue;
                }
                let light: Light<'_> =
                    serde_json::from_slice(line).map_err(|e| bad_json("line", &e))?;
                upstream_error(&light.error)?;
                not_utf8(line)?;
                j::write_with_model(line, &self.quoted_model, out);
                out.push(b'\n');
                self.done = light.done;
                continue;
            }
            let reply: OllamaReply<'_> =
                serde_json::from_slice(line).map_err(|e| bad_json("line", &e))?;
            upstream_error(&reply.error)?;
            match self.mode {
                Mode::PassNdjson => {
                    not_utf8(line)?;
                    let msg = reply.message.as_ref();
                    self.first_token |= non_empty(msg.and_then(|m| m.content.as_deref())).is_some()
                        || non_empty(msg.and_then(|m| m.thinking.as_deref())).is_some()
                        || msg
                            .and_then(|m| m.tool_calls.as_ref())
                            .is_some_and(|t| !t.is_empty())
                        || non_empty(reply.response.as_deref()).is_some()
                        || non_empty(reply.thinking.as_deref()).is_some();
                    j::write_with_model(line, &self.quoted_model, out);
                    out.push(b'\n');
                    self.done = reply.done;
                }
                _ => self.ollama_to_openai(&reply, out)?,
            }
        }
        Ok(())
    }

    fn write_chunk(&self, out: &mut Vec<u8>, chunk: &ChunkOut<'_>) {
        out.extend_from_slice(b"data: ");
        j::write(out, chunk);
        out.extend_from_slice(b"\n\n");
    }

    /// Writes one `chat.completion.chunk` event with at most one choice.
    fn write_event(
        &self,
        out: &mut Vec<u8>,
        created: i64,
        choice: Option<(DeltaOut<'_>, Option<&str>)>,
        usage: Option<Usage>,
    ) {
        let choices = choice
            .map(|(delta, finish_reason)| ChoiceOut {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            })
            .into_iter()
            .collect();
        let chunk = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created,
            model: &self.model,
            choices,
            usage,
        };
        self.write_chunk(out, &chunk);
    }

    fn ollama_to_openai(
        &mut self,
        line: &OllamaReply<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), InvalidReply> {
        let Some(msg) = line.message.as_ref() else {
            return Err(InvalidReply::new("stream line without `message`"));
        };
        if self.created.is_none() {
            self.created = line.created_at.as_deref().and_then(j::rfc3339_to_unix);
        }
        let created = self.created.unwrap_or(0);
        let content = non_empty(msg.content.as_deref());
        let thinking = non_empty(msg.thinking.as_deref());
        let calls = msg.tool_calls.as_deref().filter(|c| !c.is_empty());
        if content.is_some() || thinking.is_some() || calls.is_some() {
            self.first_token = true;
            let tool_calls = calls.map(|c| tool_calls_to_openai(c, self.tool_calls, true));
            self.tool_calls += calls.map_or(0, <[Value]>::len);
            let delta = DeltaOut {
                role: (!self.role_sent).then_some("assistant"),
                content,
                reasoning_content: thinking,
                tool_calls,
            };
            self.role_sent = true;
            self.write_event(out, created, Some((delta, None)), None);
        }
        if line.done {
            self.done = true;
            let finish = finish_reason(line.done_reason.as_deref(), self.tool_calls > 0);
            let delta = DeltaOut {
                role: (!self.role_sent).then_some("assistant"),
                ..DeltaOut::default()
            };
            self.write_event(out, created, Some((delta, Some(finish))), None);
            if self.include_usage {
                let usage = Usage::new(line.prompt_eval_count, line.eval_count);
                self.write_event(out, created, None, Some(usage));
            }
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
        Ok(())
    }

    fn write_line(
        &self,
        out: &mut Vec<u8>,
        message: Option<MessageOut<'_>>,
        response: Option<&str>,
    ) {
        let line = LineOut {
            model: &self.model,
            created_at: &self.created_at,
            message,
            response,
            done: false,
            done_reason: None,
            prompt_eval_count: None,
            eval_count: None,
        };
        j::write(out, &line);
        out.push(b'\n');
    }

    fn openai_to_ollama(&mut self, chunk: &OpenAiReply<'_>, out: &mut Vec<u8>) {
        if self.created.is_none() {
            if let Some(c) = chunk.created {
                self.created = Some(c);
                self.created_at = j::unix_to_rfc3339(c);
            }
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.choices.first() else {
            return;
        };
        if let Some(f) = choice.finish_reason.as_deref() {
            self.finish = Some(done_reason(Some(f)));
        }
        if self.mode == Mode::OpenAiToOllamaGenerate {
            if let Some(text) = non_empty(choice.text.as_deref()) {
                self.first_token = true;
                self.write_line(out, None, Some(text));
            }
            return;
        }
        let Some(delta) = choice.delta.as_ref() else {
            return;
        };
        for call in delta.tool_calls.iter().flatten() {
            self.first_token = true;
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let f = call.get("function");
            let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
            let args = f.and_then(|f| f.get("arguments")).and_then(Value::as_str);
            let pos = match self.tools.iter().position(|t| t.index == index) {
                Some(p) => p,
                None => {
                    self.tools.push(ToolCall {
                        index,
                        ..ToolCall::default()
                    });
                    self.tools.len() - 1
                }
            };
            let t = &mut self.tools[pos];
            t.name.push_str(name.unwrap_or(""));
            t.arguments.push_str(args.unwrap_or(""));
        }
        let content = non_empty(delta.content.as_deref());
        let thinking = non_empty(delta.thinking());
        if content.is_some() || thinking.is_some() {
            self.first_token = true;
            let message = MessageOut {
                role: "assistant",
                content: content.unwrap_or(""),
                thinking,
                tool_calls: None,
            };
            self.write_line(out, Some(message), None);
        }
    }

    /// The end of an OpenAI stream for an Ollama client: assembled tool
    /// calls, then the `done` line.
    fn end_ollama(&mut self, out: &mut Vec<u8>) {
        if !self.tools.is_empty() {
            let calls = self
                .tools
                .iter()
                .map(|t| tool_call_to_ollama(&t.name, &t.arguments))
                .collect();
            let message = MessageOut {
                role: "assistant",
                content: "",
                thinking: None,
                tool_calls: Some(calls),
            };
            self.write_line(out, Some(message), None);
        }
        let usage = self.usage.unwrap_or_default();
        let generate = self.mode == Mode::OpenAiToOllamaGenerate;
        let line = LineOut {
            model: &self.model,
            created_at: &self.created_at,
            message: (!generate).then_some(MessageOut {
                role: "assistant",
                content: "",
                thinking: None,
                tool_calls: None,
            }),
            response: generate.then_some(""),
            done: true,
            done_reason: Some(self.finish.unwrap_or("stop")),
            prompt_eval_count: Some(usage.prompt_tokens),
            eval_count: Some(usage.completion_tokens),
        };
        j::write(out, &line);
        out.push(b'\n');
    }
}
