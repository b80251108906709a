//! drover from synchronous code: a chat, a streamed chat and an embedding,
//! routed with failover across two fake model servers started in this
//! process (one of them fails every request with a 500).
//!
//! ```text
//! cargo run -p drover --example sync_chat
//! ```
//!
//! With real model servers, build the client from the gateway's config
//! file instead: `Client::load("drover.toml".as_ref())?`.

use std::collections::BTreeMap;
use std::io::Write;

use drover::config::{GatewayConfig, NodeConfig};
use drover::fake::{Behaviour, Fail, FakeServer, FakeSpec};
use drover::sync::Client;
use drover::wire::Front;
use drover_core::config::Policy;
use drover_core::node::NodeKind;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Two simulated model servers on 127.0.0.1: an Ollama that always
    // answers 500, and a healthy OpenAI-compatible one.
    let mut broken = FakeSpec::new(NodeKind::Ollama, &["demo"]);
    broken.behaviour = Behaviour {
        fail: Fail::Status(500),
        ..Behaviour::default()
    };
    let broken = FakeServer::start(broken)?;
    let mut healthy = FakeSpec::new(NodeKind::OpenAiCompat, &["demo"]);
    healthy.behaviour = Behaviour::paced(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_millis(20),
        12,
    );
    let healthy = FakeServer::start(healthy)?;

    let node = |name: &str, kind, server: &FakeServer| {
        NodeConfig::local(
            name,
            kind,
            server.addr(),
            4,
            vec!["demo".into()],
            BTreeMap::new(),
        )
    };
    let mut cfg = GatewayConfig::default_local();
    cfg.nodes = vec![
        node("sim-broken", NodeKind::Ollama, &broken),
        node("sim-healthy", NodeKind::OpenAiCompat, &healthy),
    ];
    // Round-robin so that the broken node is met first now and then (and no
    // prefix affinity, which would keep the same prompt on one node).
    cfg.router.policy = Policy::RoundRobin;
    cfg.router.affinity.prefix_key_blocks = 0;
    let client = Client::from_config(cfg)?;

    println!("== chat (OpenAI format in and out)");
    for _ in 0..2 {
        let a = client.chat(
            Front::OpenAi,
            &json!({
                "model": "demo",
                "messages": [{"role": "user", "content": "Say hello"}],
            }),
        )?;
        println!(
            "{} answered after {} attempt(s): {}",
            a.node, a.attempts, a.body["choices"][0]["message"]["content"]
        );
    }

    println!("\n== streamed chat (Ollama format in and out)");
    let stream = client.chat_stream(
        Front::Ollama,
        &json!({
            "model": "demo",
            "messages": [{"role": "user", "content": "Tell me a story"}],
        }),
    )?;
    println!(
        "streaming from {} after {} attempt(s):",
        stream.node(),
        stream.attempts()
    );
    let mut out = std::io::stdout();
    for chunk in stream {
        let chunk = chunk?;
        write!(
            out,
            "{}",
            chunk["message"]["content"].as_str().unwrap_or("")
        )?;
        out.flush()?;
        if chunk["done"] == json!(true) {
            writeln!(out, "\n[done: {}]", chunk["done_reason"])?;
        }
    }

    println!("\n== embeddings (OpenAI format)");
    for _ in 0..2 {
        let e = client.embed(
            Front::OpenAi,
            &json!({"model": "demo", "input": ["first text", "second text"]}),
        )?;
        let dims = e.body["data"][0]["embedding"]
            .as_array()
            .map_or(0, Vec::len);
        println!(
            "{} embedded {} texts ({dims} dimensions) after {} attempt(s)",
            e.node,
            e.body["data"].as_array().map_or(0, Vec::len),
            e.attempts
        );
    }

    let m = client.router().with(|r| {
        r.nodes()
            .iter()
            .map(|(_, n)| {
                format!(
                    "{}: breaker failures {}",
                    n.spec.name,
                    n.breaker.consecutive_failures()
                )
            })
            .collect::<Vec<_>>()
    });
    println!("\n== router: {}", m.join(", "));
    println!(
        "requests seen: sim-broken {}, sim-healthy {}",
        broken.requests().total,
        healthy.requests().total
    );
    Ok(())
}
