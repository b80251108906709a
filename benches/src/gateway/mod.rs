//! The gateway bench harness (`cargo run --release -p drover-benches --bin
//! gateway_bench`): fast fake upstreams, nginx in front of them, drover in
//! front of them, and a load generator measuring each the same way in the
//! same run. See `benches/gateway/README.md`.
//!
//! - [`loadgen`]: the closed-loop HTTP/1.1 load generator (p50/p99, req/s).
//! - [`nginx`]: writes an nginx.conf (`least_conn`, upstream keep-alive,
//!   `proxy_buffering off`) and runs nginx as a child process.
//! - [`procinfo`]: idle RSS of a process from `/proc/PID/status`, stripped
//!   binary size, free ports, waiting for a listener.

pub mod loadgen;
pub mod nginx;
pub mod procinfo;

use std::net::SocketAddr;

/// The nodes file (the seed schema of `nodes_path`) for fake OpenAI
/// upstreams that serve `model`: `fake-0`, `fake-1`, ... at `upstreams`.
pub fn nodes_json(upstreams: &[SocketAddr], model: &str) -> serde_json::Value {
    upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| {
            serde_json::json!({
                "name": format!("fake-{i}"), "kind": "openai_compat",
                "baseUrl": format!("http://{u}"), "maxConcurrency": 1024, "weight": 1,
                "models": [model],
            })
        })
        .collect()
}

/// A bench binary's parsed arguments, or the process ends: an empty error
/// (`-h`/`--help`) prints `help` and exits 0, any other prints it after the
/// error and exits 2.
pub fn args_or_exit<A>(name: &str, help: &str, parsed: Result<A, String>) -> A {
    match parsed {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{help}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{name}: {e}\n\n{help}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::nodes_json;

    #[test]
    fn nodes_json_lists_one_node_per_upstream_in_the_seed_schema() {
        let ups = [
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
        ];
        let v = nodes_json(&ups, "m");
        let nodes = v.as_array().expect("a list");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1]["name"], "fake-1");
        assert_eq!(nodes[1]["baseUrl"], "http://127.0.0.1:2");
        assert_eq!(nodes[0]["kind"], "openai_compat");
        assert_eq!(nodes[0]["models"][0], "m");
    }
}
