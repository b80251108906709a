//! Plain value types of admission: operation classes, priorities, limits and
//! the reasons a call is refused.

use core::fmt;

/// An operation class. Every call belongs to exactly one class pool and also
/// takes one unit of the global pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Pool {
    /// Non-streaming chat or completion calls.
    Chat,
    /// Streaming chat or completion calls (long-lived, hold a unit until the stream ends).
    Stream,
    /// Embedding calls.
    Embed,
    /// Background work (batch jobs, warm-ups, agent tasks).
    Background,
}

impl Pool {
    /// Every pool, in declaration order (the order of [`Pool::index`]).
    pub const ALL: [Pool; 4] = [Pool::Chat, Pool::Stream, Pool::Embed, Pool::Background];

    /// Dense index `0..4`, for per-pool arrays.
    pub const fn index(self) -> usize {
        match self {
            Pool::Chat => 0,
            Pool::Stream => 1,
            Pool::Embed => 2,
            Pool::Background => 3,
        }
    }

    /// Lower-case name, as used in logs, metrics labels and config.
    pub const fn as_str(self) -> &'static str {
        match self {
            Pool::Chat => "chat",
            Pool::Stream => "stream",
            Pool::Embed => "embed",
            Pool::Background => "background",
        }
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgently a call wants a permit. Interactive calls are served before
/// background calls; within one priority, the oldest waiting call goes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Priority {
    /// A person (or a latency-sensitive program) is waiting for the answer.
    Interactive,
    /// Work that can wait: served only when no interactive call fits.
    Background,
}

impl Priority {
    /// Every priority, highest first (the order in which the queue is served).
    pub const ALL: [Priority; 2] = [Priority::Interactive, Priority::Background];

    /// Dense index, `0` for the highest priority.
    pub const fn index(self) -> usize {
        match self {
            Priority::Interactive => 0,
            Priority::Background => 1,
        }
    }

    /// Lower-case name, as used in logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Interactive => "interactive",
            Priority::Background => "background",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Concurrency limits: how many permits may be outstanding at once, in total
/// and per operation class.
///
/// A class limit may be zero (the class is disabled: its calls can only wait
/// in the queue until the limit is raised or their deadline passes). Class
/// limits need not sum to `global`; the global pool is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "camelCase", default))]
pub struct PoolLimits {
    /// Permits outstanding across all classes. At least 1.
    pub global: u32,
    /// Permits outstanding for [`Pool::Chat`]. At most `global`.
    pub chat: u32,
    /// Permits outstanding for [`Pool::Stream`]. At most `global`.
    pub stream: u32,
    /// Permits outstanding for [`Pool::Embed`]. At most `global`.
    pub embed: u32,
    /// Permits outstanding for [`Pool::Background`]. At most `global`.
    pub background: u32,
}

impl Default for PoolLimits {
    /// 64 in total; chat, stream and embed may each use all of it, background
    /// work at most 16 so it can never crowd out interactive classes.
    fn default() -> Self {
        PoolLimits {
            global: 64,
            chat: 64,
            stream: 64,
            embed: 64,
            background: 16,
        }
    }
}

impl PoolLimits {
    /// The same limit for the global pool and every class pool.
    pub const fn uniform(limit: u32) -> Self {
        PoolLimits {
            global: limit,
            chat: limit,
            stream: limit,
            embed: limit,
            background: limit,
        }
    }

    /// The limit of one class pool.
    pub const fn get(&self, pool: Pool) -> u32 {
        match pool {
            Pool::Chat => self.chat,
            Pool::Stream => self.stream,
            Pool::Embed => self.embed,
            Pool::Background => self.background,
        }
    }

    /// Set the limit of one class pool (not validated until [`PoolLimits::validate`]).
    pub const fn set(&mut self, pool: Pool, limit: u32) {
        match pool {
            Pool::Chat => self.chat = limit,
            Pool::Stream => self.stream = limit,
            Pool::Embed => self.embed = limit,
            Pool::Background => self.background = limit,
        }
    }

    /// Check that `global >= 1` and that no class limit exceeds `global`.
    /// Reports the first problem found (global first, then classes in
    /// [`Pool::ALL`] order).
    pub const fn validate(&self) -> Result<(), LimitsError> {
        if self.global == 0 {
            return Err(LimitsError::ZeroGlobal);
        }
        let mut i = 0;
        while i < Pool::ALL.len() {
            let pool = Pool::ALL[i];
            let limit = self.get(pool);
            if limit > self.global {
                return Err(LimitsError::PoolExceedsGlobal {
                    pool,
                    limit,
                    global: self.global,
                });
            }
            i += 1;
        }
        Ok(())
    }
}

/// Why a [`PoolLimits`] was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitsError {
    /// `global` is zero: no call could ever run.
    ZeroGlobal,
    /// A class limit is larger than the global limit.
    PoolExceedsGlobal {
        /// The offending class.
        pool: Pool,
        /// Its configured limit.
        limit: u32,
        /// The global limit it exceeds.
        global: u32,
    },
    /// `global` is larger than the permit slab of the
    /// [`Admission`](super::Admission) (its `C` parameter).
    GlobalExceedsCapacity {
        /// The configured global limit.
        global: u32,
        /// The number of permit slots.
        capacity: usize,
    },
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LimitsError::ZeroGlobal => f.write_str("the global pool limit must be at least 1"),
            LimitsError::PoolExceedsGlobal {
                pool,
                limit,
                global,
            } => write!(
                f,
                "the {pool} pool limit ({limit}) exceeds the global pool limit ({global})"
            ),
            LimitsError::GlobalExceedsCapacity { global, capacity } => write!(
                f,
                "the global pool limit ({global}) exceeds the permit capacity ({capacity})"
            ),
        }
    }
}

impl core::error::Error for LimitsError {}

/// Why admission did not let a call start.
///
/// These are admission's own reasons; the router adds node-related reasons
/// (all nodes saturated, no eligible node, …) in its own type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The global pool has no free unit (every unit is in use or reserved for
    /// an equal-or-higher-priority call already waiting in the same class).
    BusyGlobalPool,
    /// The class pool has no free unit (in use, or reserved for an
    /// equal-or-higher-priority call already waiting in that class).
    BusyPool(Pool),
    /// The wait queue has no free slot.
    QueueFull,
    /// The call's wait deadline passed before a permit was granted.
    QueueWaitExpired,
}

impl Refusal {
    /// A stable snake_case code for logs and metric labels (the pool of
    /// [`Refusal::BusyPool`] is not included; label it separately).
    pub const fn code(&self) -> &'static str {
        match self {
            Refusal::BusyGlobalPool => "busy_global_pool",
            Refusal::BusyPool(_) => "busy_pool",
            Refusal::QueueFull => "queue_full",
            Refusal::QueueWaitExpired => "queue_wait_expired",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BusyGlobalPool => f.write_str("the global concurrency pool is full"),
            Refusal::BusyPool(pool) => write!(f, "the {pool} concurrency pool is full"),
            Refusal::QueueFull => f.write_str("the admission queue is full"),
            Refusal::QueueWaitExpired => {
                f.write_str("the call waited in the admission queue past its deadline")
            }
        }
    }
}

impl core::error::Error for Refusal {}

/// Why releasing a permit failed. A failed release changes no counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The id was never issued by this admission (index out of range, or a
    /// generation that slot has not reached).
    UnknownPermit,
    /// The permit was issued but has already been released (double release,
    /// or a stale id whose slot has since been reused).
    AlreadyReleased,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseError::UnknownPermit => {
                f.write_str("the permit was not issued by this admission")
            }
            ReleaseError::AlreadyReleased => f.write_str("the permit has already been released"),
        }
    }
}

impl core::error::Error for ReleaseError {}
