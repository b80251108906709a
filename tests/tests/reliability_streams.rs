//! Issue 6, item 9 (stream timeouts) and item 3 for streams (the deadline
//! covers retries): an idle timeout between chunks, separate from the
//! call's total deadline.
//!
//! - A stream that keeps making progress is never cut by `stream_idle`,
//!   however long it lasts.
//! - A node that stalls after the first token ends the stream with a
//!   terminal error event within `stream_idle` plus slack, and is charged.
//! - Before the first token, `ttft` applies and `stream_idle` does not.
//! - A stream ends at the call's deadline counted from the call's start,
//!   failovers included, not from the stream's start.
//!
//! Run: `cargo test -p drover-tests --test reliability_streams`.

#[path = "support/reliab.rs"]
mod reliab;
mod support;

use std::time::Duration;

use drover::config::GatewayConfig;
use drover::fake::{Behaviour, Fail, FakeServer};
use drover_core::node::NodeKind;
use reliab::{Seen, call, error_of};
use support::*;

const MODEL: &str = "m";

/// Slack for timers on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(900);

fn gateway(
    nodes: Vec<drover::config::NodeConfig>,
    tune: impl FnOnce(&mut GatewayConfig),
) -> drover::serve::Running {
    let mut cfg = round_robin(config(nodes));
    tune(&mut cfg);
    start(cfg)
}

fn one(kind: NodeKind, b: Behaviour) -> FakeServer {
    fake_with(kind, &[MODEL], b)
}

#[test]
fn a_stream_that_keeps_making_progress_is_never_cut_by_the_idle_timeout() {
    // A token every 200 ms for 8 tokens: 1.6 s, three times stream_idle.
    let f = one(NodeKind::OpenAiCompat, Behaviour::paced(ms(0), ms(200), 8));
    let gw = gateway(vec![node("a", &f, &[MODEL])], |c| {
        c.timeouts.stream_idle = ms(500);
    });
    for openai in [true, false] {
        let (seen, raw) = call(gw.addr, openai, true, "progress", Duration::from_secs(10));
        assert_eq!(seen, Seen::Ok, "{}", raw.text());
        assert!(
            raw.elapsed >= ms(1400),
            "the stream lasted {:?}, longer than stream_idle",
            raw.elapsed
        );
    }
    assert_eq!(breaker_failures(&gw, "a"), 0);
    assert_eq!(f.requests().cancelled, 0, "no stream was cut");
}

#[test]
fn a_node_stalled_after_the_first_token_ends_the_stream_with_an_error_event() {
    // The first token at once, then 10 s of silence.
    let f = one(
        NodeKind::OpenAiCompat,
        Behaviour::paced(ms(0), Duration::from_secs(10), 3),
    );
    let idle = ms(500);
    let gw = gateway(vec![node("a", &f, &[MODEL])], |c| {
        c.timeouts.stream_idle = idle;
    });
    for (i, openai) in [true, false].into_iter().enumerate() {
        let (seen, raw) = call(gw.addr, openai, true, "stall", Duration::from_secs(8));
        assert_eq!(seen, Seen::ErrorEvent, "{}", raw.text());
        assert!(
            raw.elapsed >= idle && raw.elapsed <= idle + SLACK,
            "the stalled stream ended after {:?} (stream_idle {idle:?})",
            raw.elapsed
        );
        assert!(
            raw.text().contains("idle limit"),
            "the event says why: {}",
            raw.text()
        );
        // Charged to the node: one more consecutive failure each time.
        assert_eq!(breaker_failures(&gw, "a"), i as u16 + 1);
    }
}

#[test]
fn before_the_first_token_ttft_applies_and_stream_idle_does_not() {
    // First token at 600 ms: past stream_idle (300 ms), within ttft (1 s).
    let late = one(NodeKind::Ollama, Behaviour::paced(ms(600), ms(10), 4));
    let gw = gateway(vec![node("late", &late, &[MODEL])], |c| {
        c.timeouts.stream_idle = ms(300);
        c.timeouts.ttft = Duration::from_secs(1);
    });
    for openai in [true, false] {
        let (seen, raw) = call(gw.addr, openai, true, "late", Duration::from_secs(8));
        assert_eq!(seen, Seen::Ok, "{}", raw.text());
    }
    drop(gw);
    // No first token within ttft: 504 ttft_timeout at about ttft.
    let mute = one(
        NodeKind::Ollama,
        Behaviour::paced(Duration::from_secs(5), ms(10), 4),
    );
    let gw = gateway(vec![node("mute", &mute, &[MODEL])], |c| {
        c.timeouts.stream_idle = ms(300);
        c.timeouts.ttft = Duration::from_secs(1);
    });
    let (seen, raw) = call(gw.addr, true, true, "mute", Duration::from_secs(8));
    assert_eq!(seen, Seen::Status(504), "{}", raw.text());
    assert_eq!(error_of(&raw).0, "ttft_timeout");
    assert!(
        raw.elapsed >= Duration::from_secs(1) && raw.elapsed <= Duration::from_secs(1) + SLACK,
        "{:?}",
        raw.elapsed
    );
}

#[test]
fn a_stream_ends_at_the_calls_deadline_counted_from_the_call_start() {
    // The first node answers garbage after 1.4 s (before any token: fail
    // over); the second streams a token every 100 ms for 10 s. The call's
    // deadline (stream_total) is 3 s from the call's start, so the stream
    // ends at about 3 s, not 4.4 s (3 s after the stream began).
    let bad = one(
        NodeKind::OpenAiCompat,
        Behaviour {
            fail: Fail::Garbage,
            ..Behaviour::paced(ms(1400), ms(10), 4)
        },
    );
    let slow = one(
        NodeKind::OpenAiCompat,
        Behaviour::paced(ms(0), ms(100), 100),
    );
    let total = Duration::from_secs(3);
    let mut cfg = config(vec![
        node("bad", &bad, &[MODEL]),
        node("slow", &slow, &[MODEL]),
    ]);
    cfg.router.policy = drover_core::config::Policy::RoundRobin;
    cfg.router.affinity.prefix_key_blocks = 0;
    cfg.timeouts.ttft = ms(1500);
    cfg.timeouts.attempt = ms(1500);
    cfg.timeouts.stream_total = total;
    cfg.timeouts.stream_idle = ms(500);
    let gw = start(cfg);
    let mut saw_failover = false;
    // Round robin over two nodes: one of two calls starts on each.
    for i in 0..2 {
        let before = bad.requests().calls;
        let (seen, raw) = call(
            gw.addr,
            true,
            true,
            &format!("deadline-{i}"),
            Duration::from_secs(8),
        );
        assert!(
            raw.elapsed >= total - ms(100) && raw.elapsed <= total + SLACK,
            "call {i} answered for {:?}, past its deadline {total:?}",
            raw.elapsed
        );
        assert_eq!(seen, Seen::ErrorEvent, "call {i}: {}", raw.text());
        assert!(raw.text().contains("total time limit"), "{}", raw.text());
        saw_failover |= bad.requests().calls > before;
    }
    assert!(
        saw_failover,
        "round robin sent some call to the bad node first"
    );
}
