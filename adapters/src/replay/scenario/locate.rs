//! Where a key is in a scenario file: field paths (`nodes[2].slots`) and
//! their lines, from the spans of the parsed TOML document.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A key of a table.
    Key(String),
    /// An element of an array (from 0).
    Index(usize),
}

/// The path of a key in a scenario file; displays as `nodes[2].slots`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The path of the top-level key `key`.
    pub fn key(key: &str) -> FieldPath {
        FieldPath(vec![Segment::Key(key.to_owned())])
    }
    /// This path, then the key `key`.
    pub fn then(&self, key: &str) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_owned()));
        p
    }
    /// This path, then element `i` of the array it names.
    pub fn at(&self, i: usize) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }
    /// Whether this is the whole document.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The steps, from the top.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The line (from 1) of byte offset `pos` of `text`.
pub(super) fn line_at(text: &str, pos: usize) -> usize {
    let end = pos.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// The path of the innermost key, value or array element whose span holds
/// byte offset `pos`; empty when none does.
pub(super) fn path_at(root: &DeTable<'_>, pos: usize) -> FieldPath {
    let mut best = None;
    search(root, &FieldPath::default(), pos, &mut best);
    best.map(|(_, path)| path).unwrap_or_default()
}

fn search(
    table: &DeTable<'_>,
    prefix: &FieldPath,
    pos: usize,
    best: &mut Option<(usize, FieldPath)>,
) {
    for (key, value) in table.iter() {
        let path = prefix.then(key.get_ref());
        consider(key.span(), &path, pos, best);
        descend(value, &path, pos, best);
    }
}

/// Considers `value` and everything in it. A table of an array of tables
/// (`[[nodes]]`) spans only its header, so its keys are searched whatever
/// its span.
fn descend(
    value: &Spanned<DeValue<'_>>,
    path: &FieldPath,
    pos: usize,
    best: &mut Option<(usize, FieldPath)>,
) {
    consider(value.span(), path, pos, best);
    match value.get_ref() {
        DeValue::Table(t) => search(t, path, pos, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                descend(item, &path.at(i), pos, best);
            }
        }
        _ => {}
    }
}

/// Keeps `path` if `span` holds `pos` and is tighter than the best so far
/// (on a tie, the deeper path).
fn consider(
    span: Range<usize>,
    path: &FieldPath,
    pos: usize,
    best: &mut Option<(usize, FieldPath)>,
) {
    if !span.contains(&pos) {
        return;
    }
    let len = span.len();
    let better = match best {
        None => true,
        Some((l, p)) => len < *l || (len == *l && path.0.len() > p.0.len()),
    };
    if better {
        *best = Some((len, path.clone()));
    }
}

/// The line of the deepest key of `path` present in the document (the
/// key itself, or the element of an array); 0 when not even its first
/// step is.
pub(super) fn line_of(root: &DeTable<'_>, text: &str, path: &FieldPath) -> usize {
    let mut table = Some(root);
    let mut items: Option<&[Spanned<DeValue<'_>>]> = None;
    let mut found: Option<Range<usize>> = None;
    for seg in &path.0 {
        let next = match seg {
            Segment::Key(k) => table.and_then(|t| {
                t.iter()
                    .find(|(key, _)| key.get_ref() == k)
                    .map(|(key, value)| (key.span(), value))
            }),
            Segment::Index(i) => items
                .and_then(|a| a.get(*i))
                .map(|item| (item.span(), item)),
        };
        let Some((span, value)) = next else { break };
        found = Some(span);
        (table, items) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(a.as_ref())),
            _ => (None, None),
        };
    }
    found.map_or(0, |s| line_at(text, s.start))
}
