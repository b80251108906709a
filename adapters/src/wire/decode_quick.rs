//! The quick path of [`decode`](super::decode): the common request decoded
//! without building a `serde_json::Value` tree.
//!
//! One strict validating scan ([`scan_members_strict`]) proves the body a
//! JSON object that `serde_json::Value` would parse; then only the fields
//! decode checks are looked at, in place, and strings are decoded only
//! where they hold escapes. The client's bytes are kept: a node of the
//! same kind gets them with `model` and `stream` patched
//! ([`Raw::patched`]); a translation parses them into a map on first use.
//!
//! It is conservative: it gives up (and the full decode runs, giving the
//! same answer it always gave, error or not) on anything it does not
//! prove, and in particular on every request the full decode refuses, on
//! a top-level key written with escapes or given twice, and on escaped
//! keys in the objects it looks into. Whatever it accepts, the full decode
//! accepts with the same model, stream flag, session and prefix hashes;
//! the fuzz target `decode` checks this on every input.

use std::borrow::Cow;
use std::ops::Range;

use super::decode::{Blocks, UPSTREAM_KEYS};
use super::json::{Members, array_items, scan_members_strict, skip_ws};
use super::{Endpoint, Front};

/// Most top-level members the quick path takes.
const MAX_MEMBERS: usize = 32;

/// The client's bytes and where its top-level `model` and `stream` values
/// are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Raw {
    pub(crate) bytes: Vec<u8>,
    model: Range<usize>,
    stream: Option<Range<usize>>,
}

impl Raw {
    /// The body with `model` replaced by `node_model` and, when `stream` is
    /// `Some`, the `stream` value replaced (or added at the end).
    pub(crate) fn patched(&self, node_model: &str, stream: Option<bool>) -> Vec<u8> {
        let b = &self.bytes;
        let mut out = Vec::with_capacity(b.len() + node_model.len() + 16);
        let literal = |s: bool| if s { &b"true"[..] } else { &b"false"[..] };
        let mut at = 0;
        // The two edits in the order they appear.
        let mut edits: [(Range<usize>, Option<bool>); 2] =
            [(self.model.clone(), None), (0..0, None)];
        let mut n = 1;
        if let (Some(r), Some(s)) = (&self.stream, stream) {
            edits[1] = (r.clone(), Some(s));
            n = 2;
            if edits[1].0.start < edits[0].0.start {
                edits.swap(0, 1);
            }
        }
        for (r, s) in &edits[..n] {
            out.extend_from_slice(&b[at..r.start]);
            match s {
                Some(s) => out.extend_from_slice(literal(*s)),
                None => super::json::write(&mut out, node_model),
            }
            at = r.end;
        }
        match (self.stream.is_none(), stream) {
            (true, Some(s)) => {
                // Before the closing brace (the object has `model`, so it is
                // not empty).
                let close = b.iter().rposition(|&c| c == b'}').unwrap_or(b.len());
                out.extend_from_slice(&b[at..close]);
                out.extend_from_slice(b",\"stream\":");
                out.extend_from_slice(literal(s));
                out.extend_from_slice(&b[close..]);
            }
            _ => out.extend_from_slice(&b[at..]),
        }
        out
    }
}

/// What the quick path found.
pub(crate) struct Quick {
    pub(crate) model: String,
    pub(crate) stream: bool,
    pub(crate) session: Option<String>,
    pub(crate) prefix_blocks: Vec<u64>,
    pub(crate) raw: Raw,
}

/// The top-level members of the body, by key.
struct Top<'a> {
    b: &'a [u8],
    members: [(Range<usize>, Range<usize>); MAX_MEMBERS],
    len: usize,
}

impl<'a> Top<'a> {
    fn get(&self, key: &str) -> Option<Range<usize>> {
        self.members[..self.len]
            .iter()
            .find(|(k, _)| &self.b[k.clone()] == key.as_bytes())
            .map(|(_, v)| v.clone())
    }
}

/// The body decoded for `endpoint`, or `None` to leave it to the full
/// decode.
pub(crate) fn decode(endpoint: Endpoint, b: &[u8]) -> Option<Quick> {
    let mut top = Top {
        b,
        members: std::array::from_fn(|_| (0..0, 0..0)),
        len: 0,
    };
    let mut plain = true;
    scan_members_strict(b, |key, escaped, value| {
        if escaped || top.len == MAX_MEMBERS {
            plain = false;
            return;
        }
        // The key's range, from its position in `b`.
        let start = key.as_ptr() as usize - b.as_ptr() as usize;
        top.members[top.len] = (start..start + key.len(), value);
        top.len += 1;
    })?;
    if !plain {
        return None;
    }
    let keys = &top.members[..top.len];
    for (i, (k, _)) in keys.iter().enumerate() {
        let key = &b[k.clone()];
        if is_upstream_key(key) || keys[..i].iter().any(|(o, _)| &b[o.clone()] == key) {
            return None;
        }
    }
    let model_range = top.get("model")?;
    let model = string(b, model_range.clone())?;
    if model.is_empty() {
        return None;
    }
    let front = endpoint.front();
    let mut blocks = Blocks::new();
    let stream = match endpoint {
        Endpoint::ChatCompletions | Endpoint::OllamaChat => {
            messages(&top, front, &mut blocks)?;
            stream_flag(&top, front == Front::Ollama)?
        }
        Endpoint::OllamaGenerate => {
            let system = optional_string_range(&top, "system")?;
            let prompt = optional_string_range(&top, "prompt")?;
            if let Some(r) = top.get("images").filter(|r| !is_null(b, r)) {
                if !array_items(b, r)?.all(|i| is_string(b, &i)) {
                    return None;
                }
            }
            if let Some(system) = system {
                blocks.feed(b"system\x1f");
                feed_string(&mut blocks, b, system)?;
                blocks.feed(&[0x1e]);
            }
            blocks.feed(b"user\x1f");
            if let Some(prompt) = prompt {
                feed_string(&mut blocks, b, prompt)?;
            }
            blocks.feed(&[0x1e]);
            stream_flag(&top, true)?
        }
        Endpoint::Embeddings => {
            input(&top, true)?;
            false
        }
        Endpoint::OllamaEmbed => {
            input(&top, false)?;
            false
        }
        Endpoint::OllamaEmbeddings => {
            if !is_string(b, &top.get("prompt")?) {
                return None;
            }
            false
        }
    };
    if front == Front::Ollama {
        if let Some(r) = top.get("options") {
            if b[r.start] != b'{' && !is_null(b, &r) {
                return None;
            }
        }
    }
    let session = match optional_string(&top, "session_id")? {
        Some(s) if !s.is_empty() => Some(s.into_owned()),
        _ => optional_string(&top, "user")?
            .filter(|s| !s.is_empty())
            .map(Cow::into_owned),
    };
    Some(Quick {
        model: model.into_owned(),
        stream,
        session,
        prefix_blocks: blocks.finish(),
        raw: Raw {
            bytes: b.to_vec(),
            model: model_range,
            stream: if endpoint.op_is_embed() {
                None
            } else {
                top.get("stream")
            },
        },
    })
}

/// Whether `key` names an upstream (see [`UPSTREAM_KEYS`]): compared as the
/// full decode does, without `_` and `-` and in lower case.
fn is_upstream_key(key: &[u8]) -> bool {
    let mut norm = [0u8; 16];
    let mut n = 0;
    for &c in key.iter().filter(|&&c| c != b'_' && c != b'-') {
        if n == norm.len() {
            return false;
        }
        norm[n] = c.to_ascii_lowercase();
        n += 1;
    }
    UPSTREAM_KEYS.iter().any(|k| k.as_bytes() == &norm[..n])
}

fn is_null(b: &[u8], r: &Range<usize>) -> bool {
    &b[r.clone()] == b"null"
}

/// Whether the value at `b[r]` is a string (the strict scan has already
/// proved it decodes).
fn is_string(b: &[u8], r: &Range<usize>) -> bool {
    b[r.start] == b'"'
}

/// The string at `b[r]`, decoded; `None` for another type or an escape
/// serde would refuse.
fn string(b: &[u8], r: Range<usize>) -> Option<Cow<'_, str>> {
    let v = &b[r];
    if v.first() != Some(&b'"') {
        return None;
    }
    let inner = &v[1..v.len() - 1];
    if inner.contains(&b'\\') {
        serde_json::from_slice::<String>(v).ok().map(Cow::Owned)
    } else {
        std::str::from_utf8(inner).ok().map(Cow::Borrowed)
    }
}

/// A field that is absent, null or a string: `Some(None)` or
/// `Some(Some(range))`; `None` for another type.
fn optional_string_range(top: &Top<'_>, key: &str) -> Option<Option<Range<usize>>> {
    match top.get(key) {
        None => Some(None),
        Some(r) if is_null(top.b, &r) => Some(None),
        Some(r) => is_string(top.b, &r).then_some(Some(r)),
    }
}

/// A field that is absent, null or a string: `Some(None)`, `Some(Some(s))`;
/// `None` for another type.
fn optional_string<'a>(top: &Top<'a>, key: &str) -> Option<Option<Cow<'a, str>>> {
    match top.get(key) {
        None => Some(None),
        Some(r) if is_null(top.b, &r) => Some(None),
        Some(r) => string(top.b, r).map(Some),
    }
}

fn stream_flag(top: &Top<'_>, default: bool) -> Option<bool> {
    match top.get("stream").map(|r| &top.b[r]) {
        None | Some(b"null") => Some(default),
        Some(b"true") => Some(true),
        Some(b"false") => Some(false),
        Some(_) => None,
    }
}

/// The last value of each of `keys` among the members of the object at
/// `b[r]`, as a map keeps them, in one pass; `None` when `b[r]` is not an
/// object or has an escaped key (it might spell one of `keys`).
fn fields<const N: usize>(
    b: &[u8],
    r: Range<usize>,
    keys: [&str; N],
) -> Option<[Option<Range<usize>>; N]> {
    fields_and_end(b, r, keys).map(|(found, _)| found)
}

/// [`fields`], and where the object ends.
fn fields_and_end<const N: usize>(
    b: &[u8],
    r: Range<usize>,
    keys: [&str; N],
) -> Option<([Option<Range<usize>>; N], usize)> {
    let mut members = Members::of(b, r)?;
    let mut found = std::array::from_fn(|_| None);
    for (k, v) in members.by_ref() {
        if k.contains(&b'\\') {
            return None;
        }
        if let Some(n) = keys.iter().position(|key| k == key.as_bytes()) {
            found[n] = Some(v);
        }
    }
    Some((found, members.end()?))
}

fn field(b: &[u8], r: Range<usize>, key: &str) -> Option<Option<Range<usize>>> {
    fields(b, r, [key]).map(|[f]| f)
}

/// Calls `each` with [`fields`] of every element of the array at `b[r]`,
/// which must all be objects, walking each element once; the count of
/// elements, or `None` when `b[r]` is not such an array or `each` fails.
fn each_object<const N: usize>(
    b: &[u8],
    r: Range<usize>,
    keys: [&str; N],
    mut each: impl FnMut([Option<Range<usize>>; N]) -> Option<()>,
) -> Option<usize> {
    if b[r.start] != b'[' {
        return None;
    }
    let mut i = skip_ws(b, r.start + 1);
    let mut count = 0;
    while i < r.end && b[i] != b']' {
        let (found, end) = fields_and_end(b, i..r.end, keys)?;
        each(found)?;
        count += 1;
        i = skip_ws(b, end);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
    }
    Some(count)
}

/// Feeds the string at `b[r]`, decoded, to `blocks`, only as far as they
/// still take bytes: a long prompt is not decoded past its first blocks.
/// `None` unless `b[r]` is a string (already known to be valid).
fn feed_string(blocks: &mut Blocks, b: &[u8], r: Range<usize>) -> Option<()> {
    if b[r.start] != b'"' {
        return None;
    }
    let s = &b[r.start + 1..r.end - 1];
    let mut i = 0;
    while i < s.len() && blocks.room() > 0 {
        let window = &s[i..s.len().min(i + blocks.room())];
        let run = window
            .iter()
            .position(|&c| c == b'\\')
            .unwrap_or(window.len());
        blocks.feed(&window[..run]);
        i += run;
        if s.get(i) == Some(&b'\\') {
            let (bytes, len, used) = unescape(&s[i..])?;
            blocks.feed(&bytes[..len]);
            i += used;
        }
    }
    Some(())
}

/// The escape at the start of `s`: its UTF-8 bytes, how many there are and
/// how many bytes of `s` it took (a surrogate pair is one character).
fn unescape(s: &[u8]) -> Option<([u8; 4], usize, usize)> {
    let hex = |h: &[u8]| -> Option<u32> {
        u32::from_str_radix(std::str::from_utf8(h.get(..4)?).ok()?, 16).ok()
    };
    let (c, used) = match *s.get(1)? {
        b'"' => ('"', 2),
        b'\\' => ('\\', 2),
        b'/' => ('/', 2),
        b'b' => ('\u{8}', 2),
        b'f' => ('\u{c}', 2),
        b'n' => ('\n', 2),
        b'r' => ('\r', 2),
        b't' => ('\t', 2),
        b'u' => {
            let hi = hex(s.get(2..)?)?;
            if (0xd800..0xdc00).contains(&hi) {
                if s.get(6..8)? != b"\\u" {
                    return None;
                }
                let lo = hex(s.get(8..)?)?;
                if !(0xdc00..0xe000).contains(&lo) {
                    return None;
                }
                (
                    char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))?,
                    12,
                )
            } else {
                (char::from_u32(hi)?, 6)
            }
        }
        _ => return None,
    };
    let mut bytes = [0u8; 4];
    let len = c.encode_utf8(&mut bytes).len();
    Some((bytes, len, used))
}

fn messages(top: &Top<'_>, front: Front, blocks: &mut Blocks) -> Option<()> {
    let b = top.b;
    let r = match top.get("messages") {
        None => return (front == Front::Ollama).then_some(()),
        Some(r) if is_null(b, &r) => return (front == Front::Ollama).then_some(()),
        Some(r) => r,
    };
    let count = each_object(
        b,
        r,
        ["role", "content", "images"],
        |[role, content, images]| {
            let role = string(b, role?)?;
            blocks.feed(role.as_bytes());
            blocks.feed(&[0x1f]);
            match (front, content) {
                (_, None) => {}
                (_, Some(c)) if is_null(b, &c) => {}
                (_, Some(c)) if b[c.start] == b'"' => feed_string(blocks, b, c)?,
                (Front::OpenAi, Some(c)) => parts(b, c, blocks)?,
                (Front::Ollama, Some(_)) => return None,
            }
            blocks.feed(&[0x1e]);
            if front == Front::Ollama {
                if let Some(images) = images.filter(|r| !is_null(b, r)) {
                    for image in array_items(b, images)? {
                        feed_string(blocks, b, image)?;
                    }
                }
            }
            Some(())
        },
    )?;
    (count > 0 || front == Front::Ollama).then_some(())
}

fn parts(b: &[u8], r: Range<usize>, blocks: &mut Blocks) -> Option<()> {
    each_object(
        b,
        r,
        ["type", "text", "image_url"],
        |[ty, text, image_url]| {
            let ty = string(b, ty?)?;
            if ty == "text" {
                feed_string(blocks, b, text?)?;
            } else {
                let url = match image_url {
                    Some(u) if b[u.start] == b'{' => field(b, u, "url")?,
                    _ => None,
                };
                match url {
                    Some(u) if b[u.start] == b'"' => feed_string(blocks, b, u)?,
                    _ => blocks.feed(ty.as_bytes()),
                }
            }
            Some(())
        },
    )
    .map(drop)
}

/// Embedding input: a string, or an array whose elements all have the
/// first one's form (strings; with `tokens_allowed`, token ids or arrays
/// of token ids, and not empty).
fn input(top: &Top<'_>, tokens_allowed: bool) -> Option<()> {
    let b = top.b;
    let r = top.get("input")?;
    if is_string(b, &r) {
        return Some(());
    }
    let items: Vec<Range<usize>> = array_items(b, r)?.collect();
    let Some(first) = items.first() else {
        return (!tokens_allowed).then_some(());
    };
    let token = |r: &Range<usize>| {
        let v = &b[r.clone()];
        v.len() <= 10
            && v.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|t| t <= u64::from(u32::MAX))
    };
    let tokens = |r: &Range<usize>| {
        array_items(b, r.clone()).is_some_and(|mut items| items.all(|t| token(&t)))
    };
    let ok = match b[first.start] {
        b'"' => items.iter().all(|i| is_string(b, i)),
        b'0'..=b'9' if tokens_allowed => items.iter().all(token),
        b'[' if tokens_allowed => items.iter().all(tokens),
        _ => false,
    };
    ok.then_some(())
}
