//! SVG charts of a replay, written by hand: no plotting crate, no fonts to
//! load, and the same input gives the same bytes (coordinates at a fixed
//! 0.1 px).
//!
//! - [`cdf`]: the empirical CDF of samples, one line per series, on a log
//!   x axis (TTFT per policy);
//! - [`lines`]: values per time bucket, one line per series (load per node
//!   over time, or failures per policy);
//! - [`stacked_bars`]: counts per time bucket, stacked by series (failures
//!   over time by reason).
//!
//! Every chart has a title, axis titles, ticks chosen so their labels do
//! not touch, light gridlines, a colour-blind-friendly palette (Tableau 10)
//! and a legend beside the plot. Non-finite values are skipped; an empty
//! chart says "no data". The output never contains `NaN` or `inf`.

mod axis;
mod svg;

use axis::{BOTTOM, Entry, LEFT, RIGHT, Swatch, TOP};
use svg::{Anchor, Stroke, Svg, TextStyle};

/// A named series of values.
pub type Series = (String, Vec<f64>);

/// Values per time bucket: element `i` of a series covers
/// `start_s + i × bucket_s .. start_s + (i + 1) × bucket_s`.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeSeries {
    /// Start of the first bucket, in seconds.
    pub start_s: f64,
    /// Width of a bucket, in seconds (above 0).
    pub bucket_s: f64,
    /// The series, drawn in order (the first at the bottom of a stack).
    pub series: Vec<Series>,
}

/// Most points drawn per CDF line: longer series are drawn through this
/// many evenly spaced quantiles.
const CDF_POINTS: usize = 400;
/// Series of at most this many samples are drawn as exact steps.
const CDF_STEPS: usize = 300;
/// Bucket counts up to which line charts mark every point.
const MARKED: usize = 40;

/// The empirical CDF of each series' samples (`x_title` says their unit):
/// x on a log scale over whole decades, y from 0 to 1, dashed guides at
/// the 50th, 90th and 99th percentiles. Samples at or below 0 are drawn at
/// the axis' low end.
pub fn cdf(title: &str, x_title: &str, series: &[Series]) -> String {
    let sorted: Vec<Vec<f64>> = series
        .iter()
        .map(|(_, v)| {
            let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            v
        })
        .collect();
    let positive = sorted.iter().flatten().copied().filter(|&x| x > 0.0);
    let (lo, hi) = positive.fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let empty = sorted.iter().all(Vec::is_empty);
    let x = if lo.is_finite() {
        axis::log(lo, hi, RIGHT - LEFT)
    } else {
        axis::log(1.0, 1_000.0, RIGHT - LEFT)
    };
    let y = axis::linear(0.0, 1.0, BOTTOM - TOP, false);
    let mut svg = Svg::new(title);
    axis::draw(&mut svg, &x, &y, x_title, "fraction of calls at or below");
    svg.group("guides");
    let guide = Stroke::solid("#9a9a9a", 1.0).dashed("4 4");
    let small = TextStyle {
        size: 11.0,
        fill: "#777777",
        ..TextStyle::default()
    };
    for (q, name) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")] {
        let py = y.scale.y(q);
        svg.line((LEFT, py), (RIGHT, py), guide);
        svg.text(RIGHT - 4.0, py - 4.0, Anchor::End, small, name);
    }
    svg.end_group();
    svg.group("series");
    for (i, samples) in sorted.iter().enumerate() {
        let points = cdf_points(samples);
        let px: Vec<(f64, f64)> = points
            .iter()
            .map(|&(v, q)| (x.scale.x(v), y.scale.y(q)))
            .collect();
        if px.len() > 1 {
            svg.polyline(&px, Stroke::series(i, 2.2));
        }
    }
    svg.end_group();
    if empty {
        axis::note(&mut svg, "no data");
    }
    let entries = legend_entries(series, |(_, v)| v.iter().all(|x| !x.is_finite()));
    axis::legend(&mut svg, &entries, Swatch::Line);
    svg.finish()
}

/// The points of the CDF of sorted `v`: exact steps for short series,
/// evenly spaced quantiles for long ones. A single sample is a vertical
/// step from 0 to 1.
fn cdf_points(v: &[f64]) -> Vec<(f64, f64)> {
    let n = v.len();
    if n == 0 {
        return Vec::new();
    }
    let nf = n as f64;
    if n <= CDF_STEPS {
        let mut pts = Vec::with_capacity(2 * n);
        for (i, &x) in v.iter().enumerate() {
            pts.push((x, i as f64 / nf));
            pts.push((x, (i + 1) as f64 / nf));
        }
        return pts;
    }
    let mut pts = vec![(v[0], 0.0)];
    for k in 0..=CDF_POINTS {
        let idx = ((k as f64 / CDF_POINTS as f64) * (nf - 1.0)).round() as usize;
        pts.push((v[idx], (idx + 1) as f64 / nf));
    }
    pts
}

/// One line per series over time (`y_title` says what is counted), each
/// point at the middle of its bucket; y from 0 (or the lowest value) to a
/// round number above the highest. Non-finite values break the line.
pub fn lines(title: &str, y_title: &str, data: &TimeSeries) -> String {
    let (x, y, empty) = time_axes(data, false);
    let mut svg = Svg::new(title);
    axis::draw(&mut svg, &x, &y, "time (s)", y_title);
    let bucket = bucket_width(data);
    let longest = data.series.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    svg.group("series");
    // Thinner lines when many overlap.
    let width = if data.series.len() > 6 { 1.5 } else { 2.0 };
    for (i, (_, values)) in data.series.iter().enumerate() {
        let stroke = Stroke::series(i, width);
        // Runs of finite values, each drawn as one line.
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut run = Vec::new();
        for (k, &v) in values.iter().enumerate() {
            if v.is_finite() {
                let t = start_of(data) + (k as f64 + 0.5) * bucket;
                run.push((x.scale.x(t), y.scale.y(v)));
            } else if !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        for run in &runs {
            match run.as_slice() {
                [only] => svg.dot(*only, 3.0, stroke.colour),
                _ => svg.polyline(run, stroke),
            }
            if longest <= MARKED && run.len() > 1 {
                for &p in run {
                    svg.dot(p, 2.2, stroke.colour);
                }
            }
        }
    }
    svg.end_group();
    if empty {
        axis::note(&mut svg, "no data");
    }
    let entries = legend_entries(&data.series, |(_, v)| v.iter().all(|x| !x.is_finite()));
    axis::legend(&mut svg, &entries, Swatch::Line);
    svg.finish()
}

/// Bars per time bucket, the series stacked in order (`y_title` says what
/// is counted). Negative and non-finite values count as 0.
pub fn stacked_bars(title: &str, y_title: &str, data: &TimeSeries) -> String {
    let (x, y, empty) = time_axes(data, true);
    let mut svg = Svg::new(title);
    axis::draw(&mut svg, &x, &y, "time (s)", y_title);
    let bucket = bucket_width(data);
    let longest = data.series.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let start = start_of(data);
    let bar_px = (x.scale.x(start + bucket) - x.scale.x(start)).abs();
    let gap = if bar_px >= 4.0 { bar_px * 0.15 } else { 0.0 };
    svg.group("bars");
    for k in 0..longest {
        let left = x.scale.x(start + k as f64 * bucket) + gap / 2.0;
        let mut base = 0.0;
        for (i, (_, values)) in data.series.iter().enumerate() {
            let v = values.get(k).copied().filter(|v| v.is_finite() && *v > 0.0);
            let Some(v) = v else { continue };
            let (top, bottom) = (y.scale.y(base + v), y.scale.y(base));
            svg.rect(left, top, bar_px - gap, bottom - top, svg::colour(i));
            base += v;
        }
    }
    svg.end_group();
    if empty {
        axis::note(&mut svg, "no data");
    }
    let entries = legend_entries(&data.series, |(_, v)| {
        v.iter().all(|x| !(x.is_finite() && *x > 0.0))
    });
    axis::legend(&mut svg, &entries, Swatch::Block);
    svg.finish()
}

fn start_of(data: &TimeSeries) -> f64 {
    if data.start_s.is_finite() {
        data.start_s
    } else {
        0.0
    }
}

fn bucket_width(data: &TimeSeries) -> f64 {
    if data.bucket_s.is_finite() && data.bucket_s > 0.0 {
        data.bucket_s
    } else {
        1.0
    }
}

/// The axes of a time chart, and whether it has no value to draw. The y
/// axis covers the largest value (or stack, when `stacked`).
fn time_axes(data: &TimeSeries, stacked: bool) -> (axis::Axis, axis::Axis, bool) {
    let bucket = bucket_width(data);
    let start = start_of(data);
    let longest = data.series.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let end = start + longest.max(1) as f64 * bucket;
    let finite = || {
        data.series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
    };
    let empty = finite().next().is_none();
    let (lo, hi) = if stacked {
        let top = (0..longest)
            .map(|k| {
                data.series
                    .iter()
                    .filter_map(|(_, v)| v.get(k))
                    .filter(|v| v.is_finite() && **v > 0.0)
                    .sum::<f64>()
            })
            .fold(0.0, f64::max);
        (0.0, top)
    } else {
        finite().fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let x = axis::linear(start, end, RIGHT - LEFT, true);
    let y = axis::linear(lo, hi, BOTTOM - TOP, false);
    (x, y, empty)
}

fn legend_entries(series: &[Series], is_empty: impl Fn(&Series) -> bool) -> Vec<Entry> {
    series
        .iter()
        .enumerate()
        .map(|(index, s)| Entry {
            index,
            text: if is_empty(s) {
                format!("{} (no data)", s.0)
            } else {
                s.0.clone()
            },
        })
        .collect()
}

#[cfg(test)]
mod tests;
