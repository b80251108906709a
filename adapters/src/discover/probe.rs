//! Probing one host and port: `GET /api/tags`, then `GET /v1/models`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use drover_core::catalog::MAX_NAME;
use drover_core::node::NodeKind;
use drover_transports::smol::{Client, read_capped};
use http::header::{ACCEPT, HOST};
use http_body_util::Full;

/// Largest catalog answer read (a few thousand models).
const MAX_CATALOG_BYTES: usize = 1 << 20;

/// A model server found at an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Found {
    /// Its protocol.
    pub kind: NodeKind,
    /// The models its catalog lists (valid names only, without repeats).
    pub models: Vec<String>,
}

/// What one `GET` got.
enum Got {
    /// A 200 answer with this body.
    Body(Bytes),
    /// No connection, or no answer in time: do not try another path.
    Nothing,
    /// Some other answer (404, bad body, an HTTP error).
    Other,
}

/// Probes `addr` (whose `Host` header is `authority`): Ollama if
/// `/api/tags` lists models by `name`, else OpenAI-compatible if
/// `/v1/models` lists them by `id`. Each request gets `timeout`.
pub(super) async fn probe(
    client: &Client,
    addr: SocketAddr,
    authority: &str,
    timeout: Duration,
) -> Option<Found> {
    match get(client, addr, authority, "/api/tags", timeout).await {
        Got::Nothing => return None,
        Got::Body(b) => {
            if let Some(models) = catalog(&b, "models", "name") {
                return Some(Found {
                    kind: NodeKind::Ollama,
                    models,
                });
            }
        }
        Got::Other => {}
    }
    match get(client, addr, authority, "/v1/models", timeout).await {
        Got::Body(b) => catalog(&b, "data", "id").map(|models| Found {
            kind: NodeKind::OpenAiCompat,
            models,
        }),
        Got::Nothing | Got::Other => None,
    }
}

async fn get(
    client: &Client,
    addr: SocketAddr,
    authority: &str,
    path: &str,
    timeout: Duration,
) -> Got {
    let req = http::Request::get(path)
        .header(HOST, authority)
        .header(ACCEPT, "application/json")
        .body(Full::new(Bytes::new()));
    let Ok(req) = req else {
        return Got::Other;
    };
    let exchange = async {
        match client.send(addr, req).await {
            Err(e) if e.is_connect() => Got::Nothing,
            Err(_) => Got::Other,
            Ok(resp) if resp.status() == http::StatusCode::OK => {
                match read_capped(resp.into_body(), MAX_CATALOG_BYTES).await {
                    Ok(body) => Got::Body(body),
                    Err(_) => Got::Other,
                }
            }
            Ok(_) => Got::Other,
        }
    };
    let deadline = async {
        drover_transports::smol::Timer::after(timeout).await;
        Got::Nothing
    };
    smol::future::or(exchange, deadline).await
}

/// The names in `body[list][*][key]`: `None` unless `body` is an object
/// whose `list` is an array of objects each with a string `key`. Names
/// longer than the core allows are left out, as are repeats.
pub(crate) fn catalog(body: &[u8], list: &str, key: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let items = v.as_object()?.get(list)?.as_array()?;
    let mut models: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let name = item.as_object()?.get(key)?.as_str()?;
        if !name.is_empty() && name.len() <= MAX_NAME && !models.iter().any(|m| m == name) {
            models.push(name.to_owned());
        }
    }
    Some(models)
}
