//! Instructions per request, drover against nginx, counted by callgrind.
//!
//! The gateway bench measures time, and on a shared machine time swings by
//! tens of percent between runs. This harness counts the user-space
//! instructions a proxy executes per request instead, which does not depend
//! on what else the machine is doing, so two builds (or drover and nginx)
//! can be compared to a percent.
//!
//! For each body (non-streamed and streamed chat) and each proxy, it starts
//! fast fake OpenAI upstreams, starts the proxy under
//! `valgrind --tool=callgrind --instr-atstart=no` (nginx with
//! `master_process off`, so one process does all the work), sends an
//! uncounted warm-up, turns counting on with `callgrind_control -i on`,
//! sends exactly `--requests` requests, turns it off, stops the proxy and
//! reads the total from callgrind's output.
//!
//! Kernel work (the TCP stack, system calls) is not counted: this measures
//! only the proxy's own code, which is where drover and nginx differ.
//!
//! ```text
//! cargo build --release -p drover -p drover-benches --bin drover --bin instr_bench
//! target/release/instr_bench --requests 2000
//! ```
//!
//! Needs `valgrind` (Debian: `apt-get install -y valgrind`) and, for the
//! baseline, `nginx`.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover::fake::{Behaviour, FakeServer, FakeSpec};
use drover_benches::gateway::loadgen::{self, LoadSpec};
use drover_benches::gateway::{self, nginx, procinfo};
use drover_core::node::NodeKind;

const HELP: &str = "instr_bench: user-space instructions per request, drover vs nginx (callgrind)

USAGE: instr_bench [OPTIONS]

  --requests N       counted requests per cell (default 2000)
  --warmup N         uncounted requests before them (default 300)
  --conc C           connections (default 4)
  --tokens N         tokens per streamed reply (default 8)
  --prompt-bytes N   make the request's user message N bytes long (a
                     conversation's worth of prompt; default: one sentence)
  --drover-bin PATH  the drover binary (default target/release/drover);
                     repeat to compare builds
  --proxy-cmd CMD    also measure another proxy, started as CMD split at
                     spaces, with {listen} and {upstreams} (comma-separated
                     base URLs) filled in; repeatable (for example
                     `target/release/hyper_floor --listen {listen}
                     --upstreams {upstreams}`)
  --no-nginx         skip nginx
  --keep DIR         keep callgrind's output files in DIR (for
                     callgrind_annotate)
  -h, --help         this text

Needs valgrind (apt-get install -y valgrind).";

const MODEL: &str = "fake-small";
const PATH: &str = "/v1/chat/completions";

struct Args {
    requests: u64,
    warmup: u64,
    conc: usize,
    tokens: u32,
    prompt_bytes: Option<usize>,
    drover_bins: Vec<PathBuf>,
    proxy_cmds: Vec<String>,
    nginx: bool,
    keep: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        requests: 2000,
        warmup: 300,
        conc: 4,
        tokens: 8,
        prompt_bytes: None,
        drover_bins: Vec::new(),
        proxy_cmds: Vec::new(),
        nginx: true,
        keep: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--requests" => a.requests = num(value()?)?,
            "--warmup" => a.warmup = num(value()?)?,
            "--conc" => a.conc = num(value()?)?.clamp(1, 256) as usize,
            "--tokens" => a.tokens = num(value()?)?.clamp(1, 100_000) as u32,
            "--prompt-bytes" => a.prompt_bytes = Some(num(value()?)?.clamp(1, 1 << 20) as usize),
            "--drover-bin" => a.drover_bins.push(PathBuf::from(value()?)),
            "--proxy-cmd" => a.proxy_cmds.push(value()?),
            "--no-nginx" => a.nginx = false,
            "--keep" => a.keep = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.requests == 0 {
        return Err("--requests must be at least 1".into());
    }
    if a.drover_bins.is_empty() && a.proxy_cmds.is_empty() {
        a.drover_bins.push(PathBuf::from("target/release/drover"));
    }
    Ok(a)
}

fn main() {
    let args = gateway::args_or_exit("instr_bench", HELP, parse_args());
    let dir = std::env::temp_dir().join(format!("drover-instr-bench-{}", std::process::id()));
    let result = fs::create_dir_all(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
        .and_then(|()| run(&args, &dir));
    let _ = fs::remove_dir_all(&dir);
    if let Err(e) = result {
        eprintln!("instr_bench: {e}");
        std::process::exit(1);
    }
}

/// A proxy to measure: its name in the report and how to start it.
enum Proxy {
    Nginx(PathBuf),
    Drover(PathBuf),
    Cmd(String),
}

impl Proxy {
    fn name(&self) -> String {
        match self {
            Proxy::Nginx(_) => "nginx".into(),
            Proxy::Drover(bin) => format!("drover ({})", bin.display()),
            Proxy::Cmd(cmd) => cmd.split_whitespace().next().unwrap_or("?").to_owned(),
        }
    }

    /// The command line (after valgrind's own arguments), with its config
    /// written to `dir`.
    fn command(
        &self,
        listen: SocketAddr,
        upstreams: &[SocketAddr],
        dir: &Path,
    ) -> io::Result<Vec<String>> {
        match self {
            Proxy::Nginx(bin) => {
                // One process: the work of a worker, counted in the process
                // callgrind watches.
                let conf = nginx::config(listen, upstreams, "1", dir)
                    .replace("master_process on;", "master_process off;");
                let path = dir.join("nginx.conf");
                fs::write(&path, conf)?;
                Ok(vec![
                    bin.display().to_string(),
                    "-p".into(),
                    dir.display().to_string(),
                    "-c".into(),
                    path.display().to_string(),
                ])
            }
            Proxy::Drover(bin) => {
                let nodes = gateway::nodes_json(upstreams, MODEL);
                let nodes_path = dir.join("nodes.json");
                fs::write(&nodes_path, serde_json::to_vec_pretty(&nodes)?)?;
                let config = dir.join("drover.toml");
                fs::write(
                    &config,
                    format!(
                        "listen = \"{listen}\"\nnodes_path = \"{}\"\n",
                        nodes_path.display()
                    ),
                )?;
                Ok(vec![
                    bin.display().to_string(),
                    "serve".into(),
                    "--config".into(),
                    config.display().to_string(),
                ])
            }
            Proxy::Cmd(cmd) => {
                let urls: Vec<String> = upstreams.iter().map(|u| format!("http://{u}")).collect();
                Ok(cmd
                    .split_whitespace()
                    .map(|w| {
                        w.replace("{listen}", &listen.to_string())
                            .replace("{upstreams}", &urls.join(","))
                    })
                    .collect())
            }
        }
    }
}

fn run(args: &Args, dir: &Path) -> Result<(), String> {
    for tool in ["valgrind", "callgrind_control"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(format!("{tool} not found: apt-get install -y valgrind"));
        }
    }
    let behaviour = Behaviour {
        tokens: args.tokens,
        ..Behaviour::default()
    };
    let mut upstreams = Vec::new();
    for i in 0..2 {
        let spec = FakeSpec {
            behaviour,
            seed: i,
            ..FakeSpec::new(NodeKind::OpenAiCompat, &[MODEL])
        };
        upstreams.push(
            FakeServer::start_on(spec, SocketAddr::from(([127, 0, 0, 1], 0)), 1)
                .map_err(|e| format!("fake upstream: {e}"))?,
        );
    }
    let up: Vec<SocketAddr> = upstreams.iter().map(FakeServer::addr).collect();

    let mut proxies = Vec::new();
    if args.nginx {
        match nginx::find() {
            Some(bin) => proxies.push(Proxy::Nginx(bin)),
            None => eprintln!("nginx not found (apt-get install -y nginx): drover only"),
        }
    }
    for bin in &args.drover_bins {
        if !bin.is_file() {
            return Err(format!(
                "{}: no such binary (cargo build --release -p drover)",
                bin.display()
            ));
        }
        proxies.push(Proxy::Drover(bin.clone()));
    }
    proxies.extend(args.proxy_cmds.iter().cloned().map(Proxy::Cmd));

    println!(
        "{} counted requests per cell after {} uncounted, {} connections, {} tokens per stream\n",
        args.requests, args.warmup, args.conc, args.tokens
    );
    println!("| body | proxy | instructions per request | ÷ first |");
    println!("|---|---|---:|---:|");
    let prompt = match args.prompt_bytes {
        Some(n) => {
            // Text with the escapes real prompts carry (quotes, newlines).
            let mut p = "A \"quoted\" line of a long conversation.\n".repeat(n / 40 + 1);
            p.truncate(n);
            p
        }
        None => "Say hello to the bench.".to_owned(),
    };
    println!("request prompt: {} bytes\n", prompt.len());
    for (mode, stream) in [("chat", false), ("stream", true)] {
        let body = serde_json::to_vec(&serde_json::json!({
            "model": MODEL, "stream": stream,
            "messages": [{ "role": "user", "content": prompt }],
        }))
        .map_err(|e| e.to_string())?;
        let mut first = None;
        for (i, proxy) in proxies.iter().enumerate() {
            let cell = dir.join(format!("{mode}-{i}"));
            fs::create_dir_all(&cell).map_err(|e| e.to_string())?;
            let total = measure(args, proxy, &up, &cell, &body, stream)
                .map_err(|e| format!("{mode} through {}: {e}", proxy.name()))?;
            if let Some(keep) = &args.keep {
                fs::create_dir_all(keep).map_err(|e| format!("{}: {e}", keep.display()))?;
                let to = keep.join(format!("callgrind.{mode}.{i}.out"));
                fs::copy(cell.join("callgrind.out"), &to)
                    .map_err(|e| format!("{}: {e}", to.display()))?;
            }
            let per = total as f64 / args.requests as f64;
            let ratio = *first.get_or_insert(per);
            println!(
                "| {mode} | {} | {per:.0} | {:.2}× |",
                proxy.name(),
                per / ratio
            );
        }
    }
    Ok(())
}

/// Runs one cell and returns the instructions counted over the measured
/// requests.
fn measure(
    args: &Args,
    proxy: &Proxy,
    upstreams: &[SocketAddr],
    dir: &Path,
    body: &[u8],
    stream: bool,
) -> Result<u64, String> {
    let listen = SocketAddr::from((
        [127, 0, 0, 1],
        procinfo::free_port().map_err(|e| e.to_string())?,
    ));
    let cmd = proxy
        .command(listen, upstreams, dir)
        .map_err(|e| e.to_string())?;
    let out = dir.join("callgrind.out");
    let log = fs::File::create(dir.join("proxy.log")).map_err(|e| e.to_string())?;
    let child = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--instr-atstart=no")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .args(&cmd)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("valgrind: {e}"))?;
    let mut proc = Proc { child };
    let log_tail = || {
        let text = fs::read_to_string(dir.join("proxy.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    procinfo::wait_listening(listen, Duration::from_secs(60))
        .map_err(|e| format!("{e}\n{}", log_tail()))?;
    let spec = |n: u64| LoadSpec {
        addrs: vec![listen],
        path: PATH.to_owned(),
        body: body.to_vec(),
        expect_done: stream,
        concurrency: args.conc,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(600),
        max_requests: Some(n),
    };
    let check = |r: &loadgen::LoadResult, n: u64| {
        if r.errors > 0 || r.requests != n {
            Err(format!(
                "{} of {n} requests answered, {} errors (first: {})\n{}",
                r.requests,
                r.errors,
                r.first_error.as_deref().unwrap_or("none"),
                log_tail()
            ))
        } else {
            Ok(())
        }
    };
    if args.warmup > 0 {
        check(&loadgen::run(&spec(args.warmup)), args.warmup)?;
    }
    control(proc.child.id(), "on")?;
    let r = loadgen::run(&spec(args.requests));
    control(proc.child.id(), "off")?;
    check(&r, args.requests)?;
    proc.stop()?;
    let text = fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    totals(&text).ok_or_else(|| format!("{}: no totals line", out.display()))
}

/// `callgrind_control -i on|off PID`.
fn control(pid: u32, on_off: &str) -> Result<(), String> {
    let status = Command::new("callgrind_control")
        .args(["-i", on_off, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("callgrind_control -i {on_off} {pid}: {status}"))
    }
}

/// The instruction count of a callgrind output file: its `totals:` line
/// (or `summary:`, which older versions write).
fn totals(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The proxy under valgrind: stopped with SIGTERM (both drover and nginx
/// then exit, and callgrind writes its file), killed if that takes over a
/// minute, and killed on drop.
struct Proc {
    child: Child,
}

impl Proc {
    fn stop(&mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(e.to_string()),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err("the proxy did not exit within 60 s of SIGTERM".into())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::totals;

    #[test]
    fn totals_are_read_from_either_line() {
        assert_eq!(
            totals("events: Ir\nfn=x\n1 5\ntotals: 12345\n"),
            Some(12345)
        );
        assert_eq!(totals("events: Ir\nsummary: 77\n"), Some(77));
        assert_eq!(totals("events: Ir Dr\ntotals: 9 3\n"), Some(9));
        assert_eq!(totals("events: Ir\n"), None);
        assert_eq!(totals("totals: many\n"), None);
    }
}
