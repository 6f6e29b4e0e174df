//! A write batch: the mutations a shard made since its last commit, in the
//! order it made them. One batch is one redb transaction, so a message's
//! completion and the state its handler wrote become durable together.

use bytes::Bytes;

use crate::records::{AgentRecord, DurableMessage};

/// One change to a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Defines (or redefines) an agent.
    PutAgent(AgentRecord),
    /// Removes an agent with all its state.
    DeleteAgent(String),
    /// Sets one state key of an agent.
    PutState {
        /// The agent.
        agent: String,
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Bytes,
    },
    /// Removes one state key of an agent.
    DeleteState {
        /// The agent.
        agent: String,
        /// The key.
        key: Vec<u8>,
    },
    /// A durable message was accepted.
    Enqueue(DurableMessage),
    /// The durable message `seq` was handled (or dead-lettered): it leaves
    /// the inbox and its `dedup` id takes ring slot `slot` of the
    /// de-duplication window.
    Finish {
        /// Its inbox key.
        seq: u64,
        /// Its sender's id.
        dedup: u64,
        /// Its place in the de-duplication window.
        slot: u32,
    },
}

/// Mutations to commit as one transaction.
///
/// ```
/// use quire_storage::{Mutation, WriteBatch};
/// let mut b = WriteBatch::default();
/// b.push(Mutation::DeleteAgent("old".into()));
/// assert_eq!((b.len(), b.messages()), (1, 0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    mutations: Vec<Mutation>,
    messages: usize,
}

impl WriteBatch {
    /// Appends a mutation.
    pub fn push(&mut self, m: Mutation) {
        if matches!(m, Mutation::Enqueue(_)) {
            self.messages += 1;
        }
        self.mutations.push(m);
    }

    /// Mutations in the batch.
    pub fn len(&self) -> usize {
        self.mutations.len()
    }

    /// True when there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.mutations.is_empty()
    }

    /// Durable messages accepted in the batch.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// The mutations, in order.
    pub fn mutations(&self) -> &[Mutation] {
        &self.mutations
    }

    /// Takes the mutations out.
    pub fn into_mutations(self) -> Vec<Mutation> {
        self.mutations
    }
}

impl FromIterator<Mutation> for WriteBatch {
    fn from_iter<I: IntoIterator<Item = Mutation>>(iter: I) -> Self {
        let mut b = WriteBatch::default();
        for m in iter {
            b.push(m);
        }
        b
    }
}
