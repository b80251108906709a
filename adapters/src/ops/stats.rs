//! [`GatewayStats`]: the counters the HTTP layer keeps beside the router.
//!
//! The router counts calls; the gateway also answers requests that never
//! become calls (bad JSON, unknown models, wrong tokens, slow headers) and
//! sees things the core does not (client disconnects, bytes relayed). These
//! counters are plain atomics bumped with `Relaxed` ordering: lock-free, one
//! `fetch_add` each, and read only by the renderers, which need no
//! ordering between counters.
//!
//! Every label set is bounded so the exposition cannot grow with client
//! input:
//!
//! - endpoints: [`ENDPOINT_LABELS`]; anything else counts as `other`;
//! - status codes: [`STATUS_LABELS`]: the codes the gateway answers with
//!   by design are kept exact, any other code counts in its class (`2xx`,
//!   `3xx`, …), and a number outside 100..=599 as `other`;
//! - rejection reasons: [`REJECTION_LABELS`]; a few synonyms are folded in
//!   (`bad_json` and `invalid_request` to `bad_request`, `model_not_found`
//!   to `unknown_model`, `no_node` to `no_eligible_node`), anything else
//!   counts as `other`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use drover_core::{Duration, Instant};

/// Endpoint labels of `drover_http_responses_total`. The first six are the
/// inference endpoints (`wire::Endpoint::label`), then the gateway's own
/// paths; the last, `other`, takes any label not listed.
pub const ENDPOINT_LABELS: [&str; 15] = [
    "chat_completions",
    "embeddings",
    "api_chat",
    "api_generate",
    "api_embed",
    "api_embeddings",
    "models",
    "tags",
    "version",
    "status",
    "metrics",
    "nodes",
    "preview",
    "trace",
    "other",
];

/// Status codes counted exactly (499 is the gateway's "client closed the
/// request"); any other code counts in its class.
pub const STATUS_CODES: [u16; 16] = [
    200, 400, 401, 403, 404, 405, 408, 409, 413, 429, 431, 499, 500, 502, 503, 504,
];

/// Status labels of `drover_http_responses_total`, by index:
/// [`STATUS_CODES`] as numbers, then the classes `1xx` to `5xx`, then
/// `other` (a number outside 100..=599).
pub const STATUS_LABELS: [&str; 22] = [
    "200", "400", "401", "403", "404", "405", "408", "409", "413", "429", "431", "499", "500",
    "502", "503", "504", "1xx", "2xx", "3xx", "4xx", "5xx", "other",
];

/// Reason labels of `drover_http_rejections_total`: why a request was
/// refused before or instead of reaching a node.
///
/// | label | answer | meaning |
/// |---|---|---|
/// | `body_too_large` | 413 | body over the gateway's cap |
/// | `bad_request` | 400 | malformed JSON or a wrong field type |
/// | `unknown_model` | 404 | no node serves the model |
/// | `unauthorized` | 401 | missing or wrong client/operator token |
/// | `forbidden` | 403 | operator endpoint from a non-loopback peer |
/// | `header_timeout` | 408 | request headers too slow |
/// | `headers_too_large` | 431 | too many or too large headers |
/// | `over_capacity` | 429 | over capacity, cause not broken down |
/// | `busy_global_pool` … `queue_wait_expired` | 429/503/413 | the core's [`Reject`](drover_core::reason::Reject) labels |
/// | `other` | | any label not listed |
pub const REJECTION_LABELS: [&str; 16] = [
    "body_too_large",
    "bad_request",
    "unknown_model",
    "unauthorized",
    "forbidden",
    "header_timeout",
    "headers_too_large",
    "over_capacity",
    "busy_global_pool",
    "busy_pool",
    "all_nodes_saturated",
    "all_nodes_overloaded",
    "no_eligible_node",
    "payload_too_large",
    "queue_full",
    "queue_wait_expired",
];

const ENDPOINTS: usize = ENDPOINT_LABELS.len();
const STATUSES: usize = STATUS_LABELS.len();
/// Rejection slots: the listed labels plus `other`.
const REJECTIONS: usize = REJECTION_LABELS.len() + 1;

/// Lock-free counters of the HTTP layer. See the [module docs](self).
///
/// About 2.8 KB; every `record_*` is one relaxed `fetch_add` after a
/// lookup over at most a few dozen short strings.
#[derive(Debug)]
pub struct GatewayStats {
    started: Instant,
    responses: [[AtomicU64; STATUSES]; ENDPOINTS],
    rejections: [AtomicU64; REJECTIONS],
    client_disconnects: AtomicU64,
    streams_broken: AtomicU64,
    upstream_bytes: AtomicU64,
    nodes_reloads: [AtomicU64; 2],
}

impl Default for GatewayStats {
    /// Counters at zero, started at [`Instant::ZERO`] (the gateway's clock
    /// counts from its own start).
    fn default() -> Self {
        Self::new(Instant::ZERO)
    }
}

impl GatewayStats {
    /// Counters at zero; uptime is measured from `started`.
    pub fn new(started: Instant) -> Self {
        GatewayStats {
            started,
            responses: [const { [const { AtomicU64::new(0) }; STATUSES] }; ENDPOINTS],
            rejections: [const { AtomicU64::new(0) }; REJECTIONS],
            client_disconnects: AtomicU64::new(0),
            streams_broken: AtomicU64::new(0),
            upstream_bytes: AtomicU64::new(0),
            nodes_reloads: [const { AtomicU64::new(0) }; 2],
        }
    }

    // ----- inputs -----

    /// Counts one response on `endpoint` (one of [`ENDPOINT_LABELS`], else
    /// `other`) with `status`.
    pub fn record_response(&self, endpoint: &str, status: u16) {
        let e = endpoint_index(endpoint);
        self.responses[e][status_index(status)].fetch_add(1, Relaxed);
    }

    /// Counts one refused request by reason (one of [`REJECTION_LABELS`] or
    /// a synonym, else `other`).
    pub fn record_rejection(&self, reason: &str) {
        self.rejections[rejection_index(reason)].fetch_add(1, Relaxed);
    }

    /// Counts a client that went away before its answer ended.
    pub fn record_client_disconnect(&self) {
        self.client_disconnects.fetch_add(1, Relaxed);
    }

    /// Counts a stream that broke after its first byte reached the client
    /// (it ended with an error event).
    pub fn record_stream_broken(&self) {
        self.streams_broken.fetch_add(1, Relaxed);
    }

    /// Adds bytes received from upstream nodes.
    pub fn add_upstream_bytes(&self, n: u64) {
        self.upstream_bytes.fetch_add(n, Relaxed);
    }

    /// Counts one reload of the nodes file: applied (`true`) or refused.
    pub fn record_nodes_reload(&self, applied: bool) {
        self.nodes_reloads[usize::from(applied)].fetch_add(1, Relaxed);
    }

    // ----- getters -----

    /// Reloads of the nodes file: `(applied, refused)`.
    pub fn nodes_reloads(&self) -> (u64, u64) {
        (
            self.nodes_reloads[1].load(Relaxed),
            self.nodes_reloads[0].load(Relaxed),
        )
    }

    /// Responses counted for `endpoint` and `status`, with the same folding
    /// as [`record_response`](Self::record_response).
    pub fn responses(&self, endpoint: &str, status: u16) -> u64 {
        self.responses[endpoint_index(endpoint)][status_index(status)].load(Relaxed)
    }

    /// Rejections counted for `reason` (folded as in
    /// [`record_rejection`](Self::record_rejection)).
    pub fn rejections(&self, reason: &str) -> u64 {
        self.rejections[rejection_index(reason)].load(Relaxed)
    }

    /// Client disconnects counted.
    pub fn client_disconnects(&self) -> u64 {
        self.client_disconnects.load(Relaxed)
    }

    /// Streams broken after their first byte.
    pub fn streams_broken(&self) -> u64 {
        self.streams_broken.load(Relaxed)
    }

    /// Bytes received from upstream nodes.
    pub fn upstream_bytes(&self) -> u64 {
        self.upstream_bytes.load(Relaxed)
    }

    /// Time since `started` (zero if `now` is earlier).
    pub fn uptime(&self, now: Instant) -> Duration {
        now.saturating_since(self.started)
    }

    /// Every non-zero response counter as `(endpoint, status, count)`.
    pub(crate) fn each_response(&self, mut f: impl FnMut(&'static str, &'static str, u64)) {
        for (e, row) in self.responses.iter().enumerate() {
            for (s, c) in row.iter().enumerate() {
                let n = c.load(Relaxed);
                if n > 0 {
                    f(ENDPOINT_LABELS[e], STATUS_LABELS[s], n);
                }
            }
        }
    }

    /// Every rejection counter (zeros included) as `(reason, count)`.
    pub(crate) fn each_rejection(&self, mut f: impl FnMut(&'static str, u64)) {
        for (i, c) in self.rejections.iter().enumerate() {
            f(
                REJECTION_LABELS.get(i).copied().unwrap_or("other"),
                c.load(Relaxed),
            );
        }
    }
}

fn endpoint_index(label: &str) -> usize {
    ENDPOINT_LABELS
        .iter()
        .position(|l| *l == label)
        .unwrap_or(ENDPOINTS - 1)
}

fn status_index(status: u16) -> usize {
    if let Some(i) = STATUS_CODES.iter().position(|c| *c == status) {
        return i;
    }
    match status {
        // Classes follow the exact codes: 1xx at STATUS_CODES.len().
        100..=599 => STATUS_CODES.len() + usize::from(status / 100) - 1,
        _ => STATUSES - 1,
    }
}

fn rejection_index(reason: &str) -> usize {
    let reason = match reason {
        "bad_json" | "invalid_request" => "bad_request",
        "model_not_found" => "unknown_model",
        "no_node" => "no_eligible_node",
        other => other,
    };
    REJECTION_LABELS
        .iter()
        .position(|l| *l == reason)
        .unwrap_or(REJECTIONS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_match_codes_and_classes() {
        for (i, c) in STATUS_CODES.iter().enumerate() {
            assert_eq!(STATUS_LABELS[i], c.to_string());
            assert_eq!(status_index(*c), i);
        }
        assert_eq!(STATUS_LABELS[status_index(101)], "1xx");
        assert_eq!(STATUS_LABELS[status_index(204)], "2xx");
        assert_eq!(STATUS_LABELS[status_index(302)], "3xx");
        assert_eq!(STATUS_LABELS[status_index(418)], "4xx");
        assert_eq!(STATUS_LABELS[status_index(599)], "5xx");
        for odd in [0, 99, 600, u16::MAX] {
            assert_eq!(STATUS_LABELS[status_index(odd)], "other");
        }
    }

    #[test]
    fn labels_are_bounded_and_folded() {
        let s = GatewayStats::default();
        s.record_response("chat_completions", 200);
        s.record_response("chat_completions", 200);
        s.record_response("/some/client/path", 418);
        s.record_rejection("bad_json");
        s.record_rejection("invalid_request");
        s.record_rejection("model_not_found");
        s.record_rejection("no_node");
        s.record_rejection("queue_full");
        s.record_rejection("something new");
        s.record_client_disconnect();
        s.record_stream_broken();
        s.add_upstream_bytes(10);
        s.add_upstream_bytes(5);
        assert_eq!(s.responses("chat_completions", 200), 2);
        assert_eq!(s.responses("other", 418), 1);
        assert_eq!(s.responses("other", 499), 0);
        assert_eq!(s.rejections("bad_request"), 2);
        assert_eq!(s.rejections("unknown_model"), 1);
        assert_eq!(s.rejections("no_eligible_node"), 1);
        assert_eq!(s.rejections("queue_full"), 1);
        assert_eq!(s.rejections("other"), 1);
        assert_eq!(s.rejections("unauthorized"), 0);
        assert_eq!(s.client_disconnects(), 1);
        assert_eq!(s.streams_broken(), 1);
        assert_eq!(s.upstream_bytes(), 15);
        let mut seen = Vec::new();
        s.each_response(|e, c, n| seen.push((e, c, n)));
        assert_eq!(seen, [("chat_completions", "200", 2), ("other", "4xx", 1)]);
        let mut reasons = Vec::new();
        s.each_rejection(|r, _| reasons.push(r));
        assert_eq!(reasons.len(), REJECTIONS);
        assert_eq!(reasons.last(), Some(&"other"));
    }

    #[test]
    fn uptime_counts_from_start_and_never_goes_negative() {
        let s = GatewayStats::new(Instant::from_secs(10));
        assert_eq!(s.uptime(Instant::from_secs(12)), Duration::from_secs(2));
        assert_eq!(s.uptime(Instant::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn counters_are_shared_across_threads() {
        let s = std::sync::Arc::new(GatewayStats::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        s.record_response("status", 200);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.responses("status", 200), 4000);
    }
}
