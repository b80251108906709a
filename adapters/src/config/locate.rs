//! Where a key is in a config file: the line of a field path
//! (`nodes[2].baseUrl`) and the field path at a byte offset, for TOML (from
//! the parsed document's spans) and JSON (from a small scanner over text
//! that `serde_json` has already accepted).

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use crate::replay::scenario::{FieldPath, Segment};

/// One key or array element: its path, where its key (or the element)
/// starts, and the span of its value.
struct Entry {
    path: FieldPath,
    key: Range<usize>,
    value: Range<usize>,
}

/// The keys of one file, with their positions.
pub(crate) struct Index {
    line_starts: Vec<usize>,
    entries: Vec<Entry>,
}

impl Index {
    fn new(text: &str) -> Index {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Index {
            line_starts,
            entries: Vec::new(),
        }
    }

    /// The index of a parsed TOML document.
    pub(crate) fn toml(text: &str, root: &DeTable<'_>) -> Index {
        let mut index = Index::new(text);
        index.table(root, &FieldPath::default());
        index
    }

    fn table(&mut self, table: &DeTable<'_>, prefix: &FieldPath) {
        for (key, value) in table.iter() {
            let path = prefix.then(key.get_ref());
            self.entries.push(Entry {
                path: path.clone(),
                key: key.span(),
                value: value.span(),
            });
            self.value(value, &path);
        }
    }

    fn value(&mut self, value: &Spanned<DeValue<'_>>, path: &FieldPath) {
        match value.get_ref() {
            DeValue::Table(t) => self.table(t, path),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = path.at(i);
                    self.entries.push(Entry {
                        path: at.clone(),
                        key: item.span(),
                        value: item.span(),
                    });
                    self.value(item, &at);
                }
            }
            _ => {}
        }
    }

    /// The index of a JSON text that `serde_json` accepted; paths start
    /// with `root`. Text it cannot follow leaves the index partial.
    pub(crate) fn json(text: &str, root: &FieldPath) -> Index {
        let mut index = Index::new(text);
        let mut scan = Scan {
            text,
            i: 0,
            out: Vec::new(),
        };
        scan.value(root, None, 0);
        index.entries = scan.out;
        index
    }

    /// The line (from 1) of byte offset `pos`.
    pub(crate) fn line(&self, pos: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= pos).max(1)
    }

    /// The line of the deepest key of `path` in the file; `None` if not
    /// even its first step is there.
    pub(crate) fn line_of(&self, path: &FieldPath) -> Option<usize> {
        let segs = path.segments();
        (1..=segs.len()).rev().find_map(|n| {
            let prefix = prefix(segs, n);
            self.entries
                .iter()
                .find(|e| e.path == prefix)
                .map(|e| self.line(e.key.start))
        })
    }

    /// The span of the value at exactly `path`.
    pub(crate) fn span_of(&self, path: &FieldPath) -> Option<Range<usize>> {
        self.entries
            .iter()
            .find(|e| e.path == *path)
            .map(|e| e.value.clone())
    }

    /// The innermost path whose key or value holds byte offset `pos` (empty
    /// when none does).
    pub(crate) fn path_at(&self, pos: usize) -> FieldPath {
        let mut best: Option<(usize, &Entry)> = None;
        for e in &self.entries {
            for span in [&e.key, &e.value] {
                if !span.contains(&pos) {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((len, b)) => {
                        span.len() < len
                            || (span.len() == len
                                && e.path.segments().len() > b.path.segments().len())
                    }
                };
                if better {
                    best = Some((span.len(), e));
                }
            }
        }
        best.map(|(_, e)| e.path.clone()).unwrap_or_default()
    }
}

/// The first `n` steps of a path.
fn prefix(segs: &[Segment], n: usize) -> FieldPath {
    segs.iter()
        .take(n)
        .fold(FieldPath::default(), |p, s| match s {
            Segment::Key(k) => p.then(k),
            Segment::Index(i) => p.at(*i),
        })
}

/// A scanner over valid JSON recording the span of every key and element.
struct Scan<'a> {
    text: &'a str,
    i: usize,
    out: Vec<Entry>,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    /// Scans one value at `path`; `key` is the span of its key, if any.
    /// `None`: text it cannot follow.
    fn value(&mut self, path: &FieldPath, key: Option<Range<usize>>, depth: usize) -> Option<()> {
        if depth > 64 {
            return None;
        }
        self.ws();
        let start = self.i;
        match self.peek()? {
            b'{' => {
                self.i += 1;
                loop {
                    self.ws();
                    match self.peek()? {
                        b'}' => break,
                        b',' => self.i += 1,
                        b'"' => {
                            let ks = self.i;
                            self.string()?;
                            let name: String = serde_json::from_str(&self.text[ks..self.i]).ok()?;
                            self.ws();
                            (self.peek()? == b':').then_some(())?;
                            self.i += 1;
                            self.value(&path.then(&name), Some(ks..self.i), depth + 1)?;
                        }
                        _ => return None,
                    }
                }
                self.i += 1;
            }
            b'[' => {
                self.i += 1;
                let mut n = 0;
                loop {
                    self.ws();
                    match self.peek()? {
                        b']' => break,
                        b',' => self.i += 1,
                        _ => {
                            self.value(&path.at(n), None, depth + 1)?;
                            n += 1;
                        }
                    }
                }
                self.i += 1;
            }
            b'"' => self.string()?,
            _ => {
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b']' | b'}') && !b.is_ascii_whitespace())
                {
                    self.i += 1;
                }
            }
        }
        if !path.is_empty() {
            self.out.push(Entry {
                path: path.clone(),
                key: key.unwrap_or(start..self.i),
                value: start..self.i,
            });
        }
        Some(())
    }

    /// Skips a string, its quotes included.
    fn string(&mut self) -> Option<()> {
        self.i += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => self.i += 2,
                _ => self.i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_and_lines() {
        let text = "[\n  {\"name\": \"a\",\n   \"models\": [\"x\", \"y\\\"z\"]},\n  {\"name\": \"b\", \"w\": 1}\n]\n";
        let root = FieldPath::key("nodes");
        let ix = Index::json(text, &root);
        let line = |p: FieldPath| ix.line_of(&p);
        assert_eq!(line(root.at(0)), Some(2));
        assert_eq!(line(root.at(0).then("models").at(1)), Some(3));
        assert_eq!(line(root.at(1).then("w")), Some(4));
        // Missing steps fall back to the deepest present one.
        assert_eq!(line(root.at(1).then("baseUrl")), Some(4));
        assert_eq!(line(FieldPath::key("other")), None);
        let pos = text.find("\"b\"").unwrap();
        assert_eq!(ix.path_at(pos).to_string(), "nodes[1].name");
        assert_eq!(ix.line(0), 1);
        assert_eq!(ix.line(text.len()), 6);
    }

    #[test]
    fn toml_paths_and_lines() {
        let text = "listen = \"x\"\n[limits]\nmax_headers = 5\n[[nodes]]\nname = \"a\"\n[[nodes]]\nname = \"b\"\n";
        let doc = DeTable::parse(text).unwrap();
        let ix = Index::toml(text, doc.get_ref());
        let nodes = FieldPath::key("nodes");
        assert_eq!(
            ix.line_of(&FieldPath::key("limits").then("max_headers")),
            Some(3)
        );
        assert_eq!(ix.line_of(&nodes.at(1).then("name")), Some(7));
        assert_eq!(ix.line_of(&nodes.at(1).then("weight")), Some(6));
        let pos = text.find("\"b\"").unwrap();
        assert_eq!(ix.path_at(pos).to_string(), "nodes[1].name");
    }
}
