//! The `[workload]` table as serde reads it, and its checks.

use std::path::Path;

use drover_core::Duration;
use drover_transports::sim::trace::TraceFormat;
use serde::Deserialize;

use super::checks::{Checked, fail, min_one, nonzero, positive, range, secs};
use super::locate::FieldPath;
use super::{
    BurstyWorkload, Mix, PoissonWorkload, SessionsWorkload, WorkloadSettings, WorkloadSource,
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkload {
    trace: Option<String>,
    format: Option<String>,
    mix: Option<Mix>,
    rate: Option<f64>,
    start_s: Option<f64>,
    duration_s: Option<f64>,
    max_calls: Option<usize>,
    poisson: Option<RawPoisson>,
    bursty: Option<RawBursty>,
    sessions: Option<RawSessions>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoisson {
    calls: usize,
    rate_per_s: f64,
    prompt_tokens: Option<Vec<u32>>,
    output_tokens: Option<Vec<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBursty {
    calls: usize,
    on_rate_per_s: f64,
    off_rate_per_s: f64,
    mean_on_s: f64,
    mean_off_s: f64,
    prompt_tokens: Option<Vec<u32>>,
    output_tokens: Option<Vec<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessions {
    sessions: usize,
    session_rate_per_s: f64,
    turns: Option<Vec<u32>>,
    think_time_s: Option<f64>,
    system_prompts: Option<u32>,
    system_blocks: Option<u32>,
    turn_blocks: Option<Vec<u32>>,
    block_tokens: Option<u32>,
    output_tokens: Option<Vec<u32>>,
}

impl RawWorkload {
    pub(super) fn check(self, p: &FieldPath, base: &Path) -> Checked<WorkloadSettings> {
        let d = WorkloadSettings::default();
        let mut source: Option<(&str, WorkloadSource)> = None;
        let mut set = |key: &'static str, s: WorkloadSource| match &source {
            Some((first, _)) => fail(
                &p.then(key),
                format!(
                    "a workload has one source (trace, poisson, bursty or sessions), found {first} and {key}"
                ),
            ),
            None => {
                source = Some((key, s));
                Ok(())
            }
        };
        if let Some(t) = self.trace {
            if t.is_empty() {
                return fail(&p.then("trace"), "must not be empty");
            }
            set("trace", WorkloadSource::Trace(base.join(t)))?;
        }
        if let Some(g) = self.poisson {
            set(
                "poisson",
                WorkloadSource::Poisson(g.check(&p.then("poisson"))?),
            )?;
        }
        if let Some(g) = self.bursty {
            set(
                "bursty",
                WorkloadSource::Bursty(g.check(&p.then("bursty"))?),
            )?;
        }
        if let Some(g) = self.sessions {
            set(
                "sessions",
                WorkloadSource::Sessions(g.check(&p.then("sessions"))?),
            )?;
        }
        let generated = matches!(&source, Some((k, _)) if *k != "trace");
        let trace_only = [
            ("format", self.format.is_some()),
            ("rate", self.rate.is_some()),
            ("start_s", self.start_s.is_some()),
            ("duration_s", self.duration_s.is_some()),
            ("max_calls", self.max_calls.is_some()),
        ];
        if generated {
            if let Some((key, _)) = trace_only.iter().find(|(_, given)| *given) {
                return fail(
                    &p.then(key),
                    "applies to a trace only, and this workload is generated",
                );
            }
        }
        let format = match self.format {
            Some(f) => Some(
                f.parse::<TraceFormat>()
                    .or_else(|e| fail(&p.then("format"), e.to_string()))?,
            ),
            None => None,
        };
        let mix = self.mix.unwrap_or(d.mix);
        if u64::from(mix.stream) + u64::from(mix.chat) + u64::from(mix.embed) == 0 {
            return fail(&p.then("mix"), "must give some operation a weight above 0");
        }
        let rate = match self.rate {
            Some(r) => positive(&p.then("rate"), r)?,
            None => d.rate,
        };
        let start = match self.start_s {
            Some(v) => secs(&p.then("start_s"), v)?,
            None => d.start,
        };
        let duration = match self.duration_s {
            Some(v) => Some(nonzero(
                &p.then("duration_s"),
                secs(&p.then("duration_s"), v),
            )?),
            None => None,
        };
        let max_calls = match self.max_calls {
            Some(n) => Some(min_one(&p.then("max_calls"), n)?),
            None => None,
        };
        Ok(WorkloadSettings {
            source: source.map(|(_, s)| s),
            format,
            mix,
            rate,
            start,
            duration,
            max_calls,
        })
    }
}

const PROMPT_TOKENS: (u32, u32) = (50, 1_000);
const OUTPUT_TOKENS: (u32, u32) = (20, 300);

fn tokens(p: &FieldPath, key: &str, v: Option<Vec<u32>>, d: (u32, u32)) -> Checked<(u32, u32)> {
    v.map_or(Ok(d), |r| range(&p.then(key), r, 1))
}

impl RawPoisson {
    fn check(self, p: &FieldPath) -> Checked<PoissonWorkload> {
        Ok(PoissonWorkload {
            calls: min_one(&p.then("calls"), self.calls)?,
            rate_per_s: positive(&p.then("rate_per_s"), self.rate_per_s)?,
            prompt_tokens: tokens(p, "prompt_tokens", self.prompt_tokens, PROMPT_TOKENS)?,
            output_tokens: tokens(p, "output_tokens", self.output_tokens, OUTPUT_TOKENS)?,
        })
    }
}

impl RawBursty {
    fn check(self, p: &FieldPath) -> Checked<BurstyWorkload> {
        let off = self.off_rate_per_s;
        if !(off.is_finite() && off >= 0.0) {
            return fail(
                &p.then("off_rate_per_s"),
                format!("must be a number of 0 or more, found {off}"),
            );
        }
        let state = |k: &str, v: f64| nonzero(&p.then(k), secs(&p.then(k), v));
        Ok(BurstyWorkload {
            calls: min_one(&p.then("calls"), self.calls)?,
            on_rate_per_s: positive(&p.then("on_rate_per_s"), self.on_rate_per_s)?,
            off_rate_per_s: off,
            mean_on: state("mean_on_s", self.mean_on_s)?,
            mean_off: state("mean_off_s", self.mean_off_s)?,
            prompt_tokens: tokens(p, "prompt_tokens", self.prompt_tokens, PROMPT_TOKENS)?,
            output_tokens: tokens(p, "output_tokens", self.output_tokens, OUTPUT_TOKENS)?,
        })
    }
}

impl RawSessions {
    fn check(self, p: &FieldPath) -> Checked<SessionsWorkload> {
        Ok(SessionsWorkload {
            sessions: min_one(&p.then("sessions"), self.sessions)?,
            session_rate_per_s: positive(&p.then("session_rate_per_s"), self.session_rate_per_s)?,
            turns: self
                .turns
                .map_or(Ok((2, 8)), |r| range(&p.then("turns"), r, 1))?,
            think_time: self.think_time_s.map_or(Ok(Duration::from_secs(10)), |v| {
                secs(&p.then("think_time_s"), v)
            })?,
            system_prompts: self.system_prompts.unwrap_or(4),
            system_blocks: self.system_blocks.unwrap_or(4),
            turn_blocks: self
                .turn_blocks
                .map_or(Ok((1, 4)), |r| range(&p.then("turn_blocks"), r, 1))?,
            block_tokens: min_one(&p.then("block_tokens"), self.block_tokens.unwrap_or(512))?,
            output_tokens: tokens(p, "output_tokens", self.output_tokens, OUTPUT_TOKENS)?,
        })
    }
}
