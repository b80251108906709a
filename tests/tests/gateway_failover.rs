//! Failover before the first byte: a refused connection, a missing first
//! token (TTFT), a 429 with Retry-After (cooldown), repeated 500s (the
//! breaker opens, then recovers through a half-open probe), and a garbage
//! reply. Each call must still succeed on the other node, quickly.
//!
//! The gateways here use round-robin (without prefix affinity) so that, within a few calls, the bad
//! node is certainly tried first at least once; the loops are bounded.

mod support;

use std::time::{Duration, Instant};

use drover::config::GatewayConfig;
use drover::fake::{Behaviour, Fail, FakeServer, Outcome};
use drover::serve::Running;
use drover_core::node::NodeKind;
use serde_json::Value;
use support::*;

const MODEL: &str = "m";

/// A non-streamed OpenAI chat that must succeed; returns its trace id.
fn chat_ok(gw: &Running) -> String {
    let r = post(gw.addr, "/v1/chat/completions", &chat_body(MODEL, None));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert!(
        !v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    r.header("x-drover-trace").unwrap().to_owned()
}

/// A streamed OpenAI chat that must succeed with a clean end; returns its
/// trace id.
fn stream_ok(gw: &Running) -> String {
    let r = post(
        gw.addr,
        "/v1/chat/completions",
        &chat_body(MODEL, Some(true)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let events = sse_events(&r.body);
    assert!(
        events.iter().all(|e| e.get("error").is_none()),
        "{events:?}"
    );
    assert!(!sse_text(&events).is_empty());
    r.header("x-drover-trace").unwrap().to_owned()
}

fn succeeded_on(events: &[Value]) -> String {
    let fin = events.last().unwrap();
    assert_eq!(fin["outcome"], "succeeded", "{events:?}");
    fin["node"].as_str().unwrap().to_owned()
}

fn two_nodes(bad: &FakeServer, good: &FakeServer) -> GatewayConfig {
    round_robin(config(vec![
        node("bad", bad, &[MODEL]),
        node("good", good, &[MODEL]),
    ]))
}

#[test]
fn a_refused_connection_fails_over_at_once() {
    let good = fake(NodeKind::Ollama, &[MODEL]);
    let gw = start(round_robin(config(vec![
        node_at("dead", NodeKind::OpenAiCompat, dead_port(), &[MODEL], &[]),
        node("good", &good, &[MODEL]),
    ])));
    let mut saw_failover = false;
    for i in 0..4 {
        let t0 = Instant::now();
        let id = if i % 2 == 0 {
            chat_ok(&gw)
        } else {
            stream_ok(&gw)
        };
        assert!(t0.elapsed() < ms(1500), "took {:?}", t0.elapsed());
        let events = trace(&gw, &id);
        assert_eq!(succeeded_on(&events), "good");
        let failed = failures_on(&events, "dead");
        if !failed.is_empty() {
            assert_eq!(failed, ["connect"], "{events:?}");
            saw_failover = true;
        }
    }
    assert!(
        saw_failover,
        "round-robin tried the dead node first at least once"
    );
    assert_eq!(good.requests().calls, 4);
}

#[test]
fn a_stream_without_a_first_token_in_time_fails_over_quickly() {
    // The gateway's TTFT timeout is 500 ms; this node needs 3 s.
    let slow = fake_with(
        NodeKind::Ollama,
        &[MODEL],
        Behaviour::paced(ms(3000), ms(0), 4),
    );
    let good = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let gw = start(two_nodes(&slow, &good));
    let mut fast_failed = 0;
    for _ in 0..3 {
        let t0 = Instant::now();
        let id = stream_ok(&gw);
        let took = t0.elapsed();
        let events = trace(&gw, &id);
        assert_eq!(succeeded_on(&events), "good");
        if failures_on(&events, "bad") == ["ttft_timeout"] {
            assert!(
                took >= ms(450),
                "{took:?}: the slow node was given its TTFT"
            );
            assert!(
                took < ms(1500),
                "{took:?}: failover right after the TTFT timeout"
            );
            fast_failed += 1;
        } else {
            assert!(took < ms(450), "{took:?}");
        }
    }
    assert!(
        fast_failed >= 1,
        "the slow node was tried first at least once"
    );
    // The abandoned attempts were cancelled upstream, not left running.
    wait_until(
        ms(2000),
        "the slow node to see its requests cancelled",
        || {
            let c = slow.requests();
            c.cancelled == fast_failed && c.in_flight == 0
        },
    );
    assert_eq!(in_flight(&gw, "bad"), 0);
}

#[test]
fn a_429_cools_the_node_down_and_calls_avoid_it() {
    let busy = fake_with(
        NodeKind::OpenAiCompat,
        &[MODEL],
        failing(Fail::TooMany { retry_after_s: 30 }),
    );
    let good = fake(NodeKind::Ollama, &[MODEL]);
    let gw = start(two_nodes(&busy, &good));
    // Until the busy node has been tried once, every call still succeeds.
    for _ in 0..3 {
        let id = chat_ok(&gw);
        let events = trace(&gw, &id);
        assert_eq!(succeeded_on(&events), "good");
        if busy.requests().calls == 1 {
            assert_eq!(failures_on(&events, "bad"), ["overloaded"], "{events:?}");
            break;
        }
    }
    assert_eq!(busy.requests().outcome(Outcome::TooMany), 1);
    // Then it is cooling: calls go straight to the other node.
    let before = good.requests().calls;
    for _ in 0..6 {
        let id = stream_ok(&gw);
        assert!(failures_on(&trace(&gw, &id), "bad").is_empty());
    }
    assert_eq!(busy.requests().calls, 1, "the cooled node is not tried");
    assert_eq!(good.requests().calls, before + 6);
    let n = &nodes(gw.addr)["bad"];
    assert_eq!(n["overload"]["cooling"], true, "{n}");
    let left = n["overload"]["remaining_ms"].as_f64().unwrap();
    assert!(
        left > 20_000.0 && left <= 30_000.0,
        "Retry-After: 30 → {left} ms"
    );
    // Overload is back-pressure, not a fault: the breaker is untouched.
    assert_eq!(n["breaker"]["state"], "closed", "{n}");
    assert_eq!(n["breaker"]["consecutive_failures"], 0, "{n}");
    let metrics = get(gw.addr, "/metrics").text();
    assert!(
        metrics.contains("drover_node_overload_cooldown_active{node=\"bad\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("drover_node_overload_cooldown_active{node=\"good\"} 0"),
        "{metrics}"
    );
}

#[test]
fn repeated_500s_open_the_breaker_and_a_probe_closes_it_after_healing() {
    let bad = fake_with(NodeKind::Ollama, &[MODEL], failing(Fail::Status(500)));
    let good = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let mut cfg = two_nodes(&bad, &good);
    let b = &mut cfg.router.breaker;
    b.failure_threshold = 2;
    b.base_cooldown = drover_core::Duration::from_millis(800);
    b.max_cooldown = drover_core::Duration::from_secs(2);
    b.jitter = 0.0;
    // A call is the half-open trial here; with active probes on, a probe
    // would be (tests/gateway_probes.rs).
    cfg.router.probe.enabled = false;
    let gw = start(cfg);
    // Every call succeeds; the bad node fails twice, which opens it.
    for _ in 0..6 {
        let id = chat_ok(&gw);
        let f = failures_on(&trace(&gw, &id), "bad");
        assert!(f.is_empty() || f == ["upstream_5xx"], "{f:?}");
        if bad.requests().calls == 2 {
            break;
        }
    }
    assert_eq!(bad.requests().outcome(Outcome::Status), 2);
    let opened = Instant::now();
    let n = &nodes(gw.addr)["bad"];
    assert_eq!(n["breaker"]["state"], "open", "{n}");
    let metrics = get(gw.addr, "/metrics").text();
    assert!(
        metrics.contains("drover_node_breaker_opens_total{node=\"bad\"} 1"),
        "{metrics}"
    );
    // While open, the node gets nothing.
    for _ in 0..4 {
        stream_ok(&gw);
    }
    assert!(
        opened.elapsed() < ms(800),
        "the calls above ran while it was open"
    );
    assert_eq!(bad.requests().calls, 2, "an open breaker sends nothing");

    // The node heals; after the cooldown a probe reaches it and closes it.
    bad.set(Behaviour::default());
    std::thread::sleep(ms(850).saturating_sub(opened.elapsed()));
    assert_eq!(nodes(gw.addr)["bad"]["breaker"]["state"], "half_open");
    let mut probed = false;
    for _ in 0..4 {
        let id = chat_ok(&gw);
        if succeeded_on(&trace(&gw, &id)) == "bad" {
            probed = true;
            break;
        }
    }
    assert!(probed, "a half-open node gets a probe");
    assert_eq!(bad.requests().outcome(Outcome::Ok), 1);
    let n = &nodes(gw.addr)["bad"];
    assert_eq!(n["breaker"]["state"], "closed", "{n}");
    assert_eq!(n["breaker"]["consecutive_failures"], 0, "{n}");
    assert_eq!(n["breaker"]["consecutive_opens"], 0, "{n}");
}

#[test]
fn a_garbage_reply_fails_over_whole_and_streamed() {
    let junk = fake_with(NodeKind::OpenAiCompat, &[MODEL], failing(Fail::Garbage));
    let good = fake(NodeKind::Ollama, &[MODEL]);
    let gw = start(two_nodes(&junk, &good));
    for stream in [false, true] {
        let before = junk.requests().calls;
        for _ in 0..3 {
            let id = if stream { stream_ok(&gw) } else { chat_ok(&gw) };
            let events = trace(&gw, &id);
            assert_eq!(succeeded_on(&events), "good");
            if junk.requests().calls > before {
                assert_eq!(failures_on(&events, "bad"), ["invalid_reply"], "{events:?}");
                break;
            }
        }
        assert_eq!(
            junk.requests().calls,
            before + 1,
            "stream {stream}: the junk node was tried"
        );
    }
    assert_eq!(junk.requests().outcome(Outcome::Garbage), 2);
}

#[test]
fn a_hung_node_times_out_and_fails_over() {
    let hung = fake_with(NodeKind::Ollama, &[MODEL], failing(Fail::Hang));
    let good = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let mut cfg = two_nodes(&hung, &good);
    cfg.timeouts.attempt = ms(400);
    let gw = start(cfg);
    let mut timed_out = 0;
    for _ in 0..3 {
        let t0 = Instant::now();
        let id = chat_ok(&gw);
        let took = t0.elapsed();
        let events = trace(&gw, &id);
        assert_eq!(succeeded_on(&events), "good");
        if failures_on(&events, "bad") == ["timeout"] {
            assert!(took >= ms(380) && took < ms(1500), "{took:?}");
            timed_out += 1;
        }
    }
    assert!(
        timed_out >= 1,
        "the hung node was tried first at least once"
    );
    assert_eq!(hung.requests().outcome(Outcome::Hang), timed_out);
    wait_until(ms(2000), "the hung requests to be abandoned", || {
        hung.requests().cancelled == timed_out
    });
    assert_eq!(in_flight(&gw, "bad"), 0);
}

/// A stream from a `kind` node that breaks after its first tokens,
/// through one front.
fn broken_stream(
    kind: NodeKind,
    path: &str,
    body: &Value,
) -> (Reply, Duration, Running, FakeServer) {
    let node = fake_with(
        kind,
        &[MODEL],
        Behaviour {
            token_interval: ms(20),
            ..failing(Fail::BreakAfter(3))
        },
    );
    let gw = start(config(vec![support::node("only", &node, &[MODEL])]));
    let t0 = Instant::now();
    let r = post(gw.addr, path, body);
    let took = t0.elapsed();
    assert_eq!(r.status, 200, "the stream had started: {}", r.text());
    (r, took, gw, node)
}

fn assert_charged_broken(gw: &Running, node: &FakeServer, id: &str) {
    assert_eq!(node.requests().outcome(Outcome::Broken), 1);
    let events = trace(gw, id);
    let fin = events.last().unwrap();
    assert_eq!(fin["outcome"], "failed", "{events:?}");
    assert_eq!(fin["after_first_byte"], true, "{events:?}");
    assert_eq!(failures_on(&events, "only"), ["broken_stream"]);
    // A broken stream is the node's fault.
    assert_eq!(breaker_failures(gw, "only"), 1);
    wait_until(ms(1000), "the call to be released", || {
        active_calls(gw) == 0 && in_flight(gw, "only") == 0
    });
}

#[test]
fn a_stream_broken_mid_way_ends_with_an_sse_error_event_then_done() {
    let (r, took, gw, node) = broken_stream(
        NodeKind::Ollama,
        "/v1/chat/completions",
        &chat_body(MODEL, Some(true)),
    );
    assert!(took < ms(2000), "no hang: {took:?}");
    let events = sse_events(&r.body);
    let (last, tokens) = events.split_last().unwrap();
    assert!(
        !sse_text(tokens).is_empty(),
        "the tokens before the break reached the client"
    );
    assert!(tokens.iter().all(|e| e.get("error").is_none()));
    assert!(
        last["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "a terminal error object: {last}"
    );
    let id = r.header("x-drover-trace").unwrap();
    assert_charged_broken(&gw, &node, id);
}

#[test]
fn a_stream_broken_mid_way_ends_with_an_ndjson_error_line() {
    let (r, took, gw, node) =
        broken_stream(NodeKind::OpenAiCompat, "/api/chat", &chat_body(MODEL, None));
    assert!(took < ms(2000), "no hang: {took:?}");
    let lines = ndjson(&r.body);
    let (last, tokens) = lines.split_last().unwrap();
    assert!(tokens.len() >= 2, "{lines:?}");
    assert!(
        tokens
            .iter()
            .all(|l| l["done"] == false && l.get("error").is_none())
    );
    assert!(
        last["error"].as_str().is_some_and(|m| !m.is_empty()),
        "a terminal error line: {last}"
    );
    let id = r.header("x-drover-trace").unwrap();
    assert_charged_broken(&gw, &node, id);
}
