//! Overload cooldown: when a node that said "busy" may be asked again.
//!
//! This module decides how long to leave a node alone after it answered
//! `429 Too Many Requests` or `503 Service Unavailable`, honouring its
//! `Retry-After` within bounds. An overloaded node is healthy but full, so
//! this is deliberately separate from the circuit breaker
//! ([`crate::breaker`]): an overload never counts as a breaker failure, and
//! [`Overload`] never reads or changes a [`Breaker`](crate::breaker::Breaker).
//! The router consults both.
//!
//! # Algorithm
//!
//! Server-directed back-off as in RFC 9110 §10.2.3 (`Retry-After`) and
//! RFC 6585 §4 (429), with client-side bounds as in gRPC's retry throttling
//! and Envoy's `retry_back_off`/`rate_limited_retry_back_off`:
//!
//! * cooldown = `Retry-After` if given, else `default_cooldown`, clamped to
//!   `[min_cooldown, max_cooldown]`. The lower bound turns `Retry-After: 0`
//!   into a short pause rather than an immediate retry storm; the upper
//!   bound stops a misconfigured or hostile node from parking itself for
//!   hours (`Retry-After: 86400`).
//! * The node is cooling while `now < until`. A new overload extends
//!   `until` to `max(until, now + cooldown)`: it never shortens a cooldown
//!   already running, even when `now` has stepped backwards.
//!
//! Parsing the header (delta-seconds or an HTTP date) is the adapter's job;
//! this module takes the resulting [`Duration`]. Every method is O(1).

use core::fmt;

use crate::time::{Duration, Instant};

/// Bounds for [`Overload`]. Shared by all nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, rename_all = "camelCase"))]
pub struct OverloadConfig {
    /// Cooldown when the reply has no `Retry-After`. Default 1 s.
    pub default_cooldown: Duration,
    /// Shortest cooldown, even for `Retry-After: 0`. Default 100 ms.
    pub min_cooldown: Duration,
    /// Longest cooldown, whatever `Retry-After` says. Default 30 s.
    pub max_cooldown: Duration,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig {
            default_cooldown: Duration::from_secs(1),
            min_cooldown: Duration::from_millis(100),
            max_cooldown: Duration::from_secs(30),
        }
    }
}

impl OverloadConfig {
    /// Checks `min_cooldown <= max_cooldown`. With an invalid config
    /// [`Overload`] still works: `max_cooldown` wins.
    pub fn validate(&self) -> Result<(), OverloadConfigError> {
        if self.min_cooldown > self.max_cooldown {
            return Err(OverloadConfigError::MinAboveMax);
        }
        Ok(())
    }

    /// The cooldown for a reply with this `Retry-After`.
    pub fn cooldown(&self, retry_after: Option<Duration>) -> Duration {
        retry_after
            .unwrap_or(self.default_cooldown)
            .clamp(self.min_cooldown, self.max_cooldown)
    }
}

/// Why an [`OverloadConfig`] is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverloadConfigError {
    /// `min_cooldown` is longer than `max_cooldown`.
    MinAboveMax,
}

impl fmt::Display for OverloadConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MinAboveMax => "overload min cooldown must not be longer than max cooldown",
        })
    }
}

impl core::error::Error for OverloadConfigError {}

/// Per-node overload cooldown. 16 bytes.
///
/// Getters: [`is_cooling`](Self::is_cooling), [`until`](Self::until),
/// [`remaining`](Self::remaining), [`events`](Self::events). Input:
/// [`on_overloaded`](Self::on_overloaded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Overload {
    /// End of the cooldown; `Instant::ZERO` before any overload.
    until: Instant,
    /// Overload replies seen (saturating).
    events: u32,
}

impl Overload {
    /// A node that never reported overload.
    pub const fn new() -> Self {
        Overload {
            until: Instant::ZERO,
            events: 0,
        }
    }

    /// Records a 429/503 reply received at `now` with an optional
    /// `Retry-After`, and returns when the cooldown ends (possibly later
    /// than this reply asks, if an earlier one asked for longer).
    pub fn on_overloaded(
        &mut self,
        retry_after: Option<Duration>,
        now: Instant,
        cfg: &OverloadConfig,
    ) -> Instant {
        self.until = self.until.max(now + cfg.cooldown(retry_after));
        self.events = self.events.saturating_add(1);
        self.until
    }

    /// Whether the node is still cooling down at `now` (`now < until`).
    pub fn is_cooling(&self, now: Instant) -> bool {
        now < self.until
    }

    /// End of the latest cooldown (possibly in the past); `None` if the
    /// node never reported overload.
    pub const fn until(&self) -> Option<Instant> {
        if self.events > 0 {
            Some(self.until)
        } else {
            None
        }
    }

    /// Cooldown left at `now`; zero when not cooling.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.until - now
    }

    /// Overload replies recorded, saturating at `u32::MAX`.
    pub const fn events(&self) -> u32 {
        self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OverloadConfig {
        OverloadConfig::default()
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn fresh_node_is_not_cooling() {
        let o = Overload::new();
        assert_eq!(o, Overload::default());
        assert!(!o.is_cooling(Instant::ZERO));
        assert!(!o.is_cooling(Instant::MAX));
        assert_eq!(o.until(), None);
        assert_eq!(o.remaining(t(5)), Duration::ZERO);
        assert_eq!(o.events(), 0);
    }

    #[test]
    fn default_cooldown_without_retry_after() {
        let mut o = Overload::new();
        assert_eq!(o.on_overloaded(None, t(1_000), &cfg()), t(2_000));
        assert!(o.is_cooling(t(1_999)));
        assert!(!o.is_cooling(t(2_000)), "until is exclusive");
        assert_eq!(o.until(), Some(t(2_000)));
        assert_eq!(o.remaining(t(1_500)), ms(500));
        assert_eq!(o.events(), 1);
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let c = cfg();
        let mut o = Overload::new();
        assert_eq!(o.on_overloaded(Some(ms(5_000)), t(0), &c), t(5_000));
        let mut o = Overload::new();
        assert_eq!(o.on_overloaded(Some(Duration::ZERO), t(0), &c), t(100));
        let mut o = Overload::new();
        let huge = Some(Duration::from_secs(86_400));
        assert_eq!(o.on_overloaded(huge, t(0), &c), t(30_000));
        let mut o = Overload::new();
        assert_eq!(o.on_overloaded(Some(Duration::MAX), t(0), &c), t(30_000));
    }

    #[test]
    fn never_shortens_a_running_cooldown() {
        let c = cfg();
        let mut o = Overload::new();
        o.on_overloaded(Some(ms(20_000)), t(0), &c);
        assert_eq!(o.on_overloaded(Some(ms(200)), t(1_000), &c), t(20_000));
        assert_eq!(o.on_overloaded(None, t(1_000), &c), t(20_000));
        // A longer one extends it.
        assert_eq!(o.on_overloaded(Some(ms(25_000)), t(1_000), &c), t(26_000));
        assert_eq!(o.events(), 4);
    }

    #[test]
    fn time_going_backwards_or_standing_still() {
        let c = cfg();
        let mut o = Overload::new();
        o.on_overloaded(None, t(10_000), &c);
        assert_eq!(o.on_overloaded(None, t(0), &c), t(11_000));
        assert!(o.is_cooling(t(0)));
        assert_eq!(o.remaining(t(0)), ms(11_000));
        assert_eq!(o.on_overloaded(None, t(10_000), &c), t(11_000));
    }

    #[test]
    fn expired_cooldown_restarts_from_now() {
        let c = cfg();
        let mut o = Overload::new();
        o.on_overloaded(None, t(0), &c);
        assert!(!o.is_cooling(t(60_000)));
        assert_eq!(o.until(), Some(t(1_000)), "until stays readable");
        assert_eq!(o.on_overloaded(None, t(60_000), &c), t(61_000));
    }

    #[test]
    fn saturates_at_the_end_of_time() {
        let c = OverloadConfig {
            max_cooldown: Duration::MAX,
            ..cfg()
        };
        let mut o = Overload::new();
        assert_eq!(o.on_overloaded(Some(Duration::MAX), t(5), &c), Instant::MAX);
        assert!(o.is_cooling(t(u64::MAX / 1_000_000)));
        o.events = u32::MAX;
        o.on_overloaded(None, Instant::MAX, &c);
        assert_eq!(o.events(), u32::MAX);
    }

    #[test]
    fn zero_bounds() {
        let c = OverloadConfig {
            default_cooldown: Duration::ZERO,
            min_cooldown: Duration::ZERO,
            max_cooldown: Duration::ZERO,
        };
        assert_eq!(c.validate(), Ok(()));
        let mut o = Overload::new();
        assert_eq!(o.on_overloaded(None, t(7), &c), t(7));
        assert!(!o.is_cooling(t(7)));
        assert_eq!(o.events(), 1);
    }

    #[test]
    fn validate_and_inverted_bounds() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(cfg().validate(), Ok(()));
        let bad = OverloadConfig {
            min_cooldown: ms(5_000),
            max_cooldown: ms(1_000),
            ..cfg()
        };
        assert_eq!(bad.validate(), Err(OverloadConfigError::MinAboveMax));
        assert!(!OverloadConfigError::MinAboveMax.to_string().is_empty());
        // Still usable: the max wins.
        assert_eq!(bad.cooldown(None), ms(1_000));
        assert_eq!(bad.cooldown(Some(Duration::ZERO)), ms(1_000));
    }

    #[test]
    fn state_is_small() {
        extern crate std;
        std::println!(
            "size_of::<Overload>() = {}",
            core::mem::size_of::<Overload>()
        );
        assert!(core::mem::size_of::<Overload>() <= 16);
    }
}
