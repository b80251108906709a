//! Fuzz target `http_front`: the checks are in `harness/http_front.rs`, shared with the
//! corpus replay in `tests/tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../harness/http_front.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::check(data));
