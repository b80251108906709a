//! Issue 6, item 2 (no retry storms) and item 3 (the deadline covers
//! retries), against the gateway on loopback.
//!
//! - Item 2: four nodes that always answer 503 (then, separately, 500),
//!   counting every attempt; a few hundred client calls from several
//!   threads. Upstream attempts stay at or below 1.2 x client calls plus
//!   the budget's burst (10): the bound of the retry budget of BRIEF.md.
//!   With the default cooldowns and breakers the nodes are soon taken out
//!   of rotation; the `1ms_cooldowns` and `never_open` variants keep them
//!   in, so that only the core's retry budget can hold the bound.
//! - Item 3: nodes that each fail just before the attempt timeout (or hang
//!   past it); no answer, whole or streamed, arrives later than the call's
//!   deadline (`timeouts.stream_total`) plus slack, however many attempts
//!   ran.
//!
//! Run: `cargo test -p drover-tests --test reliability_budget -- --nocapture`
//! (prints the counts).

#[path = "support/reliab.rs"]
mod reliab;
mod support;

use std::time::Duration;

use drover::fake::{Behaviour, Fail, FakeServer};
use drover_core::node::NodeKind;
use reliab::{Seen, Tally, call, error_of};
use support::*;

const MODEL: &str = "m";

/// The budget's burst of BRIEF.md: the constant of the bound.
const BURST: u64 = 10;

/// `threads` threads each make `per_thread` calls, `gap` apart, cycling
/// through whole and streamed chat on both fronts.
fn load(addr: std::net::SocketAddr, threads: u64, per_thread: u64, gap: Duration) -> Tally {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut tally = Tally::default();
                for i in 0..per_thread {
                    let (seen, raw) = call(
                        addr,
                        (i + t) % 2 == 0,
                        (i / 2) % 2 == 0,
                        &format!("storm-{t}-{i}"),
                        Duration::from_secs(10),
                    );
                    assert!(seen.is_definite(), "{seen:?}: {}", raw.text());
                    tally.add(seen);
                    std::thread::sleep(gap);
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for h in handles {
        tally.merge(h.join().expect("a client thread does not panic"));
    }
    tally
}

fn storm(fail: Fail, tune: fn(&mut drover::config::GatewayConfig)) -> (u64, u64, Tally) {
    let fakes: Vec<FakeServer> = (0..4)
        .map(|i| {
            let kind = if i % 2 == 0 {
                NodeKind::OpenAiCompat
            } else {
                NodeKind::Ollama
            };
            fake_with(kind, &[MODEL], failing(fail))
        })
        .collect();
    let nodes = fakes
        .iter()
        .enumerate()
        .map(|(i, f)| node(&format!("n{i}"), f, &[MODEL]))
        .collect();
    let mut cfg = round_robin(config(nodes));
    cfg.router.max_attempts = 4;
    tune(&mut cfg);
    let gw = start(cfg);
    // 6 threads x 50 calls, 10 ms apart: about 300 calls over a few
    // seconds, so cooldowns and breakers expire and reopen meanwhile.
    let tally = load(gw.addr, 6, 50, ms(10));
    drop(gw);
    let attempts: u64 = fakes.iter().map(|f| f.requests().calls).sum();
    (tally.total(), attempts, tally)
}

fn check_storm(what: &str, fail: Fail, tune: fn(&mut drover::config::GatewayConfig)) {
    let (calls, attempts, tally) = storm(fail, tune);
    let bound = calls + calls / 5 + BURST;
    eprintln!(
        "{what}: {calls} client calls, {attempts} upstream attempts ({:.3} per call), \
         bound {bound}; outcomes {:?}",
        attempts as f64 / calls.max(1) as f64,
        tally.by
    );
    assert_eq!(tally.count(&Seen::Ok), 0, "every node fails");
    assert!(
        attempts <= bound,
        "{what}: {attempts} upstream attempts for {calls} calls (bound 1.2 x calls + {BURST} = \
         {bound}): a retry storm"
    );
}

fn defaults(_: &mut drover::config::GatewayConfig) {}

/// Overload cooldowns of 1 ms: a 503 barely takes a node out of rotation,
/// so only a retry budget can stop a storm.
fn short_cooldowns(cfg: &mut drover::config::GatewayConfig) {
    let one = drover_core::Duration::from_millis(1);
    cfg.router.overload.default_cooldown = one;
    cfg.router.overload.min_cooldown = one;
    cfg.router.overload.max_cooldown = one;
}

/// Breakers that never open: a 500 never ejects a node, so only a retry
/// budget can stop a storm.
fn no_ejection(cfg: &mut drover::config::GatewayConfig) {
    cfg.router.breaker.failure_threshold = u16::MAX;
}

#[test]
fn always_503_upstreams_see_at_most_1_2_attempts_per_call() {
    check_storm("all 503", Fail::Unavailable, defaults);
}

#[test]
fn always_503_without_retry_after_upstreams_see_at_most_1_2_attempts_per_call() {
    check_storm("all 503 (no Retry-After)", Fail::Status(503), defaults);
}

#[test]
fn always_500_upstreams_see_at_most_1_2_attempts_per_call() {
    check_storm("all 500", Fail::Status(500), defaults);
}

/// Needs the core's retry budget (BRIEF.md): cooldowns and breakers alone
/// do not bound retries when they barely eject.
#[test]
fn always_503_with_1ms_cooldowns_sees_at_most_1_2_attempts_per_call() {
    check_storm(
        "all 503, 1 ms cooldowns",
        Fail::Unavailable,
        short_cooldowns,
    );
}

/// Needs the core's retry budget (BRIEF.md), as above.
#[test]
fn always_500_with_breakers_that_never_open_sees_at_most_1_2_attempts_per_call() {
    check_storm(
        "all 500, breakers never open",
        Fail::Status(500),
        no_ejection,
    );
}

/// Six nodes of `b`; attempt timeout 1 s, call deadline 2.5 s, up to 8
/// attempts: without the deadline a call would run 6 attempts. The calls
/// must also not end early (before the deadline): that shows the deadline,
/// not a lack of nodes or of retry budget, ended them.
fn deadline_case(b: Behaviour, what: &str) {
    let fakes: Vec<FakeServer> = (0..6)
        .map(|_| fake_with(NodeKind::OpenAiCompat, &[MODEL], b))
        .collect();
    let nodes = fakes
        .iter()
        .enumerate()
        .map(|(i, f)| node(&format!("n{i}"), f, &[MODEL]))
        .collect();
    let mut cfg = round_robin(config(nodes));
    let deadline = ms(2500);
    cfg.router.max_attempts = 8;
    cfg.timeouts.attempt = Duration::from_secs(1);
    cfg.timeouts.ttft = Duration::from_secs(1);
    cfg.timeouts.stream_total = deadline;
    cfg.timeouts.stream_idle = Duration::from_secs(1);
    let gw = start(cfg);
    let addr = gw.addr;
    // Three calls at once: within the retry budget's floor of three
    // concurrent retries, so every call may use all the attempts its
    // deadline leaves room for.
    let handles: Vec<_> = [(true, false), (true, true), (false, true)]
        .into_iter()
        .enumerate()
        .map(|(i, (openai, stream))| {
            std::thread::spawn(move || {
                call(
                    addr,
                    openai,
                    stream,
                    &format!("deadline-{i}"),
                    Duration::from_secs(10),
                )
            })
        })
        .collect();
    for h in handles {
        let (seen, raw) = h.join().expect("a client thread does not panic");
        eprintln!("{what}: {seen:?} after {:?}", raw.elapsed);
        assert!(
            raw.elapsed <= deadline + ms(700),
            "{what}: answered after {:?}, past the deadline {deadline:?} plus slack",
            raw.elapsed
        );
        assert!(
            raw.elapsed >= deadline - ms(100),
            "{what}: the call gave up early ({:?}) although attempts were left",
            raw.elapsed
        );
        assert_eq!(seen, Seen::Status(504), "{what}: {}", raw.text());
        // OpenAI errors carry the code; Ollama's only a message.
        let (code, message) = error_of(&raw);
        assert!(
            code == "deadline_exceeded" || message.contains("deadline_exceeded"),
            "{what}: {code} {message}"
        );
    }
    let attempts: u64 = fakes.iter().map(|f| f.requests().calls).sum();
    eprintln!("{what}: {attempts} upstream attempts for 3 calls");
    assert!(
        attempts >= 3 * 3,
        "several attempts ran per call: {attempts}"
    );
}

#[test]
fn no_answer_arrives_after_the_call_deadline_when_nodes_fail_just_before_the_attempt_timeout() {
    // Each node answers garbage after 900 ms (whole: after the reply's
    // time; streamed: before the first token).
    deadline_case(
        Behaviour {
            fail: Fail::Garbage,
            ..Behaviour::paced(ms(900), ms(0), 4)
        },
        "garbage at 900 ms",
    );
}

#[test]
fn no_answer_arrives_after_the_call_deadline_when_nodes_hang() {
    deadline_case(failing(Fail::Hang), "hang");
}
