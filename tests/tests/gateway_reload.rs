//! Reloading the nodes file while the gateway runs: nodes are added,
//! updated and removed without a restart, and a file with problems (bad
//! JSON, a forbidden URL, a symbolic link, group-writable) is refused as a
//! whole while the gateway keeps routing to the nodes it had.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use drover::config::GatewayConfig;
use drover::fake::FakeServer;
use drover_core::node::NodeKind;
use serde_json::{Value, json};
use support::*;

/// Longest wait for a change to be noticed (the file is looked at every 2 s).
const NOTICE: Duration = Duration::from_secs(8);

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("drover-reload-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn entry(name: &str, fake: &FakeServer, models: &[&str]) -> Value {
    json!({"name": name, "kind": "ollama", "baseUrl": format!("http://{}", fake.addr()),
           "maxConcurrency": 4, "models": models})
}

/// Writes the nodes file the way an editor or `drover discover` does: a new
/// file renamed over the old one, mode 0600.
fn write_nodes(path: &Path, nodes: &[Value]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&Value::from(nodes.to_vec())).unwrap(),
    )
    .unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn start_from(dir: &Dir, nodes: &[Value]) -> (drover::serve::Running, PathBuf) {
    let nodes_path = dir.0.join("nodes.json");
    write_nodes(&nodes_path, nodes);
    let cfg_path = dir.0.join("drover.toml");
    std::fs::write(
        &cfg_path,
        "listen = \"127.0.0.1:0\"\nnodes_path = \"nodes.json\"\n[routing]\npolicy = \"round_robin\"\n",
    )
    .unwrap();
    let cfg = GatewayConfig::load(&cfg_path).expect("the config loads");
    (start(cfg), nodes_path)
}

fn chats(fake: &FakeServer) -> u64 {
    fake.requests()
        .by_path
        .get("/api/chat")
        .copied()
        .unwrap_or(0)
}

fn reloads(addr: std::net::SocketAddr, result: &str) -> u64 {
    let m = get(addr, "/metrics").text();
    let line = format!("drover_nodes_reloads_total{{result=\"{result}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX)
}

#[test]
fn nodes_are_added_updated_and_removed_without_a_restart() {
    let a = fake(NodeKind::Ollama, &["m"]);
    let b = fake(NodeKind::Ollama, &["m", "n"]);
    let dir = Dir::new("apply");
    let (gw, path) = start_from(&dir, &[entry("a", &a, &["m"])]);
    let r = post(gw.addr, "/api/chat", &chat_body("m", Some(false)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        post(gw.addr, "/api/chat", &chat_body("n", Some(false))).status,
        404
    );

    // b joins with a model nobody served before.
    write_nodes(
        &path,
        &[entry("a", &a, &["m"]), entry("b", &b, &["m", "n"])],
    );
    wait_until(NOTICE, "node b to appear", || {
        nodes(gw.addr).contains_key("b")
    });
    assert_eq!(reloads(gw.addr, "applied"), 1);
    let r = post(gw.addr, "/api/chat", &chat_body("n", Some(false)));
    assert_eq!(r.status, 200, "the new model is routable: {}", r.text());
    assert_eq!(chats(&b), 1);
    let models = get(gw.addr, "/api/tags").text();
    assert!(models.contains("\"n\""), "{models}");

    // a leaves: no call reaches it any more, and it disappears once idle.
    let before = chats(&a);
    write_nodes(&path, &[entry("b", &b, &["m", "n"])]);
    wait_until(NOTICE, "node a to go", || !nodes(gw.addr).contains_key("a"));
    for _ in 0..6 {
        let r = post(gw.addr, "/api/chat", &chat_body("m", Some(false)));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(chats(&a), before, "a removed node got calls");

    // b's weight changes: updated in place, its learned state kept.
    let mut changed = entry("b", &b, &["m", "n"]);
    changed["weight"] = json!(3);
    write_nodes(&path, &[changed]);
    wait_until(NOTICE, "b's weight to change", || {
        nodes(gw.addr)["b"]["weight"] == json!(3)
    });
    assert_eq!(reloads(gw.addr, "applied"), 3);
    assert_eq!(reloads(gw.addr, "refused"), 0);
}

#[test]
fn a_bad_nodes_file_is_refused_and_the_gateway_keeps_its_nodes() {
    let a = fake(NodeKind::Ollama, &["m"]);
    let dir = Dir::new("refuse");
    let (gw, path) = start_from(&dir, &[entry("a", &a, &["m"])]);
    let mut refused = 0;
    let expect_refused = |what: &str, refused: &mut u64| {
        *refused += 1;
        let want = *refused;
        wait_until(NOTICE, what, || reloads(gw.addr, "refused") == want);
        assert!(
            nodes(gw.addr).contains_key("a"),
            "{what}: the old node is gone"
        );
        let r = post(gw.addr, "/api/chat", &chat_body("m", Some(false)));
        assert_eq!(r.status, 200, "{what}: {}", r.text());
    };

    std::fs::write(&path, b"[{\"name\": ").unwrap();
    expect_refused("invalid JSON", &mut refused);

    write_nodes(
        &path,
        &[json!({"name": "meta", "kind": "ollama", "baseUrl": "http://169.254.169.254:80"})],
    );
    expect_refused("a link-local URL", &mut refused);

    write_nodes(&path, &[entry("a", &a, &["m"]), entry("b", &a, &["m"])]);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    expect_refused("a world-writable file", &mut refused);
    assert!(!nodes(gw.addr).contains_key("b"));

    let real = dir.0.join("real.json");
    write_nodes(&real, &[entry("a", &a, &["m"]), entry("b", &a, &["m"])]);
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&real, &path).unwrap();
    expect_refused("a symbolic link", &mut refused);
    assert!(!nodes(gw.addr).contains_key("b"));
    assert_eq!(reloads(gw.addr, "applied"), 0);

    // A good file is taken again.
    std::fs::remove_file(&path).unwrap();
    write_nodes(&path, &[entry("a", &a, &["m"]), entry("b", &a, &["m"])]);
    wait_until(NOTICE, "the good file", || nodes(gw.addr).contains_key("b"));
}

#[test]
fn a_removed_node_with_a_call_in_flight_finishes_it_then_goes() {
    let slow = fake_with(
        NodeKind::Ollama,
        &["m"],
        drover::fake::Behaviour {
            token_interval: ms(150),
            tokens: 20,
            ..drover::fake::Behaviour::default()
        },
    );
    let other = fake(NodeKind::Ollama, &["m"]);
    let dir = Dir::new("retire");
    let (gw, path) = start_from(&dir, &[entry("slow", &slow, &["m"])]);
    let body = serde_json::to_vec(&chat_body("m", Some(true))).unwrap();
    let mut stream = Streaming::open(gw.addr, "POST", "/api/chat", &[], &body);
    assert_eq!(stream.status, 200);
    assert!(stream.next_chunk().is_some());
    write_nodes(&path, &[entry("other", &other, &["m"])]);
    wait_until(NOTICE, "other to appear", || {
        nodes(gw.addr).contains_key("other")
    });
    let listed = nodes(gw.addr);
    assert_eq!(listed["slow"]["mode"], json!("disabled"), "{listed:?}");
    let rest = String::from_utf8_lossy(&stream.rest()).into_owned();
    assert!(
        rest.contains("\"done\":true"),
        "the stream finished intact: {rest}"
    );
    wait_until(NOTICE, "slow to be removed", || {
        !nodes(gw.addr).contains_key("slow")
    });
    let r = post(gw.addr, "/api/chat", &chat_body("m", Some(false)));
    assert_eq!(r.status, 200);
    assert_eq!(chats(&other), 1);
}
