//! The gateway bench: fast fake OpenAI upstreams on 127.0.0.1, called
//! directly, through nginx and (when given) through drover, for
//! non-streamed and streamed (SSE) chat at each concurrency, in one run.
//!
//! ```text
//! cargo run --release -p drover-benches --bin gateway_bench -- --help
//! ```
//!
//! See `benches/gateway/README.md`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover::fake::{Behaviour, FakeServer, FakeSpec};
use drover_benches::gateway::loadgen::{self, LoadResult, LoadSpec};
use drover_benches::gateway::nginx::{self, Nginx};
use drover_benches::gateway::{self, procinfo};
use drover_core::node::NodeKind;

const HELP: &str = "gateway_bench: direct vs nginx vs drover over fast fake upstreams

USAGE: gateway_bench [OPTIONS]

  --secs S              measured seconds per cell (default 5)
  --warmup-ms MS        unrecorded warm-up per cell (default 300)
  --conc LIST           concurrencies, comma-separated (default 1,16)
  --upstreams N         fake OpenAI upstreams, one thread each (default 2)
  --upstream-port P     first upstream port (default: free ports), so an
                        external drover can be configured for them
  --tokens N            tokens per reply (default 8)
  --nginx-workers W     nginx worker_processes (default auto)
  --no-nginx            skip nginx
  --drover-url URL      an already running drover gateway (http://host:port)
  --drover-cmd CMD      start drover with `sh -c 'exec CMD'`; CMD may use
                        {listen} (address to listen on), {nodes} (a nodes.json
                        in the seed schema for the upstreams), {upstreams}
                        (comma-separated base URLs) and {dir} (scratch dir)
  --floor-cmd CMD       also start another proxy (a floor such as
                        `target/release/hyper_floor --listen {listen}
                        --upstreams {upstreams}`), measured as target `floor`
                        in the same interleaved cells; same placeholders
  --drover-bin PATH     binary whose stripped size is reported
                        (default target/release/drover)
  -h, --help            this text";

#[derive(Debug)]
struct Args {
    secs: f64,
    warmup_ms: u64,
    conc: Vec<usize>,
    upstreams: usize,
    upstream_port: Option<u16>,
    tokens: u32,
    nginx_workers: String,
    nginx: bool,
    drover_url: Option<String>,
    drover_cmd: Option<String>,
    floor_cmd: Option<String>,
    drover_bin: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        secs: 5.0,
        warmup_ms: 300,
        conc: vec![1, 16],
        upstreams: 2,
        upstream_port: None,
        tokens: 8,
        nginx_workers: "auto".into(),
        nginx: true,
        drover_url: None,
        drover_cmd: None,
        floor_cmd: None,
        drover_bin: PathBuf::from("target/release/drover"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--secs" => a.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--warmup-ms" => a.warmup_ms = num(value()?)?,
            "--conc" => {
                a.conc = value()?
                    .split(',')
                    .map(|c| c.trim().parse().map_err(|e| format!("--conc: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--upstreams" => a.upstreams = num(value()?)?.clamp(1, 64) as usize,
            "--upstream-port" => {
                a.upstream_port = Some(value()?.parse().map_err(|e| format!("{flag}: {e}"))?);
            }
            "--tokens" => a.tokens = num(value()?)?.clamp(1, 100_000) as u32,
            "--nginx-workers" => a.nginx_workers = value()?,
            "--no-nginx" => a.nginx = false,
            "--drover-url" => a.drover_url = Some(value()?),
            "--drover-cmd" => a.drover_cmd = Some(value()?),
            "--floor-cmd" => a.floor_cmd = Some(value()?),
            "--drover-bin" => a.drover_bin = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !(0.1..=60.0).contains(&a.secs) {
        return Err("--secs must be within 0.1..=60".into());
    }
    Ok(a)
}

/// `http://127.0.0.1:8080/` -> 127.0.0.1:8080.
fn url_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    hostport
        .parse()
        .map_err(|e| format!("{url}: {e} (give an IP address and a port)"))
}

/// A drover started by the harness, stopped on drop.
struct Drover {
    child: Child,
    addr: SocketAddr,
}

impl Drover {
    fn start(cmd: &str, upstreams: &[SocketAddr], dir: &Path) -> io::Result<Drover> {
        let addr = SocketAddr::from(([127, 0, 0, 1], procinfo::free_port()?));
        let nodes = gateway::nodes_json(upstreams, MODEL);
        let nodes_path = dir.join("nodes.json");
        std::fs::write(&nodes_path, serde_json::to_vec_pretty(&nodes)?)?;
        let urls: Vec<String> = upstreams.iter().map(|u| format!("http://{u}")).collect();
        let cmd = cmd
            .replace("{listen}", &addr.to_string())
            .replace("{nodes}", &nodes_path.display().to_string())
            .replace("{upstreams}", &urls.join(","))
            .replace("{dir}", &dir.display().to_string());
        let log = std::fs::File::create(dir.join("drover.log"))?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut d = Drover { child, addr };
        if let Err(e) = procinfo::wait_listening(addr, Duration::from_secs(10)) {
            d.stop();
            let log = std::fs::read_to_string(dir.join("drover.log")).unwrap_or_default();
            return Err(io::Error::new(
                e.kind(),
                format!("drover did not start: {e}\n{log}"),
            ));
        }
        Ok(d)
    }

    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Drover {
    fn drop(&mut self) {
        self.stop();
    }
}

const MODEL: &str = "fake-small";
const PATH: &str = "/v1/chat/completions";

struct Target {
    name: &'static str,
    addrs: Vec<SocketAddr>,
    /// The process (with its children) whose CPU time a cell is charged,
    /// when known: nginx's master, or a drover this harness started.
    pid: Option<u32>,
}

struct Row {
    mode: &'static str,
    conc: usize,
    target: &'static str,
    result: LoadResult,
    /// The proxy's CPU time per request over the cell (warm-up included
    /// in both), in microseconds.
    cpu_us_per_req: Option<f64>,
}

fn main() {
    let args = gateway::args_or_exit("gateway_bench", HELP, parse_args());
    if let Err(e) = run(&args) {
        eprintln!("gateway_bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("drover-gateway-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(args: &Args, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let behaviour = Behaviour {
        tokens: args.tokens,
        ..Behaviour::default()
    };
    let mut upstreams = Vec::new();
    for i in 0..args.upstreams {
        let port = args.upstream_port.map_or(0, |p| p + i as u16);
        let spec = FakeSpec {
            behaviour,
            seed: i as u64,
            ..FakeSpec::new(NodeKind::OpenAiCompat, &[MODEL])
        };
        upstreams.push(FakeServer::start_on(
            spec,
            SocketAddr::from(([127, 0, 0, 1], port)),
            1,
        )?);
    }
    let up_addrs: Vec<SocketAddr> = upstreams.iter().map(FakeServer::addr).collect();
    println!(
        "upstreams (fake OpenAI, {} tokens, no delay): {:?}",
        args.tokens, up_addrs
    );

    let mut targets = vec![Target {
        name: "direct",
        addrs: up_addrs.clone(),
        pid: None,
    }];
    let mut notes = Vec::new();
    let _nginx = match (args.nginx, nginx::find()) {
        (false, _) => None,
        (true, None) => {
            notes.push("nginx not found: apt-get install -y nginx".to_owned());
            None
        }
        (true, Some(bin)) => {
            let n = Nginx::start(&bin, &up_addrs, &args.nginx_workers, dir)?;
            std::thread::sleep(Duration::from_millis(300));
            let rss = procinfo::rss_tree_kib(n.pid())?;
            notes.push(format!(
                "nginx idle RSS (master + workers, worker_processes {}): {rss} KiB",
                args.nginx_workers
            ));
            targets.push(Target {
                name: "nginx",
                addrs: vec![n.addr()],
                pid: Some(n.pid()),
            });
            Some(n)
        }
    };
    // Starts a proxy command as target `name`, noting its idle RSS.
    let start = |name: &'static str,
                 cmd: &str,
                 dir: &Path,
                 notes: &mut Vec<String>,
                 targets: &mut Vec<Target>|
     -> io::Result<Drover> {
        std::fs::create_dir_all(dir)?;
        let d = Drover::start(cmd, &up_addrs, dir)?;
        std::thread::sleep(Duration::from_secs(1));
        notes.push(format!(
            "{name} idle RSS: {} KiB",
            procinfo::rss_kib(d.child.id())?
        ));
        targets.push(Target {
            name,
            addrs: vec![d.addr],
            pid: Some(d.child.id()),
        });
        Ok(d)
    };
    let _drover = if let Some(cmd) = &args.drover_cmd {
        Some(start("drover", cmd, dir, &mut notes, &mut targets)?)
    } else if let Some(url) = &args.drover_url {
        targets.push(Target {
            name: "drover",
            addrs: vec![url_addr(url)?],
            pid: None,
        });
        notes.push("drover idle RSS: not measured (--drover-url; use --drover-cmd)".to_owned());
        None
    } else {
        notes.push("drover: not measured (give --drover-cmd or --drover-url)".to_owned());
        None
    };
    let _floor = match &args.floor_cmd {
        Some(cmd) => Some(start(
            "floor",
            cmd,
            &dir.join("floor"),
            &mut notes,
            &mut targets,
        )?),
        None => None,
    };
    match procinfo::stripped_size(&args.drover_bin, dir) {
        Ok((size, stripped)) => notes.push(format!(
            "{}: {size} bytes, stripped {stripped} bytes ({:.2} MiB)",
            args.drover_bin.display(),
            stripped as f64 / f64::from(1 << 20)
        )),
        Err(e) => notes.push(format!(
            "{}: no size ({e}; cargo build --release -p drover)",
            args.drover_bin.display()
        )),
    }

    let mut rows = Vec::new();
    for (mode, stream) in [("chat", false), ("stream", true)] {
        let body = serde_json::to_vec(&serde_json::json!({
            "model": MODEL, "stream": stream,
            "messages": [{ "role": "user", "content": "Say hello to the bench." }],
        }))?;
        for &conc in &args.conc {
            for t in &targets {
                let spec = LoadSpec {
                    addrs: t.addrs.clone(),
                    path: PATH.to_owned(),
                    body: body.clone(),
                    expect_done: stream,
                    concurrency: conc,
                    warmup: Duration::from_millis(args.warmup_ms),
                    duration: Duration::from_secs_f64(args.secs),
                    max_requests: None,
                };
                let cpu_before = t.pid.and_then(|p| procinfo::cpu_tree_us(p).ok());
                let result = loadgen::run(&spec);
                let cpu_us_per_req = match (t.pid, cpu_before) {
                    (Some(p), Some(before)) => procinfo::cpu_tree_us(p).ok().map(|after| {
                        // The warm-up's requests are not counted; its CPU
                        // is: scale the count by the whole span.
                        let span = args.secs + args.warmup_ms as f64 / 1000.0;
                        (after - before) as f64 / (result.rps() * span).max(1.0)
                    }),
                    _ => None,
                };
                eprintln!(
                    "{mode:>6} c={conc:<3} {:<7} {:>9.0} req/s  p50 {:>7.1} µs  p99 {:>8.1} µs  errors {}",
                    t.name,
                    result.rps(),
                    result.quantile_us(0.5),
                    result.quantile_us(0.99),
                    result.errors
                );
                rows.push(Row {
                    mode,
                    conc,
                    target: t.name,
                    result,
                    cpu_us_per_req,
                });
            }
        }
    }
    print_report(&rows, &notes);
    Ok(())
}

fn find<'a>(rows: &'a [Row], mode: &str, conc: usize, target: &str) -> Option<&'a LoadResult> {
    rows.iter()
        .find(|r| r.mode == mode && r.conc == conc && r.target == target)
        .map(|r| &r.result)
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b.abs() > 1e-9 {
        format!("{:.2}×", a / b)
    } else {
        "–".to_owned()
    }
}

fn print_report(rows: &[Row], notes: &[String]) {
    println!();
    println!(
        "| body | conc | target | req/s | p50 µs | p99 µs | added p50 µs | req/s ÷ direct | req/s ÷ nginx | added p50 ÷ nginx | proxy CPU µs/req | CPU ÷ nginx | errors |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let res = &r.result;
        let p50 = res.quantile_us(0.5);
        let direct = find(rows, r.mode, r.conc, "direct");
        let nginx = find(rows, r.mode, r.conc, "nginx");
        let added = direct.map_or(f64::NAN, |d| p50 - d.quantile_us(0.5));
        let nginx_added = match (nginx, direct) {
            (Some(n), Some(d)) => n.quantile_us(0.5) - d.quantile_us(0.5),
            _ => f64::NAN,
        };
        let (vs_direct, vs_nginx, added_vs_nginx) = if r.target == "direct" {
            ("1.00×".to_owned(), "–".to_owned(), "–".to_owned())
        } else {
            (
                ratio(res.rps(), direct.map_or(f64::NAN, LoadResult::rps)),
                ratio(res.rps(), nginx.map_or(f64::NAN, LoadResult::rps)),
                ratio(added, nginx_added),
            )
        };
        let nginx_cpu = rows
            .iter()
            .find(|n| n.mode == r.mode && n.conc == r.conc && n.target == "nginx")
            .and_then(|n| n.cpu_us_per_req);
        let (cpu, cpu_vs_nginx) = match r.cpu_us_per_req {
            Some(c) => (
                format!("{c:.1}"),
                if r.target == "nginx" {
                    "1.00×".to_owned()
                } else {
                    ratio(c, nginx_cpu.unwrap_or(f64::NAN))
                },
            ),
            None => ("–".to_owned(), "–".to_owned()),
        };
        let added = if r.target == "direct" {
            "–".to_owned()
        } else {
            format!("{added:.1}")
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {added} | {vs_direct} | {vs_nginx} | {added_vs_nginx} | {cpu} | {cpu_vs_nginx} | {} |",
            r.mode,
            r.conc,
            r.target,
            res.rps(),
            p50,
            res.quantile_us(0.99),
            res.errors
        );
    }
    for r in rows {
        if let Some(e) = &r.result.first_error {
            println!("first error, {} c={} {}: {e}", r.mode, r.conc, r.target);
        }
    }
    println!();
    for n in notes {
        println!("- {n}");
    }
}
