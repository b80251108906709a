//! Executing the routers' active probes against the simulated nodes.

use drover_core::Duration;
use drover_core::probe::ProbeOutcome;
use drover_core::reason::Failure;

use super::driver::{Driver, Ev};

/// Probes one router may issue after one event; more are taken at its next event.
const PROBES_PER_EVENT: usize = 256;

impl Driver {
    /// Sends every probe gateway `g`'s router has due, while calls run.
    /// A node that is up answers after a seeded delay of 1 to 5 ms, a
    /// crashed one refuses after the same delay, a hung one never answers.
    pub(crate) fn run_probes(&mut self, g: usize) {
        if !self.w.busy() {
            return;
        }
        let now = self.w.now();
        for _ in 0..PROBES_PER_EVENT {
            let Some(probe) = self.gateways[g].router.poll_probe(now) else {
                return;
            };
            let w = &mut self.w;
            let answer = w
                .index_of(probe.node)
                .and_then(|n| w.nodes[n].probe_answer());
            let Some(up) = answer else {
                continue; // hung (or unknown): the router times it out
            };
            let outcome = if up {
                ProbeOutcome::Ok
            } else {
                ProbeOutcome::Failed(Failure::Connect)
            };
            let delay = Duration::from_micros(w.probe_rng.u64(1_000..5_000));
            let i = w.probes.len() as u32;
            w.probes.push((g as u16, probe, outcome));
            w.clock.schedule(now + delay, Ev::ProbeDone(i));
        }
    }
}
