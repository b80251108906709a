//! Memory of many open streams: how much RSS a `drover serve` process needs
//! per streamed call that is in progress.
//!
//! ```text
//! cargo build --release -p drover -p drover-benches --bin open_streams --bin drover
//! target/release/open_streams --streams 9000
//! ```
//!
//! It starts a slow fake OpenAI upstream in a child process (one token every
//! 500 ms), a drover gateway configured for it, and then opens `--streams`
//! client connections (500 at a time, each batch waited for), each sending
//! a streamed chat request. Once every
//! stream has delivered its first token (so every call holds a client
//! connection, an upstream connection, a permit and a node slot), it reads
//! drover's VmRSS and VmHWM from `/proc/PID/status`, then closes everything.
//!
//! Each stream costs drover two file descriptors (client and upstream), so
//! the process's open-file limit caps the count: `ulimit -n` must exceed
//! twice `--streams`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover::fake::{Behaviour, FakeServer, FakeSpec};
use drover_benches::gateway::procinfo;
use drover_core::node::NodeKind;

/// Streams opened before waiting for their first tokens.
const BATCH: usize = 500;

const HELP: &str = "open_streams: drover's RSS with many streams open at once

USAGE: open_streams [--streams N] [--drover-bin PATH | --proxy-cmd CMD]

  --streams N        streams to hold open (default 9000; needs ulimit -n > 2N)
  --drover-bin PATH  the drover binary (default target/release/drover)
  --proxy-cmd CMD    measure another proxy instead, started as CMD split at
                     spaces with {listen} and {upstreams} (base URLs) filled
                     in, e.g. `target/release/hyper_floor --listen {listen}
                     --upstreams {upstreams}`
  -h, --help         this text";

fn main() {
    if let Err(e) = run() {
        eprintln!("open_streams: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut streams = 9000usize;
    let mut bin = PathBuf::from("target/release/drover");
    let mut proxy_cmd: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--serve-upstream" => {
                let port: u16 = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or("--serve-upstream needs a port")?;
                return serve_upstream(port);
            }
            "--streams" => {
                streams = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=60_000).contains(n))
                    .ok_or("--streams needs a count from 1 to 60000")?;
            }
            "--drover-bin" => bin = PathBuf::from(args.next().ok_or("--drover-bin needs a path")?),
            "--proxy-cmd" => proxy_cmd = Some(args.next().ok_or("--proxy-cmd needs a command")?),
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n{HELP}")),
        }
    }
    let dir = std::env::temp_dir().join(format!("drover-open-streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let up_port = procinfo::free_port().map_err(|e| e.to_string())?;
    let gw_port = procinfo::free_port().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let upstream = Guard(
        Command::new(exe)
            .args(["--serve-upstream", &up_port.to_string()])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("upstream: {e}"))?,
    );
    let up_addr = SocketAddr::from(([127, 0, 0, 1], up_port));
    procinfo::wait_listening(up_addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let cfg = dir.join("drover.toml");
    let permits = streams + 16;
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{gw_port}\"\n\
             [pools]\nglobal = {permits}\nstream = {permits}\n\
             [timeouts]\nstream_total = \"10m\"\nattempt = \"10m\"\nttft = \"60s\"\n\
             [[nodes]]\nname = \"slow\"\nkind = \"openai_compat\"\n\
             baseUrl = \"http://127.0.0.1:{up_port}\"\nmaxConcurrency = 65535\nmodels = [\"fake-small\"]\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut command = match &proxy_cmd {
        Some(cmd) => {
            let words: Vec<String> = cmd
                .split_whitespace()
                .map(|w| {
                    w.replace("{listen}", &format!("127.0.0.1:{gw_port}"))
                        .replace("{upstreams}", &format!("http://{up_addr}"))
                })
                .collect();
            let (program, rest) = words.split_first().ok_or("--proxy-cmd is empty")?;
            let mut c = Command::new(program);
            c.args(rest);
            c
        }
        None => {
            let mut c = Command::new(&bin);
            c.args(["serve", "--config"]).arg(&cfg);
            c
        }
    };
    let drover = Guard(command.env("DROVER_LOG", "warn").spawn().map_err(|e| {
        format!(
            "{}: {e}",
            proxy_cmd.as_deref().unwrap_or(&bin.display().to_string())
        )
    })?);
    let gw = SocketAddr::from(([127, 0, 0, 1], gw_port));
    procinfo::wait_listening(gw, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(500));
    let pid = drover.0.id();
    let idle = procinfo::rss_kib(pid).map_err(|e| e.to_string())?;

    let started = Instant::now();
    let body =
        r#"{"model":"fake-small","stream":true,"messages":[{"role":"user","content":"hold"}]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {gw}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // Opened in batches, each waited for before the next: the fake
    // upstream accepts from a 128-deep listen queue, and 9,000 connects at
    // once overflow it, so the kernel drops SYNs and drover's 2 s connect
    // timeout fails calls. The streams are still all open at once.
    let mut conns: Vec<(TcpStream, bool)> = Vec::with_capacity(streams);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut buf = [0u8; 4096];
    let mut open = 0;
    while conns.len() < streams {
        for _ in 0..BATCH.min(streams - conns.len()) {
            let i = conns.len();
            let mut s = TcpStream::connect(gw).map_err(|e| format!("connect #{i}: {e}"))?;
            s.write_all(req.as_bytes())
                .map_err(|e| format!("write #{i}: {e}"))?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            conns.push((s, false));
        }
        // Wait until every stream so far has shown its first token.
        while open < conns.len() {
            if Instant::now() > deadline {
                return Err(format!(
                    "only {open} of {streams} streams started within 120 s"
                ));
            }
            let mut progressed = false;
            for (s, seen) in conns.iter_mut().filter(|(_, seen)| !*seen) {
                match s.read(&mut buf) {
                    Ok(0) => return Err("a stream closed before its first token".into()),
                    Ok(n) => {
                        if buf[..n].windows(5).any(|w| w == b"data:") {
                            *seen = true;
                            open += 1;
                            progressed = true;
                        } else if !buf[..n].starts_with(b"HTTP/1.1 200") {
                            return Err(format!(
                                "unexpected answer: {}",
                                String::from_utf8_lossy(&buf[..n.min(600)])
                            ));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
            if !progressed {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let ramp = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (rss, hwm) = (field("VmRSS:"), field("VmHWM:"));
    let per = (rss.saturating_sub(idle)) as f64 / streams as f64;
    println!("streams open at once:      {streams} (all past their first token after {ramp:.1?})");
    let name = if proxy_cmd.is_some() {
        "proxy"
    } else {
        "drover"
    };
    println!(
        "{:<27}{:.1} MiB",
        format!("{name} idle RSS:"),
        idle as f64 / 1024.0
    );
    println!(
        "{:<27}{:.1} MiB (peak {:.1} MiB)",
        format!("{name} RSS with streams:"),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!("per open stream:           {per:.1} KiB");
    println!(
        "10,000 streams, by that slope: {:.0} MiB",
        (idle as f64 + per * 10_000.0) / 1024.0
    );
    drop(conns);
    drop(drover);
    drop(upstream);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The fake upstream: one token every 500 ms for a minute.
fn serve_upstream(port: u16) -> Result<(), String> {
    let spec = FakeSpec {
        behaviour: Behaviour::paced(Duration::ZERO, Duration::from_millis(500), 120),
        ..FakeSpec::new(NodeKind::OpenAiCompat, &["fake-small"])
    };
    let server = FakeServer::start_on(spec, SocketAddr::from(([127, 0, 0, 1], port)), 2)
        .map_err(|e| e.to_string())?;
    // Serve until the parent closes our stdin (or kills us).
    let mut sink = [0u8; 1];
    let _ = io::stdin().read(&mut sink);
    drop(server);
    Ok(())
}

/// Kills its child when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // SIGTERM first (a graceful stop; lets a profiler wrapper write its
        // output), SIGKILL after 10 s.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
