//! drover-transports: the drivers that execute the actions of
//! [`drover_core`]'s router.
//!
//! The core decides; a transport does what it is told. Each driver is a thin
//! loop: it starts calls, sends each attempt where [`Action::Send`] says,
//! aborts what [`Action::Cancel`] says, reports what happened as
//! [`Event`]s, and comes back when [`Action::Wait`] asks it to.
//!
//! # Features
//!
//! - `sim`: [`sim`], a deterministic in-memory simulator. Simulated model
//!   servers with slots, queueing, a TTFT and decode-speed model, seeded
//!   jitter, prefix caches and heartbeats; scheduled or rate-drawn faults
//!   (crash, hang, stale heartbeat, slow-down, overload, corrupted reply,
//!   flapping); one or several gateways; invariants checked on every run;
//!   all on a virtual clock. One `u64` seed determines every number in its
//!   [`sim::Report`].
//! - `smol`: [`smol`](mod@smol), HTTP/1 on smol and hyper 1: a multi-threaded
//!   [`Runtime`](smol::Runtime), a [`Server`](smol::Server) with header
//!   timeouts and limits (`408`, `431`), keep-alive, connection tracking and
//!   graceful shutdown, and an upstream [`Client`](smol::Client) with
//!   per-address keep-alive pools, a connect timeout and a body size cap.
//!   It knows no API formats; the `drover` crate's gateway builds on it.
//! - `blocking`: [`blocking`], a synchronous driver on ureq 3 for programs
//!   without an async runtime: one attempt at a time on the calling thread,
//!   per-request timeouts, no threads of its own, streams as iterators. The
//!   protocol comes from the caller (`drover::sync` supplies it).
//!
//! No feature is on by default, so a crate that needs only one driver pulls
//! in no other driver's dependencies. Test a feature's driver with it on:
//! `cargo test -p drover-transports --features sim` (a workspace-wide
//! `cargo test` turns `sim` on through the `drover` binary;
//! `cargo test -p drover-transports --features smol` for the HTTP driver).
//!
//! [`Action::Send`]: drover_core::call::Action::Send
//! [`Action::Cancel`]: drover_core::call::Action::Cancel
//! [`Action::Wait`]: drover_core::call::Action::Wait
//! [`Event`]: drover_core::call::Event
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "blocking")]
pub mod blocking;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "smol")]
pub mod smol;
