//! The doorbell next to each shard-to-shard channel: a counter the sending
//! shard bumps after each batch it put on the channel, which the receiving
//! shard compares with how many it took off. A spinning dispatcher sees it
//! change within nanoseconds, without glommio's waker path.
//!
//! The one promise, checked by the loom model in `runtime/tests/loom.rs`
//! (which compiles this file against loom's atomics): a receiver that sees
//! the bell rang beyond what it took finds every batch rung for on the
//! channel, since each ring is a release after its push and each look an
//! acquire before the take.

use super::atomics::{AtomicU64, Ordering};

/// Counts batches put on one shard-to-shard channel. On its own cache line,
/// since two cores touch it.
#[repr(align(128))]
pub(crate) struct Doorbell(AtomicU64);

impl Default for Doorbell {
    fn default() -> Self {
        Self(AtomicU64::new(0))
    }
}

impl Doorbell {
    /// Rung by the sender after each batch it put on the channel.
    pub(crate) fn ring(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// Batches rung for so far.
    pub(crate) fn rung(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Whether more batches were rung for than the receiver's `taken`: if
    /// so, they are on the channel.
    pub(crate) fn rang_beyond(&self, taken: u64) -> bool {
        self.0.load(Ordering::Acquire) > taken
    }
}
