//! `[probes]` and `[retry_budget]`, and `[routing] strict_models`.

use std::time::Duration;

use drover_core::config::RouterConfig;

use super::super::raw::{RawProbes, RawRetryBudget};
use super::{Ctx, FieldPath};

fn core(d: Duration) -> drover_core::Duration {
    drover_core::Duration::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn std_of(d: drover_core::Duration) -> Duration {
    Duration::from_nanos(d.as_nanos())
}

/// `[probes]`: active health and model-inventory probes. On by default in
/// the gateway (the core's own default is off).
pub(in crate::config) fn probes(cx: &mut Ctx, raw: RawProbes, c: &mut RouterConfig) {
    let at = FieldPath::key("probes");
    let p = &mut c.probe;
    p.enabled = raw.enabled.unwrap_or(true);
    let health = cx.positive(
        &at.then("health_interval"),
        raw.health_interval,
        std_of(p.health_interval),
    );
    let inventory = cx.positive(
        &at.then("inventory_interval"),
        raw.inventory_interval,
        std_of(p.inventory_interval),
    );
    let timeout = cx.positive(&at.then("timeout"), raw.timeout, std_of(p.timeout));
    if timeout >= health {
        cx.error(
            &at.then("timeout"),
            format!("must be shorter than probes.health_interval ({health:?})"),
        );
    }
    let jitter = raw.jitter.unwrap_or(p.jitter);
    if !(jitter.is_finite() && (0.0..=0.5).contains(&jitter)) {
        cx.error(
            &at.then("jitter"),
            format!("{jitter} is not between 0 and 0.5"),
        );
    } else {
        p.jitter = jitter;
    }
    p.health_interval = core(health);
    p.inventory_interval = core(inventory);
    p.timeout = core(timeout);
}

/// `[retry_budget]`: how many retries and hedges may run.
pub(in crate::config) fn retry_budget(cx: &mut Ctx, raw: RawRetryBudget, c: &mut RouterConfig) {
    let at = FieldPath::key("retry_budget");
    let b = &mut c.retry_budget;
    b.ratio = cx.fraction(&at.then("ratio"), raw.ratio, b.ratio);
    b.min_concurrent = cx.int(
        &at.then("min_concurrent"),
        raw.min_concurrent,
        b.min_concurrent,
        0,
        10_000,
    );
    b.burst = cx.int(&at.then("burst"), raw.burst, b.burst, 0, 100_000);
}
