//! Runs a [`Plan`]: builds the workload, the simulated swarm and its faults
//! from the scenario, replays the same calls once per policy (a paired
//! comparison: every policy sees the same arrivals, the same seeds and the
//! same faults), and writes the summary table, `report.json` and the SVG
//! plots.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use drover_core::call::Outcome;
use drover_core::{Duration, Instant};
use drover_transports::sim::{
    Assign, BurstySpec, CrashMode, Fault as SimFault, FaultKind as SimKind, OpMix, Report,
    SessionSpec, SimNode, SimSetup, TraceOptions, Workload, WorkloadSpec, read_trace,
};

use super::json::{
    ExtraAttempts, Failures, FailuresOverTime, NodeShare, PolicyReport, Quantiles, ReplayReport,
};
use super::plot::{self, Series, TimeSeries};
use super::progress::Progress;
use super::scenario::{FaultKind, Mix, PolicySpec, Scenario};
use super::{Plan, ReplayError, Source};

/// Tokens per prompt block in the simulated prefix caches (the Mooncake
/// trace's block size).
const BLOCK_TOKENS: u32 = 512;

/// What a replay produced: the text for stdout and the files written.
#[derive(Debug)]
pub struct Outputs {
    /// The summary table.
    pub table: String,
    /// Every file written, `report.json` first.
    pub files: Vec<PathBuf>,
}

/// Runs every policy of the plan on the simulator and returns each
/// policy's report, writing nothing (for benchmarks and embedding).
pub fn simulate(plan: &Plan) -> Result<Vec<(PolicySpec, Report)>, ReplayError> {
    let workload = build_workload(plan)?;
    if workload.is_empty() {
        return Err(ReplayError::EmptyWorkload(plan.source.label()));
    }
    let nodes = build_nodes(&plan.scenario);
    let faults = build_faults(&plan.scenario);
    let bucket = bucket_for(&workload);
    plan.policies
        .iter()
        .map(|&spec| {
            Ok((
                spec,
                run_policy(plan, spec, &workload, &nodes, &faults, bucket)?.report,
            ))
        })
        .collect()
}

/// About 200 time-series buckets over the arrivals, at least a second each.
fn bucket_for(workload: &Workload) -> Duration {
    let span = workload
        .arrivals()
        .iter()
        .map(|a| a.at)
        .max()
        .unwrap_or(Instant::ZERO);
    Duration::from_secs((span.as_nanos() / 1_000_000_000 / 200).max(1))
}

/// Runs the plan and writes its outputs into `plan.out`.
pub fn execute(plan: &Plan) -> Result<Outputs, ReplayError> {
    let workload = build_workload(plan)?;
    if workload.is_empty() {
        return Err(ReplayError::EmptyWorkload(plan.source.label()));
    }
    let nodes = build_nodes(&plan.scenario);
    let faults = build_faults(&plan.scenario);
    let span = workload
        .arrivals()
        .iter()
        .map(|a| a.at)
        .max()
        .unwrap_or(Instant::ZERO);
    // About 200 buckets over the arrivals, at least a second each.
    let bucket = Duration::from_secs((span.as_nanos() / 1_000_000_000 / 200).max(1));
    let progress = Progress::new(workload.len() as u64 * plan.policies.len() as u64, "replay");
    let mut runs = Vec::new();
    for &spec in &plan.policies {
        progress.set_label(&spec.to_string());
        let report = run_policy(plan, spec, &workload, &nodes, &faults, bucket)?;
        progress.inc(workload.len() as u64);
        runs.push((spec, report));
    }
    progress.finish();
    drop(progress);
    let trace = plan.source.label();
    let scenario = plan.scenario.name.clone();
    let policies: Vec<PolicyReport> = runs
        .iter()
        .map(|(spec, run)| policy_report(spec, run, &trace, &scenario, plan.seed))
        .collect();
    let table = summary(plan, &policies);
    fs::create_dir_all(&plan.out)
        .map_err(|e| ReplayError::Write(plan.out.clone(), e.to_string()))?;
    let report = ReplayReport::new(&trace, &scenario, plan.seed, policies);
    let json = report
        .write(&plan.out)
        .map_err(|e| ReplayError::Write(plan.out.join("report.json"), e.to_string()))?;
    let mut files = vec![json];
    for (name, svg) in plots(&runs, bucket) {
        let path = plan.out.join(name);
        fs::write(&path, svg).map_err(|e| ReplayError::Write(path.clone(), e.to_string()))?;
        files.push(path);
    }
    Ok(Outputs { table, files })
}

/// One policy's run and the per-call facts the report and plots need.
struct Run {
    report: Report,
    /// TTFT of successful calls, in ms.
    ttft_ms: Vec<f64>,
    /// Whole-call latency of successful calls, in ms.
    latency_ms: Vec<f64>,
    /// Admission wait (arrival to first send), in ms.
    queue_wait_ms: Vec<f64>,
    /// Failed and refused calls by reason, per bucket.
    failures: BTreeMap<String, Vec<u64>>,
}

fn run_policy(
    plan: &Plan,
    spec: PolicySpec,
    workload: &Workload,
    nodes: &[SimNode],
    faults: &[SimFault],
    bucket: Duration,
) -> Result<Run, ReplayError> {
    let s = &plan.scenario;
    let mut cfg = s.router.router_config(spec);
    if let Some(hb) = &s.heartbeat {
        cfg.health.stale_after = hb.stale_after;
        cfg.health.lost_after = hb.lost_after;
    }
    // Session affinity has no switch in the core: without `+affinity` the
    // calls go out without their session keys (their prompt blocks stay, so
    // the nodes' prefix caches work the same for every policy).
    let stripped;
    let calls = if spec.affinity {
        workload
    } else {
        let mut w = workload.clone();
        for a in w.arrivals_mut() {
            a.session = None;
        }
        stripped = w;
        &stripped
    };
    let gateways = usize::from(s.gateways.max(1));
    let delay = s.heartbeat.as_ref().map_or(Duration::ZERO, |h| h.delay);
    let mut driver = SimSetup::new(cfg, nodes.to_vec(), plan.seed)
        .gateways(gateways, Assign::RoundRobin)
        .heartbeat_delay(&vec![delay; gateways])
        .faults(faults.iter().copied())
        .bucket(bucket)
        .build()
        .map_err(|e| ReplayError::Setup(e.to_string()))?;
    let report = driver
        .try_run(calls)
        .map_err(|v| ReplayError::Invariant(spec.to_string(), v.to_string()))?;
    if report.lost > 0 || report.stalled {
        return Err(ReplayError::Invariant(
            spec.to_string(),
            format!(
                "{} calls ended without an outcome (stalled: {})",
                report.lost, report.stalled
            ),
        ));
    }
    let ms = |d: Duration| d.as_nanos() as f64 / 1e6;
    let width = bucket.as_nanos().max(1);
    let buckets = report.series.failed_calls.len().max(1);
    let mut run = Run {
        report,
        ttft_ms: Vec::new(),
        latency_ms: Vec::new(),
        queue_wait_ms: Vec::new(),
        failures: BTreeMap::new(),
    };
    for c in driver.calls() {
        if let Some(sent) = c.first_send {
            run.queue_wait_ms.push(ms(sent - c.start));
        }
        let (Some(end), Some(outcome)) = (c.end, c.outcome) else {
            continue;
        };
        let reason = match outcome {
            Outcome::Succeeded { .. } => {
                if let Some(fb) = c.first_byte {
                    run.ttft_ms.push(ms(fb - c.start));
                }
                run.latency_ms.push(ms(end - c.start));
                continue;
            }
            Outcome::Failed { failure, .. } => failure.label().to_owned(),
            Outcome::Rejected(r) => format!("rejected:{}", r.label()),
            Outcome::Cancelled { .. } => continue,
        };
        let i = ((end.as_nanos() / width) as usize).min(buckets - 1);
        run.failures
            .entry(reason)
            .or_insert_with(|| vec![0; buckets])[i] += 1;
    }
    Ok(run)
}

fn policy_report(
    spec: &PolicySpec,
    run: &Run,
    trace: &str,
    scenario: &str,
    seed: u64,
) -> PolicyReport {
    let r = &run.report;
    let failed = r.failed.iter().map(|(k, v)| ((*k).to_owned(), *v));
    let rejected = r
        .rejected
        .iter()
        .map(|(k, v)| (format!("rejected:{k}"), *v));
    let all: Vec<(String, u64)> = failed.chain(rejected).collect();
    PolicyReport {
        policy: spec.to_string(),
        scenario: scenario.to_owned(),
        trace: trace.to_owned(),
        seed,
        calls: r.calls,
        succeeded: r.succeeded,
        failed: Failures::from_counts(all.iter().map(|(k, v)| (k.as_str(), *v))),
        cancelled: r.cancelled,
        lost: r.lost,
        ttft: Quantiles::from_samples(&run.ttft_ms),
        latency: Quantiles::from_samples(&run.latency_ms),
        queue_wait: Quantiles::from_samples(&run.queue_wait_ms),
        prefix_hit_rate: r.prefix_hit_rate,
        extra_attempts: ExtraAttempts::new(r.hedges, r.failovers),
        nodes: NodeShare::from_counts(r.nodes.iter().map(|n| {
            let failed = n.errors + n.refused + n.hung + n.dropped + n.overloads + n.invalid;
            (n.name.as_str(), n.ok, n.attempts, failed)
        })),
        failures_over_time: FailuresOverTime {
            bucket_s: r.series.bucket.as_nanos() as f64 / 1e9,
            by_reason: run.failures.clone(),
        },
    }
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(ms) if ms >= 10_000.0 => format!("{:.1}s", ms / 1000.0),
        Some(ms) if ms >= 1000.0 => format!("{:.2}s", ms / 1000.0),
        Some(ms) => format!("{ms:.0}ms"),
    }
}

/// The stdout table: one line per policy, then each policy's node shares.
fn summary(plan: &Plan, policies: &[PolicyReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "drover replay: {} on scenario {:?} ({} SIMULATED nodes, {} gateway(s)), seed {}",
        plan.source.label(),
        plan.scenario.name,
        plan.scenario.nodes.len(),
        plan.scenario.gateways.max(1),
        plan.seed
    );
    let _ = writeln!(
        out,
        "\n{:<22} {:>7} {:>7} {:>6} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7}",
        "policy",
        "calls",
        "ok",
        "failed",
        "lost",
        "ttft p50",
        "ttft p99",
        "lat p50",
        "lat p99",
        "wait p99",
        "extra",
        "prefix"
    );
    for p in policies {
        let prefix = p
            .prefix_hit_rate
            .map_or("-".to_owned(), |h| format!("{:.0}%", h * 100.0));
        let _ = writeln!(
            out,
            "{:<22} {:>7} {:>7} {:>6} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7}",
            p.policy,
            p.calls,
            p.succeeded,
            p.failed.total,
            p.lost,
            fmt_ms(p.ttft.p50),
            fmt_ms(p.ttft.p99),
            fmt_ms(p.latency.p50),
            fmt_ms(p.latency.p99),
            fmt_ms(p.queue_wait.p99),
            p.extra_attempts.total,
            prefix
        );
    }
    let _ = writeln!(out, "\nshare of answered calls per node:");
    let _ = write!(out, "{:<22}", "policy");
    if let Some(first) = policies.first() {
        for n in &first.nodes {
            let _ = write!(out, " {:>10}", n.name);
        }
    }
    let _ = writeln!(out);
    for p in policies {
        let _ = write!(out, "{:<22}", p.policy);
        for n in &p.nodes {
            let share = n
                .share
                .map_or("-".to_owned(), |s| format!("{:.1}%", s * 100.0));
            let _ = write!(out, " {share:>10}");
        }
        let _ = writeln!(out);
    }
    let reasons: BTreeMap<&str, ()> = policies
        .iter()
        .flat_map(|p| p.failed.by_reason.keys().map(|k| (k.as_str(), ())))
        .collect();
    if !reasons.is_empty() {
        let _ = writeln!(out, "\nfailed calls by reason:");
        for p in policies {
            let parts: Vec<String> = p
                .failed
                .by_reason
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(out, "{:<22} {}", p.policy, parts.join(", "));
        }
    }
    out
}

/// The SVG files: the TTFT CDF per policy, failed calls over time per
/// policy, and each policy's per-node load over time.
fn plots(runs: &[(PolicySpec, Run)], bucket: Duration) -> Vec<(String, String)> {
    let bucket_s = bucket.as_nanos() as f64 / 1e9;
    let cdf: Vec<Series> = runs
        .iter()
        .map(|(s, r)| (s.to_string(), r.ttft_ms.clone()))
        .collect();
    let mut files = vec![(
        "ttft-cdf.svg".to_owned(),
        plot::cdf("Time to first token, by policy", "TTFT (ms)", &cdf),
    )];
    let failed = TimeSeries {
        start_s: 0.0,
        bucket_s,
        series: runs
            .iter()
            .map(|(s, r)| {
                (
                    s.to_string(),
                    r.report
                        .series
                        .failed_calls
                        .iter()
                        .map(|&v| f64::from(v))
                        .collect(),
                )
            })
            .collect(),
    };
    files.push((
        "failures.svg".to_owned(),
        plot::lines(
            "Failed calls per bucket, by policy",
            "failed calls",
            &failed,
        ),
    ));
    for (s, r) in runs {
        let series = &r.report.series;
        let load = TimeSeries {
            start_s: 0.0,
            bucket_s,
            series: series
                .nodes
                .iter()
                .zip(&series.held_peak)
                .map(|(n, v)| (n.clone(), v.iter().map(|&x| f64::from(x)).collect()))
                .collect(),
        };
        let name = format!("load-{}.svg", s.to_string().replace('+', "-"));
        let title = format!("Requests held per node (peak per bucket), {s}");
        files.push((name, plot::lines(&title, "requests held", &load)));
    }
    files
}

fn op_mix(m: &Mix) -> OpMix {
    OpMix {
        stream: m.stream,
        chat: m.chat,
        embed: m.embed,
    }
}

fn build_workload(plan: &Plan) -> Result<Workload, ReplayError> {
    let w = &plan.scenario.workload;
    let mix = op_mix(&w.mix);
    let bad = |e: drover_transports::sim::BadWorkload| ReplayError::Workload(e.to_string());
    let mut workload = match &plan.source {
        Source::Trace { path, format } => {
            let mut opts = TraceOptions::default()
                .mix(mix, plan.seed)
                .rate(w.rate)
                .window(w.start, w.duration);
            if let Some(n) = w.max_calls {
                opts = opts.max_calls(n);
            }
            read_trace(path, Some(*format), &opts).map_err(ReplayError::Trace)?
        }
        Source::Poisson(p) => {
            let spec = WorkloadSpec {
                calls: p.calls,
                rate_per_sec: p.rate_per_s * w.rate,
                mix,
                prompt_tokens: p.prompt_tokens,
                output_tokens: p.output_tokens,
                ..WorkloadSpec::default()
            };
            Workload::from(spec.generate(plan.seed).map_err(bad)?)
        }
        Source::Bursty(b) => {
            let spec = BurstySpec {
                calls: b.calls,
                on_rate: b.on_rate_per_s * w.rate,
                off_rate: b.off_rate_per_s * w.rate,
                mean_on: b.mean_on,
                mean_off: b.mean_off,
                mix,
                prompt_tokens: b.prompt_tokens,
                output_tokens: b.output_tokens,
                start: Instant::ZERO,
            };
            Workload::from(spec.generate(plan.seed).map_err(bad)?)
        }
        Source::Sessions(s) => {
            let spec = SessionSpec {
                sessions: s.sessions,
                session_rate: s.session_rate_per_s * w.rate,
                turns: s.turns,
                think_time: s.think_time,
                system_prompts: s.system_prompts,
                system_blocks: s.system_blocks,
                turn_blocks: s.turn_blocks,
                block_tokens: s.block_tokens,
                output_tokens: s.output_tokens,
                mix,
                start: Instant::ZERO,
            };
            spec.generate(plan.seed).map_err(bad)?
        }
    };
    if !matches!(plan.source, Source::Trace { .. }) {
        if let Some(n) = w.max_calls {
            workload.truncate(n);
        }
    }
    Ok(workload)
}

fn build_nodes(s: &Scenario) -> Vec<SimNode> {
    s.nodes
        .iter()
        .map(|n| {
            let per_token = Duration::from_nanos((1e9 / n.prefill_tokens_per_s) as u64);
            let mut node = SimNode::new(&n.name, n.slots)
                .max_concurrency(n.max_concurrency)
                .weight(n.weight)
                .prefill(n.base_ttft, per_token)
                .decode(n.decode_tokens_per_s)
                .jitter(n.jitter)
                .failure_rate(n.failure_rate)
                .embed_time(n.embed);
            if let Some(q) = n.overload_queue {
                node = node.overload(q, Some(n.retry_after.unwrap_or(Duration::from_secs(1))));
            }
            if n.prefix_cache_blocks > 0 {
                node = node.prefix_cache(n.prefix_cache_blocks as usize, BLOCK_TOKENS);
            }
            if let (Some(hb), true) = (&s.heartbeat, n.heartbeat) {
                node = node.heartbeat(hb.interval);
            }
            node
        })
        .collect()
}

fn build_faults(s: &Scenario) -> Vec<SimFault> {
    let at = |d: Duration| Instant::ZERO + d;
    let mut out = Vec::new();
    for (i, n) in s.nodes.iter().enumerate() {
        if n.corrupt_rate > 0.0 {
            out.push(SimFault::new(
                i,
                SimKind::Corrupt {
                    rate: n.corrupt_rate,
                },
                Instant::ZERO,
            ));
        }
    }
    for f in &s.faults {
        let kind = match f.kind {
            FaultKind::Crash => SimKind::Crash(CrashMode::Refuse),
            FaultKind::StaleHeartbeat => SimKind::StaleHeartbeat,
            FaultKind::Slow { factor } => SimKind::Slow { factor },
            FaultKind::Overload { queue_limit } => SimKind::Overload {
                queue_limit,
                retry_after: Some(
                    s.nodes[f.node]
                        .retry_after
                        .unwrap_or(Duration::from_secs(1)),
                ),
            },
            FaultKind::Corrupt { rate } => SimKind::Corrupt { rate },
            FaultKind::Flap { period } => {
                let down = Duration::from_nanos(period.as_nanos() / 2);
                SimKind::Flap {
                    down,
                    up: period - down,
                }
            }
        };
        let mut fault = SimFault::new(f.node, kind, at(f.at));
        if let Some(u) = f.until {
            fault = fault.until(at(u));
        }
        out.push(fault);
    }
    out
}
