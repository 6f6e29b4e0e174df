//! The vocabulary between a node's handles and its shards: what a
//! [`crate::Client`] (and the network, the membership, the admin endpoint)
//! asks of a shard ([`Command`]), and the answers that come back
//! ([`DeployError`], [`DurableReceipt`], [`DurableError`], a shutdown
//! [`Probe`], [`ShardNames`]). A leaf: it names data, never a task, so the
//! client and the shard runtime both depend on it and not on each other.

use std::time::Duration;

use bytes::Bytes;
use quire_shards::wasm::{WasmError, WasmShardStats};
use quire_shards::{
    Agent, AgentId, AgentInfo, AgentRecord, CallError, DefinitionError, Envelope, MessageId,
    RegisterError, Rejection, SendOptions, ShardStats,
};

/// Builds an agent on its shard's thread (agents need not be `Send`).
pub type AgentFactory = Box<dyn FnOnce() -> Box<dyn Agent> + Send>;

/// Requests from client handles to a shard.
pub(crate) enum Command {
    Register {
        id: AgentId,
        factory: AgentFactory,
        done: flume::Sender<Result<(), RegisterError>>,
    },
    /// Many native agents at once (`Client::register_many`): an answer
    /// per agent, in order.
    RegisterMany {
        agents: Vec<(AgentId, AgentFactory)>,
        done: flume::Sender<Vec<Result<(), RegisterError>>>,
    },
    /// Many deploys at once (`Client::deploy_wasm_many`): answered, in
    /// order, once the shard's journal holding them all is committed.
    DeployMany {
        records: Vec<AgentRecord>,
        done: flume::Sender<Vec<Result<(), DeployError>>>,
    },
    Unregister {
        id: AgentId,
        done: flume::Sender<Result<usize, RegisterError>>,
    },
    Deploy {
        record: AgentRecord,
        done: flume::Sender<Result<(), DeployError>>,
    },
    SendDurable {
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        dedup: u64,
        done: flume::Sender<Result<DurableReceipt, DurableError>>,
    },
    Send {
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        done: flume::Sender<Result<MessageId, Rejection>>,
    },
    Call {
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        timeout: Duration,
        done: flume::Sender<Result<Envelope, CallError>>,
    },
    Stats {
        done: flume::Sender<ShardStats>,
    },
    Redeploy {
        record: AgentRecord,
        done: flume::Sender<Result<(), DeployError>>,
    },
    SetStopped {
        id: AgentId,
        stopped: bool,
        done: flume::Sender<Result<(), RegisterError>>,
    },
    ListAgents {
        done: flume::Sender<Vec<AgentInfo>>,
    },
    DeployPattern {
        record: AgentRecord,
        done: flume::Sender<Result<(), DeployError>>,
    },
    UndeployPattern {
        pattern: String,
        done: flume::Sender<Result<bool, DeployError>>,
    },
    WasmStats {
        done: flume::Sender<WasmShardStats>,
    },
    /// The name patterns the shard knows, with their modules' short hashes.
    Patterns {
        done: flume::Sender<Vec<(String, String)>>,
    },
    /// The shard's figures for a scrape of `/metrics`.
    Metrics {
        done: flume::Sender<crate::metrics::ShardMetrics>,
    },
    Probe {
        done: flume::Sender<Probe>,
    },
    /// Names of the agents in published running slots (slot + 1), for a
    /// CPU profile.
    NameSlots {
        slots: Vec<usize>,
        done: flume::Sender<ShardNames>,
    },
    /// The cluster's members changed (sent by the membership on shard 0).
    Members {
        members: Vec<crate::cluster::MemberInfo>,
    },
    Drain,
    Stop,
}

/// A shard's answer to "are you done?" during shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    pub idle: bool,
    pub cross_out: u64,
    pub cross_in: u64,
}

/// What a shard tells a profile once sampling ends.
#[derive(Debug, Default)]
pub(crate) struct ShardNames {
    /// The agents in the sampled slots (slot + 1, name).
    pub names: Vec<(usize, String)>,
    /// The agent with the most messages waiting, and how many.
    pub fullest_mailbox: Option<(String, u64)>,
}

/// A durable send's acknowledgement: the message is committed (or was
/// already, under the same de-duplication id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableReceipt {
    /// The message's id on the node; `None` for a duplicate.
    pub id: Option<MessageId>,
    /// The same de-duplication id was accepted before: nothing new was
    /// queued, and the first one is (or was) delivered exactly once.
    pub duplicate: bool,
}

/// Why a durable send was not acknowledged. Either way the message may be
/// sent again with the same de-duplication id without risk of a double.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurableError {
    /// Refused at once (full mailbox, no such agent, shutting down).
    #[error("refused: {0}")]
    Rejected(Rejection),
    /// The shard's partition could not commit it.
    #[error("storage failed: {0}")]
    Storage(String),
}

/// Why a deploy failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// The kind is unknown, or its factory refused the config.
    #[error("cannot build agent {name}: {reason}")]
    Build {
        /// The agent.
        name: String,
        /// What was wrong with its definition.
        reason: DefinitionError,
    },
    /// The name is taken, or the node is stopping.
    #[error(transparent)]
    Register(RegisterError),
    /// The definition could not be committed.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The WebAssembly module was refused (does not compile, not an agent,
    /// over a limit).
    #[error("cannot deploy agent {name}: {source}")]
    Module {
        /// The agent.
        name: String,
        /// Why.
        source: WasmError,
    },
}
