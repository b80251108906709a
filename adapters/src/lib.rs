//! The `drover` command and the pieces it is made of.
//!
//! For now the command has one subcommand, `drover demo`, which runs the
//! router against a simulated swarm (see [`demo`]) so that a newcomer can see
//! it route, fail over and report without any model server:
//!
//! ```text
//! cargo run --release -p drover -- demo
//! cargo run --release -p drover -- demo --policy all --calls 2000
//! ```
//!
//! [`cli`] parses the command line; [`demo`] builds the swarm and the
//! workload, runs [`drover_transports::sim`] once per policy and renders the
//! reports.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod demo;
