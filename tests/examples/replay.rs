//! Replays one fuzz input step by step, printing the setup, each operation
//! and everything the router answered, so a crash from
//! `fuzz/artifacts/core_ops/` can be read as a story:
//!
//! ```text
//! cargo run -p drover-tests --example replay -- fuzz/artifacts/core_ops/crash-…
//! ```
//!
//! The harness panics at the first broken invariant, right after the step
//! that broke it.

use drover_tests::ops::{Harness, decode};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: replay <fuzz input file>");
        std::process::exit(2);
    };
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let (setup, ops) = decode(&data);
    let cfg = setup.config();
    println!("{setup:?}");
    println!(
        "policy {:?}, max_attempts {}, tag mode {:?}, pools {:?}, queue wait {:?}, hedging {}",
        cfg.policy, cfg.max_attempts, cfg.tag_mode, cfg.pools, cfg.queue_wait, cfg.hedge.enabled
    );
    let mut h = Harness::new(setup);
    for (i, op) in ops.iter().enumerate() {
        let seen = h.log().len();
        println!("#{} at {:?}: {op:?}", i + 1, h.now());
        h.apply(op);
        for record in &h.log()[seen..] {
            println!("    {record:?}");
        }
    }
    println!("settling {} open calls", h.open_calls());
    h.settle();
    println!("ok: {:?}", h.stats());
}
