//! A simulated node's prefix cache: an LRU of prompt block hashes. See
//! [`PrefixCache`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// End of the recency list.
const NIL: u32 = u32::MAX;

/// One cached block and its neighbours in recency order.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u64,
    /// More recently used neighbour.
    prev: u32,
    /// Less recently used neighbour.
    next: u32,
}

/// Hashes a `u64` key with SplitMix64's finaliser (other input: FNV-1a).
#[derive(Clone, Copy, Debug, Default)]
struct BlockHasher(u64);

impl Hasher for BlockHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        let mut z = x ^ self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }
}

/// A simulated node's prefix cache: which prompt blocks' KV state it still
/// holds, as an LRU of block hashes with a fixed capacity.
///
/// Servers with automatic prefix caching (vLLM's APC, SGLang's RadixAttention,
/// llama.cpp's slot cache) keep the key/value state of prompt blocks they have
/// prefilled and skip prefill for the longest cached *prefix* of a new prompt.
/// A block's hash covers every token up to the end of the block (as the
/// Mooncake trace's `hash_ids` do), so a prompt hits on its leading run of
/// cached blocks and no further: a cached block after a miss cannot be reused.
///
/// [`PrefixCache::serve`] does both halves of one request: it counts the
/// leading hits, then records every block of the prompt as most recently
/// used. Blocks are touched from the last to the first, so a shared head
/// (a system prompt, an earlier turn) is more recent than a request's own
/// tail and survives it; this is vLLM's eviction order too (least recently
/// used first, and among equals the block deepest in its prompt first).
///
/// # Structure, and why
///
/// A hash map from block hash to a slot, and the slots threaded on an
/// intrusive doubly linked recency list (indexes, not pointers). Lookup,
/// touch, insert and evict are each O(1) in the worst case, and the order
/// evicted is exact LRU. A clock (second-chance) ring would save the two
/// links per entry but evicts only approximately and costs O(capacity) in
/// the worst case per eviction; the simulator's point is to model the
/// servers' LRU faithfully, and its caches hold thousands of blocks, not
/// millions, so the links are cheap. No allocation once the cache is full:
/// slots are reused in place and the map never grows beyond `capacity`.
///
/// The map hashes block hashes with SplitMix64's finaliser: trace block ids
/// are often small sequential integers, which a hash table must not take as
/// they are.
#[derive(Clone, Debug)]
pub struct PrefixCache {
    capacity: usize,
    map: HashMap<u64, u32, BuildHasherDefault<BlockHasher>>,
    entries: Vec<Entry>,
    /// Most recently used.
    head: u32,
    /// Least recently used: evicted next.
    tail: u32,
}

impl PrefixCache {
    /// An empty cache holding at most `capacity` blocks (0: caches nothing).
    /// Capacity above `u32::MAX − 1` is clamped.
    pub fn new(capacity: usize) -> Self {
        PrefixCache {
            capacity: capacity.min(NIL as usize - 1),
            map: HashMap::default(),
            entries: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// Most blocks held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// Blocks held.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// True when no block is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// True when `block` is held. Does not change recency.
    pub fn contains(&self, block: u64) -> bool {
        self.map.contains_key(&block)
    }

    /// The number of leading blocks of `blocks` held (the reusable prefix).
    /// Does not change recency.
    pub fn prefix_hits(&self, blocks: &[u64]) -> usize {
        blocks.iter().take_while(|b| self.contains(**b)).count()
    }

    /// One request's prompt: returns its leading hits, then holds every
    /// block as most recently used (the first block most recent of all),
    /// evicting the least recently used blocks as needed.
    pub fn serve(&mut self, blocks: &[u64]) -> usize {
        let hits = self.prefix_hits(blocks);
        for &b in blocks.iter().rev() {
            self.insert(b);
        }
        hits
    }

    /// Marks `block` most recently used, inserting it if absent. Returns
    /// the block evicted to make room, if any.
    pub fn insert(&mut self, block: u64) -> Option<u64> {
        if self.capacity == 0 {
            return None;
        }
        if let Some(&i) = self.map.get(&block) {
            self.unlink(i);
            self.push_front(i);
            return None;
        }
        let (slot, evicted) = if self.map.len() < self.capacity {
            let i = self.entries.len() as u32;
            self.entries.push(Entry {
                key: block,
                prev: NIL,
                next: NIL,
            });
            (i, None)
        } else {
            // Full, so the list is non-empty and `tail` is a slot.
            let i = self.tail;
            self.unlink(i);
            let old = self.entries[i as usize].key;
            self.map.remove(&old);
            self.entries[i as usize].key = block;
            (i, Some(old))
        };
        self.map.insert(block, slot);
        self.push_front(slot);
        evicted
    }

    /// Drops every block (a restarted server has an empty cache).
    pub fn clear(&mut self) {
        self.map.clear();
        self.entries.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    /// The blocks held, most recently used first (O(len); for tests and
    /// inspection).
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let mut at = self.head;
        std::iter::from_fn(move || {
            let e = self.entries.get(at as usize)?;
            at = e.next;
            Some(e.key)
        })
    }

    fn unlink(&mut self, i: u32) {
        let Entry { prev, next, .. } = self.entries[i as usize];
        match prev {
            NIL => self.head = next,
            p => self.entries[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        self.entries[i as usize].prev = NIL;
        self.entries[i as usize].next = old;
        match old {
            NIL => self.tail = i,
            h => self.entries[h as usize].prev = i,
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(c: &PrefixCache) -> Vec<u64> {
        c.iter().collect()
    }

    #[test]
    fn evicts_least_recently_used_and_touch_refreshes() {
        let mut c = PrefixCache::new(3);
        assert!(c.is_empty());
        assert_eq!(c.insert(1), None);
        assert_eq!(c.insert(2), None);
        assert_eq!(c.insert(3), None);
        assert_eq!(held(&c), [3, 2, 1]);
        // Touching 1 makes 2 the oldest.
        assert_eq!(c.insert(1), None);
        assert_eq!(held(&c), [1, 3, 2]);
        assert_eq!(c.insert(4), Some(2));
        assert_eq!(held(&c), [4, 1, 3]);
        assert!(!c.contains(2) && c.contains(3));
        assert_eq!(c.len(), 3);
        assert_eq!(c.insert(5), Some(3));
        assert_eq!(c.insert(6), Some(1));
        assert_eq!(held(&c), [6, 5, 4]);
        c.clear();
        assert!(c.is_empty() && held(&c).is_empty());
        assert_eq!(c.insert(7), None);
        assert_eq!(held(&c), [7]);
    }

    #[test]
    fn serve_counts_the_leading_run_only() {
        let mut c = PrefixCache::new(100);
        assert_eq!(c.serve(&[10, 11, 12]), 0);
        assert_eq!(c.serve(&[10, 11, 12, 13]), 3);
        // A miss in the middle ends the reusable prefix, even though 12 and
        // 13 are cached.
        assert_eq!(c.serve(&[10, 99, 12, 13]), 1);
        assert_eq!(c.serve(&[]), 0);
        assert_eq!(c.prefix_hits(&[10, 99, 12]), 3);
        // The first block is the most recent; the tail the least.
        assert_eq!(held(&c)[..4], [10, 99, 12, 13]);
    }

    #[test]
    fn shared_heads_outlive_tails() {
        // Two prompts share a two-block head; the cache holds four blocks.
        let mut c = PrefixCache::new(4);
        c.serve(&[1, 2, 100, 101]);
        c.serve(&[1, 2, 200, 201]);
        // The first prompt's tail went first; the shared head stays.
        assert!(c.contains(1) && c.contains(2));
        assert!(!c.contains(100) && !c.contains(101));
        assert_eq!(c.serve(&[1, 2, 300]), 2);
        // A prompt longer than the cache keeps its own head.
        let mut small = PrefixCache::new(2);
        assert_eq!(small.serve(&[5, 6, 7, 8]), 0);
        assert_eq!(held(&small), [5, 6]);
        assert_eq!(small.serve(&[5, 6, 7, 8]), 2);
    }

    #[test]
    fn zero_capacity_caches_nothing_and_duplicates_are_one_entry() {
        let mut z = PrefixCache::new(0);
        assert_eq!(z.serve(&[1, 2]), 0);
        assert_eq!(z.serve(&[1, 2]), 0);
        assert!(z.is_empty());
        let mut c = PrefixCache::new(4);
        c.serve(&[3, 3, 3]);
        assert_eq!(c.len(), 1);
        assert_eq!(c.capacity(), 4);
    }

    #[test]
    fn matches_a_naive_lru_on_a_long_random_sequence() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut c = PrefixCache::new(16);
        let mut naive: Vec<u64> = Vec::new(); // most recent first
        for _ in 0..20_000 {
            let k = rng.u64(0..40);
            let expected_evict = if naive.contains(&k) {
                naive.retain(|&x| x != k);
                None
            } else if naive.len() == 16 {
                naive.pop()
            } else {
                None
            };
            naive.insert(0, k);
            assert_eq!(c.insert(k), expected_evict);
            assert_eq!(c.len(), naive.len());
        }
        assert_eq!(held(&c), naive);
    }
}
