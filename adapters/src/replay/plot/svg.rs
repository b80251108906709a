//! A minimal SVG writer: shapes and text with coordinates at a fixed 0.1 px,
//! escaped text, and the colour palette.

use std::fmt::{self, Write};

/// Canvas width in px.
pub(super) const WIDTH: f64 = 880.0;
/// Canvas height in px.
pub(super) const HEIGHT: f64 = 500.0;
/// The font stack: DejaVu Sans is on most Linux machines, the rest cover
/// the others.
const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";

/// Tableau 10: ten distinct colours that stay apart for colour-blind
/// readers in the common cases, and print well.
pub(super) const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];
/// Dash patterns that tell apart series sharing a colour (the 11th series
/// and on).
const DASHES: [Option<&str>; 3] = [None, Some("7 3"), Some("2 3")];

/// The colour of series `i`.
pub(super) fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The dash pattern of series `i`.
pub(super) fn dash(i: usize) -> Option<&'static str> {
    DASHES[(i / PALETTE.len()) % DASHES.len()]
}

/// A coordinate or length, written with one decimal; never `NaN`, `inf`
/// or `-0.0`.
#[derive(Clone, Copy)]
pub(super) struct P(pub f64);

impl fmt::Display for P {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.0.is_finite() {
            self.0.clamp(-1e6, 1e6)
        } else {
            0.0
        };
        // Adding 0.0 turns -0.0 into 0.0.
        let v = (v * 10.0).round() / 10.0 + 0.0;
        write!(f, "{v:.1}")
    }
}

/// Text made safe for XML content and attribute values.
pub(super) struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&apos;")?,
                // Control characters are not allowed in XML 1.0.
                c if c.is_control() => f.write_char(' ')?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// `s` cut to `max` characters, with an ellipsis when cut.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Rough width in px of `s` at font size `size` (average glyph width of a
/// sans-serif font), for layout.
pub(super) fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.6
}

/// Horizontal anchoring of text.
#[derive(Clone, Copy)]
pub(super) enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn name(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// An SVG document being written. Writing into a `String` cannot fail, so
/// the `fmt::Result`s are dropped.
pub(super) struct Svg {
    out: String,
}

impl Svg {
    /// A canvas with a white background and `title` on top.
    pub(super) fn new(title: &str) -> Svg {
        let mut out = String::with_capacity(16 * 1024);
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" font-family=\"{FONT}\">\n\
             <title>{t}</title>\n\
             <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n",
            w = P(WIDTH),
            h = P(HEIGHT),
            t = Esc(title),
        );
        let mut svg = Svg { out };
        let style = TextStyle {
            size: 17.0,
            bold: true,
            ..TextStyle::default()
        };
        svg.text(WIDTH / 2.0, 32.0, Anchor::Middle, style, title);
        svg
    }

    /// The document's text.
    pub(super) fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }

    /// Opens a group (`<g>`) with a comment-like `class`.
    pub(super) fn group(&mut self, class: &str) {
        let _ = writeln!(self.out, "<g class=\"{}\">", Esc(class));
    }

    /// Closes the group opened last.
    pub(super) fn end_group(&mut self) {
        self.out.push_str("</g>\n");
    }

    /// A straight line.
    pub(super) fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: Stroke) {
        let _ = writeln!(
            self.out,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"{}/>",
            P(x1),
            P(y1),
            P(x2),
            P(y2),
            stroke
        );
    }

    /// A line through `points`; consecutive points that round to the same
    /// coordinates are written once.
    pub(super) fn polyline(&mut self, points: &[(f64, f64)], stroke: Stroke) {
        let mut text = String::with_capacity(points.len() * 12);
        let mut last = String::new();
        for &(x, y) in points {
            let p = format!("{},{}", P(x), P(y));
            if p != last {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&p);
                last = p;
            }
        }
        let _ = writeln!(
            self.out,
            "<polyline points=\"{text}\" fill=\"none\" stroke-linejoin=\"round\"{stroke}/>"
        );
    }

    /// A filled rectangle.
    pub(super) fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str) {
        let _ = writeln!(
            self.out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>",
            P(x),
            P(y),
            P(w.max(0.0)),
            P(h.max(0.0)),
            Esc(fill)
        );
    }

    /// A filled circle.
    pub(super) fn dot(&mut self, (x, y): (f64, f64), r: f64, fill: &str) {
        let _ = writeln!(
            self.out,
            "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\"/>",
            P(x),
            P(y),
            P(r),
            Esc(fill)
        );
    }

    /// Text at (`x`, `y`), `y` being the baseline.
    pub(super) fn text(&mut self, x: f64, y: f64, anchor: Anchor, style: TextStyle, s: &str) {
        let _ = write!(
            self.out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"{}\" font-size=\"{}\" fill=\"{}\"",
            P(x),
            P(y),
            anchor.name(),
            P(style.size),
            style.fill
        );
        if style.bold {
            self.out.push_str(" font-weight=\"bold\"");
        }
        if style.vertical {
            let _ = write!(self.out, " transform=\"rotate(-90 {} {})\"", P(x), P(y));
        }
        let _ = writeln!(self.out, ">{}</text>", Esc(s));
    }
}

/// How text looks.
#[derive(Clone, Copy)]
pub(super) struct TextStyle {
    pub size: f64,
    pub fill: &'static str,
    pub bold: bool,
    /// Rotated to read bottom to top.
    pub vertical: bool,
}

impl Default for TextStyle {
    fn default() -> Self {
        TextStyle {
            size: 12.0,
            fill: "#333333",
            bold: false,
            vertical: false,
        }
    }
}

/// How a line looks; displays as its SVG attributes.
#[derive(Clone, Copy)]
pub(super) struct Stroke {
    pub colour: &'static str,
    pub width: f64,
    pub dash: Option<&'static str>,
}

impl Stroke {
    /// A solid line.
    pub(super) fn solid(colour: &'static str, width: f64) -> Stroke {
        Stroke {
            colour,
            width,
            dash: None,
        }
    }
    /// The line of series `i`.
    pub(super) fn series(i: usize, width: f64) -> Stroke {
        Stroke {
            colour: colour(i),
            width,
            dash: dash(i),
        }
    }
    /// The same line, dashed.
    pub(super) fn dashed(mut self, pattern: &'static str) -> Stroke {
        self.dash = Some(pattern);
        self
    }
}

impl fmt::Display for Stroke {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            " stroke=\"{}\" stroke-width=\"{}\"",
            self.colour,
            P(self.width)
        )?;
        if let Some(d) = self.dash {
            write!(f, " stroke-dasharray=\"{d}\"")?;
        }
        Ok(())
    }
}
