//! The state a fake server shares between its connections and its owner:
//! the behaviour, the counters, the last request, the seeded failure draws.

use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::{Behaviour, Counters, Fail, FakeSpec, Outcome};

/// Everything behind the server's locks.
pub(super) struct Shared {
    pub(super) spec: FakeSpec,
    behaviour: Mutex<Behaviour>,
    stats: Mutex<Stats>,
}

#[derive(Default)]
struct Stats {
    counters: Counters,
    last_body: Option<Bytes>,
    last_headers: Option<http::HeaderMap>,
    /// `X-Request-ID` of the latest requests that had one, oldest first.
    request_ids: std::collections::VecDeque<String>,
    /// State of the failure draws (splitmix64).
    rng: u64,
}

/// Most request ids a fake server remembers.
pub(super) const MAX_REQUEST_IDS: usize = 16384;

/// Locks, ignoring poison: the counters stay usable after a panicking test.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One step of splitmix64 (Steele, Lea, Flood 2014): a good 64-bit mix.
pub(super) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Shared {
    pub(super) fn new(spec: FakeSpec) -> Shared {
        let stats = Stats {
            rng: spec.seed ^ 0x5EED_FA11,
            ..Stats::default()
        };
        Shared {
            behaviour: Mutex::new(spec.behaviour),
            stats: Mutex::new(stats),
            spec,
        }
    }

    pub(super) fn set(&self, b: Behaviour) {
        *lock(&self.behaviour) = b;
    }

    pub(super) fn behaviour(&self) -> Behaviour {
        *lock(&self.behaviour)
    }

    pub(super) fn counters(&self) -> Counters {
        lock(&self.stats).counters.clone()
    }

    pub(super) fn last_body(&self) -> Option<Bytes> {
        lock(&self.stats).last_body.clone()
    }

    pub(super) fn last_headers(&self) -> Option<http::HeaderMap> {
        lock(&self.stats).last_headers.clone()
    }

    pub(super) fn request_ids(&self) -> Vec<String> {
        lock(&self.stats).request_ids.iter().cloned().collect()
    }

    /// Records a request that has been read whole, and decides whether it
    /// meets the behaviour's failure. Returns the behaviour to answer with
    /// and the failure drawn ([`Fail::None`] when it is spared).
    pub(super) fn admit(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        body: &Bytes,
    ) -> (Behaviour, Fail) {
        let b = self.behaviour();
        let mut s = lock(&self.stats);
        let c = &mut s.counters;
        c.total += 1;
        let probe = super::PROBE_PATHS.contains(&path);
        if !probe {
            c.calls += 1;
        }
        c.in_flight += 1;
        match c.by_path.get_mut(path) {
            Some(n) => *n += 1,
            None => {
                c.by_path.insert(path.to_owned(), 1);
            }
        }
        if !probe {
            s.last_body = Some(body.clone());
            s.last_headers = Some(headers.clone());
        }
        if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
            if s.request_ids.len() == MAX_REQUEST_IDS {
                s.request_ids.pop_front();
            }
            s.request_ids.push_back(id.to_owned());
        }
        let fail = match b.fail {
            Fail::None => Fail::None,
            _ if probe && !b.fail_probes => Fail::None,
            f if b.fail_rate >= 1.0 => f,
            _ if b.fail_rate <= 0.0 => Fail::None,
            f => {
                // 53 random bits as a uniform f64 in [0, 1).
                let draw = (splitmix(&mut s.rng) >> 11) as f64 / (1u64 << 53) as f64;
                if draw < b.fail_rate { f } else { Fail::None }
            }
        };
        (b, fail)
    }

    pub(super) fn outcome(&self, o: Outcome) {
        *lock(&self.stats).counters.by_outcome.entry(o).or_insert(0) += 1;
    }

    fn release(&self, finished: bool) {
        let mut s = lock(&self.stats);
        s.counters.in_flight = s.counters.in_flight.saturating_sub(1);
        if !finished {
            s.counters.cancelled += 1;
        }
    }
}

/// One request being answered. Dropped before [`Guard::finish`] (the
/// connection closed during the delay, hang or stream), it counts as
/// cancelled.
pub(super) struct Guard {
    shared: std::sync::Arc<Shared>,
    finished: bool,
}

impl Guard {
    /// Call only after [`Shared::admit`], which counted it in flight.
    pub(super) fn new(shared: std::sync::Arc<Shared>) -> Guard {
        Guard {
            shared,
            finished: false,
        }
    }

    /// The answer went out whole (or was cut on purpose).
    pub(super) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.release(self.finished);
    }
}
