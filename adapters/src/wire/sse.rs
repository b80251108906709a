//! An incremental Server-Sent Events parser (the WHATWG HTML "event stream"
//! interpretation, reduced to what LLM servers send).
//!
//! Lines end with `\n`, `\r\n` or a lone `\r`; a line starting with `:` is a
//! comment; `data` lines of one event are joined with `\n`; `event`, `id`
//! and `retry` are accepted and ignored; a blank line ends the event. An
//! event whose data is `[DONE]` (ASCII whitespace around it ignored) is
//! OpenAI's end marker.
//!
//! Chunking never changes the result: a `\r` at the very end of the input
//! so far waits for the next byte (it may be the first half of `\r\n`), so
//! the items and their raw bytes are the same however the input is split.
//! The concatenated `raw` bytes of all items are the input up to the last
//! complete event. Cost: one copy of the input into the parser's buffer, one
//! scan per byte; a single-line event's data is a slice of that buffer.

use super::{DEFAULT_MAX_LINE, ParseError};

/// The index of the first `\n` (or, with `cr`, `\r`) in `b`: eight bytes
/// at a time with the "has zero byte" bit trick (exact for the lowest
/// match, which is the one taken).
pub(crate) fn find_eol(b: &[u8], cr: bool) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let mut words = b.chunks_exact(8);
    let mut i = 0;
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        let w = u64::from_le_bytes(a);
        let mut hits = zero(w ^ (LO * u64::from(b'\n')));
        if cr {
            hits |= zero(w ^ (LO * u64::from(b'\r')));
        }
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&c| c == b'\n' || (cr && c == b'\r'))
        .map(|p| i + p)
}

/// One item of an event stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseItem<'a> {
    /// An event with data.
    Data {
        /// The event's data lines joined by `\n`.
        data: &'a [u8],
        /// The event's bytes as received, from the end of the previous item
        /// to its terminating blank line (comments and other fields included).
        raw: &'a [u8],
    },
    /// The end marker `data: [DONE]`.
    Done {
        /// The event's bytes as received.
        raw: &'a [u8],
    },
    /// A blank-line-terminated block without data (comments, keep-alives),
    /// or trailing bytes without data at the end of input.
    Empty {
        /// The block's bytes as received.
        raw: &'a [u8],
    },
}

/// The incremental SSE parser: [`feed`](SseParser::feed) bytes as they
/// arrive, then take items with [`next_item`](SseParser::next_item) until it gives
/// `None`; at the end of input call [`finish`](SseParser::finish) and drain
/// again.
#[derive(Clone, Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Start of the current, not yet dispatched block.
    start: usize,
    /// Start of the next line to scan.
    pos: usize,
    /// Joined data when the current event has more than one data line.
    data: Vec<u8>,
    /// The range of the current event's first data line's value.
    first: (usize, usize),
    /// Data lines in the current event.
    lines: usize,
    max_line: usize,
    strict: bool,
    eof: bool,
    failed: Option<ParseError>,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_LINE)
    }
}

impl SseParser {
    /// A parser that fails on lines (and joined event data) longer than
    /// `max_line` bytes and ignores unknown field names, as browsers do.
    pub fn new(max_line: usize) -> SseParser {
        SseParser {
            buf: Vec::new(),
            start: 0,
            pos: 0,
            data: Vec::new(),
            first: (0, 0),
            lines: 0,
            max_line,
            strict: false,
            eof: false,
            failed: None,
        }
    }

    /// A parser that also fails with [`ParseError::NotSse`] on a line that
    /// is not a known field, a comment or blank: an upstream answering with
    /// something else (an HTML page, JSON) is caught at its first line.
    pub fn strict(max_line: usize) -> SseParser {
        SseParser {
            strict: true,
            ..SseParser::new(max_line)
        }
    }

    /// Appends input. Items already taken are forgotten here, so slices from
    /// [`next_item`](SseParser::next_item) must be dropped first.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.pos -= self.start;
            self.first.0 = self.first.0.saturating_sub(self.start);
            self.first.1 = self.first.1.saturating_sub(self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Marks the end of input: the last line counts as terminated and a
    /// pending event with data as complete (lenient, so `data: [DONE]\n`
    /// without the blank line still ends the stream).
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// True once the end of input was marked and every item taken.
    pub fn is_drained(&self) -> bool {
        self.eof && self.start == self.buf.len()
    }

    /// Bytes received but not yet part of a returned item.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    fn fail(&mut self, e: ParseError) -> Result<Option<SseItem<'_>>, ParseError> {
        self.failed = Some(e);
        Err(e)
    }

    /// The next complete item, `None` when more input is needed (or, after
    /// [`finish`](SseParser::finish), when everything was taken).
    pub fn next_item(&mut self) -> Result<Option<SseItem<'_>>, ParseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        loop {
            let rest = &self.buf[self.pos..];
            let found = find_eol(rest, true);
            let (len, term) = match found {
                Some(i) if rest[i] == b'\n' => (i, 1),
                Some(i) if i + 1 < rest.len() => (i, 1 + usize::from(rest[i + 1] == b'\n')),
                Some(i) if self.eof => (i, 1),
                Some(i) => {
                    // A `\r` as the last byte: wait for the next one.
                    if i > self.max_line {
                        return self.fail(ParseError::LineTooLong {
                            limit: self.max_line,
                        });
                    }
                    return Ok(None);
                }
                None if self.eof && !rest.is_empty() => (rest.len(), 0),
                None if self.eof => {
                    // End of input: a pending event is complete; trailing
                    // bytes without data come out as `Empty`.
                    if self.lines > 0 {
                        (0, 0)
                    } else if self.start < self.buf.len() {
                        let raw = self.start..self.buf.len();
                        self.start = self.buf.len();
                        return Ok(Some(SseItem::Empty {
                            raw: &self.buf[raw],
                        }));
                    } else {
                        return Ok(None);
                    }
                }
                None => {
                    if rest.len() > self.max_line {
                        return self.fail(ParseError::LineTooLong {
                            limit: self.max_line,
                        });
                    }
                    return Ok(None);
                }
            };
            if len > self.max_line {
                return self.fail(ParseError::LineTooLong {
                    limit: self.max_line,
                });
            }
            let line = self.pos..self.pos + len;
            self.pos += len + term;
            if len == 0 {
                return Ok(Some(self.dispatch()));
            }
            let bytes = &self.buf[line.clone()];
            if bytes[0] == b':' {
                continue;
            }
            let colon = bytes.iter().position(|&b| b == b':').unwrap_or(len);
            let mut value = line.start + colon + usize::from(colon < len);
            if value < line.end && self.buf[value] == b' ' {
                value += 1;
            }
            match &bytes[..colon] {
                b"data" => {
                    if let Err(e) = self.add_data(value, line.end) {
                        return self.fail(e);
                    }
                }
                b"event" | b"id" | b"retry" => {}
                _ if self.strict => return self.fail(ParseError::NotSse),
                _ => {}
            }
        }
    }

    fn add_data(&mut self, from: usize, to: usize) -> Result<(), ParseError> {
        match self.lines {
            0 => self.first = (from, to),
            1 => {
                self.data.clear();
                self.data
                    .extend_from_slice(&self.buf[self.first.0..self.first.1]);
                self.data.push(b'\n');
                self.data.extend_from_slice(&self.buf[from..to]);
            }
            _ => {
                self.data.push(b'\n');
                self.data.extend_from_slice(&self.buf[from..to]);
            }
        }
        self.lines += 1;
        let joined = if self.lines == 1 {
            to - from
        } else {
            self.data.len()
        };
        if joined > self.max_line {
            return Err(ParseError::LineTooLong {
                limit: self.max_line,
            });
        }
        Ok(())
    }

    fn dispatch(&mut self) -> SseItem<'_> {
        let raw = self.start..self.pos;
        self.start = self.pos;
        let lines = std::mem::take(&mut self.lines);
        let raw = &self.buf[raw];
        let data = match lines {
            0 => return SseItem::Empty { raw },
            1 => &self.buf[self.first.0..self.first.1],
            _ => &self.data[..],
        };
        if data.trim_ascii() == b"[DONE]" {
            SseItem::Done { raw }
        } else {
            SseItem::Data { data, raw }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned item, for comparing runs.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum Owned {
        Data(Vec<u8>, Vec<u8>),
        Done(Vec<u8>),
        Empty(Vec<u8>),
        Error(ParseError),
    }

    fn drain(p: &mut SseParser, out: &mut Vec<Owned>) {
        loop {
            match p.next_item() {
                Ok(Some(SseItem::Data { data, raw })) => {
                    out.push(Owned::Data(data.to_vec(), raw.to_vec()))
                }
                Ok(Some(SseItem::Done { raw })) => out.push(Owned::Done(raw.to_vec())),
                Ok(Some(SseItem::Empty { raw })) => out.push(Owned::Empty(raw.to_vec())),
                Ok(None) => return,
                Err(e) => {
                    out.push(Owned::Error(e));
                    return;
                }
            }
        }
    }

    fn run(mut p: SseParser, chunks: &[&[u8]]) -> Vec<Owned> {
        let mut out = Vec::new();
        for c in chunks {
            if matches!(out.last(), Some(Owned::Error(_))) {
                break;
            }
            p.feed(c);
            drain(&mut p, &mut out);
        }
        if !matches!(out.last(), Some(Owned::Error(_))) {
            p.finish();
            drain(&mut p, &mut out);
        }
        out
    }

    /// Parses `input` whole, then split at every position and byte by byte,
    /// and checks every run gives the same items.
    fn all_splits(make: impl Fn() -> SseParser, input: &[u8]) -> Vec<Owned> {
        let whole = run(make(), &[input]);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(run(make(), &[a, b]), whole, "split at {i} of {input:?}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(make(), &bytes), whole, "byte by byte");
        whole
    }

    fn data(d: &str, raw: &str) -> Owned {
        Owned::Data(d.into(), raw.into())
    }

    #[test]
    fn find_eol_matches_a_plain_search() {
        let mut buf = [b'a'; 40];
        for at in 0..40 {
            for (byte, cr) in [(b'\n', false), (b'\n', true), (b'\r', true), (b'\r', false)] {
                buf[at] = byte;
                let want = buf.iter().position(|&c| c == b'\n' || (cr && c == b'\r'));
                for start in 0..at.min(9) {
                    let got = find_eol(&buf[start..], cr);
                    assert_eq!(got, want.map(|w| w - start), "at {at} from {start}");
                }
                buf[at] = b'a';
            }
        }
        assert_eq!(find_eol(b"", true), None);
        // Bytes that differ from the target by a borrow (0x0b, 0x8a, 0x0e).
        assert_eq!(
            find_eol(b"\x0b\x8a\x0e\x8d\x0b\x0b\x0b\x0b\x0b\n", true),
            Some(9)
        );
    }

    #[test]
    fn parses_openai_stream_with_every_line_ending() {
        for nl in ["\n", "\r\n", "\r"] {
            let input = format!(
                ": keep-alive{nl}{nl}data: {{\"a\":1}}{nl}{nl}event: x{nl}id: 7{nl}data:{{\"b\":2}}{nl}{nl}data: [DONE]{nl}{nl}"
            );
            let got = all_splits(SseParser::default, input.as_bytes());
            assert_eq!(
                got,
                vec![
                    Owned::Empty(format!(": keep-alive{nl}{nl}").into()),
                    data("{\"a\":1}", &format!("data: {{\"a\":1}}{nl}{nl}")),
                    data(
                        "{\"b\":2}",
                        &format!("event: x{nl}id: 7{nl}data:{{\"b\":2}}{nl}{nl}")
                    ),
                    Owned::Done(format!("data: [DONE]{nl}{nl}").into()),
                ],
                "line ending {nl:?}"
            );
        }
    }

    #[test]
    fn joins_multi_line_data_and_keeps_inner_spaces() {
        let got = all_splits(
            SseParser::default,
            b"data: {\"a\":\ndata:  1}\n: note\ndata\n\n",
        );
        assert_eq!(
            got,
            vec![data(
                "{\"a\":\n 1}\n",
                "data: {\"a\":\ndata:  1}\n: note\ndata\n\n"
            )]
        );
    }

    #[test]
    fn end_of_input_completes_the_last_event_and_line() {
        let got = all_splits(SseParser::default, b"data: x\n\ndata: [DONE]");
        assert_eq!(
            got,
            vec![
                data("x", "data: x\n\n"),
                Owned::Done(b"data: [DONE]".to_vec())
            ]
        );
        let got = all_splits(SseParser::default, b"data: [DONE]\r");
        assert_eq!(got, vec![Owned::Done(b"data: [DONE]\r".to_vec())]);
        let got = all_splits(SseParser::default, b"data: y\n: trailing comment");
        assert_eq!(got, vec![data("y", "data: y\n: trailing comment")]);
        let got = all_splits(SseParser::default, b"data: y\n\n: trailing comment");
        assert_eq!(
            got,
            vec![
                data("y", "data: y\n\n"),
                Owned::Empty(b": trailing comment".to_vec())
            ]
        );
        assert_eq!(all_splits(SseParser::default, b""), vec![]);
    }

    #[test]
    fn a_lone_cr_at_the_end_waits_for_the_next_byte() {
        let mut p = SseParser::default();
        p.feed(b"data: a\r\r");
        assert_eq!(
            p.next_item(),
            Ok(None),
            "the second \\r may be half of \\r\\n"
        );
        p.feed(b"\n");
        assert_eq!(
            p.next_item(),
            Ok(Some(SseItem::Data {
                data: b"a",
                raw: b"data: a\r\r\n"
            }))
        );
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn overlong_lines_fail_at_any_split_and_stay_failed() {
        let too_long = ParseError::LineTooLong { limit: 12 };
        let input = b"data: 12345\n\ndata: 123456789\n\ndata: ok\n\n";
        let got = all_splits(|| SseParser::new(12), input);
        assert_eq!(
            got,
            vec![data("12345", "data: 12345\n\n"), Owned::Error(too_long)]
        );
        // Unterminated and still growing.
        let mut p = SseParser::new(12);
        p.feed(b"data: 1234567");
        assert_eq!(p.next_item(), Err(too_long));
        p.feed(b"\n\n");
        assert_eq!(p.next_item(), Err(too_long), "a failed parser stays failed");
        // Joined data over the limit, each line at it.
        let got = all_splits(|| SseParser::new(12), b"data: 123456\ndata: 123456\n\n");
        assert_eq!(got, vec![Owned::Error(too_long)]);
        let got = all_splits(|| SseParser::new(12), b"data: 123456\ndata: 12345\n\n");
        assert_eq!(
            got,
            vec![data("123456\n12345", "data: 123456\ndata: 12345\n\n")]
        );
    }

    #[test]
    fn garbage_is_ignored_unless_strict() {
        let input = b"<html>\r\n<body>oops</body>\r\n\r\n";
        let lenient = all_splits(SseParser::default, input);
        assert_eq!(lenient, vec![Owned::Empty(input.to_vec())]);
        let strict = all_splits(|| SseParser::strict(DEFAULT_MAX_LINE), input);
        assert_eq!(strict, vec![Owned::Error(ParseError::NotSse)]);
        let ok = all_splits(
            || SseParser::strict(DEFAULT_MAX_LINE),
            b"retry: 10\n:c\nid\ndata: 1\n\n",
        );
        assert_eq!(ok, vec![data("1", "retry: 10\n:c\nid\ndata: 1\n\n")]);
    }

    #[test]
    fn raw_bytes_cover_the_input() {
        let input: &[u8] = b":x\n\ndata: a\r\n\r\nevent: e\n\ndata: [DONE]\n\ntail";
        let got = all_splits(SseParser::default, input);
        let mut joined = Vec::new();
        for item in &got {
            match item {
                Owned::Data(_, raw) | Owned::Done(raw) | Owned::Empty(raw) => {
                    joined.extend_from_slice(raw)
                }
                Owned::Error(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(joined, input);
    }
}
