//! Heartbeat drills on loopback: `drover agent` in-process against a
//! gateway with short thresholds (stale 300 ms, lost 450 ms, beats every
//! 100 ms).

mod support;

use std::time::Duration;

use drover::agent::{self, Agent, AgentOptions};
use drover::config::{GatewayConfig, Secret};
use drover::fake::{Behaviour, FakeServer};
use drover_core::node::NodeKind;
use serde_json::json;
use support::*;

const TOKEN: &str = "heartbeat-token-for-tests";

fn gw_config(nodes: Vec<drover::config::NodeConfig>) -> GatewayConfig {
    let mut cfg = round_robin(config(nodes));
    cfg.heartbeat_token = Some(Secret::new(TOKEN));
    cfg.router.health.stale_after = drover_core::Duration::from_millis(300);
    cfg.router.health.lost_after = drover_core::Duration::from_millis(450);
    cfg
}

fn agent_for(gw: std::net::SocketAddr, node: &str, fake: &FakeServer, token: &str) -> Agent {
    let mut o = AgentOptions::new(
        vec![format!("http://{gw}")],
        Secret::new(token),
        format!("http://{}", fake.addr()),
    );
    o.node = node.to_owned();
    o.interval = ms(100);
    agent::start(o).expect("the agent starts")
}

fn freshness(gw: std::net::SocketAddr, node: &str) -> String {
    nodes(gw)[node]["health"]["freshness"]
        .as_str()
        .unwrap_or("?")
        .to_owned()
}

fn chats(fake: &FakeServer) -> u64 {
    fake.requests()
        .by_path
        .get("/api/chat")
        .copied()
        .unwrap_or(0)
}

fn call_ok(gw: std::net::SocketAddr, model: &str) {
    let r = post(gw, "/api/chat", &chat_body(model, Some(false)));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_stopped_agent_makes_the_node_stale_then_lost_and_a_restart_recovers_it() {
    let a = fake(NodeKind::Ollama, &["m"]);
    let b = fake(NodeKind::Ollama, &["m"]);
    let gw = start(gw_config(vec![
        node("a", &a, &["m"]),
        node("b", &b, &["m"]),
    ]));
    let ag = agent_for(gw.addr, "a", &a, TOKEN);
    wait_until(Duration::from_secs(3), "a fresh", || {
        freshness(gw.addr, "a") == "fresh"
    });
    assert_eq!(freshness(gw.addr, "b"), "passive");
    ag.stop();
    wait_until(Duration::from_secs(3), "a stale", || {
        matches!(freshness(gw.addr, "a").as_str(), "stale" | "lost")
    });
    wait_until(Duration::from_secs(3), "a lost", || {
        freshness(gw.addr, "a") == "lost"
    });
    let before = chats(&a);
    for _ in 0..6 {
        call_ok(gw.addr, "m");
    }
    assert_eq!(chats(&a), before, "no call reaches a lost node");
    // b never heartbeats and keeps working.
    assert!(chats(&b) >= 6);
    let ag = agent_for(gw.addr, "a", &a, TOKEN);
    wait_until(Duration::from_secs(3), "a fresh again", || {
        freshness(gw.addr, "a") == "fresh"
    });
    for _ in 0..6 {
        call_ok(gw.addr, "m");
    }
    assert!(chats(&a) > before, "the recovered node gets calls again");
    ag.stop();
}

#[test]
fn a_draining_node_finishes_its_call_and_gets_no_new_ones() {
    let slow = Behaviour {
        ttft: ms(400),
        ..Behaviour::default()
    };
    let a = fake_with(NodeKind::Ollama, &["m"], slow);
    let b = fake(NodeKind::Ollama, &["m"]);
    let gw = start(gw_config(vec![
        node("a", &a, &["m"]),
        node("b", &b, &["m"]),
    ]));
    let ag = agent_for(gw.addr, "a", &a, TOKEN);
    wait_until(Duration::from_secs(3), "a fresh", || {
        freshness(gw.addr, "a") == "fresh"
    });
    // Calls until one is running on a.
    let addr = gw.addr;
    let mut running = Vec::new();
    for _ in 0..2 {
        running.push(std::thread::spawn(move || {
            post(addr, "/api/chat", &chat_body("m", Some(false))).status
        }));
    }
    wait_until(Duration::from_secs(3), "a call on a", || {
        in_flight(&gw, "a") == 1
    });
    ag.set_drain(true);
    let sent = ag.beats_sent();
    wait_until(Duration::from_secs(3), "a drain heartbeat", || {
        ag.beats_sent() >= sent + 2
    });
    assert_eq!(nodes(gw.addr)["a"]["health"]["drain"], json!(true));
    let before = chats(&a);
    for _ in 0..4 {
        call_ok(gw.addr, "m");
    }
    assert_eq!(chats(&a), before, "no new call reaches a draining node");
    for t in running {
        assert_eq!(t.join().unwrap(), 200, "the in-flight calls finish");
    }
    ag.stop();
}

#[test]
fn bad_tokens_are_refused_and_ignored_and_bad_bodies_name_the_field() {
    let a = fake(NodeKind::Ollama, &["m"]);
    let gw = start(gw_config(vec![node("a", &a, &["m"])]));
    let bad = agent_for(gw.addr, "a", &a, "wrong-token");
    wait_until(Duration::from_secs(3), "a refused beat", || {
        bad.last_statuses() == [Some(401)]
    });
    assert_eq!(
        freshness(gw.addr, "a"),
        "passive",
        "the heartbeat is ignored"
    );
    bad.stop();
    let hb = json!({"node":"a","protocolVersion":1,"maxSlots":2});
    let body = hb.to_string();
    let auth = format!("Bearer {TOKEN}");
    let r = send(gw.addr, "POST", "/nodes/heartbeat", &[], body.as_bytes());
    assert_eq!(r.status, 401);
    let with = |b: &str| {
        send(
            gw.addr,
            "POST",
            "/nodes/heartbeat",
            &[("authorization", &auth)],
            b.as_bytes(),
        )
    };
    let r = with(r#"{"node":"zz","protocolVersion":1,"maxSlots":2}"#);
    assert_eq!(r.status, 404, "{}", r.text());
    let r = with(r#"{"node":"a","protocolVersion":1,"maxSlots":"two"}"#);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("maxSlots"), "{}", r.text());
    let r = with(&body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["freshness"], "fresh");
    // A gateway without a heartbeat token refuses heartbeats.
    let off = start(round_robin(config(vec![node("a", &a, &["m"])])));
    let r = send(
        off.addr,
        "POST",
        "/nodes/heartbeat",
        &[("authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 403);
    assert!(
        r.text().contains("heartbeats are not enabled"),
        "{}",
        r.text()
    );
}

#[test]
fn a_catalog_change_makes_the_new_model_routable() {
    // The config lists only `m`; the server also has `n`.
    let a = fake(NodeKind::Ollama, &["m", "n"]);
    let gw = start(gw_config(vec![node("a", &a, &["m"])]));
    assert_eq!(
        post(gw.addr, "/api/chat", &chat_body("n", Some(false))).status,
        404
    );
    let ag = agent_for(gw.addr, "a", &a, TOKEN);
    wait_until(Duration::from_secs(3), "n listed", || {
        get(gw.addr, "/v1/models").text().contains("\"n\"")
    });
    call_ok(gw.addr, "n");
    ag.stop();
}
