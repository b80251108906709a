//! Fuzz target `json_scan`: the checks are in `harness/json_scan.rs`, shared
//! with the corpus replay in `tests/tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../harness/json_scan.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::check(data));
