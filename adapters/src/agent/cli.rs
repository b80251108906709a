//! `drover agent` on the command line: options, signals.

use std::ffi::OsString;

use drover_core::node::NodeKind;

use super::{AgentOptions, start};
use crate::config::{Secret, parse_duration};

/// `drover agent --help`.
pub const USAGE: &str = "\
Usage: drover agent --gateway URL [--gateway URL...] --token-env NAME
                    --node-url URL [--node NAME] [--interval 1s]
                    [--kind ollama|openai_compat] [--slots N] [--hardware gpu|cpu]

Runs beside a model server and posts a heartbeat to each gateway's
POST /nodes/heartbeat every interval (default 1s): catalog fingerprint and
model names, slots, drain flag. Never prompts, paths, user names or hardware ids.
  --token-env NAME  environment variable holding the gateway's heartbeat token
  --node NAME       the node's name in the gateway config (default local)
  --slots N         concurrent requests the server takes (default 4)
Drain (no new calls, running ones finish): DROVER_DRAIN=1, or SIGUSR1 (toggles).
Stops on SIGINT or SIGTERM.
";

/// Parses `drover agent` options (after `agent`); `Ok(None)` for `--help`.
///
/// # Errors
///
/// A message for the user.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<AgentOptions>, String> {
    let mut args = args.into_iter();
    let (mut gateways, mut token_env, mut node_url) = (Vec::new(), None, None);
    let mut o = AgentOptions::new(Vec::new(), Secret::new(""), "");
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("argument {a:?} is not UTF-8"))?;
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| format!("option '{name}' needs a value"))?,
        };
        match name.as_str() {
            "--gateway" => gateways.push(value),
            "--token-env" => token_env = Some(value),
            "--node-url" => node_url = Some(value),
            "--node" => o.node = value,
            "--interval" => {
                o.interval = parse_duration(&value).map_err(|e| format!("--interval: {e}"))?;
            }
            "--kind" => {
                o.kind = match value.as_str() {
                    "ollama" => NodeKind::Ollama,
                    "openai_compat" => NodeKind::OpenAiCompat,
                    _ => {
                        return Err(format!(
                            "--kind `{value}`: expected ollama or openai_compat"
                        ));
                    }
                }
            }
            "--slots" => {
                o.slots = value
                    .parse()
                    .map_err(|_| format!("--slots `{value}`: expected 1 to 65535"))?;
            }
            "--hardware" => o.hardware.push(value),
            _ => return Err(format!("unknown option '{name}' for 'drover agent'")),
        }
    }
    let token_env = token_env.ok_or("--token-env NAME is required")?;
    o.token = match get(&token_env) {
        Some(t) if !t.is_empty() => Secret::new(t),
        _ => {
            return Err(format!(
                "environment variable `{token_env}` is not set or empty"
            ));
        }
    };
    o.node_url = node_url.ok_or("--node-url URL is required")?;
    o.gateways = gateways;
    o.drain = get("DROVER_DRAIN").is_some_and(|v| v == "1");
    Ok(Some(o))
}

/// Runs the agent until SIGINT or SIGTERM; SIGUSR1 toggles draining.
///
/// # Errors
///
/// The agent could not start.
pub fn run(opts: AgentOptions) -> Result<(), String> {
    use async_signal::{Signal, Signals};
    use smol::stream::StreamExt;
    let mut signals = Signals::new([Signal::Int, Signal::Term, Signal::Usr1])
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    let agent = start(opts)?;
    smol::block_on(async {
        while let Some(Ok(sig)) = signals.next().await {
            if sig == Signal::Usr1 {
                agent.set_drain(!agent.draining());
                tracing::info!(drain = agent.draining(), "SIGUSR1: drain toggled");
            } else {
                tracing::info!("{sig:?} received: stopping");
                break;
            }
        }
    });
    agent.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn p(args: &[&str], env: &[(&str, &str)]) -> Result<Option<AgentOptions>, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        parse(args.iter().map(OsString::from), &|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn options_parse() {
        let o = p(
            &[
                "--gateway",
                "http://10.0.0.1:8080",
                "--gateway=http://10.0.0.2:8080",
                "--token-env",
                "HB",
                "--node-url",
                "http://127.0.0.1:8000",
                "--node",
                "gpu1",
                "--interval",
                "250ms",
                "--kind",
                "openai_compat",
                "--slots",
                "8",
                "--hardware",
                "gpu",
            ],
            &[("HB", "secret"), ("DROVER_DRAIN", "1")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.gateways.len(), 2);
        assert_eq!(o.token.expose(), "secret");
        assert_eq!(o.node, "gpu1");
        assert_eq!(o.interval, Duration::from_millis(250));
        assert_eq!(o.kind, NodeKind::OpenAiCompat);
        assert_eq!(o.slots, 8);
        assert!(o.drain);
        assert!(p(&["--help"], &[]).unwrap().is_none());
        let base = [
            "--gateway",
            "http://127.0.0.1:1",
            "--node-url",
            "http://127.0.0.1:2",
        ];
        assert!(p(&base, &[]).unwrap_err().contains("--token-env"));
        let mut a = base.to_vec();
        a.extend(["--token-env", "HB"]);
        assert!(p(&a, &[]).unwrap_err().contains("`HB` is not set"));
        let o = p(&a, &[("HB", "t")]).unwrap().unwrap();
        assert!(!o.drain);
        a.extend(["--kind", "vllm"]);
        assert!(p(&a, &[("HB", "t")]).unwrap_err().contains("--kind"));
        assert!(
            p(&["--bogus", "x"], &[])
                .unwrap_err()
                .contains("unknown option")
        );
    }
}
