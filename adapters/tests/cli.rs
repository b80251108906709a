//! The `drover` binary end to end: exit codes and what it prints.

use std::process::{Command, Output};

fn drover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .output()
        .expect("the drover binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("output is UTF-8")
}

#[test]
fn demo_runs_every_policy_and_loses_nothing() {
    let out = drover(&["demo", "--calls", "150", "--policy", "all", "--seed", "7"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("SIMULATED"), "{stdout}");
    for node in ["gpu-1", "cpu-1", "cpu-2", "flaky-1"] {
        assert!(stdout.contains(node), "{node} missing:\n{stdout}");
    }
    // One report per policy (all seven), each ending every call.
    assert_eq!(stdout.matches("calls 150 ").count(), 7, "{stdout}");
    assert_eq!(stdout.matches("  lost 0\n").count(), 7, "{stdout}");
    assert!(stdout.contains("== comparison (SIMULATED) =="), "{stdout}");
    assert!(text(&out.stderr).is_empty());
    // Deterministic: the same command prints the same bytes.
    let again = drover(&["demo", "--calls", "150", "--policy", "all", "--seed", "7"]);
    assert_eq!(again.stdout, out.stdout);
}

#[test]
fn demo_defaults_to_p2c_and_honours_nodes() {
    let out = drover(&["demo", "--calls=60", "--nodes=6"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("== policy p2c (SIMULATED) =="), "{stdout}");
    assert!(!stdout.contains("round_robin"), "{stdout}");
    assert!(
        stdout.contains("gpu-2") && stdout.contains("cpu-3"),
        "{stdout}"
    );
    assert!(stdout.contains("lost 0"), "{stdout}");
}

#[test]
fn bad_arguments_exit_2_naming_the_argument() {
    for (args, needle) in [
        (&["demo", "--nodes", "0"][..], "'--nodes'"),
        (&["demo", "--rate", "-1"][..], "'--rate'"),
        (&["demo", "--policy", "fastest"][..], "'--policy'"),
        (&["demo", "--calls"][..], "'--calls' needs a value"),
        (&["demo", "--bogus"][..], "'--bogus'"),
        (
            &["replay", "--policy", "fastest"][..],
            "'fastest' for '--policy'",
        ),
        (&["replay", "--format", "csv"][..], "'csv' for '--format'"),
        (&["replay", "--trace"][..], "'--trace' needs a value"),
        (&["replay", "--seed", "x"][..], "'x' for '--seed'"),
        (
            &["replay", "--nodes", "3"][..],
            "'--nodes' for 'drover replay'",
        ),
        (&["frobnicate"][..], "'frobnicate'"),
        (&[][..], "missing command"),
    ] {
        let out = drover(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(stderr.contains("drover --help"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_and_version() {
    let out = drover(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Usage: drover <COMMAND>"));
    let out = drover(&["demo", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Usage: drover demo [OPTIONS]"));
    assert!(stdout.contains("--policy"));
    let out = drover(&["replay", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Usage: drover replay --trace FILE [OPTIONS]"));
    for option in ["--format", "--scenario", "--policy", "--seed", "--out"] {
        assert!(stdout.contains(option), "{option}");
    }
    assert!(text(&drover(&["--help"]).stdout).contains("replay"));
    let out = drover(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("drover {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn replay_input_errors_exit_1_naming_file_and_line() {
    let dir = std::env::temp_dir().join(format!("drover-cli-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let scenario = dir.join("bad.toml");
    std::fs::write(
        &scenario,
        "name = \"bad\"\n[[nodes]]\nname = \"a\"\nslots = 0\n\
         prefill_tokens_per_s = 100\ndecode_tokens_per_s = 10\n",
    )
    .expect("a scenario file");
    let out = drover(&["replay", "--scenario", scenario.to_str().expect("UTF-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "drover: {}:4: field nodes[0].slots: must be at least 1\n",
            scenario.display()
        )
    );
    assert!(out.stdout.is_empty());
    // No trace, and the built-in scenario brings no workload of its own.
    let out = drover(&["replay"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("drover: no workload: give --trace FILE"));
    std::fs::remove_dir_all(&dir).expect("the scratch folder goes");
}
