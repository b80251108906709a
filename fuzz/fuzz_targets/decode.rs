//! Fuzz target `decode`: the checks are in `harness/decode.rs`, shared with the
//! corpus replay in `tests/tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../harness/decode.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::check(data));
