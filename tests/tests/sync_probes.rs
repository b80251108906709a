//! Active probes from `drover::sync::Client`: the same core schedule as
//! the gateway, sent by the blocking driver when the program asks
//! (`run_due_probes`) or from one probing thread (`start_probing`).

mod support;

use std::sync::Arc;

use drover::config::GatewayConfig;
use drover::fake::{FakeServer, FakeSpec};
use drover::sync::Client;
use drover::wire::Front;
use drover_core::node::NodeKind;
use support::{chat_body, dead_port, ms, node, node_at, probing_config, wait_until};

fn probing(nodes: Vec<drover::config::NodeConfig>) -> GatewayConfig {
    probing_config(nodes, 200, 300)
}

fn breaker_open(c: &Client, name: &str) -> bool {
    c.router().with(|r| {
        let id = r.nodes().find(name).expect("the node exists");
        let n = r.node(id).expect("the node exists");
        !matches!(
            n.breaker.state(c.now()),
            drover_core::breaker::BreakerState::Closed
        )
    })
}

fn probes_sent(c: &Client) -> u64 {
    c.router().with(|r| r.metrics().probes.sent.iter().sum())
}

#[test]
fn run_due_probes_ejects_a_dead_node_and_learns_a_catalog() {
    let live =
        FakeServer::start(FakeSpec::new(NodeKind::Ollama, &["m", "extra"])).expect("a fake starts");
    let dead = dead_port();
    let c = Client::from_config(probing(vec![
        node("live", &live, &["m"]),
        node_at("dead", NodeKind::Ollama, dead, &["m"], &[]),
    ]))
    .expect("the client builds");
    // Nothing is sent until the program asks.
    std::thread::sleep(ms(200));
    assert_eq!(live.requests().total, 0);
    assert_eq!(c.run_due_probes(), 4, "health and inventory for two nodes");
    assert!(live.requests().path("/api/version") == 1 && live.requests().path("/api/tags") == 1);
    // The catalog made `extra` routable, with no config change.
    let a = c
        .chat(Front::Ollama, &chat_body("extra", Some(false)))
        .expect("the inventory added the model");
    assert_eq!(a.node, "live");
    // Two failed health probes open the dead node's breaker: no call pays.
    wait_until(ms(3000), "the dead node's breaker to open", || {
        c.run_due_probes();
        breaker_open(&c, "dead")
    });
    for _ in 0..4 {
        let a = c.chat(Front::Ollama, &chat_body("m", Some(false))).unwrap();
        assert_eq!((a.node.as_str(), a.attempts), ("live", 1));
    }
}

#[test]
fn a_prober_thread_probes_on_schedule_and_stops_when_dropped() {
    let live =
        FakeServer::start(FakeSpec::new(NodeKind::OpenAiCompat, &["m"])).expect("a fake starts");
    let c = Arc::new(
        Client::from_config(probing(vec![node("live", &live, &["m"])])).expect("the client builds"),
    );
    let prober = c.start_probing().expect("the thread starts");
    wait_until(ms(3000), "several health probes", || {
        live.requests().path("/v1/models") >= 4
    });
    drop(prober);
    let after = probes_sent(&c);
    std::thread::sleep(ms(500));
    assert_eq!(probes_sent(&c), after, "no probe after the prober stopped");
}

#[test]
fn probes_off_sends_nothing() {
    let live = FakeServer::start(FakeSpec::new(NodeKind::Ollama, &["m"])).expect("a fake starts");
    let mut cfg = probing(vec![node("live", &live, &["m"])]);
    cfg.router.probe.enabled = false;
    let c = Client::from_config(cfg).expect("the client builds");
    assert_eq!(c.run_due_probes(), 0);
    assert_eq!(live.requests().total, 0);
}
