//! Issue 6, item 5 (ejection that cannot empty the swarm), gateway side:
//!
//! - a 4xx caused by the client (an upstream 400 for bad input) never
//!   counts against the node: after many such replies its breaker has no
//!   failure, `/nodes` shows it healthy, and each call made one attempt
//!   (the client's error is not retried elsewhere);
//! - when every node is ejected (all breakers open), the gateway fails
//!   fast, without touching a node: 503 with code `no_eligible_node`, the
//!   reason (`every eligible node has an open circuit breaker`) and
//!   `Retry-After`.
//!
//! Run: `cargo test -p drover-tests --test reliability_ejection`.

#[path = "support/reliab.rs"]
mod reliab;
mod support;

use std::time::Duration;

use drover::fake::{Fail, FakeServer};
use drover_core::node::NodeKind;
use reliab::{Seen, call, error_of};
use support::*;

const MODEL: &str = "m";
const LIMIT: Duration = Duration::from_secs(8);

#[test]
fn client_caused_4xx_never_count_against_a_node() {
    let fakes: Vec<FakeServer> = (0..2)
        .map(|_| fake_with(NodeKind::OpenAiCompat, &[MODEL], failing(Fail::Status(400))))
        .collect();
    let gw = start(round_robin(config(vec![
        node("a", &fakes[0], &[MODEL]),
        node("b", &fakes[1], &[MODEL]),
    ])));
    // Four times the breaker's threshold of 5, on each node.
    let calls = 40u64;
    for i in 0..calls {
        let (seen, raw) = call(gw.addr, i % 2 == 0, i % 3 == 0, &format!("bad-{i}"), LIMIT);
        assert_eq!(seen, Seen::Status(400), "{}", raw.text());
        let (code, message) = error_of(&raw);
        assert!(
            code == "upstream_rejected_request" || message.contains("refused the request"),
            "{code}: {message}"
        );
    }
    let attempts: u64 = fakes.iter().map(|f| f.requests().calls).sum();
    assert_eq!(
        attempts, calls,
        "a client error is not retried on another node"
    );
    for name in ["a", "b"] {
        assert_eq!(breaker_failures(&gw, name), 0, "{name}");
    }
    let nodes = nodes(gw.addr);
    for name in ["a", "b"] {
        let n = &nodes[name];
        assert_eq!(n["healthy"], true, "{name}: {n}");
        assert_eq!(n["breaker"]["state"], "closed", "{name}: {n}");
    }
}

#[test]
fn when_every_node_is_ejected_the_gateway_fails_fast_with_the_reason_and_retry_after() {
    let fakes: Vec<FakeServer> = (0..2)
        .map(|_| fake_with(NodeKind::OpenAiCompat, &[MODEL], failing(Fail::Status(500))))
        .collect();
    let mut cfg = round_robin(config(vec![
        node("a", &fakes[0], &[MODEL]),
        node("b", &fakes[1], &[MODEL]),
    ]));
    // Long enough cooldowns that the breakers stay open for the test.
    cfg.router.breaker.base_cooldown = drover_core::Duration::from_secs(30);
    let gw = start(cfg);
    // Each call tries both nodes: 5 calls open both breakers (threshold 5).
    for i in 0..5 {
        let (seen, raw) = call(gw.addr, true, false, &format!("eject-{i}"), LIMIT);
        assert_eq!(seen, Seen::Status(502), "{}", raw.text());
    }
    for name in ["a", "b"] {
        assert_eq!(nodes(gw.addr)[name]["breaker"]["state"], "open", "{name}");
    }
    let before: u64 = fakes.iter().map(|f| f.requests().calls).sum();
    for (i, (openai, stream)) in [(true, false), (true, true), (false, false), (false, true)]
        .into_iter()
        .enumerate()
    {
        let (seen, raw) = call(gw.addr, openai, stream, &format!("ejected-{i}"), LIMIT);
        assert_eq!(seen, Seen::Status(503), "{}", raw.text());
        assert!(
            raw.elapsed < Duration::from_millis(500),
            "fails fast: {:?}",
            raw.elapsed
        );
        let retry_after: u64 = raw
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a numeric Retry-After: {:?}", raw.headers));
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let (code, message) = error_of(&raw);
        if openai {
            assert_eq!(code, "no_eligible_node");
        }
        assert!(
            message.contains("open circuit breaker"),
            "the reason is specific: {message}"
        );
    }
    let after: u64 = fakes.iter().map(|f| f.requests().calls).sum();
    assert_eq!(after, before, "no node was tried while all are ejected");
}
