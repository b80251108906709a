//! `drover serve --demo`: three simulated model servers in this process,
//! so a newcomer sees routing and failover without any model server.
//!
//! They are real HTTP servers on 127.0.0.1 (random ports) from
//! [`crate::fake`] ([`demo_specs`]), answering
//! with made-up tokens:
//!
//! | node | speaks | speed | trouble |
//! |---|---|---|---|
//! | `sim-fast` | OpenAI-compatible | TTFT 80 ms, 15 ms per token | none |
//! | `sim-slow` | Ollama | TTFT 400 ms, 60 ms per token | none |
//! | `sim-flaky` | Ollama | TTFT 150 ms, 30 ms per token | a fifth of its requests fail with a 500 |
//!
//! All three serve the model `demo` (chat and embeddings); `llama3.2` is an
//! alias of it, so examples written for Ollama work as they are. The banner
//! and every node name say these are simulated.

use std::collections::BTreeMap;

use drover_core::node::NodeKind;

use crate::config::NodeConfig;
use crate::fake::{FakeServer, demo_specs};

/// The model every demo node serves.
pub const DEMO_MODEL: &str = "demo";
/// An alias of [`DEMO_MODEL`].
pub const DEMO_ALIAS: &str = "llama3.2";

/// The running demo nodes; dropping this stops them.
pub struct DemoNodes {
    nodes: Vec<(&'static str, NodeKind, FakeServer)>,
}

impl DemoNodes {
    /// Starts the three simulated nodes.
    pub fn start() -> std::io::Result<DemoNodes> {
        let mut nodes = Vec::with_capacity(3);
        for (name, spec) in demo_specs(0xD3A0) {
            let kind = spec.kind;
            nodes.push((name, kind, FakeServer::start(spec)?));
        }
        Ok(DemoNodes { nodes })
    }

    /// The gateway's node table for the demo nodes.
    pub fn node_configs(&self) -> Vec<NodeConfig> {
        self.nodes
            .iter()
            .map(|(name, kind, server)| {
                let mut aliases = BTreeMap::new();
                aliases.insert(DEMO_ALIAS.to_owned(), DEMO_MODEL.to_owned());
                NodeConfig::local(
                    name,
                    *kind,
                    server.addr(),
                    4,
                    vec![DEMO_MODEL.to_owned()],
                    aliases,
                )
            })
            .collect()
    }
}
