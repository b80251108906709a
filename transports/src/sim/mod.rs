//! A deterministic in-memory simulator: drover-core's router driving
//! simulated model servers on virtual time.
//!
//! - [`Clock`]: virtual time and an event queue ordered by (time, sequence).
//! - [`SimNode`]: a simulated server: slots and a FIFO queue, a prefill and
//!   decode model with seeded jitter, a 5xx rate, 429 overload and a crash
//!   window.
//! - [`WorkloadSpec`] / [`Arrival`]: the calls to run (seeded Poisson
//!   traffic, or any list); [`Workload`]: calls with their prompts' block
//!   hashes.
//! - [`BurstySpec`], [`SessionSpec`] ([`generators`]): bursty (MMPP)
//!   traffic and multi-turn sessions with shared prompt prefixes.
//! - [`read_trace`] ([`trace`]): real traces (Azure CSV, Mooncake JSON
//!   lines) as a [`Workload`].
//! - [`Driver`]: the sans-IO loop that runs them through a
//!   [`SimRouter`] and produces a [`Report`].
//!
//! # Time and randomness
//!
//! No wall clock is read: the clock jumps from event to event, so a run of
//! hours takes milliseconds. One `u64` seed decides everything: the router's
//! choices, every node's jitter and faults ([`seed::derive()`] gives each its
//! own stream) and, through [`WorkloadSpec::generate`], the traffic. Equal
//! seeds and inputs give equal reports, byte for byte.
//!
//! # Example
//!
//! ```
//! use drover_core::config::RouterConfig;
//! use drover_core::Instant;
//! use drover_transports::sim::{Driver, SimNode, WorkloadSpec};
//!
//! let nodes = vec![
//!     SimNode::new("gpu", 8).decode(80.0),
//!     SimNode::new("cpu", 2).decode(15.0),
//!     // Down from 20 s to 40 s: the router fails over and stops sending it calls.
//!     SimNode::new("flaky", 4).crash(Instant::from_secs(20), Instant::from_secs(40)),
//! ];
//! let mut driver = Driver::new(RouterConfig::default(), nodes, 7)?;
//! let workload = WorkloadSpec::default().calls(300).rate(5.0).generate(7)?;
//! let report = driver.run(&workload);
//! assert_eq!(report.calls, 300);
//! assert_eq!(report.lost, 0);
//! println!("{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod civil;
mod clock;
mod driver;
pub mod generators;
mod node;
mod report;
pub mod seed;
pub mod trace;
mod workload;

pub use clock::Clock;
pub use driver::{Driver, MAX_NODES, SimError, SimRouter};
pub use generators::{BurstySpec, SessionSpec};
pub use node::{BadNode, CrashWindow, OverloadModel, SimNode};
pub use report::{NodeReport, Report, percentile, show};
pub use trace::{
    TraceError, TraceFormat, TraceOptions, UnknownFormat, read_azure, read_mooncake, read_trace,
};
pub use workload::{ArenaFull, Arrival, BadWorkload, Blocks, OpMix, Workload, WorkloadSpec};

#[cfg(test)]
mod tests;
