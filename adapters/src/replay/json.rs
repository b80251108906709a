//! `report.json`: what a replay measured, one object per policy, written so
//! that equal inputs give equal bytes.
//!
//! The schema is documented in `adapters/src/replay/README.md`. In short:
//!
//! ```json
//! { "drover_version": "0.1.0", "trace": "…", "scenario": "home-lab", "seed": 42,
//!   "policies": [ { "policy": "p2c", "calls": 1000, "succeeded": 990, … } ] }
//! ```
//!
//! # Determinism
//!
//! Keys come out in the order of the struct fields (maps, such as failures
//! by reason, in sorted key order), and every number with a fraction is
//! rounded to 3 decimals before it is written, so two runs that computed the
//! same values write the same bytes, on any machine.
//!
//! # Missing values
//!
//! A value that has no sample (a percentile of no calls, a rate whose
//! denominator is zero) is written as `null`, never as 0, which would read
//! as a measurement. NaN and infinities are written as `null` too: JSON has
//! no spelling for them.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

/// The file name of the report in the output folder.
pub const REPORT_FILE: &str = "report.json";

/// The whole `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayReport {
    /// The `drover` version that wrote it.
    pub drover_version: String,
    /// The trace replayed (its path as given), or the generator's name.
    pub trace: String,
    /// The scenario's name.
    pub scenario: String,
    /// The seed of the run.
    pub seed: u64,
    /// One report per policy, in the order they ran.
    pub policies: Vec<PolicyReport>,
}

/// What one policy did with the whole workload.
///
/// `calls = succeeded + failed.total + cancelled + lost`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyReport {
    /// The policy, with its modifiers (`p2c+affinity`).
    pub policy: String,
    /// The scenario's name.
    pub scenario: String,
    /// The trace replayed.
    pub trace: String,
    /// The seed of the run.
    pub seed: u64,
    /// Calls started.
    pub calls: u64,
    /// Calls answered.
    pub succeeded: u64,
    /// Calls that ended in an error, by reason.
    pub failed: Failures,
    /// Calls the client gave up on.
    pub cancelled: u64,
    /// Calls that never ended: always 0 unless the router has a bug.
    pub lost: u64,
    /// Time to first byte of the answered calls, in milliseconds.
    #[serde(rename = "ttft_ms")]
    pub ttft: Quantiles,
    /// Whole-call latency of the answered calls, in milliseconds.
    #[serde(rename = "latency_ms")]
    pub latency: Quantiles,
    /// Time calls spent in the router's queue, in milliseconds.
    #[serde(rename = "queue_wait_ms")]
    pub queue_wait: Quantiles,
    /// Fraction of the calls with a prompt prefix whose prefix was cached
    /// on the node that served them; `null` when no call had one.
    #[serde(serialize_with = "fixed3")]
    pub prefix_hit_rate: Option<f64>,
    /// Attempts beyond the first of each call.
    pub extra_attempts: ExtraAttempts,
    /// Each node's part, in scenario order.
    pub nodes: Vec<NodeShare>,
    /// Failed calls per time bucket, by reason.
    pub failures_over_time: FailuresOverTime,
}

/// Failed calls: the total and the count of each reason (a reason's
/// `label()` from `drover_core::reason`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Failures {
    /// All failed calls.
    pub total: u64,
    /// Failed calls by reason, in sorted order.
    pub by_reason: BTreeMap<String, u64>,
}

impl Failures {
    /// Failures from `(reason, count)` pairs; repeated reasons add up.
    pub fn from_counts<'a>(counts: impl IntoIterator<Item = (&'a str, u64)>) -> Failures {
        let mut f = Failures::default();
        for (reason, n) in counts {
            f.total += n;
            *f.by_reason.entry(reason.to_owned()).or_default() += n;
        }
        f
    }
}

/// Percentiles of a distribution in milliseconds; each `null` without
/// samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Quantiles {
    /// Median.
    #[serde(serialize_with = "fixed3")]
    pub p50: Option<f64>,
    /// 90th percentile.
    #[serde(serialize_with = "fixed3")]
    pub p90: Option<f64>,
    /// 99th percentile.
    #[serde(serialize_with = "fixed3")]
    pub p99: Option<f64>,
    /// 99.9th percentile.
    #[serde(serialize_with = "fixed3")]
    pub p999: Option<f64>,
}

impl Quantiles {
    /// Nearest-rank percentiles of the finite values of `samples` (the
    /// smallest value with at least q of the samples at or below it).
    pub fn from_samples(samples: &[f64]) -> Quantiles {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Quantiles::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = (q * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        };
        Quantiles {
            p50: Some(at(0.5)),
            p90: Some(at(0.9)),
            p99: Some(at(0.99)),
            p999: Some(at(0.999)),
        }
    }
}

/// Attempts beyond the first of each call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExtraAttempts {
    /// `hedges + retries`.
    pub total: u64,
    /// Hedged attempts.
    pub hedges: u64,
    /// Failovers after a failed attempt.
    pub retries: u64,
}

impl ExtraAttempts {
    /// The counts, with their total.
    pub fn new(hedges: u64, retries: u64) -> ExtraAttempts {
        ExtraAttempts {
            total: hedges + retries,
            hedges,
            retries,
        }
    }
}

/// One node's part in a policy's run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeShare {
    /// The node.
    pub name: String,
    /// Calls it answered (the attempt that finished the call was its).
    pub calls: u64,
    /// `calls` over the calls all nodes answered; `null` when none did.
    #[serde(serialize_with = "fixed3")]
    pub share: Option<f64>,
    /// Attempts sent to it, hedges and retries included.
    pub attempts: u64,
    /// Of those, attempts that failed.
    pub failed_attempts: u64,
}

impl NodeShare {
    /// Shares from `(name, calls, attempts, failed_attempts)`, each node's
    /// share its calls over the sum of all nodes' calls.
    pub fn from_counts<'a>(
        counts: impl IntoIterator<Item = (&'a str, u64, u64, u64)>,
    ) -> Vec<NodeShare> {
        let mut nodes: Vec<NodeShare> = counts
            .into_iter()
            .map(|(name, calls, attempts, failed_attempts)| NodeShare {
                name: name.to_owned(),
                calls,
                share: None,
                attempts,
                failed_attempts,
            })
            .collect();
        let total: u64 = nodes.iter().map(|n| n.calls).sum();
        for n in &mut nodes {
            n.share = ratio(n.calls, total);
        }
        nodes
    }
}

/// Failed calls per time bucket: for each reason, one count per bucket,
/// every series the same length, buckets from the start of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FailuresOverTime {
    /// Bucket width in seconds.
    #[serde(serialize_with = "fixed3_plain")]
    pub bucket_s: f64,
    /// Counts per bucket, by reason, in sorted order.
    pub by_reason: BTreeMap<String, Vec<u64>>,
}

/// `num / den`, or `None` when `den` is zero.
pub fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// `x` rounded to 3 decimals, or `None` when it is not finite. Rounding
/// happens on the value, so the shortest representation that serde_json
/// writes has at most 3 decimals; `-0` becomes `0`.
pub fn round3(x: f64) -> Option<f64> {
    if !x.is_finite() {
        return None;
    }
    let r = (x * 1000.0).round() / 1000.0;
    if r.is_finite() {
        Some(r + 0.0)
    } else {
        Some(x)
    }
}

fn fixed3<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v.and_then(round3) {
        Some(x) => s.serialize_f64(x),
        None => s.serialize_none(),
    }
}

fn fixed3_plain<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    fixed3(&Some(*v), s)
}

impl ReplayReport {
    /// A report of this `drover` version.
    pub fn new(trace: &str, scenario: &str, seed: u64, policies: Vec<PolicyReport>) -> Self {
        ReplayReport {
            drover_version: env!("CARGO_PKG_VERSION").to_owned(),
            trace: trace.to_owned(),
            scenario: scenario.to_owned(),
            seed,
            policies,
        }
    }

    /// The JSON text: indented by two spaces, ending with a newline.
    /// Serialising these plain structs into a string does not fail in
    /// practice; the error is serde_json's, passed on.
    pub fn to_json(&self) -> serde_json::Result<String> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        Ok(text)
    }

    /// Writes [`REPORT_FILE`] into `dir`, creating the folder if needed;
    /// returns the file's path.
    pub fn write(&self, dir: &Path) -> io::Result<PathBuf> {
        let text = self.to_json().map_err(io::Error::other)?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(REPORT_FILE);
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn policy(name: &str, ttft: &[f64]) -> PolicyReport {
        let mut by_reason = BTreeMap::new();
        by_reason.insert("node_failed".to_owned(), vec![0, 2, 1]);
        by_reason.insert("all_nodes_saturated".to_owned(), vec![1, 0, 0]);
        PolicyReport {
            policy: name.to_owned(),
            scenario: "home-lab".to_owned(),
            trace: "traces/t.csv".to_owned(),
            seed: 42,
            calls: 10,
            succeeded: 6,
            failed: Failures::from_counts([("node_failed", 3), ("all_nodes_saturated", 1)]),
            cancelled: 0,
            lost: 0,
            ttft: Quantiles::from_samples(ttft),
            latency: Quantiles::from_samples(&[1000.0 / 3.0, 2500.0]),
            queue_wait: Quantiles::from_samples(&[]),
            prefix_hit_rate: ratio(1, 3),
            extra_attempts: ExtraAttempts::new(1, 4),
            nodes: NodeShare::from_counts([("gpu-1", 4, 6, 1), ("cpu-1", 2, 3, 2)]),
            failures_over_time: FailuresOverTime {
                bucket_s: 10.0,
                by_reason,
            },
        }
    }

    fn report() -> ReplayReport {
        let ttft = [12.3456, 80.0, 7.0, f64::NAN, 31.0];
        ReplayReport::new(
            "traces/t.csv",
            "home-lab",
            42,
            vec![policy("p2c", &ttft), policy("p2c+affinity", &[])],
        )
    }

    #[test]
    fn shape_and_key_order() {
        let text = report().to_json().unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["drover_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["seed"], 42);
        let p = &v["policies"][0];
        for key in [
            "policy",
            "calls",
            "succeeded",
            "failed",
            "lost",
            "ttft_ms",
            "latency_ms",
            "queue_wait_ms",
            "prefix_hit_rate",
            "extra_attempts",
            "nodes",
            "failures_over_time",
        ] {
            assert!(!p[key].is_null() || key == "prefix_hit_rate", "{key}");
        }
        assert_eq!(p["failed"]["total"], 4);
        assert_eq!(p["failed"]["by_reason"]["node_failed"], 3);
        assert_eq!(p["extra_attempts"]["total"], 5);
        assert_eq!(p["ttft_ms"]["p50"], 12.346);
        assert_eq!(p["ttft_ms"]["p999"], 80.0);
        assert_eq!(p["latency_ms"]["p50"], 333.333);
        assert_eq!(p["prefix_hit_rate"], 0.333);
        assert_eq!(p["nodes"][0]["name"], "gpu-1");
        assert_eq!(p["nodes"][0]["share"], 0.667);
        assert_eq!(p["nodes"][1]["share"], 0.333);
        assert_eq!(
            p["failures_over_time"]["by_reason"]["node_failed"],
            serde_json::json!([0, 2, 1])
        );
        // Keys in field order: top level, then within a policy.
        let order = |keys: &[&str]| {
            let at: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
            assert!(at.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        };
        order(&[
            "\"drover_version\"",
            "\"trace\"",
            "\"scenario\"",
            "\"seed\"",
            "\"policies\"",
        ]);
        order(&[
            "\"calls\"",
            "\"succeeded\"",
            "\"failed\"",
            "\"cancelled\"",
            "\"lost\"",
            "\"ttft_ms\"",
        ]);
        // Sorted reasons.
        order(&["\"all_nodes_saturated\": 1", "\"node_failed\": 3"]);
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn equal_inputs_give_equal_bytes() {
        assert_eq!(report().to_json().unwrap(), report().to_json().unwrap());
        let dir = std::env::temp_dir().join(format!("drover-json-{}", std::process::id()));
        let path = report().write(&dir).unwrap();
        assert_eq!(path, dir.join("report.json"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            report().to_json().unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_samples_are_null_and_nothing_is_nan() {
        let mut r = report();
        r.policies[0].prefix_hit_rate = Some(f64::NAN);
        r.policies[0].failures_over_time.bucket_s = f64::INFINITY;
        r.policies[0].latency.p99 = Some(f64::NEG_INFINITY);
        let text = r.to_json().unwrap();
        for bad in ["NaN", "nan", "inf", "Infinity"] {
            assert!(!text.contains(bad), "{bad} in {text}");
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        let empty = &v["policies"][1]["ttft_ms"];
        for q in ["p50", "p90", "p99", "p999"] {
            assert!(empty[q].is_null(), "{q}");
        }
        assert!(v["policies"][0]["prefix_hit_rate"].is_null());
        assert!(v["policies"][0]["latency_ms"]["p99"].is_null());
        assert!(v["policies"][0]["failures_over_time"]["bucket_s"].is_null());
        assert_eq!(ratio(0, 0), None);
        let none = NodeShare::from_counts([("a", 0, 0, 0)]);
        assert_eq!(none[0].share, None);
    }

    #[test]
    fn rounding_is_fixed_and_signless() {
        assert_eq!(round3(0.1 + 0.2), Some(0.3));
        assert_eq!(round3(-0.0001), Some(0.0));
        assert!(round3(-0.0001).unwrap().is_sign_positive());
        assert_eq!(round3(2.0004999), Some(2.0));
        assert!(round3(1e300).is_some_and(f64::is_finite));
        assert_eq!(round3(f64::MAX), Some(f64::MAX));
        assert_eq!(round3(f64::NAN), None);
        let q = Quantiles::from_samples(&[5.0]);
        assert_eq!((q.p50, q.p999), (Some(5.0), Some(5.0)));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let q = Quantiles::from_samples(&hundred);
        assert_eq!(
            (q.p50, q.p90, q.p99, q.p999),
            (Some(50.0), Some(90.0), Some(99.0), Some(100.0))
        );
    }
}
