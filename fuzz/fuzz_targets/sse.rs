//! Fuzz target `sse`: the checks are in `harness/sse.rs`, shared with the
//! corpus replay in `tests/tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../harness/sse.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::check(data));
