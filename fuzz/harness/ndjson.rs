//! The JSON-lines splitter and the NDJSON side of the stream translator: any
//! bytes, fed whole and in chunks of varying sizes, must give the same lines
//! (and the same translated output), never panic, and keep the splitter's
//! invariants.
//!
//! Input layout: byte 0 picks the line limit, byte 1 seeds the chunk sizes,
//! the rest is the stream.

use drover::wire::{Endpoint, NdjsonParser, StreamTranslator, decode};
use drover_core::node::NodeKind;

/// Chunk lengths 1..=17 from a small xorshift.
fn chunks(input: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut x = u32::from(seed) | 0x100;
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (x % 17 + 1) as usize;
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

fn parse(max: usize, parts: &[&[u8]]) -> (Vec<Vec<u8>>, Option<String>) {
    let mut p = NdjsonParser::new(max);
    let mut lines = Vec::new();
    let drain = |p: &mut NdjsonParser, lines: &mut Vec<Vec<u8>>| loop {
        match p.next_line() {
            Ok(Some(line)) => {
                assert!(line.len() <= max, "line over the limit");
                assert!(!line.contains(&b'\n'));
                assert!(!line.trim_ascii().is_empty(), "blank lines are skipped");
                lines.push(line.to_vec());
            }
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        }
    };
    for part in parts {
        p.feed(part);
        if let Some(e) = drain(&mut p, &mut lines) {
            assert!(p.next_line().is_err(), "a failed parser stays failed");
            return (lines, Some(e));
        }
    }
    p.finish();
    let e = drain(&mut p, &mut lines);
    if e.is_none() {
        assert_eq!(p.pending(), 0);
    }
    (lines, e)
}

/// What a translator wrote is well-formed in the client's format, even when
/// the upstream turned out bad: SSE events whose data is JSON or `[DONE]`,
/// or JSON lines.
fn check_output(endpoint: Endpoint, out: &[u8]) {
    if endpoint == Endpoint::ChatCompletions {
        let mut p = drover::wire::SseParser::new(usize::MAX);
        p.feed(out);
        p.finish();
        while let Some(item) = p.next_item().expect("no limit") {
            if let drover::wire::SseItem::Data { data, .. } = item {
                assert_json(data, "event data");
            }
        }
    } else {
        assert!(out.is_empty() || out.ends_with(b"\n"));
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert_json(line, "a line");
        }
    }
}

fn translate(endpoint: Endpoint, parts: &[&[u8]]) -> (Vec<u8>, bool) {
    let body: &[u8] = match endpoint {
        Endpoint::OllamaGenerate => br#"{"model":"c","prompt":"p"}"#,
        _ => br#"{"model":"c","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}"#,
    };
    let inb = decode(endpoint, body).expect("fixed valid body");
    let mut t = StreamTranslator::with_max_line(&inb, NodeKind::Ollama, 256);
    let mut out = Vec::new();
    for part in parts {
        if t.push(part, &mut out).is_err() {
            check_output(endpoint, &out);
            return (out, false);
        }
    }
    let ok = t.finish(&mut out).is_ok();
    check_output(endpoint, &out);
    if ok && endpoint == Endpoint::ChatCompletions {
        assert!(out.ends_with(b"data: [DONE]\n\n"));
    }
    (out, ok)
}

/// Panics unless `b` is well-formed JSON. Syntax only, as drover checks it:
/// drover passes upstream JSON through unchanged, and a number beyond `f64`
/// (`17e4566896`, first found by this target) is valid JSON that
/// `serde_json::Value` refuses.
fn assert_json(b: &[u8], what: &str) {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(b) {
        panic!("{what} is not JSON: {e}: {:?}", String::from_utf8_lossy(b));
    }
}

/// Checks one fuzz input; panics on a finding.
pub fn check(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let max = 4 + usize::from(data[0]) * 2;
    let input = &data[2..];
    let split = chunks(input, data[1]);
    let whole = parse(max, &[input]);
    assert_eq!(parse(max, &split), whole);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(parse(max, &bytes), whole);
    for endpoint in [
        Endpoint::ChatCompletions,
        Endpoint::OllamaChat,
        Endpoint::OllamaGenerate,
    ] {
        assert_eq!(translate(endpoint, &[input]), translate(endpoint, &split));
    }
}
