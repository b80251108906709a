//! The blocking transport spawns no thread: the threads of this process
//! (`/proc/self/task`) are counted before and after many calls cut by
//! timeouts, streams dropped mid-way and failovers. One test alone in its
//! own test binary, so no other test's threads come and go meanwhile.

mod support;

use std::time::{Duration, Instant};

use drover::fake::{Behaviour, Fail};
use drover::sync::{Client, Error};
use drover::wire::Front;
use drover_core::node::NodeKind;
use support::{chat_body, config, dead_port, failing, fake_with, ms, node, node_at, round_robin};

const M: &[&str] = &["m"];

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("Linux has /proc/self/task")
        .count()
}

#[test]
fn timed_out_and_cancelled_calls_leave_no_thread_behind() {
    let hung = fake_with(NodeKind::OpenAiCompat, M, failing(Fail::Hang));
    let slow = fake_with(
        NodeKind::Ollama,
        M,
        Behaviour::paced(Duration::from_secs(5), ms(1), 4),
    );
    let trickle = fake_with(NodeKind::Ollama, M, Behaviour::paced(ms(0), ms(20), 500));
    let mut cfg = round_robin(config(vec![
        node("hung", &hung, M),
        node("slow", &slow, M),
        node_at("dead", NodeKind::Ollama, dead_port(), M, &[]),
    ]));
    cfg.timeouts.attempt = ms(60);
    cfg.timeouts.ttft = ms(60);
    // Failures must not open the breakers, or later calls would be
    // refused before reaching a node.
    cfg.router.breaker.failure_threshold = u16::MAX;
    let c = Client::from_config(cfg).expect("builds");
    let t = round_robin(config(vec![node("trickle", &trickle, M)]));
    let streams = Client::from_config(t).expect("builds");

    let before = threads();
    let start = Instant::now();
    for i in 0..30 {
        let r = if i % 2 == 0 {
            c.chat(Front::OpenAi, &chat_body("m", None)).map(|_| ())
        } else {
            c.chat_stream(Front::Ollama, &chat_body("m", None))
                .map(|_| ())
        };
        assert!(
            matches!(
                r,
                Err(Error::AllAttemptsFailed { .. }) | Err(Error::Rejected { .. })
            ),
            "call {i}: {r:?}"
        );
    }
    for _ in 0..10 {
        let mut s = streams
            .chat_stream(Front::Ollama, &chat_body("m", None))
            .expect("the stream starts");
        assert!(s.next().is_some_and(|i| i.is_ok()));
        drop(s);
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    let after = threads();
    assert_eq!(before, after, "threads before and after the calls");
    assert_eq!(c.router().with(|r| r.permits_outstanding()), 0);
    assert_eq!(streams.router().with(|r| r.permits_outstanding()), 0);
}
