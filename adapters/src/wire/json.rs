//! Small JSON helpers: infallible serialisation into a buffer, type names for
//! error messages, a top-level field scanner (so pass-through replies can get
//! their `model` replaced without a parse and re-serialisation), RFC 3339
//! timestamps and base64.

use std::ops::Range;

use serde::Serialize;
use serde_json::Value;

/// Appends `value` as compact JSON to `out`.
pub(crate) fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect(
        "serialising into a Vec cannot fail for drover's types and serde_json::Value: \
         every map key is a string and no Serialize impl reports an error",
    );
}

/// `value` as compact JSON.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write(&mut out, value);
    out
}

/// The JSON type name of `v`, for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The index just past the string that starts with the quote at `i`.
/// Not a check: it skips eight bytes at a time to the next quote,
/// backslash or control byte.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        if let Some(chunk) = b.get(j..j + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let mask = special_mask(u64::from_le_bytes(word));
            if mask == 0 {
                j += 8;
                continue;
            }
            j += (mask.trailing_zeros() / 8) as usize;
        }
        match *b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The index just past the value that starts at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// The members of the object at `b[r]`, which must already be known to be
/// valid JSON: each member's raw key (between its quotes, escapes not
/// decoded) and the range of its value in `b`. Ends early (and `complete`
/// stays false) on anything unexpected.
pub(crate) struct Members<'a> {
    b: &'a [u8],
    i: usize,
    end: usize,
    /// Set once the closing brace was reached.
    pub(crate) complete: bool,
}

impl<'a> Members<'a> {
    /// `None` unless `b[r]` starts with `{`.
    pub(crate) fn of(b: &'a [u8], r: Range<usize>) -> Option<Members<'a>> {
        (b.get(r.start) == Some(&b'{')).then(|| Members {
            b,
            i: skip_ws(b, r.start + 1),
            end: r.end,
            complete: false,
        })
    }
}

impl Members<'_> {
    /// Just past the closing brace, once the iteration reached it.
    pub(crate) fn end(&self) -> Option<usize> {
        self.complete.then_some(self.i + 1)
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a [u8], Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.b;
        if self.i >= self.end || self.complete {
            return None;
        }
        if b[self.i] == b'}' {
            self.complete = true;
            return None;
        }
        if b[self.i] != b'"' {
            self.i = self.end;
            return None;
        }
        let key_end = string_end(b, self.i)?;
        let key = &b[self.i + 1..key_end - 1];
        let colon = skip_ws(b, key_end);
        if b.get(colon) != Some(&b':') {
            self.i = self.end;
            return None;
        }
        let start = skip_ws(b, colon + 1);
        let end = value_end(b, start)?;
        self.i = skip_ws(b, end);
        if b.get(self.i) == Some(&b',') {
            self.i = skip_ws(b, self.i + 1);
        }
        Some((key, start..end))
    }
}

/// The element ranges of the array at `b[r]`, which must already be known
/// to be valid JSON; `None` unless `b[r]` starts with `[`.
pub(crate) fn array_items(b: &[u8], r: Range<usize>) -> Option<impl Iterator<Item = Range<usize>>> {
    if b.get(r.start) != Some(&b'[') {
        return None;
    }
    let mut i = skip_ws(b, r.start + 1);
    Some(std::iter::from_fn(move || {
        if i >= r.end || b[i] == b']' {
            return None;
        }
        let start = i;
        let end = value_end(b, start)?;
        i = skip_ws(b, end);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
        Some(start..end)
    }))
}

/// The byte range (quotes included) of the string value of the top-level
/// field `key` of the JSON object `b`, scanning only as far as that field.
/// `None` when `b` is not an object, has no such field before a syntax
/// problem, or the field's value is not a string. Keys are compared as raw
/// bytes (a key spelled with escapes does not match).
pub(crate) fn top_level_string(b: &[u8], key: &str) -> Option<Range<usize>> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let is_key = &b[i + 1..key_end - 1] == key.as_bytes();
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let end = value_end(b, i)?;
        if is_key {
            return (b[i] == b'"').then_some(i..end);
        }
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            _ => return None,
        }
    }
}

/// How deep [`scan_object`] follows nested arrays and objects (serde_json's
/// own recursion limit); anything deeper is left to the full parse.
const MAX_DEPTH: u32 = 128;

/// What [`scan_object`] found at the top level of a JSON object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopLevel {
    /// The value of the first top-level `model` field when it is a string
    /// (quotes included); a key written with escapes does not count.
    pub model: Option<Range<usize>>,
    /// The top-level `done` field, when it is `true` or `false`.
    pub done: Option<bool>,
    /// Something only the full parse can judge: a non-null `error`, a `done`
    /// that is not a boolean, `done` or `error` given twice, or a top-level
    /// key written with escapes (it might spell one of those).
    pub unusual: bool,
}

/// One validating pass over `b`, which must be exactly one JSON object
/// (whitespace around it allowed) in valid UTF-8, reporting its top-level
/// `model`, `done` and `error` fields.
///
/// This is the fast path of pass-through streams: one scan instead of a
/// serde parse, a UTF-8 check and a field search per event. It is
/// conservative: whatever it accepts, serde_json accepts too (RFC 8259
/// numbers, literals and strings, no control characters in strings, only
/// the standard escapes), and so does `str::from_utf8`. `None` means "not
/// proven valid": malformed JSON, a value that is not an object, invalid
/// UTF-8, or nesting deeper than 128. Callers then take the full parse,
/// which gives the precise error.
///
/// ```
/// use drover::wire::scan_object;
///
/// let event = br#"{"choices":[{"delta":{"content":"hi"}}],"model":"m"}"#;
/// let top = scan_object(event).expect("a valid object");
/// assert_eq!(&event[top.model.expect("has a model")], br#""m""#);
/// assert_eq!(top.done, None);
/// assert!(!top.unusual);
/// assert!(scan_object(br#"{"a":01}"#).is_none());
/// assert!(scan_object(b"[1,2]").is_none());
/// ```
pub fn scan_object(b: &[u8]) -> Option<TopLevel> {
    let mut top = TopLevel::default();
    let (mut seen_done, mut seen_error) = (false, false);
    scan_members(b, |key, escaped, range| {
        let value = &b[range.clone()];
        if escaped {
            top.unusual = true;
            return;
        }
        match key {
            b"model" if top.model.is_none() && value[0] == b'"' => top.model = Some(range),
            b"done" => {
                top.unusual |= seen_done;
                seen_done = true;
                match value {
                    b"true" => top.done = Some(true),
                    b"false" => top.done = Some(false),
                    _ => top.unusual = true,
                }
            }
            b"error" => {
                top.unusual |= seen_error || value != b"null";
                seen_error = true;
            }
            _ => {}
        }
    })?;
    Some(top)
}

/// The validating pass of [`scan_object`], calling `member(key, escaped,
/// value)` for each top-level member in order: the key's bytes between its
/// quotes (escapes not decoded), whether it holds escapes, and the range of
/// its value in `b` (never empty). `None` when `b` is not proven to be one
/// valid JSON object; `member` may have been called for members before the
/// problem.
pub(crate) fn scan_members(b: &[u8], member: impl FnMut(&[u8], bool, Range<usize>)) -> Option<()> {
    members_checked::<false>(b, member)
}

/// [`scan_members`] that also refuses what `serde_json::Value` refuses but
/// a skipping parse takes, so that whatever it accepts parses as a `Value`:
/// a number with an exponent or of over [`STRICT_NUMBER_LEN`] characters
/// (it might not fit an `f64`), a `\u` escape of a surrogate that is not
/// half of a pair, and nesting deeper than [`STRICT_DEPTH`].
pub(crate) fn scan_members_strict(
    b: &[u8],
    member: impl FnMut(&[u8], bool, Range<usize>),
) -> Option<()> {
    members_checked::<true>(b, member)
}

/// Longest number [`scan_members_strict`] takes: far below the 309 digits
/// past which an integer overflows an `f64`.
const STRICT_NUMBER_LEN: usize = 300;
/// Deepest nesting [`scan_members_strict`] takes, counting the top-level
/// object: half of serde_json's limit.
const STRICT_DEPTH: u32 = 64;

fn members_checked<const STRICT: bool>(
    b: &[u8],
    mut member: impl FnMut(&[u8], bool, Range<usize>),
) -> Option<()> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (key_end, escaped) = checked_string_end::<STRICT>(b, i)?;
        let key = &b[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = checked_value_end::<STRICT>(b, start)?;
        member(key, escaped, start..end);
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return (skip_ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is a quote, a backslash or below
/// 0x20. The lowest set bit is exact (the usual zero-byte trick can only
/// flag bytes wrongly above a true one), so it locates the first such byte.
fn special_mask(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | w.wrapping_sub(ONES * 0x20) & !w & HIGH
}

/// Validates the string whose opening quote is at `i`: returns the index
/// just past its closing quote and whether it holds escapes. `None` for a
/// control character, a bad escape, invalid UTF-8 or no closing quote.
fn checked_string_end<const STRICT: bool>(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = i + 1;
    let (mut escaped, mut non_ascii) = (false, false);
    loop {
        // Eight bytes at a time, jumping to the first one that matters.
        let c = if let Some(chunk) = b.get(j..j + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let w = u64::from_le_bytes(word);
            let mask = special_mask(w);
            if mask == 0 {
                non_ascii |= w & HIGH != 0;
                j += 8;
                continue;
            }
            let k = (mask.trailing_zeros() / 8) as usize;
            non_ascii |= w & HIGH & ((1u64 << (8 * k)) - 1) != 0;
            j += k;
            b[j]
        } else {
            let c = *b.get(j)?;
            if c >= 0x20 && c != b'"' && c != b'\\' {
                non_ascii |= c >= 0x80;
                j += 1;
                continue;
            }
            c
        };
        match c {
            b'"' => {
                if non_ascii && std::str::from_utf8(&b[i + 1..j]).is_err() {
                    return None;
                }
                return Some((j + 1, escaped));
            }
            b'\\' => {
                escaped = true;
                match *b.get(j + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                    b'u' => {
                        let hex = b.get(j + 2..j + 6)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        // D800 to DFFF: a surrogate, taken only as the high
                        // half of a pair.
                        if STRICT && hex[0].eq_ignore_ascii_case(&b'd') && hex[1] >= b'8' {
                            let high = matches!(hex[1], b'8' | b'9' | b'a' | b'b' | b'A' | b'B');
                            let low = b.get(j + 6..j + 12)?;
                            let low_ok = low.starts_with(b"\\u")
                                && low[2..].iter().all(u8::is_ascii_hexdigit)
                                && low[2].eq_ignore_ascii_case(&b'd')
                                && matches!(low[3], b'c'..=b'f' | b'C'..=b'F');
                            if !(high && low_ok) {
                                return None;
                            }
                            j += 6;
                        }
                        j += 6;
                    }
                    _ => return None,
                }
            }
            // A control character.
            _ => return None,
        }
    }
}

/// The index just past the number that starts at `i` (RFC 8259 grammar).
fn number_end<const STRICT: bool>(b: &[u8], mut i: usize) -> Option<usize> {
    let start = i;
    let digits = |b: &[u8], mut i: usize| {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(b, i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        if STRICT {
            return None;
        }
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(b, i)?;
    }
    (!STRICT || i - start <= STRICT_NUMBER_LEN).then_some(i)
}

/// Validates the value that starts at `i` and returns the index just past
/// it. Arrays and objects are walked without recursion; their nesting is a
/// bit stack (1 for an object), at most [`MAX_DEPTH`] deep.
fn checked_value_end<const STRICT: bool>(b: &[u8], mut i: usize) -> Option<usize> {
    // The strict limit counts the enclosing top-level object.
    let max_depth = if STRICT { STRICT_DEPTH - 1 } else { MAX_DEPTH };
    let mut objects: u128 = 0;
    let mut depth = 0u32;
    loop {
        // A value starts at `i`.
        match *b.get(i)? {
            open @ (b'{' | b'[') => {
                if depth == max_depth {
                    return None;
                }
                depth += 1;
                objects = objects << 1 | u128::from(open == b'{');
                i = skip_ws(b, i + 1);
                let close = if open == b'{' { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    objects >>= 1;
                    depth -= 1;
                    i += 1;
                } else {
                    if open == b'{' {
                        i = member_value_start::<STRICT>(b, i)?;
                    }
                    continue;
                }
            }
            b'"' => i = checked_string_end::<STRICT>(b, i)?.0,
            b't' => i = literal_end(b, i, b"true")?,
            b'f' => i = literal_end(b, i, b"false")?,
            b'n' => i = literal_end(b, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number_end::<STRICT>(b, i)?,
            _ => return None,
        }
        // A value ended at `i`: close containers until one has more.
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = skip_ws(b, i);
            let in_object = objects & 1 == 1;
            match (*b.get(i)?, in_object) {
                (b',', _) => {
                    i = skip_ws(b, i + 1);
                    if in_object {
                        i = member_value_start::<STRICT>(b, i)?;
                    }
                    break;
                }
                (b'}', true) | (b']', false) => {
                    objects >>= 1;
                    depth -= 1;
                    i += 1;
                }
                _ => return None,
            }
        }
    }
}

/// Checks an object member's `"key" :` at `i` and returns where its value
/// starts.
fn member_value_start<const STRICT: bool>(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = skip_ws(b, checked_string_end::<STRICT>(b, i)?.0);
    if b.get(i) != Some(&b':') {
        return None;
    }
    Some(skip_ws(b, i + 1))
}

fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// Appends `b` to `out` with the top-level `model` string replaced by
/// `model` (already JSON-escaped, quotes included). `b` goes out unchanged
/// when it has no such field or already names `model`.
pub(crate) fn write_with_model(b: &[u8], quoted_model: &[u8], out: &mut Vec<u8>) {
    write_with_model_at(b, top_level_string(b, "model"), quoted_model, out);
}

/// [`write_with_model`] with the range of `b`'s `model` string already
/// known (from [`top_level_string`] or [`scan_object`]).
pub(crate) fn write_with_model_at(
    b: &[u8],
    model: Option<Range<usize>>,
    quoted_model: &[u8],
    out: &mut Vec<u8>,
) {
    match model {
        Some(r) if &b[r.clone()] != quoted_model => {
            out.extend_from_slice(&b[..r.start]);
            out.extend_from_slice(quoted_model);
            out.extend_from_slice(&b[r.end..]);
        }
        _ => out.extend_from_slice(b),
    }
}

/// `s` as a JSON string, quotes included.
pub(crate) fn quoted(s: &str) -> Vec<u8> {
    to_vec(s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn digits(s: &[u8], r: Range<usize>) -> Option<i64> {
    let part = s.get(r)?;
    if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(part.iter().fold(0, |n, &c| n * 10 + i64::from(c - b'0')))
}

/// Unix seconds of an RFC 3339 timestamp such as Ollama's `created_at`
/// (`2024-05-01T12:34:56.123456789Z`, or with a `+hh:mm` offset).
pub(crate) fn rfc3339_to_unix(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(b, 0..4)?, digits(b, 5..7)?, digits(b, 8..10)?);
    let (h, mi, sec) = (digits(b, 11..13)?, digits(b, 14..16)?, digits(b, 17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let oh = digits(rest, 0..2)?;
            let om = digits(rest, 3..5)?;
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// `n` as 16 lower-case hex digits, zero-padded: `format!("{n:016x}")`
/// without the formatting machinery, for ids made on every call.
pub(crate) fn hex16(n: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = DIGITS[(n >> (60 - 4 * i) & 0xf) as usize];
    }
    out
}

/// `prefix` followed by [`hex16`] of `n`.
pub(crate) fn prefixed_hex(prefix: &str, n: u64) -> String {
    let mut s = String::with_capacity(prefix.len() + 16);
    s.push_str(prefix);
    // Hex digits are ASCII.
    s.extend(hex16(n).iter().map(|&b| char::from(b)));
    s
}

/// An RFC 3339 UTC timestamp (`YYYY-MM-DDTHH:MM:SSZ`) of Unix seconds.
pub(crate) fn unix_to_rfc3339(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Standard base64 (RFC 4648, with padding) of `bytes`, appended to `out`.
pub(crate) fn base64_into(bytes: &[u8], out: &mut String) {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, &c)| n | u32::from(c) << (16 - 8 * k));
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(TABLE[(n >> (18 - 6 * k) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_string_finds_only_top_level_keys() {
        let b = br#"{"a":{"model":"inner"},"list":[1,"x",{"model":"y"}], "model" : "m\"1","z":2}"#;
        let r = top_level_string(b, "model").expect("has a model");
        assert_eq!(&b[r], br#""m\"1""#);
        assert_eq!(top_level_string(br#"{"model":5}"#, "model"), None);
        assert_eq!(top_level_string(br#"{"x":"model","y":1}"#, "model"), None);
        assert_eq!(top_level_string(br#"[{"model":"a"}]"#, "model"), None);
        assert_eq!(top_level_string(br#"{"model":"a"#, "model"), None);
        assert_eq!(top_level_string(br#"{"a":tru"#, "model"), None);
        assert_eq!(top_level_string(b"", "model"), None);
        assert_eq!(
            top_level_string(br#"{"a":"\\","model":"q"}"#, "model"),
            Some(18..21)
        );
    }

    /// serde_json's verdict, as the stream translator's full parse gives it.
    fn serde_accepts(b: &[u8]) -> bool {
        serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok()
            && std::str::from_utf8(b).is_ok()
            && b.trim_ascii_start().first() == Some(&b'{')
    }

    #[test]
    fn scan_object_accepts_what_serde_accepts() {
        for ok in [
            &br#"{}"#[..],
            br#" { } "#,
            br#"{"a":1,"b":-0.5e+10,"c":[true,false,null,{"d":[]}],"e":"x\"\\\/\b\f\n\r\t\u00e9"}"#,
            br#"{"model":"m","done":true}"#,
            br#"{"error":null,"done":false}"#,
            "{\"t\":\"h\u{e9}llo w\u{f6}rld \u{1f600} and more than eight bytes\"}".as_bytes(),
            br#"{"n":[0,1,-1,10,1.5,1e5,1E-5,-0.0e0]}"#,
            b"{\t\"a\"\r\n:\n[ 1 , 2 ]\n}",
            br#"{"deep":[[[[[[[[[[{"x":[]}]]]]]]]]]]}"#,
        ] {
            assert!(
                serde_accepts(ok),
                "serde accepts {}",
                String::from_utf8_lossy(ok)
            );
            assert!(scan_object(ok).is_some(), "{}", String::from_utf8_lossy(ok));
        }
    }

    #[test]
    fn scan_object_rejects_what_serde_or_utf8_rejects() {
        for bad in [
            &b""[..],
            b"[]",
            b"\"s\"",
            b"1",
            b"{",
            b"{}x",
            b"{} {}",
            br#"{"a"}"#,
            br#"{"a":}"#,
            br#"{"a":1,}"#,
            br#"{,"a":1}"#,
            br#"{"a":[1,]}"#,
            br#"{"a":[1 2]}"#,
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":.5}"#,
            br#"{"a":1e}"#,
            br#"{"a":-}"#,
            br#"{"a":+1}"#,
            br#"{"a":tru}"#,
            br#"{"a":nul}"#,
            br#"{"a":True}"#,
            br#"{"a":"\x"}"#,
            br#"{"a":"\u12g4"}"#,
            br#"{"a":"unterminated}"#,
            b"{\"a\":\"tab\there\"}",
            b"{\"a\":\"new\nline in a long string\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"abcdefgh\xc3\"}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            br#"{"a":[}"#,
            br#"{"a":{]}"#,
            br#"{"a":[1]]}"#,
            br#"{1:2}"#,
            b"{\"a\":1}\x00",
        ] {
            assert!(
                !serde_accepts(bad),
                "serde rejects {}",
                String::from_utf8_lossy(bad)
            );
            assert_eq!(scan_object(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // Deeper than serde_json's limit: left to the full parse.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(scan_object(deep.as_bytes()), None);
        let at_limit = format!("{{\"a\":{}{}}}", "[".repeat(127), "]".repeat(127));
        assert!(scan_object(at_limit.as_bytes()).is_some());
    }

    #[test]
    fn scan_object_agrees_with_serde_wherever_a_special_byte_falls() {
        // Every position of a word for a quote, an escape, a control byte,
        // a UTF-8 sequence and a broken one, after strings of 0..20 bytes.
        let pieces: [&[u8]; 7] = [
            b"\\\"",
            b"\\u00e9",
            b"\t",
            "\u{e9}".as_bytes(),
            "\u{1f600}".as_bytes(),
            b"\xc3",
            b"\xff",
        ];
        let mut checked = 0;
        for len in 0..20 {
            for piece in pieces {
                for at in 0..=len {
                    let mut text = vec![b'a'; len];
                    text.splice(at..at, piece.iter().copied());
                    let mut doc = br#"{"k":""#.to_vec();
                    doc.extend_from_slice(&text);
                    doc.extend_from_slice(br#"","z":1}"#);
                    assert_eq!(
                        scan_object(&doc).is_some(),
                        serde_accepts(&doc),
                        "{}",
                        String::from_utf8_lossy(&doc)
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 7 * (1..=20).sum::<usize>());
    }

    #[test]
    fn scan_object_reports_model_done_and_what_needs_the_full_parse() {
        let b = br#"{"a":{"model":"inner"},"model":"m\"1","done":true,"model":"second"}"#;
        let top = scan_object(b).expect("valid");
        assert_eq!(top.model, top_level_string(b, "model"));
        assert_eq!(top.done, Some(true));
        assert!(!top.unusual);
        let plain = |b: &[u8]| scan_object(b).expect("valid");
        assert_eq!(plain(br#"{"model":5}"#).model, None);
        assert_eq!(plain(br#"{"done":false}"#).done, Some(false));
        assert!(!plain(br#"{"error":null}"#).unusual);
        for unusual in [
            &br#"{"error":"boom"}"#[..],
            br#"{"error":{"message":"boom"}}"#,
            br#"{"error":null,"error":null}"#,
            br#"{"done":1}"#,
            br#"{"done":null}"#,
            br#"{"done":true,"done":true}"#,
            br#"{"d\u006fne":true}"#,
        ] {
            assert!(
                plain(unusual).unusual,
                "{}",
                String::from_utf8_lossy(unusual)
            );
        }
    }

    #[test]
    fn write_with_model_replaces_or_copies() {
        let mut out = Vec::new();
        write_with_model(
            br#"{"id":1,"model":"node-x","n":2}"#,
            b"\"client\"",
            &mut out,
        );
        assert_eq!(out, br#"{"id":1,"model":"client","n":2}"#);
        out.clear();
        write_with_model(br#"{"model":"client"}"#, b"\"client\"", &mut out);
        assert_eq!(out, br#"{"model":"client"}"#);
        out.clear();
        write_with_model(br#"{"other":1}"#, b"\"client\"", &mut out);
        assert_eq!(out, br#"{"other":1}"#);
    }

    #[test]
    fn rfc3339_round_trips_and_rejects_garbage() {
        assert_eq!(rfc3339_to_unix("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_to_unix("2024-05-01T12:34:56.123456789Z"),
            Some(1_714_566_896)
        );
        assert_eq!(
            rfc3339_to_unix("2024-05-01T14:34:56+02:00"),
            Some(1_714_566_896)
        );
        assert_eq!(unix_to_rfc3339(1_714_566_896), "2024-05-01T12:34:56Z");
        assert_eq!(unix_to_rfc3339(0), "1970-01-01T00:00:00Z");
        for n in [0, 1, 0xab, 0x0123_4567_89ab_cdef, u64::MAX, 1 << 63] {
            assert_eq!(hex16(n), *format!("{n:016x}").as_bytes());
            assert_eq!(prefixed_hex("id-", n), format!("id-{n:016x}"));
        }
        for t in [0, 951_782_400, 1_709_164_800, 4_102_444_799] {
            assert_eq!(rfc3339_to_unix(&unix_to_rfc3339(t)), Some(t));
        }
        for bad in [
            "",
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "2024-05-01T00:00:00",
            "2024-05-01T00:00:00.Z",
            "2024-05-01T0a:00:00Z",
            "2024-05-01T00:00:00+0200",
        ] {
            assert_eq!(rfc3339_to_unix(bad), None, "{bad}");
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut s = String::new();
            base64_into(input.as_bytes(), &mut s);
            assert_eq!(s, want);
        }
    }
}
