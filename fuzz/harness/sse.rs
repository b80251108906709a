//! The SSE parser and the SSE side of the stream translator: any bytes, fed
//! whole and in chunks of varying sizes, must give the same items (and the
//! same translated output), never panic, and keep the parser's invariants.
//!
//! Input layout: byte 0 picks the line limit, byte 1 seeds the chunk sizes,
//! the rest is the stream.

use drover::wire::{Endpoint, SseItem, SseParser, StreamTranslator, decode};
use drover_core::node::NodeKind;

#[derive(Debug, PartialEq)]
enum Item {
    Data(Vec<u8>, Vec<u8>),
    Done(Vec<u8>),
    Empty(Vec<u8>),
    Error(String),
}

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

fn drain(p: &mut SseParser, max: usize, out: &mut Vec<Item>) -> bool {
    loop {
        match p.next_item() {
            Ok(Some(SseItem::Data { data, raw })) => {
                assert!(data.len() <= max, "data over the limit");
                assert!(data.trim_ascii() != b"[DONE]");
                out.push(Item::Data(data.to_vec(), raw.to_vec()));
            }
            Ok(Some(SseItem::Done { raw })) => out.push(Item::Done(raw.to_vec())),
            Ok(Some(SseItem::Empty { raw })) => {
                assert!(!raw.is_empty());
                out.push(Item::Empty(raw.to_vec()));
            }
            Ok(None) => return true,
            Err(e) => {
                out.push(Item::Error(e.to_string()));
                return false;
            }
        }
    }
}

fn parse(make: &dyn Fn() -> SseParser, max: usize, parts: &[&[u8]]) -> Vec<Item> {
    let mut p = make();
    let mut out = Vec::new();
    for part in parts {
        p.feed(part);
        if !drain(&mut p, max, &mut out) {
            // A failed parser stays failed.
            assert!(p.next_item().is_err());
            return out;
        }
    }
    p.finish();
    if drain(&mut p, max, &mut out) {
        assert_eq!(p.pending(), 0, "everything taken after finish");
    }
    out
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
        _ => br#"{"model":"c","messages":[{"role":"user","content":"x"}],"stream":true}"#,
    };
    let inb = decode(endpoint, body).expect("fixed valid body");
    let mut t = StreamTranslator::with_max_line(&inb, NodeKind::OpenAiCompat, 256);
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
    let max = 8 + usize::from(data[0]) * 2;
    let input = &data[2..];
    let split = chunks(input, data[1]);
    for strict in [false, true] {
        let make = move || {
            if strict {
                SseParser::strict(max)
            } else {
                SseParser::new(max)
            }
        };
        let whole = parse(&make, max, &[input]);
        assert_eq!(parse(&make, max, &split), whole, "strict={strict}");
        // Without an error, the raw bytes are the whole input, in order.
        if !matches!(whole.last(), Some(Item::Error(_))) {
            let mut joined = Vec::new();
            for item in &whole {
                match item {
                    Item::Data(_, raw) | Item::Done(raw) | Item::Empty(raw) => {
                        joined.extend_from_slice(raw)
                    }
                    Item::Error(_) => unreachable!(),
                }
            }
            assert_eq!(joined, input);
        }
    }
    for endpoint in [
        Endpoint::ChatCompletions,
        Endpoint::OllamaChat,
        Endpoint::OllamaGenerate,
    ] {
        assert_eq!(translate(endpoint, &[input]), translate(endpoint, &split));
    }
}
