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
