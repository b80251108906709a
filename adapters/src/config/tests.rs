//! Tests of the config file's sections, problems, secrets, environment
//! overrides and `drover check`. Node tests are in `tests_nodes.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_core::admission::PoolLimits;
use drover_core::config::{ConfigError, Policy, RouterConfig, TagMode};
use drover_core::node::NodeKind;

use super::*;

/// A node every test config can start with.
pub(super) const NODE: &str =
    "[[nodes]]\nname = \"a\"\nkind = \"ollama\"\nbaseUrl = \"http://127.0.0.1:11434\"\n";

/// An environment holding `pairs`.
pub(super) fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

pub(super) fn parse(text: &str) -> Result<GatewayConfig, Problems> {
    GatewayConfig::parse(text, Path::new("conf/drover.toml"), &no_env)
}

pub(super) fn ok(text: &str) -> GatewayConfig {
    parse(text).unwrap_or_else(|p| panic!("{p}\n--- in ---\n{text}"))
}

pub(super) fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(p) => p.0,
    }
}

/// Asserts that `text` has exactly one problem, at `field`, whose reason
/// contains `reason`; returns it.
pub(super) fn one(text: &str, field: &str, reason: &str) -> Problem {
    let ps = problems(text);
    assert_eq!(ps.len(), 1, "{text}\n{}", Problems(ps.clone()));
    let p = ps.into_iter().next().expect("one problem");
    assert_eq!(p.field, field, "{p}");
    assert!(p.reason.contains(reason), "{p}\n(want `{reason}`)");
    p
}

/// A scratch folder, removed on drop.
pub(super) struct Dir(pub PathBuf);

impl Dir {
    pub fn new(test: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("drover-config-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn default_local_is_one_local_ollama() {
    let c = GatewayConfig::default_local();
    assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.nodes.len(), 1);
    let n = &c.nodes[0];
    assert_eq!((n.name.as_str(), n.kind), ("local", NodeKind::Ollama));
    assert_eq!(n.base_url.to_string(), DEFAULT_NODE_URL);
    assert_eq!(n.base_url.addr, Some("127.0.0.1:11434".parse().unwrap()));
    assert!(!n.base_url.public && !n.send_auth && n.api_key.is_none());
    // The same node as the URL policy makes of DEFAULT_NODE_URL.
    assert_eq!(
        n.base_url,
        UrlPolicy::default().check_url(DEFAULT_NODE_URL).unwrap()
    );
    assert_eq!(n.capabilities, ["chat", "stream", "embed"]);
    assert_eq!((n.weight, n.max_concurrency), (1, 4));
    assert!(c.client_tokens.is_empty() && c.operator_token.is_none());
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.timeouts, Timeouts::default());
    assert_eq!(c.state_path, None);
    assert!(c.warnings.is_empty());
    c.router_config().unwrap();
    let mut catalog = Catalog::new();
    let specs = c.node_specs(&mut catalog).unwrap();
    assert_eq!(specs.len(), 1);
    assert!(specs[0].models.is_any());
}

#[test]
fn every_default() {
    let c = ok(NODE);
    assert_eq!(c.listen, DEFAULT_LISTEN);
    let l = c.limits;
    assert_eq!(l.max_body_bytes, 4 << 20);
    assert_eq!(l.max_response_bytes, 64 << 20);
    assert_eq!(l.max_headers, 100);
    assert_eq!(l.max_header_bytes, 16 << 10);
    assert_eq!(l.header_timeout, Duration::from_secs(10));
    let t = c.timeouts;
    assert_eq!(t.connect, Duration::from_secs(2));
    assert_eq!(t.attempt, Duration::from_secs(120));
    assert_eq!(t.ttft, Duration::from_secs(30));
    assert_eq!(t.stream_total, Duration::from_secs(600));
    assert_eq!(t.stream_idle, Duration::from_secs(30));
    assert_eq!(t.queue_wait, Duration::from_secs(5));
    // The core's defaults, except that the gateway probes its nodes.
    assert!(c.router.probe.enabled);
    let mut core_defaults = RouterConfig::default();
    core_defaults.probe.enabled = true;
    assert_eq!(c.router, core_defaults);
    assert_eq!(c.router.pools, PoolLimits::default());
    assert_eq!(c.url_policy, UrlPolicy::default());
    assert_eq!((c.state_path.clone(), c.nodes_path.clone()), (None, None));
    assert!(c.client_tokens.is_empty() && c.operator_token.is_none());
    assert_eq!(c.origin, PathBuf::from("conf/drover.toml"));
    let r = c.router_config().unwrap();
    let core = drover_core::Duration::from_secs;
    assert_eq!(r.queue_wait, core(5));
    assert_eq!(r.attempt_timeout, core(120));
    assert_eq!(r.ttft_timeout, core(30));
    assert_eq!(r.call_timeout, core(600));
    assert_eq!(r.max_payload_bytes, 4 << 20);
    assert_eq!(r.policy, Policy::P2c);
}

const FULL: &str = r#"
listen = "[::1]:9000"
client_tokens_env = ["TOKEN_A", "TOKEN_B"]
operator_token_env = "OP_TOKEN"
state_path = "state/drover.json"

[limits]
max_body_bytes = "1MiB"
max_response_bytes = 1000000
max_headers = 50
max_header_bytes = "32 KiB"
header_timeout = 2500

[timeouts]
connect = "500ms"
attempt = "1m"
ttft = "1.5s"
stream_total = "1h"
stream_idle = "45s"
queue_wait = "0s"

[pools]
global = 100
chat = 10
stream = 20
embed = 30
background = 0

[routing]
policy = "least_loaded"
max_attempts = 5
tag_mode = "strict_first"
tag_penalty = 2.5

[routing.affinity]
session_promote_ratio = 3.0
prefix_key_blocks = 0
prefix_load_factor = 1.25
prefix_spread = 3

[routing.hedge]
enabled = true
quantile = 0.95
min_delay = "10ms"
max_delay = "1s"
budget_ratio = 0.2
budget_burst = 5
non_stream = true

[url_policy]
allow_public = true
allow_hostnames = true
allowed_ports = [11434, 8000]
allowed_cidrs = ["10.0.0.0/8", "fd00::/8"]

[[nodes]]
name = "a"
kind = "ollama"
baseUrl = "http://10.0.0.1:11434"
"#;

#[test]
fn every_key_is_read() {
    let get = env(&[
        ("TOKEN_A", "aaaaaaaaaaaaaaaaaaaa"),
        ("TOKEN_B", "bbbbbbbbbbbbbbbbbbbb"),
        ("OP_TOKEN", "oooooooooooooooooooo"),
    ]);
    let c = GatewayConfig::parse(FULL, Path::new("conf/drover.toml"), &get).unwrap();
    assert_eq!(c.listen, "[::1]:9000".parse().unwrap());
    assert_eq!(c.client_tokens.len(), 2);
    assert_eq!(c.client_tokens[1].expose(), "bbbbbbbbbbbbbbbbbbbb");
    assert_eq!(
        c.operator_token.as_ref().map(Secret::expose),
        Some("oooooooooooooooooooo")
    );
    assert_eq!(c.state_path, Some(PathBuf::from("conf/state/drover.json")));
    assert_eq!(
        c.limits,
        Limits {
            max_body_bytes: 1 << 20,
            max_response_bytes: 1_000_000,
            max_headers: 50,
            max_header_bytes: 32 << 10,
            header_timeout: Duration::from_millis(2500),
        }
    );
    assert_eq!(
        c.timeouts,
        Timeouts {
            connect: Duration::from_millis(500),
            attempt: Duration::from_secs(60),
            ttft: Duration::from_millis(1500),
            stream_total: Duration::from_secs(3600),
            stream_idle: Duration::from_secs(45),
            queue_wait: Duration::ZERO,
            shutdown_grace: Duration::from_secs(30),
        }
    );
    let r = c.router;
    assert_eq!(
        r.pools,
        PoolLimits {
            global: 100,
            chat: 10,
            stream: 20,
            embed: 30,
            background: 0
        }
    );
    assert_eq!(r.policy, Policy::LeastLoaded);
    assert_eq!(r.max_attempts, 5);
    assert_eq!(r.tag_mode, TagMode::StrictFirst);
    assert_eq!(r.tag_penalty, 2.5);
    let a = r.affinity;
    assert_eq!(
        (
            a.session_promote_ratio,
            a.prefix_key_blocks,
            a.prefix_load_factor,
            a.prefix_spread
        ),
        (3.0, 0, 1.25, 3)
    );
    let h = r.hedge;
    assert!(h.enabled && h.non_stream);
    assert_eq!(h.quantile, 0.95);
    assert_eq!(h.min_delay, drover_core::Duration::from_millis(10));
    assert_eq!(h.max_delay, drover_core::Duration::from_secs(1));
    assert_eq!((h.budget_ratio, h.budget_burst), (0.2, 5));
    let p = &c.url_policy;
    assert!(p.allow_public && p.allow_hostnames);
    assert_eq!(p.allowed_ports, [11434, 8000]);
    assert_eq!(
        p.allowed_cidrs,
        [
            "10.0.0.0/8".parse::<Cidr>().unwrap(),
            "fd00::/8".parse().unwrap()
        ]
    );
    let rc = c.router_config().unwrap();
    assert_eq!(rc.queue_wait, drover_core::Duration::ZERO);
    assert_eq!(rc.ttft_timeout, drover_core::Duration::from_millis(1500));
    assert_eq!(rc.call_timeout, drover_core::Duration::from_secs(3600));
    assert_eq!(rc.max_payload_bytes, 1 << 20);
    // Only the zero background pool is worth a warning.
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert_eq!(c.warnings[0].field, "pools.background");
}

#[test]
fn every_range_is_checked() {
    let table: &[(&str, &str, &str)] = &[
        ("listen = \"localhost:80\"", "listen", "not an address"),
        ("state_path = \"\"", "state_path", "must not be empty"),
        ("nodes_path = \"\"", "nodes_path", "must not be empty"),
        (
            "[limits]\nmax_body_bytes = 0",
            "limits.max_body_bytes",
            "from 1 to 1073741824",
        ),
        (
            "[limits]\nmax_body_bytes = \"2GiB\"",
            "limits.max_body_bytes",
            "found 2147483648",
        ),
        (
            "[limits]\nmax_response_bytes = 0",
            "limits.max_response_bytes",
            "from 1",
        ),
        (
            "[limits]\nmax_headers = 0",
            "limits.max_headers",
            "from 1 to 1000",
        ),
        (
            "[limits]\nmax_headers = 1001",
            "limits.max_headers",
            "from 1 to 1000",
        ),
        (
            "[limits]\nmax_header_bytes = \"4KiB\"",
            "limits.max_header_bytes",
            "from 8192",
        ),
        (
            "[limits]\nmax_header_bytes = \"2MiB\"",
            "limits.max_header_bytes",
            "to 1048576",
        ),
        (
            "[limits]\nheader_timeout = 0",
            "limits.header_timeout",
            "longer than 0",
        ),
        (
            "[limits]\nmax_body_bytes = \"4MB\"",
            "limits.max_body_bytes",
            "is not a size",
        ),
        (
            "[timeouts]\nconnect = \"0s\"",
            "timeouts.connect",
            "longer than 0",
        ),
        (
            "[timeouts]\nattempt = \"0ms\"",
            "timeouts.attempt",
            "longer than 0",
        ),
        ("[timeouts]\nttft = 0", "timeouts.ttft", "longer than 0"),
        (
            "[timeouts]\nstream_total = \"0h\"",
            "timeouts.stream_total",
            "longer than 0",
        ),
        (
            "[timeouts]\nttft = \"121s\"",
            "timeouts.ttft",
            "not be longer than timeouts.attempt",
        ),
        (
            "[timeouts]\nstream_idle = \"0s\"",
            "timeouts.stream_idle",
            "longer than 0",
        ),
        (
            "[timeouts]\nstream_idle = \"11m\"",
            "timeouts.stream_idle",
            "not be longer than timeouts.stream_total",
        ),
        (
            "[timeouts]\nattempt = \"11m\"",
            "timeouts.attempt",
            "not be longer than timeouts.stream_total",
        ),
        (
            "[timeouts]\nconnect = \"2 s\"",
            "timeouts.connect",
            "is not a duration",
        ),
        (
            "[timeouts]\nconnect = \"25h\"",
            "timeouts.connect",
            "limit of 24h",
        ),
        (
            "[timeouts]\nconnect = -1",
            "timeouts.connect",
            "cannot be negative",
        ),
        ("[pools]\nglobal = 0", "pools.global", "from 1 to 16384"),
        ("[pools]\nglobal = 16385", "pools.global", "from 1 to 16384"),
        (
            "[pools]\nglobal = 8\nembed = 9",
            "pools.embed",
            "from 0 to 8",
        ),
        (
            "[routing]\npolicy = \"fastest\"",
            "routing.policy",
            "unknown policy `fastest`; expected one of p2c,",
        ),
        (
            "[routing]\nmax_attempts = 0",
            "routing.max_attempts",
            "from 1 to 8",
        ),
        (
            "[routing]\nmax_attempts = 9",
            "routing.max_attempts",
            "from 1 to 8",
        ),
        (
            "[routing]\ntag_mode = \"never\"",
            "routing.tag_mode",
            "prefer, strict_first or require",
        ),
        (
            "[routing]\ntag_penalty = 0.5",
            "routing.tag_penalty",
            "at least 1",
        ),
        (
            "[routing]\ntag_penalty = inf",
            "routing.tag_penalty",
            "at least 1",
        ),
        (
            "[routing.affinity]\nsession_promote_ratio = 0.9",
            "routing.affinity.session_promote_ratio",
            "at least 1",
        ),
        (
            "[routing.affinity]\nprefix_load_factor = nan",
            "routing.affinity.prefix_load_factor",
            "at least 1",
        ),
        (
            "[routing.affinity]\nprefix_key_blocks = 256",
            "routing.affinity.prefix_key_blocks",
            "from 0 to 255",
        ),
        (
            "[routing.affinity]\nprefix_spread = 65",
            "routing.affinity.prefix_spread",
            "from 0 to 64",
        ),
        (
            "[routing.hedge]\nquantile = 1.5",
            "routing.hedge.quantile",
            "between 0 and 1",
        ),
        (
            "[routing.hedge]\nbudget_ratio = -0.1",
            "routing.hedge.budget_ratio",
            "between 0 and 1",
        ),
        (
            "[routing.hedge]\nmin_delay = \"3s\"",
            "routing.hedge.min_delay",
            "max_delay",
        ),
        (
            "[routing.hedge]\nbudget_burst = 10001",
            "routing.hedge.budget_burst",
            "from 0 to 10000",
        ),
        (
            "[routing.hedge]\nenabled = \"yes\"",
            "routing.hedge.enabled",
            "invalid type",
        ),
        (
            "[url_policy]\nallowed_ports = [0]",
            "url_policy.allowed_ports[0]",
            "from 1 to 65535",
        ),
        (
            "[url_policy]\nallowed_ports = [11434, 70000]",
            "url_policy.allowed_ports[1]",
            "from 1 to 65535",
        ),
        (
            "[url_policy]\nallowed_cidrs = [\"10.0.0.1/8\"]",
            "url_policy.allowed_cidrs[0]",
            "did you mean 10.0.0.0/8",
        ),
        (
            "[url_policy]\nallow_public = 1",
            "url_policy.allow_public",
            "invalid type",
        ),
        (
            "colour = \"red\"",
            "colour",
            "unknown key `colour`; expected one of listen,",
        ),
        (
            "[limits]\nmax_bodies = 1",
            "limits.max_bodies",
            "unknown field `max_bodies`",
        ),
        (
            "[routing.hedge]\ndelay = 1",
            "routing.hedge.delay",
            "unknown field `delay`",
        ),
        ("limits = 5", "limits", "invalid type"),
        (
            "client_tokens_env = \"TOKEN\"",
            "client_tokens_env",
            "invalid type",
        ),
    ];
    for (snippet, field, reason) in table {
        // Top-level keys must come before the first table.
        let text = format!("{snippet}\n{NODE}");
        one(&text, field, reason);
    }
}

#[test]
fn zero_queue_wait_is_allowed_and_zero_pools_warn() {
    let c = ok(&format!(
        "[timeouts]\nqueue_wait = 0\n[pools]\nchat = 0\n{NODE}"
    ));
    assert_eq!(c.timeouts.queue_wait, Duration::ZERO);
    assert_eq!(c.router.pools.chat, 0);
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(c.warnings[0].field, "pools.chat");
    assert!(c.warnings[0].reason.contains("refuses every chat call"));
}

#[test]
fn class_pools_default_to_at_most_global() {
    let c = ok(&format!("[pools]\nglobal = 8\nstream = 4\n{NODE}"));
    let p = c.router.pools;
    assert_eq!(
        (p.global, p.chat, p.stream, p.embed, p.background),
        (8, 8, 4, 8, 8)
    );
    let c = ok(&format!("[pools]\nglobal = 32\n{NODE}"));
    assert_eq!(c.router.pools.background, 16);
}

#[test]
fn every_problem_is_reported_with_file_line_and_field() {
    let text = "\
listen = \"nope\"
bogus = 1
[limits]
max_body_bytes = 0
max_headers = \"many\"
max_header_bytes = 1
[routing]
policy = \"fastest\"
[[nodes]]
name = \"a\"
kind = \"ollama\"
baseUrl = \"http://169.254.169.254:80\"
weight = 0
";
    let ps = problems(text);
    let shown: Vec<String> = ps.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "conf/drover.toml:1: field `listen`: `nope` is not an address like 127.0.0.1:8080 or [::1]:8080",
            "conf/drover.toml:2: field `bogus`: unknown key `bogus`; expected one of listen, \
             tokens_on_loopback, client_tokens, client_tokens_env, operator_token_env, heartbeat_token_env, state_path, nodes_path, limits, \
             timeouts, pools, routing, health, probes, retry_budget, url_policy, nodes",
            "conf/drover.toml:4: field `limits.max_body_bytes`: must be from 1 to 1073741824, found 0",
            "conf/drover.toml:5: field `limits.max_headers`: invalid type: string \"many\", expected u64",
            "conf/drover.toml:6: field `limits.max_header_bytes`: must be from 8192 to 1048576, found 1",
            "conf/drover.toml:8: field `routing.policy`: unknown policy `fastest`; expected one of \
             p2c, round_robin, random, least_loaded, weighted_random, least_in_flight, p2c_peak_ewma",
            "conf/drover.toml:12: field `nodes[0].baseUrl`: address 169.254.169.254 is link-local \
             (cloud metadata lives here): never allowed",
            "conf/drover.toml:13: field `nodes[0].weight`: must be from 1 to 65535, found 0",
        ]
    );
    assert_eq!(Problems(ps).to_string().lines().count(), 8);
}

#[test]
fn syntax_errors_have_lines_and_stop_the_checks() {
    let ps = problems("listen = \"127.0.0.1:1\"\n[limits\nmax_headers = 0\n");
    assert!(!ps.is_empty());
    assert_eq!(ps[0].line, Some(2), "{}", ps[0]);
    assert!(ps[0].reason.starts_with("invalid TOML"), "{}", ps[0]);
    assert!(ps.iter().all(|p| p.field.is_empty()));
    let p = one("listen = \"a\"\nlisten = \"b\"\n", "", "invalid TOML");
    assert_eq!(p.line, Some(2));
}

#[test]
fn a_config_needs_nodes_and_a_readable_file() {
    let p = one("listen = \"127.0.0.1:9\"\n", "nodes", "no nodes");
    assert_eq!(p.line, None);
    let ps = GatewayConfig::load(Path::new("/nonexistent/drover.toml"))
        .unwrap_err()
        .0;
    assert_eq!(ps.len(), 1);
    assert_eq!((ps[0].line, ps[0].field.as_str()), (None, ""));
    assert!(
        ps[0]
            .to_string()
            .starts_with("/nonexistent/drover.toml: cannot read the config file")
    );
}

#[test]
fn router_config_validation_names_the_field() {
    let base = ok(NODE);
    type Spoil = fn(&mut GatewayConfig);
    let cases: [(Spoil, &str); 6] = [
        (|c| c.router.tag_penalty = 0.5, "routing.tag_penalty"),
        (|c| c.router.max_attempts = 0, "routing.max_attempts"),
        (|c| c.timeouts.attempt = Duration::ZERO, "timeouts.attempt"),
        (|c| c.router.hedge.quantile = 2.0, "routing.hedge.quantile"),
        (|c| c.router.pools.stream = 1000, "pools.stream"),
        (
            |c| c.router.affinity.prefix_load_factor = 0.0,
            "routing.affinity.prefix_load_factor",
        ),
    ];
    for (spoil, field) in cases {
        let mut c = base.clone();
        spoil(&mut c);
        let ps = c.router_config().unwrap_err().0;
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].field, field, "{}", ps[0]);
        assert_eq!(ps[0].file, PathBuf::from("conf/drover.toml"));
    }
}

#[test]
fn every_router_error_maps_to_a_key() {
    use drover_core::admission::{LimitsError, Pool};
    let table = [
        (ConfigError::MaxAttempts, "routing.max_attempts"),
        (
            ConfigError::ZeroTimeout("attempt_timeout"),
            "timeouts.attempt",
        ),
        (ConfigError::ZeroTimeout("ttft_timeout"), "timeouts.ttft"),
        (
            ConfigError::ZeroTimeout("call_timeout"),
            "timeouts.stream_total",
        ),
        (
            ConfigError::PromoteRatio,
            "routing.affinity.session_promote_ratio",
        ),
        (
            ConfigError::PrefixLoadFactor,
            "routing.affinity.prefix_load_factor",
        ),
        (ConfigError::TagPenalty, "routing.tag_penalty"),
        (ConfigError::Hedge("quantile"), "routing.hedge.quantile"),
        (ConfigError::Hedge("min_delay"), "routing.hedge.min_delay"),
        (
            ConfigError::Hedge("budget_ratio"),
            "routing.hedge.budget_ratio",
        ),
        (ConfigError::Pools(LimitsError::ZeroGlobal), "pools.global"),
        (
            ConfigError::Pools(LimitsError::PoolExceedsGlobal {
                pool: Pool::Background,
                limit: 2,
                global: 1,
            }),
            "pools.background",
        ),
        (
            ConfigError::Pools(LimitsError::PoolExceedsGlobal {
                pool: Pool::Chat,
                limit: 2,
                global: 1,
            }),
            "pools.chat",
        ),
        (
            ConfigError::Pools(LimitsError::PoolExceedsGlobal {
                pool: Pool::Embed,
                limit: 2,
                global: 1,
            }),
            "pools.embed",
        ),
    ];
    for (e, field) in table {
        assert_eq!(router_error_field(&e), field, "{e:?}");
    }
}

pub(super) fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/drover.example.toml")
}

#[test]
fn the_example_config_passes_check() {
    let summary = check_with(&example(), &no_env).unwrap_or_else(|p| panic!("{p}"));
    assert!(summary.contains("drover.example.toml: ok"), "{summary}");
    assert!(
        summary.contains("listen 127.0.0.1:8080, 3 nodes, policy p2c"),
        "{summary}"
    );
    assert!(!summary.contains("warning"), "{summary}");
    let c = GatewayConfig::load_with(&example(), &no_env).unwrap();
    // The example spells out the defaults.
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.timeouts, Timeouts::default());
    let d = RouterConfig::default();
    assert_eq!((c.router.affinity, c.router.hedge), (d.affinity, d.hedge));
    let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["local", "gpu-box", "laptop"]);
    assert!(c.nodes[2].origin.ends_with("configs/nodes.example.json"));
    let mut catalog = Catalog::new();
    assert_eq!(c.node_specs(&mut catalog).unwrap().len(), 3);
}

/// Found by the `config` fuzz target: TOML nested past the parser's
/// recursion limit is refused as invalid TOML about the whole file (the
/// parser gives no position), without a stack overflow. A nodes file nested
/// that deep is refused too (its field index stops at 64 levels, so the
/// problem says no node was found rather than why).
#[test]
fn deeply_nested_files_are_refused_without_overflowing_the_stack() {
    let toml = format!("x = {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let ps = GatewayConfig::parse(&toml, Path::new("deep.toml"), &no_env)
        .unwrap_err()
        .0;
    assert!(
        ps.iter().all(|p| p.reason.starts_with("invalid TOML")),
        "{}",
        Problems(ps.clone())
    );
    let json = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let ps = parse_nodes(
        &json,
        Path::new("deep.json"),
        &UrlPolicy::default(),
        &no_env,
    )
    .unwrap_err()
    .0;
    assert!(!ps.is_empty());
    assert!(
        ps.iter().all(|p| p.file == Path::new("deep.json")),
        "{}",
        Problems(ps)
    );
}
