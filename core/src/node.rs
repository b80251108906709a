//! The node table: which model servers exist, what they can do, and what the
//! router has learned about each.
//!
//! A [`NodeTable`] has a fixed capacity `N` (no allocation). Each entry pairs
//! the operator's [`NodeSpec`] (name, kind, weight, concurrency, capabilities,
//! tags, models and aliases, scope) with its [`Mode`] and the learned state the
//! router keeps for it: requests in flight, peak-EWMA estimates, the circuit
//! breaker, the overload cooldown and heartbeat telemetry.
//!
//! [`NodeId`]s are slot indexes. They are stable: adding or removing one node
//! never changes another node's id. A removed node's slot may be reused by a
//! later [`NodeTable::insert`], so drivers that keep ids across removals should
//! look nodes up by name again (names are unique within a table).

use core::fmt;

use crate::breaker::Breaker;
use crate::catalog::{ModelId, ModelSet, Name, ScopeId, Tags};
use crate::ewma::PeakEwma;
use crate::health::Health;
use crate::overload::Overload;

/// A node's slot in its [`NodeTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NodeId(pub u16);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// The wire protocol a node speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum NodeKind {
    /// Ollama's `/api/*`.
    #[default]
    Ollama,
    /// An OpenAI-compatible `/v1/*` server (vLLM, llama.cpp server, LM Studio, …).
    OpenAiCompat,
}

/// What a node can serve, as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Capabilities(pub u8);

impl Capabilities {
    /// Nothing.
    pub const NONE: Capabilities = Capabilities(0);
    /// Non-streamed chat or completion.
    pub const CHAT: Capabilities = Capabilities(1);
    /// Embeddings.
    pub const EMBED: Capabilities = Capabilities(2);
    /// Streamed chat.
    pub const STREAM: Capabilities = Capabilities(4);
    /// Image inputs.
    pub const VISION: Capabilities = Capabilities(8);
    /// Chat and streamed chat: the usual text model.
    pub const TEXT: Capabilities = Capabilities(1 | 4);
    /// Everything.
    pub const ALL: Capabilities = Capabilities(1 | 2 | 4 | 8);

    /// Union.
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }
    /// True when every capability in `needed` is present.
    pub const fn contains(self, needed: Capabilities) -> bool {
        self.0 & needed.0 == needed.0
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::TEXT.union(Capabilities::EMBED)
    }
}

/// Whether the router may use a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Mode {
    /// Used normally.
    #[default]
    Enabled,
    /// Used only when no enabled node is eligible; in-flight calls finish.
    Drain,
    /// Never used.
    Disabled,
}

/// Most model aliases one node can carry.
pub const MAX_ALIASES: usize = 8;

/// What the operator says about a node. Plain data; see [`NodeSpec::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Unique name (also the identity used by affinity hashing and snapshots).
    pub name: Name,
    /// Wire protocol.
    pub kind: NodeKind,
    /// Relative capacity, at least 1. The load score divides by it.
    pub weight: u16,
    /// Most attempts in flight at once on this node, at least 1.
    pub max_concurrency: u16,
    /// What it serves.
    pub capabilities: Capabilities,
    /// Operator tags (for soft or strict preferences).
    pub tags: Tags,
    /// Models it serves ([`ModelSet::ANY`] when unknown).
    pub models: ModelSet,
    /// Requested model → the name this node uses for it.
    pub aliases: heapless::Vec<(ModelId, ModelId), MAX_ALIASES>,
    /// The tenant it is reserved for; `None` serves every scope.
    pub scope: Option<ScopeId>,
    /// The operator fixed `models`: inventory probes skip this node and
    /// [`Router::set_models`](crate::Router::set_models) leaves it alone.
    pub pinned_models: bool,
}

/// Why a [`NodeSpec`] or a table operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    /// The name is empty or too long.
    BadName,
    /// `weight` is zero.
    ZeroWeight,
    /// `max_concurrency` is zero.
    ZeroConcurrency,
    /// A node with this name already exists.
    DuplicateName,
    /// The table is at capacity.
    TableFull,
    /// No node has this id.
    UnknownNode,
    /// More than [`MAX_ALIASES`] aliases.
    TooManyAliases,
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeError::BadName => "node name must be 1 to 64 bytes",
            NodeError::ZeroWeight => "node weight must be at least 1",
            NodeError::ZeroConcurrency => "node maxConcurrency must be at least 1",
            NodeError::DuplicateName => "a node with this name already exists",
            NodeError::TableFull => "the node table is full",
            NodeError::UnknownNode => "no such node",
            NodeError::TooManyAliases => "too many model aliases on one node (limit 8)",
        })
    }
}

impl core::error::Error for NodeError {}

impl NodeSpec {
    /// A node with defaults: weight 1, 4 concurrent attempts, text and embed
    /// capabilities, no tags, any model (not pinned), no scope.
    pub fn new(name: &str, kind: NodeKind) -> Result<Self, NodeError> {
        let name = Name::try_from(name).map_err(|_| NodeError::BadName)?;
        if name.is_empty() {
            return Err(NodeError::BadName);
        }
        Ok(NodeSpec {
            name,
            kind,
            weight: 1,
            max_concurrency: 4,
            capabilities: Capabilities::default(),
            tags: Tags::NONE,
            models: ModelSet::ANY,
            aliases: heapless::Vec::new(),
            scope: None,
            pinned_models: false,
        })
    }

    /// Checks the invariants [`NodeTable::insert`] relies on.
    pub fn validate(&self) -> Result<(), NodeError> {
        if self.name.is_empty() {
            return Err(NodeError::BadName);
        }
        if self.weight == 0 {
            return Err(NodeError::ZeroWeight);
        }
        if self.max_concurrency == 0 {
            return Err(NodeError::ZeroConcurrency);
        }
        Ok(())
    }

    /// Adds an alias: calls for `requested` are sent with `local` as the model.
    pub fn add_alias(&mut self, requested: ModelId, local: ModelId) -> Result<(), NodeError> {
        if let Some(slot) = self.aliases.iter_mut().find(|(r, _)| *r == requested) {
            slot.1 = local;
            return Ok(());
        }
        self.aliases
            .push((requested, local))
            .map_err(|_| NodeError::TooManyAliases)
    }

    /// The model to send upstream when `requested` is asked for, or `None`
    /// when this node does not serve it (directly or through an alias).
    pub fn resolve_model(&self, requested: ModelId) -> Option<ModelId> {
        if let Some((_, local)) = self.aliases.iter().find(|(r, _)| *r == requested) {
            return Some(*local);
        }
        self.models.contains(requested).then_some(requested)
    }

    /// True when this node names `requested` itself: in an explicit model
    /// list or as an alias. A node whose set is "any" lists nothing.
    pub fn lists_model(&self, requested: ModelId) -> bool {
        self.aliases.iter().any(|(r, _)| *r == requested)
            || (!self.models.is_any() && self.models.contains(requested))
    }

    /// A stable 64-bit identity derived from the name (FNV-1a), used by
    /// rendezvous hashing so that two routers agree without sharing state.
    pub fn name_hash(&self) -> u64 {
        fnv1a(self.name.as_bytes())
    }
}

/// FNV-1a over bytes.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One node's entry: its spec, mode and everything learned about it.
#[derive(Clone, Debug)]
pub struct Node {
    /// The operator's description.
    pub spec: NodeSpec,
    /// Enabled, drain or disabled.
    pub mode: Mode,
    /// Attempts currently in flight on this node.
    pub in_flight: u32,
    /// Slots held for queued calls that were granted and have not polled yet.
    pub reserved: u32,
    /// Time to first byte of streamed calls.
    pub ttft: PeakEwma,
    /// Latency of non-streamed chat calls.
    pub chat_latency: PeakEwma,
    /// Latency of embedding calls.
    pub embed_latency: PeakEwma,
    /// Consecutive-failure circuit breaker.
    pub breaker: Breaker,
    /// 429/503 cooldown.
    pub overload: Overload,
    /// Heartbeat telemetry.
    pub health: Health,
    /// Cached [`NodeSpec::name_hash`].
    pub(crate) name_hash: u64,
}

impl Node {
    fn new(spec: NodeSpec) -> Self {
        let name_hash = spec.name_hash();
        Node {
            spec,
            mode: Mode::Enabled,
            in_flight: 0,
            reserved: 0,
            ttft: PeakEwma::new(),
            chat_latency: PeakEwma::new(),
            embed_latency: PeakEwma::new(),
            breaker: Breaker::new(),
            overload: Overload::new(),
            health: Health::new(),
            name_hash,
        }
    }
    /// True when another attempt would exceed `max_concurrency`.
    pub fn is_saturated(&self) -> bool {
        self.in_flight + self.reserved >= u32::from(self.spec.max_concurrency)
    }
}

/// A fixed-capacity table of up to `N` nodes. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct NodeTable<const N: usize> {
    slots: heapless::Vec<Option<Node>, N>,
    len: usize,
}

impl<const N: usize> Default for NodeTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> NodeTable<N> {
    /// An empty table.
    pub const fn new() -> Self {
        NodeTable {
            slots: heapless::Vec::new(),
            len: 0,
        }
    }
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The fixed capacity `N`.
    pub const fn capacity(&self) -> usize {
        N
    }
    /// Adds a node, reusing the lowest free slot. Names must be unique.
    pub fn insert(&mut self, spec: NodeSpec) -> Result<NodeId, NodeError> {
        spec.validate()?;
        if self.find(&spec.name).is_some() {
            return Err(NodeError::DuplicateName);
        }
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            self.slots[i] = Some(Node::new(spec));
            self.len += 1;
            return Ok(NodeId(i as u16));
        }
        let i = self.slots.len();
        if i >= N || i > usize::from(u16::MAX) {
            return Err(NodeError::TableFull);
        }
        self.slots
            .push(Some(Node::new(spec)))
            .map_err(|_| NodeError::TableFull)?;
        self.len += 1;
        Ok(NodeId(i as u16))
    }
    /// Removes a node and returns its entry.
    pub fn remove(&mut self, id: NodeId) -> Result<Node, NodeError> {
        let slot = self
            .slots
            .get_mut(usize::from(id.0))
            .ok_or(NodeError::UnknownNode)?;
        let node = slot.take().ok_or(NodeError::UnknownNode)?;
        self.len -= 1;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        Ok(node)
    }
    /// The node with this id.
    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.slots.get(usize::from(id.0)).and_then(Option::as_ref)
    }
    /// The node with this id, mutably.
    pub fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.slots
            .get_mut(usize::from(id.0))
            .and_then(Option::as_mut)
    }
    /// The id of the node with this name.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.iter()
            .find(|(_, n)| n.spec.name.as_str() == name)
            .map(|(id, _)| id)
    }
    /// All nodes in id order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &Node)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|n| (NodeId(i as u16), n)))
    }
    /// All nodes in id order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (NodeId, &mut Node)> + '_ {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.as_mut().map(|n| (NodeId(i as u16), n)))
    }
    /// The raw slots (holes are `None`), for index-based scans on the hot path.
    pub(crate) fn slots(&self) -> &[Option<Node>] {
        &self.slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> NodeSpec {
        NodeSpec::new(name, NodeKind::Ollama).unwrap()
    }

    #[test]
    fn ids_are_stable_and_slots_reused() {
        let mut t: NodeTable<4> = NodeTable::new();
        let a = t.insert(spec("a")).unwrap();
        let b = t.insert(spec("b")).unwrap();
        let c = t.insert(spec("c")).unwrap();
        assert_eq!((a, b, c), (NodeId(0), NodeId(1), NodeId(2)));
        t.remove(b).unwrap();
        assert_eq!(t.get(c).unwrap().spec.name.as_str(), "c");
        assert_eq!(t.find("c"), Some(c));
        assert_eq!(t.remove(b).unwrap_err(), NodeError::UnknownNode);
        let d = t.insert(spec("d")).unwrap();
        assert_eq!(d, NodeId(1));
        t.insert(spec("e")).unwrap();
        assert_eq!(t.insert(spec("f")).unwrap_err(), NodeError::TableFull);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn specs_are_validated() {
        let mut t: NodeTable<2> = NodeTable::new();
        assert_eq!(
            NodeSpec::new("", NodeKind::Ollama).unwrap_err(),
            NodeError::BadName
        );
        let mut s = spec("x");
        s.weight = 0;
        assert_eq!(t.insert(s).unwrap_err(), NodeError::ZeroWeight);
        let mut s = spec("x");
        s.max_concurrency = 0;
        assert_eq!(t.insert(s).unwrap_err(), NodeError::ZeroConcurrency);
        t.insert(spec("x")).unwrap();
        assert_eq!(t.insert(spec("x")).unwrap_err(), NodeError::DuplicateName);
        let mut empty: NodeTable<0> = NodeTable::new();
        assert_eq!(empty.insert(spec("y")).unwrap_err(), NodeError::TableFull);
    }

    #[test]
    fn aliases_and_models() {
        let mut s = spec("x");
        s.models = ModelSet::EMPTY;
        s.models.insert(ModelId(1));
        s.add_alias(ModelId(7), ModelId(1)).unwrap();
        assert_eq!(s.resolve_model(ModelId(1)), Some(ModelId(1)));
        assert_eq!(s.resolve_model(ModelId(7)), Some(ModelId(1)));
        assert_eq!(s.resolve_model(ModelId(2)), None);
        for i in 0..7 {
            s.add_alias(ModelId(100 + i), ModelId(1)).unwrap();
        }
        assert_eq!(
            s.add_alias(ModelId(200), ModelId(1)),
            Err(NodeError::TooManyAliases)
        );
        s.add_alias(ModelId(7), ModelId(2)).unwrap(); // replacing an alias needs no room
        assert_eq!(s.resolve_model(ModelId(7)), Some(ModelId(2)));
    }

    #[test]
    fn capabilities() {
        assert!(Capabilities::ALL.contains(Capabilities::VISION));
        assert!(!Capabilities::TEXT.contains(Capabilities::EMBED));
        assert!(Capabilities::NONE.contains(Capabilities::NONE));
    }
}
