//! The permit slab: which permits are held, by which class, and whether an id
//! presented for release is live.
//!
//! Generational indices (as in `slotmap` or `thunderdome`): `C` slots, each
//! with a 32-bit generation. The parity of the generation is the slot's state
//! (odd = held, even = free), so a slot is 8 bytes: the generation plus one
//! `u32` that is the class pool of a held permit or the next free slot of a
//! free one (an intrusive free list). Acquire and release are O(1), and a
//! slot that has never been used is not touched until needed (`fresh` is a
//! high-water mark), so construction writes no list.
//!
//! A slot's generation wraps after 2^31 acquisitions of that slot; an id kept
//! across that many reuses of the same slot could alias. Nothing else can.

use super::types::{Pool, ReleaseError};

/// Marks "no slot" in the free list.
const NONE: u32 = u32::MAX;

/// Identifies one issued permit: a slot and the generation it was issued at.
///
/// Any value is accepted by [`Admission::release_id`](super::Admission::release_id):
/// ids that were never issued, or whose permit was already released, are
/// detected and refused without touching a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PermitId {
    /// Slot in the permit slab.
    pub index: u32,
    /// Generation of the slot when the permit was issued (always odd for an
    /// issued permit).
    pub generation: u32,
}

/// One held unit of the global pool and of one class pool.
///
/// Not `Clone`, not `Copy`: a permit is released exactly once, by passing it
/// to [`Admission::release`](super::Admission::release). Dropping a permit
/// without releasing it leaks its units until the admission is rebuilt;
/// admission cannot release on drop because the permit holds no reference to
/// it (sans-IO: no shared state). Keep the [`PermitId`] if the permit must
/// cross a boundary that cannot carry the value itself.
#[must_use = "a permit holds pool units until it is passed to Admission::release"]
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    id: PermitId,
    pool: Pool,
}

impl Permit {
    pub(crate) const fn new(id: PermitId, pool: Pool) -> Self {
        Permit { id, pool }
    }

    /// The id to release this permit by, with
    /// [`Admission::release_id`](super::Admission::release_id).
    pub const fn id(&self) -> PermitId {
        self.id
    }

    /// The class pool this permit holds a unit of.
    pub const fn pool(&self) -> Pool {
        self.pool
    }
}

/// One permit slot. `generation` odd: held, `link` is the class pool index.
/// `generation` even: free, `link` is the next free slot (or [`NONE`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    generation: u32,
    link: u32,
}

impl Slot {
    const NEW: Slot = Slot {
        generation: 0,
        link: NONE,
    };

    const fn is_held(&self) -> bool {
        self.generation & 1 == 1
    }
}

/// Fixed-capacity slab of permit slots plus the per-pool usage counters.
pub(crate) struct PermitSlab<const C: usize> {
    slots: [Slot; C],
    /// Head of the free list of released slots.
    free_head: u32,
    /// Slots `fresh..C` have never been used and are not on the free list.
    fresh: u32,
    /// Held permits per class pool, indexed by [`Pool::index`].
    in_use: [u32; 4],
    /// Held permits in total (the global pool's usage).
    held: u32,
}

impl<const C: usize> PermitSlab<C> {
    /// An empty slab. `C` must fit in a `u32` below [`NONE`] (checked at compile time).
    pub(crate) const fn new() -> Self {
        const { assert!(C < NONE as usize, "permit capacity must be below u32::MAX") };
        PermitSlab {
            slots: [Slot::NEW; C],
            free_head: NONE,
            fresh: 0,
            in_use: [0; 4],
            held: 0,
        }
    }

    /// Permits held in total.
    pub(crate) const fn held(&self) -> u32 {
        self.held
    }

    /// Permits held for one class pool.
    pub(crate) const fn in_use(&self, pool: Pool) -> u32 {
        self.in_use[pool.index()]
    }

    /// Take a free slot for `pool`. `None` only if all `C` slots are held.
    /// Does not check limits: the caller does.
    pub(crate) fn acquire(&mut self, pool: Pool) -> Option<PermitId> {
        let index = if self.free_head != NONE {
            let index = self.free_head;
            self.free_head = self.slots[index as usize].link;
            index
        } else if (self.fresh as usize) < C {
            let index = self.fresh;
            self.fresh += 1;
            index
        } else {
            return None;
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.link = pool.index() as u32;
        self.in_use[pool.index()] += 1;
        self.held += 1;
        Some(PermitId {
            index,
            generation: slot.generation,
        })
    }

    /// The class pool of a live permit, or why `id` is not live.
    pub(crate) fn check(&self, id: PermitId) -> Result<Pool, ReleaseError> {
        let Some(slot) = self.slots.get(id.index as usize) else {
            return Err(ReleaseError::UnknownPermit);
        };
        if id.generation & 1 == 0 {
            // Even generations mark free slots; no permit carries one.
            return Err(ReleaseError::UnknownPermit);
        }
        if slot.is_held() && slot.generation == id.generation {
            return Pool::ALL
                .get(slot.link as usize)
                .copied()
                .ok_or(ReleaseError::UnknownPermit);
        }
        // Not live. Older than the slot's current generation: it was issued
        // and released. Newer: it was never issued.
        if (slot.generation.wrapping_sub(id.generation) as i32) > 0 {
            Err(ReleaseError::AlreadyReleased)
        } else {
            Err(ReleaseError::UnknownPermit)
        }
    }

    /// Release a live permit; on error nothing changes.
    pub(crate) fn release(&mut self, id: PermitId) -> Result<Pool, ReleaseError> {
        let pool = self.check(id)?;
        let slot = &mut self.slots[id.index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.link = self.free_head;
        self.free_head = id.index;
        self.in_use[pool.index()] -= 1;
        self.held -= 1;
        Ok(pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_eight_bytes() {
        assert_eq!(core::mem::size_of::<Slot>(), 8);
        assert_eq!(core::mem::size_of::<PermitSlab<16384>>(), 16384 * 8 + 28);
    }

    #[test]
    fn acquire_release_reuses_slots_lifo() {
        let mut slab = PermitSlab::<3>::new();
        let a = slab.acquire(Pool::Chat).unwrap();
        let b = slab.acquire(Pool::Embed).unwrap();
        let c = slab.acquire(Pool::Embed).unwrap();
        assert_eq!((a.index, b.index, c.index), (0, 1, 2));
        assert!(slab.acquire(Pool::Chat).is_none(), "slab full");
        assert_eq!(slab.held(), 3);
        assert_eq!(slab.in_use(Pool::Embed), 2);
        assert_eq!(slab.release(b), Ok(Pool::Embed));
        let d = slab.acquire(Pool::Stream).unwrap();
        assert_eq!(d.index, 1);
        assert_eq!(d.generation, b.generation + 2);
        assert_eq!(slab.in_use(Pool::Embed), 1);
        assert_eq!(slab.in_use(Pool::Stream), 1);
    }

    #[test]
    fn stale_and_forged_ids_are_classified() {
        let mut slab = PermitSlab::<2>::new();
        let a = slab.acquire(Pool::Chat).unwrap();
        assert_eq!(slab.release(a), Ok(Pool::Chat));
        assert_eq!(slab.release(a), Err(ReleaseError::AlreadyReleased));
        let a2 = slab.acquire(Pool::Chat).unwrap();
        assert_eq!(a2.index, a.index);
        // The old id stays dead even though its slot is held again.
        assert_eq!(slab.release(a), Err(ReleaseError::AlreadyReleased));
        let future = PermitId {
            index: a.index,
            generation: a2.generation + 2,
        };
        assert_eq!(slab.release(future), Err(ReleaseError::UnknownPermit));
        let even = PermitId {
            index: a.index,
            generation: a2.generation + 1,
        };
        assert_eq!(slab.release(even), Err(ReleaseError::UnknownPermit));
        let out_of_range = PermitId {
            index: 7,
            generation: 1,
        };
        assert_eq!(slab.release(out_of_range), Err(ReleaseError::UnknownPermit));
        let never_used = PermitId {
            index: 1,
            generation: 1,
        };
        assert_eq!(slab.release(never_used), Err(ReleaseError::UnknownPermit));
        assert_eq!(slab.held(), 1);
        assert_eq!(slab.release(a2), Ok(Pool::Chat));
        assert_eq!(slab.held(), 0);
    }

    #[test]
    fn generation_wraps_keeping_parity() {
        let mut slab = PermitSlab::<1>::new();
        slab.slots[0].generation = u32::MAX - 1;
        slab.fresh = 1;
        slab.free_head = 0;
        let a = slab.acquire(Pool::Chat).unwrap();
        assert_eq!(a.generation, u32::MAX);
        assert_eq!(slab.release(a), Ok(Pool::Chat));
        let b = slab.acquire(Pool::Chat).unwrap();
        assert_eq!(b.generation, 1);
        assert_eq!(slab.release(a), Err(ReleaseError::AlreadyReleased));
        assert_eq!(slab.release(b), Ok(Pool::Chat));
    }

    #[test]
    fn zero_capacity_slab_never_issues() {
        let mut slab = PermitSlab::<0>::new();
        assert!(slab.acquire(Pool::Chat).is_none());
        let id = PermitId {
            index: 0,
            generation: 1,
        };
        assert_eq!(slab.release(id), Err(ReleaseError::UnknownPermit));
    }
}
