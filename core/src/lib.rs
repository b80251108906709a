//! drover-core: the sans-IO decision core of drover.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
pub mod reason;
pub mod route;
pub mod router;
#[cfg(feature = "std")]
pub mod shared;
#[cfg(feature = "std")]
mod sync;
pub mod time;
pub mod trace;

pub use time::{Duration, Instant};
