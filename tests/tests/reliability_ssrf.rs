//! Issue 6, item 11 (SSRF, properly), end to end:
//!
//! - a request body naming an upstream URL is refused with 400 naming the
//!   field, and nothing reaches a node;
//! - a node's host name is resolved at every attempt, every address it
//!   resolves to is checked against the URL policy, and the connection
//!   goes to the checked address (one resolution per attempt), so a name
//!   that resolves, or is rebound, to a forbidden address is never
//!   connected to.
//!
//! Name resolution is injected with `Gateway::set_resolver`, so the tests
//! need no DNS and no /etc/hosts entry.
//!
//! Run: `cargo test -p drover-tests --test reliability_ssrf`.

#[path = "support/reliab.rs"]
mod reliab;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use drover::config::{GatewayConfig, NodeConfig, UrlPolicy};
use drover::fake::FakeServer;
use drover_core::node::NodeKind;
use reliab::{Seen, call, error_of, post_raw};
use support::*;

const MODEL: &str = "m";
const LIMIT: Duration = Duration::from_secs(8);

#[test]
fn a_body_naming_an_upstream_is_refused_with_400_naming_the_field() {
    let f = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let gw = start(config(vec![node("a", &f, &[MODEL])]));
    let cases = [
        ("/v1/chat/completions", "api_base"),
        ("/v1/chat/completions", "base_url"),
        ("/v1/chat/completions", "baseUrl"),
        ("/api/chat", "upstream"),
        ("/api/chat", "upstream_url"),
        ("/api/generate", "endpoint"),
        ("/v1/embeddings", "url"),
        ("/api/embed", "proxy"),
    ];
    for (path, key) in cases {
        let mut body = match path {
            "/api/generate" => serde_json::json!({"model": MODEL, "prompt": "hi"}),
            "/v1/embeddings" | "/api/embed" => serde_json::json!({"model": MODEL, "input": "hi"}),
            _ => serde_json::json!({"model": MODEL,
                "messages": [{"role": "user", "content": "hi"}]}),
        };
        body[key] = serde_json::Value::from("http://169.254.169.254:80/latest/meta-data");
        let raw = post_raw(gw.addr, path, &[], body.to_string().as_bytes(), LIMIT);
        assert_eq!(raw.status, 400, "{path} {key}: {}", raw.text());
        let (_, message) = error_of(&raw);
        assert!(
            message.contains(&format!("field `{key}`")) && message.contains("names an upstream"),
            "{path} {key}: {message}"
        );
    }
    assert_eq!(f.requests().calls, 0, "nothing reached the node");
}

/// A node named `gpu-box.lan` on `fake`'s port, allowed by a policy with
/// host names on.
fn named_node(fake: &FakeServer, policy: &UrlPolicy) -> NodeConfig {
    let mut n = node("named", fake, &[MODEL]);
    n.base_url = policy
        .check_url(&format!("http://gpu-box.lan:{}", fake.addr().port()))
        .expect("the policy allows host names");
    assert_eq!(n.base_url.addr, None, "a name is resolved at connect time");
    n
}

fn gateway_with(policy: UrlPolicy, nodes: Vec<NodeConfig>) -> drover::serve::Running {
    let mut cfg: GatewayConfig = config(nodes);
    cfg.url_policy = policy;
    // Probes resolve names too (through the same checked path); these tests
    // count the resolutions of call attempts only.
    cfg.router.probe.enabled = false;
    start(cfg)
}

/// A resolver for `gpu-box.lan` that answers `answer(n)` at its n-th call
/// (from 0), and counts its calls.
fn resolver(
    calls: Arc<AtomicU64>,
    answer: impl Fn(u64) -> Vec<SocketAddr> + Send + Sync + 'static,
) -> drover::serve::gateway::Resolver {
    Arc::new(move |host: &str, _port: u16| {
        assert_eq!(host, "gpu-box.lan");
        let n = calls.fetch_add(1, Ordering::SeqCst);
        Ok(answer(n))
    })
}

fn hostnames() -> UrlPolicy {
    UrlPolicy {
        allow_hostnames: true,
        ..UrlPolicy::default()
    }
}

#[test]
fn a_host_name_is_resolved_at_connect_time_and_its_address_checked() {
    let f = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let p = hostnames();
    let gw = gateway_with(p.clone(), vec![named_node(&f, &p)]);
    let calls = Arc::new(AtomicU64::new(0));
    let good = f.addr();
    gw.gateway
        .set_resolver(resolver(calls.clone(), move |_| vec![good]));
    let (seen, raw) = call(gw.addr, true, false, "named-ok", LIMIT);
    assert_eq!(seen, Seen::Ok, "{}", raw.text());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "resolved once, at the attempt"
    );
    let host = f.last_headers().unwrap()["host"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        host,
        format!("gpu-box.lan:{}", good.port()),
        "Host keeps the name"
    );

    // The same name now resolves to the metadata address: refused before
    // any connection, whatever the port.
    let meta: SocketAddr = format!("169.254.169.254:{}", good.port()).parse().unwrap();
    gw.gateway
        .set_resolver(resolver(calls.clone(), move |_| vec![meta]));
    let before = f.requests().calls;
    let (seen, raw) = call(gw.addr, true, false, "named-meta", LIMIT);
    assert_eq!(seen, Seen::Status(502), "{}", raw.text());
    assert_eq!(error_of(&raw).0, "connect");
    // One good and one forbidden address: every address is checked, so
    // the name is refused even though its first address is fine.
    gw.gateway
        .set_resolver(resolver(calls.clone(), move |_| vec![good, meta]));
    let (seen, raw) = call(gw.addr, false, true, "named-mixed", LIMIT);
    assert_eq!(seen, Seen::Status(502), "{}", raw.text());
    assert_eq!(f.requests().calls, before, "no request reached the node");
}

#[test]
fn a_name_resolving_to_loopback_is_refused_when_the_policy_forbids_loopback() {
    // The policy allows only 10.0.0.0/8: the name resolves to 127.0.0.1,
    // where a live fake listens, and still nothing reaches it.
    let f = fake(NodeKind::Ollama, &[MODEL]);
    let p = UrlPolicy {
        allow_hostnames: true,
        allowed_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        ..UrlPolicy::default()
    };
    let gw = gateway_with(p.clone(), vec![named_node(&f, &p)]);
    let calls = Arc::new(AtomicU64::new(0));
    let live = f.addr();
    gw.gateway
        .set_resolver(resolver(calls.clone(), move |_| vec![live]));
    for (i, (openai, stream)) in [(true, false), (false, true), (true, true)]
        .into_iter()
        .enumerate()
    {
        let (seen, raw) = call(gw.addr, openai, stream, &format!("loop-{i}"), LIMIT);
        assert_eq!(seen, Seen::Status(502), "{}", raw.text());
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "one resolution per attempt"
    );
    assert_eq!(f.requests().calls, 0);
}

#[test]
fn dns_rebinding_cannot_switch_a_checked_name_to_a_metadata_address() {
    // A rebinding resolver: the allowed address on even calls, the
    // metadata address on odd ones. Each attempt resolves once, checks, and
    // connects to what it checked; a second lookup would meet the other
    // answer, so the counts below show there is none.
    let f = fake(NodeKind::OpenAiCompat, &[MODEL]);
    let p = hostnames();
    let gw = gateway_with(p.clone(), vec![named_node(&f, &p)]);
    let calls = Arc::new(AtomicU64::new(0));
    let good = f.addr();
    let meta: SocketAddr = format!("169.254.169.254:{}", good.port()).parse().unwrap();
    gw.gateway.set_resolver(resolver(calls.clone(), move |n| {
        if n % 2 == 0 { vec![good] } else { vec![meta] }
    }));
    let mut tally = reliab::Tally::default();
    for i in 0..8 {
        let (seen, raw) = call(gw.addr, true, i % 2 == 1, &format!("rebind-{i}"), LIMIT);
        assert!(
            matches!(seen, Seen::Ok | Seen::Status(502)),
            "call {i}: {seen:?} {}",
            raw.text()
        );
        tally.add(seen);
    }
    let resolutions = calls.load(Ordering::SeqCst);
    assert_eq!(resolutions, 8, "exactly one resolution per attempt");
    assert_eq!(tally.count(&Seen::Ok), 4, "{tally:?}");
    assert_eq!(tally.count(&Seen::Status(502)), 4, "{tally:?}");
    assert_eq!(
        f.requests().calls,
        4,
        "only checked answers were connected to"
    );
}
