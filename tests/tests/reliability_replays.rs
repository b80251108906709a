//! Issue 6, item 4 (no unsafe replays), proved with fakes that record the
//! `X-Request-ID` of every request (the gateway sends the client's on each
//! attempt), so each call's attempts can be listed node by node:
//!
//! - once a byte of a stream has reached the client, nothing is retried:
//!   a node that breaks mid-stream gives that client a terminal error
//!   event, and no other node ever sees that call;
//! - before any byte (a whole answer cut half-way), the call fails over;
//! - a failover never goes to a node the call already tried while an
//!   untried one exists.
//!
//! Run: `cargo test -p drover-tests --test reliability_replays`.

#[path = "support/reliab.rs"]
mod reliab;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use drover::fake::{Behaviour, Fail, FakeServer};
use drover_core::node::NodeKind;
use reliab::{Seen, call};
use support::*;

const MODEL: &str = "m";
const LIMIT: Duration = Duration::from_secs(8);

/// For each request id, the nodes (by name) whose fake saw it, with
/// repeats, grouped in the order of `fakes` (not in time order).
fn touched(fakes: &[(&str, &FakeServer)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, f) in fakes {
        for id in f.request_ids() {
            out.entry(id).or_default().push((*name).to_owned());
        }
    }
    out
}

#[test]
fn nothing_is_retried_once_a_byte_reached_the_client() {
    // `brk` streams two tokens and then cuts the connection; whole answers
    // it cuts half-way through their Content-Length.
    let brk = fake_with(
        NodeKind::OpenAiCompat,
        &[MODEL],
        Behaviour {
            fail: Fail::BreakAfter(2),
            ..Behaviour::paced(ms(0), ms(5), 6)
        },
    );
    let b = fake(NodeKind::Ollama, &[MODEL]);
    let c = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let mut cfg = round_robin(config(vec![
        node("brk", &brk, &[MODEL]),
        node("b", &b, &[MODEL]),
        node("c", &c, &[MODEL]),
    ]));
    cfg.router.max_attempts = 3;
    // Keep `brk` in rotation whatever it does.
    cfg.router.breaker.failure_threshold = u16::MAX;
    let gw = start(cfg);
    let mut seen = BTreeMap::new();
    for i in 0..12 {
        let stream = i % 2 == 0;
        let id = format!("replay-{i}");
        let (s, raw) = call(gw.addr, i % 4 < 2, stream, &id, LIMIT);
        assert!(s.is_definite(), "{id}: {s:?} {}", raw.text());
        seen.insert(id, (stream, s));
    }
    let calls = touched(&[("brk", &brk), ("b", &b), ("c", &c)]);
    let (mut broken_streams, mut failed_over_whole) = (0, 0);
    for (id, (stream, s)) in &seen {
        let nodes = calls.get(id).cloned().unwrap_or_default();
        assert!(!nodes.is_empty(), "{id} reached some node");
        match (stream, nodes.iter().any(|n| n == "brk")) {
            (true, true) => {
                // Bytes reached the client before the break: an error
                // event, and no second attempt anywhere.
                assert_eq!(*s, Seen::ErrorEvent, "{id}");
                assert_eq!(nodes, ["brk"], "{id} was replayed after its first byte");
                broken_streams += 1;
            }
            (false, true) => {
                // Nothing had reached the client: failed over, once, to
                // another node.
                assert_eq!(*s, Seen::Ok, "{id}");
                assert_eq!(nodes.len(), 2, "{id}: {nodes:?}");
                assert_eq!(nodes.iter().filter(|n| *n == "brk").count(), 1, "{id}");
                failed_over_whole += 1;
            }
            _ => {
                assert_eq!(*s, Seen::Ok, "{id}");
                assert_eq!(nodes.len(), 1, "{id}: {nodes:?}");
            }
        }
    }
    assert!(broken_streams >= 1, "some stream started on brk: {calls:?}");
    assert!(
        failed_over_whole >= 1,
        "some whole call started on brk: {calls:?}"
    );
    assert_eq!(
        brk.requests().calls,
        (broken_streams + failed_over_whole) as u64,
        "brk saw only the calls that started there"
    );
}

#[test]
fn a_failover_never_goes_back_to_a_tried_node_while_an_untried_one_exists() {
    // Three nodes answer 500 to everything, two are healthy; breakers never
    // open, so failing nodes stay in rotation. Each call may need up to
    // four attempts and always has an untried healthy node left.
    let bad: Vec<FakeServer> = (0..3)
        .map(|_| fake_with(NodeKind::OpenAiCompat, &[MODEL], failing(Fail::Status(500))))
        .collect();
    let good: Vec<FakeServer> = (0..2).map(|_| fake(NodeKind::Ollama, &[MODEL])).collect();
    let names = ["bad0", "bad1", "bad2", "good0", "good1"];
    let all: Vec<(&str, &FakeServer)> = names
        .iter()
        .copied()
        .zip(bad.iter().chain(good.iter()))
        .collect();
    let mut cfg = config(all.iter().map(|(n, f)| node(n, f, &[MODEL])).collect());
    cfg.router.policy = drover_core::config::Policy::Random;
    cfg.router.affinity.prefix_key_blocks = 0;
    cfg.router.max_attempts = 5;
    cfg.router.breaker.failure_threshold = u16::MAX;
    let gw = start(cfg);
    let mut outcomes = BTreeMap::new();
    for i in 0..24 {
        let id = format!("untried-{i}");
        let (s, raw) = call(gw.addr, i % 2 == 0, i % 3 == 0, &id, LIMIT);
        assert!(s.is_definite(), "{id}: {s:?} {}", raw.text());
        outcomes.insert(id, s);
    }
    let calls = touched(&all);
    let mut failovers = 0;
    for (id, s) in &outcomes {
        let nodes = calls.get(id).cloned().unwrap_or_default();
        let mut distinct = nodes.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            nodes.len(),
            "{id} went back to a tried node: {nodes:?}"
        );
        // A healthy node ends the call, so a call touches at most one, and
        // one exactly when it succeeded. (A call that did not succeed had
        // its retry denied by the retry budget.)
        let healthy = nodes.iter().filter(|n| n.starts_with("good")).count();
        assert_eq!(
            healthy,
            usize::from(*s == Seen::Ok),
            "{id}: {s:?} {nodes:?}"
        );
        failovers += nodes.len() - 1;
    }
    eprintln!("untried: {failovers} failovers in 24 calls; outcomes {outcomes:?}");
    assert!(failovers >= 5, "the failing nodes were met: {calls:?}");
}
