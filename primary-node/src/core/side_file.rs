//! The side file's slots: where a backup's side copies go (seed FIG. 19/20).
//!
//! A side file is a row of equal slots, each one whole track long, so any
//! free slot takes any track. Slots of released copies are reused (lowest
//! first) before the file grows, and it grows only within the node's
//! side-file budget (`--side-file-limit`), shared by every side file of the
//! node. Pure bookkeeping: the shell creates, writes and removes the file.

use std::collections::BTreeSet;

/// One slot of a side file: room for one track, at `index × slot size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(u64);

impl Slot {
    /// The slot's position in its side file (0, 1, 2, ...).
    pub fn index(self) -> u64 {
        self.0
    }
}

/// Side-file space that all side files of a node share.
///
/// Invariant (of every implementation): the bytes taken and not given back
/// never pass [`SideSpace::limit`].
pub trait SideSpace {
    /// Most bytes all side files may hold together.
    fn limit(&self) -> u64;
    /// Reserve `bytes`; false (and nothing reserved) if that would pass the limit.
    fn take(&self, bytes: u64) -> bool;
    /// Give back `bytes` reserved earlier.
    fn give(&self, bytes: u64);
}

/// A side file cannot take another copy: it has no free slot and growing
/// it would pass the node's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the node's side files reached --side-file-limit ({limit} bytes)")]
pub struct SideFull {
    /// The node's limit, bytes.
    pub limit: u64,
}

/// A slot handed out by [`SideFile::allocate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub slot: Slot,
    /// The side file grew by one slot for it (and took its bytes from the budget).
    pub grew: bool,
}

/// The slots of one side file.
///
/// Invariants: every slot below the file's length is either free or held,
/// never both; the file holds exactly `slots × slot size` bytes of the
/// node's budget (taken as it grew, given back when it closes or an
/// allocation is cancelled); it grows only when no slot is free, and the
/// lowest free slot is reused first.
#[derive(Debug)]
pub struct SideFile {
    slot_size: u64,
    /// Slots the file has (free or held).
    slots: u64,
    free: BTreeSet<Slot>,
}

impl SideFile {
    /// An empty side file whose slots are `slot_size` bytes (the track size).
    pub fn new(slot_size: u64) -> SideFile {
        SideFile {
            slot_size,
            slots: 0,
            free: BTreeSet::new(),
        }
    }

    /// A slot for one more copy: the lowest free one, else a new one at
    /// the end if `space` has room for it.
    pub fn allocate(&mut self, space: &dyn SideSpace) -> Result<Allocation, SideFull> {
        if let Some(slot) = self.free.pop_first() {
            return Ok(Allocation { slot, grew: false });
        }
        if !space.take(self.slot_size) {
            return Err(SideFull { limit: space.limit() });
        }
        let slot = Slot(self.slots);
        self.slots += 1;
        Ok(Allocation { slot, grew: true })
    }

    /// The copy `a` was for could not be made: undo the allocation, which
    /// must be the latest (a grown slot is taken off the end again and its
    /// bytes go back to `space`; a reused one is free again).
    pub fn cancel(&mut self, a: Allocation, space: &dyn SideSpace) {
        if a.grew && a.slot.0 + 1 == self.slots {
            self.slots -= 1;
            space.give(self.slot_size);
        } else {
            self.free(a.slot);
        }
    }

    /// The copy in `slot` left: the slot is free for the next. False if it
    /// was not held (free already, or not a slot of this file).
    pub fn free(&mut self, slot: Slot) -> bool {
        slot.0 < self.slots && self.free.insert(slot)
    }

    /// Byte offset of `slot` in the file.
    pub fn offset(&self, slot: Slot) -> u64 {
        slot.0.saturating_mul(self.slot_size)
    }

    /// Bytes the file holds (of the node's budget).
    pub fn bytes(&self) -> u64 {
        self.slots.saturating_mul(self.slot_size)
    }

    /// Slots holding a copy.
    pub fn held(&self) -> u64 {
        self.slots - self.free.len() as u64
    }

    /// The file goes away: its bytes go back to `space`; returns how many.
    pub fn close(self, space: &dyn SideSpace) -> u64 {
        let bytes = self.bytes();
        space.give(bytes);
        bytes
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    /// A budget for tests: a plain counter.
    #[derive(Debug)]
    pub(crate) struct Budget {
        pub limit: u64,
        pub used: Cell<u64>,
        /// Reservations refused so far.
        pub refused: Cell<u64>,
    }

    impl Budget {
        pub fn new(limit: u64) -> Budget {
            Budget {
                limit,
                used: Cell::new(0),
                refused: Cell::new(0),
            }
        }
    }

    impl SideSpace for Budget {
        fn limit(&self) -> u64 {
            self.limit
        }
        fn take(&self, bytes: u64) -> bool {
            match self.used.get().checked_add(bytes).filter(|&u| u <= self.limit) {
                Some(u) => {
                    self.used.set(u);
                    true
                }
                None => {
                    self.refused.set(self.refused.get() + 1);
                    false
                }
            }
        }
        fn give(&self, bytes: u64) {
            assert!(
                bytes <= self.used.get(),
                "gave back {bytes} of {} taken",
                self.used.get()
            );
            self.used.set(self.used.get() - bytes);
        }
    }

    #[test]
    fn grows_within_the_budget_and_reuses_the_lowest_free_slot() {
        let budget = Budget::new(3 * 10);
        let mut f = SideFile::new(10);
        let a: Vec<Allocation> = (0..3).map(|_| f.allocate(&budget).unwrap()).collect();
        assert!(a.iter().all(|a| a.grew));
        assert_eq!(f.bytes(), 30);
        assert_eq!(f.allocate(&budget), Err(SideFull { limit: 30 }));
        assert!(f.free(a[2].slot) && f.free(a[0].slot));
        assert!(!f.free(a[0].slot), "freed twice");
        assert!(!f.free(Slot(7)), "not a slot of the file");
        assert_eq!(f.held(), 1);
        let b = f.allocate(&budget).unwrap();
        assert_eq!((b.slot, b.grew), (a[0].slot, false));
        assert_eq!(f.offset(a[2].slot), 20);
        assert_eq!(f.close(&budget), 30);
        assert_eq!(budget.used.get(), 0);
    }

    #[test]
    fn a_cancelled_allocation_leaves_no_trace() {
        let budget = Budget::new(100);
        let mut f = SideFile::new(10);
        let a = f.allocate(&budget).unwrap();
        f.cancel(a, &budget);
        assert_eq!((f.bytes(), budget.used.get()), (0, 0));
        let a = f.allocate(&budget).unwrap();
        let b = f.allocate(&budget).unwrap();
        f.free(a.slot);
        let c = f.allocate(&budget).unwrap();
        f.cancel(c, &budget);
        assert_eq!((f.bytes(), f.held()), (20, 1));
        assert_eq!(f.allocate(&budget).unwrap().slot, a.slot);
        assert_ne!(a.slot, b.slot);
    }
}
