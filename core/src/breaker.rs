//! Circuit breaker: whether a node may be tried at all.
//!
//! This module decides, per node, whether a new attempt may be sent to it,
//! and whether an attempt is a *probe* that tests a node which recently
//! failed. It knows nothing about latency or load (see [`crate::ewma`]) and
//! nothing about 429/503 back-pressure, which is a separate, independent
//! cooldown ([`crate::overload`]): an overloaded node is healthy but busy
//! and must not trip the breaker.
//!
//! # Algorithm
//!
//! The classic three-state breaker of Nygard, *Release It!* (2007, "Circuit
//! Breaker"), as in Hystrix, resilience4j and Envoy's outlier detection
//! (`consecutive_5xx` ejection with an ejection time that grows with each
//! ejection), with exponential backoff and jitter as in the AWS Architecture
//! Blog, "Exponential Backoff And Jitter" (Brooker, 2015):
//!
//! * **Closed.** Every attempt is allowed. `failure_threshold` consecutive
//!   failures open the breaker; any success resets the count.
//! * **Open** until a deadline. The `n`-th consecutive opening (`n = 0` for
//!   the first) lasts `min(base_cooldown · 2^n, max_cooldown)`, multiplied
//!   by a factor drawn uniformly from `[1 − jitter, 1 + jitter]` and then
//!   bounded by `max_cooldown` again, so gateways that saw the same failure
//!   do not all probe at the same instant. Exactly one `rng.f64()` is drawn
//!   per opening and none otherwise.
//! * **HalfOpen** once the deadline has passed (read lazily from `now`; no
//!   timer is needed). At most `half_open_probes` probe attempts may be in
//!   flight. A probe success closes the breaker and resets the growth; a
//!   probe failure re-opens it with the next, longer cooldown.
//!
//! # Attempts carry a ticket
//!
//! [`Breaker::on_attempt_start`] returns a [`BreakerTicket`] that the caller
//! keeps with the attempt and hands back with its verdict
//! ([`on_success`](Breaker::on_success), [`on_failure`](Breaker::on_failure),
//! [`on_abandoned`](Breaker::on_abandoned)). The ticket records the
//! breaker's *epoch* (a counter bumped at every opening) and whether the
//! attempt holds a probe slot. LLM streams can run for minutes, far longer
//! than a cooldown, so without it a verdict from an attempt started long
//! before the breaker opened would be mistaken for a probe verdict. The
//! rules are:
//!
//! * A verdict whose ticket is from an earlier epoch is **stale** (the
//!   attempt started before the latest opening) and is ignored entirely:
//!   it neither counts nor extends a cooldown. In particular the burst of
//!   failures from attempts already in flight when the node died cannot
//!   re-open the breaker over and over.
//! * While **Open**, all verdicts are ignored (no attempt should have been
//!   admitted, so any verdict is from before the opening).
//! * While **HalfOpen**, only probe tickets count. An attempt started while
//!   Open (which the caller should not do) holds no probe slot and its
//!   verdict is ignored.
//! * While **Closed**, verdicts of the current epoch count, including those
//!   of probes whose sibling probe already closed the breaker.
//! * An abandoned attempt (client cancelled, no verdict) releases its probe
//!   slot if it holds one and counts as neither success nor failure.
//!
//! Hand each ticket back exactly once. Tickets are plain `Copy` values, so
//! the breaker cannot detect a second verdict for the same attempt.
//!
//! # Costs
//!
//! Every method is O(1) and allocation free. [`Breaker`] is 24 bytes.

use core::fmt;

use crate::time::{Duration, Instant};

/// Tuning for [`Breaker`]. Shared by all nodes.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, rename_all = "camelCase"))]
pub struct BreakerConfig {
    /// Consecutive failures (while Closed) that open the breaker. Default 5.
    pub failure_threshold: u16,
    /// Cooldown of the first opening. Default 1 s.
    pub base_cooldown: Duration,
    /// Bound on the cooldown, jitter included. Default 60 s.
    pub max_cooldown: Duration,
    /// Relative jitter applied to each cooldown, in `[0, 0.5]`. Default 0.2
    /// (±20 %).
    pub jitter: f64,
    /// Probe attempts allowed in flight while HalfOpen. Default 1.
    pub half_open_probes: u8,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            base_cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(60),
            jitter: 0.2,
            half_open_probes: 1,
        }
    }
}

impl BreakerConfig {
    /// Checks the configuration. [`Breaker`] never panics on a bad config,
    /// but its behaviour is only meaningful for a valid one (for example,
    /// zero probes would leave an opened breaker HalfOpen forever).
    pub fn validate(&self) -> Result<(), BreakerConfigError> {
        if self.failure_threshold == 0 {
            return Err(BreakerConfigError::ZeroFailureThreshold);
        }
        if self.base_cooldown == Duration::ZERO {
            return Err(BreakerConfigError::ZeroBaseCooldown);
        }
        if self.max_cooldown < self.base_cooldown {
            return Err(BreakerConfigError::MaxBelowBase);
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            return Err(BreakerConfigError::JitterOutOfRange);
        }
        if self.half_open_probes == 0 {
            return Err(BreakerConfigError::ZeroHalfOpenProbes);
        }
        Ok(())
    }
}

/// Why a [`BreakerConfig`] is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerConfigError {
    /// `failure_threshold` is zero.
    ZeroFailureThreshold,
    /// `base_cooldown` is zero.
    ZeroBaseCooldown,
    /// `max_cooldown` is shorter than `base_cooldown`.
    MaxBelowBase,
    /// `jitter` is NaN or outside `[0, 0.5]`.
    JitterOutOfRange,
    /// `half_open_probes` is zero.
    ZeroHalfOpenProbes,
}

impl fmt::Display for BreakerConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroFailureThreshold => "breaker failure threshold must be at least 1",
            Self::ZeroBaseCooldown => "breaker base cooldown must be longer than zero",
            Self::MaxBelowBase => "breaker max cooldown must not be shorter than base cooldown",
            Self::JitterOutOfRange => "breaker jitter must be between 0 and 0.5",
            Self::ZeroHalfOpenProbes => "breaker must allow at least 1 half-open probe",
        })
    }
}

impl core::error::Error for BreakerConfigError {}

/// What the breaker lets through at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Healthy: every attempt is allowed.
    Closed,
    /// Tripped: no attempt until `until`.
    Open {
        /// When the cooldown ends and the breaker becomes HalfOpen.
        until: Instant,
    },
    /// Cooldown over: a limited number of probe attempts are allowed.
    HalfOpen,
}

/// Kept by the caller for each attempt and handed back with its verdict.
/// See the module docs. 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "hand the ticket back with the attempt's verdict"]
pub struct BreakerTicket {
    epoch: u32,
    probe: bool,
}

impl BreakerTicket {
    /// Whether this attempt holds a half-open probe slot.
    pub const fn is_probe(&self) -> bool {
        self.probe
    }
}

/// Internal phase; `Open` past its deadline reads as HalfOpen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Closed,
    Open,
    HalfOpen,
}

/// Per-node circuit breaker. 24 bytes.
///
/// Getters: [`state`](Self::state), [`allows_attempt`](Self::allows_attempt),
/// [`consecutive_failures`](Self::consecutive_failures),
/// [`consecutive_opens`](Self::consecutive_opens),
/// [`probes_in_flight`](Self::probes_in_flight). Inputs:
/// [`on_attempt_start`](Self::on_attempt_start), then exactly one of
/// [`on_success`](Self::on_success), [`on_failure`](Self::on_failure) or
/// [`on_abandoned`](Self::on_abandoned) per ticket. Snapshot:
/// [`learned`](Self::learned) and [`restore`](Self::restore).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breaker {
    /// End of the current cooldown; meaningful only when `phase == Open`.
    until: Instant,
    /// Bumped at every opening; tickets from older epochs are stale.
    epoch: u32,
    /// Consecutive failures while Closed.
    failures: u16,
    /// Openings since the breaker was last closed (saturating).
    opens: u8,
    /// Probe tickets outstanding; zero unless `phase == HalfOpen`.
    probes: u8,
    phase: Phase,
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new()
    }
}

/// `2^n` growth stops here (2^63 saturates any cooldown anyway).
const MAX_SHIFT: u8 = 63;

impl Breaker {
    /// A closed breaker with no failures.
    pub const fn new() -> Self {
        Breaker {
            until: Instant::ZERO,
            epoch: 0,
            failures: 0,
            opens: 0,
            probes: 0,
            phase: Phase::Closed,
        }
    }

    /// The state at `now`. Pure: an Open breaker whose deadline has passed
    /// reads as [`BreakerState::HalfOpen`] before anyone calls a mutator.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open if now < self.until => BreakerState::Open { until: self.until },
            Phase::Open | Phase::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// Whether a new attempt may start at `now`: always when Closed, never
    /// when Open, and while HalfOpen only if fewer than
    /// `cfg.half_open_probes` probes are in flight. Pure.
    pub fn allows_attempt(&self, now: Instant, cfg: &BreakerConfig) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen => self.probes < cfg.half_open_probes,
        }
    }

    /// Consecutive failures counted while Closed.
    pub const fn consecutive_failures(&self) -> u16 {
        self.failures
    }

    /// Openings since the breaker was last closed; the next cooldown is
    /// `base_cooldown · 2^consecutive_opens` before bounds and jitter.
    pub const fn consecutive_opens(&self) -> u8 {
        self.opens
    }

    /// When the current cooldown ends (or ended): `Some` while the breaker
    /// is Open or HalfOpen, `None` when Closed. Unlike
    /// [`state`](Self::state) it needs no `now`, so a driver can compute its
    /// next wakeup from it.
    pub const fn cooldown_end(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closed => None,
            Phase::Open | Phase::HalfOpen => Some(self.until),
        }
    }

    /// Probe attempts in flight (zero unless HalfOpen).
    pub const fn probes_in_flight(&self) -> u8 {
        self.probes
    }

    /// Records that an attempt starts at `now` and returns its ticket.
    ///
    /// When HalfOpen (including an Open breaker whose deadline has passed,
    /// which becomes HalfOpen here) the attempt takes a probe slot, even
    /// past the limit if the caller did not check
    /// [`allows_attempt`](Self::allows_attempt); the count saturates. An
    /// attempt started while Closed or Open holds no slot.
    pub fn on_attempt_start(&mut self, now: Instant) -> BreakerTicket {
        let probe = match self.state(now) {
            BreakerState::HalfOpen => {
                self.phase = Phase::HalfOpen;
                self.probes = self.probes.saturating_add(1);
                true
            }
            BreakerState::Closed | BreakerState::Open { .. } => false,
        };
        BreakerTicket {
            epoch: self.epoch,
            probe,
        }
    }

    /// Whether a verdict for `ticket` counts at `now` (see the module docs).
    fn counts(&self, ticket: BreakerTicket, now: Instant) -> bool {
        if ticket.epoch != self.epoch {
            return false;
        }
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen => ticket.probe,
        }
    }

    /// The attempt of `ticket` succeeded. Closed: resets the failure count.
    /// HalfOpen probe: closes the breaker and resets the cooldown growth.
    /// Stale tickets and anything while Open are ignored.
    pub fn on_success(&mut self, ticket: BreakerTicket, now: Instant) {
        if !self.counts(ticket, now) {
            return;
        }
        self.phase = Phase::Closed;
        self.failures = 0;
        self.opens = 0;
        self.probes = 0;
    }

    /// The attempt of `ticket` failed (connect error, timeout, 5xx, bad
    /// payload; not a 429/503 overload and not a client cancel).
    ///
    /// Closed: counts the failure and opens the breaker at the threshold.
    /// HalfOpen probe: re-opens it with the next, longer cooldown. Returns
    /// `Some(until)` when this failure opened or re-opened the breaker.
    /// Stale tickets and anything while Open are ignored (`None`).
    pub fn on_failure(
        &mut self,
        ticket: BreakerTicket,
        now: Instant,
        cfg: &BreakerConfig,
        rng: &mut fastrand::Rng,
    ) -> Option<Instant> {
        if !self.counts(ticket, now) {
            return None;
        }
        if self.phase == Phase::Closed {
            self.failures = self.failures.saturating_add(1);
            if self.failures < cfg.failure_threshold {
                return None;
            }
        }
        Some(self.open(now, cfg, rng))
    }

    /// The attempt of `ticket` ended with no verdict (client cancelled):
    /// releases its probe slot if it holds one in the current epoch and
    /// counts as neither success nor failure.
    pub fn on_abandoned(&mut self, ticket: BreakerTicket, now: Instant) {
        if ticket.probe && self.counts(ticket, now) && self.phase == Phase::HalfOpen {
            self.probes = self.probes.saturating_sub(1);
        }
    }

    /// Opens (or re-opens) at `now`; returns the deadline.
    fn open(&mut self, now: Instant, cfg: &BreakerConfig, rng: &mut fastrand::Rng) -> Instant {
        let cooldown = Self::cooldown(self.opens, cfg, rng.f64());
        self.phase = Phase::Open;
        self.until = now + cooldown;
        self.epoch = self.epoch.wrapping_add(1);
        self.failures = 0;
        self.opens = self.opens.saturating_add(1);
        self.probes = 0;
        self.until
    }

    /// Cooldown of the opening that follows `opens` earlier ones, for a
    /// uniform draw `u` in `[0, 1)`.
    fn cooldown(opens: u8, cfg: &BreakerConfig, u: f64) -> Duration {
        let growth = 1u64 << opens.min(MAX_SHIFT);
        let nominal = cfg
            .base_cooldown
            .saturating_mul(growth)
            .min(cfg.max_cooldown);
        // NaN jitter acts as 0; out-of-range values are clamped.
        let j = if cfg.jitter > 0.0 {
            cfg.jitter.min(1.0)
        } else {
            0.0
        };
        let factor = 1.0 + j * (2.0 * u - 1.0);
        // `as` saturates (and maps NaN to 0): no overflow, no panic.
        let ns = (nominal.as_nanos() as f64 * factor) as u64;
        Duration::from_nanos(ns).min(cfg.max_cooldown)
    }

    /// A snapshot independent of the caller's epoch: the cooldown left (if
    /// Open or HalfOpen) and the growth counters. Probes in flight are not
    /// kept: their attempts do not survive a restart.
    pub fn learned(&self, now: Instant) -> BreakerLearned {
        BreakerLearned {
            cooldown_left: match self.phase {
                Phase::Closed => None,
                Phase::Open => Some(self.until - now),
                Phase::HalfOpen => Some(Duration::ZERO),
            },
            consecutive_opens: self.opens,
            consecutive_failures: self.failures,
        }
    }

    /// Rebuilds a breaker from [`learned`](Self::learned) at `now`.
    /// `cooldown_left: Some(d)` gives an Open breaker until `now + d`
    /// (HalfOpen at once when `d` is zero) with at least one recorded
    /// opening; `None` gives a Closed one. Tickets issued by another
    /// breaker value must not be handed to the restored one.
    pub fn restore(learned: BreakerLearned, now: Instant) -> Self {
        match learned.cooldown_left {
            None => Breaker {
                failures: learned.consecutive_failures,
                ..Self::new()
            },
            Some(left) => Breaker {
                until: now + left,
                phase: Phase::Open,
                opens: learned.consecutive_opens.max(1),
                ..Self::new()
            },
        }
    }
}

/// Snapshot of a [`Breaker`], independent of the caller's epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "camelCase"))]
pub struct BreakerLearned {
    /// `None` when Closed; otherwise the cooldown remaining (zero when the
    /// breaker was already HalfOpen).
    pub cooldown_left: Option<Duration>,
    /// Openings since the breaker was last closed.
    pub consecutive_opens: u8,
    /// Consecutive failures counted while Closed.
    pub consecutive_failures: u16,
}

#[cfg(test)]
mod tests;
