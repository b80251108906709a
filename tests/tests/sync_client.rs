//! `drover::sync::Client` (the blocking transport) against fake model
//! servers on 127.0.0.1: failover, cooldowns, streams as iterators,
//! timeouts, cancellation and sharing between threads. Every test is
//! bounded in time and stops its servers when it ends. The thread-leak
//! check is in `sync_client_threads.rs` (its own process, so other tests'
//! threads do not blur the count).

mod support;

use std::time::{Duration, Instant};

use drover::fake::{Behaviour, Fail, FakeServer};
use drover::sync::{Client, Error};
use drover::wire::Front;
use drover_core::node::NodeKind;
use serde_json::{Value, json};
use support::{
    chat_body, config, dead_port, failing, fake, fake_with, ms, node, node_at, round_robin,
};

const M: &[&str] = &["m"];

fn client(nodes: Vec<drover::config::NodeConfig>) -> Client {
    Client::from_config(round_robin(config(nodes))).expect("the client builds")
}

fn permits(c: &Client) -> u32 {
    c.router().with(|r| r.permits_outstanding())
}

fn in_flight(c: &Client, name: &str) -> u32 {
    c.router().with(|r| {
        let id = r.nodes().find(name).expect("the node exists");
        r.node(id).expect("the node exists").in_flight
    })
}

fn paced(ttft: u64, interval: u64, tokens: u32) -> Behaviour {
    Behaviour::paced(ms(ttft), ms(interval), tokens)
}

#[test]
fn failover_on_refused_connection_then_all_failed_names_the_last_failure() {
    let good = fake(NodeKind::Ollama, M);
    let c = client(vec![
        node_at("dead", NodeKind::Ollama, dead_port(), M, &[]),
        node("good", &good, M),
    ]);
    let mut failovers = 0;
    for _ in 0..4 {
        let a = c
            .chat(Front::OpenAi, &chat_body("m", None))
            .expect("the good node answers");
        assert_eq!(a.node, "good");
        assert!(
            a.body["choices"][0]["message"]["content"].is_string(),
            "{}",
            a.body
        );
        failovers += usize::from(a.attempts > 1);
    }
    assert!(
        failovers >= 1,
        "round-robin sends at least one call to the dead node first"
    );
    assert_eq!(permits(&c), 0);

    let c = client(vec![
        node_at("dead-a", NodeKind::Ollama, dead_port(), M, &[]),
        node_at("dead-b", NodeKind::Ollama, dead_port(), M, &[]),
    ]);
    match c.chat(Front::OpenAi, &chat_body("m", None)) {
        Err(e @ Error::AllAttemptsFailed { .. }) => {
            let Error::AllAttemptsFailed {
                attempts,
                last_failure,
                ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(*attempts, 2);
            assert_eq!(*last_failure, "connect");
            assert!(
                e.to_string()
                    .contains("every attempt failed (2 tried); last failure: connect"),
                "{e}"
            );
        }
        other => panic!("expected every attempt to fail, got {other:?}"),
    }
    assert_eq!(permits(&c), 0);
}

#[test]
fn failover_on_500_reaches_the_healthy_node() {
    let bad = fake_with(NodeKind::OpenAiCompat, M, failing(Fail::Status(500)));
    let good = fake(NodeKind::OpenAiCompat, M);
    let c = client(vec![node("bad", &bad, M), node("good", &good, M)]);
    for _ in 0..4 {
        let a = c
            .chat(Front::Ollama, &chat_body("m", Some(false)))
            .expect("answered");
        assert_eq!(a.node, "good");
        assert_eq!(
            a.body["done"],
            json!(true),
            "an Ollama-shaped answer: {}",
            a.body
        );
    }
    assert!(bad.requests().total >= 1, "the failing node was tried");
    let failures = c.router().with(|r| {
        let id = r.nodes().find("bad").expect("exists");
        r.node(id).expect("exists").breaker.consecutive_failures()
    });
    assert!(failures >= 1, "the 500s were charged to the node's breaker");
}

#[test]
fn a_429_cools_the_node_down_and_calls_move_to_another() {
    let busy = fake_with(
        NodeKind::Ollama,
        M,
        failing(Fail::TooMany { retry_after_s: 30 }),
    );
    let free = fake(NodeKind::Ollama, M);
    let c = client(vec![node("busy", &busy, M), node("free", &free, M)]);
    for _ in 0..6 {
        let a = c
            .chat(Front::Ollama, &chat_body("m", None))
            .expect("answered");
        assert_eq!(a.node, "free");
    }
    assert_eq!(
        busy.requests().total,
        1,
        "after its 429 with Retry-After: 30 the node gets no call"
    );
    // Embeddings take the same way round.
    let e = c
        .embed(Front::OpenAi, &json!({"model": "m", "input": ["a", "b"]}))
        .expect("embedded");
    assert_eq!(e.node, "free");
    assert_eq!(e.body["data"].as_array().map(Vec::len), Some(2));
}

#[test]
fn a_stream_is_an_iterator_of_chunks_in_the_front_format() {
    let up = fake_with(NodeKind::OpenAiCompat, M, paced(0, 2, 6));
    let c = client(vec![node("up", &up, M)]);
    // Ollama front over an OpenAI node: NDJSON chat lines.
    let chunks: Vec<Value> = c
        .chat_stream(Front::Ollama, &chat_body("m", None))
        .expect("the stream starts")
        .collect::<Result<_, _>>()
        .expect("no error item");
    assert!(chunks.len() >= 6, "{chunks:?}");
    assert_eq!(chunks.last().map(|v| v["done"].clone()), Some(json!(true)));
    let text: String = chunks
        .iter()
        .filter_map(|v| v["message"]["content"].as_str())
        .collect();
    assert!(!text.is_empty());
    // OpenAI front: chunk objects, no [DONE] item.
    let chunks: Vec<Value> = c
        .chat_stream(Front::OpenAi, &chat_body("m", Some(true)))
        .expect("the stream starts")
        .collect::<Result<_, _>>()
        .expect("no error item");
    assert!(
        chunks
            .iter()
            .all(|v| v["object"] == "chat.completion.chunk"),
        "{chunks:?}"
    );
    assert_eq!(permits(&c), 0);
    assert_eq!(
        c.router()
            .with(|r| r.metrics().op(drover_core::route::Op::Stream).succeeded),
        2
    );
}

#[test]
fn a_stream_broken_mid_way_ends_with_an_error_item_not_a_hang() {
    let up = fake_with(
        NodeKind::Ollama,
        M,
        Behaviour {
            fail: Fail::BreakAfter(3),
            ..paced(0, 5, 20)
        },
    );
    let c = client(vec![node("up", &up, M)]);
    let t = Instant::now();
    let items: Vec<Result<Value, Error>> = c
        .chat_stream(Front::OpenAi, &chat_body("m", None))
        .expect("the first token came before the break")
        .collect();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    let (last, oks) = items.split_last().expect("some items");
    assert!(oks.iter().all(Result::is_ok), "{items:?}");
    assert!(!oks.is_empty());
    match last {
        Err(e @ Error::StreamBroken { failure, .. }) => {
            assert_eq!(*failure, "broken_stream");
            assert!(
                e.to_string().contains("the stream broke after it started"),
                "{e}"
            );
        }
        other => panic!("expected a broken-stream item last, got {other:?}"),
    }
    assert_eq!(permits(&c), 0);
    assert_eq!(in_flight(&c, "up"), 0);
}

#[test]
fn ttft_timeout_fails_over_and_a_lone_slow_node_is_cut_at_the_deadline() {
    let slow = fake_with(NodeKind::Ollama, M, paced(5_000, 1, 4));
    let fast = fake(NodeKind::Ollama, M);
    let mut cfg = round_robin(config(vec![node("slow", &slow, M), node("fast", &fast, M)]));
    cfg.timeouts.ttft = ms(300);
    let c = Client::from_config(cfg).expect("builds");
    let mut failovers = 0;
    for _ in 0..2 {
        let t = Instant::now();
        let s = c
            .chat_stream(Front::Ollama, &chat_body("m", None))
            .expect("fails over");
        assert_eq!(s.node(), "fast");
        failovers += usize::from(s.attempts() > 1);
        assert_eq!(s.filter(Result::is_err).count(), 0);
        assert!(t.elapsed() < ms(3_000), "took {:?}", t.elapsed());
    }
    assert_eq!(
        failovers, 1,
        "one of two round-robin calls met the slow node first"
    );

    let slow_only = fake_with(NodeKind::Ollama, M, paced(5_000, 1, 4));
    let mut cfg = config(vec![node("slow", &slow_only, M)]);
    cfg.timeouts.ttft = ms(300);
    let c = Client::from_config(cfg).expect("builds");
    let t = Instant::now();
    let e = c
        .chat_stream(Front::Ollama, &chat_body("m", None))
        .expect_err("no first token in time");
    let took = t.elapsed();
    assert!(took >= ms(290) && took < ms(2_500), "cut after {took:?}");
    assert!(
        matches!(
            e,
            Error::AllAttemptsFailed {
                last_failure: "ttft_timeout",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(permits(&c), 0);
}

#[test]
fn a_hung_upstream_is_cut_by_the_attempt_timeout() {
    let hung = fake_with(NodeKind::OpenAiCompat, M, failing(Fail::Hang));
    let mut cfg = config(vec![node("hung", &hung, M)]);
    cfg.timeouts.attempt = ms(300);
    let c = Client::from_config(cfg).expect("builds");
    let t = Instant::now();
    let e = c
        .chat(Front::OpenAi, &chat_body("m", None))
        .expect_err("cut");
    let took = t.elapsed();
    assert!(took >= ms(290) && took < ms(2_500), "cut after {took:?}");
    assert!(
        matches!(
            e,
            Error::AllAttemptsFailed {
                last_failure: "timeout",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(permits(&c), 0);
    assert_eq!(in_flight(&c, "hung"), 0);

    // With a healthy node beside it, the call fails over.
    let good = fake(NodeKind::OpenAiCompat, M);
    let mut cfg = round_robin(config(vec![node("hung", &hung, M), node("good", &good, M)]));
    cfg.timeouts.attempt = ms(300);
    let c = Client::from_config(cfg).expect("builds");
    for _ in 0..2 {
        let a = c
            .chat(Front::OpenAi, &chat_body("m", None))
            .expect("fails over");
        assert_eq!(a.node, "good");
    }
}

#[test]
fn dropping_a_stream_mid_way_releases_its_slot_and_closes_the_connection() {
    let up = fake_with(NodeKind::Ollama, M, paced(0, 50, 200));
    let c = client(vec![node("up", &up, M)]);
    let mut s = c
        .chat_stream(Front::Ollama, &chat_body("m", None))
        .expect("starts");
    assert!(s.next().is_some_and(|i| i.is_ok()));
    assert!(s.next().is_some_and(|i| i.is_ok()));
    assert_eq!(permits(&c), 1);
    assert_eq!(in_flight(&c, "up"), 1);
    drop(s);
    assert_eq!(permits(&c), 0);
    assert_eq!(in_flight(&c, "up"), 0);
    let breaker_failures = c.router().with(|r| {
        let id = r.nodes().find("up").expect("exists");
        r.node(id).expect("exists").breaker.consecutive_failures()
    });
    assert_eq!(breaker_failures, 0, "a cancel is not the node's fault");
    support::wait_until(
        Duration::from_secs(3),
        "the fake sees the disconnect",
        || up.requests().in_flight == 0,
    );
}

#[test]
fn many_threads_share_one_client() {
    let a: FakeServer = fake_with(NodeKind::Ollama, M, paced(2, 1, 4));
    let b: FakeServer = fake_with(NodeKind::OpenAiCompat, M, paced(2, 1, 4));
    let c = client(vec![node("a", &a, M), node("b", &b, M)]);
    std::thread::scope(|s| {
        for t in 0..8 {
            let c = &c;
            s.spawn(move || {
                for i in 0..10 {
                    if (t + i) % 2 == 0 {
                        c.chat(Front::OpenAi, &chat_body("m", None))
                            .expect("answered");
                    } else {
                        let chunks: Vec<Value> = c
                            .chat_stream(Front::OpenAi, &chat_body("m", None))
                            .expect("starts")
                            .collect::<Result<_, _>>()
                            .expect("no error item");
                        let n = chunks.len();
                        assert!(n >= 4);
                    }
                }
            });
        }
    });
    assert_eq!(permits(&c), 0);
    assert_eq!(a.requests().total + b.requests().total, 80);
    assert!(a.requests().total > 0 && b.requests().total > 0);
}

#[test]
fn bad_requests_name_the_field_and_unknown_models_are_refused() {
    let up = fake(NodeKind::Ollama, M);
    let c = client(vec![node("up", &up, M)]);
    let e = c
        .chat(Front::OpenAi, &json!({"model": "m", "messages": "hi"}))
        .expect_err("messages must be an array");
    assert!(
        matches!(&e, Error::BadRequest(w) if w.field == "messages"),
        "{e}"
    );
    let e = c
        .chat(Front::OpenAi, &chat_body("m", Some(true)))
        .expect_err("chat is not a stream");
    assert!(e.to_string().contains("field `stream`"), "{e}");
    let e = c
        .chat(Front::Ollama, &chat_body("nope", None))
        .expect_err("unknown model");
    assert_eq!(
        e.to_string(),
        "model `nope` is not served by any configured node"
    );
    assert_eq!(up.requests().total, 0);
}

#[test]
fn a_queued_call_runs_when_a_stream_ends_and_the_client_is_shareable() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Client>();
    send::<drover::sync::ChatStream>();

    let up = fake_with(NodeKind::Ollama, M, paced(0, 20, 200));
    let mut cfg = config(vec![node("up", &up, M)]);
    cfg.router.pools = drover_core::admission::PoolLimits {
        global: 1,
        chat: 1,
        stream: 1,
        embed: 1,
        background: 1,
    };
    cfg.timeouts.queue_wait = Duration::from_secs(3);
    let c = Client::from_config(cfg).expect("builds");
    let mut s = c
        .chat_stream(Front::Ollama, &chat_body("m", None))
        .expect("starts");
    assert!(s.next().is_some_and(|i| i.is_ok()));
    let t = Instant::now();
    std::thread::scope(|scope| {
        // An embedding: the fake answers it at once (a whole chat would
        // take its 200 tokens' time).
        let waiter = scope.spawn(|| c.embed(Front::Ollama, &json!({"model": "m", "input": "x"})));
        support::wait_until(Duration::from_secs(2), "the second call to queue", || {
            c.router().with(|r| r.queue_depth()) == 1
        });
        std::thread::sleep(ms(100));
        drop(s);
        let a = waiter
            .join()
            .expect("no panic")
            .expect("granted after the stream ended");
        assert_eq!(a.node, "up");
    });
    assert!(
        t.elapsed() >= ms(100) && t.elapsed() < Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(permits(&c), 0);

    // With no room and no wait allowed, the call is rejected with a reason.
    let mut cfg = config(vec![node("up", &up, M)]);
    cfg.router.pools.global = 1;
    cfg.router.pools.chat = 1;
    cfg.router.pools.stream = 1;
    cfg.router.pools.embed = 1;
    cfg.router.pools.background = 1;
    cfg.timeouts.queue_wait = Duration::ZERO;
    let c = Client::from_config(cfg).expect("builds");
    let _held = c
        .chat_stream(Front::Ollama, &chat_body("m", None))
        .expect("starts");
    let e = c
        .chat(Front::OpenAi, &chat_body("m", None))
        .expect_err("no room");
    assert!(matches!(e, Error::Rejected { .. }), "{e}");
    assert!(e.to_string().starts_with("rejected ("), "{e}");
}

#[test]
fn sessions_stick_to_a_node_and_hedging_is_off() {
    let a = fake(NodeKind::Ollama, M);
    let b = fake(NodeKind::OpenAiCompat, M);
    let mut cfg = round_robin(config(vec![node("a", &a, M), node("b", &b, M)]));
    cfg.router.hedge.enabled = true;
    // Pin sessions hard: the fakes' millisecond latencies are noisy enough
    // to make one node look twice as slow as the other now and then.
    cfg.router.affinity.session_promote_ratio = 1e6;
    let c = Client::from_config(cfg).expect("builds");
    assert!(
        !c.router().with(|r| r.config().hedge.enabled),
        "a blocking client never hedges"
    );
    for session in ["alice", "bob", "carol"] {
        let mut body = chat_body("m", None);
        body["session_id"] = json!(session);
        let first = c.chat(Front::OpenAi, &body).expect("answered").node;
        for _ in 0..4 {
            assert_eq!(c.chat(Front::OpenAi, &body).expect("answered").node, first);
        }
    }
    // Without a session, round-robin spreads the same calls.
    let nodes: std::collections::BTreeSet<String> = (0..4)
        .map(|_| {
            c.chat(Front::OpenAi, &chat_body("m", None))
                .expect("answered")
                .node
        })
        .collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
}
