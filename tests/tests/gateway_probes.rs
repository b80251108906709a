//! Active probes on loopback: the core schedules them, the gateway sends
//! them. Health probes find a dead node and let it back in without any
//! call traffic; inventory probes make a new model routable; a pinned node
//! keeps its list; `strict_models` keeps calls off nodes that do not list
//! the model.

mod support;

use std::net::SocketAddr;

use drover::config::GatewayConfig;
use drover::fake::{FakeServer, FakeSpec};
use drover_core::node::NodeKind;
use support::*;

const MODEL: &str = "m";

fn probing(nodes: Vec<drover::config::NodeConfig>) -> GatewayConfig {
    probing_config(nodes, 250, 400)
}

fn breaker(gw: SocketAddr, node: &str) -> String {
    nodes(gw)[node]["breaker"]["state"]
        .as_str()
        .unwrap_or("?")
        .to_owned()
}

fn metric(gw: SocketAddr, line: &str) -> u64 {
    let m = get(gw, "/metrics").text();
    m.lines()
        .find_map(|l| l.strip_prefix(line).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{line}` in /metrics:\n{m}"))
}

fn chat(gw: SocketAddr, model: &str) -> Reply {
    post(gw, "/api/chat", &chat_body(model, Some(false)))
}

#[test]
fn health_probes_eject_a_dead_node_and_let_it_back_without_any_call() {
    let good = fake(NodeKind::Ollama, &[MODEL]);
    let dead = dead_port();
    let gw = start(probing(vec![
        node("good", &good, &[MODEL]),
        node_at("late", NodeKind::Ollama, dead, &[MODEL], &[]),
    ]));
    wait_until(ms(3000), "probes to open the dead node's breaker", || {
        breaker(gw.addr, "late") == "open"
    });
    assert_eq!(active_calls(&gw), 0);
    assert!(metric(gw.addr, "drover_probes_failed_total{kind=\"health\"}") >= 2);
    // No call is spent finding out: all go to the good node.
    for _ in 0..4 {
        assert_eq!(chat(gw.addr, MODEL).status, 200);
    }
    assert_eq!(good.requests().calls, 4);

    // The server comes up on that port: the half-open probe closes it.
    let late = FakeServer::start_on(FakeSpec::new(NodeKind::Ollama, &[MODEL]), dead, 1)
        .expect("the port is free again");
    wait_until(ms(4000), "a probe to close the breaker", || {
        breaker(gw.addr, "late") == "closed"
    });
    assert_eq!(late.requests().calls, 0, "recovered by probes alone");
    assert!(late.requests().path("/api/version") >= 1);
    for _ in 0..4 {
        assert_eq!(chat(gw.addr, MODEL).status, 200);
    }
    assert!(late.requests().calls >= 1, "calls reach it again");
}

#[test]
fn inventory_probes_make_a_new_model_routable_and_a_pinned_node_keeps_its_list() {
    let a = FakeServer::start(FakeSpec::new(NodeKind::OpenAiCompat, &[MODEL, "fresh"]))
        .expect("a fake starts");
    let p = FakeServer::start(FakeSpec::new(NodeKind::Ollama, &[MODEL, "other"]))
        .expect("a fake starts");
    let mut pinned = node("pinned", &p, &[MODEL]);
    pinned.pin_models = true;
    // `a` is configured with one model only; its catalog has two.
    let gw = start(probing(vec![node("a", &a, &[MODEL]), pinned]));
    wait_until(ms(3000), "the inventory probe of a", || {
        get(gw.addr, "/v1/models").text().contains("\"fresh\"")
    });
    let r = chat(gw.addr, "fresh");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(a.requests().path("/v1/models") >= 1);

    // The pinned node is never asked for its catalog, and keeps its list.
    std::thread::sleep(ms(600));
    assert_eq!(p.requests().path("/api/tags"), 0);
    assert!(
        p.requests().path("/api/version") >= 1,
        "health probes still go"
    );
    let r = chat(gw.addr, "other");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(metric(gw.addr, "drover_probes_total{kind=\"inventory\"}") >= 1);
}

#[test]
fn a_model_dropped_from_a_catalog_stops_being_routed_there() {
    let keep = fake(NodeKind::Ollama, &[MODEL]);
    let spec = FakeSpec::new(NodeKind::Ollama, &[MODEL]);
    let first = FakeServer::start(spec).expect("a fake starts");
    let addr = first.addr();
    let gw = start(probing(vec![
        node("keep", &keep, &[MODEL]),
        node("moving", &first, &[MODEL]),
    ]));
    assert_eq!(chat(gw.addr, MODEL).status, 200);
    // The box restarts serving another model only.
    first.stop();
    let second = FakeServer::start_on(FakeSpec::new(NodeKind::Ollama, &["new"]), addr, 1)
        .expect("the port is free again");
    wait_until(ms(4000), "the new catalog", || {
        chat(gw.addr, "new").status == 200
    });
    assert_eq!(second.requests().path("/api/chat"), 1);
    for _ in 0..6 {
        assert_eq!(chat(gw.addr, MODEL).status, 200);
    }
    assert_eq!(second.requests().path("/api/chat"), 1);
}

#[test]
fn strict_models_keeps_calls_off_nodes_that_do_not_list_the_model() {
    let listed = fake(NodeKind::Ollama, &[MODEL]);
    let open = fake(NodeKind::Ollama, &[MODEL, "x"]);
    let run = |strict: bool| {
        let mut cfg = round_robin(config(vec![
            node("listed", &listed, &[MODEL]),
            node("open", &open, &[]),
        ]));
        // Probes off: `open` keeps its empty list (any model).
        cfg.router.probe.enabled = false;
        cfg.router.strict_models = strict;
        let gw = start(cfg);
        for _ in 0..6 {
            assert_eq!(chat(gw.addr, MODEL).status, 200);
        }
    };
    run(false);
    let (l, o) = (listed.requests().calls, open.requests().calls);
    assert!(
        l >= 1 && o >= 1,
        "without strict_models both serve: {l} {o}"
    );
    run(true);
    assert_eq!(
        listed.requests().calls - l,
        6,
        "strict: the listing node takes all"
    );
    assert_eq!(open.requests().calls, o, "strict: none for the open node");
}

#[test]
fn probes_off_sends_no_probe() {
    let a = fake(NodeKind::Ollama, &[MODEL]);
    let mut cfg = probing(vec![node("a", &a, &[MODEL])]);
    cfg.router.probe.enabled = false;
    let gw = start(cfg);
    std::thread::sleep(ms(500));
    assert_eq!(a.requests().total, 0, "{:?}", a.requests());
    assert_eq!(metric(gw.addr, "drover_probes_total{kind=\"health\"}"), 0);
}
