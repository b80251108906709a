//! drover-core: the sans-IO decision core of drover.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod breaker;
pub mod ewma;
pub mod health;
pub mod histogram;
pub mod overload;
pub mod time;
pub mod trace;

pub use time::{Duration, Instant};
