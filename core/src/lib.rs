//! drover-core: the sans-IO decision core of drover.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod admission;
pub mod time;

pub use time::{Duration, Instant};
