use std::path::{Path, PathBuf};

use drover_core::config::Policy;

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../transports/tests/fixtures")
        .join(name)
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

/// A scratch folder for one test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("drover-replay-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn opts(trace: Option<PathBuf>) -> ReplayOpts {
    ReplayOpts {
        trace,
        ..ReplayOpts::default()
    }
}

#[test]
fn a_trace_and_the_default_swarm_make_a_plan() {
    let plan = prepare(&opts(Some(fixture("azure-small.csv")))).unwrap();
    assert_eq!(plan.scenario.name, "home-lab");
    assert_eq!(
        plan.scenario_origin,
        PathBuf::from("scenarios/home-lab.toml")
    );
    assert_eq!(plan.policies, plan.scenario.policies);
    // The home lab's seed.
    assert_eq!(plan.seed, 42);
    assert_eq!(
        plan.source,
        Source::Trace {
            path: fixture("azure-small.csv"),
            format: TraceFormat::Azure
        }
    );
    assert_eq!(plan.out, PathBuf::from(DEFAULT_OUT));
    assert!(plan.source.label().ends_with("azure-small.csv"));

    // The command line wins over the scenario.
    let o = ReplayOpts {
        scenario: Some(shipped("mooncake-prefix.toml")),
        policies: ReplayPolicies::One("random+hedge".parse().unwrap()),
        seed: Some(5),
        format: Some(TraceFormat::Azure),
        ..opts(Some(fixture("mooncake-small.jsonl")))
    };
    let plan = prepare(&o).unwrap();
    assert_eq!(plan.scenario.name, "mooncake-prefix");
    assert_eq!(plan.policies.len(), 1);
    assert_eq!(plan.policies[0].policy, Policy::Random);
    assert_eq!(plan.seed, 5);
    assert!(matches!(
        plan.source,
        Source::Trace {
            format: TraceFormat::Azure,
            ..
        }
    ));
    // Without --format, the scenario's format applies.
    let o = ReplayOpts {
        scenario: Some(shipped("mooncake-prefix.toml")),
        ..opts(Some(fixture("azure-small.csv")))
    };
    let plan = prepare(&o).unwrap();
    assert!(matches!(
        plan.source,
        Source::Trace {
            format: TraceFormat::Mooncake,
            ..
        }
    ));
    assert_eq!(plan.seed, 2025);
}

/// The real Azure trace, when the shared traces are beside the checkout.
fn real_azure() -> Option<PathBuf> {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces/azure-llm-2023-conv.csv");
    p.exists().then_some(p)
}

#[test]
fn a_replay_writes_its_report_and_plots_and_loses_nothing() {
    let dir = Scratch::new("e2e");
    let trace = real_azure().unwrap_or_else(|| fixture("azure-small.csv"));
    let o = ReplayOpts {
        out: dir.0.join("out"),
        ..opts(Some(trace))
    };
    let text = run(&o).unwrap();
    for policy in [
        "least_in_flight",
        "p2c_peak_ewma",
        "p2c",
        "round_robin",
        "random",
        "least_loaded",
        "weighted_random",
        "p2c+hedge",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(policy)),
            "{policy} missing:\n{text}"
        );
    }
    let json = std::fs::read_to_string(o.out.join("report.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let policies = v["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 8);
    for p in policies {
        assert_eq!(p["lost"], 0, "{}", p["policy"]);
        let calls = p["calls"].as_u64().unwrap();
        assert!(calls > 0);
        let ended = p["succeeded"].as_u64().unwrap()
            + p["failed"]["total"].as_u64().unwrap()
            + p["cancelled"].as_u64().unwrap();
        assert_eq!(ended, calls, "every call has exactly one outcome");
        for k in ["p50", "p90", "p99", "p999"] {
            assert!(
                p["ttft_ms"][k].is_number() && p["latency_ms"][k].is_number(),
                "{k}"
            );
        }
        let share: f64 = p["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["share"].as_f64().unwrap())
            .sum();
        assert!((share - 1.0).abs() < 0.01, "{share}");
    }
    for svg in [
        "ttft-cdf.svg",
        "failures.svg",
        "load-p2c.svg",
        "load-p2c-hedge.svg",
    ] {
        let body = std::fs::read_to_string(o.out.join(svg)).unwrap();
        assert!(
            body.starts_with("<svg") && body.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        assert!(!body.contains("NaN") && !body.contains("inf"), "{svg}");
    }
}

#[test]
fn same_trace_scenario_and_seed_give_a_byte_identical_report() {
    let dir = Scratch::new("det");
    let trace = real_azure().unwrap_or_else(|| fixture("azure-small.csv"));
    let mut reports = Vec::new();
    for (i, seed) in [(0, 7u64), (1, 7), (2, 8)] {
        let o = ReplayOpts {
            out: dir.0.join(format!("out{i}")),
            seed: Some(seed),
            ..opts(Some(trace.clone()))
        };
        run(&o).unwrap();
        reports.push(std::fs::read(o.out.join("report.json")).unwrap());
    }
    assert!(
        reports[0] == reports[1],
        "same inputs, different report.json"
    );
    assert!(
        reports[0] != reports[2],
        "a different seed should change the run"
    );
}

#[test]
fn an_empty_window_is_an_error_not_an_empty_report() {
    let dir = Scratch::new("empty");
    let scenario = dir.file(
        "s.toml",
        "name = \"s\"\n[[nodes]]\nname = \"a\"\nslots = 1\nprefill_tokens_per_s = 100\n\
         decode_tokens_per_s = 10\n[workload]\nstart_s = 1000000\n",
    );
    let o = ReplayOpts {
        scenario: Some(scenario),
        out: dir.0.join("out"),
        ..opts(Some(fixture("azure-small.csv")))
    };
    let e = run(&o).unwrap_err();
    assert!(e.to_string().contains("no calls"), "{e}");
}

#[test]
fn a_scenario_may_bring_its_own_workload() {
    let dir = Scratch::new("own");
    let base = "name = \"s\"\n[[nodes]]\nname = \"a\"\nslots = 1\n\
                prefill_tokens_per_s = 100\ndecode_tokens_per_s = 10\n";
    std::fs::copy(fixture("azure-small.csv"), dir.0.join("t.csv")).unwrap();
    let traced = dir.file(
        "traced.toml",
        &format!("{base}[workload]\ntrace = \"t.csv\"\n"),
    );
    let plan = prepare(&ReplayOpts {
        scenario: Some(traced),
        ..opts(None)
    })
    .unwrap();
    assert_eq!(
        plan.source,
        Source::Trace {
            path: dir.0.join("t.csv"),
            format: TraceFormat::Azure
        }
    );
    assert_eq!(plan.seed, DEFAULT_SEED);

    let generated = dir.file(
        "gen.toml",
        &format!("{base}[workload.poisson]\ncalls = 5\nrate_per_s = 2\n"),
    );
    let o = ReplayOpts {
        scenario: Some(generated.clone()),
        ..opts(None)
    };
    let plan = prepare(&o).unwrap();
    assert!(matches!(plan.source, Source::Poisson(p) if p.calls == 5));
    assert_eq!(plan.source.label(), "generated: poisson");
    // --format needs a trace.
    let e = prepare(&ReplayOpts {
        format: Some(TraceFormat::Azure),
        ..o.clone()
    })
    .unwrap_err();
    assert!(matches!(e, ReplayError::FormatWithoutTrace), "{e}");
    // --trace replaces the generator.
    let plan = prepare(&ReplayOpts {
        trace: Some(fixture("azure-small.csv")),
        ..o
    })
    .unwrap();
    assert!(matches!(plan.source, Source::Trace { .. }));
}

#[test]
fn input_errors_name_what_is_wrong() {
    let dir = Scratch::new("errors");
    // No trace anywhere.
    let e = prepare(&opts(None)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no workload: give --trace FILE, or a scenario whose [workload] names a trace or a \
         generator (scenarios/home-lab.toml has neither)"
    );
    // A trace that does not exist, or is a folder.
    let missing = dir.0.join("missing.csv");
    let e = prepare(&opts(Some(missing.clone()))).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot open the trace: ", missing.display())),
        "{e}"
    );
    let e = prepare(&opts(Some(dir.0.clone()))).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("cannot open the trace: it is a folder"),
        "{e}"
    );
    // A trace whose format cannot be told.
    let odd = dir.file("trace.txt", "hello\n");
    let e = prepare(&opts(Some(odd.clone()))).unwrap_err();
    assert!(matches!(e, ReplayError::Trace(_)), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "{}:1: cannot tell the trace format",
            odd.display()
        )),
        "{e}"
    );
    // ...unless told.
    let told = ReplayOpts {
        format: Some(TraceFormat::Azure),
        ..opts(Some(odd))
    };
    assert!(prepare(&told).is_ok());
    // A bad scenario: its error, file and line first.
    let bad = dir.file(
        "bad.toml",
        "name = \"b\"\n[[nodes]]\nname = \"a\"\nslots = 0\n",
    );
    let e = prepare(&ReplayOpts {
        scenario: Some(bad.clone()),
        ..opts(Some(fixture("azure-small.csv")))
    })
    .unwrap_err();
    assert!(matches!(e, ReplayError::Scenario(_)));
    assert!(
        e.to_string().starts_with(&format!("{}:", bad.display())),
        "{e}"
    );
    // --out names a file.
    let file = dir.file("out.txt", "");
    let e = prepare(&ReplayOpts {
        out: file.clone(),
        ..opts(Some(fixture("azure-small.csv")))
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("--out {}: exists and is not a folder", file.display())
    );
}
