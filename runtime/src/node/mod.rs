//! The embeddable node: plans placement, checks the host, starts one pinned
//! glommio executor per shard, wires the full SPSC mesh between them, and
//! shuts them down with every message accounted for.
//!
//! `mod.rs` holds the builder, `start` the start-up (storage, placement,
//! one thread per shard, the mesh), `running` the running node and its
//! shutdown.

mod running;
mod start;

pub use running::{Node, ShutdownReport};
use std::fmt;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel;
use glommio::{CpuSet, LocalExecutorBuilder, PoolPlacement};
use quire_shards::wasm::{WasmEngine, WasmShard, WasmSpec, WASM_KIND, WASM_PATTERN_KIND};
use quire_shards::{
    Agent, AgentRecord, DefinitionError, Rejection, ShardConfig, ShardCore, ShardStats,
};
use quire_storage::faults::FaultSwitch;
use quire_storage::{partition_path, Durability, StorageError};

use crate::agent_kinds::AgentKinds;
use crate::client::Client;
use crate::command::Command;
use crate::config::NodeConfig;
use crate::placement::{inherited_affinity, Placement, PlacementError, PlacementRequest};
use crate::preflight::{check_host, PreflightError};
use crate::shard_runtime::{run_shard, Batch, Doorbell, ShardWiring};
use crate::shard_storage::{restore, RecoveryReport, StorageSetup};
use crate::topology::{MachineTopology, TopologyError};
use crate::wasm_agents::WasmDefaults;

/// Why a node did not start. Each variant's message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The topology could not be read.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// No placement fits the request.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// A host limit is in the way.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directory or a partition cannot be used.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A deployed agent's kind has no factory on this node.
    #[error(
        "{file}: agent {agent} is of kind {kind:?}, which this node does not know (known: {known}); \
         register the kind with NodeBuilder::agent_kind"
    )]
    UnknownAgentKind {
        /// The partition that holds the agent.
        file: String,
        /// The agent.
        agent: String,
        /// Its kind.
        kind: String,
        /// The kinds this node knows, comma-separated.
        known: String,
    },
    /// A deployed WebAssembly agent's module can be neither loaded from
    /// the module cache nor compiled again.
    #[error("{file} holds WebAssembly agent {agent}, whose module cannot be loaded: {reason}")]
    AgentModule {
        /// The partition.
        file: String,
        /// The agent (or name pattern).
        agent: String,
        /// Why.
        reason: String,
    },
    /// The metrics endpoint could not listen.
    #[error("{0}")]
    Metrics(String),
    /// An executor could not be created.
    #[error("shard {shard} could not start its executor on CPU {cpu}: {reason}")]
    Executor {
        /// The shard.
        shard: usize,
        /// Its CPU.
        cpu: usize,
        /// glommio's error.
        reason: String,
    },
}

/// Configures and starts a [`Node`].
///
/// ```no_run
/// use quire_runtime::Node;
/// let node = Node::builder().cpuset("0-1").mailbox_capacity(4096).start().unwrap();
/// print!("{}", node.placement());
/// node.shutdown();
/// ```
#[derive(Debug, Clone, Default)]
pub struct NodeBuilder {
    config: NodeConfig,
    affinity: Option<Vec<usize>>,
    kinds: AgentKinds,
    faults: Option<FaultSwitch>,
    compiler: Option<std::path::PathBuf>,
}

impl NodeBuilder {
    /// Starts from a whole configuration.
    pub fn config(mut self, config: NodeConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs `n` shards.
    pub fn shards(mut self, n: usize) -> Self {
        self.config.node.shards = Some(n);
        self
    }

    /// Pins shards to these CPUs (cpuset(7) list format).
    pub fn cpuset(mut self, list: &str) -> Self {
        self.config.node.cpuset = Some(list.to_owned());
        self
    }

    /// Bounds every agent's mailbox.
    pub fn mailbox_capacity(mut self, n: usize) -> Self {
        self.config.queues.mailbox_capacity = n;
        self
    }

    /// Keeps idle reactors polling this long before sleeping (low latency at
    /// the price of busy cores).
    pub fn spin_before_park(mut self, spin: Duration) -> Self {
        self.config.node.spin_before_park_us = spin.as_micros() as u64;
        self
    }

    /// Sets the durability mode (`storage.durability`).
    pub fn durability(mut self, mode: Durability) -> Self {
        self.config.storage.durability = mode;
        self
    }

    /// CPUs the commit threads may use (`storage.commit_cpuset`).
    pub fn commit_cpuset(mut self, list: &str) -> Self {
        self.config.storage.commit_cpuset = Some(list.to_owned());
        self
    }

    /// Sets the data directory (`storage.data_dir`).
    pub fn data_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.storage.data_dir = dir.into();
        self
    }

    /// Teaches the node an agent kind: [`Client::deploy`] with this kind
    /// builds agents with `factory`, and so does recovery after a restart.
    ///
    /// ```no_run
    /// use quire_runtime::Node;
    /// use quire_shards::{Agent, Context, Envelope};
    ///
    /// struct Counter;
    /// impl Agent for Counter {
    ///     fn handle(&mut self, ctx: &mut Context<'_>, _msg: Envelope) {
    ///         let n = ctx.state(b"n").map_or(0, |v| v[0]);
    ///         ctx.put_state(b"n".to_vec(), vec![n.wrapping_add(1)]);
    ///     }
    /// }
    ///
    /// let node = Node::builder()
    ///     .agent_kind("counter", |_record| Ok(Box::new(Counter)))
    ///     .start()
    ///     .unwrap();
    /// node.client().deploy_blocking("c1", "counter", Vec::new()).unwrap();
    /// ```
    pub fn agent_kind<F>(mut self, kind: &str, factory: F) -> Self
    where
        F: Fn(&AgentRecord) -> Result<Box<dyn Agent>, DefinitionError> + Send + Sync + 'static,
    {
        self.kinds.add(kind, factory);
        self
    }

    /// Runs every partition on a backend whose writes and fsyncs fail while
    /// `switch` says so: for tests of full disks and I/O errors (see
    /// [`quire_storage::faults`]).
    pub fn partition_faults(mut self, switch: FaultSwitch) -> Self {
        self.faults = Some(switch);
        self
    }

    /// Compiles new WebAssembly modules in child processes of `program`
    /// (run with [`quire_shards::wasm::COMPILE_SUBCOMMAND`]; the `quire`
    /// binary passes itself) under `wasm.compile_timeout_ms` and
    /// `wasm.compile_max_memory_bytes`. Without it, modules compile on the
    /// deploying thread with no limit.
    pub fn compile_in_child(mut self, program: std::path::PathBuf) -> Self {
        self.compiler = Some(program);
        self
    }

    /// Adds every kind of `kinds` (see [`crate::builtin_kinds`]).
    pub fn agent_kinds(mut self, kinds: AgentKinds) -> Self {
        self.kinds.extend(kinds);
        self
    }

    /// Plans against this affinity mask (these CPUs) instead of the
    /// calling thread's.
    pub fn affinity(mut self, cpus: Vec<usize>) -> Self {
        self.affinity = Some(cpus);
        self
    }

    /// The placement this builder would use on this machine, without starting.
    pub fn plan(&self) -> Result<Placement, StartError> {
        self.config.validate()?;
        let topology = MachineTopology::discover()?;
        let affinity = self.affinity.clone().unwrap_or_else(inherited_affinity);
        let request = PlacementRequest {
            cpuset: self.config.node.cpuset.clone(),
            shards: self.config.node.shards,
        };
        Ok(Placement::plan(&topology, &affinity, &request)?)
    }
}
