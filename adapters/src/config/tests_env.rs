//! Tests of secrets, tokens, `DROVER_*` overrides and `drover check`.

use std::path::{Path, PathBuf};

use drover_core::config::Policy;
use drover_core::node::NodeKind;

use super::tests::{Dir, NODE, env, example, no_env, ok, one};
use super::*;

#[test]
fn tokens_come_from_the_environment() {
    let text = format!(
        "client_tokens_env = [\"T1\", \"T2\", \"bad name\"]\noperator_token_env = \"OP\"\n{NODE}"
    );
    let get = env(&[("T1", "short"), ("OP", "with space in it")]);
    let ps = GatewayConfig::parse(&text, Path::new("d.toml"), &get)
        .unwrap_err()
        .0;
    let shown = Problems(ps.clone()).to_string();
    assert_eq!(ps.len(), 3, "{shown}");
    assert_eq!(ps[0].field, "client_tokens_env[1]");
    assert_eq!(ps[0].reason, "environment variable `T2` is not set");
    assert_eq!(ps[1].field, "client_tokens_env[2]");
    assert!(ps[1].reason.contains("not an environment variable name"));
    assert_eq!(ps[2].field, "operator_token_env");
    assert!(ps[2].reason.contains("`OP` holds spaces"));
    // Never the values.
    assert!(
        !shown.contains("with space") && !shown.contains("short"),
        "{shown}"
    );

    let get = env(&[("T1", "short"), ("T2", "")]);
    let text = format!("client_tokens_env = [\"T1\", \"T2\"]\n{NODE}");
    let ps = GatewayConfig::parse(&text, Path::new("d.toml"), &get)
        .unwrap_err()
        .0;
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].reason, "environment variable `T2` is empty");

    let text = format!("client_tokens_env = [\"T1\"]\n{NODE}");
    let c = GatewayConfig::parse(&text, Path::new("d.toml"), &env(&[("T1", "short")])).unwrap();
    assert_eq!(c.client_tokens, [Secret::new("short")]);
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].reason.contains("shorter than 16"));
}

#[test]
fn inline_tokens_work_with_a_warning() {
    let c = ok(&format!(
        "client_tokens = [\"0123456789abcdef0123\"]\n{NODE}"
    ));
    assert_eq!(c.client_tokens.len(), 1);
    assert!(c.client_tokens[0].matches(b"0123456789abcdef0123"));
    assert_eq!(c.warnings.len(), 1);
    let w = &c.warnings[0];
    assert_eq!((w.field.as_str(), w.line), ("client_tokens", Some(1)));
    assert!(w.reason.contains("anyone who can read the file"));
    one(
        &format!("client_tokens = [\"a b\"]\n{NODE}"),
        "client_tokens[0]",
        "visible ASCII",
    );
    one(
        &format!("client_tokens = [\"\"]\n{NODE}"),
        "client_tokens[0]",
        "visible ASCII",
    );
}

#[test]
fn secrets_never_print() {
    let s = Secret::new("hunter2hunter2");
    assert_eq!(format!("{s}"), "<redacted>");
    assert_eq!(format!("{s:?}"), "<redacted>");
    assert_eq!(s.expose(), "hunter2hunter2");
    assert!(s.matches(b"hunter2hunter2"));
    assert!(!s.matches(b"hunter2hunter3"));
    assert!(!s.matches(b"hunter2"));
    assert!(!s.matches(b"hunter2hunter2x"));
    assert_ne!(s, Secret::new("other"));
    let text = format!(
        "client_tokens_env = [\"T\"]\noperator_token_env = \"OP\"\n{NODE}apiKeyEnv = \"KEY\"\n"
    );
    let get = env(&[
        ("T", "tokentokentokentoken"),
        ("OP", "opopopopopopopopop"),
        ("KEY", "keykeykey"),
    ]);
    let c = GatewayConfig::parse(&text, Path::new("d.toml"), &get).unwrap();
    assert_eq!(
        c.nodes[0].api_key.as_ref().map(Secret::expose),
        Some("keykeykey")
    );
    let all = format!("{c:?}{}", c.summary());
    for secret in ["tokentokentokentoken", "opopopopopopopopop", "keykeykey"] {
        assert!(!all.contains(secret), "{secret} printed");
    }
}

#[test]
fn env_overrides() {
    let dir = Dir::new("env");
    let nodes = dir.write(
        "other.json",
        r#"[{"name": "b", "kind": "openai", "baseUrl": "http://10.0.0.2:8000"}]"#,
    );
    let mut c = ok(NODE);
    let get = env(&[
        ("DROVER_LISTEN", "0.0.0.0:9999"),
        ("DROVER_POLICY", "round_robin"),
        ("DROVER_NODES_PATH", nodes.to_str().unwrap()),
        ("DROVER_MAX_BODY_BYTES", "1024"),
        ("DROVER_STATE_PATH", "/var/lib/drover/state.json"),
        ("DROVER_LOG", "debug"),
    ]);
    c.apply_env(&get).unwrap();
    assert_eq!(c.listen, "0.0.0.0:9999".parse().unwrap());
    assert_eq!(c.router.policy, Policy::RoundRobin);
    assert_eq!(c.limits.max_body_bytes, 1024);
    assert_eq!(c.router_config().unwrap().max_payload_bytes, 1024);
    assert_eq!(
        c.state_path,
        Some(PathBuf::from("/var/lib/drover/state.json"))
    );
    assert_eq!(c.nodes_path, Some(nodes.clone()));
    // Inline nodes stay; the file's are added.
    let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(c.nodes[1].kind, NodeKind::OpenAiCompat);
    // A size with a unit works too.
    c.apply_env(&env(&[("DROVER_MAX_BODY_BYTES", "2MiB")]))
        .unwrap();
    assert_eq!(c.limits.max_body_bytes, 2 << 20);
    // DROVER_LOG alone changes nothing.
    let before = c.clone();
    c.apply_env(&env(&[("DROVER_LOG", "trace")])).unwrap();
    assert_eq!(c, before);
}

#[test]
fn env_nodes_path_replaces_the_files_nodes() {
    let dir = Dir::new("env-replace");
    dir.write(
        "first.json",
        r#"[{"name": "f", "kind": "ollama", "baseUrl": "http://10.0.0.9:1"}]"#,
    );
    let second = dir.write(
        "second.json",
        r#"{"nodes": [{"name": "s", "kind": "ollama", "baseUrl": "http://10.0.0.8:1"}]}"#,
    );
    let conf = dir.write("d.toml", &format!("nodes_path = \"first.json\"\n{NODE}"));
    let mut c = GatewayConfig::load_with(&conf, &no_env).unwrap();
    let names = |c: &GatewayConfig| c.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&c), ["a", "f"]);
    c.apply_env(&env(&[("DROVER_NODES_PATH", second.to_str().unwrap())]))
        .unwrap();
    assert_eq!(names(&c), ["a", "s"]);
    // A file with a node named like an inline one is refused.
    let clash = dir.write(
        "clash.json",
        r#"[{"name": "a", "kind": "ollama", "baseUrl": "http://10.0.0.7:1"}]"#,
    );
    let ps = c
        .apply_env(&env(&[("DROVER_NODES_PATH", clash.to_str().unwrap())]))
        .unwrap_err()
        .0;
    assert_eq!(ps.len(), 1);
    assert!(
        ps[0].reason.contains("duplicate node name `a`"),
        "{}",
        ps[0]
    );
    assert_eq!(names(&c), ["a", "s"]);
}

#[test]
fn bad_env_values_name_the_variable_and_change_nothing() {
    let mut c = ok(NODE);
    let before = c.clone();
    let get = env(&[
        ("DROVER_LISTEN", "everywhere"),
        ("DROVER_POLICY", "fastest"),
        ("DROVER_NODES_PATH", "/nonexistent/nodes.json"),
        ("DROVER_MAX_BODY_BYTES", "0"),
        ("DROVER_STATE_PATH", ""),
    ]);
    let ps = c.apply_env(&get).unwrap_err().0;
    assert_eq!(c, before);
    let shown = Problems(ps.clone()).to_string();
    for (var, reason) in [
        ("DROVER_LISTEN", "`everywhere` is not an address"),
        ("DROVER_POLICY", "unknown policy `fastest`"),
        ("DROVER_NODES_PATH", "has problems"),
        ("DROVER_MAX_BODY_BYTES", "from 1 to 1073741824, found 0"),
        ("DROVER_STATE_PATH", "is set but empty"),
    ] {
        let line = format!("<environment>: field `{var}`: ");
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(&line) && l.contains(reason)),
            "{var}: {shown}"
        );
    }
    // The nodes file's own problem follows, against the file.
    assert!(
        shown.contains("/nonexistent/nodes.json: cannot read the nodes file"),
        "{shown}"
    );
    let ps = c
        .apply_env(&env(&[("DROVER_MAX_BODY_BYTES", "lots")]))
        .unwrap_err()
        .0;
    assert!(ps[0].reason.contains("is not a size"), "{}", ps[0]);
}

#[test]
fn check_applies_the_environment_and_reports_problems() {
    let get = env(&[("DROVER_POLICY", "random")]);
    let summary = check_with(&example(), &get).unwrap();
    assert!(summary.contains("policy random"), "{summary}");
    assert!(
        summary.contains("environment overrides: DROVER_POLICY"),
        "{summary}"
    );
    let ps = check_with(&example(), &env(&[("DROVER_LISTEN", "x")])).unwrap_err();
    assert_eq!(ps.0[0].field, "DROVER_LISTEN");

    let dir = Dir::new("check");
    let conf = dir.write(
        "bad.toml",
        &format!("client_tokens = [\"tok\"]\n[timeouts]\nconnect = \"0s\"\n{NODE}"),
    );
    let ps = check_with(&conf, &no_env).unwrap_err();
    assert_eq!(ps.0.len(), 1);
    assert_eq!(
        ps.0[0].to_string(),
        format!(
            "{}:3: field `timeouts.connect`: must be longer than 0",
            conf.display()
        )
    );
    let conf = dir.write("warn.toml", &format!("client_tokens = [\"tok\"]\n{NODE}"));
    let summary = check_with(&conf, &no_env).unwrap();
    assert!(summary.contains("warning: "), "{summary}");
    assert!(summary.contains("1 client token"), "{summary}");
    assert!(!summary.contains("tok\""), "{summary}");
}

#[test]
fn env_nodes_path_replaces_the_default_node() {
    let dir = Dir::new("env-default");
    let nodes = dir.write(
        "n.json",
        r#"[{"name": "x", "kind": "ollama", "baseUrl": "http://10.0.0.4:11434"}]"#,
    );
    let mut c = GatewayConfig::default_local();
    c.apply_env(&env(&[("DROVER_NODES_PATH", nodes.to_str().unwrap())]))
        .unwrap();
    let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["x"]);
    assert!(c.summary().contains("nodes file: "));
}
