//! Tests of `drover discover`, on 127.0.0.1 only.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drover_core::node::NodeKind;
use serde_json::{Value, json};

use super::args::parse_strs;
use super::*;
use crate::cli::Command;
use crate::config::GatewayConfig;
use crate::fake::{FakeServer, FakeSpec};

struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("drover-discover-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn no_resolve(host: &str) -> std::io::Result<Vec<IpAddr>> {
    panic!("resolved {host}: host names are not allowed here")
}

fn opts(ports: &[u16], write: &Path) -> DiscoverOptions {
    DiscoverOptions {
        hosts: vec!["127.0.0.1".to_owned()],
        ports: ports.to_vec(),
        tags: vec!["gpu".to_owned()],
        timeout: Duration::from_millis(300),
        allow_public: false,
        allow_hostnames: false,
        write: write.to_owned(),
    }
}

/// Loads `nodes` through the gateway's config loader.
fn load(dir: &Dir, nodes: &Path) -> GatewayConfig {
    let conf = dir.0.join("drover.toml");
    std::fs::write(
        &conf,
        format!("nodes_path = {:?}\n", nodes.display().to_string()),
    )
    .unwrap();
    GatewayConfig::load_with(&conf, &|_| None).unwrap_or_else(|p| panic!("{p}"))
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Swarm {
    ollama: FakeServer,
    openai: FakeServer,
    dead: u16,
    /// Accepts connections (the backlog does) and never answers.
    hang: TcpListener,
}

impl Swarm {
    fn start() -> Swarm {
        Swarm {
            ollama: FakeServer::start(FakeSpec::new(NodeKind::Ollama, &["llama3:8b", "nomic"]))
                .unwrap(),
            openai: FakeServer::start(FakeSpec::new(NodeKind::OpenAiCompat, &["qwen"])).unwrap(),
            dead: dead_port(),
            hang: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    fn ports(&self) -> Vec<u16> {
        vec![
            self.ollama.addr().port(),
            self.openai.addr().port(),
            self.dead,
            self.hang.local_addr().unwrap().port(),
        ]
    }
}

fn node(c: &GatewayConfig, port: u16) -> &crate::config::NodeConfig {
    c.nodes
        .iter()
        .find(|n| n.base_url.port == port)
        .unwrap_or_else(|| panic!("no node on port {port}"))
}

#[test]
fn finds_exactly_the_two_servers_and_the_file_loads() {
    let dir = Dir::new("two");
    let s = Swarm::start();
    let file = dir.0.join("nodes.json");
    let mut err = Vec::new();
    let started = Instant::now();
    let report = run_with(&opts(&s.ports(), &file), &no_resolve, &mut err).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
    let want = Report {
        hosts: 1,
        probed: 4,
        ollama: 1,
        openai: 1,
        models: 3,
        added: 2,
        written: 2,
        ..Report::default()
    };
    assert_eq!(report, want);
    assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
    let c = load(&dir, &file);
    assert_eq!(c.nodes.len(), 2);
    let (o, p) = (s.ollama.addr().port(), s.openai.addr().port());
    let n = node(&c, o);
    assert_eq!(
        (n.name.clone(), n.kind),
        (format!("127.0.0.1-{o}"), NodeKind::Ollama)
    );
    assert_eq!(n.models, ["llama3:8b", "nomic"]);
    assert_eq!((n.max_concurrency, n.weight), (4, 1));
    assert_eq!(n.tags, ["gpu"]);
    let n = node(&c, p);
    assert_eq!(
        (n.name.clone(), n.kind),
        (format!("127.0.0.1-{p}"), NodeKind::OpenAiCompat)
    );
    assert_eq!(n.models, ["qwen"]);
    // Only the catalog paths were asked: no model was loaded.
    let (ro, rp) = (s.ollama.requests(), s.openai.requests());
    assert_eq!((ro.total, ro.path("/api/tags")), (1, 1));
    assert_eq!(
        (rp.total, rp.path("/api/tags"), rp.path("/v1/models")),
        (2, 1, 1)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn an_old_file_keeps_its_tuned_fields() {
    let dir = Dir::new("old");
    let s = Swarm::start();
    let (o, p) = (s.ollama.addr().port(), s.openai.addr().port());
    let file = dir.0.join("nodes.json");
    let old = json!([
        {"name": "big-box", "provider": "ollama", "baseUrl": format!("http://127.0.0.1:{o}/"),
         "maxConcurrency": 16, "weight": 3, "models": ["old-model"], "tags": ["fast"],
         "modelAliases": {"chat": "llama3:8b", "gone": "old-model"}, "capabilities": ["chat"]},
        {"name": "pinned", "kind": "openai_compat", "baseUrl": format!("http://127.0.0.1:{p}"),
         "models": ["qwen-local"], "pinModels": true},
        {"name": "down", "kind": "ollama", "baseUrl": format!("http://127.0.0.1:{}", s.dead),
         "maxConcurrency": 2},
        {"name": "elsewhere", "kind": "ollama", "baseUrl": "http://10.9.9.9:11434"}
    ]);
    std::fs::write(&file, old.to_string()).unwrap();
    let mut err = Vec::new();
    let report = run_with(&opts(&s.ports(), &file), &no_resolve, &mut err).unwrap();
    assert_eq!(
        (
            report.added,
            report.updated,
            report.not_answering,
            report.not_probed
        ),
        (0, 2, 1, 1)
    );
    assert_eq!((report.aliases_dropped, report.written), (1, 4));
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains("node `big-box`: alias `gone` dropped"),
        "{err}"
    );
    let text: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(text.is_array(), "the old file's form is kept");
    let c = load(&dir, &file);
    let n = node(&c, o);
    assert_eq!(n.name, "big-box");
    assert_eq!((n.max_concurrency, n.weight), (16, 3));
    assert_eq!(
        n.models,
        ["llama3:8b", "nomic"],
        "refreshed from the catalog"
    );
    assert_eq!(n.model_aliases.len(), 1);
    assert_eq!(n.model_aliases["chat"], "llama3:8b");
    assert_eq!(n.tags, ["fast", "gpu"]);
    assert_eq!(n.capabilities, ["chat"], "other keys are kept");
    let n = node(&c, p);
    assert_eq!(
        (n.name.as_str(), n.models.clone()),
        ("pinned", vec!["qwen-local".to_owned()])
    );
    let n = node(&c, s.dead);
    assert_eq!((n.name.as_str(), n.max_concurrency), ("down", 2));
    assert!(c.nodes.iter().any(|n| n.name == "elsewhere"));
}

#[test]
fn refused_hosts_are_never_contacted() {
    let policy = UrlPolicy::default();
    let hosts: Vec<String> = [
        "8.8.8.8",
        "169.254.169.254",
        "0.0.0.0",
        "127.0.0.1",
        "10.0.0.5",
        "2852039166",
    ]
    .map(str::to_owned)
    .to_vec();
    let (ok, refused) = plan(&hosts, &policy, &no_resolve);
    let ok: Vec<_> = ok.iter().map(|h| h.given.as_str()).collect();
    assert_eq!(ok, ["127.0.0.1", "10.0.0.5"]);
    let why: Vec<_> = refused
        .iter()
        .map(|r| (r.given.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(why.len(), 4, "{why:?}");
    assert!(why[0].1.contains("pass --allow-public"), "{why:?}");
    assert!(why[1].1.contains("never allowed"), "{why:?}");
    assert!(why[2].1.contains("never allowed"), "{why:?}");
    assert!(why[3].1.contains("dotted quad"), "{why:?}");
    // allow_public widens to public addresses only.
    let public = UrlPolicy {
        allow_public: true,
        ..UrlPolicy::default()
    };
    let (ok, refused) = plan(&hosts[..3], &public, &no_resolve);
    assert_eq!((ok.len(), refused.len()), (1, 2));

    // In a run: only the allowed host is probed, and the refused ones are
    // named on stderr with their reason.
    let dir = Dir::new("refused");
    let fake = FakeServer::start(FakeSpec::new(NodeKind::Ollama, &["m"])).unwrap();
    let file = dir.0.join("nodes.json");
    let mut o = opts(&[fake.addr().port()], &file);
    o.hosts = hosts[..4].to_vec();
    o.hosts.push("localhost".to_owned()); // 127.0.0.1 again: probed once
    let mut err = Vec::new();
    let report = run_with(&o, &no_resolve, &mut err).unwrap();
    assert_eq!(
        (report.hosts, report.refused, report.probed, report.ollama),
        (5, 3, 1, 1)
    );
    let err = String::from_utf8(err).unwrap();
    for h in ["8.8.8.8", "169.254.169.254", "0.0.0.0"] {
        assert!(err.contains(&format!("host `{h}` refused: ")), "{err}");
    }
    assert!(!err.contains("127.0.0.1"), "{err}");
}

#[test]
fn host_names_need_the_flag_and_every_address_must_pass() {
    let hosts = vec!["gpu.lan".to_owned()];
    let (ok, refused) = plan(&hosts, &UrlPolicy::default(), &no_resolve);
    assert!(ok.is_empty());
    assert!(
        refused[0].reason.contains("pass --allow-hostnames"),
        "{}",
        refused[0].reason
    );
    let names = UrlPolicy {
        allow_hostnames: true,
        ..UrlPolicy::default()
    };
    let to = |ips: &'static [&'static str]| {
        move |_: &str| Ok(ips.iter().map(|i| i.parse().unwrap()).collect())
    };
    let (ok, _) = plan(&hosts, &names, &to(&["10.0.0.7", "10.0.0.8"]));
    assert_eq!(ok[0].ip, "10.0.0.7".parse::<IpAddr>().unwrap());
    let (ok, refused) = plan(&hosts, &names, &to(&["10.0.0.7", "169.254.169.254"]));
    assert!(ok.is_empty());
    assert!(
        refused[0].reason.contains("169.254.169.254"),
        "{}",
        refused[0].reason
    );
    let (_, refused) = plan(&hosts, &names, &to(&[]));
    assert!(refused[0].reason.contains("no address"));
    let (_, refused) = plan(
        &["metadata.google.internal".to_owned()],
        &names,
        &no_resolve,
    );
    assert_eq!(refused.len(), 1);
}

#[test]
fn the_report_has_counts_only() {
    let dir = Dir::new("report");
    let s = Swarm::start();
    let file = dir.0.join("nodes.json");
    let report = run_with(&opts(&s.ports(), &file), &no_resolve, &mut Vec::new()).unwrap();
    let text = report.to_string();
    assert!(
        text.contains("1 ollama, 1 openai_compat, 3 models"),
        "{text}"
    );
    assert!(text.contains("wrote 2 nodes"), "{text}");
    for port in s.ports() {
        assert!(!text.contains(&port.to_string()), "{text}");
    }
    for secret in ["127.0.0.1", "llama3", "qwen", "nodes.json"] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[test]
fn nothing_found_writes_nothing_and_a_bad_old_file_stops_the_run() {
    let dir = Dir::new("nothing");
    let file = dir.0.join("nodes.json");
    let e = run_with(&opts(&[dead_port()], &file), &no_resolve, &mut Vec::new()).unwrap_err();
    assert!(e.contains("no model server found"), "{e}");
    assert!(!file.exists());
    std::fs::write(&file, "{\"nodes\": 3}").unwrap();
    let e = run_with(&opts(&[dead_port()], &file), &no_resolve, &mut Vec::new()).unwrap_err();
    assert!(e.contains("not a nodes file"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{\"nodes\": 3}");
}

#[test]
fn catalogs_must_have_the_expected_shape() {
    let c = |b: &str, l, k| probe::catalog(b.as_bytes(), l, k);
    assert_eq!(
        c(
            r#"{"models":[{"name":"a"},{"name":"a"},{"name":"b"}]}"#,
            "models",
            "name"
        ),
        Some(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        c(r#"{"object":"list","data":[]}"#, "data", "id"),
        Some(vec![])
    );
    assert_eq!(c(r#"{"data":[{"id":1}]}"#, "data", "id"), None);
    assert_eq!(c(r#"{"models":{}}"#, "models", "name"), None);
    assert_eq!(c("<html>", "models", "name"), None);
    let long = "x".repeat(65);
    assert_eq!(
        c(&format!(r#"{{"data":[{{"id":"{long}"}}]}}"#), "data", "id"),
        Some(vec![])
    );
}

#[test]
fn names_are_valid_and_stable() {
    assert_eq!(merge::node_name("10.0.0.5", 11434), "10.0.0.5-11434");
    assert_eq!(merge::node_name("fd00::1", 8000), "fd00--1-8000");
    assert_eq!(merge::node_name("GPU.lan", 1), "gpu.lan-1");
    let long = merge::node_name(&"a".repeat(300), 65535);
    assert_eq!(long.len(), 64);
    assert!(long.ends_with("-65535"));
}

fn parsed(args: &[&str]) -> DiscoverOptions {
    match parse_strs(args) {
        Ok(Command::Discover(o)) => o,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn bad(args: &[&str], names: &str) {
    match parse_strs(args) {
        Err(e) => assert!(e.0.contains(names), "{args:?}: {e}"),
        Ok(c) => panic!("{args:?} accepted: {c:?}"),
    }
}

#[test]
fn command_line() {
    let o = parsed(&["--hosts", "10.0.0.5 10.0.0.6,10.0.0.5", "--write", "n.json"]);
    assert_eq!(o.hosts, ["10.0.0.5", "10.0.0.6"]);
    assert_eq!(o.ports, DEFAULT_PORTS);
    assert_eq!(o.timeout, Duration::from_secs(1));
    assert!(o.tags.is_empty() && !o.allow_public && !o.allow_hostnames);
    assert_eq!(o.write, PathBuf::from("n.json"));
    let o = parsed(&[
        "--hosts=h",
        "--write=n.json",
        "--ports",
        "1,65535",
        "--tags",
        "gpu,big",
        "--timeout",
        "250ms",
        "--allow-public",
        "--allow-hostnames",
    ]);
    assert_eq!(
        (o.ports.clone(), o.tags.clone()),
        (vec![1, 65535], vec!["gpu".into(), "big".into()])
    );
    assert_eq!(o.timeout, Duration::from_millis(250));
    assert!(o.allow_public && o.allow_hostnames);
    assert_eq!(
        parsed(&["--hosts", "h", "--write", "n", "--timeout", "2.5s"]).timeout,
        Duration::from_millis(2500)
    );
    assert_eq!(parse_strs(&["--help"]), Ok(Command::DiscoverHelp));
    assert_eq!(
        crate::cli::parse(["discover", "-h"].map(std::ffi::OsString::from)),
        Ok(Command::DiscoverHelp)
    );
    let top = crate::cli::parse(
        ["discover", "--hosts", "10.0.0.5", "--write", "n.json"].map(std::ffi::OsString::from),
    );
    assert!(matches!(top, Ok(Command::Discover(o)) if o.hosts == ["10.0.0.5"]));
    bad(&["--write", "n"], "missing option '--hosts'");
    bad(&["--hosts", "h"], "missing option '--write'");
    bad(&["--hosts", " , ", "--write", "n"], "'--hosts'");
    bad(&["--hosts", "h", "--write", ""], "'--write'");
    bad(
        &["--hosts", "h", "--write", "n", "--ports", "0"],
        "'--ports'",
    );
    bad(
        &["--hosts", "h", "--write", "n", "--ports", "80,x"],
        "'--ports'",
    );
    bad(
        &["--hosts", "h", "--write", "n", "--ports", "70000"],
        "'--ports'",
    );
    bad(
        &["--hosts", "h", "--write", "n", "--timeout", "1"],
        "'--timeout'",
    );
    bad(
        &["--hosts", "h", "--write", "n", "--timeout", "5ms"],
        "'--timeout'",
    );
    bad(
        &["--hosts", "h", "--write", "n", "--timeout", "61s"],
        "'--timeout'",
    );
    bad(
        &["--hosts", "h", "--write", "n", "--tags", "a b/c"],
        "'--tags'",
    );
    bad(
        &["--hosts", "h", "--hosts", "i", "--write", "n"],
        "'--hosts' is given twice",
    );
    bad(
        &[
            "--hosts",
            "h",
            "--write",
            "n",
            "--allow-public",
            "--allow-public",
        ],
        "'--allow-public' is given twice",
    );
    bad(
        &["--hosts", "h", "--write", "n", "--bogus"],
        "unknown option '--bogus'",
    );
    bad(&["--hosts"], "option '--hosts' needs a value");
    bad(
        &["--hosts", "h", "--write", "n", "extra"],
        "unexpected argument 'extra'",
    );
}

#[test]
fn a_taken_name_gets_a_suffix() {
    let old = merge::Old {
        object_form: true,
        entries: vec![json!({"name": "10.0.0.5-1", "baseUrl": "http://10.0.0.9:1"})]
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(o) => Some(o),
                _ => None,
            })
            .collect(),
    };
    let new = merge::NewNode {
        host: "10.0.0.5".into(),
        base_url: "http://10.0.0.5:1".into(),
        port: 1,
        kind: NodeKind::Ollama,
        models: vec!["m".into()],
    };
    let m = merge::merge(Some(old), vec![new], &Default::default(), &[]).unwrap();
    let v: Value = serde_json::from_str(&m.text).unwrap();
    assert_eq!(v["nodes"][1]["name"], "10.0.0.5-1-2");
    assert_eq!((m.added, m.not_probed, m.nodes), (1, 1, 2));
}
