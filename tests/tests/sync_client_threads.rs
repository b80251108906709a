//! The blocking transport spawns no thread: the threads of this process
//! (`/proc/self/task`) are counted before and after many calls cut by
//! timeouts, streams dropped mid-way and failovers, and sampled while
//! they run. One test alone in its
//! own test binary, so no other test's threads come and go meanwhile.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    // Samples the thread count while the calls run, so that even a thread
    // that lives only as long as one call is seen. The sampler itself is
    // one thread.
    let stop = AtomicBool::new(false);
    let most = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(threads(), Ordering::Relaxed);
                std::thread::sleep(ms(1));
            }
        });
        calls(&c, &streams);
        stop.store(true, Ordering::Relaxed);
    });
    let most = most.load(Ordering::Relaxed);
    assert!(
        most <= before + 1,
        "{most} threads seen during the calls, {before} before (the sampler is one more)"
    );
    // A joined thread (the sampler) can stay listed in /proc for a moment
    // after its join returns: give it up to 2 s. A leaked thread stays.
    let end = Instant::now() + Duration::from_secs(2);
    let mut after = threads();
    while after != before && Instant::now() < end {
        std::thread::sleep(ms(10));
        after = threads();
    }
    assert_eq!(before, after, "threads before and after the calls");
    assert_eq!(c.router().with(|r| r.permits_outstanding()), 0);
    assert_eq!(streams.router().with(|r| r.permits_outstanding()), 0);
}

/// 30 calls cut by timeouts or refused, then 10 streams dropped after their
/// first chunk.
fn calls(c: &Client, streams: &Client) {
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
}
