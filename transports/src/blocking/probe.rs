//! Active probes on the blocking driver: the core decides which node is due
//! ([`Router::poll_probe`](drover_core::Router::poll_probe)); the driver
//! sends each probe as a `GET` with ureq, bounded by the probe's deadline,
//! and reports the outcome. The protocol (which path, how to read a
//! catalog) comes from a [`ProbeTarget`].

use std::time::Duration;

use drover_core::probe::{Probe, ProbeOutcome};
use drover_core::reason::Failure;

use super::{Driver, Outgoing};

/// Largest probe answer read.
const MAX_PROBE_BYTES: u64 = 1 << 20;

/// What a probe asks and how its answer is judged. `drover::sync`
/// implements it for Ollama and OpenAI-compatible nodes.
pub trait ProbeTarget {
    /// The `GET` to send for `probe` (`body` is ignored); `None` when the
    /// node is unknown (the probe then fails as a refused connection).
    fn probe_request(&self, probe: &Probe) -> Option<Outgoing>;
    /// Judges a 2xx answer: `Ok` for a health probe; for an inventory probe,
    /// `Ok` once its model list has been read and applied, else a failure
    /// (usually [`Failure::InvalidReply`]).
    fn probe_reply(&self, probe: &Probe, body: &[u8]) -> ProbeOutcome;
}

impl<const N: usize, const C: usize, const Q: usize> Driver<N, C, Q> {
    /// Sends every probe the core has due now, one after another on this
    /// thread, each bounded by its deadline (the probe timeout), and
    /// reports each outcome. Returns how many were sent.
    ///
    /// Call it from your own loop, or run [`Driver::next_probe_at`]-paced
    /// on a thread of your own (`drover::sync::Client::start_probing` does
    /// that). Nothing is sent when probes are off in the router's config.
    pub fn run_due_probes<P: ProbeTarget>(&self, target: &P) -> usize {
        let mut sent = 0;
        loop {
            let now = self.now();
            let Some(probe) = self.router().with_mut(|r| r.poll_probe(now)) else {
                break;
            };
            sent += 1;
            let outcome = match target.probe_request(&probe) {
                None => ProbeOutcome::Failed(Failure::Connect),
                Some(out) => {
                    let left = probe.deadline.saturating_since(self.now());
                    let budget =
                        Duration::from_nanos(left.as_nanos()).max(Duration::from_millis(1));
                    match self.get(&out, budget) {
                        Ok(body) => target.probe_reply(&probe, &body),
                        Err(f) => ProbeOutcome::Failed(f),
                    }
                }
            };
            let now = self.now();
            self.router()
                .with_mut(|r| r.handle_probe(probe, outcome, now));
        }
        self.deliver_wakeups();
        sent
    }

    /// When the router next wants attention (a probe due, a probe or queue
    /// deadline), as a wall-clock instant; `None` when nothing is
    /// scheduled.
    pub fn next_probe_at(&self) -> Option<std::time::Instant> {
        let at = self.router().with(|r| r.poll_timeout())?;
        let left = at.saturating_since(self.now());
        Some(std::time::Instant::now() + Duration::from_nanos(left.as_nanos()))
    }

    /// One bounded `GET`; the body of a 2xx answer.
    fn get(&self, out: &Outgoing, budget: Duration) -> Result<Vec<u8>, Failure> {
        let mut req = self.agent().get(&out.url);
        for (k, v) in &out.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req
            .config()
            .timeout_connect(Some(self.config().connect_timeout.min(budget)))
            .timeout_send_request(Some(budget))
            .timeout_recv_response(Some(budget))
            .timeout_recv_body(Some(budget))
            .timeout_per_read(Some(budget))
            .build()
            .call()
            .map_err(|e| match e {
                ureq::Error::Timeout(ureq::Timeout::Connect) => Failure::Connect,
                ureq::Error::Timeout(_) => Failure::Timeout,
                ureq::Error::Io(io) if super::attempt::is_timeout(&io) => Failure::Timeout,
                ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                    Failure::Connect
                }
                _ => Failure::InvalidReply,
            })?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .into_with_config()
            .limit(MAX_PROBE_BYTES)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::Timeout(_) => Failure::Timeout,
                _ => Failure::InvalidReply,
            })?;
        match status {
            200..=299 => Ok(body),
            429 | 503 => Err(Failure::Overloaded),
            s @ 500..=599 => Err(Failure::Upstream5xx(s)),
            _ => Err(Failure::InvalidReply),
        }
    }
}
