//! The de-duplication window: the ids of the last `capacity` durable messages
//! a shard finished, as a ring (so the partition overwrites one slot per
//! finished message instead of growing a table forever) with a hash set for
//! lookups.

use std::collections::HashSet;

use ahash::RandomState;

/// Recently finished durable message ids.
///
/// ```
/// use quire_storage::DedupWindow;
/// let mut w = DedupWindow::new(2);
/// let slot = w.insert(10);
/// w.insert(11);
/// assert!(w.contains(10));
/// w.insert(12); // takes slot of 10, the oldest
/// assert!(!w.contains(10) && w.contains(11) && w.contains(12));
/// assert_eq!(w.next_slot(), (slot + 1) % 2);
/// ```
#[derive(Debug, Clone)]
pub struct DedupWindow {
    ring: Vec<Option<u64>>,
    ids: HashSet<u64, RandomState>,
    next: u32,
}

impl DedupWindow {
    /// A window remembering `capacity` ids (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        Self {
            ring: vec![None; capacity],
            ids: HashSet::with_capacity_and_hasher(capacity.min(1 << 20), RandomState::new()),
            next: 0,
        }
    }

    /// Ids the window holds at most.
    pub fn capacity(&self) -> usize {
        self.ring.len()
    }

    /// True when `id` finished within the window.
    pub fn contains(&self, id: u64) -> bool {
        self.ids.contains(&id)
    }

    /// Records `id` as finished, forgetting the oldest when full; returns the
    /// ring slot it took.
    pub fn insert(&mut self, id: u64) -> u32 {
        let slot = self.next;
        if let Some(old) = self.ring[slot as usize].replace(id) {
            if old != id {
                self.ids.remove(&old);
            }
        }
        self.ids.insert(id);
        self.next = (slot + 1) % self.ring.len() as u32;
        slot
    }

    /// The slot the next insert takes.
    pub fn next_slot(&self) -> u32 {
        self.next
    }

    /// Rebuilds the window from stored slots (recovery); slots beyond this
    /// window's capacity are dropped.
    pub fn restore(&mut self, slots: impl IntoIterator<Item = (u32, u64)>, next: u32) {
        for (slot, id) in slots {
            if let Some(entry) = self.ring.get_mut(slot as usize) {
                if let Some(old) = entry.replace(id) {
                    self.ids.remove(&old);
                }
                self.ids.insert(id);
            }
        }
        self.next = next % self.ring.len() as u32;
    }
}
