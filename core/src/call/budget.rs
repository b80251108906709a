//! The retry budget's bookkeeping (see [`RetryBudget`](crate::config::RetryBudget)):
//! a token bucket fed by started calls and a count of retries and hedges in
//! flight, shared by every call of one router.

use crate::call::TraceEvent;
use crate::router::Router;
use crate::time::Instant;
use crate::trace::TraceId;

impl<const N: usize, const C: usize, const Q: usize> Router<N, C, Q> {
    /// A started call's deposit: `ratio` tokens, the bucket capped at `burst`.
    pub(crate) fn deposit_retry_tokens(&mut self) {
        let b = self.cfg.retry_budget;
        let ratio_milli = (b.ratio * 1000.0) as u64;
        let cap = u64::from(b.burst) * 1000;
        self.retry_tokens_milli = (self.retry_tokens_milli + ratio_milli).min(cap.max(ratio_milli));
    }

    /// Whether one more retry or hedge may start now: a whole token in the
    /// bucket, and in flight it would not exceed
    /// `max(min_concurrent, ratio × active calls)`.
    pub(crate) fn retry_admits(&self) -> bool {
        let b = self.cfg.retry_budget;
        let ratio_milli = (b.ratio * 1000.0) as u64;
        let limit_milli =
            (u64::from(b.min_concurrent) * 1000).max(ratio_milli * u64::from(self.active_calls));
        let after_milli = (u64::from(self.retries_in_flight) + 1) * 1000;
        self.retry_tokens_milli >= 1000 && after_milli <= limit_milli
    }

    /// A retry or hedge starts: it takes a token and counts as in flight.
    pub(crate) fn spend_retry(&mut self) {
        self.retry_tokens_milli = self.retry_tokens_milli.saturating_sub(1000);
        self.retries_in_flight += 1;
    }

    /// A retry or hedge ended (any way).
    pub(crate) fn retry_ended(&mut self) {
        self.retries_in_flight = self.retries_in_flight.saturating_sub(1);
    }

    /// Books a refusal (`retry_budget_exhausted`).
    pub(crate) fn deny_retry(&mut self, trace: TraceId, now: Instant, hedge: bool) {
        self.metrics.retries_denied += 1;
        self.trace
            .push(trace, now, TraceEvent::RetryDenied { hedge });
    }
}
