//! The accept loop and the request handler of a fake server: records the
//! request, injects the failure drawn, routes by the server's kind, checks
//! the JSON, and answers after the behaviour's delays.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use drover_core::node::NodeKind;
use http::{Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value};
use smol_hyper::rt::FuturesIo;

use super::body::{self, FakeBody, Script, Tail};
use super::render::{self, Gen, Reply};
use super::state::{Guard, Shared};
use super::{Behaviour, Fail, Outcome};

/// Request bodies above this are refused (413).
const MAX_BODY: usize = 16 << 20;

/// Accepts connections until the executor is gone, serving each on a task.
pub(super) async fn accept_loop(
    listener: smol::net::TcpListener,
    executor: Weak<smol::Executor<'static>>,
    shared: Arc<Shared>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar: back off, then go on.
                drover_transports::smol::Timer::after(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(ex) = executor.upgrade() else { return };
        let shared = Arc::clone(&shared);
        ex.spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&shared), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(FuturesIo::new(stream), svc)
                .await;
        })
        .detach();
    }
}

/// An answer: a response, or an `Err` that makes hyper close the
/// connection without one ([`Fail::Refuse`]).
type Answer = Result<Response<FakeBody>, io::Error>;

fn response(status: StatusCode, content_type: &str, body: FakeBody) -> Response<FakeBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

const JSON: &str = "application/json; charset=utf-8";

/// The server's kind, to shape errors.
struct Ctx {
    shared: Arc<Shared>,
    kind: NodeKind,
}

/// A 4xx/5xx in the server's own shape.
struct Problem {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: &'static str,
}

impl Problem {
    fn bad(message: impl Into<String>, param: Option<&'static str>) -> Problem {
        Problem {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param,
            code: "invalid_request_error",
        }
    }
}

impl Ctx {
    fn error(&self, p: &Problem) -> Response<FakeBody> {
        let body = match self.kind {
            NodeKind::Ollama => render::ollama_error(&p.message),
            NodeKind::OpenAiCompat => {
                let kind = match p.status.as_u16() {
                    400..=499 => "invalid_request_error",
                    _ => "server_error",
                };
                render::openai_error(&p.message, kind, p.param, p.code)
            }
        };
        response(p.status, JSON, body::full(body))
    }

    fn not_found_route(&self) -> Response<FakeBody> {
        match self.kind {
            NodeKind::Ollama => response(
                StatusCode::NOT_FOUND,
                "text/plain",
                body::full(Bytes::from_static(b"404 page not found")),
            ),
            NodeKind::OpenAiCompat => response(
                StatusCode::NOT_FOUND,
                "application/json",
                body::full(Bytes::from_static(b"{\"detail\":\"Not Found\"}")),
            ),
        }
    }

    /// A whole reply, unless the failure drawn garbles or cuts it.
    fn whole(&self, fail: Fail, bytes: Bytes, guard: Guard) -> Response<FakeBody> {
        match fail {
            Fail::Garbage => {
                self.shared.outcome(Outcome::Garbage);
                guard.finish();
                let junk = Bytes::from_static(b"<html><body>502 upstream garbage");
                response(StatusCode::OK, JSON, body::full(junk))
            }
            Fail::BreakAfter(_) => {
                self.shared.outcome(Outcome::Broken);
                let len = bytes.len();
                let mut r = response(StatusCode::OK, JSON, body::cut(bytes, guard));
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
                r
            }
            _ => {
                self.shared.outcome(Outcome::Ok);
                guard.finish();
                response(StatusCode::OK, JSON, body::full(bytes))
            }
        }
    }
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        drover_transports::smol::Timer::after(d).await;
    }
}

/// Answers one request.
async fn handle(shared: Arc<Shared>, req: http::Request<Incoming>) -> Answer {
    let ctx = Ctx {
        kind: shared.spec.kind,
        shared: Arc::clone(&shared),
    };
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let status = if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return Ok(ctx.error(&Problem {
                status,
                message: "could not read the request body".into(),
                param: None,
                code: "invalid_request_error",
            }));
        }
    };
    let path = parts.uri.path();
    let (b, fail) = shared.admit(path, &parts.headers, &body);
    let guard = match early_failure(&ctx, fail, Guard::new(Arc::clone(&shared))).await {
        Ok(answer) => return answer,
        Err(guard) => guard,
    };
    let post = parts.method == Method::POST;
    let get = parts.method == Method::GET || parts.method == Method::HEAD;
    let models = &shared.spec.models;
    match (ctx.kind, path) {
        (NodeKind::Ollama, "/api/chat") if post => {
            generate(&ctx, Gen::OllamaChat, &body, b, fail, guard).await
        }
        (NodeKind::Ollama, "/api/generate") if post => {
            generate(&ctx, Gen::OllamaGenerate, &body, b, fail, guard).await
        }
        (NodeKind::OpenAiCompat, "/v1/chat/completions") if post => {
            generate(&ctx, Gen::OpenAiChat, &body, b, fail, guard).await
        }
        (NodeKind::OpenAiCompat, "/v1/completions") if post => {
            generate(&ctx, Gen::OpenAiCompletions, &body, b, fail, guard).await
        }
        (NodeKind::Ollama, "/api/embed" | "/api/embeddings")
        | (NodeKind::OpenAiCompat, "/v1/embeddings")
            if post =>
        {
            embed(&ctx, path, &body, b, fail, guard).await
        }
        (NodeKind::Ollama, "/api/tags") if get => {
            Ok(ctx.whole(fail, render::ollama_tags(models), guard))
        }
        (NodeKind::Ollama, "/api/version") if get => {
            Ok(ctx.whole(fail, render::ollama_version(), guard))
        }
        (NodeKind::OpenAiCompat, "/v1/models") if get => {
            Ok(ctx.whole(fail, render::openai_models(models), guard))
        }
        _ => {
            shared.outcome(Outcome::NotFound);
            guard.finish();
            Ok(ctx.not_found_route())
        }
    }
}

/// The failures that do not depend on the request: answered here (`Ok`),
/// or the guard is handed back (`Err`) for a normal answer.
async fn early_failure(ctx: &Ctx, fail: Fail, guard: Guard) -> Result<Answer, Guard> {
    let (outcome, status, retry_after, code) = match fail {
        Fail::Refuse => {
            ctx.shared.outcome(Outcome::Refused);
            guard.finish();
            let e = io::Error::new(io::ErrorKind::ConnectionAborted, "fake server: refused");
            return Ok(Err(e));
        }
        Fail::Hang => {
            ctx.shared.outcome(Outcome::Hang);
            // Holds the guard until hyper drops this future (the client
            // went away or the server stops): that counts as cancelled.
            let never: Infallible = smol::future::pending().await;
            drop(guard);
            match never {}
        }
        Fail::Status(code) => (
            Outcome::Status,
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            None,
            "server_error",
        ),
        Fail::TooMany { retry_after_s } => (
            Outcome::TooMany,
            StatusCode::TOO_MANY_REQUESTS,
            Some(retry_after_s),
            "rate_limit_exceeded",
        ),
        Fail::Unavailable => (
            Outcome::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            Some(1),
            "server_overloaded",
        ),
        Fail::None | Fail::Garbage | Fail::BreakAfter(_) => return Err(guard),
    };
    ctx.shared.outcome(outcome);
    guard.finish();
    let mut r = ctx.error(&Problem {
        status,
        message: format!("fake server: injected status {}", status.as_u16()),
        param: None,
        code,
    });
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(s));
    }
    Ok(Ok(r))
}

impl Ctx {
    /// Answers a 400 or 404 about the request.
    fn reject(&self, p: &Problem, guard: Guard) -> Answer {
        let outcome = if p.status == StatusCode::NOT_FOUND {
            Outcome::NotFound
        } else {
            Outcome::BadRequest
        };
        self.shared.outcome(outcome);
        guard.finish();
        Ok(self.error(p))
    }

    /// The request's `model`, which must be one the server serves.
    fn model(&self, req: &Map<String, Value>) -> Result<String, Problem> {
        match req.get("model") {
            Some(Value::String(m)) if self.shared.spec.models.iter().any(|x| x == m) => {
                Ok(m.clone())
            }
            Some(Value::String(m)) => Err(Problem {
                status: StatusCode::NOT_FOUND,
                message: match self.kind {
                    NodeKind::Ollama => format!("model \"{m}\" not found, try pulling it first"),
                    NodeKind::OpenAiCompat => format!("The model `{m}` does not exist."),
                },
                param: Some("model"),
                code: "model_not_found",
            }),
            None | Some(Value::Null) => Err(Problem::bad(
                match self.kind {
                    NodeKind::Ollama => "model is required",
                    NodeKind::OpenAiCompat => "you must provide a model parameter",
                },
                Some("model"),
            )),
            Some(_) => Err(Problem::bad(
                "field `model` must be a string",
                Some("model"),
            )),
        }
    }
}

/// The body as a JSON object.
fn parse(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Problem::bad("the request body must be a JSON object", None)),
        Err(e) => Err(Problem::bad(format!("invalid JSON: {e}"), None)),
    }
}

/// An optional string field ("" when absent).
fn opt_string(req: &Map<String, Value>, field: &'static str) -> Result<String, Problem> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Problem::bad(
            format!("field `{field}` must be a string"),
            Some(field),
        )),
    }
}

/// A string or an array of strings (or of token ids); `None` when absent.
fn strings(req: &Map<String, Value>, field: &'static str) -> Result<Option<Vec<String>>, Problem> {
    let wrong = || {
        Problem::bad(
            format!("field `{field}` must be a string or an array of strings"),
            Some(field),
        )
    };
    match req.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(_) | Value::Array(_) => Ok(v.to_string()),
                _ => Err(wrong()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(wrong()),
    }
}

/// The text of a chat's messages, joined by newlines.
fn messages_text(req: &Map<String, Value>, kind: NodeKind) -> Result<String, Problem> {
    let p = Some("messages");
    let msgs = match req.get("messages") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) if kind == NodeKind::Ollama => return Ok(String::new()),
        None | Some(Value::Null) => return Err(Problem::bad("field `messages` is required", p)),
        Some(_) => return Err(Problem::bad("field `messages` must be an array", p)),
    };
    let mut text = String::new();
    for (i, m) in msgs.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(Problem::bad(
                format!("field `messages[{i}]` must be an object"),
                p,
            ));
        };
        let wrong = || Problem::bad(format!("field `messages[{i}].content` must be a string"), p);
        match m.get("content") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                text.push_str(s);
                text.push('\n');
            }
            // OpenAI's content parts: [{"type": "text", "text": "..."}, ...].
            Some(Value::Array(parts)) if kind == NodeKind::OpenAiCompat => {
                for part in parts {
                    match part.get("text") {
                        Some(Value::String(s)) => text.push_str(s),
                        Some(_) => return Err(wrong()),
                        None if part.is_object() => {}
                        None => return Err(wrong()),
                    }
                }
                text.push('\n');
            }
            Some(_) => return Err(wrong()),
        }
    }
    Ok(text)
}

/// Answers a generating endpoint, streamed or whole.
async fn generate(
    ctx: &Ctx,
    g: Gen,
    body: &Bytes,
    b: Behaviour,
    fail: Fail,
    guard: Guard,
) -> Answer {
    let checked = (|| {
        let req = parse(body)?;
        let model = ctx.model(&req)?;
        let stream = match req.get("stream") {
            None | Some(Value::Null) => ctx.kind == NodeKind::Ollama,
            Some(Value::Bool(s)) => *s,
            Some(_) => {
                return Err(Problem::bad(
                    "field `stream` must be a boolean",
                    Some("stream"),
                ));
            }
        };
        let prompt = match g {
            Gen::OllamaChat | Gen::OpenAiChat => messages_text(&req, ctx.kind)?,
            Gen::OllamaGenerate => opt_string(&req, "prompt")?,
            Gen::OpenAiCompletions => strings(&req, "prompt")?.unwrap_or_default().join("\n"),
        };
        let include_usage = req
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok((model, stream, prompt, include_usage))
    })();
    let (model, stream, prompt, include_usage) = match checked {
        Ok(c) => c,
        Err(p) => return ctx.reject(&p, guard),
    };
    let tokens = render::tokens(ctx.shared.spec.seed, &prompt, b.tokens);
    let n = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
    let gen_time = b
        .token_interval
        .checked_mul(n)
        .and_then(|t| t.checked_add(b.ttft))
        .unwrap_or(Duration::MAX);
    let id_prefix = match g {
        Gen::OpenAiChat => "chatcmpl",
        _ => "cmpl",
    };
    let reply = Reply {
        gen_kind: g,
        model,
        prompt_tokens: render::count_tokens(&prompt),
        tokens,
        include_usage,
        id: format!("{id_prefix}-{:016x}", render::fnv(body)),
        created: render::unix_now(),
        total_ns: u64::try_from(gen_time.as_nanos()).unwrap_or(u64::MAX),
    };
    if !stream {
        sleep(gen_time).await;
        return Ok(ctx.whole(fail, reply.full(), guard));
    }
    let delay = |i: u32| if i == 0 { b.ttft } else { b.token_interval };
    let mut steps = VecDeque::new();
    let tail = match fail {
        Fail::Garbage => {
            ctx.shared.outcome(Outcome::Garbage);
            steps.push_back((b.ttft, reply.garbage_line()));
            Tail::End
        }
        Fail::BreakAfter(k) => {
            ctx.shared.outcome(Outcome::Broken);
            for i in 0..k.min(n) {
                steps.push_back((delay(i), reply.token(i as usize)));
            }
            Tail::Break
        }
        _ => {
            ctx.shared.outcome(Outcome::Ok);
            for i in 0..n {
                steps.push_back((delay(i), reply.token(i as usize)));
            }
            steps.push_back((Duration::ZERO, reply.end()));
            Tail::End
        }
    };
    let script = Script {
        steps,
        tail,
        guard: Some(guard),
    };
    let mut r = response(
        StatusCode::OK,
        reply.stream_content_type(),
        body::stream(script),
    );
    if ctx.kind == NodeKind::OpenAiCompat {
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-cache"),
        );
    }
    Ok(r)
}

/// Answers `/api/embed`, `/api/embeddings` or `/v1/embeddings`.
async fn embed(
    ctx: &Ctx,
    path: &str,
    body: &Bytes,
    b: Behaviour,
    fail: Fail,
    guard: Guard,
) -> Answer {
    let checked = (|| {
        let req = parse(body)?;
        let model = ctx.model(&req)?;
        let inputs = if path == "/api/embeddings" {
            let p = opt_string(&req, "prompt")?;
            if p.is_empty() { Vec::new() } else { vec![p] }
        } else {
            match (strings(&req, "input")?, ctx.kind) {
                (Some(v), _) => v,
                (None, NodeKind::Ollama) => Vec::new(),
                (None, NodeKind::OpenAiCompat) => {
                    return Err(Problem::bad("field `input` is required", Some("input")));
                }
            }
        };
        Ok((model, inputs))
    })();
    let (model, inputs) = match checked {
        Ok(c) => c,
        Err(p) => return ctx.reject(&p, guard),
    };
    sleep(b.embed_time).await;
    let seed = ctx.shared.spec.seed;
    let vectors: Vec<Vec<f32>> = inputs.iter().map(|t| render::embedding(seed, t)).collect();
    let prompt_tokens = inputs.iter().map(|t| render::count_tokens(t)).sum();
    let bytes = match path {
        "/api/embed" => render::ollama_embed(&model, &vectors, prompt_tokens),
        "/api/embeddings" => render::ollama_embeddings(vectors.first().map_or(&[], Vec::as_slice)),
        _ => render::openai_embeddings(&model, &vectors, prompt_tokens),
    };
    Ok(ctx.whole(fail, bytes, guard))
}
