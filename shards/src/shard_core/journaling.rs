//! What the shard journals for its partition (agent state, durable
//! messages) and what the runtime's committer reports back (output commit).

use super::*;

impl ShardCore {
    /// True when this shard journals writes for a partition.
    pub fn is_journaling(&self) -> bool {
        self.journal.enabled()
    }

    /// Mutations journaled since the shard started: a write is durable once
    /// a commit ending at or after its position succeeded.
    pub fn journal_position(&self) -> u64 {
        self.journal.position()
    }

    /// Everything journaled up to `position` is on disk: the replies to
    /// clients that waited for it leave (output commit), and a shard whose
    /// storage was unavailable takes state-changing requests again. Returns
    /// how many replies left.
    pub fn commit_reached(&mut self, position: u64) -> usize {
        let mut out = Vec::new();
        self.replies.committed(position, &mut out);
        let released = out.len();
        for env in out {
            self.route_control(env);
        }
        released
    }

    /// A commit failed: replies waiting for it, and every reply that needs
    /// a commit until [`Self::commit_reached`] reports one, are answered
    /// [`Rejection::StorageUnavailable`] instead.
    pub fn storage_failed(&mut self) {
        let mut out = Vec::new();
        self.replies.storage_failed(&mut out);
        for env in out {
            // Counted as handled already: a withheld reply is no new rejection.
            self.route_control(env);
        }
    }

    /// Replies to clients waiting for a commit.
    pub fn held_replies(&self) -> usize {
        self.replies.held()
    }

    /// Journaled writes not yet taken, and the durable messages among them.
    pub fn pending_writes(&self) -> (usize, usize) {
        self.journal.pending()
    }

    /// Durable messages accepted (or redelivered) and not yet finished.
    pub fn durable_inflight(&self) -> usize {
        self.journal.inflight()
    }

    /// Takes journaled writes, oldest first, with at most `max_messages`
    /// durable messages among them; returns the batch and the journal
    /// position it ends at.
    pub fn take_writes(&mut self, max_messages: usize) -> (WriteBatch, u64) {
        self.journal.take(max_messages)
    }

    pub(crate) fn state_get(&self, slot: usize, key: &[u8]) -> Option<Bytes> {
        self.slots[slot].state.get(key).cloned()
    }

    pub(crate) fn state_put(&mut self, slot: usize, me: &AgentId, key: Vec<u8>, value: Bytes) {
        let s = &mut self.slots[slot];
        if s.persistent {
            self.journal.log(Mutation::PutState {
                agent: me.as_str().to_string(),
                key: key.clone(),
                value: value.clone(),
            });
        }
        let key = key.into_boxed_slice();
        let key_len = key.len();
        let added = key_len + value.len();
        let undo_key = self.state_undo.is_some().then(|| key.clone());
        let old = s.state.insert(key, value);
        s.state_bytes += added;
        if let Some(old) = &old {
            s.state_bytes -= key_len + old.len();
        }
        if let (Some(undo), Some(key)) = (&mut self.state_undo, undo_key) {
            undo.push((key, old));
        }
    }

    pub(crate) fn state_delete(&mut self, slot: usize, me: &AgentId, key: &[u8]) -> bool {
        let s = &mut self.slots[slot];
        let old = s.state.remove(key);
        let existed = old.is_some();
        if let Some(value) = &old {
            s.state_bytes -= key.len() + value.len();
            if s.persistent {
                self.journal.log(Mutation::DeleteState {
                    agent: me.as_str().to_string(),
                    key: key.to_vec(),
                });
            }
        }
        if let (Some(undo), true) = (&mut self.state_undo, existed) {
            undo.push((key.into(), old));
        }
        existed
    }

    /// Bytes of one agent's state.
    pub(crate) fn agent_state_bytes(&self, slot: usize) -> usize {
        self.slots[slot].state_bytes
    }

    /// Puts back what the failed message's writes replaced (newest first),
    /// journaled like any write, so that a failed message leaves no state.
    pub(crate) fn undo_state(&mut self, slot: usize, me: &AgentId) {
        let Some(mut undo) = self.state_undo.take() else {
            return;
        };
        while let Some((key, old)) = undo.pop() {
            match old {
                Some(value) => self.state_put(slot, me, key.into_vec(), value),
                None => {
                    self.state_delete(slot, me, &key);
                }
            }
        }
        self.state_undo = Some(undo);
    }

    /// Bytes of state values held by this shard's agents.
    pub fn state_bytes(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.live)
            .flat_map(|s| s.state.iter())
            .map(|(k, v)| k.len() + v.len())
            .sum()
    }
}
