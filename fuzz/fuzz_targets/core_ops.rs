//! Operation sequences on a `Router<8, 32, 8>`: any bytes decode into a setup
//! and a list of driver operations, and the harness checks the core's
//! invariants after every step (see `drover_tests::ops`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    drover_tests::ops::run(data);
});
