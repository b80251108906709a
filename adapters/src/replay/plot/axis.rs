//! Axes: scales, tick placement that keeps labels apart, gridlines, axis
//! titles and the legend.

use super::svg::{Anchor, HEIGHT, Stroke, Svg, TextStyle, WIDTH, colour, text_width, truncate};

/// The plot area, in px: the legend sits right of it, tick labels left and
/// below.
pub(super) const LEFT: f64 = 78.0;
pub(super) const TOP: f64 = 56.0;
pub(super) const RIGHT: f64 = WIDTH - 215.0;
pub(super) const BOTTOM: f64 = HEIGHT - 64.0;

/// Size of tick labels.
const TICK_FONT: f64 = 12.0;
/// Least gap between two tick labels, in px.
const LABEL_GAP: f64 = 12.0;

/// Maps data values onto an axis.
#[derive(Clone, Copy, Debug)]
pub(super) enum Scale {
    /// From `lo` to `hi`, `lo < hi`.
    Linear { lo: f64, hi: f64 },
    /// From `lo` to `hi`, both powers of ten, `0 < lo < hi`.
    Log { lo: f64, hi: f64 },
}

impl Scale {
    /// Where `v` falls, from 0 (low end) to 1 (high end), clamped.
    fn fraction(self, v: f64) -> f64 {
        let f = match self {
            Scale::Linear { lo, hi } => (v - lo) / (hi - lo),
            Scale::Log { lo, hi } => (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()),
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
    /// The x coordinate of `v`.
    pub(super) fn x(self, v: f64) -> f64 {
        LEFT + self.fraction(v) * (RIGHT - LEFT)
    }
    /// The y coordinate of `v`.
    pub(super) fn y(self, v: f64) -> f64 {
        BOTTOM - self.fraction(v) * (BOTTOM - TOP)
    }
}

/// A tick: a gridline, and a label if there is room for one.
#[derive(Clone, Debug)]
pub(super) struct Tick {
    pub value: f64,
    pub label: Option<String>,
    /// Major ticks get a darker gridline.
    pub major: bool,
}

/// An axis: its scale and ticks.
#[derive(Clone, Debug)]
pub(super) struct Axis {
    pub scale: Scale,
    pub ticks: Vec<Tick>,
}

/// 1, 2 or 5 times a power of ten, at least `range / count`.
fn nice_step(range: f64, count: usize) -> f64 {
    let raw = range / count.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 + 1e-9 {
        1.0
    } else if norm <= 2.0 + 1e-9 {
        2.0
    } else if norm <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Decimals needed to write multiples of `step`.
fn decimals(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else {
        (-(step.log10() + 1e-9).floor()).max(0.0) as usize
    }
}

/// `v` with `decimals` decimals; whole numbers of 10,000 and more in
/// thousands (`12k`).
pub(super) fn number(v: f64, decimals: usize) -> String {
    let v = v + 0.0;
    if decimals == 0 {
        let r = v.round() + 0.0;
        if r.abs() >= 10_000.0 && r % 1_000.0 == 0.0 {
            format!("{:.0}k", r / 1_000.0)
        } else {
            format!("{r:.0}")
        }
    } else {
        let s = format!("{v:.decimals$}");
        // "-0.0" and the like.
        if s.trim_start_matches('-')
            .chars()
            .all(|c| c == '0' || c == '.')
        {
            s.trim_start_matches('-').to_owned()
        } else {
            s
        }
    }
}

/// A linear axis covering `lo..=hi`, extended to whole steps, with as many
/// ticks as fit `length` px without labels touching. `horizontal` axes
/// check label widths; vertical ones keep 44 px between labels.
pub(super) fn linear(lo: f64, hi: f64, length: f64, horizontal: bool) -> Axis {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && lo < hi {
        (lo, hi)
    } else if lo.is_finite() {
        (lo, lo + 1.0)
    } else {
        (0.0, 1.0)
    };
    let spacing = if horizontal { 80.0 } else { 44.0 };
    let mut count = ((length / spacing).floor() as usize).max(2);
    loop {
        let step = nice_step(hi - lo, count);
        let start = (lo / step + 1e-9).floor() * step;
        let end = (hi / step - 1e-9).ceil() * step;
        let n = (((end - start) / step).round() as usize).max(1);
        let d = decimals(step);
        let ticks: Vec<Tick> = (0..=n)
            .map(|k| {
                let value = start + k as f64 * step;
                Tick {
                    value,
                    label: Some(number(value, d)),
                    major: true,
                }
            })
            .collect();
        let widest = ticks
            .iter()
            .filter_map(|t| t.label.as_deref())
            .map(|l| text_width(l, TICK_FONT))
            .fold(0.0, f64::max);
        let fits = !horizontal || widest + LABEL_GAP <= length / n as f64;
        if fits || count <= 2 {
            return Axis {
                scale: Scale::Linear {
                    lo: start,
                    hi: start + n as f64 * step,
                },
                ticks,
            };
        }
        count -= 1;
    }
}

/// A power of ten, 1, 2 or 5 times one, written short: `0.5`, `20`, `5k`,
/// `1M`.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", number(v / 1e6, decimals(v / 1e6)))
    } else if v >= 1e3 {
        format!("{}k", number(v / 1e3, decimals(v / 1e3)))
    } else {
        number(v, decimals(v))
    }
}

/// A log axis from the power of ten at or below `lo` to the one at or above
/// `hi` (`0 < lo <= hi`): a gridline at each 1..9 times a power of ten,
/// labels on powers of ten (every few when decades are narrow) and on 2 and
/// 5 times them when decades are wide.
pub(super) fn log(lo: f64, hi: f64, length: f64) -> Axis {
    let lo = if lo.is_finite() && lo > 0.0 { lo } else { 1.0 };
    let hi = if hi.is_finite() && hi >= lo { hi } else { lo };
    let lo_dec = (lo.log10() + 1e-9).floor() as i32;
    let mut hi_dec = (hi.log10() - 1e-9).ceil() as i32;
    if hi_dec <= lo_dec {
        hi_dec = lo_dec + 1;
    }
    let decades = f64::from(hi_dec - lo_dec);
    let per_decade = length / decades;
    let label_w = text_width("10k", TICK_FONT) + LABEL_GAP;
    let mids = per_decade >= 3.3 * label_w;
    let every = ((label_w / per_decade).ceil() as i32).max(1);
    let mut ticks = Vec::new();
    for d in lo_dec..=hi_dec {
        let base = 10f64.powi(d);
        ticks.push(Tick {
            value: base,
            label: ((d - lo_dec) % every == 0).then(|| short(base)),
            major: true,
        });
        if d == hi_dec {
            break;
        }
        for m in 2..=9 {
            let value = f64::from(m) * base;
            ticks.push(Tick {
                value,
                label: (mids && (m == 2 || m == 5)).then(|| short(value)),
                major: false,
            });
        }
    }
    Axis {
        scale: Scale::Log {
            lo: 10f64.powi(lo_dec),
            hi: 10f64.powi(hi_dec),
        },
        ticks,
    }
}

/// Draws the gridlines, the axes, the tick labels and the axis titles.
pub(super) fn draw(svg: &mut Svg, x: &Axis, y: &Axis, x_title: &str, y_title: &str) {
    svg.group("grid");
    for t in &x.ticks {
        let px = x.scale.x(t.value);
        svg.line((px, TOP), (px, BOTTOM), grid(t.major));
    }
    for t in &y.ticks {
        let py = y.scale.y(t.value);
        svg.line((LEFT, py), (RIGHT, py), grid(t.major));
    }
    svg.end_group();
    svg.group("axes");
    let axis = Stroke::solid("#555555", 1.2);
    svg.line((LEFT, BOTTOM), (RIGHT, BOTTOM), axis);
    svg.line((LEFT, TOP), (LEFT, BOTTOM), axis);
    let tick_style = TextStyle {
        size: TICK_FONT,
        fill: "#444444",
        ..TextStyle::default()
    };
    for t in &x.ticks {
        let px = x.scale.x(t.value);
        if let Some(label) = &t.label {
            svg.line((px, BOTTOM), (px, BOTTOM + 5.0), axis);
            svg.text(px, BOTTOM + 19.0, Anchor::Middle, tick_style, label);
        }
    }
    for t in &y.ticks {
        let py = y.scale.y(t.value);
        if let Some(label) = &t.label {
            svg.line((LEFT - 5.0, py), (LEFT, py), axis);
            svg.text(LEFT - 9.0, py + 4.0, Anchor::End, tick_style, label);
        }
    }
    let title_style = TextStyle {
        size: 13.0,
        fill: "#222222",
        ..TextStyle::default()
    };
    svg.text(
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 46.0,
        Anchor::Middle,
        title_style,
        x_title,
    );
    let vertical = TextStyle {
        vertical: true,
        ..title_style
    };
    svg.text(
        22.0,
        (TOP + BOTTOM) / 2.0,
        Anchor::Middle,
        vertical,
        y_title,
    );
    svg.end_group();
}

fn grid(major: bool) -> Stroke {
    Stroke::solid(if major { "#e3e3e3" } else { "#f1f1f1" }, 1.0)
}

/// What a legend entry shows beside its name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Swatch {
    /// A short stretch of the series' line.
    Line,
    /// A filled square (bars).
    Block,
}

/// One legend entry: the series' index (its colour) and its text.
pub(super) struct Entry {
    pub index: usize,
    pub text: String,
}

/// Draws the legend right of the plot, one entry per row; entries that do
/// not fit are summed up in a last row (`+3 more`).
pub(super) fn legend(svg: &mut Svg, entries: &[Entry], swatch: Swatch) {
    const ROW: f64 = 21.0;
    const MAX_CHARS: usize = 22;
    let x = RIGHT + 20.0;
    let rows = (((BOTTOM - TOP) / ROW).floor() as usize).max(1);
    let shown = if entries.len() > rows {
        rows - 1
    } else {
        entries.len()
    };
    let style = TextStyle {
        size: 12.5,
        fill: "#222222",
        ..TextStyle::default()
    };
    svg.group("legend");
    for (row, e) in entries.iter().take(shown).enumerate() {
        let y = TOP + 10.0 + row as f64 * ROW;
        match swatch {
            Swatch::Line => svg.line((x, y), (x + 22.0, y), Stroke::series(e.index, 2.5)),
            Swatch::Block => svg.rect(x + 5.0, y - 6.0, 12.0, 12.0, colour(e.index)),
        }
        svg.text(
            x + 30.0,
            y + 4.5,
            Anchor::Start,
            style,
            &truncate(&e.text, MAX_CHARS),
        );
    }
    if shown < entries.len() {
        let y = TOP + 10.0 + shown as f64 * ROW;
        let more = format!("+{} more", entries.len() - shown);
        let grey = TextStyle {
            fill: "#777777",
            ..style
        };
        svg.text(x + 30.0, y + 4.5, Anchor::Start, grey, &more);
    }
    svg.end_group();
}

/// A grey note in the middle of the plot area (`no data`).
pub(super) fn note(svg: &mut Svg, text: &str) {
    let style = TextStyle {
        size: 15.0,
        fill: "#888888",
        ..TextStyle::default()
    };
    svg.text(
        (LEFT + RIGHT) / 2.0,
        (TOP + BOTTOM) / 2.0,
        Anchor::Middle,
        style,
        text,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_nice_and_labels_exact() {
        assert_eq!(nice_step(1.0, 7), 0.2);
        assert_eq!(nice_step(1000.0, 7), 200.0);
        assert_eq!(nice_step(30.0, 6), 5.0);
        assert_eq!(decimals(0.2), 1);
        assert_eq!(decimals(0.1), 1);
        assert_eq!(decimals(0.05), 2);
        assert_eq!(decimals(5.0), 0);
        assert_eq!(number(-0.0, 1), "0.0");
        assert_eq!(number(20_000.0, 0), "20k");
        assert_eq!(number(2_500.0, 0), "2500");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(2_000.0), "2k");
        assert_eq!(short(1e6), "1M");
    }

    #[test]
    fn linear_axis_covers_the_data_and_labels_do_not_touch() {
        let a = linear(0.0, 1.0, 380.0, false);
        let labels: Vec<_> = a.ticks.iter().filter_map(|t| t.label.clone()).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        for (lo, hi) in [(0.0, 3.0), (0.0, 1234.5), (17.0, 3_617.0), (0.0, 1e7)] {
            let a = linear(lo, hi, 600.0, true);
            let Scale::Linear { lo: l, hi: h } = a.scale else {
                panic!("linear")
            };
            assert!(l <= lo && h >= hi, "{lo}..{hi} in {l}..{h}");
            let spacing = 600.0 / (a.ticks.len() - 1) as f64;
            for t in &a.ticks {
                let w = text_width(t.label.as_deref().unwrap(), TICK_FONT);
                assert!(w + LABEL_GAP <= spacing, "{:?} in {spacing}", t.label);
            }
        }
        // Degenerate ranges still give an axis.
        assert!(matches!(linear(5.0, 5.0, 600.0, true).scale, Scale::Linear { lo, hi } if lo < hi));
        assert!(
            matches!(linear(f64::NAN, 1.0, 600.0, true).scale, Scale::Linear { lo, hi } if lo < hi)
        );
    }

    #[test]
    fn log_axis_spans_whole_decades() {
        let a = log(3.0, 4_500.0, 600.0);
        let Scale::Log { lo, hi } = a.scale else {
            panic!("log")
        };
        assert_eq!((lo, hi), (1.0, 10_000.0));
        let labels: Vec<_> = a.ticks.iter().filter_map(|t| t.label.clone()).collect();
        assert_eq!(
            labels,
            [
                "1", "2", "5", "10", "20", "50", "100", "200", "500", "1k", "2k", "5k", "10k"
            ]
        );
        // Narrow decades: powers of ten only, or every other one.
        let wide = log(0.01, 1e7, 600.0);
        let labels: Vec<_> = wide.ticks.iter().filter_map(|t| t.label.clone()).collect();
        assert_eq!(
            labels,
            [
                "0.01", "0.1", "1", "10", "100", "1k", "10k", "100k", "1M", "10M"
            ]
        );
        let single = log(7.0, 7.0, 600.0);
        assert!(matches!(single.scale, Scale::Log { lo, hi } if lo == 1.0 && hi == 10.0));
    }
}
