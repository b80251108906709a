//! The floor under drover's request path: a bare proxy on the same
//! transports (drover's per-worker reactor, hyper 1 server, pooled hyper 1
//! client) that does nothing drover does on top: no JSON, no routing, no
//! metrics, no failover.
//!
//! ```text
//! cargo build --release -p drover-benches --bin hyper_floor
//! target/release/hyper_floor --listen 127.0.0.1:8090 --upstreams 127.0.0.1:11434
//! ```
//!
//! Each request's body is read whole and sent with the same method, path
//! and `Content-Type` to the next upstream in turn; the upstream's status,
//! `Content-Type` and body come back, the body frame by frame as it arrives
//! (so streams stay streams). An upstream that cannot be reached gives a
//! 502. `DROVER_THREADS` sets the workers, as for `drover serve`.
//!
//! `gateway_bench --drover-cmd` and `instr_bench --proxy-cmd` run it beside
//! nginx and drover: how far drover is from this floor is what drover's own
//! code costs, and how far this floor is from nginx is what the transports
//! cost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use drover_benches::gateway;
use drover_transports::smol::{
    Client, ClientConfig, Runtime, Server, ServerConfig, Shutdown, read_capped,
};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

const HELP: &str = "hyper_floor: a bare proxy on drover's transports (the floor under drover)

USAGE: hyper_floor --listen ADDR --upstreams ADDR[,ADDR...]

  --listen ADDR      address to listen on
  --upstreams LIST   upstream addresses (or http:// base URLs),
                     comma-separated, used in turn
  -h, --help         this text

DROVER_THREADS sets the worker threads (default: one per CPU).";

/// Request bodies over this are refused with 413, as drover's default cap.
const MAX_BODY: usize = 4 << 20;

#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    upstreams: Vec<SocketAddr>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let (mut listen, mut upstreams) = (None, Vec::new());
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--listen" => {
                let v = value()?;
                listen = Some(v.parse().map_err(|e| format!("--listen `{v}`: {e}"))?);
            }
            "--upstreams" => {
                for a in value()?.split(',') {
                    let addr = a.strip_prefix("http://").unwrap_or(a).trim_end_matches('/');
                    upstreams.push(
                        addr.parse()
                            .map_err(|e| format!("--upstreams `{a}`: {e}"))?,
                    );
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    if upstreams.is_empty() {
        return Err("--upstreams is required".into());
    }
    Ok(Args { listen, upstreams })
}

fn threads() -> Result<usize, String> {
    match std::env::var("DROVER_THREADS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=256).contains(n))
            .ok_or_else(|| format!("DROVER_THREADS: `{v}` is not a thread count from 1 to 256")),
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, usize::from)),
    }
}

type Body = Either<Full<Bytes>, drover_transports::smol::PooledBody>;

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Either::Left(Full::new(Bytes::from_static(text.as_bytes()))));
    *r.status_mut() = status;
    r
}

async fn proxy(client: Client, up: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let Ok(body) = read_capped(body, MAX_BODY).await else {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body unreadable or too large\n",
        );
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = Request::builder()
        .method(parts.method)
        .uri(path)
        .header(HOST, HeaderValue::from_static("upstream"));
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        builder = builder.header(CONTENT_TYPE, ct.clone());
    }
    let Ok(upstream_req) = builder.body(Full::new(body)) else {
        return plain(StatusCode::BAD_REQUEST, "bad request\n");
    };
    match client.send(up, upstream_req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let mut out = Response::new(Either::Right(body));
            *out.status_mut() = parts.status;
            if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
                out.headers_mut().insert(CONTENT_TYPE, ct.clone());
            }
            out
        }
        Err(_) => plain(StatusCode::BAD_GATEWAY, "upstream unreachable\n"),
    }
}

fn main() {
    let args = gateway::args_or_exit("hyper_floor", HELP, parse_args(std::env::args().skip(1)));
    if let Err(e) = run(&args) {
        eprintln!("hyper_floor: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let rt = Runtime::new(threads()?).map_err(|e| format!("runtime: {e}"))?;
    let client = Client::new(
        ClientConfig {
            max_idle_per_host: 256,
            ..ClientConfig::default()
        },
        &rt,
    );
    let server = Server::bind(args.listen, ServerConfig::default())
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let upstreams: Arc<[SocketAddr]> = args.upstreams.clone().into();
    let next = Arc::new(AtomicUsize::new(0));
    let handler = move |req: Request<Incoming>, _conn| {
        let up = upstreams[next.fetch_add(1, Ordering::Relaxed) % upstreams.len()];
        proxy(client.clone(), up, req)
    };
    eprintln!("hyper_floor: listening on {}", server.local_addr());
    let serving = rt.spawn(server.run(&rt, handler, Shutdown::new()));
    rt.block_on(serving).map_err(|e| format!("server: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse_args(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn arguments_are_checked() {
        let a = args("--listen 127.0.0.1:1 --upstreams 127.0.0.1:2,127.0.0.1:3").expect("valid");
        assert_eq!(a.listen, SocketAddr::from(([127, 0, 0, 1], 1)));
        assert_eq!(a.upstreams.len(), 2);
        let a = args("--listen 127.0.0.1:1 --upstreams http://127.0.0.1:2/").expect("a base URL");
        assert_eq!(a.upstreams, [SocketAddr::from(([127, 0, 0, 1], 2))]);
        assert!(
            args("--upstreams 127.0.0.1:2")
                .unwrap_err()
                .contains("--listen")
        );
        assert!(
            args("--listen 127.0.0.1:1")
                .unwrap_err()
                .contains("--upstreams")
        );
        assert!(
            args("--listen nope --upstreams 127.0.0.1:2")
                .unwrap_err()
                .contains("nope")
        );
        assert!(
            args("--listen 127.0.0.1:1 --upstreams x")
                .unwrap_err()
                .contains("`x`")
        );
        assert!(args("--bogus").unwrap_err().contains("--bogus"));
        assert!(args("--listen").unwrap_err().contains("needs a value"));
    }
}
