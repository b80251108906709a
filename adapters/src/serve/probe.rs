//! Active probes: the gateway executes the probes the core schedules.
//!
//! The core decides which node to probe and when
//! ([`Router::poll_probe`](drover_core::Router::poll_probe), jittered
//! intervals, a half-open node's trial); this module only runs the HTTP
//! exchange and reports the outcome, so the gateway, the blocking client
//! and the simulator probe alike.
//!
//! | probe | Ollama | OpenAI-compatible |
//! |---|---|---|
//! | health | `GET /api/version` | `GET /v1/models` |
//! | inventory | `GET /api/tags` | `GET /v1/models` |
//!
//! None of these makes a server load a model. A health probe succeeds on any
//! 2xx answer within the probe timeout; anything else (refused, timeout,
//! 5xx, 429) is a failure the core feeds to the node's breaker. An inventory
//! probe also needs a model list it can read; the list replaces the node's
//! models unless the node has `pinModels` (the core keeps a pinned list).

use std::sync::Arc;

use bytes::Bytes;
use drover_core::node::NodeKind;
use drover_core::probe::{Probe, ProbeKind, ProbeOutcome};
use drover_core::reason::Failure;
use drover_transports::smol::read_capped;
use http::header::{ACCEPT, AUTHORIZATION, HOST};
use http_body_util::Full;

use super::gateway::{Gateway, Upstream};

/// Largest probe answer read (a catalog of a few thousand models).
const MAX_PROBE_BYTES: usize = 1 << 20;

/// The path a probe asks for.
pub fn probe_path(kind: ProbeKind, node: NodeKind) -> &'static str {
    match (kind, node) {
        (ProbeKind::Health, NodeKind::Ollama) => "/api/version",
        (ProbeKind::Inventory, NodeKind::Ollama) => "/api/tags",
        (_, _) => "/v1/models",
    }
}

/// Models in a catalog answer: Ollama's `models[].name`, OpenAI's
/// `data[].id`.
pub fn catalog_models(node: NodeKind, body: &[u8]) -> Option<Vec<String>> {
    match node {
        NodeKind::Ollama => crate::discover::probe::catalog(body, "models", "name"),
        _ => crate::discover::probe::catalog(body, "data", "id"),
    }
}

/// Starts every probe the core has due now, each in its own task.
pub(crate) fn run_due(gw: &Arc<Gateway>) {
    loop {
        let now = gw.now();
        let Some(probe) = gw.router.with_mut(|r| r.poll_probe(now)) else {
            return;
        };
        let Some(up) = gw.upstream(probe.node) else {
            gw.router.with_mut(|r| {
                r.handle_probe(probe, ProbeOutcome::Failed(Failure::Connect), gw.now())
            });
            continue;
        };
        let gw2 = gw.clone();
        let spawned = gw.spawner.spawn(async move {
            let outcome = exchange(&gw2, &up, probe).await;
            let (outcome, models) = match outcome {
                Ok(models) => (ProbeOutcome::Ok, models),
                Err(f) => (ProbeOutcome::Failed(f), None),
            };
            let now = gw2.now();
            gw2.router.with_mut(|r| r.handle_probe(probe, outcome, now));
            if let Some(models) = models {
                if let Err(e) = gw2.set_node_models(probe.node, &up.name, &models) {
                    tracing::warn!(node = %up.name, "model inventory not applied: {e}");
                }
            }
            gw2.deliver_wakeups();
        });
        match spawned {
            Some(task) => task.detach(),
            None => {
                // The runtime is gone (shutting down): the probe never ran.
                gw.router.with_mut(|r| {
                    r.handle_probe(probe, ProbeOutcome::Failed(Failure::Connect), gw.now())
                });
                return;
            }
        }
    }
}

/// One probe's HTTP exchange, bounded by the probe's deadline. `Ok(Some)`
/// carries an inventory probe's models.
async fn exchange(
    gw: &Gateway,
    up: &Upstream,
    probe: Probe,
) -> Result<Option<Vec<String>>, Failure> {
    let path = format!("{}{}", up.base_path, probe_path(probe.kind, up.kind));
    let mut req = http::Request::get(path)
        .header(HOST, up.authority.clone())
        .header(ACCEPT, "application/json");
    if let Some(auth) = &up.auth {
        req = req.header(AUTHORIZATION, auth.clone());
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|_| Failure::InvalidReply)?;
    let wait =
        std::time::Duration::from_nanos(probe.deadline.saturating_since(gw.now()).as_nanos());
    let work = async {
        // A host name is resolved and checked against the URL policy here
        // too, exactly as for an attempt.
        let addr = gw.connect_addr(up).await.map_err(|_| Failure::Connect)?;
        let resp = gw.client.send(addr, req).await.map_err(|e| {
            if e.is_connect() {
                Failure::Connect
            } else {
                Failure::InvalidReply
            }
        })?;
        let status = resp.status();
        let body = read_capped(resp.into_body(), MAX_PROBE_BYTES)
            .await
            .map_err(|_| Failure::InvalidReply)?;
        match status.as_u16() {
            200..=299 => {}
            429 | 503 => return Err(Failure::Overloaded),
            s @ 500..=599 => return Err(Failure::Upstream5xx(s)),
            // A 4xx to a GET of a catalog: not the server drover was told.
            _ => return Err(Failure::InvalidReply),
        }
        match probe.kind {
            ProbeKind::Health => Ok(None),
            ProbeKind::Inventory => catalog_models(up.kind, &body)
                .map(Some)
                .ok_or(Failure::InvalidReply),
        }
    };
    let timeout = async {
        drover_transports::smol::Timer::after(wait).await;
        Err(Failure::Timeout)
    };
    smol::future::or(work, timeout).await
}
