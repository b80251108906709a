//! An incremental newline-delimited JSON (JSON lines) splitter, as Ollama
//! streams: each line is one JSON value. The parser only splits lines; the
//! stream translator parses them.
//!
//! Lines end with `\n`; a `\r` before it is dropped; lines of only ASCII
//! whitespace are skipped. At the end of input an unterminated last line
//! still counts. Chunking never changes the result. Cost: one copy of the
//! input into the parser's buffer, one scan per byte.

use super::sse::find_eol;
use super::{DEFAULT_MAX_LINE, ParseError};

/// The incremental JSON-lines splitter: [`feed`](NdjsonParser::feed) bytes
/// as they arrive, then take lines with [`next_line`](NdjsonParser::next_line)
/// until it gives `None`; at the end of input call
/// [`finish`](NdjsonParser::finish) and drain again.
#[derive(Clone, Debug)]
pub struct NdjsonParser {
    buf: Vec<u8>,
    /// Start of the next line.
    start: usize,
    /// How far from `start` the current line was already searched.
    scanned: usize,
    max_line: usize,
    eof: bool,
    failed: Option<ParseError>,
}

impl Default for NdjsonParser {
    fn default() -> Self {
        NdjsonParser::new(DEFAULT_MAX_LINE)
    }
}

impl NdjsonParser {
    /// A parser that fails on lines longer than `max_line` bytes (without
    /// their line ending).
    pub fn new(max_line: usize) -> NdjsonParser {
        NdjsonParser {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_line,
            eof: false,
            failed: None,
        }
    }

    /// Appends input. Lines already taken are forgotten here.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Marks the end of input: an unterminated last line counts.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Bytes received but not yet part of a returned line.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next non-blank line without its line ending; `None` when more
    /// input is needed (or, after [`finish`](NdjsonParser::finish), when
    /// everything was taken).
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, ParseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let too_long = ParseError::LineTooLong {
            limit: self.max_line,
        };
        loop {
            let rest = &self.buf[self.start..];
            let (line, next) = match find_eol(&rest[self.scanned..], false) {
                Some(i) => (self.scanned + i, self.start + self.scanned + i + 1),
                None if self.eof && !rest.is_empty() => (rest.len(), self.buf.len()),
                None => {
                    self.scanned = rest.len();
                    // A trailing `\r` may still be dropped, so it does not
                    // count yet.
                    let len = rest.len() - usize::from(rest.last() == Some(&b'\r'));
                    if len > self.max_line {
                        self.failed = Some(too_long);
                        return Err(too_long);
                    }
                    return Ok(None);
                }
            };
            let from = self.start;
            let mut to = from + line;
            if to > from && self.buf[to - 1] == b'\r' {
                to -= 1;
            }
            self.start = next;
            self.scanned = 0;
            if to - from > self.max_line {
                self.failed = Some(too_long);
                return Err(too_long);
            }
            if !self.buf[from..to].trim_ascii().is_empty() {
                return Ok(Some(&self.buf[from..to]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mut p: NdjsonParser, chunks: &[&[u8]]) -> Run {
        let mut out = Vec::new();
        let drain = |p: &mut NdjsonParser, out: &mut Vec<Vec<u8>>| loop {
            match p.next_line() {
                Ok(Some(l)) => out.push(l.to_vec()),
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        };
        for c in chunks {
            p.feed(c);
            if let Err(e) = drain(&mut p, &mut out) {
                return Err((out, e));
            }
        }
        p.finish();
        match drain(&mut p, &mut out) {
            Ok(()) => Ok(out),
            Err(e) => Err((out, e)),
        }
    }

    type Run = Result<Vec<Vec<u8>>, (Vec<Vec<u8>>, ParseError)>;

    fn all_splits(max: usize, input: &[u8]) -> Run {
        let whole = run(NdjsonParser::new(max), &[input]);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(run(NdjsonParser::new(max), &[a, b]), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(NdjsonParser::new(max), &bytes), whole, "byte by byte");
        whole
    }

    fn lines(ls: &[&str]) -> Vec<Vec<u8>> {
        ls.iter().map(|l| l.as_bytes().to_vec()).collect()
    }

    #[test]
    fn splits_lines_and_skips_blank_ones() {
        let got = all_splits(
            100,
            b"{\"a\":1}\n\r\n  \n{\"b\":\"x\\ny\"}\r\n{\"done\":true}",
        );
        assert_eq!(
            got,
            Ok(lines(&[
                "{\"a\":1}",
                "{\"b\":\"x\\ny\"}",
                "{\"done\":true}"
            ]))
        );
        assert_eq!(all_splits(100, b""), Ok(vec![]));
        assert_eq!(all_splits(100, b"\n\n"), Ok(vec![]));
    }

    #[test]
    fn overlong_lines_fail_wherever_the_split_is() {
        let got = all_splits(5, b"12345\r\n123456\nabc\n");
        assert_eq!(
            got,
            Err((lines(&["12345"]), ParseError::LineTooLong { limit: 5 }))
        );
        // Exactly at the limit with a `\r` still pending is fine.
        assert_eq!(all_splits(5, b"12345\r"), Ok(lines(&["12345"])));
        let mut p = NdjsonParser::new(5);
        p.feed(b"123456");
        assert_eq!(p.next_line(), Err(ParseError::LineTooLong { limit: 5 }));
        p.feed(b"\n");
        assert_eq!(
            p.next_line(),
            Err(ParseError::LineTooLong { limit: 5 }),
            "a failed parser stays failed"
        );
    }

    #[test]
    fn pending_counts_untaken_bytes() {
        let mut p = NdjsonParser::default();
        p.feed(b"{}\n{\"a\"");
        assert_eq!(p.next_line(), Ok(Some(&b"{}"[..])));
        assert_eq!(p.next_line(), Ok(None));
        assert_eq!(p.pending(), 4);
        p.feed(b":1}\n");
        assert_eq!(p.next_line(), Ok(Some(&b"{\"a\":1}"[..])));
        assert_eq!(p.pending(), 0);
    }
}
