//! A Quire shard: agents, mailboxes, priorities and routing.
//!
//! This crate is the part of a shard that has no I/O: the [`ShardCore`] state
//! machine, the [`Agent`] interface and the [`Envelope`]. The runtime crate
//! drives one `ShardCore` per pinned core, moves envelopes between them over
//! glommio's SPSC channels, and encodes them at node edges (its `protocol`).

#![warn(missing_docs)]

mod agent_id;
mod agent_status;
mod clock;
mod envelope;
mod error;
pub mod hostile_agents;
mod journal;
mod mailbox;
mod output_commit;
mod shard_core;
mod stats;
pub mod testing;
mod thread_clock;
pub mod wasm;

pub use agent_id::{fnv1a64, jump_consistent_hash, owning_shard, AgentId, InvalidAgentId, ShardId};
pub use agent_status::{AgentState, AgentStatus};
pub use clock::{Clock, ManualClock};
pub use envelope::{
    Address, ClientTicket, ConversationId, Envelope, Kind, MessageId, Priority, SendOptions,
};
pub use error::{CallError, CallFailure, DefinitionError, Rejection};
pub use journal::DurableAdmission;
pub use mailbox::Mailbox;
pub use quire_storage::{AgentRecord, DurableMessage};
pub use shard_core::{
    Agent, AgentInfo, ClientWaiter, Context, RegisterError, RemoteRoute, RemoteRoutes, ShardConfig,
    ShardCore, LATENCY_SAMPLE_EVERY,
};
pub use stats::{new_latency_histogram, ShardStats, MAX_TRACKED_NS};
pub use thread_clock::ThreadCpuClock;
