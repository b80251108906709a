//! More end-to-end behaviour of the gateway: hedged streams, upstream 4xx
//! passed through without a retry, oversized replies treated as invalid,
//! and operator surfaces that never leak node URLs or API keys.
//!
//! The gateways here use round-robin (without prefix affinity) so that,
//! within a few calls, a given node is certainly tried first at least once;
//! the loops are bounded.

mod support;

use std::time::Instant;

use drover::config::{GatewayConfig, Secret};
use drover::fake::{Behaviour, Fail, Outcome};
use drover_core::node::NodeKind;
use serde_json::Value;
use support::*;

const MODEL: &str = "m";

/// The nodes the trace sent attempts to, each with its hedge flag.
fn sends(events: &[Value]) -> Vec<(String, bool)> {
    events
        .iter()
        .filter(|e| e["event"] == "sent")
        .map(|e| {
            (
                e["node"].as_str().unwrap().to_owned(),
                e["hedge"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn finished(events: &[Value]) -> &Value {
    let fin = events.last().unwrap();
    assert_eq!(fin["event"], "finished", "{events:?}");
    fin
}

/// The value of the unlabelled counter `name` in a Prometheus text.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} is in the metrics:\n{metrics}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name} is a number: {e}"))
}

/// Hedging on, with a delay of 50..150 ms (150 ms before any sample) and
/// a budget that never runs out in these tests.
fn hedging(cfg: &mut GatewayConfig) {
    let h = &mut cfg.router.hedge;
    h.enabled = true;
    h.min_delay = drover_core::Duration::from_millis(50);
    h.max_delay = drover_core::Duration::from_millis(150);
    h.budget_ratio = 1.0;
    h.budget_burst = 10;
}

#[test]
fn a_slow_stream_is_hedged_to_another_node_and_the_loser_is_cancelled() {
    // The slow node needs 3 s for its first token; the gateway's TTFT
    // timeout is raised to 2.5 s so that only a hedge can answer quickly.
    let slow = fake_with(
        NodeKind::Ollama,
        &[MODEL],
        Behaviour::paced(ms(3000), ms(0), 4),
    );
    let fast = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let mut cfg = round_robin(config(vec![
        node("slow", &slow, &[MODEL]),
        node("fast", &fast, &[MODEL]),
    ]));
    cfg.timeouts.ttft = ms(2500);
    hedging(&mut cfg);
    let gw = start(cfg);

    let mut hedged = 0;
    for _ in 0..3 {
        let t0 = Instant::now();
        let r = post(
            gw.addr,
            "/v1/chat/completions",
            &chat_body(MODEL, Some(true)),
        );
        let took = t0.elapsed();
        assert_eq!(r.status, 200, "{}", r.text());
        let events = sse_events(&r.body);
        assert!(
            events.iter().all(|e| e.get("error").is_none()),
            "{events:?}"
        );
        assert!(!sse_text(&events).is_empty());
        assert!(took < ms(1500), "{took:?}: answered long before the TTFT");
        let id = r.header("x-drover-trace").unwrap();
        let t = trace(&gw, id);
        let fin = finished(&t);
        assert_eq!(fin["outcome"], "succeeded", "{t:?}");
        assert_eq!(fin["node"], "fast", "{t:?}");
        let sent = sends(&t);
        if sent[0].0 == "slow" {
            assert_eq!(
                sent,
                [("slow".to_owned(), false), ("fast".to_owned(), true)],
                "{t:?}"
            );
            assert!(
                t.iter()
                    .any(|e| e["event"] == "attempt_cancelled" && e["node"] == "slow"),
                "the losing attempt is cancelled: {t:?}"
            );
            assert!(failures_on(&t, "slow").is_empty(), "{t:?}");
            assert!(took >= ms(100), "{took:?}: the hedge waited its delay");
            hedged += 1;
        } else {
            assert_eq!(sent, [("fast".to_owned(), false)], "no hedge: {t:?}");
        }
    }
    assert!(
        hedged >= 1,
        "round-robin sent a first attempt to the slow node"
    );
    // Each losing attempt was cancelled upstream, not left running.
    wait_until(
        ms(2000),
        "the slow node to see its requests cancelled",
        || {
            let c = slow.requests();
            c.cancelled == hedged && c.in_flight == 0
        },
    );
    assert_eq!(slow.requests().calls, hedged);
    assert_eq!(in_flight(&gw, "slow"), 0);
    // A cancelled hedge loser does not count against the node.
    assert_eq!(breaker_failures(&gw, "slow"), 0);
    let metrics = get(gw.addr, "/metrics").text();
    assert_eq!(counter(&metrics, "drover_hedges_total"), hedged as f64);
    assert_eq!(counter(&metrics, "drover_hedges_won_total"), hedged as f64);
}

#[test]
fn a_failed_hedge_leaves_the_first_attempt_to_answer() {
    // The first node answers after 400 ms; the hedge (at 150 ms) goes to a
    // node that answers 500. The call must still succeed on the first.
    let slowish = fake_with(
        NodeKind::OpenAiCompat,
        &[MODEL],
        Behaviour::paced(ms(400), ms(0), 4),
    );
    let broken = fake_with(NodeKind::Ollama, &[MODEL], failing(Fail::Status(500)));
    let mut cfg = round_robin(config(vec![
        node("slowish", &slowish, &[MODEL]),
        node("broken", &broken, &[MODEL]),
    ]));
    hedging(&mut cfg);
    let gw = start(cfg);
    let mut saw = 0;
    for _ in 0..3 {
        let t0 = Instant::now();
        let r = post(gw.addr, "/api/chat", &chat_body(MODEL, Some(true)));
        let took = t0.elapsed();
        assert_eq!(r.status, 200, "{}", r.text());
        let lines = ndjson(&r.body);
        assert_eq!(lines.last().unwrap()["done"], true, "{lines:?}");
        assert!(lines.iter().all(|l| l.get("error").is_none()), "{lines:?}");
        let t = trace(&gw, r.header("x-drover-trace").unwrap());
        let fin = finished(&t);
        assert_eq!(fin["outcome"], "succeeded", "{t:?}");
        assert_eq!(fin["node"], "slowish", "{t:?}");
        if sends(&t)[0].0 == "slowish" {
            assert_eq!(
                sends(&t),
                [("slowish".to_owned(), false), ("broken".to_owned(), true)],
                "{t:?}"
            );
            assert_eq!(failures_on(&t, "broken"), ["upstream_5xx"], "{t:?}");
            assert!(
                took >= ms(350) && took < ms(1500),
                "{took:?}: the first attempt's answer"
            );
            saw += 1;
        } else {
            // broken first: it fails at once and the call fails over.
            assert_eq!(failures_on(&t, "broken"), ["upstream_5xx"], "{t:?}");
        }
    }
    assert!(saw >= 1, "round-robin sent a first attempt to slowish");
    assert_eq!(in_flight(&gw, "slowish"), 0);
    assert_eq!(in_flight(&gw, "broken"), 0);
    assert_eq!(slowish.requests().cancelled, 0, "the winner was not cut");
    let metrics = get(gw.addr, "/metrics").text();
    assert_eq!(counter(&metrics, "drover_hedges_total"), saw as f64);
    assert_eq!(counter(&metrics, "drover_hedges_won_total"), 0.0);
}

#[test]
fn non_streamed_calls_are_hedged_only_when_configured() {
    // Non-streamed, the slow node answers after 3 s; the attempt timeout
    // is 800 ms.
    for non_stream in [false, true] {
        let slow = fake_with(
            NodeKind::Ollama,
            &[MODEL],
            Behaviour::paced(ms(3000), ms(0), 4),
        );
        let fast = fake(NodeKind::OpenAiCompat, &[MODEL]);
        let mut cfg = round_robin(config(vec![
            node("slow", &slow, &[MODEL]),
            node("fast", &fast, &[MODEL]),
        ]));
        cfg.timeouts.attempt = ms(800);
        hedging(&mut cfg);
        cfg.router.hedge.non_stream = non_stream;
        let gw = start(cfg);
        let mut slow_first = 0;
        for _ in 0..2 {
            let t0 = Instant::now();
            let r = post(gw.addr, "/v1/chat/completions", &chat_body(MODEL, None));
            let took = t0.elapsed();
            assert_eq!(r.status, 200, "{}", r.text());
            let t = trace(&gw, r.header("x-drover-trace").unwrap());
            assert_eq!(finished(&t)["node"], "fast", "{t:?}");
            let sent = sends(&t);
            if sent[0].0 != "slow" {
                continue;
            }
            slow_first += 1;
            if non_stream {
                assert_eq!(sent[1], ("fast".to_owned(), true), "{t:?}");
                assert!(took < ms(700), "{took:?}: the hedge answered");
            } else {
                assert_eq!(sent[1], ("fast".to_owned(), false), "{t:?}");
                assert_eq!(failures_on(&t, "slow"), ["timeout"], "{t:?}");
                assert!(took >= ms(750), "{took:?}: no hedge, a failover");
            }
        }
        assert!(slow_first >= 1, "round-robin tried the slow node first");
        let metrics = get(gw.addr, "/metrics").text();
        let want = if non_stream { slow_first as f64 } else { 0.0 };
        assert_eq!(
            counter(&metrics, "drover_hedges_total"),
            want,
            "{non_stream}"
        );
    }
}

#[test]
fn an_upstream_422_is_passed_through_and_not_retried() {
    upstream_4xx(NodeKind::OpenAiCompat, 422);
}

#[test]
fn an_upstream_400_is_passed_through_and_not_retried() {
    upstream_4xx(NodeKind::Ollama, 400);
}

/// A node of `kind` that answers every request with `status` (a 4xx),
/// next to a healthy one.
fn upstream_4xx(kind: NodeKind, status: u16) {
    let bad = fake_with(kind, &[MODEL], failing(Fail::Status(status)));
    let good = fake(NodeKind::Ollama, &[MODEL]);
    let gw = start(round_robin(config(vec![
        node("bad", &bad, &[MODEL]),
        node("good", &good, &[MODEL]),
    ])));
    let mut ok = 0;
    let mut rejected = 0;
    // Alternate fronts and streaming; round-robin sends half to `bad`.
    let cases = [
        ("/v1/chat/completions", None),
        ("/api/chat", Some(false)),
        ("/v1/chat/completions", Some(true)),
        ("/api/chat", Some(true)),
    ];
    for (path, stream) in cases {
        let r = post(gw.addr, path, &chat_body(MODEL, stream));
        let id = r.header("x-drover-trace").unwrap().to_owned();
        let t = trace(&gw, &id);
        if r.status == 200 {
            assert_eq!(finished(&t)["node"], "good", "{t:?}");
            ok += 1;
            continue;
        }
        assert_eq!(r.status, status, "{path}: {}", r.text());
        rejected += 1;
        let v = r.json();
        let message = if path.starts_with("/v1/") {
            v["error"]["message"].as_str()
        } else {
            v["error"].as_str()
        }
        .unwrap_or_else(|| panic!("{path}: the front's error shape: {v}"));
        assert!(
            message.contains(&format!("injected status {status}")),
            "the upstream message is passed on: {message}"
        );
        assert_eq!(sends(&t), [("bad".to_owned(), false)], "no retry: {t:?}");
        let fin = finished(&t);
        assert_eq!(fin["outcome"], "failed", "{t:?}");
        assert_eq!(fin["failure"], "client_error", "{t:?}");
        assert_eq!(fin["status"], status, "{t:?}");
        assert_eq!(fin["attempts"], 1, "{t:?}");
    }
    assert!(rejected >= 1, "round-robin sent calls to the bad node");
    assert_eq!(bad.requests().outcome(Outcome::Status), rejected);
    // The other node only saw the calls that were its own.
    assert_eq!(good.requests().calls, ok);
    // The client's mistake is not the node's fault.
    assert_eq!(breaker_failures(&gw, "bad"), 0);
    let n = &nodes(gw.addr)["bad"];
    assert_eq!(n["breaker"]["state"], "closed", "{n}");
    assert_eq!(n["breaker"]["consecutive_failures"], 0, "{n}");
}

/// A response cap (2 KiB) that a 2000-token reply exceeds and a 4-token
/// one does not.
fn long_replies(cfg: &mut GatewayConfig) {
    cfg.limits.max_response_bytes = 2048;
}

/// 2000 tokens at once: a non-streamed reply of well over 2 KiB.
fn long_behaviour() -> Behaviour {
    Behaviour::paced(ms(0), ms(0), 2000)
}

#[test]
fn an_oversized_reply_fails_over_to_a_normal_one() {
    let big = fake_with(NodeKind::Ollama, &[MODEL], long_behaviour());
    let small = fake_with(
        NodeKind::OpenAiCompat,
        &[MODEL],
        Behaviour::paced(ms(0), ms(0), 4),
    );
    let mut cfg = round_robin(config(vec![
        node("big", &big, &[MODEL]),
        node("small", &small, &[MODEL]),
    ]));
    long_replies(&mut cfg);
    let gw = start(cfg);
    let mut failed_over = 0;
    for _ in 0..3 {
        let r = post(gw.addr, "/v1/chat/completions", &chat_body(MODEL, None));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body.len() <= 2048, "{} bytes", r.body.len());
        let v = r.json();
        assert!(
            !v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .is_empty()
        );
        let t = trace(&gw, r.header("x-drover-trace").unwrap());
        assert_eq!(finished(&t)["node"], "small", "{t:?}");
        let f = failures_on(&t, "big");
        if !f.is_empty() {
            assert_eq!(f, ["invalid_reply"], "{t:?}");
            failed_over += 1;
        }
    }
    assert!(failed_over >= 1, "round-robin tried the big node first");
    assert_eq!(big.requests().calls, failed_over);
}

#[test]
fn an_oversized_reply_from_the_only_node_is_a_502() {
    let big = fake_with(NodeKind::OpenAiCompat, &[MODEL], long_behaviour());
    let mut cfg = config(vec![node("big", &big, &[MODEL])]);
    long_replies(&mut cfg);
    let gw = start(cfg);
    let r = post(gw.addr, "/api/chat", &chat_body(MODEL, Some(false)));
    assert_eq!(r.status, 502, "{}", r.text());
    let message = r.json()["error"].as_str().unwrap().to_owned();
    assert!(message.contains("invalid_reply"), "{message}");
    // The same reply under a large enough cap is fine.
    drop(gw);
    let gw = start(config(vec![node("big", &big, &[MODEL])]));
    let r = post(gw.addr, "/api/chat", &chat_body(MODEL, Some(false)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.len() > 2048, "the reply is long: {}", r.body.len());
}

#[test]
fn status_has_node_detail_and_nothing_leaks_urls_or_keys() {
    const KEY: &str = "sk-secret-123";
    let keyed = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let plain = fake(NodeKind::Ollama, &[MODEL]);
    let mut n = node("keyed", &keyed, &[MODEL]);
    n.api_key = Some(Secret::new(KEY));
    n.send_auth = true;
    let gw = start(round_robin(config(vec![
        n,
        node("plain", &plain, &[MODEL]),
    ])));
    // Round-robin: two calls, one on each node.
    for _ in 0..2 {
        let r = post(gw.addr, "/v1/chat/completions", &chat_body(MODEL, None));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(keyed.requests().calls, 1);
    assert_eq!(plain.requests().calls, 1);
    let h = keyed.last_headers().unwrap();
    assert_eq!(
        h.get("authorization").and_then(|v| v.to_str().ok()),
        Some("Bearer sk-secret-123")
    );
    // The unkeyed node gets no Authorization header.
    let h = plain.last_headers().unwrap();
    assert!(h.get("authorization").is_none(), "{h:?}");

    // Now the keyed node fails; with the other node disabled the client
    // gets a 502 that does not carry the key.
    keyed.set(failing(Fail::Status(500)));
    let r = set_mode(gw.addr, "plain", &serde_json::json!({"mode": "disabled"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let err = post(gw.addr, "/v1/chat/completions", &chat_body(MODEL, None));
    assert_eq!(err.status, 502, "{}", err.text());
    assert_eq!(
        err.json()["error"]["code"],
        "upstream_5xx",
        "{}",
        err.text()
    );
    let err_stream = post(gw.addr, "/api/chat", &chat_body(MODEL, Some(true)));
    assert_eq!(err_stream.status, 502, "{}", err_stream.text());

    let status = get(gw.addr, "/status");
    assert_eq!(status.status, 200);
    let v = status.json();
    let detail = v["detail"]["nodes"].as_array().unwrap_or_else(|| {
        panic!("loopback /status has per-node detail: {v}");
    });
    let mut names: Vec<(&str, &str)> = detail
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["mode"].as_str().unwrap()))
        .collect();
    names.sort();
    assert_eq!(names, [("keyed", "enabled"), ("plain", "disabled")], "{v}");

    let bodies = [
        ("/status", status.text()),
        ("/nodes", get(gw.addr, "/nodes").text()),
        ("/metrics", get(gw.addr, "/metrics").text()),
        ("the 502", err.text()),
        ("the streamed 502", err_stream.text()),
    ];
    for (what, body) in &bodies {
        assert!(!body.contains(KEY), "{what} has the API key: {body}");
        for addr in [keyed.addr(), plain.addr()] {
            assert!(
                !body.contains(&format!(":{}", addr.port())),
                "{what} has a node port: {body}"
            );
        }
        assert!(!body.contains("127.0.0.1"), "{what} has a URL: {body}");
    }
}
