//! Active probes for [`Client`]: the probe paths and catalog reading of the
//! gateway ([`crate::serve::probe`]), sent by the blocking driver.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drover_core::catalog::ModelSet;
use drover_core::probe::{Probe, ProbeKind, ProbeOutcome};
use drover_core::reason::Failure;
use drover_transports::blocking::{Outgoing, ProbeTarget};

use super::Client;
use crate::serve::probe::{catalog_models, probe_path};

impl ProbeTarget for Client {
    fn probe_request(&self, probe: &Probe) -> Option<Outgoing> {
        let entry = self.entry(probe.node)?;
        let addr = self.connect_addr(entry).ok()?;
        let mut headers = vec![("accept".to_owned(), "application/json".to_owned())];
        if entry.addr.is_none() {
            headers.push(("host".to_owned(), entry.authority.clone()));
        }
        if let Some(auth) = &entry.auth {
            headers.push(("authorization".to_owned(), auth.clone()));
        }
        Some(Outgoing {
            url: format!(
                "http://{addr}{}{}",
                entry.base_path,
                probe_path(probe.kind, entry.kind)
            ),
            body: Vec::new(),
            headers,
        })
    }

    fn probe_reply(&self, probe: &Probe, body: &[u8]) -> ProbeOutcome {
        if probe.kind == ProbeKind::Health {
            return ProbeOutcome::Ok;
        }
        let Some(kind) = self.entry(probe.node).map(|e| e.kind) else {
            return ProbeOutcome::Failed(Failure::Connect);
        };
        let Some(models) = catalog_models(kind, body) else {
            return ProbeOutcome::Failed(Failure::InvalidReply);
        };
        if models.is_empty() {
            // An empty catalog leaves the list as it is (as in the gateway).
            return ProbeOutcome::Ok;
        }
        let applied = self.driver.router().with_mut(|r| {
            let mut set = ModelSet::EMPTY;
            for m in &models {
                if let Ok(id) = r.catalog_mut().intern_model(m) {
                    set.insert(id);
                }
            }
            r.set_models(probe.node, set)
        });
        match applied {
            Ok(_) => ProbeOutcome::Ok,
            Err(_) => ProbeOutcome::Failed(Failure::InvalidReply),
        }
    }
}

impl Client {
    /// Sends every health and inventory probe the core has due now, on
    /// this thread (each bounded by `[probes] timeout`), and applies the
    /// results: failures count against a node's breaker, a half-open node
    /// recovers on success, an inventory answer replaces a node's models
    /// (unless `pinModels`). Returns how many probes were sent; none when
    /// probes are off.
    pub fn run_due_probes(&self) -> usize {
        self.driver.run_due_probes(self)
    }

    /// Probes on a thread of its own: it sleeps until the core's next due
    /// time (at most 1 s), runs the due probes, and stops when the returned
    /// [`Prober`] is dropped (or [`Prober::stop`]ped).
    ///
    /// # Errors
    ///
    /// The thread could not be started.
    pub fn start_probing(self: &Arc<Self>) -> std::io::Result<Prober> {
        let stop = Arc::new(AtomicBool::new(false));
        let client = Arc::clone(self);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("drover-probes".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    client.run_due_probes();
                    let now = std::time::Instant::now();
                    let next = client
                        .driver
                        .next_probe_at()
                        .map_or(Duration::from_secs(1), |at| {
                            at.saturating_duration_since(now)
                        })
                        .clamp(Duration::from_millis(1), Duration::from_secs(1));
                    // Sleep in short steps so a stop is seen quickly.
                    let until = now + next;
                    while !flag.load(Ordering::Acquire) {
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        std::thread::park_timeout(left.min(Duration::from_millis(50)));
                    }
                }
            })?;
        Ok(Prober {
            stop,
            thread: Some(thread),
        })
    }
}

/// The probing thread of [`Client::start_probing`]; dropping it stops the
/// thread and waits for it (at most one probe timeout).
#[derive(Debug)]
pub struct Prober {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.halt();
    }
}
