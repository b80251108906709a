//! `drover`: see `drover --help`.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;

use drover::cli::{self, Command};
use drover::{config, demo, replay};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "agent") {
        return agent(args.skip(1));
    }
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drover: {e}\nTry 'drover --help' for more information.");
            return ExitCode::from(2);
        }
    };
    let text = match command {
        Command::Help => cli::USAGE.to_owned(),
        Command::DemoHelp => cli::DEMO_USAGE.to_owned(),
        Command::ReplayHelp => cli::REPLAY_USAGE.to_owned(),
        Command::ServeHelp => cli::SERVE_USAGE.to_owned(),
        Command::Serve(opts) => match drover::serve::run(&opts) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("drover: serve: {e}");
                return ExitCode::FAILURE;
            }
        },
        Command::CheckHelp => cli::CHECK_USAGE.to_owned(),
        Command::Check(path) => match config::check(&path) {
            Ok(summary) => summary,
            Err(problems) => {
                eprintln!("{problems}");
                let n = problems.0.len();
                eprintln!(
                    "drover: {n} problem{} in {}",
                    if n == 1 { "" } else { "s" },
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        },
        Command::DiscoverHelp => drover::discover::USAGE.to_owned(),
        Command::Discover(opts) => match drover::discover::run(&opts, &mut io::stderr()) {
            Ok(report) => report.to_string(),
            Err(e) => {
                eprintln!("drover: discover: {e}");
                return ExitCode::FAILURE;
            }
        },
        Command::Version => format!("drover {}\n", env!("CARGO_PKG_VERSION")),
        Command::Demo(opts) => match demo::run(&opts) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("drover: demo failed: {e}");
                return ExitCode::FAILURE;
            }
        },
        Command::Replay(opts) => match replay::run(&opts) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("drover: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // `drover demo | head` closes the pipe early: not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drover: cannot write the output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `drover agent …`.
fn agent(args: impl Iterator<Item = std::ffi::OsString>) -> ExitCode {
    match drover::agent::cli::parse(args, &|k| std::env::var(k).ok()) {
        Ok(None) => {
            print!("{}", drover::agent::cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Some(opts)) => {
            drover::serve::init_logging();
            match drover::agent::cli::run(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("drover: agent: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("drover: agent: {e}\nTry 'drover agent --help' for more information.");
            ExitCode::from(2)
        }
    }
}
