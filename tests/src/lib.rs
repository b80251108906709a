//! drover-tests: the operation-sequence harness of `drover-core`.
//!
//! One harness serves two front ends: the property tests in `tests/` (proptest)
//! and the cargo-fuzz target `fuzz/fuzz_targets/core_ops.rs` (libFuzzer). Both
//! describe a run as a [`Setup`](ops::Setup) (a `Router<8, 32, 8>` with four to
//! six nodes) followed by a sequence of [`Op`](ops::Op)s: start a call, poll
//! it, deliver an attempt event, advance virtual time, send a heartbeat, change
//! a node's mode, handle a timeout, take a wakeup, preview a route.
//!
//! The [`Harness`](ops::Harness) plays a thin driver: it executes every `Send`
//! and `Cancel` it is given, tracks which attempts it believes are live, and
//! after every operation checks the router's invariants against that belief,
//! panicking with a message that names the broken rule. At the end of a run
//! it cancels every call still open and checks that nothing leaked.
//!
//! Time is virtual and monotonic; the router's randomness is seeded from the
//! setup, so a run is fully determined by its input bytes.
//!
//! ```
//! use drover_tests::ops::{EventKind, Harness, Op, OpKind, StartCall, decode, run};
//!
//! // Any bytes are a valid run (this is what the fuzz target does).
//! run(&[0x11, 0x22, 0x33, 0x00, 0x05, 0x01, 0x07]);
//!
//! // Or by hand: start a streamed call, deliver its first byte and completion.
//! let (setup, _) = decode(&[]);
//! let mut h = Harness::new(setup);
//! h.apply(&Op::Start(StartCall::plain(OpKind::Stream)));
//! for event in [EventKind::FirstByte, EventKind::Completed] {
//!     h.apply(&Op::Deliver { call: 0, attempt: 0, event });
//! }
//! assert_eq!(h.stats().succeeded, 1);
//! h.settle();
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ops;
