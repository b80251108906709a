//! Operator endpoints: status, metrics, nodes and their modes, route
//! preview and decision traces. All but `/status` answer only on loopback
//! (see `operator_auth` in [`super::http`]).
//!
//! - `GET /status`: public-safe counts; per-node detail when asked from
//!   loopback.
//! - `GET /metrics`: Prometheus text.
//! - `GET /nodes`: every node with its mode, the reason for it, load,
//!   breaker and health.
//! - `POST /nodes/{name}/mode` with `{"mode": "enabled" | "drain" |
//!   "disabled", "reason": "..."}`: sets a node's mode. The mode is saved in
//!   the state file at once, so it survives a restart.
//! - `POST /route/preview` with `{"model": "...", "op": "chat" | "stream" |
//!   "embed", "session": "..."}` (all optional): the nodes the router would
//!   pick, scored, and why each other node is excluded. Nothing is sent.
//! - `GET /trace/{id}`: the decision events of one call; `id` is the
//!   `X-Drover-Trace` header of its response.

use std::net::IpAddr;
use std::sync::Arc;

use drover_core::node::Mode;
use drover_core::route::{Op, Query};
use drover_core::trace::TraceId;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use super::body::GwBody;
use super::gateway::Gateway;
use super::http::{HttpError, error, json_response, read_body};
use super::state::{self, ModeRecord};
use crate::ops;
use crate::wire::Front;

/// True for paths served by [`handle`].
pub fn is_operator_path(p: &str) -> bool {
    p == "/metrics"
        || p == "/nodes"
        || p.starts_with("/nodes/")
        || p == "/route/preview"
        || p.starts_with("/trace/")
}

/// `GET /status`.
pub fn status(gw: &Gateway, peer: IpAddr) -> Response<GwBody> {
    let now = gw.now();
    let mut out = String::new();
    if peer.is_loopback() {
        gw.router
            .with(|r| ops::status_detail(r, &gw.stats, now, &mut out));
    } else {
        gw.router
            .with(|r| ops::status_public(r, &gw.stats, now, &mut out));
    }
    json_response(StatusCode::OK, out)
}

/// Answers an operator request (already authorised).
pub async fn handle(
    gw: &Arc<Gateway>,
    req: http::Request<Incoming>,
    _trace: TraceId,
) -> Response<GwBody> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let now = gw.now();
    let result: Result<Response<GwBody>, HttpError> = match (&method, path.as_str()) {
        (&Method::GET, "/metrics") => {
            let mut out = String::with_capacity(32 * 1024);
            gw.router
                .with(|r| ops::prometheus(r, &gw.stats, now, &mut out));
            let mut resp = Response::new(GwBody::full(out));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Ok(resp)
        }
        (&Method::GET, "/nodes") => {
            let mut out = String::new();
            let modes = gw
                .modes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let reason = |n: &str| modes.get(n).map(|m| m.reason.as_str());
            gw.router
                .with(|r| ops::nodes_json_with_reasons(r, now, &reason, &mut out));
            Ok(json_response(StatusCode::OK, out))
        }
        (&Method::POST, p) if mode_node(p).is_some() => {
            let name = mode_node(p).unwrap_or_default().to_owned();
            set_mode(gw, &name, req).await
        }
        (&Method::POST, "/route/preview") => preview(gw, req).await,
        (&Method::GET, p) if p.starts_with("/trace/") => {
            let id = &p["/trace/".len()..];
            match TraceId::parse_hex(id) {
                None => Err(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_trace_id",
                    format!("`{id}` is not a trace id (16 hex digits, from X-Drover-Trace)"),
                )),
                Some(t) => {
                    let mut out = String::new();
                    let found = gw.router.with(|r| ops::trace_json(r, t, &mut out));
                    if found {
                        Ok(json_response(StatusCode::OK, out))
                    } else {
                        Err(HttpError::new(
                            StatusCode::NOT_FOUND,
                            "trace_not_found",
                            format!(
                                "no decision events for trace {id} (the ring keeps the most recent ones)"
                            ),
                        ))
                    }
                }
            }
        }
        (m, p) => return super::http::not_allowed_or_found(m, p),
    };
    result.unwrap_or_else(|e| error(Front::OpenAi, e))
}

/// The node name of a `/nodes/{name}/mode` path: not empty, without `/`.
pub fn mode_node(path: &str) -> Option<&str> {
    path.strip_prefix("/nodes/")?
        .strip_suffix("/mode")
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

/// An operator request body: a JSON object (or nothing, when
/// `empty_ok`), else a 400. A JSON array used to pass as an empty query
/// (found by schemathesis: `POST /route/preview` with `[null, null]`).
fn object_body(body: &[u8], empty_ok: bool) -> Result<serde_json::Map<String, Value>, HttpError> {
    if empty_ok && body.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(v) => Err(bad(
            "body",
            format!("must be a JSON object, got {}", crate::wire::json_kind(&v)),
        )),
        Err(e) => Err(bad("body", format!("not valid JSON: {e}"))),
    }
}

/// A 400 naming the field at fault.
fn bad(field: &str, why: String) -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("field `{field}`: {why}"),
    )
}

async fn set_mode(
    gw: &Arc<Gateway>,
    name: &str,
    req: http::Request<Incoming>,
) -> Result<Response<GwBody>, HttpError> {
    let body = read_body(gw, req).await?;
    let v = object_body(&body, false)?;
    let mode = match v.get("mode") {
        None => return Err(bad("mode", "missing (enabled, drain or disabled)".into())),
        Some(Value::String(s)) => match s.as_str() {
            "enabled" | "enable" => Mode::Enabled,
            "drain" | "draining" => Mode::Drain,
            "disabled" | "disable" => Mode::Disabled,
            other => {
                return Err(bad(
                    "mode",
                    format!("`{other}` is not a mode (enabled, drain or disabled)"),
                ));
            }
        },
        Some(_) => return Err(bad("mode", "must be a string".into())),
    };
    let reason = match v.get("reason") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.len() <= 256 => s.clone(),
        Some(Value::String(_)) => return Err(bad("reason", "longer than 256 bytes".into())),
        Some(_) => return Err(bad("reason", "must be a string".into())),
    };
    let Some(id) = gw.router.with(|r| r.nodes().find(name)) else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "node_not_found",
            format!("no node named `{name}` (GET /nodes lists them)"),
        ));
    };
    gw.router
        .set_mode(id, mode, gw.now())
        .map_err(|e| HttpError::new(StatusCode::CONFLICT, "mode_refused", e.to_string()))?;
    gw.modes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(
            name.to_owned(),
            ModeRecord {
                mode,
                reason: reason.clone(),
            },
        );
    gw.deliver_wakeups();
    tracing::info!(
        node = name,
        ?mode,
        reason = reason.as_str(),
        "node mode set by operator"
    );
    if let Some(path) = &gw.state_path {
        if let Err(e) = state::save(gw, path) {
            tracing::warn!("could not save the state file: {e}");
            return Err(HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "state_not_saved",
                format!("mode set, but it could not be saved and will not survive a restart: {e}"),
            ));
        }
    }
    let out = serde_json::json!({"node": name, "mode": mode_label(mode), "reason": reason});
    Ok(json_response(StatusCode::OK, out.to_string()))
}

fn mode_label(m: Mode) -> &'static str {
    match m {
        Mode::Enabled => "enabled",
        Mode::Drain => "drain",
        Mode::Disabled => "disabled",
    }
}

async fn preview(
    gw: &Arc<Gateway>,
    req: http::Request<Incoming>,
) -> Result<Response<GwBody>, HttpError> {
    let body = read_body(gw, req).await?;
    let v = object_body(&body, true)?;
    let op = match v.get("op") {
        None | Some(Value::Null) => Op::Chat,
        Some(Value::String(s)) => match s.as_str() {
            "chat" => Op::Chat,
            "stream" => Op::Stream,
            "embed" => Op::Embed,
            o => return Err(bad("op", format!("`{o}` is not chat, stream or embed"))),
        },
        Some(_) => return Err(bad("op", "must be a string".into())),
    };
    let mut query = Query::new(op);
    match v.get("model") {
        None | Some(Value::Null) => {}
        Some(Value::String(m)) => match gw.model_id(m) {
            Some(id) => query.model = Some(id),
            None if gw.has_open_catalog_node() => {}
            None => {
                return Err(HttpError::new(
                    StatusCode::NOT_FOUND,
                    "model_not_found",
                    format!("model `{m}` is not served by any node"),
                ));
            }
        },
        Some(_) => return Err(bad("model", "must be a string".into())),
    }
    match v.get("session") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => query.session = Some(super::http::hash_str(s)),
        Some(_) => return Err(bad("session", "must be a string".into())),
    }
    let now = gw.now();
    let mut out = String::new();
    gw.router
        .with(|r| ops::preview_json(r, &query, now, &mut out));
    Ok(json_response(StatusCode::OK, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_paths_are_recognised() {
        for p in [
            "/metrics",
            "/nodes",
            "/nodes/a/mode",
            "/route/preview",
            "/trace/00ab",
        ] {
            assert!(is_operator_path(p), "{p}");
        }
        for p in ["/status", "/v1/models", "/metricsx", "/nodesx"] {
            assert!(!is_operator_path(p), "{p}");
        }
    }

    #[test]
    fn operator_bodies_are_json_objects() {
        assert!(object_body(b"", true).is_ok_and(|o| o.is_empty()));
        assert!(object_body(br#"{"op":"chat"}"#, false).is_ok_and(|o| o.len() == 1));
        for (body, empty_ok) in [
            (&b"[null, null]"[..], true),
            (b"5", true),
            (b"\"mode\"", false),
            (b"", false),
            (b"{", true),
        ] {
            let e = object_body(body, empty_ok).expect_err("refused");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.starts_with("field `body`"), "{}", e.message);
        }
    }

    /// `POST /nodes/mode` used to slice `&p[7..6]` and panic (a 500 from
    /// the panic guard); found while checking the API against its OpenAPI
    /// document.
    #[test]
    fn mode_paths_name_one_node_or_none() {
        assert_eq!(mode_node("/nodes/a/mode"), Some("a"));
        assert_eq!(mode_node("/nodes/sim-fast/mode"), Some("sim-fast"));
        for p in [
            "/nodes/mode",
            "/nodes//mode",
            "/nodes/a/b/mode",
            "/nodes/a",
            "/mode",
        ] {
            assert_eq!(mode_node(p), None, "{p}");
        }
    }
}
