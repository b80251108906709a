//! A deterministic in-memory simulator: drover-core's router driving
//! simulated model servers on virtual time.
//!
//! - [`Clock`]: virtual time and an event queue ordered by (time, sequence).
//! - [`SimNode`]: a simulated server: slots and a FIFO queue, a prefill and
//!   decode model with seeded jitter, a prefix cache ([`PrefixCache`], an
//!   exact LRU of prompt block hashes), heartbeats, a 5xx rate, 429 overload
//!   and a crash window.
//! - [`Fault`]: crash or hang, stale heartbeat, slow-down, overload,
//!   corrupted replies and flapping, at given times or drawn from rates
//!   ([`draw_faults`]).
//! - [`WorkloadSpec`] / [`Arrival`]: the calls to run (seeded Poisson
//!   traffic, or any list; a call may carry a session key);
//!   [`Workload`]: calls with their prompts' block hashes in one arena.
//! - [`BurstySpec`], [`SessionSpec`] ([`generators`]): bursty (MMPP)
//!   traffic and multi-turn sessions with shared prompt prefixes.
//! - [`read_trace`] ([`trace`]): real traces (Azure CSV, Mooncake JSON
//!   lines) as a [`Workload`].
//! - [`SimSetup`] / [`Driver`]: one or several independent gateways, each
//!   with its own [`SimRouter`], sharing the swarm and hearing its
//!   heartbeats after a per-gateway delay; the sans-IO loop that runs the
//!   calls through them and produces a [`Report`] (outcomes by reason,
//!   percentiles, prefix hit rate, per-node and per-gateway shares, and a
//!   [`TimeSeries`] of load and failures) plus per-call and per-attempt
//!   records ([`CallRecord`], [`AttemptRecord`]).
//! - Active probes: with [`RouterConfig::probe`](drover_core::config::RouterConfig)
//!   enabled, each router's [`Router::poll_probe`](drover_core::Router::poll_probe)
//!   is drained after every event that touches it, while calls run. A node
//!   that is up answers after a seeded 1 to 5 ms; a crashed one refuses
//!   (after the same delay); a hung one never answers and the router times
//!   the probe out. Inventory probes succeed without changing model lists
//!   (simulated nodes serve any model).
//! - [`check`]: the invariants checked on every run. A violation fails the
//!   run loudly, naming the seed and the call.
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
//!
//! Two gateways, heartbeats a second apart that reach the second gateway
//! 2 s late, and a node that stops heartbeating for a minute while it keeps
//! serving:
//!
//! ```
//! use drover_core::config::RouterConfig;
//! use drover_core::{Duration, Instant};
//! use drover_transports::sim::{Assign, Fault, FaultKind, SimNode, SimSetup, WorkloadSpec};
//!
//! let beat = Duration::from_secs(1);
//! let nodes = ["a", "b", "c"].map(|n| SimNode::new(n, 4).heartbeat(beat)).to_vec();
//! let quiet = Fault::new(2, FaultKind::StaleHeartbeat, Instant::from_secs(30))
//!     .until(Instant::from_secs(90));
//! let mut driver = SimSetup::new(RouterConfig::default(), nodes, 7)
//!     .gateways(2, Assign::RoundRobin)
//!     .heartbeat_delay(&[Duration::ZERO, Duration::from_secs(2)])
//!     .fault(quiet)
//!     .build()?;
//! let workload = WorkloadSpec::default().calls(300).rate(2.0).generate(7)?;
//! let report = driver.try_run(&workload)?;
//! assert_eq!(report.gateways.len(), 2);
//! // Per-node attempts per second, for plots.
//! let csv = report.series.csv();
//! assert!(csv.starts_with("t_s,started:a,started:b,started:c"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod check;
mod civil;
mod clock;
mod driver;
mod faults;
pub mod generators;
mod node;
mod prefix;
mod probes;
mod record;
mod report;
pub mod seed;
mod series;
mod setup;
mod state;
pub mod trace;
mod workload;
mod world;

pub use check::{Violation, ViolationKind};
pub use clock::Clock;
pub use driver::{Driver, MAX_NODES, SimRouter};
pub use faults::{BadFault, CrashMode, Fault, FaultKind, FaultRate, MAX_FLAP_CYCLES, draw_faults};
pub use generators::{BurstySpec, SessionSpec};
pub use node::{BadNode, CrashWindow, OverloadModel, PrefixCacheModel, SimNode};
pub use prefix::PrefixCache;
pub use record::{AttemptEnd, AttemptRecord, CallRecord};
pub use report::{GatewayReport, NodeReport, Report, percentile, show};
pub use series::{MAX_BUCKETS, TimeSeries};
pub use setup::{Assign, MAX_GATEWAYS, SimError, SimSetup};
pub use trace::{
    TraceError, TraceFormat, TraceOptions, UnknownFormat, read_azure, read_mooncake, read_trace,
};
pub use workload::{ArenaFull, Arrival, BadWorkload, Blocks, Calls, OpMix, Workload, WorkloadSpec};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;
#[cfg(test)]
mod tests_harden;
