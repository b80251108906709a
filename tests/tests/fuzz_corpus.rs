//! Replays the checked-in corpus of every fuzz target (`fuzz/corpus/TARGET`)
//! through the same checks the fuzzer runs, so `cargo test` re-checks every
//! input the fuzzers kept, and every crash they ever found, without
//! libFuzzer. The checks of all targets but `core_ops` live in
//! `fuzz/harness/TARGET.rs`, compiled both into the fuzz target and here;
//! `core_ops` uses the operation-sequence harness of this crate.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use drover_tests::ops::{decode, run_ops};

#[path = "../../fuzz/harness/config.rs"]
mod config;
#[path = "../../fuzz/harness/decode.rs"]
mod decode_target;
#[path = "../../fuzz/harness/http_front.rs"]
mod http_front;
#[path = "../../fuzz/harness/json_scan.rs"]
mod json_scan;
#[path = "../../fuzz/harness/ndjson.rs"]
mod ndjson;
#[path = "../../fuzz/harness/sse.rs"]
mod sse;

/// The files of `fuzz/corpus/TARGET`, sorted, with their bytes; panics if
/// there are fewer than `at_least`.
fn corpus(target: &str, at_least: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    files.retain(|p| p.is_file());
    files.sort();
    assert!(
        files.len() >= at_least,
        "expected at least {at_least} checked-in inputs in {}, found {}",
        dir.display(),
        files.len()
    );
    files
        .into_iter()
        .map(|p| {
            let data = fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

/// Runs `check` on every input of `target`'s corpus, naming the first
/// input that fails.
fn replay(target: &str, at_least: usize, check: fn(&[u8])) {
    let inputs = corpus(target, at_least);
    for (path, data) in &inputs {
        if catch_unwind(AssertUnwindSafe(|| check(data))).is_err() {
            panic!(
                "corpus input {} fails (reproduce: cd fuzz && cargo fuzz run --sanitizer none {target} {})",
                path.display(),
                path.display()
            );
        }
    }
    eprintln!("{target}: {} inputs replayed", inputs.len());
}

#[test]
fn sse_corpus_replays_clean() {
    replay("sse", 5, sse::check);
}

#[test]
fn ndjson_corpus_replays_clean() {
    replay("ndjson", 4, ndjson::check);
}

#[test]
fn decode_corpus_replays_clean() {
    replay("decode", 10, decode_target::check);
}

/// Both fronts' request decoding is in the corpus: byte 0 of an input picks
/// the endpoint (see `fuzz/harness/decode.rs`).
#[test]
fn decode_corpus_covers_both_fronts_and_every_endpoint() {
    use drover::wire::{Endpoint, Front};
    let mut seen = [false; Endpoint::ALL.len()];
    let mut decoded = [false; Endpoint::ALL.len()];
    for (_, data) in corpus("decode", 10) {
        let Some((&pick, body)) = data.split_first() else {
            continue;
        };
        let i = usize::from(pick) % Endpoint::ALL.len();
        seen[i] = true;
        decoded[i] |= drover::wire::decode(Endpoint::ALL[i], body).is_ok();
    }
    for (i, e) in Endpoint::ALL.iter().enumerate() {
        assert!(seen[i], "no corpus input for {e:?}");
        assert!(
            decoded[i],
            "no corpus input decodes as a valid {e:?} request"
        );
    }
    assert!(Endpoint::ALL.iter().any(|e| e.front() == Front::OpenAi));
    assert!(Endpoint::ALL.iter().any(|e| e.front() == Front::Ollama));
}

#[test]
fn config_corpus_replays_clean() {
    replay("config", 10, config::check);
}

#[test]
fn json_scan_corpus_replays_clean() {
    replay("json_scan", 6, json_scan::check);
}

#[test]
fn http_front_corpus_replays_clean() {
    replay("http_front", 10, http_front::check);
}

#[test]
fn core_ops_corpus_replays_clean() {
    let inputs = corpus("core_ops", 10);
    let (mut steps, mut sends) = (0, 0);
    for (path, data) in &inputs {
        let (setup, ops) = decode(data);
        let stats = catch_unwind(|| run_ops(setup, &ops).stats())
            .unwrap_or_else(|_| panic!("corpus input {} fails", path.display()));
        steps += stats.steps;
        sends += stats.attempts_sent;
    }
    assert!(
        steps > 10 * inputs.len() && sends > inputs.len(),
        "the corpus barely drives the router ({steps} steps, {sends} sends)"
    );
    eprintln!(
        "core_ops: {} inputs, {steps} steps, {sends} sends",
        inputs.len()
    );
}
