//! Issue 6, items 6, 8 and 10, the drills: the real `drover` binary on
//! loopback under wrk and slowhttptest, and stopped by SIGTERM with 50
//! streams in flight. Ignored by default (each runs a
//! minute or more and needs a built binary and the apt tools); run them
//! with `tests/drills/run.sh` (which builds the binary), or by hand:
//!
//! ```text
//! cargo build --profile prof -p drover        # or --release
//! apt-get install -y wrk slowhttptest
//! cargo test -p drover-tests --test hardening_drills -- --ignored --nocapture --test-threads 1
//! ```
//!
//! `DROVER_BIN` picks the binary (default `target/prof/drover`, else
//! `target/release/drover`); `SHED_SECS` (default 60), `SHED_P99_MS` (default
//! 25, the bound on the rejection p99) and `SLOW_SECS`
//! (default 30) the lengths. Everything listens on 127.0.0.1 and every
//! child process is killed when its test ends.

#[path = "support/harden.rs"]
mod harden;
mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover::fake::{Behaviour, FakeServer, FakeSpec};
use drover_core::node::NodeKind;
use harden::{CHAT, MODEL, quantile, rss_kib, timed};
use support::{get, ms, send};

fn secs_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn drover_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DROVER_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for profile in ["prof", "release"] {
        let p = root.join("target").join(profile).join("drover");
        if p.exists() {
            return p;
        }
    }
    panic!("no drover binary: `cargo build --profile prof -p drover`, or set DROVER_BIN");
}

fn tool(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .expect("sh runs");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "`{name}` is missing: apt-get install -y {name}"
    );
    PathBuf::from(path)
}

/// A free port on 127.0.0.1 (bound, then released).
fn free_addr() -> SocketAddr {
    support::dead_port()
}

/// A `drover serve` child process; killed on drop.
struct Drover {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Drover {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drover {
    /// Starts the binary with `toml` (which must not set `listen`) plus a
    /// node `a` at `upstream`, and waits until it answers.
    fn start(name: &str, toml: &str, upstream: SocketAddr, max_concurrency: u16) -> Drover {
        let addr = free_addr();
        let dir = std::env::temp_dir().join(format!("drover-drill-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch dir");
        let config = format!(
            "listen = \"{addr}\"\n{toml}\n[[nodes]]\nname = \"a\"\nkind = \"openai_compat\"\n\
             baseUrl = \"http://{upstream}\"\nmaxConcurrency = {max_concurrency}\nmodels = [\"{MODEL}\"]\n"
        );
        let path = dir.join("drover.toml");
        std::fs::write(&path, config).expect("write the config");
        let log = std::fs::File::create(dir.join("drover.log")).expect("a log file");
        let child = Command::new(drover_bin())
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .arg("--state")
            .arg(dir.join("state.json"))
            .env("DROVER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("drover starts");
        let d = Drover { child, addr, dir };
        let t0 = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "drover did not listen"
            );
            std::thread::sleep(ms(20));
        }
        d
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }
}

/// A gauge or counter line of `/metrics` (first match of `prefix`).
fn metric(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(prefix).and_then(|v| v.trim().parse().ok()))
}

/// Sum of `drover_http_responses_total` lines carrying `code="CODE"`.
fn responses(metrics: &str, code: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("drover_http_responses_total") && l.contains(&format!("code=\"{code}\""))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// `s` without ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn slow_fake(ttft: Duration) -> FakeServer {
    let mut spec = FakeSpec::new(NodeKind::OpenAiCompat, &[MODEL]);
    spec.behaviour = Behaviour::paced(ttft, ms(0), 4);
    FakeServer::start_on(spec, SocketAddr::from(([127, 0, 0, 1], 0)), 2)
        .expect("a fake server starts")
}

fn chat(addr: SocketAddr) -> (support::Reply, Duration) {
    timed(|| send(addr, "POST", "/v1/chat/completions", &[], CHAT.as_bytes()))
}

// ----------------------------------------------------------------- item 6

#[test]
#[ignore = "drill: 60 s of wrk against the release binary; see the file's doc"]
fn shed_at_3x_capacity_with_wrk() {
    let secs = secs_from_env("SHED_SECS", 60);
    const PERMITS: u32 = 16;
    // 16 permits, a node answering in 100 ms: about 160 calls/s. wrk holds
    // 48 connections, each waiting 100 ms between its calls: about 480
    // calls/s offered, 3x the capacity. (Without the pause a rejected
    // connection retries at once and the offered load is whatever the CPU
    // allows, tens of thousands a second.)
    let f = slow_fake(ms(100));
    let gw = Drover::start(
        "shed",
        &format!(
            "[timeouts]\nqueue_wait = \"0s\"\n[pools]\nglobal = {PERMITS}\nchat = {PERMITS}\nstream = {PERMITS}\nembed = {PERMITS}\n"
        ),
        f.addr(),
        64,
    );
    let lua = gw.dir.join("post.lua");
    std::fs::write(
        &lua,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{CHAT}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             function delay() return 100 end\n"
        ),
    )
    .unwrap();
    let wrk = Command::new(tool("wrk"))
        .args(["-t2", "-c48", &format!("-d{secs}s"), "--latency", "-s"])
        .arg(&lua)
        .arg(format!("http://{}/v1/chat/completions", gw.addr))
        .stdout(Stdio::piped())
        .spawn()
        .expect("wrk starts");

    // One probe call every 20 ms (rejection latency and Retry-After), and a
    // sample of RSS, queue and permits every second.
    let stop = Arc::new(AtomicBool::new(false));
    let rejections = Arc::new(Mutex::new(Vec::new()));
    let probe = {
        let (stop, rejections, addr) = (stop.clone(), rejections.clone(), gw.addr);
        std::thread::spawn(move || {
            let mut missing_retry_after = 0;
            while !stop.load(Ordering::Relaxed) {
                let (r, took) = chat(addr);
                if matches!(r.status, 429 | 503) {
                    if r.header("retry-after").is_none() {
                        missing_retry_after += 1;
                    }
                    rejections.lock().unwrap().push(took);
                } else {
                    assert_eq!(r.status, 200, "{}", r.text());
                }
                std::thread::sleep(ms(20));
            }
            missing_retry_after
        })
    };
    let mut rss = Vec::new();
    let (mut most_queue, mut most_permits, mut capacity) = (0f64, 0f64, 0f64);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        rss.push(rss_kib(gw.pid()).expect("drover runs"));
        let m = get(gw.addr, "/metrics").text();
        most_queue = most_queue.max(metric(&m, "drover_queue_depth ").unwrap_or(0.0));
        most_permits = most_permits.max(metric(&m, "drover_permits_outstanding ").unwrap_or(0.0));
        capacity = metric(&m, "drover_queue_capacity ").unwrap_or(0.0);
    }
    let out = wrk.wait_with_output().expect("wrk ends");
    stop.store(true, Ordering::Relaxed);
    let missing_retry_after = probe.join().expect("the probe");
    let wrk_out = String::from_utf8_lossy(&out.stdout);
    let m = get(gw.addr, "/metrics").text();
    let (ok, shed) = (
        responses(&m, "200"),
        responses(&m, "429") + responses(&m, "503"),
    );
    let other: f64 = ["400", "404", "413", "500", "502", "504"]
        .iter()
        .map(|c| responses(&m, c))
        .sum();
    let mut rej = rejections.lock().unwrap().clone();
    let (p50, p99, max) = (
        quantile(&mut rej, 0.5),
        quantile(&mut rej, 0.99),
        quantile(&mut rej, 1.0),
    );
    eprintln!("{wrk_out}");
    eprintln!(
        "{secs}s at 3x ({PERMITS} permits, 48 connections pausing 100 ms): {ok} ok, {shed} shed, {other} other; \
         probe rejections {} p50 {p50:?} p99 {p99:?} max {max:?}; most queued {most_queue} of {capacity}, \
         most permits {most_permits}; RSS KiB per second {rss:?}",
        rej.len()
    );
    assert_eq!(other, 0.0, "only 200, 429 and 503");
    assert!(shed > ok, "most of 3x load is shed");
    assert_eq!(missing_retry_after, 0, "every rejection has Retry-After");
    // The bound: SHED_P99_MS, default 25 ms. On a quiet machine the p99 is
    // a few ms; on the shared 2-core build box (load average above 4) it
    // was 11 ms with a p50 under 0.5 ms.
    let bound = ms(secs_from_env("SHED_P99_MS", 25));
    assert!(
        p99 < bound,
        "rejections are fast: p99 {p99:?} (bound {bound:?})"
    );
    assert!(most_permits <= f64::from(PERMITS));
    assert!(most_queue <= capacity);
    // Flat: the last third of the run is within 10% (+1 MiB) of the first
    // third after warm-up.
    let third = rss.len() / 3;
    let early = *rss[1..third.max(2)].iter().max().unwrap();
    let late = *rss[rss.len() - third..].iter().max().unwrap();
    assert!(
        late <= early + early / 10 + 1024,
        "RSS grew: {early} -> {late} KiB"
    );
}

#[test]
#[ignore = "drill: 30 s of wrk with 1200 connections against the drover binary; see the file's doc"]
fn the_queue_stays_within_its_bound_under_a_flood() {
    let secs = secs_from_env("SHED_SECS", 60) / 2;
    // 16 permits, a 100 ms node, a 5 s queue wait: 1200 connections fill
    // the queue (1024) and the rest are refused at once as queue_full.
    let f = slow_fake(ms(100));
    let gw = Drover::start(
        "queue",
        "[timeouts]\nqueue_wait = \"5s\"\n[pools]\nglobal = 16\nchat = 16\nstream = 16\nembed = 16\n",
        f.addr(),
        64,
    );
    let lua = gw.dir.join("post.lua");
    std::fs::write(
        &lua,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{CHAT}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             function delay() return 100 end\n"
        ),
    )
    .unwrap();
    let wrk = Command::new(tool("wrk"))
        .args([
            "-t2",
            "-c1200",
            &format!("-d{secs}s"),
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(&lua)
        .arg(format!("http://{}/v1/chat/completions", gw.addr))
        .stdout(Stdio::piped())
        .spawn()
        .expect("wrk starts");
    let mut rss = Vec::new();
    let mut depths = Vec::new();
    let (mut capacity, mut most_permits) = (0f64, 0f64);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        rss.push(rss_kib(gw.pid()).expect("drover runs"));
        let m = get(gw.addr, "/metrics").text();
        depths.push(metric(&m, "drover_queue_depth ").unwrap_or(0.0));
        most_permits = most_permits.max(metric(&m, "drover_permits_outstanding ").unwrap_or(0.0));
        capacity = metric(&m, "drover_queue_capacity ").unwrap_or(0.0);
    }
    let out = wrk.wait_with_output().expect("wrk ends");
    let m = get(gw.addr, "/metrics").text();
    let full = metric(&m, "drover_http_rejections_total{reason=\"queue_full\"} ").unwrap_or(0.0);
    let expired = metric(
        &m,
        "drover_http_rejections_total{reason=\"queue_wait_expired\"} ",
    )
    .unwrap_or(0.0);
    let ok = responses(&m, "200");
    let most = depths.iter().copied().fold(0.0, f64::max);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!(
        "{secs}s, 1200 connections, 16 permits, queue_wait 5s: {ok} ok, {full} queue_full, \
         {expired} queue_wait_expired; queue depth per second {depths:?} (capacity {capacity}); \
         most permits {most_permits}; RSS KiB per second {rss:?}"
    );
    assert!(
        capacity > 0.0 && most <= capacity,
        "the queue stays within its bound"
    );
    assert!(full > 0.0, "beyond the bound calls are refused at once");
    assert!(most_permits <= 16.0);
    let third = rss.len() / 3;
    let early = *rss[1..third.max(2)].iter().max().unwrap();
    let late = *rss[rss.len() - third..].iter().max().unwrap();
    assert!(
        late <= early + early / 10 + 1024,
        "RSS grew: {early} -> {late} KiB"
    );
}

// ----------------------------------------------------------------- item 8

/// Sequential normal calls for `d`: latencies and the count.
fn normal_traffic(addr: SocketAddr, d: Duration) -> Vec<Duration> {
    let t0 = Instant::now();
    let mut lat = Vec::new();
    while t0.elapsed() < d {
        let (r, took) = chat(addr);
        assert_eq!(r.status, 200, "{}", r.text());
        lat.push(took);
    }
    lat
}

/// Runs slowhttptest in `mode` (`-H` slow headers, `-B` slow body) with
/// `conns` connections for `secs` against `url`, measuring normal traffic
/// and sampling the router while it runs.
fn slow_clients(gw: &Drover, f: &FakeServer, mode: &str, conns: u32, secs: u64) {
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    let mut base = normal_traffic(gw.addr, Duration::from_secs(5));
    let base_calls = f.requests().calls;
    let mut slow = Command::new(tool("slowhttptest"))
        .args([
            mode,
            "-c",
            &conns.to_string(),
            "-r",
            "1000",
            "-i",
            "3",
            "-x",
            "10",
        ])
        .args([
            "-l",
            &secs.to_string(),
            "-p",
            "3",
            "-s",
            "8192",
            "-t",
            "POST",
            "-f",
            "application/json",
        ])
        .args(["-u", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("slowhttptest starts");
    // Let the connections open, then measure while they are held.
    std::thread::sleep(Duration::from_secs(5));
    let fds = gw.fds();
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, addr) = (sampler_stop.clone(), gw.addr);
        std::thread::spawn(move || {
            let (mut active, mut permits, mut attempts) = (0f64, 0f64, 0f64);
            while !stop.load(Ordering::Relaxed) {
                let m = get(addr, "/metrics").text();
                active = active.max(metric(&m, "drover_active_calls ").unwrap_or(0.0));
                permits = permits.max(metric(&m, "drover_permits_outstanding ").unwrap_or(0.0));
                attempts = attempts.max(metric(&m, "drover_attempts_in_flight ").unwrap_or(0.0));
                std::thread::sleep(ms(100));
            }
            (active, permits, attempts)
        })
    };
    let during_len = Duration::from_secs(secs.saturating_sub(10).max(5));
    let mut during = normal_traffic(gw.addr, during_len);
    sampler_stop.store(true, Ordering::Relaxed);
    let (active, permits, attempts) = sampler.join().expect("the sampler");
    let during_calls = during.len() as u64;
    let mut out = String::new();
    let _ = slow.kill();
    let _ = slow.wait();
    if let Some(mut o) = slow.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    let calls = f.requests().calls;
    let (b99, d99) = (quantile(&mut base, 0.99), quantile(&mut during, 0.99));
    let (b50, d50) = (quantile(&mut base, 0.5), quantile(&mut during, 0.5));
    // slowhttptest's last status block, without its colour codes.
    let plain = strip_ansi(&out);
    let status: Vec<&str> = plain
        .lines()
        .filter(|l| {
            ["pending:", "connected:", "closed:", "service available:"]
                .iter()
                .any(|k| l.trim_start().starts_with(k))
        })
        .collect();
    let summary = &status[status.len().saturating_sub(4)..];
    eprintln!(
        "slowhttptest {mode} {conns} connections: drover fds during {fds}; normal traffic p50/p99 \
         before {b50:?}/{b99:?}, during {d50:?}/{d99:?} ({} and {during_calls} calls); \
         most active calls {active}, permits {permits}, attempts {attempts}; upstream calls {calls}\n{}",
        base.len(),
        summary.join("\n")
    );
    assert!(
        fds > conns as usize / 2,
        "the slow connections were open: {fds} fds"
    );
    // The only calls that reached the router and the node were the
    // sequential normal ones: one at a time.
    assert!(
        active <= 1.0 && permits <= 1.0 && attempts <= 1.0,
        "a slow connection held a slot"
    );
    assert_eq!(
        calls,
        base_calls + during_calls,
        "only normal calls reached the node"
    );
    assert!(
        d99 < b99 * 5 + ms(20),
        "normal p99 barely moves: {b99:?} -> {d99:?}"
    );
}

#[test]
#[ignore = "drill: slowhttptest with thousands of connections; see the file's doc"]
fn slowloris_slow_headers_hold_no_upstream_slot() {
    let secs = secs_from_env("SLOW_SECS", 30);
    let f = slow_fake(ms(5));
    let gw = Drover::start("slowloris", "", f.addr(), 64);
    slow_clients(&gw, &f, "-H", 3000, secs);
}

#[test]
#[ignore = "drill: slowhttptest with thousands of connections; see the file's doc"]
fn slow_bodies_hold_no_upstream_slot() {
    let secs = secs_from_env("SLOW_SECS", 30);
    let f = slow_fake(ms(5));
    let gw = Drover::start("rudy", "", f.addr(), 64);
    slow_clients(&gw, &f, "-B", 3000, secs);
}

// ---------------------------------------------------------------- item 10

#[test]
#[ignore = "drill: needs the drover binary; see the file's doc"]
fn sigterm_lets_50_streams_finish_and_refuses_new_connections() {
    const STREAMS: usize = 50;
    let mut spec = FakeSpec::new(NodeKind::OpenAiCompat, &[MODEL]);
    spec.behaviour = Behaviour::paced(ms(0), ms(25), 40);
    let f = FakeServer::start_on(spec, SocketAddr::from(([127, 0, 0, 1], 0)), 2)
        .expect("a fake server starts");
    let mut gw = Drover::start(
        "drain",
        "[pools]\nglobal = 64\nchat = 64\nstream = 64\nembed = 64\n[timeouts]\nshutdown_grace = \"10s\"\n",
        f.addr(),
        64,
    );
    let addr = gw.addr;
    let started = Arc::new(std::sync::Barrier::new(STREAMS + 1));
    let body = support::chat_body(MODEL, Some(true)).to_string();
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (started, body) = (started.clone(), body.clone());
            std::thread::spawn(move || {
                let mut s = support::Streaming::open(
                    addr,
                    "POST",
                    "/v1/chat/completions",
                    &[],
                    body.as_bytes(),
                );
                assert_eq!(s.status, 200);
                let mut all = s.next_chunk().expect("a first chunk");
                started.wait();
                all.extend_from_slice(&s.rest());
                all
            })
        })
        .collect();
    started.wait();
    let t0 = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let mut refused = None;
    while t0.elapsed() < Duration::from_secs(2) {
        match TcpStream::connect_timeout(&addr, ms(200)) {
            Err(_) => {
                refused = Some(t0.elapsed());
                break;
            }
            Ok(_) => std::thread::sleep(ms(10)),
        }
    }
    let refused = refused.expect("new connections are refused after SIGTERM");
    for s in streams {
        let body = s.join().expect("a stream thread");
        let events = support::sse_events(&body);
        assert!(events.iter().all(|e| e.get("error").is_none()));
        assert_eq!(
            events
                .iter()
                .filter(|e| e["choices"][0]["finish_reason"].is_string())
                .count(),
            1
        );
    }
    let done = t0.elapsed();
    let exit = gw.child.wait().expect("drover exits");
    let exited = t0.elapsed();
    assert!(exit.success(), "drover exits 0 after draining: {exit:?}");
    assert_eq!(f.requests().cancelled, 0, "no stream was cut");
    eprintln!(
        "SIGTERM: new connections refused after {refused:?}; {STREAMS} streams intact by {done:?}; \
         exited 0 at {exited:?}"
    );
}
