//! The wire formats plugged into the blocking driver: [`WireExchange`]
//! builds each node's request and validates its reply with
//! [`crate::wire`], [`WireDecoder`] reads streams with a
//! [`StreamTranslator`], and [`ChatStream`] turns the client-format bytes
//! back into one JSON value per chunk.

use std::collections::VecDeque;

use drover_core::catalog::ModelId;
use drover_core::node::NodeId;
use drover_core::reason::Failure;
use drover_transports::blocking::{
    ChunkStream, Decoder, Exchange, Invalid, Outgoing, Progress, StreamError,
};
use serde_json::Value;

use super::{Client, Error, MAX_CALLS, MAX_NODES, MAX_QUEUED};
use crate::wire::{self, Front, Inbound, NdjsonParser, SseItem, SseParser, StreamTranslator};

/// Longest client-format line the [`ChatStream`] splits (the translator's
/// own lines are bounded by the upstream's).
const MAX_CHUNK_LINE: usize = 4 << 20;

/// One call's protocol: its decoded request and the client's node table.
pub(super) struct WireExchange<'a> {
    pub(super) client: &'a Client,
    pub(super) inb: Inbound,
}

impl Exchange for WireExchange<'_> {
    type Decoder = WireDecoder;

    fn is_stream(&self) -> bool {
        self.inb.stream
    }

    fn request(&self, node: NodeId, model: Option<ModelId>) -> Result<Outgoing, Failure> {
        let entry = self.client.entry(node).ok_or(Failure::Connect)?;
        let name: Option<String> = model.and_then(|m| {
            self.client
                .driver
                .router()
                .with(|r| r.catalog().model_name(m).map(str::to_owned))
        });
        let name = name.as_deref().unwrap_or(self.inb.model.as_str());
        let out = wire::upstream_request(&self.inb, entry.kind, name);
        let addr = self
            .client
            .connect_addr(entry)
            .map_err(|_| Failure::Connect)?;
        let mut headers = Vec::new();
        if entry.addr.is_none() {
            headers.push(("host".to_owned(), entry.authority.clone()));
        }
        if let Some(auth) = &entry.auth {
            headers.push(("authorization".to_owned(), auth.clone()));
        }
        Ok(Outgoing {
            url: format!("http://{addr}{}{}", entry.base_path, out.path),
            body: out.body,
            headers,
        })
    }

    fn reply(&self, node: NodeId, body: &[u8]) -> Result<Vec<u8>, Invalid> {
        let kind = self
            .client
            .entry(node)
            .ok_or_else(|| Invalid("unknown node".into()))?
            .kind;
        wire::translate_response(&self.inb, kind, body).map_err(|e| Invalid(e.reason))
    }

    fn decoder(&self, node: NodeId) -> WireDecoder {
        let kind = self
            .client
            .entry(node)
            .map_or(drover_core::node::NodeKind::OpenAiCompat, |e| e.kind);
        WireDecoder(StreamTranslator::new(&self.inb, kind))
    }

    fn error_message(&self, body: &[u8]) -> String {
        crate::serve::attempt::upstream_error_message(body)
    }
}

/// A [`StreamTranslator`] as the driver's [`Decoder`].
#[derive(Debug)]
pub struct WireDecoder(StreamTranslator);

impl Decoder for WireDecoder {
    fn push(&mut self, upstream: &[u8], out: &mut Vec<u8>) -> Result<Progress, Invalid> {
        self.0
            .push(upstream, out)
            .map(|p| Progress {
                first_token: p.first_token,
                done: p.done,
            })
            .map_err(|e| Invalid(e.reason))
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Invalid> {
        self.0.finish(out).map_err(|e| Invalid(e.reason))
    }
}

/// Splits client-format bytes into chunks.
enum Splitter {
    Sse(SseParser),
    Ndjson(NdjsonParser),
}

/// A streamed chat answer: one JSON chunk per item, in the request's front
/// format; see [`Client::chat_stream`]. After an error item it ends.
pub struct ChatStream {
    inner: Option<ChunkStream<WireDecoder, MAX_NODES, MAX_CALLS, MAX_QUEUED>>,
    splitter: Splitter,
    ready: VecDeque<Result<Value, Error>>,
    node: String,
    attempts: u8,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("node", &self.node)
            .field("attempts", &self.attempts)
            .field("open", &self.inner.is_some())
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    pub(super) fn new(
        inner: ChunkStream<WireDecoder, MAX_NODES, MAX_CALLS, MAX_QUEUED>,
        front: Front,
        node: String,
    ) -> ChatStream {
        let splitter = match front {
            Front::OpenAi => Splitter::Sse(SseParser::new(MAX_CHUNK_LINE)),
            Front::Ollama => Splitter::Ndjson(NdjsonParser::new(MAX_CHUNK_LINE)),
        };
        let attempts = inner.attempts();
        ChatStream {
            inner: Some(inner),
            splitter,
            ready: VecDeque::new(),
            node,
            attempts,
        }
    }

    /// The name of the node that streams the answer.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Attempts the call took before its first chunk (more than 1 after a
    /// failover).
    pub fn attempts(&self) -> u8 {
        self.attempts
    }

    /// Splits `bytes` (or, with `None`, the end of input) into values.
    fn split(&mut self, bytes: Option<&[u8]>) {
        let bad = |e: &dyn std::fmt::Display| {
            Err(Error::Internal(format!(
                "a translated chunk is not valid: {e}"
            )))
        };
        match &mut self.splitter {
            Splitter::Sse(p) => {
                match bytes {
                    Some(b) => p.feed(b),
                    None => p.finish(),
                }
                loop {
                    match p.next_item() {
                        Ok(Some(SseItem::Data { data, .. })) => self
                            .ready
                            .push_back(serde_json::from_slice(data).or_else(|e| bad(&e))),
                        Ok(Some(SseItem::Done { .. } | SseItem::Empty { .. })) => {}
                        Ok(None) => break,
                        Err(e) => {
                            self.ready.push_back(bad(&e));
                            break;
                        }
                    }
                }
            }
            Splitter::Ndjson(p) => {
                match bytes {
                    Some(b) => p.feed(b),
                    None => p.finish(),
                }
                loop {
                    match p.next_line() {
                        Ok(Some(line)) if line.iter().all(u8::is_ascii_whitespace) => {}
                        Ok(Some(line)) => self
                            .ready
                            .push_back(serde_json::from_slice(line).or_else(|e| bad(&e))),
                        Ok(None) => break,
                        Err(e) => {
                            self.ready.push_back(bad(&e));
                            break;
                        }
                    }
                }
            }
        }
    }
}

impl Iterator for ChatStream {
    type Item = Result<Value, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                if item.is_err() {
                    // An error is the last item: close the stream now.
                    self.inner = None;
                    self.ready.clear();
                }
                return Some(item);
            }
            let inner = self.inner.as_mut()?;
            match inner.next() {
                Some(Ok(bytes)) => self.split(Some(&bytes)),
                Some(Err(StreamError { failure, message })) => {
                    self.split(None);
                    self.inner = None;
                    self.ready.push_back(Err(Error::StreamBroken {
                        failure: failure.label(),
                        message,
                    }));
                }
                None => {
                    self.split(None);
                    self.inner = None;
                }
            }
        }
    }
}
