//! Client request decoding, upstream requests and reply translation on any
//! bytes: never a panic; the quick decode agrees with the full one; a
//! decoded request re-decodes to the same thing;
//! upstream requests are JSON objects naming the node's model; translated
//! replies are JSON.
//!
//! Input layout: byte 0 picks the endpoint, the rest is the body (also tried
//! as an upstream reply for every endpoint and node kind).

use drover::wire::{Endpoint, decode, decode_full, translate_response, upstream_request};
use drover_core::node::NodeKind;
use serde_json::Value;

const KINDS: [NodeKind; 2] = [NodeKind::Ollama, NodeKind::OpenAiCompat];

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
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let endpoint = Endpoint::ALL[usize::from(pick) % Endpoint::ALL.len()];
    let decoded = decode(endpoint, body);
    // The quick path agrees with the full decode: same verdict, same
    // fields, same map, same upstream bodies.
    let full = decode_full(endpoint, body);
    assert_eq!(decoded, full, "the quick path and the full decode differ");
    if let (Ok(quick), Ok(full)) = (&decoded, &full) {
        for kind in KINDS {
            let (q, f) = (
                upstream_request(quick, kind, "n"),
                upstream_request(full, kind, "n"),
            );
            let q: Value = serde_json::from_slice(&q.body).expect("quick upstream body is JSON");
            let f: Value = serde_json::from_slice(&f.body).expect("full upstream body is JSON");
            assert_eq!(q, f, "upstream bodies differ for {kind:?}");
        }
    }
    if let Ok(inb) = decoded {
        assert!(!inb.model.is_empty());
        assert!(inb.prefix_blocks.len() <= drover::wire::PREFIX_MAX_BLOCKS);
        let again = serde_json::to_vec(inb.body()).expect("a Map serialises");
        assert_eq!(decode(endpoint, &again).as_ref(), Ok(&inb));
        for kind in KINDS {
            let out = upstream_request(&inb, kind, "node\"model");
            let v: Value = serde_json::from_slice(&out.body).expect("upstream body is JSON");
            assert_eq!(v["model"], "node\"model");
            assert!(out.path.starts_with('/'));
        }
    }
    // The same bytes as a reply to a fixed request of every kind.
    for endpoint in Endpoint::ALL {
        let req: &[u8] = match endpoint {
            Endpoint::ChatCompletions | Endpoint::OllamaChat => {
                br#"{"model":"c","messages":[{"role":"user","content":"x"}]}"#
            }
            Endpoint::OllamaGenerate => br#"{"model":"c"}"#,
            Endpoint::Embeddings => br#"{"model":"c","input":"x","encoding_format":"base64"}"#,
            Endpoint::OllamaEmbed => br#"{"model":"c","input":"x"}"#,
            Endpoint::OllamaEmbeddings => br#"{"model":"c","prompt":"x"}"#,
        };
        let inb = decode(endpoint, req).expect("fixed valid request");
        for kind in KINDS {
            if let Ok(out) = translate_response(&inb, kind, body) {
                assert_json(&out, "a translated reply");
            }
        }
    }
}
