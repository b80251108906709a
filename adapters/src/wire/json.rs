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

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The index just past the string that starts with the quote at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
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

/// Appends `b` to `out` with the top-level `model` string replaced by
/// `model` (already JSON-escaped, quotes included). `b` goes out unchanged
/// when it has no such field or already names `model`.
pub(crate) fn write_with_model(b: &[u8], quoted_model: &[u8], out: &mut Vec<u8>) {
    match top_level_string(b, "model") {
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
