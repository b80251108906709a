//! `POST /nodes/heartbeat`: node agents report their health.
//!
//! An agent (`drover agent`) runs beside a model server and posts, every
//! second or so, a JSON object with camelCase keys:
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `node` | string, required | the node's name in the gateway config |
//! | `protocolVersion` | integer, required | [`PROTOCOL_VERSION`] |
//! | `catalogFingerprint` | string, 1–16 hex digits | hash of the sorted model names |
//! | `models` | list of strings | the server's model names (≤ 1024, each ≤ 64 bytes) |
//! | `maxSlots` | integer, required | concurrent requests the node serves |
//! | `freeSlots` | integer ≤ `maxSlots` | free now (default `maxSlots`) |
//! | `queued` | integer | requests waiting on the node (default 0) |
//! | `drain` | bool | take no new calls, finish the ones running (default false) |
//! | `recentFailures` | integer | failures the agent saw lately (informational) |
//! | `latencyMs` | number | moving-average latency (informational) |
//! | `hardware` | list of `"gpu"` / `"cpu"` | coarse tags only (informational) |
//!
//! Unknown keys are refused, so an agent cannot leak more than this. The
//! request needs `Authorization: Bearer TOKEN` with the token of
//! `heartbeat_token_env` (from any address: agents run on other boxes).
//! Answers: 200 `{"node", "freshness", "catalogChanged", "staleAfterMs"}`;
//! 400 naming the bad field; 401 bad or missing token (the heartbeat is
//! ignored); 403 when no heartbeat token is configured; 404 unknown node.
//!
//! A report with `models` whose fingerprint differs from the last one
//! replaces the node's model list (see `Gateway::set_node_models`).

use bytes::Bytes;
use drover_core::health::{Freshness, Telemetry};
use http::{Response, StatusCode};
use serde_json::{Map, Value};

use super::body::GwBody;
use super::gateway::Gateway;
use super::http::{HttpError, bearer, ct_eq, error, json_response};
use crate::wire::Front;

/// The heartbeat protocol version this gateway speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Most models one heartbeat may list.
pub const MAX_MODELS: usize = 1024;
/// Longest model name a heartbeat may carry, in bytes.
pub const MAX_MODEL_NAME: usize = 64;

/// A decoded heartbeat.
#[derive(Clone, Debug, PartialEq)]
pub struct Heartbeat {
    /// The node's name.
    pub node: String,
    /// What the core keeps.
    pub telemetry: Telemetry,
    /// The server's models, when sent.
    pub models: Option<Vec<String>>,
    /// Failures the agent saw lately.
    pub recent_failures: Option<u32>,
    /// Moving-average latency in milliseconds.
    pub latency_ms: Option<f64>,
    /// Coarse hardware tags (`gpu`, `cpu`).
    pub hardware: Vec<String>,
}

const KEYS: [&str; 11] = [
    "node",
    "protocolVersion",
    "catalogFingerprint",
    "models",
    "maxSlots",
    "freeSlots",
    "queued",
    "drain",
    "recentFailures",
    "latencyMs",
    "hardware",
];

fn bad(field: &str, reason: impl std::fmt::Display) -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "invalid_heartbeat",
        format!("field `{field}`: {reason}"),
    )
}

fn int(o: &Map<String, Value>, key: &str, max: u64) -> Result<Option<u64>, HttpError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(bad(key, format!("must be a whole number from 0 to {max}"))),
        },
    }
}

fn u16_of(n: u64) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Decodes and checks a heartbeat body.
///
/// # Errors
///
/// A 400 naming the first bad field.
pub(crate) fn decode(body: &[u8]) -> Result<Heartbeat, HttpError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad("", format!("not JSON: {e}")))?;
    let Value::Object(o) = v else {
        return Err(bad("", "must be a JSON object"));
    };
    if let Some(k) = o.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(bad(
            k,
            format!("unknown key; expected one of {}", KEYS.join(", ")),
        ));
    }
    let node = match o.get("node") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s.clone(),
        Some(_) => return Err(bad("node", "must be a node name of 1 to 64 bytes")),
        None => return Err(bad("node", "is required")),
    };
    let version = int(&o, "protocolVersion", u64::from(u16::MAX))?
        .ok_or_else(|| bad("protocolVersion", "is required"))?;
    if version != u64::from(PROTOCOL_VERSION) {
        return Err(bad(
            "protocolVersion",
            format!("version {version} is not supported; this gateway speaks {PROTOCOL_VERSION}"),
        ));
    }
    let fingerprint = match o.get("catalogFingerprint") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s))
            if (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            u64::from_str_radix(s, 16).map_err(|e| bad("catalogFingerprint", e))?
        }
        Some(_) => return Err(bad("catalogFingerprint", "must be 1 to 16 hex digits")),
    };
    let max_slots =
        int(&o, "maxSlots", u64::from(u16::MAX))?.ok_or_else(|| bad("maxSlots", "is required"))?;
    let free_slots = int(&o, "freeSlots", max_slots)?.unwrap_or(max_slots);
    let queued = int(&o, "queued", u64::from(u16::MAX))?.unwrap_or(0);
    let drain = match o.get("drain") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("drain", "must be true or false")),
    };
    let recent_failures = int(&o, "recentFailures", u64::from(u32::MAX))?
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let latency_ms = match o.get("latencyMs") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Some(x),
            _ => {
                return Err(bad(
                    "latencyMs",
                    "must be a number of milliseconds, 0 or more",
                ));
            }
        },
    };
    let models = match o.get("models") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if items.len() <= MAX_MODELS => {
            let mut out = Vec::with_capacity(items.len());
            for (i, m) in items.iter().enumerate() {
                match m.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= MAX_MODEL_NAME => {
                        out.push(s.to_owned());
                    }
                    _ => {
                        return Err(bad(
                            &format!("models[{i}]"),
                            format!("must be a model name of 1 to {MAX_MODEL_NAME} bytes"),
                        ));
                    }
                }
            }
            out.sort();
            out.dedup();
            Some(out)
        }
        Some(_) => {
            return Err(bad(
                "models",
                format!("must be a list of at most {MAX_MODELS} names"),
            ));
        }
    };
    let hardware = match o.get("hardware") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= 2 => {
            let mut out = Vec::new();
            for (i, h) in items.iter().enumerate() {
                match h.as_str() {
                    Some(t @ ("gpu" | "cpu")) => out.push(t.to_owned()),
                    _ => return Err(bad(&format!("hardware[{i}]"), "must be \"gpu\" or \"cpu\"")),
                }
            }
            out
        }
        Some(_) => return Err(bad("hardware", "must be a list of \"gpu\" and/or \"cpu\"")),
    };
    Ok(Heartbeat {
        node,
        telemetry: Telemetry {
            max_slots: u16_of(max_slots),
            free_slots: u16_of(free_slots),
            queued: u16_of(queued),
            drain,
            catalog_fingerprint: fingerprint,
            protocol_version: PROTOCOL_VERSION,
        },
        models,
        recent_failures,
        latency_ms,
        hardware,
    })
}

/// Checks the heartbeat token.
fn auth<B>(gw: &Gateway, req: &http::Request<B>) -> Result<(), HttpError> {
    let Some(want) = &gw.cfg.heartbeat_token else {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "heartbeats_disabled",
            "heartbeats are not enabled (set heartbeat_token_env in the gateway config)",
        ));
    };
    match bearer(req.headers()) {
        Some(got) if ct_eq(want.expose(), got) => Ok(()),
        Some(_) => Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the heartbeat token is not valid",
        )),
        None => Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "heartbeats need `Authorization: Bearer HEARTBEAT_TOKEN`",
        )),
    }
}

/// `POST /nodes/heartbeat`.
pub(crate) async fn handle(
    gw: &Gateway,
    req: http::Request<hyper::body::Incoming>,
) -> Response<GwBody> {
    if let Err(e) = auth(gw, &req) {
        gw.stats.record_rejection("heartbeat_auth");
        return error(Front::OpenAi, e);
    }
    let body = match super::http::read_body(gw, req).await {
        Ok(b) => b,
        Err(e) => return error(Front::OpenAi, e),
    };
    match apply(gw, &body) {
        Ok(reply) => json_response(StatusCode::OK, reply),
        Err(e) => {
            gw.stats.record_rejection("bad_heartbeat");
            error(Front::OpenAi, e)
        }
    }
}

/// Decodes a heartbeat and feeds it to the router; the reply body.
fn apply(gw: &Gateway, body: &[u8]) -> Result<Bytes, HttpError> {
    let hb = decode(body)?;
    let Some(id) = gw.router.with(|r| r.nodes().find(&hb.node)) else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "unknown_node",
            format!("no node named `{}` in this gateway's config", hb.node),
        ));
    };
    let now = gw.now();
    let change = gw
        .router
        .handle_heartbeat(id, hb.telemetry, now)
        .map_err(|e| HttpError::new(StatusCode::NOT_FOUND, "unknown_node", e.to_string()))?;
    if change.catalog_changed {
        match &hb.models {
            Some(models) => match gw.set_node_models(id, &hb.node, models) {
                Ok(()) => {
                    tracing::info!(node = %hb.node, models = models.len(), "catalog refreshed from heartbeat")
                }
                Err(e) => tracing::warn!(node = %hb.node, "catalog refresh failed: {e}"),
            },
            None => {
                // Ask the node itself: an inventory probe, due now.
                let probes = gw
                    .router
                    .with_mut(|r| r.config().probe.enabled && r.request_inventory(id, now).is_ok());
                if probes {
                    tracing::info!(node = %hb.node, "catalog fingerprint changed; inventory probe scheduled");
                } else {
                    tracing::info!(node = %hb.node, "catalog fingerprint changed; no models sent and probes are off, catalog kept");
                }
            }
        }
    }
    if change.recovered {
        tracing::info!(node = %hb.node, "node heartbeats again");
    }
    tracing::debug!(
        node = %hb.node,
        drain = hb.telemetry.drain,
        recent_failures = ?hb.recent_failures,
        latency_ms = ?hb.latency_ms,
        hardware = ?hb.hardware,
        "heartbeat"
    );
    let health = gw.router.with(|r| r.config().health);
    let fresh = gw.router.with(|r| {
        r.node(id)
            .map(|n| n.health.freshness(now, &health))
            .unwrap_or(Freshness::Passive)
    });
    let reply = serde_json::json!({
        "node": hb.node,
        "freshness": crate::ops::freshness_label(fresh),
        "catalogChanged": change.catalog_changed,
        "staleAfterMs": health.stale_after.as_nanos() / 1_000_000,
    });
    Ok(Bytes::from(reply.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> String {
        decode(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn a_full_heartbeat_decodes() {
        let hb = decode(
            br#"{"node":"gpu-1","protocolVersion":1,"catalogFingerprint":"00ff",
                "models":["b","a","a"],"maxSlots":4,"freeSlots":1,"queued":2,"drain":true,
                "recentFailures":3,"latencyMs":12.5,"hardware":["gpu"]}"#,
        )
        .unwrap();
        assert_eq!(hb.node, "gpu-1");
        assert_eq!(
            hb.telemetry,
            Telemetry {
                max_slots: 4,
                free_slots: 1,
                queued: 2,
                drain: true,
                catalog_fingerprint: 0xff,
                protocol_version: 1,
            }
        );
        assert_eq!(hb.models, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(hb.recent_failures, Some(3));
        assert_eq!(hb.latency_ms, Some(12.5));
        assert_eq!(hb.hardware, ["gpu"]);
        // Optional keys default: free = max, nothing queued, no drain.
        let hb = decode(br#"{"node":"a","protocolVersion":1,"maxSlots":3}"#).unwrap();
        assert_eq!(hb.telemetry.free_slots, 3);
        assert!(!hb.telemetry.drain);
        assert_eq!(hb.models, None);
    }

    #[test]
    fn bad_heartbeats_name_the_field() {
        for (body, want) in [
            ("[]", "must be a JSON object"),
            ("{", "not JSON"),
            (
                r#"{"protocolVersion":1,"maxSlots":1}"#,
                "field `node`: is required",
            ),
            (
                r#"{"node":"","protocolVersion":1,"maxSlots":1}"#,
                "field `node`",
            ),
            (
                r#"{"node":"a","maxSlots":1}"#,
                "field `protocolVersion`: is required",
            ),
            (
                r#"{"node":"a","protocolVersion":2,"maxSlots":1}"#,
                "version 2 is not supported",
            ),
            (
                r#"{"node":"a","protocolVersion":1}"#,
                "field `maxSlots`: is required",
            ),
            (
                r#"{"node":"a","protocolVersion":1,"maxSlots":-1}"#,
                "field `maxSlots`",
            ),
            (
                r#"{"node":"a","protocolVersion":1,"maxSlots":2,"freeSlots":3}"#,
                "field `freeSlots`: must be a whole number from 0 to 2",
            ),
            (
                r#"{"node":"a","protocolVersion":1,"maxSlots":1,"drain":"yes"}"#,
                "field `drain`",
            ),
            (
                r#"{"node":"a","protocolVersion":1,"maxSlots":1,"catalogFingerprint":"xyz"}"#,
                "field `catalogFingerprint`",
            ),
            (
                r#"{"node":"a","protocolVersion":1,"maxSlots":1,"catalogFingerprint":"00000000000000000"}"#,
                "field `catalogFingerprint`",
            ),
            (
                r#"{"node":"a","protocolVersion":1,"maxSlots":1,"models":["ok",7]}"#,
                "field `models[1]`",
            ),
            (
                r#"{"node":"a","protocolVersion":1,"maxSlots":1,"latencyMs":-1}"#,
                "field `latencyMs`",
            ),
            (
                r#"{"node":"a","protocolVersion":1,"maxSlots":1,"hardware":["RTX 4090 SN 1234"]}"#,
                "field `hardware[0]`",
            ),
            (
                r#"{"node":"a","protocolVersion":1,"maxSlots":1,"user":"bob"}"#,
                "field `user`: unknown key",
            ),
        ] {
            let got = field_of(body);
            assert!(got.contains(want), "{body}: {got}");
        }
    }
}
