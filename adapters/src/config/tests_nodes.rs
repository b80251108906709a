//! Tests of nodes: the seed schema inline and in JSON, the checks across
//! nodes, the URL policy and credentials, and the core's node specs.

use std::path::Path;

use drover_core::catalog::{Catalog, MAX_MODELS, MAX_TAGS};
use drover_core::node::{Capabilities, NodeKind};

use super::tests::{Dir, NODE, env, no_env, ok, one, problems};
use super::*;

/// One inline node with `extra` lines after name, kind and baseUrl.
fn node(extra: &str) -> String {
    format!("{NODE}{extra}\n")
}

#[test]
fn node_defaults() {
    let c = ok(NODE);
    let n = &c.nodes[0];
    assert_eq!(n.name, "a");
    assert_eq!(n.kind, NodeKind::Ollama);
    assert_eq!(n.base_url.to_string(), "http://127.0.0.1:11434");
    assert_eq!((n.weight, n.max_concurrency), (1, 4));
    assert_eq!(n.capabilities, ["chat", "stream", "embed"]);
    assert!(n.models.is_empty() && n.model_aliases.is_empty() && n.tags.is_empty());
    assert!(n.api_key.is_none() && !n.send_auth);
    assert_eq!(
        (n.origin.as_path(), n.index, n.line),
        (Path::new("conf/drover.toml"), 0, Some(1))
    );
}

#[test]
fn every_node_key_is_read() {
    let text = r#"
[[nodes]]
name = "gpu.box-1_a"
provider = "openai"
baseUrl = "http://10.0.0.5:8443/api/"
maxConcurrency = 32
weight = 7
capabilities = ["vision", "chat"]
models = ["qwen", "llava"]
modelAliases = { "qwen2.5:7b" = "qwen", big = "llava" }
apiKeyEnv = "GPU_KEY"
tags = ["gpu", "fast"]
"#;
    let c =
        GatewayConfig::parse(text, Path::new("d.toml"), &env(&[("GPU_KEY", "sk-123")])).unwrap();
    let n = &c.nodes[0];
    assert_eq!(n.name, "gpu.box-1_a");
    assert_eq!(n.kind, NodeKind::OpenAiCompat);
    assert!(!n.base_url.scheme_https);
    assert_eq!(n.base_url.base_path, "/api");
    assert_eq!((n.max_concurrency, n.weight), (32, 7));
    assert_eq!(n.capabilities, ["vision", "chat"]);
    assert_eq!(n.models, ["qwen", "llava"]);
    assert_eq!(
        n.model_aliases.get("qwen2.5:7b").map(String::as_str),
        Some("qwen")
    );
    assert_eq!(
        n.model_aliases.get("big").map(String::as_str),
        Some("llava")
    );
    assert_eq!(n.api_key.as_ref().map(Secret::expose), Some("sk-123"));
    assert!(n.send_auth, "private address: the key is sent");
    assert_eq!(n.tags, ["gpu", "fast"]);
    assert_eq!(n.line, Some(2));
    for (kind, want) in [
        ("kind = \"openai_compat\"", NodeKind::OpenAiCompat),
        ("provider = \"ollama\"", NodeKind::Ollama),
        (
            "kind = \"openai\"\nprovider = \"openai_compat\"",
            NodeKind::OpenAiCompat,
        ),
    ] {
        let text = format!("[[nodes]]\nname = \"x\"\n{kind}\nbaseUrl = \"http://10.0.0.1:1\"\n");
        assert_eq!(ok(&text).nodes[0].kind, want, "{kind}");
    }
}

#[test]
fn every_node_rule() {
    let long = "m".repeat(65);
    let nine: Vec<String> = (0..9).map(|i| format!("a{i} = \"m\"")).collect();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "weight = 0".into(),
            "nodes[0].weight",
            "from 1 to 65535, found 0",
        ),
        (
            "weight = 65536".into(),
            "nodes[0].weight",
            "from 1 to 65535",
        ),
        (
            "maxConcurrency = 0".into(),
            "nodes[0].maxConcurrency",
            "from 1 to 65535, found 0",
        ),
        (
            "capabilities = [\"chat\", \"telepathy\"]".into(),
            "nodes[0].capabilities[1]",
            "unknown capability `telepathy`",
        ),
        (
            "capabilities = [\"chat\", \"chat\"]".into(),
            "nodes[0].capabilities[1]",
            "listed twice",
        ),
        (
            "capabilities = []".into(),
            "nodes[0].capabilities",
            "must serve something",
        ),
        (
            "models = [\"m\", \"m\"]".into(),
            "nodes[0].models[1]",
            "model `m` is listed twice",
        ),
        (
            format!("models = [\"{long}\"]"),
            "nodes[0].models[0]",
            "1 to 64 bytes",
        ),
        (
            "models = [\"\"]".into(),
            "nodes[0].models[0]",
            "1 to 64 bytes",
        ),
        (
            "models = [\"m\"]\nmodelAliases = { x = \"n\" }".into(),
            "nodes[0].modelAliases.x",
            "points to `n`, which is not in this node's models",
        ),
        (
            "modelAliases = { x = \"\" }".into(),
            "nodes[0].modelAliases.x",
            "1 to 64 bytes",
        ),
        (
            format!("modelAliases = {{ {} }}", nine.join(", ")),
            "nodes[0].modelAliases",
            "at most 8",
        ),
        (
            "tags = [\"t\", \"t\"]".into(),
            "nodes[0].tags[1]",
            "tag `t` is listed twice",
        ),
        (
            "apiKeyEnv = \"MISSING_KEY\"".into(),
            "nodes[0].apiKeyEnv",
            "environment variable `MISSING_KEY` is not set",
        ),
        (
            "apiKeyEnv = \"1BAD\"".into(),
            "nodes[0].apiKeyEnv",
            "not an environment variable name",
        ),
        (
            "apiKeyEnv = \"\"".into(),
            "nodes[0].apiKeyEnv",
            "not an environment variable name",
        ),
        (
            "colour = \"red\"".into(),
            "nodes[0].colour",
            "unknown field `colour`",
        ),
        (
            "weight = \"heavy\"".into(),
            "nodes[0].weight",
            "invalid type",
        ),
        ("provider = \"ollama\"".into(), "", ""),
        (
            "provider = \"openai\"".into(),
            "nodes[0].provider",
            "disagrees with `kind`",
        ),
    ];
    for (extra, field, reason) in cases {
        let text = node(&extra);
        if field.is_empty() {
            ok(&text);
        } else {
            one(&text, field, reason);
        }
    }
    let bare = |lines: &str| format!("[[nodes]]\n{lines}\n");
    let base = "baseUrl = \"http://10.0.0.1:1\"";
    one(
        &bare(&format!("name = \"a\"\n{base}")),
        "nodes[0]",
        "needs `kind` (or `provider`)",
    );
    one(
        &bare(&format!("name = \"a\"\nkind = \"vllm\"\n{base}")),
        "nodes[0].kind",
        "unknown kind `vllm`",
    );
    one(
        &bare(&format!("name = \"\"\nkind = \"ollama\"\n{base}")),
        "nodes[0].name",
        "1 to 64",
    );
    one(
        &bare(&format!("name = \"a b\"\nkind = \"ollama\"\n{base}")),
        "nodes[0].name",
        "letters, digits",
    );
    one(
        &bare(&format!("name = \"{long}\"\nkind = \"ollama\"\n{base}")),
        "nodes[0].name",
        "1 to 64",
    );
    one(
        &bare("name = \"a\"\nkind = \"ollama\""),
        "nodes[0]",
        "missing field `baseUrl`",
    );
    one(
        &bare(&format!("kind = \"ollama\"\n{base}")),
        "nodes[0]",
        "missing field `name`",
    );
    one("nodes = 5\n", "nodes", "must be a list of nodes");
    one(
        &bare("name = \"a\"\nkind = \"ollama\"\nbaseUrl = \"http://8.8.8.8:80\""),
        "nodes[0].baseUrl",
        "is public",
    );
}

#[test]
fn a_bad_node_does_not_hide_the_next() {
    let text = "\
[[nodes]]
name = \"a\"
kind = \"ollama\"
baseUrl = \"http://10.0.0.1\"
weight = \"x\"
tags = 5
[[nodes]]
name = \"b\"
kind = \"ollama\"
baseUrl = \"http://10.0.0.2:1\"
maxConcurrency = 0
";
    let ps = problems(text);
    let got: Vec<(Option<usize>, &str)> = ps.iter().map(|p| (p.line, p.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (Some(4), "nodes[0].baseUrl"),
            (Some(5), "nodes[0].weight"),
            (Some(6), "nodes[0].tags"),
            (Some(11), "nodes[1].maxConcurrency"),
        ],
        "{}",
        Problems(ps.clone())
    );
}

#[test]
fn names_are_unique_across_files() {
    let dir = Dir::new("dups");
    dir.write(
        "nodes.json",
        "[\n {\"name\": \"b\", \"kind\": \"ollama\", \"baseUrl\": \"http://10.0.0.2:1\"},\n \
         {\"name\": \"a\", \"kind\": \"ollama\", \"baseUrl\": \"http://10.0.0.3:1\"},\n \
         {\"name\": \"b\", \"weight\": 0}\n]\n",
    );
    let conf = dir.write("d.toml", &format!("nodes_path = \"nodes.json\"\n{NODE}"));
    let ps = GatewayConfig::load_with(&conf, &no_env).unwrap_err().0;
    let json = dir.0.join("nodes.json");
    let shown: Vec<String> = ps.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            format!(
                "{}:3: field `nodes[1].name`: duplicate node name `a` (first given at {}:3)",
                json.display(),
                conf.display()
            ),
            // The third node's own problems, then the duplicate.
            format!(
                "{}:4: field `nodes[2]`: missing field `baseUrl`",
                json.display()
            ),
            format!(
                "{}:4: field `nodes[2]`: needs `kind` (or `provider`): ollama or openai_compat",
                json.display()
            ),
            format!(
                "{}:4: field `nodes[2].weight`: must be from 1 to 65535, found 0",
                json.display()
            ),
            format!(
                "{}:4: field `nodes[2].name`: duplicate node name `b` (first given at {}:2)",
                json.display(),
                json.display()
            ),
        ]
    );
}

#[test]
fn capacities_of_the_gateway() {
    let nodes: String = (0..=MAX_NODES)
        .map(|i| {
            format!(
                "[[nodes]]\nname = \"n{i}\"\nkind = \"ollama\"\nbaseUrl = \"http://10.0.0.1:{}\"\n",
                i + 1
            )
        })
        .collect();
    let p = one(&nodes, "nodes[64].name", "more than 64 nodes");
    assert!(p.line.is_some());
    let tags: Vec<String> = (0..=MAX_TAGS).map(|i| format!("\"t{i}\"")).collect();
    one(
        &node(&format!("tags = [{}]", tags.join(", "))),
        "nodes[0].tags",
        "more than 64 distinct tags",
    );
    let half: Vec<String> = (0..MAX_MODELS / 2 + 1)
        .map(|i| format!("\"m{i}\""))
        .collect();
    let other: Vec<String> = (0..MAX_MODELS / 2).map(|i| format!("\"o{i}\"")).collect();
    let text = format!(
        "{}[[nodes]]\nname = \"b\"\nkind = \"ollama\"\nbaseUrl = \"http://10.0.0.1:2\"\nmodels = [{}]\n",
        node(&format!("models = [{}]", half.join(", "))),
        other.join(", ")
    );
    one(
        &text,
        "nodes[1].models",
        "more than 256 distinct model names",
    );
}

#[test]
fn nodes_file_forms_and_problems() {
    let dir = Dir::new("nodes-file");
    let good = r#"{"name": "j", "provider": "openai_compat", "baseUrl": "http://10.1.0.1:8000",
      "models": ["m"], "modelAliases": {"alias": "m"}, "tags": ["x"], "capabilities": ["embed"]}"#;
    dir.write("list.json", &format!("[{good}]"));
    dir.write("object.json", &format!("{{\"nodes\": [{good}]}}"));
    for file in ["list.json", "object.json"] {
        // Only nodes_path: no inline nodes needed.
        let conf = dir.write("d.toml", &format!("nodes_path = \"{file}\"\n"));
        let c = GatewayConfig::load_with(&conf, &no_env).unwrap_or_else(|p| panic!("{p}"));
        assert_eq!(c.nodes.len(), 1);
        let n = &c.nodes[0];
        assert_eq!((n.name.as_str(), n.kind), ("j", NodeKind::OpenAiCompat));
        assert_eq!(n.origin, dir.0.join(file));
        assert_eq!(n.line, Some(1));
        assert_eq!(c.nodes_path, Some(dir.0.join(file)));
    }
    let cases: &[(&str, Option<usize>, &str, &str)] = &[
        ("[\n{\"name\": \"a\",\n}\n]", Some(3), "", "invalid JSON: "),
        ("\"nodes\"", Some(1), "", "must be a JSON list of nodes"),
        // Found by the `config` fuzz target's seeds: a problem always has a
        // field or a line; here the line where the value starts.
        ("\n\n  5", Some(3), "", "must be a JSON list of nodes"),
        (
            "{\"nodes\": [], \"extra\": 1}",
            Some(1),
            "",
            "unknown field `extra`",
        ),
        (
            "{\"nodes\": 5}",
            Some(1),
            "nodes",
            "must be a list of nodes",
        ),
        ("[]", Some(1), "nodes", "lists no nodes"),
        ("[5]", Some(1), "nodes[0]", "invalid type: integer `5`"),
        (
            "[\n {\"name\": \"a\", \"kind\": \"ollama\",\n  \"baseUrl\": \"http://10.0.0.1:1\", \"wieght\": 2}\n]",
            Some(3),
            "nodes[0].wieght",
            "unknown field `wieght`",
        ),
        (
            "[\n {\"name\": \"a\", \"kind\": \"ollama\",\n  \"baseUrl\": \"http://[fe80::1]:1\"}\n]",
            Some(3),
            "nodes[0].baseUrl",
            "link-local",
        ),
    ];
    for (json, line, field, reason) in cases {
        dir.write("n.json", json);
        let conf = dir.write("d.toml", "nodes_path = \"n.json\"\n");
        let ps = GatewayConfig::load_with(&conf, &no_env).unwrap_err().0;
        assert_eq!(ps.len(), 1, "{json}: {}", Problems(ps.clone()));
        let p = &ps[0];
        assert_eq!(p.file, dir.0.join("n.json"), "{p}");
        assert_eq!((p.line, p.field.as_str()), (*line, *field), "{json}: {p}");
        assert!(p.reason.contains(reason), "{json}: {p}");
    }
    let conf = dir.write("d.toml", "nodes_path = \"missing.json\"\n");
    let ps = GatewayConfig::load_with(&conf, &no_env).unwrap_err().0;
    assert!(
        ps[0].reason.starts_with("cannot read the nodes file"),
        "{}",
        ps[0]
    );
}

#[test]
fn url_policy_applies_to_nodes() {
    let at = |url: &str, policy: &str| {
        format!("{policy}\n[[nodes]]\nname = \"a\"\nkind = \"ollama\"\nbaseUrl = \"{url}\"\n")
    };
    one(
        &at("http://gpu.lan:11434", ""),
        "nodes[0].baseUrl",
        "allow_hostnames",
    );
    let c = ok(&at(
        "http://gpu.lan:11434",
        "[url_policy]\nallow_hostnames = true",
    ));
    assert!(c.nodes[0].base_url.addr.is_none() && c.nodes[0].base_url.public);
    let c = ok(&at(
        "http://8.8.8.8:80",
        "[url_policy]\nallow_public = true",
    ));
    assert!(c.nodes[0].base_url.public);
    one(
        &at(
            "http://10.0.0.1:80",
            "[url_policy]\nallowed_ports = [11434]",
        ),
        "nodes[0].baseUrl",
        "allowed_ports",
    );
    one(
        &at(
            "http://10.0.0.1:80",
            "[url_policy]\nallowed_cidrs = [\"192.168.0.0/16\"]",
        ),
        "nodes[0].baseUrl",
        "allowed_cidrs",
    );
    one(
        &at(
            "http://metadata.google.internal:80",
            "[url_policy]\nallow_hostnames = true\nallow_public = true",
        ),
        "nodes[0].baseUrl",
        "cloud metadata",
    );
}

#[test]
fn keys_go_to_public_nodes_only_when_allowed() {
    let text = |url: &str, allow: &str| {
        format!(
            "[url_policy]\nallow_public = true\nallow_hostnames = true\n[[nodes]]\nname = \"a\"\nkind = \"openai\"\n\
             baseUrl = \"{url}\"\napiKeyEnv = \"KEY\"\n{allow}\n"
        )
    };
    let get = env(&[("KEY", "sk-secret")]);
    let load = |t: &str| GatewayConfig::parse(t, Path::new("d.toml"), &get).unwrap();
    let c = load(&text("http://10.0.0.1:8000", ""));
    assert!(c.nodes[0].send_auth && c.warnings.is_empty());
    for url in ["http://8.8.8.8:443", "http://api.example.com:443"] {
        let c = load(&text(url, ""));
        assert!(!c.nodes[0].send_auth, "{url}");
        assert!(c.nodes[0].api_key.is_some());
        assert_eq!(c.warnings.len(), 1, "{url}");
        assert_eq!(c.warnings[0].field, "nodes[0].apiKeyEnv");
        assert!(c.warnings[0].reason.contains("allowAuthToPublic"));
        assert!(!c.warnings[0].to_string().contains("sk-secret"));
        let c = load(&text(url, "allowAuthToPublic = true"));
        assert!(c.nodes[0].send_auth && c.warnings.is_empty(), "{url}");
        let c = load(&text(url, "allow_auth_to_public = true"));
        assert!(c.nodes[0].send_auth, "{url}");
    }
}

#[test]
fn https_node_urls_are_refused_until_supported() {
    let text = "[[nodes]]\nname = \"a\"\nkind = \"openai\"\nbaseUrl = \"https://10.0.0.1:8443\"\n";
    let ps = GatewayConfig::parse(text, Path::new("d.toml"), &env(&[]))
        .unwrap_err()
        .0;
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].field, "nodes[0].baseUrl");
    assert!(
        ps[0].reason.contains("https node URLs are not supported"),
        "{}",
        ps[0].reason
    );
}

#[test]
fn openai_base_url_with_v1_warns() {
    let text =
        "[[nodes]]\nname = \"a\"\nkind = \"openai\"\nbaseUrl = \"http://10.0.0.1:8000/v1\"\n";
    let c = ok(text);
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].reason.contains("server root"));
}

#[test]
fn node_specs_carry_everything() {
    let text = "\
[[nodes]]
name = \"a\"
kind = \"openai\"
baseUrl = \"http://10.0.0.1:8000\"
weight = 3
maxConcurrency = 9
capabilities = [\"chat\", \"vision\"]
models = [\"qwen\", \"llava\"]
modelAliases = { \"qwen2.5:7b\" = \"qwen\" }
tags = [\"gpu\", \"big\"]
[[nodes]]
name = \"b\"
kind = \"ollama\"
baseUrl = \"http://10.0.0.2:11434\"
tags = [\"gpu\"]
";
    let c = ok(text);
    let mut catalog = Catalog::new();
    let specs = c.node_specs(&mut catalog).unwrap();
    let a = &specs[0];
    assert_eq!(a.name.as_str(), "a");
    assert_eq!(a.kind, NodeKind::OpenAiCompat);
    assert_eq!((a.weight, a.max_concurrency), (3, 9));
    assert_eq!(
        a.capabilities,
        Capabilities::CHAT.union(Capabilities::VISION)
    );
    let qwen = catalog.model("qwen").unwrap();
    let llava = catalog.model("llava").unwrap();
    let alias = catalog.model("qwen2.5:7b").unwrap();
    assert!(a.models.contains(qwen) && a.models.contains(llava) && !a.models.is_any());
    assert_eq!(a.resolve_model(alias), Some(qwen));
    assert_eq!(a.resolve_model(llava), Some(llava));
    let gpu = catalog.tag("gpu").unwrap();
    let big = catalog.tag("big").unwrap();
    assert!(a.tags.contains_all(gpu) && a.tags.contains_all(big));
    let b = &specs[1];
    assert_eq!(b.kind, NodeKind::Ollama);
    assert!(b.models.is_any());
    assert_eq!(b.capabilities, Capabilities::default());
    assert_eq!(b.tags, gpu);
    assert!(!b.tags.contains_all(big));
    // Interning fails when the catalog is full: a problem, not a panic.
    let mut full = Catalog::new();
    for i in 0..MAX_MODELS {
        full.intern_model(&format!("x{i}")).unwrap();
    }
    let ps = c.node_specs(&mut full).unwrap_err().0;
    assert_eq!(ps[0].field, "nodes[0].models");
    assert!(
        ps[0].reason.contains("more than 256 distinct model names"),
        "{}",
        ps[0]
    );
}

#[test]
fn pin_models_is_a_boolean_the_gateway_accepts() {
    let dir = Dir::new("pin-models");
    let node = |pin: &str| {
        format!(
            r#"[{{"name": "p", "kind": "ollama", "baseUrl": "http://10.1.0.2:11434",
              "models": ["m"], "pinModels": {pin}}}]"#
        )
    };
    dir.write("pinned.json", &node("true"));
    let conf = dir.write("d.toml", "nodes_path = \"pinned.json\"\n");
    let c = GatewayConfig::load_with(&conf, &no_env).unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(c.nodes[0].models, ["m"]);
    dir.write("pinned.json", &node("\"yes\""));
    let ps = GatewayConfig::load_with(&conf, &no_env).unwrap_err().0;
    assert_eq!(ps.len(), 1, "{}", Problems(ps.clone()));
    assert_eq!(ps[0].field, "nodes[0].pinModels");
    assert!(ps[0].reason.contains("boolean"), "{}", ps[0].reason);
}

#[cfg(unix)]
#[test]
fn a_nodes_file_that_others_could_change_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new("trust");
    let nodes = dir.write(
        "real.json",
        "[{\"name\": \"b\", \"kind\": \"ollama\", \"baseUrl\": \"http://10.0.0.2:1\"}]\n",
    );
    std::fs::set_permissions(&nodes, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ok = dir.write("ok.toml", "nodes_path = \"real.json\"\n");
    assert_eq!(
        GatewayConfig::load_with(&ok, &no_env).unwrap().nodes.len(),
        1
    );

    std::os::unix::fs::symlink(&nodes, dir.0.join("link.json")).unwrap();
    let conf = dir.write("link.toml", "nodes_path = \"link.json\"\n");
    let ps = GatewayConfig::load_with(&conf, &no_env).unwrap_err().0;
    assert!(
        ps.iter().any(|p| p.reason.contains("symbolic link")),
        "{}",
        Problems(ps.clone())
    );

    for mode in [0o620, 0o602] {
        std::fs::set_permissions(&nodes, std::fs::Permissions::from_mode(mode)).unwrap();
        let ps = GatewayConfig::load_with(&ok, &no_env).unwrap_err().0;
        assert!(
            ps.iter().any(|p| p.reason.contains("chmod go-w")),
            "mode {mode:o}: {}",
            Problems(ps.clone())
        );
    }
}

/// A nodes file that is a FIFO with no writer would block `drover check`
/// and `drover serve` for ever in `read_to_string`: it is refused at once.
#[cfg(unix)]
#[test]
fn a_nodes_file_that_is_not_a_regular_file_is_refused_without_blocking() {
    let dir = Dir::new("fifo");
    let fifo = dir.0.join("nodes.json");
    let made = std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo failed");
    let conf = dir.write("d.toml", "nodes_path = \"nodes.json\"\n");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(GatewayConfig::load_with(&conf, &no_env));
    });
    let loaded = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading a config whose nodes file is a FIFO does not block");
    let ps = loaded.unwrap_err().0;
    assert!(
        ps.iter().any(|p| p.reason.contains("not a regular file")),
        "{}",
        Problems(ps.clone())
    );
    let folder = dir.write("dir.toml", "nodes_path = \".\"\n");
    let ps = GatewayConfig::load_with(&folder, &no_env).unwrap_err().0;
    assert!(
        ps.iter().any(|p| p.reason.contains("not a regular file")),
        "{}",
        Problems(ps.clone())
    );
}
