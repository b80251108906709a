//! drover-core: the sans-IO decision core of drover.
//!
//! drover routes LLM inference calls (chat, streamed chat, embeddings) across
//! a swarm of model servers. This crate makes every routing decision and does
//! nothing else: it never reads a clock, opens a socket, spawns a task or
//! allocates on the routing path. Time comes in as a value (`now`),
//! randomness from a generator seeded by the caller, and every effect goes out
//! as a returned value. The same inputs give the same decisions, byte for byte,
//! in a gateway, a test or a simulation.
//!
//! # The pieces
//!
//! | noun | module | decides |
//! |---|---|---|
//! | [`Router`] | [`router`] | owns everything below and drives calls |
//! | [`Call`](call::Call) | [`call`] | one request's attempts, failover, TTFT fast-fail, hedging, outcome |
//! | [`NodeTable`](node::NodeTable) | [`node`] | which nodes exist, their spec, mode and learned state |
//! | [`PeakEwma`](ewma::PeakEwma) | [`ewma`] | latency and TTFT estimates with time decay |
//! | [`Breaker`](breaker::Breaker) | [`breaker`] | closed / open / half-open after consecutive failures |
//! | [`Overload`](overload::Overload) | [`overload`] | cooldown after 429/503 and Retry-After |
//! | [`Health`](health::Health) | [`health`] | heartbeat freshness: passive, fresh, stale, lost |
//! | [`Admission`](admission::Admission) | [`admission`] | pools, permits, the bounded priority queue |
//! | [`Probe`](probe::Probe) | [`probe`] | when each node gets a health or inventory probe |
//! | route | [`route`] | hard filters, affinity, policies, the failover list |
//! | [`Metrics`](metrics::Metrics), [`TraceRing`](trace::TraceRing) | [`metrics`], [`trace`] | counters, histograms, decision events |
//! | [`Snapshot`](snapshot::Snapshot) | [`snapshot`] | learned state across restarts |
//!
//! # The run loop
//!
//! A driver (an HTTP gateway, a blocking client, a simulator) starts a call,
//! then alternates between [`Router::poll`], which says what to do, and
//! [`Router::handle`], which reports what happened:
//!
//! ```
//! use drover_core::call::{Action, Event, Outcome, Request};
//! use drover_core::node::{NodeKind, NodeSpec};
//! use drover_core::route::{Op, Query};
//! use drover_core::trace::TraceId;
//! use drover_core::{Duration, Instant, Router, RouterConfig};
//!
//! // 16 nodes, 1024 admitted calls, 256 queued calls; seed 42.
//! let mut router: Router<16> = Router::new(RouterConfig::default(), 42).unwrap();
//! router.add_node(NodeSpec::new("gpu-box", NodeKind::Ollama).unwrap()).unwrap();
//! router.add_node(NodeSpec::new("cpu-box", NodeKind::OpenAiCompat).unwrap()).unwrap();
//!
//! // The caller owns the clock: here, a virtual one.
//! let mut now = Instant::from_secs(1);
//! let mut call = router.start(Request::new(TraceId(1), Query::new(Op::Stream)), now);
//! let mut failed_once = false;
//! let outcome = loop {
//!     match router.poll(&mut call, now) {
//!         Action::Send { attempt, node, .. } => {
//!             // A real driver sends the HTTP request here. Pretend the first
//!             // node refuses the connection and the second one answers.
//!             now = now + Duration::from_millis(3);
//!             let event = if !failed_once {
//!                 failed_once = true;
//!                 Event::Failed(attempt, drover_core::reason::Failure::Connect)
//!             } else {
//!                 let _ = router.handle(&mut call, Event::FirstByte(attempt), now);
//!                 Event::Completed(attempt)
//!             };
//!             let _ = router.handle(&mut call, event, now);
//!             let _ = node;
//!         }
//!         Action::Cancel { .. } => {} // abort that attempt's request
//!         Action::Wait { until } => now = until.unwrap_or(now), // sleep, or wait for an event
//!         Action::Finish(outcome) => break outcome,
//!         Action::Done => unreachable!("Finish comes first"),
//!     }
//! };
//! assert!(matches!(outcome, Outcome::Succeeded { attempts: 2, .. }));
//! assert_eq!(router.metrics().failovers, 1);
//! assert_eq!(router.attempts_in_flight(), 0);
//! ```
//!
//! Queued calls are woken through [`Router::poll_wakeup`]; a driver with many
//! queued calls should also call [`Router::handle_timeout`] at
//! [`Router::poll_timeout`] so expired waits are noticed promptly.
//!
//! # Time
//!
//! [`Instant`] is nanoseconds since an epoch the caller picks; only
//! differences matter. Arithmetic saturates, and a `now` earlier than a
//! previous one is treated as no time passing, never as a panic. Every
//! duration the router uses (timeouts, cooldowns, decay constants) is in
//! [`RouterConfig`].
//!
//! # Capacity and cost
//!
//! `Router<N, C, Q>` holds at most `N` nodes, `C` admitted calls and `Q`
//! queued calls, all in fixed storage; exceeding one is a reported error or a
//! rejection with a reason, never an allocation. A route costs one scan of the
//! `N` node slots plus a few score evaluations; see [`route`].
//!
//! # Panics and errors
//!
//! A panic is a bug. The crate has no `unwrap` outside tests; every `expect`
//! states why it cannot fail. Operations that can fail return small
//! `#[non_exhaustive]` error enums ([`ConfigError`](config::ConfigError),
//! [`NodeError`](node::NodeError), [`CatalogError`](catalog::CatalogError),
//! [`SnapshotError`](snapshot::SnapshotError)), and refusals carry a
//! [`Reject`](reason::Reject) reason.
//!
//! # Features
//!
//! - default: nothing; `no_std`, no allocation.
//! - `alloc`: conveniences that return vectors (snapshot bytes).
//! - `std`: the thread-safe wrapper (implies `alloc`).
//! - `serde`: serde on config and snapshot types, postcard snapshot encoding.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::field_reassign_with_default))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod admission;
pub mod breaker;
pub mod call;
pub mod catalog;
pub mod config;
pub mod ewma;
pub mod health;
pub mod histogram;
pub mod metrics;
pub mod node;
pub mod overload;
pub mod probe;
pub mod reason;
pub mod route;
pub mod router;
#[cfg(feature = "std")]
pub mod shared;
pub mod snapshot;
#[cfg(feature = "std")]
mod sync;
pub mod time;
pub mod trace;

pub use config::RouterConfig;
pub use router::Router;
pub use time::{Duration, Instant};
