//! Streams and their ends: a client that leaves (mid-stream, or before
//! the first token) releases every slot, cancels the upstream and never
//! counts against the node; a graceful shutdown lets a running stream
//! finish intact.

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use drover::fake::{Behaviour, FakeServer};
use drover::serve::Running;
use drover_core::node::NodeKind;
use serde_json::Value;
use support::*;

const MODEL: &str = "m";

/// A gateway in front of one node `slow` that takes one call at a time.
fn one_slot(f: &FakeServer, ttft: Duration) -> Running {
    let mut n = node("slow", f, &[MODEL]);
    n.max_concurrency = 1;
    let mut cfg = config(vec![n]);
    cfg.timeouts.ttft = ttft;
    start(cfg)
}

fn open_stream(gw: &Running, path: &str, body: &Value) -> Streaming {
    Streaming::open(gw.addr, "POST", path, &[], body.to_string().as_bytes())
}

fn outcome(gw: &Running, trace: &str) -> Value {
    let r = get(gw.addr, &format!("/trace/{trace}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    v["events"].as_array().unwrap().last().unwrap().clone()
}

/// After a client left: nothing is held, the node saw the cancellation,
/// its breaker is untouched, and the one slot serves the next call.
fn assert_released(gw: &Running, f: &FakeServer, trace: &str) {
    wait_until(ms(2000), "the call and its upstream to be released", || {
        let c = f.requests();
        active_calls(gw) == 0 && in_flight(gw, "slow") == 0 && c.cancelled == 1 && c.in_flight == 0
    });
    assert_eq!(
        breaker_failures(gw, "slow"),
        0,
        "a client leaving is not the node's fault"
    );
    let fin = outcome(gw, trace);
    assert_eq!(fin["event"], "finished", "{fin}");
    assert_eq!(fin["outcome"], "cancelled", "{fin}");
    let n = &nodes(gw.addr)["slow"];
    assert_eq!(n["breaker"]["state"], "closed", "{n}");
    assert_eq!(n["in_flight"], 0, "{n}");
    // The node's only slot is free again.
    f.set(Behaviour::default());
    let r = post(gw.addr, "/api/chat", &chat_body(MODEL, Some(false)));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_client_leaving_mid_stream_releases_its_slot() {
    // 100 tokens 100 ms apart: 10 s, far longer than the test.
    let slow = fake_with(
        NodeKind::OpenAiCompat,
        &[MODEL],
        Behaviour::paced(ms(0), ms(100), 100),
    );
    let gw = one_slot(&slow, ms(500));
    let mut s = open_stream(&gw, "/v1/chat/completions", &chat_body(MODEL, Some(true)));
    assert_eq!(s.status, 200);
    let trace = s.header("x-drover-trace").unwrap().to_owned();
    let first = s.next_chunk().expect("a first chunk");
    assert!(
        first.starts_with(b"data: {"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    assert_eq!(active_calls(&gw), 1);
    assert_eq!(in_flight(&gw, "slow"), 1);
    assert_eq!(slow.requests().in_flight, 1);
    let left = Instant::now();
    drop(s);
    assert_released(&gw, &slow, &trace);
    assert!(left.elapsed() < ms(3000), "{:?}", left.elapsed());
    let metrics = get(gw.addr, "/metrics").text();
    assert!(
        metrics.contains("\ndrover_client_disconnects_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn a_client_leaving_before_the_first_token_releases_its_slot() {
    // The node thinks for 4 s; the gateway would wait 5 s for it.
    let slow = fake_with(
        NodeKind::Ollama,
        &[MODEL],
        Behaviour::paced(ms(4000), ms(10), 4),
    );
    let gw = one_slot(&slow, ms(5000));
    let s = std::thread::spawn({
        let addr = gw.addr;
        move || {
            let body = chat_body(MODEL, None).to_string();
            let mut s = TcpStream::connect(addr).unwrap();
            let req = format!(
                "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
            s
        }
    })
    .join()
    .unwrap();
    wait_until(ms(2000), "the node to get the request", || {
        slow.requests().in_flight == 1
    });
    assert_eq!(active_calls(&gw), 1);
    let trace = gw.gateway.router.with(|r| {
        let t = r
            .trace()
            .iter()
            .rev()
            .map(|rec| rec.trace)
            .find(|t| *t != drover_core::probe::PROBE_TRACE)
            .expect("the call is traced");
        format!("{:016x}", t.0)
    });
    let left = Instant::now();
    drop(s);
    assert_released(&gw, &slow, &trace);
    assert!(
        left.elapsed() < ms(3000),
        "released long before the node's 4 s: {:?}",
        left.elapsed()
    );
    let metrics = get(gw.addr, "/metrics").text();
    assert!(
        metrics.contains("\ndrover_client_disconnects_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn a_graceful_stop_lets_a_running_stream_finish() {
    // 20 tokens 50 ms apart: 1 s of stream.
    let f = fake_with(
        NodeKind::Ollama,
        &[MODEL],
        Behaviour::paced(ms(0), ms(50), 20),
    );
    let gw = start(config(vec![node("n", &f, &[MODEL])]));
    let addr = gw.addr;
    let mut s = open_stream(&gw, "/v1/chat/completions", &chat_body(MODEL, Some(true)));
    assert_eq!(s.status, 200);
    let mut body = s.next_chunk().expect("a first chunk");
    let stopper = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = gw.stop();
        (r, t0.elapsed())
    });
    std::thread::sleep(ms(100));
    assert!(!stopper.is_finished(), "stop waits for the stream");
    body.extend(s.rest());
    let events = sse_events(&body);
    assert!(
        events.iter().all(|e| e.get("error").is_none()),
        "{events:?}"
    );
    let finish: Vec<&str> = events
        .iter()
        .filter_map(|e| e["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["stop"], "the stream ended normally: {events:?}");
    let words = sse_text(&events);
    assert_eq!(words.split_whitespace().count(), 20, "{words:?}");
    let (r, took) = stopper.join().unwrap();
    assert_eq!(r, Ok(()));
    assert!(took < ms(3000), "stopped within the grace: {took:?}");
    assert_eq!(f.requests().cancelled, 0, "nothing was cut");
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}

#[test]
fn a_stream_over_the_response_cap_ends_with_an_error_event() {
    // 200 tokens of ~200 bytes each is ~40 KB of SSE; the cap is 8 KiB.
    let node = fake_with(
        NodeKind::OpenAiCompat,
        &[MODEL],
        Behaviour::paced(ms(0), ms(1), 200),
    );
    let mut cfg = config(vec![support::node("only", &node, &[MODEL])]);
    cfg.limits.max_response_bytes = 8 * 1024;
    let gw = start(cfg);
    let body = serde_json::json!({
        "model": MODEL, "stream": true,
        "messages": [{"role": "user", "content": "long"}]
    });
    let r = post(gw.addr, "/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "the stream had started");
    let text = r.text();
    assert!(
        text.contains("response size limit"),
        "the client is told why the stream ended: {text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(
        text.len() < 16 * 1024,
        "cut near the cap: {} bytes",
        text.len()
    );
    wait_until(ms(1000), "the call to be released", || {
        active_calls(&gw) == 0 && in_flight(&gw, "only") == 0
    });
}
