//! The `drover` command and the pieces it is made of.
//!
//! `drover demo` runs the router against a simulated swarm (see [`demo`])
//! so that a newcomer can see it route, fail over and report without any
//! model server; `drover replay` (see [`replay`]) replays a recorded trace
//! against a swarm described by a scenario file:
//!
//! ```text
//! cargo run --release -p drover -- demo
//! cargo run --release -p drover -- demo --policy all --calls 2000
//! ```
//!
//! [`cli`] parses the command line; [`demo`] builds the swarm and the
//! workload, runs [`drover_transports::sim`] once per policy and renders the
//! reports; [`replay`] holds the scenario files, `report.json`, the SVG
//! plots and the progress bar of `drover replay`; [`config`] reads and
//! checks the gateway's config file (`drover check FILE`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod demo;
pub mod fake;
pub mod ops;
pub mod replay;
pub mod serve;
pub mod wire;
