//! Names the router must compare on every call, turned into small integers.
//!
//! Model names, tags and scopes arrive as strings from config files, heartbeats
//! and requests. Comparing strings on the routing path is slow and makes node
//! entries large, so the [`Catalog`] interns each distinct name once:
//! a model becomes a [`ModelId`] (one bit in a node's [`ModelSet`]), a tag a
//! bit in a [`Tags`] mask, and a scope a [`ScopeId`]. Lookups hash the name
//! (FNV-1a, via heapless' `FnvIndexMap`) and cost one probe on average.
//!
//! Capacities are fixed: [`MAX_MODELS`] models, [`MAX_TAGS`] tags and
//! [`MAX_SCOPES`] scopes, each name at most [`MAX_NAME`] bytes. Interning past
//! a limit is refused with a [`CatalogError`]; nothing is silently dropped.
//! Names are never removed, so ids stay stable for the router's lifetime.

use core::fmt;
use heapless::index_map::FnvIndexMap;
use heapless::{String, Vec};

/// Longest model, tag or scope name, in bytes.
pub const MAX_NAME: usize = 64;
/// Distinct model names a router can know (the width of [`ModelSet`]).
pub const MAX_MODELS: usize = 256;
/// Distinct tags (the width of [`Tags`]).
pub const MAX_TAGS: usize = 64;
/// Distinct scopes.
pub const MAX_SCOPES: usize = 64;

/// A short owned name.
pub type Name = String<MAX_NAME>;

/// An interned model name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ModelId(pub u16);

/// An interned scope (tenant) name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScopeId(pub u16);

/// A set of interned tags, one bit per tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Tags(pub u64);

impl Tags {
    /// No tags.
    pub const NONE: Tags = Tags(0);
    /// Adds the tag with bit index `bit`.
    pub fn with(self, bit: u8) -> Tags {
        Tags(self.0 | 1u64.checked_shl(u32::from(bit)).unwrap_or(0))
    }
    /// True when every tag of `wanted` is in `self`.
    pub fn contains_all(self, wanted: Tags) -> bool {
        self.0 & wanted.0 == wanted.0
    }
    /// True when no tag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The models a node serves: a bit per [`ModelId`], or "any" when the node's
/// inventory is unknown (it accepts whatever model it is asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ModelSet {
    any: bool,
    bits: [u64; MAX_MODELS / 64],
}

impl Default for ModelSet {
    fn default() -> Self {
        ModelSet::ANY
    }
}

impl ModelSet {
    /// Accepts any model (inventory unknown).
    pub const ANY: ModelSet = ModelSet {
        any: true,
        bits: [0; MAX_MODELS / 64],
    };
    /// Serves no model until some are inserted.
    pub const EMPTY: ModelSet = ModelSet {
        any: false,
        bits: [0; MAX_MODELS / 64],
    };

    /// Adds a model; the set stops being "any".
    pub fn insert(&mut self, m: ModelId) {
        self.any = false;
        let i = usize::from(m.0);
        if let Some(word) = self.bits.get_mut(i / 64) {
            *word |= 1 << (i % 64);
        }
    }
    /// True when the node serves `m` (always true for "any").
    pub fn contains(&self, m: ModelId) -> bool {
        if self.any {
            return true;
        }
        let i = usize::from(m.0);
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    /// True when the set is "any".
    pub fn is_any(&self) -> bool {
        self.any
    }
    /// The listed models, in id order (nothing for "any").
    pub fn iter(&self) -> impl Iterator<Item = ModelId> + '_ {
        (0..MAX_MODELS)
            .filter(|&i| self.bits[i / 64] & (1 << (i % 64)) != 0)
            .map(|i| ModelId(i as u16))
    }
}

/// Why a name could not be interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatalogError {
    /// The name is empty.
    EmptyName,
    /// The name is longer than [`MAX_NAME`] bytes.
    NameTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// [`MAX_MODELS`] models are already known.
    TooManyModels,
    /// [`MAX_TAGS`] tags are already known.
    TooManyTags,
    /// [`MAX_SCOPES`] scopes are already known.
    TooManyScopes,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogError::EmptyName => f.write_str("name is empty"),
            CatalogError::NameTooLong { len } => {
                write!(f, "name is {len} bytes long; the limit is {MAX_NAME}")
            }
            CatalogError::TooManyModels => write!(f, "more than {MAX_MODELS} distinct model names"),
            CatalogError::TooManyTags => write!(f, "more than {MAX_TAGS} distinct tags"),
            CatalogError::TooManyScopes => write!(f, "more than {MAX_SCOPES} distinct scopes"),
        }
    }
}

impl core::error::Error for CatalogError {}

/// One interning table: name → dense id, and id → name.
#[derive(Clone, Debug)]
struct Interner<const N: usize> {
    by_name: FnvIndexMap<Name, u16, N>,
    names: Vec<Name, N>,
}

impl<const N: usize> Interner<N> {
    fn new() -> Self {
        Interner {
            by_name: FnvIndexMap::new(),
            names: Vec::new(),
        }
    }
    fn get(&self, name: &str) -> Option<u16> {
        let key = Name::try_from(name).ok()?;
        self.by_name.get(&key).copied()
    }
    fn intern(&mut self, name: &str, full: CatalogError) -> Result<u16, CatalogError> {
        if name.is_empty() {
            return Err(CatalogError::EmptyName);
        }
        let key =
            Name::try_from(name).map_err(|_| CatalogError::NameTooLong { len: name.len() })?;
        if let Some(&id) = self.by_name.get(&key) {
            return Ok(id);
        }
        let id = self.names.len() as u16;
        self.names.push(key.clone()).map_err(|_| full)?;
        if self.by_name.insert(key, id).is_err() {
            self.names.pop();
            return Err(full);
        }
        Ok(id)
    }
    fn name(&self, id: u16) -> Option<&str> {
        self.names.get(usize::from(id)).map(|s| s.as_str())
    }
    fn len(&self) -> usize {
        self.names.len()
    }
}

/// The interned names of one router. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Catalog {
    models: Interner<MAX_MODELS>,
    tags: Interner<MAX_TAGS>,
    scopes: Interner<MAX_SCOPES>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new()
    }
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Catalog {
            models: Interner::new(),
            tags: Interner::new(),
            scopes: Interner::new(),
        }
    }
    /// The id of a model name, interning it if new.
    pub fn intern_model(&mut self, name: &str) -> Result<ModelId, CatalogError> {
        self.models
            .intern(name, CatalogError::TooManyModels)
            .map(ModelId)
    }
    /// The id of a known model name; `None` if no node or alias ever named it.
    pub fn model(&self, name: &str) -> Option<ModelId> {
        self.models.get(name).map(ModelId)
    }
    /// The name of a model id.
    pub fn model_name(&self, id: ModelId) -> Option<&str> {
        self.models.name(id.0)
    }
    /// How many models are known.
    pub fn model_count(&self) -> usize {
        self.models.len()
    }
    /// The tag mask of one tag name, interning it if new.
    pub fn intern_tag(&mut self, name: &str) -> Result<Tags, CatalogError> {
        self.tags
            .intern(name, CatalogError::TooManyTags)
            .map(|b| Tags::NONE.with(b as u8))
    }
    /// The tag mask for a known tag name.
    pub fn tag(&self, name: &str) -> Option<Tags> {
        self.tags.get(name).map(|b| Tags::NONE.with(b as u8))
    }
    /// Names of the tags in a mask, in bit order.
    pub fn tag_names(&self, tags: Tags) -> impl Iterator<Item = &str> + '_ {
        (0..MAX_TAGS as u16)
            .filter(move |b| tags.0 & (1u64 << b) != 0)
            .filter_map(|b| self.tags.name(b))
    }
    /// The id of a scope name, interning it if new.
    pub fn intern_scope(&mut self, name: &str) -> Result<ScopeId, CatalogError> {
        self.scopes
            .intern(name, CatalogError::TooManyScopes)
            .map(ScopeId)
    }
    /// The id of a known scope name.
    pub fn scope(&self, name: &str) -> Option<ScopeId> {
        self.scopes.get(name).map(ScopeId)
    }
    /// The name of a scope id.
    pub fn scope_name(&self, id: ScopeId) -> Option<&str> {
        self.scopes.name(id.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_bounded() {
        let mut c = Catalog::new();
        let a = c.intern_model("llama3:8b").unwrap();
        let b = c.intern_model("qwen2.5:7b").unwrap();
        assert_ne!(a, b);
        assert_eq!(c.intern_model("llama3:8b").unwrap(), a);
        assert_eq!(c.model("qwen2.5:7b"), Some(b));
        assert_eq!(c.model("unknown"), None);
        assert_eq!(c.model_name(a), Some("llama3:8b"));
        assert_eq!(c.intern_model(""), Err(CatalogError::EmptyName));
        let long = "x".repeat(MAX_NAME + 1);
        assert_eq!(
            c.intern_model(&long),
            Err(CatalogError::NameTooLong { len: MAX_NAME + 1 })
        );
        assert_eq!(c.model(&long), None);
    }

    #[test]
    fn model_capacity_is_refused_not_dropped() {
        extern crate std;
        let mut c = Catalog::new();
        for i in 0..MAX_MODELS {
            c.intern_model(&std::format!("m{i}")).unwrap();
        }
        assert_eq!(
            c.intern_model("one-too-many"),
            Err(CatalogError::TooManyModels)
        );
        assert_eq!(c.model_count(), MAX_MODELS);
        assert_eq!(c.model("m255"), Some(ModelId(255)));
    }

    #[test]
    fn tags_and_model_sets() {
        let mut c = Catalog::new();
        let gpu = c.intern_tag("gpu").unwrap();
        let fast = c.intern_tag("fast").unwrap();
        let both = Tags(gpu.0 | fast.0);
        assert!(both.contains_all(gpu));
        assert!(!gpu.contains_all(both));
        assert!(gpu.contains_all(Tags::NONE));
        {
            let names: heapless::Vec<&str, 4> = c.tag_names(both).collect();
            assert_eq!(names.as_slice(), ["gpu", "fast"]);
        }
        for i in 0..MAX_TAGS {
            let _ = c.intern_tag(&{
                extern crate std;
                std::format!("t{i}")
            });
        }
        assert_eq!(c.intern_tag("overflow"), Err(CatalogError::TooManyTags));

        let mut s = ModelSet::EMPTY;
        assert!(!s.contains(ModelId(3)));
        s.insert(ModelId(3));
        s.insert(ModelId(255));
        assert!(s.contains(ModelId(3)) && s.contains(ModelId(255)) && !s.contains(ModelId(4)));
        assert!(!s.contains(ModelId(9999)));
        assert!(ModelSet::ANY.contains(ModelId(9999)));
        assert_eq!(s.iter().count(), 2);
    }
}
