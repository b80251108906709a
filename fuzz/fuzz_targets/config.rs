//! Fuzz target `config`: the checks are in `harness/config.rs`, shared with the
//! corpus replay in `tests/tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../harness/config.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::check(data));
