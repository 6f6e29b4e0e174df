//! The shard's write journal: what must reach its storage partition, in the
//! order it happened, and the bookkeeping of durable messages (accepted,
//! not yet finished, recently finished) that makes redelivery and
//! de-duplication exact.
//!
//! The journal only records; the runtime takes its writes in batches
//! ([`crate::ShardCore::take_writes`]) and commits them off the reactor.
//! Positions count every mutation ever journaled, so that "acknowledge once
//! position p is committed" is a plain comparison.

use std::collections::{HashMap, HashSet, VecDeque};

use ahash::RandomState;
use quire_storage::{DedupWindow, DurableMessage, Mutation, WriteBatch};

use crate::envelope::MessageId;

/// What became of a durable message offered to a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurableAdmission {
    /// Queued at its agent; acknowledge once the journal position it was
    /// given is committed.
    Accepted(MessageId),
    /// The same message (by its sender's id) was accepted before and is
    /// queued or finished: acknowledge again, deliver nothing.
    Duplicate,
}

pub(crate) struct Journal {
    enabled: bool,
    writes: VecDeque<Mutation>,
    /// Enqueues among `writes`.
    messages: usize,
    /// Mutations journaled since the shard started.
    position: u64,
    /// Durable messages accepted and not finished: envelope id -> (seq, dedup).
    inflight: HashMap<MessageId, (u64, u64), RandomState>,
    inflight_dedup: HashSet<u64, RandomState>,
    finished: DedupWindow,
    next_seq: u64,
}

impl Journal {
    pub fn new(enabled: bool, dedup_window: usize) -> Self {
        Self {
            enabled,
            writes: VecDeque::new(),
            messages: 0,
            position: 0,
            inflight: HashMap::default(),
            inflight_dedup: HashSet::default(),
            finished: DedupWindow::new(if enabled { dedup_window } else { 1 }),
            next_seq: 1,
        }
    }

    #[inline(always)]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn log(&mut self, m: Mutation) {
        if !self.enabled {
            return;
        }
        if matches!(m, Mutation::Enqueue(_)) {
            self.messages += 1;
        }
        self.position += 1;
        self.writes.push_back(m);
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn pending(&self) -> (usize, usize) {
        (self.writes.len(), self.messages)
    }

    pub fn is_duplicate(&self, dedup: u64) -> bool {
        self.inflight_dedup.contains(&dedup) || self.finished.contains(dedup)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Records an accepted durable message (its envelope is queued).
    pub fn accept(&mut self, id: MessageId, msg: DurableMessage) {
        self.next_seq = msg.seq + 1;
        self.inflight.insert(id, (msg.seq, msg.dedup));
        self.inflight_dedup.insert(msg.dedup);
        self.log(Mutation::Enqueue(msg));
    }

    /// Records a redelivered message (already in the partition's inbox).
    pub fn readmit(&mut self, id: MessageId, seq: u64, dedup: u64) {
        self.next_seq = self.next_seq.max(seq + 1);
        self.inflight.insert(id, (seq, dedup));
        self.inflight_dedup.insert(dedup);
    }

    /// The message `id` was handled or dead-lettered; no-op unless durable.
    #[inline(always)]
    pub fn finish(&mut self, id: MessageId) -> bool {
        if self.inflight.is_empty() {
            return false;
        }
        let Some((seq, dedup)) = self.inflight.remove(&id) else {
            return false;
        };
        self.inflight_dedup.remove(&dedup);
        let slot = self.finished.insert(dedup);
        self.log(Mutation::Finish { seq, dedup, slot });
        true
    }

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    pub fn restore_dedup(&mut self, slots: impl IntoIterator<Item = (u32, u64)>, next: u32) {
        self.finished.restore(slots, next);
    }

    /// Takes journaled writes from the front, up to `max_messages` enqueues;
    /// returns them with the position they end at.
    pub fn take(&mut self, max_messages: usize) -> (WriteBatch, u64) {
        let mut batch = WriteBatch::default();
        let mut taken_messages = 0;
        while let Some(m) = self.writes.front() {
            if matches!(m, Mutation::Enqueue(_)) {
                if taken_messages == max_messages {
                    break;
                }
                taken_messages += 1;
            }
            batch.push(self.writes.pop_front().expect("front exists"));
        }
        self.messages -= taken_messages;
        let end = self.position - self.writes.len() as u64;
        (batch, end)
    }
}
