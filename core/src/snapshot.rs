//! Learned state that survives a restart.
//!
//! A [`Snapshot`] holds, per node name, what the router learned and what the
//! operator set at run time: the three peak-EWMA estimates, the breaker
//! (remaining cooldown and growth), and the mode. Times are stored relative to
//! the `now` of [`Router::snapshot`], so a restore under a new epoch (a new
//! process, a simulation starting at zero) puts them back relative to its own
//! `now`. Nodes are matched by name; a snapshot of a node that no longer
//! exists is skipped and counted, never an error.
//!
//! With the `serde` feature, `Snapshot::encode` and `Snapshot::decode`
//! use postcard (compact, no allocation), and the first field is a format
//! version so an incompatible file is refused with a clear error rather than
//! misread.

use crate::breaker::{Breaker, BreakerLearned};
use crate::catalog::Name;
use crate::ewma::{EwmaLearned, PeakEwma};
use crate::node::Mode;
use crate::router::Router;
use crate::time::Instant;

/// The snapshot format version written by this crate.
pub const SNAPSHOT_VERSION: u16 = 1;

/// What was learned about one node.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NodeLearned {
    /// The node's name (the matching key).
    pub name: Name,
    /// Its mode at snapshot time.
    pub mode: Mode,
    /// Stream TTFT estimate.
    pub ttft: Option<EwmaLearned>,
    /// Chat latency estimate.
    pub chat_latency: Option<EwmaLearned>,
    /// Embedding latency estimate.
    pub embed_latency: Option<EwmaLearned>,
    /// Breaker state.
    pub breaker: BreakerLearned,
}

/// Learned state of up to `N` nodes. See the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Snapshot<const N: usize> {
    /// Format version ([`SNAPSHOT_VERSION`]).
    pub version: u16,
    /// One entry per node.
    pub nodes: heapless::Vec<NodeLearned, N>,
}

/// What a restore did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Nodes whose state was restored.
    pub matched: usize,
    /// Snapshot entries for names the router does not have.
    pub unknown: usize,
}

/// Why a snapshot could not be read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Written by an incompatible version of drover.
    Version {
        /// The version found.
        found: u16,
    },
    /// The bytes are not a valid snapshot (truncated or corrupted).
    Malformed,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl core::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SnapshotError::Version { found } => {
                write!(
                    f,
                    "snapshot format version {found} is not supported (expected {SNAPSHOT_VERSION})"
                )
            }
            SnapshotError::Malformed => f.write_str("snapshot is truncated or corrupted"),
            SnapshotError::BufferTooSmall => f.write_str("buffer too small for the snapshot"),
        }
    }
}

impl core::error::Error for SnapshotError {}

#[cfg(feature = "serde")]
impl<const N: usize> Snapshot<N> {
    /// Writes the snapshot into `buf` with postcard; returns the used prefix.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8], SnapshotError> {
        postcard::to_slice(self, buf).map_err(|e| match e {
            postcard::Error::SerializeBufferFull => SnapshotError::BufferTooSmall,
            _ => SnapshotError::Malformed,
        })
    }

    /// Encodes into a new vector.
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> Result<alloc::vec::Vec<u8>, SnapshotError> {
        postcard::to_allocvec(self).map_err(|_| SnapshotError::Malformed)
    }

    /// Reads a snapshot, refusing other format versions.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        // The version is the first field: read it alone first so that a
        // future format fails with a version error, not a parse error.
        let (found, _) =
            postcard::take_from_bytes::<u16>(bytes).map_err(|_| SnapshotError::Malformed)?;
        if found != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version { found });
        }
        postcard::from_bytes(bytes).map_err(|_| SnapshotError::Malformed)
    }
}

impl<const N: usize, const C: usize, const Q: usize> Router<N, C, Q> {
    /// What the router has learned, relative to `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot<N> {
        let mut nodes = heapless::Vec::new();
        for (_, n) in self.nodes.iter() {
            // At most N nodes exist, and the vector holds N.
            let _ = nodes.push(NodeLearned {
                name: n.spec.name.clone(),
                mode: n.mode,
                ttft: n.ttft.learned(now),
                chat_latency: n.chat_latency.learned(now),
                embed_latency: n.embed_latency.learned(now),
                breaker: n.breaker.learned(now),
            });
        }
        Snapshot {
            version: SNAPSHOT_VERSION,
            nodes,
        }
    }

    /// Puts learned state back onto the nodes with matching names. Call it
    /// after adding the nodes and before starting calls: an attempt in flight
    /// on a restored node would report to a replaced breaker.
    pub fn restore<const M: usize>(&mut self, snap: &Snapshot<M>, now: Instant) -> Restored {
        let mut done = Restored::default();
        let ewma = self.cfg.ewma;
        for l in &snap.nodes {
            let Some(id) = self.nodes.find(&l.name) else {
                done.unknown += 1;
                continue;
            };
            let Some(n) = self.nodes.get_mut(id) else {
                continue;
            };
            n.mode = l.mode;
            let restore = |x: Option<EwmaLearned>| {
                x.map_or(PeakEwma::new(), |x| PeakEwma::restore(x, now, &ewma))
            };
            n.ttft = restore(l.ttft);
            n.chat_latency = restore(l.chat_latency);
            n.embed_latency = restore(l.embed_latency);
            n.breaker = Breaker::restore(l.breaker, now);
            done.matched += 1;
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerState;
    use crate::config::RouterConfig;
    use crate::node::{NodeId, NodeKind, NodeSpec};
    use crate::time::Duration;

    type R = Router<4, 64, 4>;

    fn learned_router(t: Instant) -> R {
        let mut cfg = RouterConfig::default();
        cfg.breaker.failure_threshold = 1;
        let mut r = R::new(cfg, 1).unwrap();
        for n in ["a", "b"] {
            r.add_node(NodeSpec::new(n, NodeKind::Ollama).unwrap())
                .unwrap();
        }
        let ewma = r.cfg.ewma;
        let a = r.nodes.get_mut(NodeId(0)).unwrap();
        a.ttft.observe(Duration::from_millis(250), t, &ewma);
        a.mode = Mode::Drain;
        let b = r.nodes.get_mut(NodeId(1)).unwrap();
        let ticket = b.breaker.on_attempt_start(t);
        let _ = b
            .breaker
            .on_failure(ticket, t, &cfg.breaker, &mut fastrand::Rng::with_seed(1));
        r
    }

    #[test]
    fn restore_under_a_new_epoch_keeps_relative_state() {
        let t = Instant::from_secs(1_000);
        let old = learned_router(t);
        let snap = old.snapshot(t);
        let mut new = R::new(*old.config(), 2).unwrap();
        new.add_node(NodeSpec::new("b", NodeKind::Ollama).unwrap())
            .unwrap();
        new.add_node(NodeSpec::new("a", NodeKind::Ollama).unwrap())
            .unwrap();
        let t2 = Instant::from_secs(5);
        assert_eq!(
            new.restore(&snap, t2),
            Restored {
                matched: 2,
                unknown: 0
            }
        );
        let a = new.node(NodeId(1)).unwrap();
        assert_eq!(a.mode, Mode::Drain);
        let est = a.ttft.estimate_ns(t2, &new.cfg.ewma);
        assert!((est - 250e6).abs() < 1e3, "{est}");
        let b = new.node(NodeId(0)).unwrap();
        let (BreakerState::Open { until: was }, BreakerState::Open { until: now }) = (
            old.node(NodeId(1)).unwrap().breaker.state(t),
            b.breaker.state(t2),
        ) else {
            panic!("breaker should be open in both");
        };
        assert_eq!(was - t, now - t2, "remaining cooldown is preserved");
    }

    #[test]
    fn unknown_names_are_counted_not_fatal() {
        let t = Instant::from_secs(10);
        let snap = learned_router(t).snapshot(t);
        let mut other = R::new(RouterConfig::default(), 1).unwrap();
        other
            .add_node(NodeSpec::new("a", NodeKind::Ollama).unwrap())
            .unwrap();
        assert_eq!(
            other.restore(&snap, t),
            Restored {
                matched: 1,
                unknown: 1
            }
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn postcard_round_trip_and_errors() {
        let t = Instant::from_secs(10);
        let snap = learned_router(t).snapshot(t);
        let mut buf = [0u8; 1024];
        let bytes = snap.encode(&mut buf).unwrap().to_vec();
        assert_eq!(Snapshot::<4>::decode(&bytes).unwrap(), snap);
        assert_eq!(
            Snapshot::<4>::decode(&bytes[..bytes.len() / 2]),
            Err(SnapshotError::Malformed)
        );
        assert_eq!(Snapshot::<4>::decode(&[]), Err(SnapshotError::Malformed));
        let mut future = bytes.clone();
        future[0] = 9;
        assert_eq!(
            Snapshot::<4>::decode(&future),
            Err(SnapshotError::Version { found: 9 })
        );
        assert_eq!(
            snap.encode(&mut [0u8; 4]),
            Err(SnapshotError::BufferTooSmall)
        );
    }
}
