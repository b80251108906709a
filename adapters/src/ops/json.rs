//! A tiny streaming JSON writer: appends to a `String` without building a
//! value tree, so the operator renderers stay cheap under the router lock.
//!
//! The writer tracks only whether a comma is due; callers open and close
//! objects and arrays in order (the renderers are short and tested against
//! `serde_json`, which catches any imbalance). Strings are escaped as
//! RFC 8259 asks: `"`, `\` and control characters; everything else is
//! written as UTF-8.

use std::fmt::{self, Display, Write};

/// Appends JSON to a `String`.
pub(crate) struct Json<'a> {
    out: &'a mut String,
    comma: bool,
}

impl<'a> Json<'a> {
    pub(crate) fn new(out: &'a mut String) -> Self {
        Json { out, comma: false }
    }

    fn sep(&mut self) {
        if self.comma {
            self.out.push(',');
        }
    }

    /// Starts an object (as a value).
    pub(crate) fn open(&mut self) {
        self.sep();
        self.out.push('{');
        self.comma = false;
    }

    /// Ends the current object.
    pub(crate) fn close(&mut self) {
        self.out.push('}');
        self.comma = true;
    }

    /// Starts an array (as a value).
    pub(crate) fn open_arr(&mut self) {
        self.sep();
        self.out.push('[');
        self.comma = false;
    }

    /// Ends the current array.
    pub(crate) fn close_arr(&mut self) {
        self.out.push(']');
        self.comma = true;
    }

    /// Writes `"k":`; the next call writes its value.
    pub(crate) fn key(&mut self, k: &str) {
        self.sep();
        self.out.push('"');
        escape_into(self.out, k);
        self.out.push_str("\":");
        self.comma = false;
    }

    /// A string value.
    pub(crate) fn str(&mut self, s: &str) {
        self.sep();
        self.out.push('"');
        escape_into(self.out, s);
        self.out.push('"');
        self.comma = true;
    }

    /// A string value from anything `Display` (escaped as it is written).
    pub(crate) fn display(&mut self, v: &dyn Display) {
        self.sep();
        self.out.push('"');
        // Writing into a String cannot fail.
        let _ = write!(Escaper(self.out), "{v}");
        self.out.push('"');
        self.comma = true;
    }

    /// An unsigned integer value.
    pub(crate) fn u64(&mut self, v: u64) {
        self.sep();
        let _ = write!(self.out, "{v}");
        self.comma = true;
    }

    /// A float value; `null` when not finite (JSON has no NaN or infinity).
    pub(crate) fn f64(&mut self, v: f64) {
        self.sep();
        if v.is_finite() {
            let _ = write!(self.out, "{v}");
        } else {
            self.out.push_str("null");
        }
        self.comma = true;
    }

    /// A duration in milliseconds with microsecond precision (exact decimal).
    pub(crate) fn ms(&mut self, ns: u64) {
        self.sep();
        let us = ns / 1_000;
        let _ = write!(self.out, "{}.{:03}", us / 1_000, us % 1_000);
        self.comma = true;
    }

    /// A boolean value.
    pub(crate) fn bool(&mut self, v: bool) {
        self.sep();
        self.out.push_str(if v { "true" } else { "false" });
        self.comma = true;
    }

    /// `null`.
    pub(crate) fn null(&mut self) {
        self.sep();
        self.out.push_str("null");
        self.comma = true;
    }

    /// `"k":"v"`.
    pub(crate) fn kv_str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.str(v);
    }

    /// `"k":v`.
    pub(crate) fn kv_u64(&mut self, k: &str, v: u64) {
        self.key(k);
        self.u64(v);
    }

    /// `"k":true|false`.
    pub(crate) fn kv_bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.bool(v);
    }

    /// `"k":<ms>` (see [`ms`](Self::ms)).
    pub(crate) fn kv_ms(&mut self, k: &str, ns: u64) {
        self.key(k);
        self.ms(ns);
    }
}

/// Appends `s` JSON-escaped (without the quotes).
pub(crate) fn escape_into(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // `i` sits on an ASCII byte, hence on a char boundary.
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// A `fmt::Write` that JSON-escapes what goes through it.
struct Escaper<'a>(&'a mut String);

impl Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_parse_and_strings_round_trip() {
        let tricky = "a\"b\\c\nd\u{1}e\u{7f}é🚀";
        let mut s = String::new();
        let mut j = Json::new(&mut s);
        j.open();
        j.kv_str("s", tricky);
        j.key("arr");
        j.open_arr();
        j.u64(1);
        j.open();
        j.kv_bool("t", true);
        j.close();
        j.null();
        j.f64(f64::NAN);
        j.f64(1.5);
        j.display(&format_args!("x{}\"", 3));
        j.close_arr();
        j.kv_ms("ms", 1_234_567_890);
        j.kv_ms("zero", 999);
        j.close();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["s"], tricky);
        assert_eq!(v["arr"][0], 1);
        assert_eq!(v["arr"][1]["t"], true);
        assert!(v["arr"][2].is_null());
        assert!(v["arr"][3].is_null(), "NaN must become null");
        assert_eq!(v["arr"][4], 1.5);
        assert_eq!(v["arr"][5], "x3\"");
        assert_eq!(v["ms"], 1234.567);
        assert_eq!(v["zero"], 0.0);
        assert!(s.contains("\\u0001"), "{s}");
    }
}
