//! `drover serve`: the gateway.
//!
//! One process gives a swarm of model servers a single endpoint that speaks
//! both OpenAI (`/v1/*`) and Ollama (`/api/*`). Each request becomes one
//! call of the core's [`Router`](drover_core::Router), shared between the
//! runtime's threads as a [`SharedRouter`](drover_core::shared::SharedRouter);
//! [`call`] is the driver loop that executes the core's actions over HTTP
//! (hyper 1 on smol, from `drover_transports::smol`).
//!
//! - [`gateway`]: the shared state (router, upstream table, client, clock).
//! - [`http`]: paths, authentication, body caps, error answers.
//! - [`call`], [`attempt`], [`body`]: the call driver, one upstream
//!   attempt, and the streamed response that reports a stream's end.
//! - [`operator`]: status, metrics, nodes, modes, preview, traces.
//! - [`state`]: modes and learned state that survive a restart.
//! - [`demo`]: the simulated nodes of `drover serve --demo`.
//! - [`probe`]: health and model-inventory probes.
//! - [`reload`]: re-reading the nodes file when it changes.
//!
//! Besides the request tasks, one timer task wakes at the core's
//! [`poll_timeout`](drover_core::Router::poll_timeout) (at least every
//! 250 ms) to expire queue entries, deliver queue grants and start the
//! active probes the core has due ([`probe`]).
//!
//! Shutdown (SIGINT or SIGTERM): stop accepting, let in-flight calls finish
//! for up to `shutdown_grace`, save the state file, exit.

pub mod attempt;
pub mod body;
pub mod call;
pub mod demo;
pub mod gateway;
pub mod heartbeat;
pub mod http;
pub mod operator;
pub mod probe;
pub mod reload;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use drover_transports::smol::{Runtime, Server, ServerConfig, Shutdown};

use crate::config::GatewayConfig;
use gateway::Gateway;

/// Options of `drover serve`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServeOptions {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--listen ADDR`.
    pub listen: Option<SocketAddr>,
    /// `--demo`: serve three in-process simulated nodes.
    pub demo: bool,
    /// `--state FILE`: where modes and learned state are kept.
    pub state: Option<PathBuf>,
}

/// A gateway that is running: its address, and how to stop it.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The shared state.
    pub gateway: Arc<Gateway>,
    /// Fires the graceful shutdown.
    pub shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    _demo: Option<demo::DemoNodes>,
}

impl Running {
    /// Stops the gateway gracefully and waits for it.
    pub fn stop(mut self) -> Result<(), String> {
        self.shutdown.trigger();
        self.join()
    }

    /// Waits until the gateway stops by itself (a signal).
    pub fn join(&mut self) -> Result<(), String> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| "the gateway thread panicked".to_owned())?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.trigger();
        let _ = self.join();
    }
}

/// Resolves the configuration of `drover serve` from its options and the
/// environment.
pub fn resolve_config(opts: &ServeOptions) -> Result<GatewayConfig, String> {
    let mut cfg = match &opts.config {
        Some(p) => GatewayConfig::load(p).map_err(|e| e.to_string())?,
        None => GatewayConfig::default_local(),
    };
    cfg.apply_env(&|k| std::env::var(k).ok())
        .map_err(|e| e.to_string())?;
    if let Some(l) = opts.listen {
        cfg.listen = l;
    }
    Ok(cfg)
}

/// Starts a gateway on its own threads and returns once it listens.
pub fn start(mut cfg: GatewayConfig, opts: &ServeOptions) -> Result<Running, String> {
    let demo_nodes = if opts.demo {
        let d = demo::DemoNodes::start().map_err(|e| format!("demo nodes: {e}"))?;
        cfg.nodes = d.node_configs();
        Some(d)
    } else {
        None
    };
    let threads = match std::env::var("DROVER_THREADS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=256).contains(n))
            .ok_or_else(|| format!("DROVER_THREADS: `{v}` is not a thread count from 1 to 256"))?,
        // One worker per core: each runs its own executor, and a request
        // and its upstream connection stay on one worker (see
        // drover_transports::smol::Runtime).
        Err(_) => 0,
    };
    let rt = Runtime::new(threads).map_err(|e| format!("runtime: {e}"))?;
    let mut gw = Gateway::build(cfg, &rt, opts.demo).map_err(|e| e.to_string())?;
    gw.state_path = if opts.demo {
        None
    } else {
        opts.state.clone().or_else(|| gw.cfg.state_path.clone())
    };
    // The nodes file as it was read (see reload::reload_task).
    let stamp = gw.cfg.nodes_path.as_deref().and_then(reload::stamp);
    let gw = Arc::new(gw);
    if let Some(p) = &gw.state_path {
        let st = state::load(p)?;
        // Not inside the log macro: its arguments are only evaluated when
        // the level is enabled (DROVER_LOG=warn, or no subscriber at all).
        let applied = state::apply(&gw, st);
        tracing::info!("state {}: {applied}", p.display());
    }
    let server_cfg = ServerConfig {
        header_timeout: gw.cfg.limits.header_timeout,
        max_headers: gw.cfg.limits.max_headers,
        max_header_bytes: gw.cfg.limits.max_header_bytes,
        keep_alive: true,
        shutdown_grace: gw.cfg.timeouts.shutdown_grace,
    };
    let server = Server::bind(gw.cfg.listen, server_cfg)
        .map_err(|e| format!("cannot listen on {}: {e}", gw.cfg.listen))?;
    let addr = server.local_addr();
    let shutdown = Shutdown::new();
    let thread = {
        let gw = gw.clone();
        let shutdown = shutdown.clone();
        std::thread::Builder::new()
            .name("drover-serve".into())
            .spawn(move || serve_until_shutdown(rt, server, gw, shutdown, stamp))
            .map_err(|e| format!("cannot start the gateway thread: {e}"))?
    };
    Ok(Running {
        addr,
        gateway: gw,
        shutdown,
        thread: Some(thread),
        _demo: demo_nodes,
    })
}

fn serve_until_shutdown(
    rt: Runtime,
    server: Server,
    gw: Arc<Gateway>,
    shutdown: Shutdown,
    stamp: Option<reload::Stamp>,
) -> Result<(), String> {
    let timer = rt.spawn(timer_task(gw.clone(), shutdown.clone()));
    let reloader = rt.spawn(reload::reload_task(gw.clone(), shutdown.clone(), stamp));
    let handler = {
        let gw = gw.clone();
        move |req, conn| http::handle(gw.clone(), req, conn)
    };
    // The accept loop runs on a worker too, so a new connection's readiness
    // and its task start on the runtime's threads; this thread only waits.
    let serving = rt.spawn(server.run(&rt, handler, shutdown.clone()));
    let summary = rt.block_on(serving).map_err(|e| format!("server: {e}"))?;
    rt.block_on(timer.cancel());
    rt.block_on(reloader.cancel());
    tracing::info!("stopped: {summary:?}");
    if let Some(p) = &gw.state_path {
        state::save(&gw, p)?;
        tracing::info!("state saved to {}", p.display());
    }
    Ok(())
}

/// Expires queue entries and delivers queue grants on the core's schedule.
async fn timer_task(gw: Arc<Gateway>, shutdown: Shutdown) {
    let tick = std::time::Duration::from_millis(250);
    while !shutdown.is_triggered() {
        let now = gw.now();
        let next = gw
            .router
            .poll_timeout()
            .map_or(tick, |t| {
                std::time::Duration::from_nanos(t.saturating_since(now).as_nanos()).min(tick)
            })
            .max(std::time::Duration::from_millis(1));
        drover_transports::smol::Timer::after(next).await;
        gw.router.handle_timeout(gw.now());
        gw.deliver_wakeups();
        probe::run_due(&gw);
    }
}

/// `drover serve`: runs until SIGINT or SIGTERM.
pub fn run(opts: &ServeOptions) -> Result<(), String> {
    init_logging();
    let cfg = resolve_config(opts)?;
    let mut opts = opts.clone();
    if opts.state.is_none() && cfg.state_path.is_none() && !opts.demo {
        opts.state = default_state_path();
    }
    let opts = &opts;
    let mut running = start(cfg, opts)?;
    print_banner(&running, opts);
    let shutdown = running.shutdown.clone();
    std::thread::Builder::new()
        .name("drover-signals".into())
        .spawn(move || wait_for_signal(shutdown))
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    running.join()
}

/// Where `drover serve` keeps its state when neither `--state` nor
/// `state_path` says: `$XDG_STATE_HOME/drover/state.json`, else
/// `$HOME/.local/state/drover/state.json`; none without either variable.
pub fn default_state_path() -> Option<PathBuf> {
    state_path_from(&|k| std::env::var_os(k))
}

fn state_path_from(get: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let base = match get("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(get("HOME").filter(|v| !v.is_empty())?)
            .join(".local")
            .join("state"),
    };
    Some(base.join("drover").join("state.json"))
}

fn wait_for_signal(shutdown: Shutdown) {
    use async_signal::{Signal, Signals};
    use smol::stream::StreamExt;
    let Ok(mut signals) = Signals::new([Signal::Int, Signal::Term]) else {
        tracing::warn!("cannot watch SIGINT/SIGTERM; stop drover with SIGKILL");
        return;
    };
    // Parks between polls rather than driving async-io's reactor (see
    // `Runtime::block_on`): the workers deliver the signal pipe's events.
    smol::future::block_on(async {
        if let Some(Ok(sig)) = signals.next().await {
            tracing::info!("{sig:?} received: draining in-flight calls, then stopping");
            shutdown.trigger();
        }
    });
}

/// Logs to stderr, filtered by `DROVER_LOG` (default `info`).
pub fn init_logging() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let info = Targets::new().with_default(LevelFilter::INFO);
    // `DROVER_LOG`: a level (`debug`), or `target=level` pairs separated by
    // commas (`info,drover=trace,hyper=warn`). A value that does not parse
    // is said on stderr, and the default (info) is used.
    let filter = match std::env::var("DROVER_LOG") {
        Ok(v) if !v.trim().is_empty() => v.parse::<Targets>().unwrap_or_else(|e| {
            eprintln!(
                "drover: DROVER_LOG=`{v}` is not a log filter ({e}); \
                 use a level (error, warn, info, debug, trace) or target=level pairs; logging at info"
            );
            info.clone()
        }),
        _ => info,
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

fn print_banner(r: &Running, opts: &ServeOptions) {
    let gw = &r.gateway;
    let mut s = format!(
        "drover {} listening on http://{}\n",
        env!("CARGO_PKG_VERSION"),
        r.addr
    );
    if opts.demo {
        s.push_str(
            "DEMO MODE: the nodes below are SIMULATED in this process (fake tokens, no model).\n",
        );
    }
    for n in &gw.node_configs() {
        s.push_str(&format!(
            "  node {:<12} {:<13} {} (max {} at once)\n",
            n.name,
            match n.kind {
                drover_core::node::NodeKind::Ollama => "ollama",
                _ => "openai_compat",
            },
            n.base_url,
            n.max_concurrency
        ));
    }
    let a = r.addr;
    s.push_str(&format!(
        "try:\n  curl -s http://{a}/v1/chat/completions -H 'content-type: application/json' \\\n    -d '{{\"model\":\"{m}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}],\"stream\":true}}'\n  curl -s http://{a}/api/chat -d '{{\"model\":\"{m}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}'\n  curl -s http://{a}/status\n",
        m = gw.client_models().first().map_or("llama3.2", String::as_str)
    ));
    eprint!("{s}");
}

#[cfg(test)]
mod tests {
    use super::state_path_from;
    use std::path::PathBuf;

    #[test]
    fn the_default_state_path_follows_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert_eq!(
            state_path_from(&env(&[("XDG_STATE_HOME", "/s"), ("HOME", "/h")])),
            Some(PathBuf::from("/s/drover/state.json"))
        );
        assert_eq!(
            state_path_from(&env(&[("XDG_STATE_HOME", ""), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/state/drover/state.json"))
        );
        assert_eq!(state_path_from(&env(&[])), None);
    }
}
