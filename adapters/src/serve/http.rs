//! HTTP routing: which path does what, who may call it, and how every
//! refusal is answered.
//!
//! | path | who | what |
//! |---|---|---|
//! | `POST /v1/chat/completions`, `/v1/embeddings` | clients | OpenAI front |
//! | `GET /v1/models` | clients | union of node catalogs plus aliases |
//! | `POST /api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings` | clients | Ollama front |
//! | `GET /api/tags`, `/api/version` | clients | Ollama catalog and version |
//! | `GET /status` | anyone | public counts; per-node detail on loopback |
//! | `POST /nodes/heartbeat` | node agents (heartbeat token) | see [`super::heartbeat`] |
//! | `GET /metrics`, `GET /nodes`, `POST /nodes/{name}/mode`, `POST /route/preview`, `GET /trace/{id}` | operators | see [`super::operator`] |
//!
//! Client tokens, when configured, are required from every client that is
//! not on loopback (`Authorization: Bearer TOKEN`). Operator endpoints answer
//! only on loopback, and also need the operator token when one is set.
//!
//! Every response carries `X-Request-ID` (the client's, when it sent a sane
//! one, else a new one) and `X-Drover-Trace`, the trace id that
//! `GET /trace/{id}` explains. Every upstream attempt of a call carries the
//! same `X-Request-ID`.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use drover_core::route::{Query, prefix_key};
use drover_transports::smol::{ConnInfo, ReadError, read_capped};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use super::body::{GwBody, StreamBody};
use super::call::{self, CallError, Reply};
use super::gateway::Gateway;
use super::operator;
use crate::wire::{self, Endpoint, Front};

/// Header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";
/// Header carrying the short trace id.
pub const TRACE_HEADER: &str = "x-drover-trace";

/// Answers one request.
pub async fn handle(
    gw: Arc<Gateway>,
    req: http::Request<Incoming>,
    conn: ConnInfo,
) -> Response<GwBody> {
    let trace = gw.new_trace();
    let request_id = request_id(req.headers(), trace.0);
    let path = req.uri().path();
    let endpoint = match (req.method(), path) {
        (&Method::POST, "/v1/chat/completions") => Some(Endpoint::ChatCompletions),
        (&Method::POST, "/v1/embeddings") => Some(Endpoint::Embeddings),
        (&Method::POST, "/api/chat") => Some(Endpoint::OllamaChat),
        (&Method::POST, "/api/generate") => Some(Endpoint::OllamaGenerate),
        (&Method::POST, "/api/embed") => Some(Endpoint::OllamaEmbed),
        (&Method::POST, "/api/embeddings") => Some(Endpoint::OllamaEmbeddings),
        _ => None,
    };
    let label = endpoint.map_or_else(|| route_label(path), Endpoint::label);
    let mut resp = match endpoint {
        Some(ep) => match client_auth(&gw, &req, conn.peer.ip()) {
            Err(e) => error(ep.front(), e),
            Ok(()) => inference(&gw, ep, req, trace, request_id.clone()).await,
        },
        // Boxed: the operator and catalog routes need a larger future than
        // inference, and hyper copies this one into place for every request.
        None => Box::pin(other(&gw, req, conn.peer.ip(), trace)).await,
    };
    let headers = resp.headers_mut();
    headers.insert(REQUEST_ID, request_id);
    if let Ok(v) = HeaderValue::from_bytes(&wire::hex16(trace.0)) {
        headers.insert(TRACE_HEADER, v);
    }
    gw.stats.record_response(label, resp.status().as_u16());
    resp
}

/// The request id to answer with: the client's when it is 1 to 128
/// visible ASCII characters, else one made from the trace id.
fn request_id(headers: &HeaderMap, trace: u64) -> HeaderValue {
    match headers.get(REQUEST_ID).map(HeaderValue::as_bytes) {
        // Copied, so that the request head's buffer is not kept alive.
        Some(s) if (1..=128).contains(&s.len()) && s.iter().all(u8::is_ascii_graphic) => {
            HeaderValue::from_bytes(s).unwrap_or_else(|_| made_request_id(trace))
        }
        _ => made_request_id(trace),
    }
}

/// `drover-` and the trace id in hex.
fn made_request_id(trace: u64) -> HeaderValue {
    let mut id = *b"drover-0000000000000000";
    id[7..].copy_from_slice(&wire::hex16(trace));
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("drover"))
}

/// A bounded metrics label for a non-inference path.
fn route_label(path: &str) -> &'static str {
    match path {
        "/v1/models" => "models",
        "/api/tags" => "tags",
        "/api/version" => "version",
        "/status" => "status",
        "/metrics" => "metrics",
        "/nodes/heartbeat" => "heartbeat",
        p if p.starts_with("/nodes") => "nodes",
        "/route/preview" => "preview",
        p if p.starts_with("/trace/") => "trace",
        _ => "other",
    }
}

/// A refusal before or instead of a call.
#[derive(Debug)]
pub(crate) struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl HttpError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<CallError> for HttpError {
    fn from(e: CallError) -> Self {
        HttpError {
            status: StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY),
            code: e.code,
            message: e.message,
            retry_after: e.retry_after,
        }
    }
}

/// An error response in the front's JSON shape.
pub(crate) fn error(front: Front, e: HttpError) -> Response<GwBody> {
    let body = wire::error_body(front, e.status.as_u16(), e.code, &e.message);
    let mut resp = json_response(e.status, body);
    if let Some(s) = e.retry_after {
        resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
    }
    if e.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<GwBody> {
    let mut resp = Response::new(GwBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Checks the client token rule.
fn client_auth<B>(gw: &Gateway, req: &http::Request<B>, peer: IpAddr) -> Result<(), HttpError> {
    if gw.cfg.client_tokens.is_empty() || (peer.is_loopback() && !gw.cfg.tokens_on_loopback) {
        return Ok(());
    }
    match bearer(req.headers()) {
        Some(t) if gw.cfg.client_tokens.iter().any(|s| ct_eq(s.expose(), t)) => Ok(()),
        Some(_) => Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the bearer token is not valid for this gateway",
        )),
        None => Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "this gateway needs `Authorization: Bearer TOKEN` from non-loopback clients",
        )),
    }
}

/// Checks the operator rule: loopback only, plus the operator token if set.
pub(crate) fn operator_auth<B>(
    gw: &Gateway,
    req: &http::Request<B>,
    peer: IpAddr,
) -> Result<(), HttpError> {
    if !peer.is_loopback() {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "operator_loopback_only",
            "operator endpoints answer only on loopback",
        ));
    }
    match (&gw.cfg.operator_token, bearer(req.headers())) {
        (None, _) => Ok(()),
        (Some(want), Some(got)) if ct_eq(want.expose(), got) => Ok(()),
        (Some(_), Some(_)) => Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the operator token is not valid",
        )),
        (Some(_), None) => Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "operator endpoints need `Authorization: Bearer OPERATOR_TOKEN`",
        )),
    }
}

pub(crate) fn bearer(h: &HeaderMap) -> Option<&str> {
    let v = h.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares secrets in time independent of where they first differ.
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a request body up to the configured cap.
pub(crate) async fn read_body(
    gw: &Gateway,
    req: http::Request<Incoming>,
) -> Result<Bytes, HttpError> {
    let cap = gw.cfg.limits.max_body_bytes;
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body exceeds the gateway's limit of {cap} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        gw.stats.record_rejection("body_too_large");
        return Err(too_large());
    }
    match read_capped(req.into_body(), cap).await {
        Ok(b) => Ok(b),
        Err(ReadError::TooLarge) => {
            gw.stats.record_rejection("body_too_large");
            Err(too_large())
        }
        Err(e) => Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            format!("the request body could not be read: {e}"),
        )),
    }
}

/// A chat, generate or embeddings call through the router.
async fn inference(
    gw: &Arc<Gateway>,
    ep: Endpoint,
    req: http::Request<Incoming>,
    trace: drover_core::trace::TraceId,
    request_id: HeaderValue,
) -> Response<GwBody> {
    let front = ep.front();
    let body = match read_body(gw, req).await {
        Ok(b) => b,
        Err(e) => return error(front, e),
    };
    let inb = match wire::decode(ep, &body) {
        Ok(mut i) => {
            // Names translated replies (`chatcmpl-<trace>`).
            i.call_id = trace.0;
            i
        }
        Err(e) => {
            gw.stats.record_rejection("bad_request");
            return error(
                front,
                HttpError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
            );
        }
    };
    let mut query = Query::new(inb.op());
    match gw.model_id(&inb.model) {
        Some(id) => query.model = Some(id),
        None if gw.has_open_catalog_node() => {}
        None => {
            gw.stats.record_rejection("unknown_model");
            return error(
                front,
                HttpError::new(
                    StatusCode::NOT_FOUND,
                    "model_not_found",
                    format!(
                        "model `{}` is not served by any node (GET /v1/models lists them)",
                        inb.model
                    ),
                ),
            );
        }
    }
    query.session = inb.session.as_deref().map(hash_str);
    query.prefix = prefix_key(&inb.prefix_blocks, gw.cfg.router.affinity.prefix_key_blocks);
    let payload = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let inb = Arc::new(inb);
    let mut left_early = LeftEarly {
        gw,
        answered: false,
    };
    // The core's call deadline, on the wall clock: a stream is cut there.
    let deadline = std::time::Instant::now() + gw.cfg.timeouts.stream_total;
    let reply = call::drive(gw, inb.clone(), query, trace, payload, request_id).await;
    left_early.answered = true;
    match reply {
        Reply::Full(b) => json_response(StatusCode::OK, b),
        Reply::Stream {
            head,
            rest,
            handle,
            attempt,
        } => {
            let content_type = rest.translator.content_type();
            let body = StreamBody::new(gw.clone(), head, rest, handle, attempt, deadline);
            let mut resp = Response::new(GwBody::Stream(Box::new(body)));
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            h.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            resp
        }
        Reply::Error(e) => {
            if e.status == 404 || e.status == 413 || e.status == 429 || e.status == 503 {
                gw.stats.record_rejection(e.code);
            }
            error(front, e.into())
        }
    }
}

/// Counts a client that went away before its answer started: hyper then
/// drops the request future (and the call handle in it cancels the call)
/// while this guard is not yet `answered`. After that, a disconnect is
/// counted by the [`StreamBody`].
struct LeftEarly<'a> {
    gw: &'a Gateway,
    answered: bool,
}

impl Drop for LeftEarly<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.gw.stats.record_client_disconnect();
        }
    }
}

/// A stable 64-bit hash of a session key (FNV-1a).
pub(crate) fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Everything that is not an inference call.
async fn other(
    gw: &Arc<Gateway>,
    req: http::Request<Incoming>,
    peer: IpAddr,
    trace: drover_core::trace::TraceId,
) -> Response<GwBody> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let catalog = |front: Front| client_auth(gw, &req, peer).map_err(|e| (front, e));
    match (method, path.as_str()) {
        (Method::GET, "/v1/models") => match catalog(Front::OpenAi) {
            Err((f, e)) => error(f, e),
            Ok(()) => json_response(StatusCode::OK, wire::models_openai(&gw.client_models())),
        },
        (Method::GET, "/api/tags") => match catalog(Front::Ollama) {
            Err((f, e)) => error(f, e),
            Ok(()) => json_response(StatusCode::OK, wire::tags_ollama(&gw.client_models())),
        },
        (Method::GET | Method::HEAD, "/api/version") => {
            json_response(StatusCode::OK, wire::version_ollama())
        }
        (Method::GET | Method::HEAD, "/") => {
            // Ollama clients probe `/` for liveness.
            let mut r = Response::new(GwBody::full("drover is running\n"));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        (Method::GET, "/status") => operator::status(gw, peer),
        (Method::POST, "/nodes/heartbeat") => super::heartbeat::handle(gw, req).await,
        (_, p) if operator::is_operator_path(p) => {
            if let Err(e) = operator_auth(gw, &req, peer) {
                return error(Front::OpenAi, e);
            }
            operator::handle(gw, req, trace).await
        }
        (m, p) => not_allowed_or_found(&m, p),
    }
}

/// The methods a known path answers, for `Allow`; `None` for an unknown
/// path.
pub(crate) fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/" | "/api/version" => Some("GET, HEAD"),
        "/v1/models" | "/api/tags" | "/status" | "/metrics" | "/nodes" => Some("GET"),
        "/v1/chat/completions"
        | "/v1/embeddings"
        | "/api/chat"
        | "/api/generate"
        | "/api/embed"
        | "/api/embeddings"
        | "/nodes/heartbeat"
        | "/route/preview" => Some("POST"),
        p if p.starts_with("/trace/") => Some("GET"),
        p if operator::mode_node(p).is_some() => Some("POST"),
        _ => None,
    }
}

/// `405` with `Allow` for a known path asked with another method, else
/// `404`; both in the OpenAI error shape.
pub(crate) fn not_allowed_or_found(method: &Method, path: &str) -> Response<GwBody> {
    let Some(allow) = allowed_methods(path) else {
        return error(
            Front::OpenAi,
            HttpError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such endpoint: {path}"),
            ),
        );
    };
    let mut r = error(
        Front::OpenAi,
        HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path} (allowed: {allow})"),
        ),
    );
    r.headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_made_otherwise() {
        let mut h = HeaderMap::new();
        assert_eq!(request_id(&h, 0xab), "drover-00000000000000ab");
        assert_eq!(request_id(&h, u64::MAX), "drover-ffffffffffffffff");
        h.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h, 1), "abc-123");
        h.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(request_id(&h, 1), "drover-0000000000000001");
        h.insert(REQUEST_ID, HeaderValue::from_str(&"x".repeat(129)).unwrap());
        assert_eq!(request_id(&h, 1), "drover-0000000000000001");
        h.insert(REQUEST_ID, HeaderValue::from_str(&"x".repeat(128)).unwrap());
        assert_eq!(request_id(&h, 1), "x".repeat(128).as_str());
        h.insert(REQUEST_ID, HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert_eq!(request_id(&h, 2), "drover-0000000000000002");
    }

    #[test]
    fn every_known_path_has_its_methods_and_others_are_unknown() {
        let cases = [
            ("/", "GET, HEAD"),
            ("/api/version", "GET, HEAD"),
            ("/v1/models", "GET"),
            ("/api/tags", "GET"),
            ("/status", "GET"),
            ("/metrics", "GET"),
            ("/nodes", "GET"),
            ("/trace/00000000000000ab", "GET"),
            ("/v1/chat/completions", "POST"),
            ("/v1/embeddings", "POST"),
            ("/api/chat", "POST"),
            ("/api/generate", "POST"),
            ("/api/embed", "POST"),
            ("/api/embeddings", "POST"),
            ("/nodes/heartbeat", "POST"),
            ("/route/preview", "POST"),
            ("/nodes/a/mode", "POST"),
        ];
        for (p, allow) in cases {
            assert_eq!(allowed_methods(p), Some(allow), "{p}");
            let r = not_allowed_or_found(&Method::DELETE, p);
            assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{p}");
            assert_eq!(r.headers()[http::header::ALLOW], allow, "{p}");
        }
        for p in [
            "/nope",
            "/nodes/mode",
            "/nodes/a",
            "/v1",
            "/api/chat/",
            "/statusx",
        ] {
            assert_eq!(allowed_methods(p), None, "{p}");
            let r = not_allowed_or_found(&Method::GET, p);
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{p}");
            assert!(r.headers().get(http::header::ALLOW).is_none(), "{p}");
        }
    }

    /// adapters/openapi.yaml names every path drover serves with exactly
    /// the methods it answers (`{name}`/`{id}` stand for any one segment).
    #[test]
    fn the_openapi_document_lists_every_path_and_method() {
        let spec = include_str!("../../openapi.yaml");
        let mut documented: Vec<(String, Vec<String>)> = Vec::new();
        for line in spec.lines() {
            if let Some(p) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
                documented.push((format!("/{p}"), Vec::new()));
            } else if let Some(m) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')) {
                if ["get", "head", "post"].contains(&m) {
                    let (_, methods) = documented.last_mut().expect("a method under a path");
                    methods.push(m.to_ascii_uppercase());
                }
            }
        }
        let mut seen: Vec<String> = documented.iter().map(|(p, _)| p.clone()).collect();
        seen.sort();
        let want = [
            "/",
            "/api/chat",
            "/api/embed",
            "/api/embeddings",
            "/api/generate",
            "/api/tags",
            "/api/version",
            "/metrics",
            "/nodes",
            "/nodes/heartbeat",
            "/nodes/{name}/mode",
            "/route/preview",
            "/status",
            "/trace/{id}",
            "/v1/chat/completions",
            "/v1/embeddings",
            "/v1/models",
        ];
        assert_eq!(seen, want);
        for (path, methods) in documented {
            let concrete = path.replace("{name}", "a").replace("{id}", "00ab");
            let allow = allowed_methods(&concrete).unwrap_or_else(|| panic!("{path} unknown"));
            assert_eq!(methods.join(", "), allow, "{path}");
        }
    }

    #[test]
    fn bearer_tokens_parse_and_compare() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert_eq!(bearer(&h), Some("s3cret"));
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert_eq!(bearer(&h), None);
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
    }
}
