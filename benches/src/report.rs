//! Reading criterion's results back, so a bench run can print the ratio of
//! drover to its baseline measured in the same run.
//!
//! Criterion writes `<dir>/<group>/<function>/<parameter>/new/estimates.json`
//! for every benchmark; the median's point estimate (nanoseconds per
//! iteration) is taken from there. Files older than the run are ignored, so a
//! filtered run never mixes in numbers from an earlier one.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where criterion writes its results. The bench configures criterion with
/// this same directory: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else the workspace's `target/criterion`.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("criterion")
}

/// The median's point estimate from the text of an `estimates.json`.
pub fn median_ns(json: &str) -> Option<f64> {
    let at = json.find("\"median\"")?;
    let rest = &json[at..];
    let key = "\"point_estimate\":";
    let start = rest.find(key)? + key.len();
    let value = rest[start..].trim_start();
    let end = value
        .find(|c: char| c == ',' || c == '}' || c.is_whitespace())
        .unwrap_or(value.len());
    value[..end].parse().ok()
}

/// The median of one benchmark, if criterion wrote it at or after `since`.
pub fn read_median(
    dir: &Path,
    group: &str,
    function: &str,
    parameter: &str,
    since: SystemTime,
) -> Option<f64> {
    let path = dir
        .join(group)
        .join(function)
        .join(parameter)
        .join("new")
        .join("estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    median_ns(&std::fs::read_to_string(path).ok()?)
}

/// One row of the comparison: the parameter and both medians (ns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// Number of nodes.
    pub nodes: usize,
    /// drover's median, if measured in this run.
    pub drover_ns: Option<f64>,
    /// The baseline's median, if measured in this run.
    pub baseline_ns: Option<f64>,
}

/// A plain-text table of medians and drover/baseline ratios.
pub fn table(baseline: &str, rows: &[Row]) -> String {
    let mut out = format!(
        "{:>6}  {:>12}  {:>12}  {:>8}\n",
        "nodes", "drover", baseline, "ratio"
    );
    let cell = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |ns| format!("{ns:.1} ns"));
    for r in rows {
        let ratio = match (r.drover_ns, r.baseline_ns) {
            (Some(d), Some(b)) if b > 0.0 => format!("{:.3}", d / b),
            _ => "-".to_string(),
        };
        out.push_str(&format!(
            "{:>6}  {:>12}  {:>12}  {:>8}\n",
            r.nodes,
            cell(r.drover_ns),
            cell(r.baseline_ns),
            ratio
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":10.0,"upper_bound":12.0},"point_estimate":11.0,"standard_error":0.5},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":9.0,"upper_bound":10.5},"point_estimate":9.75,"standard_error":0.2},"median_abs_dev":{"point_estimate":1.0}}"#;

    #[test]
    fn median_is_taken_from_the_median_section() {
        assert_eq!(median_ns(SAMPLE), Some(9.75));
        assert_eq!(
            median_ns(r#"{"median":{"point_estimate": 1e3}}"#),
            Some(1000.0)
        );
        assert_eq!(median_ns(r#"{"mean":{"point_estimate":1.0}}"#), None);
        assert_eq!(median_ns(r#"{"median":{"point_estimate":"x"}}"#), None);
    }

    #[test]
    fn stale_or_missing_files_are_ignored() {
        let dir = std::env::temp_dir().join(format!("drover-report-{}", std::process::id()));
        let leaf = dir.join("g").join("drover").join("4").join("new");
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::write(leaf.join("estimates.json"), SAMPLE).unwrap();
        let past = SystemTime::UNIX_EPOCH;
        assert_eq!(read_median(&dir, "g", "drover", "4", past), Some(9.75));
        let future = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert_eq!(read_median(&dir, "g", "drover", "4", future), None);
        assert_eq!(read_median(&dir, "g", "tower", "4", past), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn table_shows_ratio_only_when_both_sides_ran() {
        let t = table(
            "tower",
            &[
                Row {
                    nodes: 4,
                    drover_ns: Some(50.0),
                    baseline_ns: Some(200.0),
                },
                Row {
                    nodes: 16,
                    drover_ns: Some(60.0),
                    baseline_ns: None,
                },
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("tower") && lines[0].contains("ratio"));
        assert!(lines[1].ends_with("0.250"), "{t}");
        assert!(lines[2].ends_with('-'), "{t}");
    }
}
