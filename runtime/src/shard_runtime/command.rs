//! What client handles ask of a shard (`Command`), and the shard's answer
//! to a shutdown probe.

use super::*;

/// What crosses the mesh: envelopes in send order.
pub(crate) type Batch = Vec<Envelope>;

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
        done: flume::Sender<crate::profile::ShardNames>,
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
