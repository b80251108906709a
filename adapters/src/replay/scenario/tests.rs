use std::path::{Path, PathBuf};

use drover_core::Duration;
use drover_core::config::Policy;

use super::*;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

/// Two valid nodes; tests append or replace lines. Line numbers:
/// 1 name, 2-6 nodes[0], 7-11 nodes[1].
const BASE: &str = "\
name = \"t\"
[[nodes]]
name = \"a\"
slots = 2
prefill_tokens_per_s = 1000
decode_tokens_per_s = 20
[[nodes]]
name = \"b\"
slots = 1
prefill_tokens_per_s = 100
decode_tokens_per_s = 10
";

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, Path::new("scenarios/x.toml"))
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(s) => panic!("accepted:\n{text}\n{s:?}"),
        Err(e) => e.to_string(),
    }
}

/// BASE with `from` replaced by `to` (which must occur).
fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

#[test]
fn the_shipped_scenarios_parse() {
    let home = Scenario::load(&shipped("home-lab.toml")).unwrap();
    assert_eq!(home.name, "home-lab");
    let names: Vec<&str> = home.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["gpu-1", "cpu-1", "cpu-2", "flaky-1"]);
    assert_eq!(home.policies.len(), 8);
    assert!(home.heartbeat.is_some());
    assert!(home.faults.iter().all(|f| f.node == 3));
    assert_eq!(home.workload.source, None);
    // The built-in default is the same file.
    assert_eq!(Scenario::builtin().unwrap(), home);

    let edge = Scenario::load(&shipped("edge-cluster.toml")).unwrap();
    assert_eq!((edge.nodes.len(), edge.gateways), (8, 2));
    // A rolling crash: one crash per node, one after another, never two
    // at once.
    assert_eq!(edge.faults.len(), 8);
    for (i, w) in edge.faults.windows(2).enumerate() {
        assert_eq!((w[0].node, w[1].node), (i, i + 1));
        assert_eq!(w[0].kind, FaultKind::Crash);
        assert!(w[0].until.unwrap() <= w[1].at);
    }

    let moon = Scenario::load(&shipped("mooncake-prefix.toml")).unwrap();
    assert_eq!(moon.workload.format, Some(TraceFormat::Mooncake));
    assert!(moon.policies.iter().any(|p| p.affinity));
    assert!(moon.nodes.iter().all(|n| n.prefix_cache_blocks > 0));
    let specs: Vec<String> = moon.policies.iter().map(|p| p.to_string()).collect();
    assert!(
        specs.contains(&"p2c+affinity+hedge".to_owned()),
        "{specs:?}"
    );
}

#[test]
fn defaults_fill_what_the_file_leaves_out() {
    let s = parse(BASE).unwrap();
    assert_eq!(s.description, "");
    assert_eq!((s.seed, s.gateways, s.heartbeat), (None, 1, None));
    assert_eq!(s.policies, PolicySpec::base_policies());
    assert_eq!(s.router, RouterSettings::default());
    assert!(s.faults.is_empty());
    assert_eq!(s.workload, WorkloadSettings::default());
    let a = &s.nodes[0];
    assert_eq!((a.slots, a.max_concurrency, a.weight), (2, 4, 2));
    assert_eq!(
        (a.base_ttft, a.embed),
        (Duration::ZERO, Duration::from_millis(10))
    );
    assert_eq!((a.jitter, a.failure_rate, a.corrupt_rate), (0.0, 0.0, 0.0));
    assert_eq!(
        (a.overload_queue, a.retry_after, a.heartbeat),
        (None, None, true)
    );
    assert_eq!(s.node_index("b"), Some(1));
    assert_eq!(s.node_index("c"), None);
}

#[test]
fn every_key_is_read() {
    let text = format!(
        "\
description = \"d\"
seed = 9
gateways = 3
policies = [\"least_loaded+hedge\", \"p2c+affinity\"]
{BASE}[heartbeat]
interval_ms = 500
delay_ms = 2.5
stale_after_ms = 1500
lost_after_ms = 3000
[router]
max_attempts = 4
queue_wait_ms = 0
ttft_timeout_ms = 1000
attempt_timeout_ms = 2000
call_timeout_ms = 3000
hedge = {{ quantile = 0.5, min_delay_ms = 10, max_delay_ms = 20, budget_ratio = 0.2, budget_burst = 3, non_stream = true }}
affinity = {{ session_promote_ratio = 1.5, prefix_key_blocks = 2, prefix_load_factor = 1.1, prefix_spread = 3 }}
[[faults]]
kind = \"slow\"
node = \"b\"
at_s = 1.5
until_s = 2
factor = 4
[[faults]]
kind = \"flap\"
node = \"a\"
at_s = 0
period_s = 10
[[faults]]
kind = \"corrupt\"
node = \"a\"
at_s = 3
rate = 0.25
[[faults]]
kind = \"stale_heartbeat\"
node = \"a\"
at_s = 4
[workload]
trace = \"t.csv\"
format = \"azure\"
mix = {{ chat = 1, embed = 3 }}
rate = 2
start_s = 60
duration_s = 120
max_calls = 50
"
    )
    .replace(
        "decode_tokens_per_s = 20\n",
        "decode_tokens_per_s = 20\nmax_concurrency = 3\nweight = 7\ntags = [\"gpu\", \"lan\"]\n\
         base_ttft_ms = 40\njitter = 0.1\nprefix_cache_blocks = 64\nembed_ms = 8\n\
         overload_queue = 2\nretry_after_ms = 1000\nfailure_rate = 0.01\ncorrupt_rate = 0.02\n\
         heartbeat = true\n",
    );
    let s = Scenario::parse(&text, Path::new("dir/s.toml")).unwrap();
    assert_eq!(
        (s.description.as_str(), s.seed, s.gateways),
        ("d", Some(9), 3)
    );
    let names: Vec<String> = s.policies.iter().map(|p| p.to_string()).collect();
    assert_eq!(names, ["least_loaded+hedge", "p2c+affinity"]);
    let hb = s.heartbeat.unwrap();
    assert_eq!(hb.delay, Duration::from_micros(2_500));
    assert_eq!(hb.lost_after, Duration::from_secs(3));
    assert_eq!(s.router.max_attempts, 4);
    assert_eq!(s.router.queue_wait, Duration::ZERO);
    assert_eq!(s.router.hedge.max_delay, Duration::from_millis(20));
    assert!(s.router.hedge.non_stream);
    assert_eq!(s.router.affinity.prefix_spread, 3);
    let a = &s.nodes[0];
    assert_eq!((a.max_concurrency, a.weight, a.tags.len()), (3, 7, 2));
    assert_eq!((a.prefix_cache_blocks, a.overload_queue), (64, Some(2)));
    assert_eq!(a.retry_after, Some(Duration::from_secs(1)));
    assert_eq!(s.faults[0].kind, FaultKind::Slow { factor: 4.0 });
    assert_eq!(
        (s.faults[0].node, s.faults[0].at, s.faults[0].until),
        (
            1,
            Duration::from_millis(1_500),
            Some(Duration::from_secs(2))
        )
    );
    assert_eq!(
        s.faults[1].kind,
        FaultKind::Flap {
            period: Duration::from_secs(10)
        }
    );
    assert_eq!(s.faults[2].kind, FaultKind::Corrupt { rate: 0.25 });
    assert_eq!(s.faults[3].kind.name(), "stale_heartbeat");
    let w = &s.workload;
    // A relative trace is anchored at the scenario's folder.
    assert_eq!(
        w.source,
        Some(WorkloadSource::Trace(PathBuf::from("dir/t.csv")))
    );
    assert_eq!(w.format, Some(TraceFormat::Azure));
    assert_eq!(
        w.mix,
        Mix {
            stream: 0,
            chat: 1,
            embed: 3
        }
    );
    assert_eq!((w.rate, w.max_calls), (2.0, Some(50)));
    assert_eq!(
        (w.start, w.duration),
        (Duration::from_secs(60), Some(Duration::from_secs(120)))
    );
}

#[test]
fn generators_are_read() {
    let s = parse(&format!(
        "{BASE}[workload.poisson]\ncalls = 10\nrate_per_s = 2\nprompt_tokens = [5, 6]\n"
    ))
    .unwrap();
    let Some(WorkloadSource::Poisson(p)) = s.workload.source else {
        panic!("{:?}", s.workload)
    };
    assert_eq!(
        (p.calls, p.prompt_tokens, p.output_tokens),
        (10, (5, 6), (20, 300))
    );
    let s = parse(&format!(
        "{BASE}[workload.bursty]\ncalls = 10\non_rate_per_s = 8\noff_rate_per_s = 0\n\
         mean_on_s = 5\nmean_off_s = 20\n"
    ))
    .unwrap();
    assert!(
        matches!(s.workload.source, Some(WorkloadSource::Bursty(b)) if b.mean_off == Duration::from_secs(20))
    );
    let s = parse(&format!(
        "{BASE}[workload]\nmix = {{ stream = 1 }}\n[workload.sessions]\nsessions = 3\n\
         session_rate_per_s = 0.5\nturns = [1, 3]\n"
    ))
    .unwrap();
    let Some(WorkloadSource::Sessions(g)) = s.workload.source else {
        panic!("{:?}", s.workload)
    };
    assert_eq!((g.sessions, g.turns, g.block_tokens), (3, (1, 3), 512));
}

#[test]
fn syntax_and_type_errors_name_the_line() {
    assert_eq!(
        err("name = \"t\"\nslots = = 3\n"),
        "scenarios/x.toml:2: invalid TOML: extra `=`, expected nothing"
    );
    assert_eq!(
        err(&format!("{BASE}name = \"again\"\n")),
        "scenarios/x.toml:12: invalid TOML: duplicate key"
    );
    assert_eq!(
        err(&with("slots = 1", "slots = \"one\"")),
        "scenarios/x.toml:9: field nodes[1].slots: invalid type: string \"one\", expected u16"
    );
    assert_eq!(
        err(&with("slots = 1", "slots = -1")),
        "scenarios/x.toml:9: field nodes[1].slots: invalid value: integer `-1`, expected u16"
    );
    assert_eq!(
        err(&format!(
            "{BASE}[router]\nhedge = {{ quantile = \"high\" }}\n"
        )),
        "scenarios/x.toml:13: field router.hedge.quantile: invalid type: string \"high\", expected f64"
    );
    assert_eq!(
        err(&format!(
            "{BASE}[[faults]]\nkind = \"boom\"\nnode = \"a\"\nat_s = 1\n"
        )),
        "scenarios/x.toml:13: field faults[0].kind: unknown variant `boom`, expected one of \
         `crash`, `stale_heartbeat`, `slow`, `overload`, `corrupt`, `flap`"
    );
    assert_eq!(
        err(&format!("{BASE}[workload]\nprompt_tokens = [1, 2]\n")),
        "scenarios/x.toml:13: field workload.prompt_tokens: unknown field `prompt_tokens`, \
         expected one of `trace`, `format`, `mix`, `rate`, `start_s`, `duration_s`, \
         `max_calls`, `poisson`, `bursty`, `sessions`"
    );
    assert_eq!(
        err(&format!(
            "{BASE}[workload.poisson]\ncalls = 1\nrate_per_s = 1\nprompt_tokens = [1, 2, 3]\n"
        )),
        "scenarios/x.toml:15: field workload.poisson.prompt_tokens: must be [low, high], found [1, 2, 3]"
    );
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let e = err(&with("slots = 2", "slots = 2\ncolour = \"red\""));
    assert!(
        e.starts_with(
            "scenarios/x.toml:5: field nodes[0].colour: unknown field `colour`, expected one of `name`, `slots`"
        ),
        "{e}"
    );
    let e = err(&format!("{BASE}[routr]\nmax_attempts = 2\n"));
    assert!(
        e.starts_with("scenarios/x.toml:12: field routr: unknown field `routr`, expected one of"),
        "{e}"
    );
    assert_eq!(
        err(&format!("{BASE}[router.hedge]\nenabled = true\n")),
        "scenarios/x.toml:13: field router.hedge.enabled: unknown field `enabled`, expected one \
         of `quantile`, `min_delay_ms`, `max_delay_ms`, `budget_ratio`, `budget_burst`, `non_stream`"
    );
}

#[test]
fn missing_keys() {
    assert_eq!(
        err(&BASE.replace("name = \"t\"\n", "")),
        "scenarios/x.toml: missing field `name`"
    );
    assert_eq!(
        err(&with("slots = 1\n", "")),
        "scenarios/x.toml:7: field nodes[1]: missing field `slots`"
    );
    assert_eq!(
        err("name = \"t\"\n"),
        "scenarios/x.toml: field nodes: a scenario needs at least one node ([[nodes]])"
    );
    assert_eq!(
        err(&format!(
            "{BASE}[[faults]]\nkind = \"crash\"\nnode = \"a\"\n"
        )),
        "scenarios/x.toml:12: field faults[0]: missing field `at_s`"
    );
}

#[test]
fn semantic_errors_name_the_key_and_its_line() {
    let cases: Vec<(String, &str)> = vec![
        (
            with("slots = 1", "slots = 0"),
            "scenarios/x.toml:9: field nodes[1].slots: must be at least 1",
        ),
        (
            with("name = \"b\"", "name = \"a\""),
            "scenarios/x.toml:8: field nodes[1].name: node name \"a\" is already used by nodes[0]",
        ),
        (
            with("name = \"b\"", "name = \"\""),
            "scenarios/x.toml:8: field nodes[1].name: a node name must be 1 to 64 bytes, found \"\"",
        ),
        (
            with(
                "decode_tokens_per_s = 10",
                "decode_tokens_per_s = 10\nfailure_rate = 1.5",
            ),
            "scenarios/x.toml:12: field nodes[1].failure_rate: must be between 0 and 1, found 1.5",
        ),
        (
            with(
                "decode_tokens_per_s = 20",
                "decode_tokens_per_s = 20\njitter = -0.1",
            ),
            "scenarios/x.toml:7: field nodes[0].jitter: must be between 0 and 1, found -0.1",
        ),
        (
            with("prefill_tokens_per_s = 100\n", "prefill_tokens_per_s = 0\n"),
            "scenarios/x.toml:10: field nodes[1].prefill_tokens_per_s: must be a number above 0, found 0",
        ),
        (
            with("slots = 2", "slots = 2\nheartbeat = true"),
            "scenarios/x.toml:5: field nodes[0].heartbeat: the scenario has no [heartbeat] section: \
             add one, or leave heartbeat out",
        ),
        (
            with("slots = 2", "slots = 2\nbase_ttft_ms = -5"),
            "scenarios/x.toml:5: field nodes[0].base_ttft_ms: must be a number of milliseconds \
             from 0 to 2592000000, found -5",
        ),
        (
            format!("{BASE}[[faults]]\nkind = \"crash\"\nnode = \"c\"\nat_s = 1\n"),
            "scenarios/x.toml:14: field faults[0].node: unknown node \"c\": the nodes are a, b",
        ),
        (
            format!("{BASE}[[faults]]\nkind = \"crash\"\nnode = \"a\"\nat_s = 10\nuntil_s = 5\n"),
            "scenarios/x.toml:16: field faults[0].until_s: must be after at_s (10), found 5",
        ),
        (
            format!("{BASE}[[faults]]\nkind = \"crash\"\nnode = \"a\"\nat_s = 10\nuntil_s = 10\n"),
            "scenarios/x.toml:16: field faults[0].until_s: must be after at_s (10), found 10",
        ),
        (
            format!("{BASE}[[faults]]\nkind = \"slow\"\nnode = \"a\"\nat_s = 1\n"),
            "scenarios/x.toml:13: field faults[0].kind: a slow fault needs factor (above 1)",
        ),
        (
            format!("{BASE}[[faults]]\nkind = \"slow\"\nnode = \"a\"\nat_s = 1\nfactor = 0.5\n"),
            "scenarios/x.toml:16: field faults[0].factor: must be a number above 1, found 0.5",
        ),
        (
            format!("{BASE}[[faults]]\nkind = \"crash\"\nnode = \"a\"\nat_s = 1\nfactor = 2\n"),
            "scenarios/x.toml:16: field faults[0].factor: a crash fault takes no factor: only slow faults do",
        ),
        (
            format!("{BASE}[[faults]]\nkind = \"corrupt\"\nnode = \"b\"\nat_s = 1\nrate = 2\n"),
            "scenarios/x.toml:16: field faults[0].rate: must be between 0 and 1, found 2",
        ),
        (
            format!("{BASE}[[faults]]\nkind = \"flap\"\nnode = \"b\"\nat_s = 1\nperiod_s = 0\n"),
            "scenarios/x.toml:16: field faults[0].period_s: must be above 0",
        ),
        (
            format!("{BASE}[[faults]]\nkind = \"stale_heartbeat\"\nnode = \"b\"\nat_s = 1\n"),
            "scenarios/x.toml:13: field faults[0].kind: node \"b\" sends no heartbeats to go stale \
             (the scenario needs [heartbeat] and the node heartbeat = true)",
        ),
        (
            format!("policies = [\"p2c\", \"fastest\"]\n{BASE}"),
            "scenarios/x.toml:1: field policies[1]: unknown policy 'fastest': expected one of p2c, \
             round_robin, random, least_loaded, weighted_random, least_in_flight, p2c_peak_ewma, \
             optionally followed by +affinity \
             and/or +hedge",
        ),
        (
            format!("policies = [\n  \"p2c+hedge\",\n  \"p2c+hedge\",\n]\n{BASE}"),
            "scenarios/x.toml:3: field policies[1]: policy p2c+hedge is listed twice",
        ),
        (
            format!("policies = []\n{BASE}"),
            "scenarios/x.toml:1: field policies: must name at least one policy",
        ),
        (
            format!("gateways = 0\n{BASE}"),
            "scenarios/x.toml:1: field gateways: must be from 1 to 16, found 0",
        ),
        (
            BASE.replace("name = \"t\"", "name = \" \""),
            "scenarios/x.toml:1: field name: must not be empty",
        ),
        (
            format!("{BASE}[heartbeat]\ninterval_ms = 1000\nstale_after_ms = 500\n"),
            "scenarios/x.toml:14: field heartbeat.stale_after_ms: must be at least interval_ms \
             (1000 ms): otherwise every node goes stale between two heartbeats",
        ),
        (
            format!("{BASE}[router]\nmax_attempts = 9\n"),
            "scenarios/x.toml:13: field router.max_attempts: must be from 1 to 8, found 9",
        ),
        (
            format!("{BASE}[router]\nttft_timeout_ms = 0\n"),
            "scenarios/x.toml:13: field router.ttft_timeout_ms: must be above 0",
        ),
        (
            format!("{BASE}[router.hedge]\nquantile = 2\n"),
            "scenarios/x.toml:13: field router.hedge.quantile: must be between 0 and 1, found 2",
        ),
        (
            format!("{BASE}[router.hedge]\nmin_delay_ms = 100\nmax_delay_ms = 50\n"),
            "scenarios/x.toml:14: field router.hedge.max_delay_ms: max_delay_ms (50 ms) must be at \
             least min_delay_ms (100 ms)",
        ),
        (
            format!("{BASE}[router.affinity]\nprefix_load_factor = 0.5\n"),
            "scenarios/x.toml:13: field router.affinity.prefix_load_factor: must be a number of at \
             least 1, found 0.5",
        ),
        (
            format!(
                "{BASE}[workload]\ntrace = \"t.csv\"\n[workload.poisson]\ncalls = 5\nrate_per_s = 1\n"
            ),
            "scenarios/x.toml:14: field workload.poisson: a workload has one source (trace, \
             poisson, bursty or sessions), found trace and poisson",
        ),
        (
            format!("{BASE}[workload]\nrate = 2\n[workload.poisson]\ncalls = 5\nrate_per_s = 1\n"),
            "scenarios/x.toml:13: field workload.rate: applies to a trace only, and this workload \
             is generated",
        ),
        (
            format!("{BASE}[workload]\nformat = \"parquet\"\n"),
            "scenarios/x.toml:13: field workload.format: unknown trace format \"parquet\": expected \
             azure or mooncake",
        ),
        (
            format!("{BASE}[workload]\nmix = {{ stream = 0 }}\n"),
            "scenarios/x.toml:13: field workload.mix: must give some operation a weight above 0",
        ),
        (
            format!(
                "{BASE}[workload.sessions]\nsessions = 2\nsession_rate_per_s = 1\nturns = [3, 2]\n"
            ),
            "scenarios/x.toml:15: field workload.sessions.turns: must be [low, high] with low <= \
             high, found [3, 2]",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(&text), want, "\n{text}");
    }
}

#[test]
fn unreadable_files_name_the_file() {
    let e = Scenario::load(Path::new("no/such/scenario.toml")).unwrap_err();
    assert_eq!((e.line, e.field.as_deref()), (0, None));
    assert!(
        e.to_string()
            .starts_with("no/such/scenario.toml: cannot read the scenario: "),
        "{e}"
    );
}

#[test]
fn policy_variants() {
    let spec: PolicySpec = "p2c+hedge+affinity".parse().unwrap();
    assert_eq!(spec.to_string(), "p2c+affinity+hedge");
    assert_eq!(spec.to_string().parse::<PolicySpec>(), Ok(spec));
    for p in Policy::ALL {
        let s: PolicySpec = p.name().parse().unwrap();
        assert_eq!(s, PolicySpec::from(p));
        assert_eq!(s.to_string(), p.name());
    }
    for bad in ["", "+hedge", "p2c+", "p2c+Hedge", "P2C", "p2c hedge"] {
        assert!(bad.parse::<PolicySpec>().is_err(), "{bad}");
    }

    let settings = RouterSettings::default();
    let plain = settings.router_config(PolicySpec::from(Policy::RoundRobin));
    assert_eq!(plain.policy, Policy::RoundRobin);
    assert!(!plain.hedge.enabled);
    assert_eq!(plain.affinity.prefix_key_blocks, 0);
    plain.validate().unwrap();
    let both = settings.router_config("least_loaded+affinity+hedge".parse().unwrap());
    assert!(both.hedge.enabled);
    assert_eq!(
        both.affinity.prefix_key_blocks,
        settings.affinity.prefix_key_blocks
    );
    both.validate().unwrap();
}
