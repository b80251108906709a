//! The synchronisation types the std wrapper uses, swapped for
//! [loom](https://docs.rs/loom)'s under `cfg(loom)` so the model checker can
//! explore every interleaving (the pattern of tokio's `src/loom/`).
//!
//! Only [`shared`](crate::shared) uses this module; the rest of the core is
//! single-threaded and takes `&mut self`.

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// Locks `m`, recovering the guard if a previous holder panicked. See
/// "Lock poisoning" in [`shared`](crate::shared) for why that is sound.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a holder of `m` has ever panicked. loom's mutex never poisons.
pub(crate) fn is_poisoned<T: ?Sized>(m: &Mutex<T>) -> bool {
    #[cfg(loom)]
    {
        let _ = m;
        false
    }
    #[cfg(not(loom))]
    {
        m.is_poisoned()
    }
}
