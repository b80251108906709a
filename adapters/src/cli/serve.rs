//! `drover serve`: its help text and its options.

use std::ffi::OsString;

use super::{Command, UsageError, option, path, usage};
use crate::serve::ServeOptions;

/// `drover serve --help`.
pub const SERVE_USAGE: &str = "\
drover serve: runs the gateway. Clients talk OpenAI (/v1/chat/completions,
/v1/embeddings, /v1/models) or Ollama (/api/chat, /api/generate, /api/embed,
/api/embeddings, /api/tags, /api/version) to it; it routes each call to one
of the configured model servers, fails over before the first token, and
streams the answer back. Operator endpoints (loopback only): /status,
/metrics, /nodes, /nodes/NAME/mode, /route/preview, /trace/ID.

Without --config it listens on 127.0.0.1:8080 with one node, a local Ollama
at http://127.0.0.1:11434. Logs go to stderr, filtered by DROVER_LOG
(e.g. DROVER_LOG=debug). SIGINT or SIGTERM stops it gracefully.

Usage: drover serve [OPTIONS]

Options:
      --config FILE    Gateway config (TOML; see 'drover check FILE')
      --listen ADDR    Address to listen on, e.g. 127.0.0.1:8080
                       [default: the config's, else 127.0.0.1:8080]
      --state FILE     Where node modes and learned latencies are kept
                       across restarts [default: the config's state_path,
                       else $XDG_STATE_HOME/drover/state.json or
                       ~/.local/state/drover/state.json; never with --demo]
      --demo           Serve three SIMULATED model servers started in this
                       process (fake tokens, one of them flaky) instead of
                       the configured nodes
  -h, --help           Print this help
";

/// Parses the options of `drover serve` (after `serve`).
pub(super) fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut opts = ServeOptions::default();
    let known = ["--config", "--listen", "--state"];
    while let Some(arg) = args.next() {
        if arg == "--demo" {
            if opts.demo {
                return usage("option '--demo' is given twice".to_owned());
            }
            opts.demo = true;
            continue;
        }
        let Some((name, value)) = option(arg, &mut args, "serve", &known)? else {
            return Ok(Command::ServeHelp);
        };
        let twice = || usage(format!("option '{name}' is given twice"));
        match name.as_str() {
            "--config" if opts.config.is_some() => return twice(),
            "--config" => opts.config = Some(path(&name, &value, "a config file")?),
            "--state" if opts.state.is_some() => return twice(),
            "--state" => opts.state = Some(path(&name, &value, "a state file")?),
            "--listen" if opts.listen.is_some() => return twice(),
            _ => {
                opts.listen = Some(value.parse().map_err(|_| {
                    UsageError(format!(
                        "option '--listen': '{value}' is not an address like 127.0.0.1:8080"
                    ))
                })?)
            }
        }
    }
    Ok(Command::Serve(opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        super::super::parse(args.iter().map(OsString::from))
    }

    fn err(args: &[&str]) -> String {
        p(args).unwrap_err().0
    }

    #[test]
    fn serve_options_parse_and_bad_ones_name_the_option() {
        assert_eq!(p(&["serve"]), Ok(Command::Serve(ServeOptions::default())));
        assert_eq!(p(&["serve", "--help"]), Ok(Command::ServeHelp));
        assert_eq!(
            p(&[
                "serve",
                "--demo",
                "--listen",
                "127.0.0.1:9",
                "--config=a.toml",
                "--state",
                "s.json"
            ]),
            Ok(Command::Serve(ServeOptions {
                config: Some("a.toml".into()),
                listen: Some("127.0.0.1:9".parse().unwrap()),
                demo: true,
                state: Some("s.json".into()),
            }))
        );
        assert_eq!(
            err(&["serve", "--demo", "--demo"]),
            "option '--demo' is given twice"
        );
        assert!(err(&["serve", "--listen", "localhost"]).contains("'localhost' is not an address"));
        assert_eq!(
            err(&["serve", "--port", "1"]),
            "unknown option '--port' for 'drover serve'"
        );
        assert_eq!(
            err(&["serve", "--config"]),
            "option '--config' needs a value"
        );
    }
}
