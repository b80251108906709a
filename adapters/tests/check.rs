//! `drover check FILE` end to end: exit codes and what it prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn check(file: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drover"));
    cmd.arg("check").arg(file);
    // The overrides `check` applies must not leak in from the test's own
    // environment.
    for var in [
        "DROVER_LISTEN",
        "DROVER_POLICY",
        "DROVER_NODES_PATH",
        "DROVER_MAX_BODY_BYTES",
        "DROVER_STATE_PATH",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().expect("the drover binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("output is UTF-8")
}

#[test]
fn the_example_config_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/drover.example.toml");
    let out = check(&example);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(": ok\n"), "{stdout}");
    assert!(stdout.contains("3 nodes"), "{stdout}");
    assert!(out.stderr.is_empty());
}

#[test]
fn every_problem_is_printed_and_the_exit_code_is_1() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("drover-check-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "listen = \"nowhere\"\n[[nodes]]\nname = \"a\"\nkind = \"ollama\"\n\
         baseUrl = \"http://169.254.169.254:80\"\nweight = 0\n",
    )
    .unwrap();
    let out = check(&file);
    let stderr = text(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    let f = file.display();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{f}:1: field `listen`: ")),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!("{f}:5: field `nodes[0].baseUrl`: ")),
        "{stderr}"
    );
    assert!(lines[1].contains("link-local"), "{stderr}");
    assert!(
        lines[2].starts_with(&format!("{f}:6: field `nodes[0].weight`: ")),
        "{stderr}"
    );
    assert_eq!(lines[3], format!("drover: 3 problems in {f}"));
}

#[test]
fn a_missing_file_and_help() {
    let out = check(Path::new("/nonexistent/drover.toml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read the config file"));
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["check", "--help"])
        .output()
        .expect("the drover binary runs");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Usage: drover check FILE"));
}
