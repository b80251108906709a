//! The `drover` command and the pieces it is made of.
//!
//! `drover serve` (see [`serve`]) is the gateway: one endpoint that speaks
//! the OpenAI API (`/v1/*`) and the Ollama API (`/api/*`) in front of a
//! swarm of model servers, routing every call through `drover-core`'s
//! router, failing over before the first token, and answering operators on
//! `/status`, `/metrics`, `/nodes`, `/route/preview` and `/trace/{id}`.
//! `drover serve --demo` runs it against three simulated model servers
//! started in the same process, so it needs no model server:
//!
//! ```text
//! cargo run --release -p drover -- serve --demo
//! cargo run --release -p drover -- check configs/drover.example.toml
//! ```
//!
//! `drover demo` runs the router against a simulated swarm on a virtual
//! clock (see [`demo`]); `drover replay` (see [`replay`]) replays a recorded
//! trace against a swarm described by a scenario file.
//!
//! - [`cli`] parses the command line.
//! - [`serve`] is the gateway: the call driver, upstream attempts, streamed
//!   bodies, authentication, operator endpoints and the state file, on the
//!   HTTP driver of `drover_transports::smol` (hyper 1 on smol).
//! - [`sync`] is a synchronous client (no async runtime) that routes chat,
//!   streamed chat and embedding calls with the same config and core as the
//!   gateway, on `drover_transports::blocking` (ureq).
//! - [`wire`] is the OpenAI and Ollama formats, pure: request decoding,
//!   translation between the two, incremental SSE and NDJSON parsers, error
//!   bodies.
//! - [`config`] reads and checks the gateway's config file, the `DROVER_*`
//!   overrides and the node URL policy (`drover check FILE`).
//! - [`ops`] renders the operator surfaces (Prometheus text, status, nodes,
//!   route preview, traces) and holds the gateway's counters.
//! - [`discover`] probes hosts for model servers and writes a nodes file
//!   (`drover discover`).
//! - [`fake`] is fake model servers (Ollama and OpenAI-compatible, real
//!   HTTP on 127.0.0.1) for `serve --demo`, the tests and the benches.
//! - [`demo`] builds the simulated swarm and workload of `drover demo` and
//!   renders its reports; [`replay`] holds the scenario files,
//!   `report.json`, the SVG plots and the progress bar of `drover replay`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod cli;
pub mod config;
pub mod demo;
pub mod discover;
pub mod fake;
pub mod ops;
pub mod replay;
pub mod serve;
pub mod sync;
pub mod wire;
