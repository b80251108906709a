//! `DROVER_*` environment overrides of the common keys. `DROVER_LOG` is
//! not among them: it filters logs and is read by the log setup.

use std::path::{Path, PathBuf};

use drover_core::config::Policy;

use super::build::MAX_BODY;
use super::nodes::{self, NodeSource};
use super::{
    DEFAULT_ORIGIN, ENV_ORIGIN, GatewayConfig, NodeConfig, Problem, Problems, parse_bytes,
};

/// The variables [`apply`] reads, in the order it reads them.
pub const VARIABLES: [&str; 7] = [
    "DROVER_LISTEN",
    "DROVER_POLICY",
    "DROVER_NODES_PATH",
    "DROVER_MAX_BODY_BYTES",
    "DROVER_STATE_PATH",
    "DROVER_PROBES",
    "DROVER_STRICT_MODELS",
];

/// A boolean variable: `1`/`true`/`on`/`yes` or `0`/`false`/`off`/`no`.
fn switch(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(format!(
            "`{value}` is not a switch: use 1/true/on or 0/false/off"
        )),
    }
}

fn problem(var: &str, reason: String) -> Problem {
    Problem {
        file: PathBuf::from(ENV_ORIGIN),
        line: None,
        field: var.to_owned(),
        reason,
    }
}

/// Applies the overrides (see [`GatewayConfig::apply_env`]); returns the
/// names of the variables applied. On error `config` is unchanged.
pub(super) fn apply(
    config: &mut GatewayConfig,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<&'static str>, Problems> {
    let mut next = config.clone();
    let mut problems = Vec::new();
    let mut applied = Vec::new();
    for var in VARIABLES {
        let Some(value) = get(var) else { continue };
        applied.push(var);
        if value.is_empty() {
            problems.push(problem(var, "is set but empty".to_owned()));
            continue;
        }
        match var {
            "DROVER_LISTEN" => match value.parse() {
                Ok(addr) => next.listen = addr,
                Err(_) => problems.push(problem(
                    var,
                    format!("`{value}` is not an address like 127.0.0.1:8080 or [::1]:8080"),
                )),
            },
            "DROVER_POLICY" => match Policy::from_name(&value) {
                Some(p) => next.router.policy = p,
                None => {
                    let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
                    problems.push(problem(
                        var,
                        format!(
                            "unknown policy `{value}`; expected one of {}",
                            names.join(", ")
                        ),
                    ));
                }
            },
            "DROVER_MAX_BODY_BYTES" => {
                let n = value.parse::<u64>().or_else(|_| parse_bytes(&value));
                match n {
                    Ok(n) if (1..=MAX_BODY).contains(&n) => {
                        next.limits.max_body_bytes = usize::try_from(n).unwrap_or(usize::MAX);
                    }
                    Ok(n) => problems.push(problem(
                        var,
                        format!("must be from 1 to {MAX_BODY}, found {n}"),
                    )),
                    Err(e) => problems.push(problem(var, e)),
                }
            }
            "DROVER_STATE_PATH" => next.state_path = Some(PathBuf::from(&value)),
            "DROVER_PROBES" => match switch(&value) {
                Ok(on) => next.router.probe.enabled = on,
                Err(e) => problems.push(problem(var, e)),
            },
            "DROVER_STRICT_MODELS" => match switch(&value) {
                Ok(on) => next.router.strict_models = on,
                Err(e) => problems.push(problem(var, e)),
            },
            _ => {
                let path = PathBuf::from(&value);
                let (source, file_problems, warnings) =
                    nodes::load_file(&path, &next.url_policy, get);
                if file_problems.is_empty() {
                    replace_file_nodes(&mut next, &path, source, &mut problems);
                    next.warnings.extend(warnings);
                } else {
                    problems.push(problem(
                        var,
                        format!("the nodes file `{value}` has problems:"),
                    ));
                    problems.extend(file_problems);
                }
            }
        }
    }
    if problems.is_empty() {
        *config = next;
        Ok(applied)
    } else {
        Err(Problems(problems))
    }
}

/// Puts the nodes of `path` in place of those of the config's `nodes_path`
/// (and of the default local node of a gateway run without a config file),
/// keeping the inline ones.
pub(super) fn replace_file_nodes(
    config: &mut GatewayConfig,
    path: &Path,
    source: NodeSource,
    problems: &mut Vec<Problem>,
) {
    let old = config.nodes_path.take();
    let inline: Vec<NodeConfig> = config
        .nodes
        .drain(..)
        .filter(|n| {
            old.as_deref() != Some(n.origin.as_path()) && n.origin != Path::new(DEFAULT_ORIGIN)
        })
        .collect();
    let inline = nodes::source_of(inline);
    let all = NodeSource::merge(vec![inline, source]);
    problems.extend(nodes::cross_check(&all));
    config.nodes = all.nodes;
    config.nodes_path = Some(path.to_owned());
}
