//! The scenario file as serde reads it, and the checks that turn it into a
//! [`Scenario`]. Each check names the key at fault by its [`FieldPath`].

use std::collections::BTreeSet;
use std::path::Path;

use drover_core::Duration;
use drover_core::catalog::MAX_TAGS;
use drover_core::config::MAX_ATTEMPTS;
use serde::Deserialize;

use super::checks::{
    Checked, at_least_one, fail, millis, min_one, name, nonzero, positive, probability, secs,
};
use super::locate::FieldPath;
use super::raw_workload::RawWorkload;
use super::{
    AffinitySettings, Fault, FaultKind, Heartbeat, HedgeSettings, MAX_GATEWAYS, MAX_NODES,
    PolicySpec, RouterSettings, Scenario, ScenarioNode,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    seed: Option<u64>,
    gateways: Option<u16>,
    heartbeat: Option<RawHeartbeat>,
    policies: Option<Vec<String>>,
    #[serde(default)]
    router: RawRouter,
    #[serde(default)]
    nodes: Vec<RawNode>,
    #[serde(default)]
    faults: Vec<RawFault>,
    #[serde(default)]
    workload: RawWorkload,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeartbeat {
    interval_ms: Option<f64>,
    delay_ms: Option<f64>,
    stale_after_ms: Option<f64>,
    lost_after_ms: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRouter {
    max_attempts: Option<u8>,
    queue_wait_ms: Option<f64>,
    ttft_timeout_ms: Option<f64>,
    attempt_timeout_ms: Option<f64>,
    call_timeout_ms: Option<f64>,
    #[serde(default)]
    hedge: RawHedge,
    #[serde(default)]
    affinity: RawAffinity,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHedge {
    quantile: Option<f64>,
    min_delay_ms: Option<f64>,
    max_delay_ms: Option<f64>,
    budget_ratio: Option<f64>,
    budget_burst: Option<u32>,
    non_stream: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAffinity {
    session_promote_ratio: Option<f64>,
    prefix_key_blocks: Option<u8>,
    prefix_load_factor: Option<f64>,
    prefix_spread: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    slots: u16,
    max_concurrency: Option<u16>,
    weight: Option<u16>,
    #[serde(default)]
    tags: Vec<String>,
    prefill_tokens_per_s: f64,
    decode_tokens_per_s: f64,
    base_ttft_ms: Option<f64>,
    jitter: Option<f64>,
    prefix_cache_blocks: Option<u32>,
    embed_ms: Option<f64>,
    overload_queue: Option<u32>,
    retry_after_ms: Option<f64>,
    failure_rate: Option<f64>,
    corrupt_rate: Option<f64>,
    heartbeat: Option<bool>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawFaultKind {
    Crash,
    StaleHeartbeat,
    Slow,
    Overload,
    Corrupt,
    Flap,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    kind: RawFaultKind,
    node: String,
    at_s: f64,
    until_s: Option<f64>,
    factor: Option<f64>,
    period_s: Option<f64>,
    rate: Option<f64>,
    queue: Option<u32>,
}

// ---- the scenario ---------------------------------------------------------

impl RawScenario {
    /// Checks every key and builds the scenario; `base` anchors a
    /// relative `workload.trace`.
    pub(super) fn check(self, base: &Path) -> Checked<Scenario> {
        if self.name.trim().is_empty() {
            return fail(&FieldPath::key("name"), "must not be empty");
        }
        let gateways = self.gateways.unwrap_or(1);
        if !(1..=MAX_GATEWAYS).contains(&gateways) {
            return fail(
                &FieldPath::key("gateways"),
                format!("must be from 1 to {MAX_GATEWAYS}, found {gateways}"),
            );
        }
        let heartbeat = match self.heartbeat {
            Some(h) => Some(h.check(&FieldPath::key("heartbeat"))?),
            None => None,
        };
        let policies = check_policies(self.policies)?;
        let router = self.router.check(&FieldPath::key("router"))?;
        for &spec in &policies {
            if let Err(e) = router.router_config(spec).validate() {
                return fail(&FieldPath::key("router"), format!("for policy {spec}: {e}"));
            }
        }
        let nodes = check_nodes(self.nodes, heartbeat.is_some())?;
        let faults = check_faults(self.faults, &nodes, heartbeat.is_some())?;
        let workload = self.workload.check(&FieldPath::key("workload"), base)?;
        Ok(Scenario {
            name: self.name,
            description: self.description,
            seed: self.seed,
            gateways,
            heartbeat,
            policies,
            router,
            nodes,
            faults,
            workload,
        })
    }
}

impl RawHeartbeat {
    fn check(self, path: &FieldPath) -> Checked<Heartbeat> {
        let field = |k: &str, v: Option<f64>, default: f64| {
            let p = path.then(k);
            millis(&p, v.unwrap_or(default)).map(|d| (p, d))
        };
        let (p, interval) = field("interval_ms", self.interval_ms, 1_000.0)?;
        nonzero(&p, Ok(interval))?;
        let (_, delay) = field("delay_ms", self.delay_ms, 5.0)?;
        let (p, stale_after) = field("stale_after_ms", self.stale_after_ms, 5_000.0)?;
        if stale_after < interval {
            return fail(
                &p,
                format!(
                    "must be at least interval_ms ({} ms): otherwise every node goes stale between two heartbeats",
                    interval.as_millis()
                ),
            );
        }
        let (p, lost_after) = field("lost_after_ms", self.lost_after_ms, 7_500.0)?;
        if lost_after < stale_after {
            return fail(
                &p,
                format!(
                    "must be at least stale_after_ms ({} ms)",
                    stale_after.as_millis()
                ),
            );
        }
        Ok(Heartbeat {
            interval,
            delay,
            stale_after,
            lost_after,
        })
    }
}

fn check_policies(names: Option<Vec<String>>) -> Checked<Vec<PolicySpec>> {
    let Some(names) = names else {
        return Ok(PolicySpec::base_policies());
    };
    let path = FieldPath::key("policies");
    if names.is_empty() {
        return fail(&path, "must name at least one policy");
    }
    let mut specs: Vec<PolicySpec> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let spec: PolicySpec = name
            .parse()
            .or_else(|e| fail(&path.at(i), format!("{e}")))?;
        if specs.contains(&spec) {
            return fail(&path.at(i), format!("policy {spec} is listed twice"));
        }
        specs.push(spec);
    }
    Ok(specs)
}

impl RawRouter {
    fn check(self, path: &FieldPath) -> Checked<RouterSettings> {
        let d = RouterSettings::default();
        let max_attempts = self.max_attempts.unwrap_or(d.max_attempts);
        if max_attempts == 0 || usize::from(max_attempts) > MAX_ATTEMPTS {
            return fail(
                &path.then("max_attempts"),
                format!("must be from 1 to {MAX_ATTEMPTS}, found {max_attempts}"),
            );
        }
        let ms = |k: &str, v: Option<f64>, default: Duration, zero_ok: bool| match v {
            None => Ok(default),
            Some(v) if zero_ok => millis(&path.then(k), v),
            Some(v) => nonzero(&path.then(k), millis(&path.then(k), v)),
        };
        Ok(RouterSettings {
            max_attempts,
            queue_wait: ms("queue_wait_ms", self.queue_wait_ms, d.queue_wait, true)?,
            ttft_timeout: ms(
                "ttft_timeout_ms",
                self.ttft_timeout_ms,
                d.ttft_timeout,
                false,
            )?,
            attempt_timeout: ms(
                "attempt_timeout_ms",
                self.attempt_timeout_ms,
                d.attempt_timeout,
                false,
            )?,
            call_timeout: ms(
                "call_timeout_ms",
                self.call_timeout_ms,
                d.call_timeout,
                false,
            )?,
            hedge: self.hedge.check(&path.then("hedge"), d.hedge)?,
            affinity: self.affinity.check(&path.then("affinity"), d.affinity)?,
        })
    }
}

impl RawHedge {
    fn check(self, path: &FieldPath, d: HedgeSettings) -> Checked<HedgeSettings> {
        let quantile = match self.quantile {
            Some(q) => probability(&path.then("quantile"), q)?,
            None => d.quantile,
        };
        let min_delay = match self.min_delay_ms {
            Some(v) => millis(&path.then("min_delay_ms"), v)?,
            None => d.min_delay,
        };
        let max_delay = match self.max_delay_ms {
            Some(v) => millis(&path.then("max_delay_ms"), v)?,
            None => d.max_delay,
        };
        if max_delay < min_delay {
            let key = if self.max_delay_ms.is_some() {
                "max_delay_ms"
            } else {
                "min_delay_ms"
            };
            return fail(
                &path.then(key),
                format!(
                    "max_delay_ms ({} ms) must be at least min_delay_ms ({} ms)",
                    max_delay.as_millis(),
                    min_delay.as_millis()
                ),
            );
        }
        let budget_ratio = match self.budget_ratio {
            Some(r) => probability(&path.then("budget_ratio"), r)?,
            None => d.budget_ratio,
        };
        Ok(HedgeSettings {
            quantile,
            min_delay,
            max_delay,
            budget_ratio,
            budget_burst: self.budget_burst.unwrap_or(d.budget_burst),
            non_stream: self.non_stream.unwrap_or(d.non_stream),
        })
    }
}

impl RawAffinity {
    fn check(self, path: &FieldPath, d: AffinitySettings) -> Checked<AffinitySettings> {
        let ratio = |k: &str, v: Option<f64>, default: f64| match v {
            Some(v) => at_least_one(&path.then(k), v),
            None => Ok(default),
        };
        Ok(AffinitySettings {
            session_promote_ratio: ratio(
                "session_promote_ratio",
                self.session_promote_ratio,
                d.session_promote_ratio,
            )?,
            prefix_key_blocks: match self.prefix_key_blocks {
                Some(n) => min_one(&path.then("prefix_key_blocks"), n)?,
                None => d.prefix_key_blocks,
            },
            prefix_load_factor: ratio(
                "prefix_load_factor",
                self.prefix_load_factor,
                d.prefix_load_factor,
            )?,
            prefix_spread: self.prefix_spread.unwrap_or(d.prefix_spread),
        })
    }
}

fn check_nodes(raw: Vec<RawNode>, heartbeats: bool) -> Checked<Vec<ScenarioNode>> {
    let path = FieldPath::key("nodes");
    if raw.is_empty() {
        return fail(&path, "a scenario needs at least one node ([[nodes]])");
    }
    if raw.len() > MAX_NODES {
        return fail(
            &path,
            format!("at most {MAX_NODES} nodes, found {}", raw.len()),
        );
    }
    let mut tags = BTreeSet::new();
    let mut nodes: Vec<ScenarioNode> = Vec::with_capacity(raw.len());
    for (i, n) in raw.into_iter().enumerate() {
        let p = path.at(i);
        name(&p.then("name"), &n.name, "a node name")?;
        if let Some(j) = nodes.iter().position(|m| m.name == n.name) {
            return fail(
                &p.then("name"),
                format!("node name {:?} is already used by nodes[{j}]", n.name),
            );
        }
        let node = n.check(&p, heartbeats)?;
        for (t, tag) in node.tags.iter().enumerate() {
            name(&p.then("tags").at(t), tag, "a tag")?;
            tags.insert(tag.clone());
            if tags.len() > MAX_TAGS {
                return fail(
                    &p.then("tags").at(t),
                    format!("a scenario may use at most {MAX_TAGS} distinct tags"),
                );
            }
        }
        nodes.push(node);
    }
    Ok(nodes)
}

impl RawNode {
    fn check(self, p: &FieldPath, heartbeats: bool) -> Checked<ScenarioNode> {
        let slots = min_one(&p.then("slots"), self.slots)?;
        let max_concurrency = match self.max_concurrency {
            Some(n) => min_one(&p.then("max_concurrency"), n)?,
            None => slots.saturating_mul(2),
        };
        let weight = match self.weight {
            Some(w) => min_one(&p.then("weight"), w)?,
            None => slots,
        };
        let opt_ms = |k: &str, v: Option<f64>| v.map(|v| millis(&p.then(k), v)).transpose();
        let prob = |k: &str, v: Option<f64>| v.map_or(Ok(0.0), |v| probability(&p.then(k), v));
        if self.heartbeat == Some(true) && !heartbeats {
            return fail(
                &p.then("heartbeat"),
                "the scenario has no [heartbeat] section: add one, or leave heartbeat out",
            );
        }
        Ok(ScenarioNode {
            name: self.name,
            slots,
            max_concurrency,
            weight,
            tags: self.tags,
            prefill_tokens_per_s: positive(
                &p.then("prefill_tokens_per_s"),
                self.prefill_tokens_per_s,
            )?,
            decode_tokens_per_s: positive(
                &p.then("decode_tokens_per_s"),
                self.decode_tokens_per_s,
            )?,
            base_ttft: opt_ms("base_ttft_ms", self.base_ttft_ms)?.unwrap_or(Duration::ZERO),
            jitter: prob("jitter", self.jitter)?,
            prefix_cache_blocks: self.prefix_cache_blocks.unwrap_or(0),
            embed: opt_ms("embed_ms", self.embed_ms)?.unwrap_or(Duration::from_millis(10)),
            overload_queue: self.overload_queue,
            retry_after: opt_ms("retry_after_ms", self.retry_after_ms)?,
            failure_rate: prob("failure_rate", self.failure_rate)?,
            corrupt_rate: prob("corrupt_rate", self.corrupt_rate)?,
            heartbeat: self.heartbeat.unwrap_or(true),
        })
    }
}

fn check_faults(
    raw: Vec<RawFault>,
    nodes: &[ScenarioNode],
    heartbeats: bool,
) -> Checked<Vec<Fault>> {
    let path = FieldPath::key("faults");
    raw.into_iter()
        .enumerate()
        .map(|(i, f)| f.check(&path.at(i), nodes, heartbeats))
        .collect()
}

impl RawFault {
    fn check(self, p: &FieldPath, nodes: &[ScenarioNode], heartbeats: bool) -> Checked<Fault> {
        let Some(node) = nodes.iter().position(|n| n.name == self.node) else {
            let known: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            return fail(
                &p.then("node"),
                format!(
                    "unknown node {:?}: the nodes are {}",
                    self.node,
                    known.join(", ")
                ),
            );
        };
        let at = secs(&p.then("at_s"), self.at_s)?;
        let until = match self.until_s {
            None => None,
            Some(v) => {
                let until = secs(&p.then("until_s"), v)?;
                if until <= at {
                    return fail(
                        &p.then("until_s"),
                        format!("must be after at_s ({}), found {v}", self.at_s),
                    );
                }
                Some(until)
            }
        };
        let kind_name = match self.kind {
            RawFaultKind::Crash => "crash",
            RawFaultKind::StaleHeartbeat => "stale_heartbeat",
            RawFaultKind::Slow => "slow",
            RawFaultKind::Overload => "overload",
            RawFaultKind::Corrupt => "corrupt",
            RawFaultKind::Flap => "flap",
        };
        let only = |key: &str, given: bool, takers: &[RawFaultKind], who: &str| {
            if given && !takers.contains(&self.kind) {
                fail(
                    &p.then(key),
                    format!(
                        "{} {kind_name} fault takes no {key}: only {who}",
                        if kind_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                            "an"
                        } else {
                            "a"
                        }
                    ),
                )
            } else {
                Ok(())
            }
        };
        only(
            "factor",
            self.factor.is_some(),
            &[RawFaultKind::Slow],
            "slow faults do",
        )?;
        only(
            "period_s",
            self.period_s.is_some(),
            &[RawFaultKind::Flap],
            "flap faults do",
        )?;
        only(
            "rate",
            self.rate.is_some(),
            &[RawFaultKind::Corrupt],
            "corrupt faults do",
        )?;
        only(
            "queue",
            self.queue.is_some(),
            &[RawFaultKind::Overload],
            "overload faults do",
        )?;
        let rate = self
            .rate
            .map_or(Ok(1.0), |r| probability(&p.then("rate"), r))?;
        let kind = match self.kind {
            RawFaultKind::Crash => FaultKind::Crash,
            RawFaultKind::StaleHeartbeat => {
                if !heartbeats || !nodes[node].heartbeat {
                    return fail(
                        &p.then("kind"),
                        format!(
                            "node {:?} sends no heartbeats to go stale (the scenario needs [heartbeat] and the node heartbeat = true)",
                            self.node
                        ),
                    );
                }
                FaultKind::StaleHeartbeat
            }
            RawFaultKind::Slow => match self.factor {
                None => return fail(&p.then("kind"), "a slow fault needs factor (above 1)"),
                Some(f) if f.is_finite() && f > 1.0 => FaultKind::Slow { factor: f },
                Some(f) => {
                    return fail(
                        &p.then("factor"),
                        format!("must be a number above 1, found {f}"),
                    );
                }
            },
            RawFaultKind::Overload => FaultKind::Overload {
                queue_limit: self.queue.unwrap_or(0),
            },
            RawFaultKind::Corrupt => FaultKind::Corrupt { rate },
            RawFaultKind::Flap => match self.period_s {
                None => return fail(&p.then("kind"), "a flap fault needs period_s"),
                Some(v) => FaultKind::Flap {
                    period: nonzero(&p.then("period_s"), secs(&p.then("period_s"), v))?,
                },
            },
        };
        Ok(Fault {
            node,
            at,
            until,
            kind,
        })
    }
}
