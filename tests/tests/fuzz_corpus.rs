//! Replays the checked-in corpus of the `core_ops` fuzz target through the
//! harness, so `cargo test` re-checks every input the fuzzer kept (and every
//! crash it ever found, under `regression-*`) without libFuzzer.

use std::fs;
use std::path::PathBuf;

use drover_tests::ops::{decode, run_ops};

#[test]
fn core_ops_corpus_replays_clean() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/core_ops");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    files.retain(|p| p.is_file());
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the checked-in corpus in {}, found {} files",
        dir.display(),
        files.len()
    );
    let (mut steps, mut sends) = (0, 0);
    for path in &files {
        let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let (setup, ops) = decode(&data);
        let stats = std::panic::catch_unwind(|| run_ops(setup, &ops).stats())
            .unwrap_or_else(|_| panic!("corpus input {} fails", path.display()));
        steps += stats.steps;
        sends += stats.attempts_sent;
    }
    assert!(
        steps > 10 * files.len() && sends > files.len(),
        "the corpus barely drives the router ({steps} steps, {sends} sends)"
    );
    eprintln!("{} inputs, {steps} steps, {sends} sends", files.len());
}
