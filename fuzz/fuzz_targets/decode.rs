//! Client request decoding, upstream requests and reply translation on any
//! bytes: never a panic; a decoded request re-decodes to the same thing;
//! upstream requests are JSON objects naming the node's model; translated
//! replies are JSON.
//!
//! Input layout: byte 0 picks the endpoint, the rest is the body (also tried
//! as an upstream reply for every endpoint and node kind).
#![no_main]

use drover::wire::{Endpoint, decode, translate_response, upstream_request};
use drover_core::node::NodeKind;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const KINDS: [NodeKind; 2] = [NodeKind::Ollama, NodeKind::OpenAiCompat];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let endpoint = Endpoint::ALL[usize::from(pick) % Endpoint::ALL.len()];
    if let Ok(inb) = decode(endpoint, body) {
        assert!(!inb.model.is_empty());
        assert!(inb.prefix_blocks.len() <= drover::wire::PREFIX_MAX_BLOCKS);
        let again = serde_json::to_vec(&inb.body).expect("a Map serialises");
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
                serde_json::from_slice::<Value>(&out).expect("a translated reply is JSON");
            }
        }
    }
});
