//! The config loaders on any text: the TOML file of `drover serve --config`
//! (`GatewayConfig::parse`) and the nodes-file JSON (`config::parse_nodes`).
//! Never a panic. A refusal lists at least one problem, and each problem
//! gives a reason and names a field, or a line of the file it is about (a
//! TOML syntax error without a position is about the whole file); a line is
//! within that file. No problem, summary or debug print shows a
//! secret read from the environment. An accepted config gives the core a
//! valid router config and valid node specs.
//!
//! Input layout: byte 0 picks the loader (even: the TOML config, odd: the
//! nodes JSON); the rest is the file's text (not UTF-8: skipped, as both
//! loaders read text and refuse other bytes before parsing).

use std::path::Path;

use drover::config::{GatewayConfig, MAX_NODES, Problems, UrlPolicy, parse_nodes};
use drover_core::catalog::Catalog;

/// Where the fuzzed config claims to come from. Nothing is there, so a
/// relative `nodes_path` names a file that does not exist.
const ORIGIN: &str = "/nonexistent/drover-fuzz/drover.toml";
/// Where the fuzzed nodes file claims to come from.
const NODES_ORIGIN: &str = "/nonexistent/drover-fuzz/nodes.json";

/// Secrets the environment holds; none may show in any output.
const SECRETS: [&str; 2] = ["fuzz-token-0123456789abcdef", "sk-fuzz-key-987"];

/// The environment the loaders see.
fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" | "DROVER_TOKEN" | "CLIENT_TOKEN" => Some(SECRETS[0].to_owned()),
        "KEY" | "API_KEY" | "OPENAI_API_KEY" => Some(SECRETS[1].to_owned()),
        "SHORT" => Some("abc".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Panics if `out` shows a secret that the input text does not itself hold.
fn no_secret(text: &str, out: &str, what: &str) {
    for s in SECRETS {
        assert!(
            text.contains(s) || !out.contains(s),
            "{what} shows the secret `{s}`: {out}"
        );
    }
}

/// Checks a refusal of `text`, read from `origin`.
fn check_problems(problems: &Problems, text: &str, origin: &Path) {
    assert!(!problems.0.is_empty(), "a refusal lists no problem");
    // `str::lines` does not count a last empty line; a parser may point at it.
    let lines = text.lines().count() + 1;
    for p in &problems.0 {
        let shown = p.to_string();
        assert!(
            !p.reason.trim().is_empty(),
            "a problem without a reason: {shown}"
        );
        no_secret(text, &shown, "a problem");
        if p.file != origin {
            // About another file (`nodes_path`): it does not exist, or is
            // not a nodes file; its lines are not in `text`.
            continue;
        }
        // A syntax error the parser cannot place (`invalid TOML: recursion
        // limit`, first found by this target) is about the whole file.
        let whole_file_syntax = p.reason.starts_with("invalid TOML") && p.field.is_empty();
        assert!(
            !p.field.is_empty() || p.line.is_some() || whole_file_syntax,
            "a problem names neither a field nor a line: {shown}"
        );
        if let Some(line) = p.line {
            assert!(
                (1..=lines).contains(&line),
                "line {line} of a {lines}-line text: {shown}"
            );
        }
    }
    no_secret(text, &problems.to_string(), "the problem list");
}

/// Checks one fuzz input; panics on a finding.
pub fn check(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if pick % 2 == 0 {
        let origin = Path::new(ORIGIN);
        match GatewayConfig::parse(text, origin, &env) {
            Err(problems) => check_problems(&problems, text, origin),
            Ok(cfg) => {
                assert!(!cfg.nodes.is_empty() && cfg.nodes.len() <= MAX_NODES);
                if let Err(p) = cfg.router_config() {
                    panic!("an accepted config has an invalid router config: {p}");
                }
                if let Err(p) = cfg.node_specs(&mut Catalog::new()) {
                    panic!("an accepted config has invalid node specs: {p}");
                }
                no_secret(text, &cfg.summary(), "the summary");
                no_secret(text, &format!("{cfg:?}"), "the debug print");
            }
        }
    } else {
        let origin = Path::new(NODES_ORIGIN);
        match parse_nodes(text, origin, &UrlPolicy::default(), &env) {
            Err(problems) => check_problems(&problems, text, origin),
            Ok(nodes) => {
                assert!(!nodes.is_empty() && nodes.len() <= MAX_NODES);
                let mut cfg = GatewayConfig::default_local();
                cfg.nodes = nodes;
                if let Err(p) = cfg.node_specs(&mut Catalog::new()) {
                    panic!("an accepted nodes file has invalid node specs: {p}");
                }
                for n in &cfg.nodes {
                    assert!(!n.base_url.to_string().is_empty());
                }
                no_secret(text, &format!("{:?}", cfg.nodes), "the debug print");
            }
        }
    }
}
