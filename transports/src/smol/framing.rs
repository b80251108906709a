//! [`FramingGuard`]: watches the bytes of a connection as hyper reads them and
//! flags request heads whose body framing is ambiguous.
//!
//! hyper follows RFC 9112 §6.3 to the letter: a request with both
//! `Content-Length` and `Transfer-Encoding: chunked` is read as chunked (and
//! the connection closed after it), a repeated `Content-Length` line with the
//! same value is merged, and `Transfer-Encoding: gzip, chunked` is accepted.
//! Each of these is how request smuggling starts when another proxy in front
//! reads the same bytes differently, so the server refuses them instead
//! (`400`, connection closed) before any handler runs. hyper drops the
//! evidence from the parsed request (the `Content-Length` line is removed),
//! so the check has to see the raw head.
//!
//! The guard follows the connection's framing: it reads each head, then
//! skips the body by its `Content-Length` or its chunks, to find the next
//! head. It never changes a byte. It only decides "refuse" for heads hyper
//! would accept; on anything hyper itself rejects (a malformed head, a bad
//! chunk, an over-long head) it stops following the connection, since hyper
//! answers and closes it anyway.

/// What the guard expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Inside a request head (the bytes are kept in `head`).
    Head,
    /// `n` more bytes of a `Content-Length` body.
    Body(u64),
    /// A chunk-size line: the size so far, whether a digit was seen, and
    /// whether the extensions after the size have started.
    Size { n: u64, digits: bool, ext: bool },
    /// `n` more bytes of chunk data.
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// Trailer lines after the last chunk; `empty` while the current line
    /// has had no byte but `\r`.
    Trailers { empty: bool },
    /// Not following any more (hyper rejects what came, or the connection
    /// was refused).
    Lost,
}

/// Follows the request framing of one connection.
#[derive(Debug)]
pub(crate) struct FramingGuard {
    state: State,
    head: Vec<u8>,
    max_head: usize,
    refuse: bool,
}

impl FramingGuard {
    /// A guard for a new connection; heads longer than `max_head` bytes are
    /// left to hyper (it answers `431`).
    pub(crate) fn new(max_head: usize) -> FramingGuard {
        FramingGuard {
            state: State::Head,
            head: Vec::new(),
            max_head,
            refuse: false,
        }
    }

    /// Whether a head with ambiguous framing was seen on this connection.
    pub(crate) fn refuse(&self) -> bool {
        self.refuse
    }

    /// Follows `bytes`, the next bytes read from the connection.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Lost => return,
                State::Head => {
                    let used = self.feed_head(bytes);
                    bytes = &bytes[used..];
                }
                State::Body(n) | State::Data(n) => {
                    let take = usize::try_from(n).map_or(bytes.len(), |n| n.min(bytes.len()));
                    let left = n - take as u64;
                    bytes = &bytes[take..];
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), l) => State::Body(l),
                        (_, 0) => State::DataEnd,
                        (_, l) => State::Data(l),
                    };
                }
                _ => {
                    self.state = self.chunk_byte(bytes[0]);
                    bytes = &bytes[1..];
                }
            }
        }
    }

    /// One byte of chunk framing (size line, data end, trailers).
    fn chunk_byte(&self, b: u8) -> State {
        match (self.state, b) {
            (State::Size { n, digits, .. }, b'\n') => {
                if !digits {
                    State::Lost
                } else if n == 0 {
                    State::Trailers { empty: true }
                } else {
                    State::Data(n)
                }
            }
            (State::Size { ext: true, .. }, _) => self.state,
            (
                State::Size {
                    n,
                    digits,
                    ext: false,
                },
                _,
            ) => match (b as char).to_digit(16) {
                Some(d) => match n.checked_mul(16).and_then(|n| n.checked_add(u64::from(d))) {
                    Some(n) => State::Size {
                        n,
                        digits: true,
                        ext: false,
                    },
                    None => State::Lost,
                },
                None if digits && matches!(b, b';' | b' ' | b'\t' | b'\r') => State::Size {
                    n,
                    digits,
                    ext: true,
                },
                None => State::Lost,
            },
            (State::DataEnd, b'\r') => State::DataEnd,
            (State::DataEnd, b'\n') => State::Size {
                n: 0,
                digits: false,
                ext: false,
            },
            (State::Trailers { empty }, b'\n') => {
                if empty {
                    State::Head
                } else {
                    State::Trailers { empty: true }
                }
            }
            (State::Trailers { .. }, b'\r') => self.state,
            (State::Trailers { .. }, _) => State::Trailers { empty: false },
            _ => State::Lost,
        }
    }

    /// Head bytes: keeps them until the blank line, then judges the head.
    /// Returns how many bytes of `bytes` belong to the head.
    fn feed_head(&mut self, bytes: &[u8]) -> usize {
        // Empty lines before a request line are skipped (as hyper does).
        if self.head.is_empty() {
            let skip = bytes
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            if skip > 0 {
                return skip;
            }
        }
        // Usually a whole head arrives in one read: judge it in place.
        if self.head.is_empty() {
            if let Some(end) = head_end(bytes, 0) {
                self.judged(judge(&bytes[..end]));
                return end;
            }
        }
        let start = self.head.len();
        self.head.extend_from_slice(bytes);
        // Look from a little before the new bytes, in case the blank line
        // was split between reads.
        let Some(end) = head_end(&self.head, start.saturating_sub(2)) else {
            if self.head.len() > self.max_head {
                self.head = Vec::new();
                self.state = State::Lost;
            }
            return bytes.len();
        };
        let next = judge(&self.head[..end]);
        self.head = Vec::new();
        self.judged(next);
        end - start
    }

    /// Moves on after a head was judged.
    fn judged(&mut self, next: Judged) {
        self.state = match next {
            Judged::Refuse => {
                self.refuse = true;
                State::Lost
            }
            Judged::Length(0) => State::Head,
            Judged::Length(n) => State::Body(n),
            Judged::Chunked => State::Size {
                n: 0,
                digits: false,
                ext: false,
            },
            Judged::Lost => State::Lost,
        };
    }
}

/// Where the head in `buf` ends (just past its blank line: the first
/// `\n\n` or `\n\r\n`), searching from `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// What a head says about its body.
#[derive(Debug, PartialEq, Eq)]
enum Judged {
    /// Ambiguous framing: refuse the request.
    Refuse,
    /// A body of this many bytes.
    Length(u64),
    /// A chunked body.
    Chunked,
    /// Something hyper rejects by itself.
    Lost,
}

/// Judges one whole head (request line, headers, blank line).
fn judge(head: &[u8]) -> Judged {
    let mut lengths = 0usize;
    let mut length = None;
    let mut encodings = 0usize;
    let mut chunked = false;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            length = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            encodings += 1;
            chunked = value.eq_ignore_ascii_case(b"chunked");
        }
    }
    match (lengths, encodings) {
        (0, 0) => Judged::Length(0),
        (1, 0) => length.map_or(Judged::Lost, Judged::Length),
        (0, 1) if chunked => Judged::Chunked,
        // Both framings, a repeated length, or an encoding other than a
        // lone `chunked` (which hyper might accept as `gzip, chunked`).
        _ => Judged::Refuse,
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(parts: &[&[u8]]) -> FramingGuard {
        let mut g = FramingGuard::new(16 * 1024);
        for p in parts {
            g.feed(p);
        }
        g
    }

    /// Feeds `bytes` one byte at a time as well as whole: same verdict.
    fn refused(bytes: &[u8]) -> bool {
        let whole = fed(&[bytes]).refuse();
        let mut g = FramingGuard::new(16 * 1024);
        for b in bytes {
            g.feed(std::slice::from_ref(b));
        }
        assert_eq!(whole, g.refuse(), "split feeding agrees");
        whole
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn plain_requests_pass() {
        assert!(!refused(GET));
        assert!(!refused(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"));
        assert!(!refused(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
        ));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(refused(head), "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn the_next_head_is_found_after_each_body() {
        // A length body, then a chunked body whose data holds a fake head,
        // then an ambiguous head: only the last one is judged and refused.
        let mut bytes = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n\r\n\r\nX".to_vec();
        bytes.extend_from_slice(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        let smuggled = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        bytes.extend_from_slice(format!("{:x}\r\n", smuggled.len()).as_bytes());
        bytes.extend_from_slice(smuggled);
        bytes.extend_from_slice(b"\r\n0\r\n\r\n");
        assert!(!refused(&bytes), "bodies are skipped, not judged");
        bytes.extend_from_slice(GET);
        assert!(!refused(&bytes));
        bytes
            .extend_from_slice(b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n");
        assert!(refused(&bytes));
    }

    #[test]
    fn the_head_ends_at_its_first_blank_line() {
        // A body holding a bare "\n\n" and header-like text is not read as
        // part of the head, whole or split at every byte.
        let req = b"POST / HTTP/1.1\r\nContent-Length: 34\r\n\r\nx\n\nContent-Length: 1\r\nA: b\r\n\r\n\r\n\r\n";
        assert_eq!(
            req.len() - req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4,
            34
        );
        assert!(!refused(req));
        let mut g = fed(&[req]);
        assert_eq!(g.state, State::Head, "the body was skipped by its length");
        g.feed(GET);
        assert_eq!(g.state, State::Head);
        assert_eq!(head_end(b"a\r\nb\r\n\r\nc\n\n", 0), Some(8));
        assert_eq!(head_end(b"a\nb\n\nc", 0), Some(5));
        assert_eq!(head_end(b"a\r\nb\r\n\r", 0), None);
    }

    #[test]
    fn what_hyper_rejects_is_left_to_hyper() {
        let g = fed(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]);
        assert_eq!(g.state, State::Lost);
        assert!(!g.refuse());
        let mut g = FramingGuard::new(64);
        g.feed(b"GET / HTTP/1.1\r\n");
        g.feed(&[b'a'; 100]);
        assert_eq!(g.state, State::Lost);
        assert!(g.head.is_empty(), "an over-long head is not kept");
    }
}
