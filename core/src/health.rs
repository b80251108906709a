//! Heartbeat health: what a node last said about itself, and how recently.
//!
//! This module decides a node's [`Freshness`] from the time since its last
//! heartbeat and keeps the [`Telemetry`] that heartbeat carried (slots,
//! queue, drain flag, catalog fingerprint, protocol version). It also tells
//! the caller what changed with each heartbeat, so the node table can
//! refresh a catalog or start a drain without diffing reports itself.
//!
//! # Algorithm
//!
//! Timeout-based failure detection with two thresholds, as in the
//! heartbeat detectors surveyed by Chandra and Toueg, "Unreliable Failure
//! Detectors for Reliable Distributed Systems" (JACM 1996), and used by
//! Consul/Serf and Kubernetes node leases (`NodeReady=Unknown` after the
//! grace period, eviction later):
//!
//! * no heartbeat ever: [`Freshness::Passive`]; the node is judged only by
//!   passive signals (breaker, overload, latency), as a plain Ollama or
//!   vLLM server without a drover agent would be;
//! * `now − last_seen < stale_after`: [`Freshness::Fresh`];
//! * `< lost_after`: [`Freshness::Stale`] (the report is kept but should be
//!   trusted less, e.g. do not route on its free-slot count);
//! * otherwise [`Freshness::Lost`].
//!
//! The defaults (5 s, 7.5 s) suit agents that beat every 1–2 s: stale after
//! missing a few beats, lost after half as long again.
//!
//! # Time
//!
//! `last_seen` is the `now` of the latest heartbeat handled, even when it
//! is earlier than the previous one: a clock that stepped back then makes
//! the node look older (staler), never fresher, and nothing panics. A
//! freshness query with a `now` before `last_seen` reads as Fresh (a
//! heartbeat is known at or after that instant). Every method is O(1).

use core::fmt;

use crate::time::{Duration, Instant};

/// What a node reports in a heartbeat. 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, rename_all = "camelCase"))]
pub struct Telemetry {
    /// Concurrent requests the node can serve.
    pub max_slots: u16,
    /// Slots free when the report was made.
    pub free_slots: u16,
    /// Requests waiting in the node's own queue.
    pub queued: u16,
    /// The node asks for no new work (finishing what it has).
    pub drain: bool,
    /// Hash of the node's model catalog; a change means "re-read the
    /// catalog".
    pub catalog_fingerprint: u64,
    /// Version of the heartbeat protocol the agent speaks.
    pub protocol_version: u16,
}

/// Thresholds for [`Freshness`]. Shared by all nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, rename_all = "camelCase"))]
pub struct HealthConfig {
    /// Silence after which a report is Stale. Default 5 s.
    pub stale_after: Duration,
    /// Silence after which the node is Lost. Default 7.5 s.
    pub lost_after: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            stale_after: Duration::from_secs(5),
            lost_after: Duration::from_millis(7_500),
        }
    }
}

impl HealthConfig {
    /// Checks `stale_after > 0` and `lost_after >= stale_after`. With an
    /// invalid config [`Health::freshness`] still answers: Lost is checked
    /// first, so `lost_after < stale_after` skips Stale.
    pub fn validate(&self) -> Result<(), HealthConfigError> {
        if self.stale_after == Duration::ZERO {
            return Err(HealthConfigError::ZeroStaleAfter);
        }
        if self.lost_after < self.stale_after {
            return Err(HealthConfigError::LostBeforeStale);
        }
        Ok(())
    }
}

/// Why a [`HealthConfig`] is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthConfigError {
    /// `stale_after` is zero: every report would be stale at once.
    ZeroStaleAfter,
    /// `lost_after` is shorter than `stale_after`.
    LostBeforeStale,
}

impl fmt::Display for HealthConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroStaleAfter => "health stale_after must be longer than zero",
            Self::LostBeforeStale => "health lost_after must not be shorter than stale_after",
        })
    }
}

impl core::error::Error for HealthConfigError {}

/// How recent a node's heartbeat is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Freshness {
    /// Never sent a heartbeat: judged by passive signals only.
    Passive,
    /// Heard from within `stale_after`.
    Fresh,
    /// Silent for at least `stale_after` but less than `lost_after`.
    Stale,
    /// Silent for at least `lost_after`.
    Lost,
}

/// What a heartbeat changed. All `false` means "same as before, and
/// fresh".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HeartbeatChange {
    /// The node's first heartbeat: it leaves [`Freshness::Passive`].
    pub first: bool,
    /// The node was Stale or Lost just before this heartbeat.
    pub recovered: bool,
    /// The catalog fingerprint differs from the previous report. True on
    /// the first heartbeat: no catalog was known from the node before.
    pub catalog_changed: bool,
    /// The drain flag differs from the previous report. On the first
    /// heartbeat, true iff it reports `drain` (a passive node counts as
    /// not draining).
    pub drain_changed: bool,
    /// The protocol version differs from the previous report. True on the
    /// first heartbeat.
    pub protocol_changed: bool,
}

/// Per-node heartbeat state. 32 bytes.
///
/// Getters: [`freshness`](Self::freshness), [`report`](Self::report),
/// [`last_seen`](Self::last_seen). Input:
/// [`handle_heartbeat`](Self::handle_heartbeat).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Health {
    /// The `now` of the latest heartbeat; meaningless while `report` is None.
    last_seen: Instant,
    /// The latest report; `None` while Passive.
    report: Option<Telemetry>,
}

impl Health {
    /// A node that never sent a heartbeat ([`Freshness::Passive`]).
    pub const fn new() -> Self {
        Health {
            last_seen: Instant::ZERO,
            report: None,
        }
    }

    /// Records a heartbeat received at `now` and says what changed. The
    /// report replaces the previous one; `recovered` is judged with `cfg`
    /// at `now`, before the update.
    pub fn handle_heartbeat(
        &mut self,
        report: Telemetry,
        now: Instant,
        cfg: &HealthConfig,
    ) -> HeartbeatChange {
        let before = self.freshness(now, cfg);
        let change = match self.report {
            None => HeartbeatChange {
                first: true,
                recovered: false,
                catalog_changed: true,
                drain_changed: report.drain,
                protocol_changed: true,
            },
            Some(prev) => HeartbeatChange {
                first: false,
                recovered: matches!(before, Freshness::Stale | Freshness::Lost),
                catalog_changed: prev.catalog_fingerprint != report.catalog_fingerprint,
                drain_changed: prev.drain != report.drain,
                protocol_changed: prev.protocol_version != report.protocol_version,
            },
        };
        self.report = Some(report);
        self.last_seen = now;
        change
    }

    /// Freshness at `now`. Pure. Boundaries belong to the worse state:
    /// silence of exactly `stale_after` is Stale, of exactly `lost_after`
    /// is Lost.
    pub fn freshness(&self, now: Instant, cfg: &HealthConfig) -> Freshness {
        if self.report.is_none() {
            return Freshness::Passive;
        }
        let silence = now - self.last_seen;
        if silence >= cfg.lost_after {
            Freshness::Lost
        } else if silence >= cfg.stale_after {
            Freshness::Stale
        } else {
            Freshness::Fresh
        }
    }

    /// The latest report; `None` while Passive. Check
    /// [`freshness`](Self::freshness) before trusting it.
    pub const fn report(&self) -> Option<&Telemetry> {
        self.report.as_ref()
    }

    /// When the latest heartbeat was handled; `None` while Passive.
    pub const fn last_seen(&self) -> Option<Instant> {
        if self.report.is_some() {
            Some(self.last_seen)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HealthConfig {
        HealthConfig::default()
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn beat(fp: u64, drain: bool) -> Telemetry {
        Telemetry {
            max_slots: 4,
            free_slots: 2,
            queued: 1,
            drain,
            catalog_fingerprint: fp,
            protocol_version: 1,
        }
    }

    #[test]
    fn passive_until_first_heartbeat() {
        let h = Health::new();
        assert_eq!(h, Health::default());
        assert_eq!(h.freshness(t(0), &cfg()), Freshness::Passive);
        assert_eq!(h.freshness(Instant::MAX, &cfg()), Freshness::Passive);
        assert_eq!(h.report(), None);
        assert_eq!(h.last_seen(), None);
    }

    #[test]
    fn first_heartbeat() {
        let mut h = Health::new();
        let ch = h.handle_heartbeat(beat(9, false), t(100), &cfg());
        assert_eq!(
            ch,
            HeartbeatChange {
                first: true,
                recovered: false,
                catalog_changed: true,
                drain_changed: false,
                protocol_changed: true,
            }
        );
        assert_eq!(h.report(), Some(&beat(9, false)));
        assert_eq!(h.last_seen(), Some(t(100)));
        assert_eq!(h.freshness(t(100), &cfg()), Freshness::Fresh);
        let mut d = Health::new();
        assert!(
            d.handle_heartbeat(beat(9, true), t(0), &cfg())
                .drain_changed
        );
        // Epoch zero is a valid heartbeat time.
        assert_eq!(d.last_seen(), Some(Instant::ZERO));
        assert_eq!(d.freshness(Instant::ZERO, &cfg()), Freshness::Fresh);
    }

    #[test]
    fn freshness_boundaries() {
        let c = cfg();
        let mut h = Health::new();
        let _ = h.handle_heartbeat(beat(1, false), t(1_000), &c);
        assert_eq!(h.freshness(t(5_999), &c), Freshness::Fresh);
        assert_eq!(h.freshness(t(6_000), &c), Freshness::Stale);
        assert_eq!(h.freshness(t(8_499), &c), Freshness::Stale);
        assert_eq!(h.freshness(t(8_500), &c), Freshness::Lost);
        assert_eq!(h.freshness(Instant::MAX, &c), Freshness::Lost);
        // Querying before the heartbeat: not negative, Fresh.
        assert_eq!(h.freshness(t(0), &c), Freshness::Fresh);
    }

    #[test]
    fn steady_heartbeats_change_nothing() {
        let c = cfg();
        let mut h = Health::new();
        let _ = h.handle_heartbeat(beat(1, false), t(0), &c);
        for i in 1..10 {
            let ch = h.handle_heartbeat(beat(1, false), t(i * 1_000), &c);
            assert_eq!(ch, HeartbeatChange::default());
        }
        // Same instant twice: still nothing.
        let ch = h.handle_heartbeat(beat(1, false), t(9_000), &c);
        assert_eq!(ch, HeartbeatChange::default());
    }

    #[test]
    fn reports_catalog_drain_and_protocol_changes() {
        let c = cfg();
        let mut h = Health::new();
        let _ = h.handle_heartbeat(beat(1, false), t(0), &c);
        let ch = h.handle_heartbeat(beat(2, true), t(1_000), &c);
        assert!(ch.catalog_changed && ch.drain_changed && !ch.recovered);
        let ch = h.handle_heartbeat(beat(2, false), t(2_000), &c);
        assert!(!ch.catalog_changed && ch.drain_changed);
        let v2 = Telemetry {
            protocol_version: 2,
            ..beat(2, false)
        };
        let ch = h.handle_heartbeat(v2, t(3_000), &c);
        assert_eq!(
            ch,
            HeartbeatChange {
                protocol_changed: true,
                ..HeartbeatChange::default()
            }
        );
        assert_eq!(h.report().map(|r| r.protocol_version), Some(2));
    }

    #[test]
    fn recovery_from_stale_and_lost() {
        let c = cfg();
        let mut h = Health::new();
        let _ = h.handle_heartbeat(beat(1, false), t(0), &c);
        assert!(!h.handle_heartbeat(beat(1, false), t(4_999), &c).recovered);
        assert!(h.handle_heartbeat(beat(1, false), t(9_999), &c).recovered);
        assert_eq!(h.freshness(t(9_999), &c), Freshness::Fresh);
        let ch = h.handle_heartbeat(beat(1, false), t(60_000), &c);
        assert!(ch.recovered && !ch.first);
    }

    #[test]
    fn heartbeat_from_the_past_never_looks_fresher() {
        let c = cfg();
        let mut h = Health::new();
        let _ = h.handle_heartbeat(beat(1, false), t(10_000), &c);
        // The clock steps back 8 s.
        let ch = h.handle_heartbeat(beat(2, false), t(2_000), &c);
        assert!(ch.catalog_changed && !ch.recovered);
        assert_eq!(h.last_seen(), Some(t(2_000)));
        assert_eq!(h.report().map(|r| r.catalog_fingerprint), Some(2));
        // On the new clock the node goes stale 5 s after that beat, not
        // 5 s after the old, later-looking one.
        assert_eq!(h.freshness(t(7_000), &c), Freshness::Stale);
        assert_eq!(h.freshness(t(9_500), &c), Freshness::Lost);
        // And from any query time, the beat from the past gives at most
        // the freshness the later one would have given.
        let mut later = Health::new();
        let _ = later.handle_heartbeat(beat(1, false), t(10_000), &c);
        for q in (0..30_000).step_by(500) {
            let rank = |f| match f {
                Freshness::Fresh => 0,
                Freshness::Stale => 1,
                Freshness::Lost => 2,
                Freshness::Passive => 3,
            };
            assert!(rank(h.freshness(t(q), &c)) >= rank(later.freshness(t(q), &c)));
        }
    }

    #[test]
    fn huge_and_zero_thresholds() {
        let never = HealthConfig {
            stale_after: Duration::MAX,
            lost_after: Duration::MAX,
        };
        assert_eq!(never.validate(), Ok(()));
        let mut h = Health::new();
        let _ = h.handle_heartbeat(beat(1, false), Instant::ZERO, &never);
        assert_eq!(
            h.freshness(t(u64::MAX / 2_000_000), &never),
            Freshness::Fresh
        );
        assert_eq!(h.freshness(Instant::MAX, &never), Freshness::Lost);
        let zero = HealthConfig {
            stale_after: Duration::ZERO,
            lost_after: Duration::ZERO,
        };
        assert_eq!(h.freshness(Instant::ZERO, &zero), Freshness::Lost);
        let inverted = HealthConfig {
            stale_after: Duration::from_secs(10),
            lost_after: Duration::from_secs(1),
        };
        assert_eq!(h.freshness(t(500), &inverted), Freshness::Fresh);
        assert_eq!(h.freshness(t(2_000), &inverted), Freshness::Lost);
    }

    #[test]
    fn validate() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(cfg().validate(), Ok(()));
        let equal = HealthConfig {
            stale_after: Duration::from_secs(3),
            lost_after: Duration::from_secs(3),
        };
        assert_eq!(equal.validate(), Ok(()));
        let zero = HealthConfig {
            stale_after: Duration::ZERO,
            ..cfg()
        };
        assert_eq!(zero.validate(), Err(HealthConfigError::ZeroStaleAfter));
        let inverted = HealthConfig {
            lost_after: Duration::from_secs(4),
            ..cfg()
        };
        assert_eq!(inverted.validate(), Err(HealthConfigError::LostBeforeStale));
        for e in [
            HealthConfigError::ZeroStaleAfter,
            HealthConfigError::LostBeforeStale,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn state_is_small() {
        extern crate std;
        std::println!("size_of::<Health>() = {}", core::mem::size_of::<Health>());
        std::println!(
            "size_of::<Telemetry>() = {}",
            core::mem::size_of::<Telemetry>()
        );
        assert!(core::mem::size_of::<Telemetry>() <= 24);
        assert!(core::mem::size_of::<Health>() <= 32);
    }
}
