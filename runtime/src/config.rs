//! Node configuration: a TOML file with an embedded default.
//!
//! Unknown keys are errors (a typo must not silently fall back to a
//! default), and every bound is checked with the key named in the message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quire_shards::wasm::{AgentLimits, Supervision, WasmShardConfig};
use quire_storage::{Durability, GroupCommit};
use serde::Deserialize;

/// The configuration `quire node` runs with when given no file.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../default-config.toml");

/// Everything a node reads at start-up.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Placement and reactor behaviour.
    pub node: NodeSection,
    /// Bounds of every queue.
    pub queues: QueueSection,
    /// Durability and the data directory.
    pub storage: StorageSection,
    /// The demo workload of `quire node`.
    pub demo: DemoSection,
    /// WebAssembly agents: default limits, supervision, pools.
    pub wasm: WasmSection,
    /// Client and node-to-node sockets.
    pub network: NetworkSection,
    /// Cluster membership.
    pub cluster: ClusterSection,
    /// Message priorities: headroom and scheduling.
    pub priorities: PrioritySection,
    /// The metrics endpoint and stall reports.
    pub metrics: MetricsSection,
}

/// `[priorities]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrioritySection {
    /// Agents with High or Critical mail run before agents with only
    /// Normal and Low mail on their shard; false: one FIFO of ready agents
    /// (a mailbox still serves its own mail highest class first).
    pub express_scheduling: bool,
    /// Mailbox slots above `queues.mailbox_capacity` that only High and
    /// Critical messages may take.
    pub urgent_headroom: usize,
}

impl Default for PrioritySection {
    fn default() -> Self {
        Self {
            express_scheduling: true,
            urgent_headroom: 64,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `host:port` of the admin HTTP endpoint (`/metrics` in Prometheus
    /// text format, `/health`); unset: none (an embedded node).
    pub listen: Option<String>,
    /// A shard whose reactor runs one task this long without yielding logs
    /// a stall report and counts it (ms); 0: no stall detection.
    pub stall_threshold_ms: u64,
    /// Also turn on glommio's stall detection, which logs the backtrace of
    /// the stalled task. Off by default: it resolves the backtrace's
    /// symbols on the shard's own thread, which can take seconds with a
    /// large binary's debug info (a stall report that stalls).
    pub stall_backtraces: bool,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            listen: None,
            stall_threshold_ms: 10,
            stall_backtraces: false,
        }
    }
}

impl MetricsSection {
    /// The parsed `listen` address, if any (port 0: any free port).
    pub fn listen_addr(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        parse_listen("metrics.listen", self.listen.as_deref())
    }
}

/// `[network]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// `host:port` every shard accepts clients on (SO_REUSEPORT); shard `i`
    /// takes node-to-node links on `port + 1 + i`, and membership gossip
    /// uses UDP on `port`. `None`: no sockets (an embedded node).
    pub listen: Option<String>,
    /// Largest frame body taken from a client or a peer (bytes). Admin
    /// connections may send deploy frames up to `wasm.max_module_bytes`
    /// plus 64 KiB.
    pub max_frame_bytes: usize,
    /// How long frames ready for one connection may wait for more before
    /// they leave in one write (µs); 0: they leave at the end of the
    /// reactor turn that made them.
    pub coalesce_delay_us: u64,
    /// A connection that sent part of a frame and then nothing for this
    /// long is closed with an error frame (ms).
    pub frame_timeout_ms: u64,
    /// Reply bytes a connection may leave unread before it is closed as a
    /// slow client.
    pub max_unsent_bytes: usize,
    /// Deploy and undeploy over the wire need this token in the client's
    /// HELLO; unset: they are refused.
    pub admin_token: Option<String>,
    /// A call that came in from another node is answered `expired` after
    /// this long if its agent has not replied (ms).
    pub remote_call_timeout_ms: u64,
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            listen: None,
            max_frame_bytes: crate::protocol::DEFAULT_MAX_FRAME_BYTES,
            coalesce_delay_us: 0,
            frame_timeout_ms: 10_000,
            max_unsent_bytes: 16 << 20,
            admin_token: None,
            remote_call_timeout_ms: 30_000,
        }
    }
}

impl NetworkSection {
    /// The parsed `listen` address, if any.
    pub fn listen_addr(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        let Some(addr) = parse_listen("network.listen", self.listen.as_deref())? else {
            return Ok(None);
        };
        if addr.port() == 0 {
            return Err(ConfigError::Invalid {
                key: "network.listen",
                problem: "needs a fixed port (peers derive theirs from it)".into(),
            });
        }
        Ok(Some(addr))
    }
}

/// `listen` (a `host:port`) resolved, or the error naming `key`.
fn parse_listen(
    key: &'static str,
    listen: Option<&str>,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    use std::net::ToSocketAddrs;
    let Some(listen) = listen else {
        return Ok(None);
    };
    let invalid = |problem: String| ConfigError::Invalid { key, problem };
    listen
        .to_socket_addrs()
        .map_err(|e| invalid(format!("{listen:?} is not host:port ({e})")))?
        .next()
        .map(Some)
        .ok_or_else(|| invalid(format!("{listen:?} resolves to nothing")))
}

/// `[cluster]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// This node's name in the cluster (agents are placed by it); default:
    /// its listen address.
    pub node_name: Option<String>,
    /// `host:port` of nodes to join through (their `network.listen`).
    pub seeds: Vec<String>,
    /// Shared by every node of the cluster: node-to-node links and gossip
    /// packets are refused without it. Unset: the node stays alone.
    pub secret: Option<String>,
    /// How often each member probes another (ms).
    pub probe_period_ms: u64,
    /// How long a probe waits for its direct answer (ms).
    pub probe_rtt_ms: u64,
    /// How long a suspected member has to refute before it is declared
    /// down (ms).
    pub suspect_to_down_ms: u64,
    /// How often each member gossips to a few others (ms).
    pub gossip_period_ms: u64,
    /// Expected members (sizes how often an update is retransmitted).
    pub expected_members: u32,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            node_name: None,
            seeds: Vec::new(),
            secret: None,
            probe_period_ms: 1000,
            probe_rtt_ms: 300,
            suspect_to_down_ms: 3000,
            gossip_period_ms: 200,
            expected_members: 16,
        }
    }
}

/// `[wasm]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WasmSection {
    /// Where compiled modules are cached; default: `<data_dir>/modules` on a
    /// durable node, memory only otherwise.
    pub cache_dir: Option<PathBuf>,
    /// Largest module a deploy takes, bytes.
    pub max_module_bytes: usize,
    /// Time compiling one new module may take (a `quire node` compiles in a
    /// child process, stopped at the limit), ms.
    pub compile_timeout_ms: u64,
    /// Heap compiling one new module may use, bytes.
    pub compile_max_memory_bytes: u64,
    /// Pre-warmed instances per module and shard.
    pub pool_size: usize,
    /// An agent idle this long loses its instance (its state is kept), ms.
    pub idle_deactivate_ms: u64,
    /// Limits of every agent unless its deploy says otherwise.
    pub limits: AgentLimits,
    /// Supervision of every agent unless its deploy says otherwise.
    pub supervision: Supervision,
}

impl Default for WasmSection {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_module_bytes: 32 << 20,
            compile_timeout_ms: 30_000,
            compile_max_memory_bytes: 1 << 30,
            pool_size: 8,
            idle_deactivate_ms: 30_000,
            limits: AgentLimits::default(),
            supervision: Supervision::default(),
        }
    }
}

impl WasmSection {
    /// The limits on compiling one module.
    pub fn compile_limits(&self) -> quire_shards::wasm::CompileLimits {
        quire_shards::wasm::CompileLimits {
            max_time: Duration::from_millis(self.compile_timeout_ms),
            max_memory_bytes: self.compile_max_memory_bytes,
        }
    }

    /// The shard-side settings these give.
    pub fn shard_config(&self) -> WasmShardConfig {
        WasmShardConfig {
            pool_size: self.pool_size,
            idle_after: Duration::from_millis(self.idle_deactivate_ms),
            ..WasmShardConfig::default()
        }
    }

    /// The cache directory for a node whose storage is `storage`.
    pub fn cache_dir_for(&self, storage: &StorageSection) -> Option<PathBuf> {
        self.cache_dir.clone().or_else(|| {
            storage
                .durability
                .is_persistent()
                .then(|| storage.data_dir.join("modules"))
        })
    }
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// none, batched or immediate.
    pub durability: Durability,
    /// Data directory (partitions and manifest).
    pub data_dir: PathBuf,
    /// Node id for a new data directory's manifest.
    pub node_id: String,
    /// Durable messages per group commit, at most.
    pub batch_max_messages: usize,
    /// Longest wait of a write for its group commit, µs.
    pub batch_max_delay_us: u64,
    /// Finished message ids remembered per shard.
    pub dedup_window: usize,
    /// CPUs the commit threads may run on (cpuset list); default: any.
    pub commit_cpuset: Option<String>,
    /// Replies to clients wait for the commit of the writes they report
    /// (output commit; default on). Off only to measure what it costs: a
    /// crash can then roll back state a reply acknowledged.
    pub output_commit: bool,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            durability: Durability::None,
            data_dir: PathBuf::from("quire-data"),
            node_id: "quire-node".into(),
            batch_max_messages: 4096,
            batch_max_delay_us: 1000,
            dedup_window: 262_144,
            commit_cpuset: None,
            output_commit: true,
        }
    }
}

impl StorageSection {
    /// The group-commit policy these settings give.
    pub fn group_commit(&self) -> GroupCommit {
        GroupCommit::new(
            self.durability,
            self.batch_max_messages,
            Duration::from_micros(self.batch_max_delay_us),
        )
    }
}

/// `[node]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// Shard count (default: one per usable CPU).
    pub shards: Option<usize>,
    /// CPU list to pin to.
    pub cpuset: Option<String>,
    /// Spin before parking, µs.
    pub spin_before_park_us: u64,
    /// Drain time on shutdown, ms.
    pub shutdown_grace_ms: u64,
}

/// `[queues]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    /// Per-agent mailbox bound.
    pub mailbox_capacity: usize,
    /// Per-peer outbox bound.
    pub outbox_capacity: usize,
    /// SPSC channel capacity, in batches.
    pub mesh_channel_capacity: usize,
    /// Client command channel capacity.
    pub client_channel_capacity: usize,
    /// Pending calls per shard.
    pub max_pending_calls: usize,
    /// Pending calls one agent may have (of the shard's).
    pub max_pending_calls_per_agent: usize,
    /// Payload bytes one agent's mailbox holds (besides its message count).
    pub mailbox_max_bytes: usize,
    /// Messages per agent turn.
    pub agent_batch: usize,
    /// Handler time (µs) after which an agent's turn ends and its shard
    /// lets its other tasks run (WebAssembly agents, which time their
    /// handlers).
    pub turn_quota_us: usize,
    /// Messages per dispatcher turn.
    pub dispatch_budget: usize,
    /// Messages waiting on a shard above which it stops taking batches
    /// from its peers (backpressure across the mesh).
    pub intake_limit: usize,
}

/// `[demo]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DemoSection {
    /// Calling agents per shard.
    pub pingers_per_shard: usize,
    /// Answering agents per shard.
    pub pongers_per_shard: usize,
    /// Answering WebAssembly agents (the SDK's echo module) per shard.
    pub wasm_pongers_per_shard: usize,
    /// Call interval per pinger, µs.
    pub call_interval_us: u64,
    /// Summary interval, ms.
    pub report_interval_ms: u64,
}

// The section defaults below are what the embedded file says; a test checks
// that the two agree, so the file stays the documentation.
impl Default for NodeSection {
    fn default() -> Self {
        Self {
            shards: None,
            cpuset: None,
            spin_before_park_us: 0,
            shutdown_grace_ms: 2000,
        }
    }
}

impl Default for QueueSection {
    fn default() -> Self {
        Self {
            mailbox_capacity: 1024,
            outbox_capacity: 16384,
            mesh_channel_capacity: 256,
            client_channel_capacity: 4096,
            max_pending_calls: 65536,
            max_pending_calls_per_agent: 4096,
            mailbox_max_bytes: 16 << 20,
            agent_batch: 32,
            turn_quota_us: 500,
            dispatch_budget: 512,
            intake_limit: 8192,
        }
    }
}

impl Default for DemoSection {
    fn default() -> Self {
        Self {
            pingers_per_shard: 2,
            pongers_per_shard: 2,
            wasm_pongers_per_shard: 2,
            call_interval_us: 500,
            report_interval_ms: 2000,
        }
    }
}

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or an unknown key or a wrong type.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A `QUIRE_*` environment variable that names no key, or whose
    /// value does not fit its key.
    #[error("invalid environment variable {var}: {problem}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A value out of range.
    #[error("invalid config: {key} {problem}")]
    Invalid {
        /// Dotted key, e.g. `queues.mailbox_capacity`.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// `QUIRE_*` variables that are not config keys (read by other parts).
const NOT_CONFIG_VARS: [&str; 5] = [
    "QUIRE_LOG",
    "QUIRE_NODE",
    "QUIRE_ADMIN_TOKEN",
    "QUIRE_SYSFS",
    "QUIRE_BIN",
];

/// Config sections, longest first (so `wasm_limits_*` is not read as
/// `wasm.limits_*`).
const SECTIONS: [(&str, &[&str]); 11] = [
    ("PRIORITIES_", &["priorities"]),
    ("METRICS_", &["metrics"]),
    ("WASM_SUPERVISION_", &["wasm", "supervision"]),
    ("WASM_LIMITS_", &["wasm", "limits"]),
    ("NETWORK_", &["network"]),
    ("CLUSTER_", &["cluster"]),
    ("STORAGE_", &["storage"]),
    ("QUEUES_", &["queues"]),
    ("NODE_", &["node"]),
    ("DEMO_", &["demo"]),
    ("WASM_", &["wasm"]),
];

impl NodeConfig {
    /// The configuration a node starts with: `file` (or the embedded
    /// default), then every `QUIRE_<SECTION>_<KEY>` variable of `env` on top
    /// (e.g. `QUIRE_NODE_SHARDS=4`, `QUIRE_NETWORK_LISTEN=0.0.0.0:7400`,
    /// `QUIRE_CLUSTER_SEEDS=a:7400,b:7400`, `QUIRE_WASM_LIMITS_FUEL_PER_MESSAGE=1000`).
    /// Command-line flags go on top of this. Not validated yet: the caller
    /// validates once flags are applied.
    ///
    /// ```
    /// use quire_runtime::config::NodeConfig;
    /// let env = [("QUIRE_QUEUES_MAILBOX_CAPACITY".to_string(), "64".to_string())];
    /// let cfg = NodeConfig::load(None, env).unwrap();
    /// assert_eq!(cfg.queues.mailbox_capacity, 64);
    /// ```
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        let mut doc: toml::Table =
            toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("QUIRE_") && !NOT_CONFIG_VARS.contains(&k.as_str()))
            .collect();
        vars.sort();
        for (var, value) in vars {
            let rest = &var["QUIRE_".len()..];
            let Some((prefix, path)) = SECTIONS.iter().find(|(p, _)| rest.starts_with(p)) else {
                return Err(ConfigError::Env {
                    var,
                    problem: "names no config section (node, queues, storage, wasm, wasm_limits, wasm_supervision, network, cluster, demo)".into(),
                });
            };
            let key = rest[prefix.len()..].to_ascii_lowercase();
            let mut table = &mut doc;
            for section in *path {
                table = table
                    .entry(section.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| ConfigError::Parse(format!("[{section}] is not a table")))?;
            }
            table.insert(key, env_value(&var, &value));
        }
        let cfg: Self = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        Ok(cfg)
    }

    /// Parses and validates TOML text.
    ///
    /// ```
    /// use quire_runtime::config::NodeConfig;
    /// let cfg = NodeConfig::from_toml("[queues]\nmailbox_capacity = 64").unwrap();
    /// assert_eq!(cfg.queues.mailbox_capacity, 64);
    /// assert!(NodeConfig::from_toml("[queues]\nmailbox_capacty = 64").is_err());
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Checks every bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("queues.mailbox_capacity", self.queues.mailbox_capacity),
            ("queues.outbox_capacity", self.queues.outbox_capacity),
            (
                "queues.mesh_channel_capacity",
                self.queues.mesh_channel_capacity,
            ),
            (
                "queues.client_channel_capacity",
                self.queues.client_channel_capacity,
            ),
            ("queues.max_pending_calls", self.queues.max_pending_calls),
            (
                "queues.max_pending_calls_per_agent",
                self.queues.max_pending_calls_per_agent,
            ),
            ("queues.mailbox_max_bytes", self.queues.mailbox_max_bytes),
            ("queues.agent_batch", self.queues.agent_batch),
            ("queues.turn_quota_us", self.queues.turn_quota_us),
            ("queues.dispatch_budget", self.queues.dispatch_budget),
            ("queues.intake_limit", self.queues.intake_limit),
            (
                "demo.report_interval_ms",
                self.demo.report_interval_ms as usize,
            ),
            ("demo.call_interval_us", self.demo.call_interval_us as usize),
            (
                "storage.batch_max_messages",
                self.storage.batch_max_messages,
            ),
            ("storage.dedup_window", self.storage.dedup_window),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    problem: "must be at least 1".into(),
                });
            }
        }
        if self.node.shards == Some(0) {
            return Err(ConfigError::Invalid {
                key: "node.shards",
                problem: "must be at least 1".into(),
            });
        }
        if self.storage.durability.is_persistent() && self.storage.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "storage.data_dir",
                problem: "must name a directory when durability is not none".into(),
            });
        }
        if let Some(list) = &self.storage.commit_cpuset {
            crate::cpuset::parse_cpu_list(list).map_err(|e| ConfigError::Invalid {
                key: "storage.commit_cpuset",
                problem: e.to_string(),
            })?;
        }
        if self.storage.batch_max_delay_us > 10_000_000 {
            return Err(ConfigError::Invalid {
                key: "storage.batch_max_delay_us",
                problem: format!(
                    "is {} but at most 10000000 (10 s) makes sense",
                    self.storage.batch_max_delay_us
                ),
            });
        }
        self.wasm
            .limits
            .validate()
            .map_err(|problem| ConfigError::Invalid {
                key: "wasm.limits",
                problem,
            })?;
        for (key, value) in [
            ("wasm.max_module_bytes", self.wasm.max_module_bytes as u64),
            ("wasm.compile_timeout_ms", self.wasm.compile_timeout_ms),
            (
                "wasm.compile_max_memory_bytes",
                self.wasm.compile_max_memory_bytes,
            ),
            ("wasm.idle_deactivate_ms", self.wasm.idle_deactivate_ms),
            (
                "wasm.supervision.max_failures",
                u64::from(self.wasm.supervision.max_failures),
            ),
            (
                "wasm.supervision.window_ms",
                self.wasm.supervision.window_ms,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    problem: "must be at least 1".into(),
                });
            }
        }
        for (key, value) in [
            (
                "network.max_frame_bytes",
                self.network.max_frame_bytes as u64,
            ),
            ("network.frame_timeout_ms", self.network.frame_timeout_ms),
            (
                "network.max_unsent_bytes",
                self.network.max_unsent_bytes as u64,
            ),
            (
                "network.remote_call_timeout_ms",
                self.network.remote_call_timeout_ms,
            ),
            ("cluster.probe_rtt_ms", self.cluster.probe_rtt_ms),
            (
                "cluster.suspect_to_down_ms",
                self.cluster.suspect_to_down_ms,
            ),
            ("cluster.gossip_period_ms", self.cluster.gossip_period_ms),
            (
                "cluster.expected_members",
                u64::from(self.cluster.expected_members),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    problem: "must be at least 1".into(),
                });
            }
        }
        if self.network.max_frame_bytes > u32::MAX as usize {
            return Err(ConfigError::Invalid {
                key: "network.max_frame_bytes",
                problem: "must fit the 4-byte length prefix".into(),
            });
        }
        if self.cluster.probe_period_ms <= self.cluster.probe_rtt_ms {
            return Err(ConfigError::Invalid {
                key: "cluster.probe_period_ms",
                problem: format!(
                    "is {} but must be larger than cluster.probe_rtt_ms ({})",
                    self.cluster.probe_period_ms, self.cluster.probe_rtt_ms
                ),
            });
        }
        self.network.listen_addr()?;
        self.metrics.listen_addr()?;
        if !self.cluster.seeds.is_empty() {
            if self.network.listen.is_none() {
                return Err(ConfigError::Invalid {
                    key: "cluster.seeds",
                    problem: "a node joins a cluster only with network.listen set".into(),
                });
            }
            if self.cluster.secret.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::Invalid {
                    key: "cluster.secret",
                    problem: "is required to join a cluster (cluster.seeds is set)".into(),
                });
            }
        }
        if self.node.spin_before_park_us > 1_000_000 {
            return Err(ConfigError::Invalid {
                key: "node.spin_before_park_us",
                problem: format!(
                    "is {} but at most 1000000 (1 s) makes sense",
                    self.node.spin_before_park_us
                ),
            });
        }
        Ok(())
    }

    /// `node.spin_before_park_us` as a duration (`None` when 0).
    pub fn spin_before_park(&self) -> Option<Duration> {
        (self.node.spin_before_park_us > 0)
            .then(|| Duration::from_micros(self.node.spin_before_park_us))
    }
}

/// Keys whose values are strings even when they look like numbers.
const STRING_KEYS: [&str; 11] = [
    "_CPUSET",
    "_COMMIT_CPUSET",
    "_LISTEN",
    "_ADMIN_TOKEN",
    "_NODE_NAME",
    "_SECRET",
    "_DATA_DIR",
    "_NODE_ID",
    "_CACHE_DIR",
    "_DURABILITY",
    "_POLICY",
];

/// An environment value as TOML: a list for `seeds`, a string for string
/// keys, else a number or boolean when it reads as one, else a string.
fn env_value(var: &str, value: &str) -> toml::Value {
    if STRING_KEYS.iter().any(|k| var.ends_with(k)) {
        return toml::Value::String(value.to_string());
    }
    if var.ends_with("_SEEDS") {
        return toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        );
    }
    if let Ok(i) = value.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match value {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("quire-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("q.toml");
        std::fs::write(
            &file,
            "[queues]\nmailbox_capacity = 10\nagent_batch = 3\n[wasm.limits]\nfuel_per_message = 5\n",
        )
        .unwrap();
        let cfg = NodeConfig::load(
            Some(&file),
            vars(&[
                ("QUIRE_QUEUES_MAILBOX_CAPACITY", "20"),
                ("QUIRE_WASM_LIMITS_FUEL_PER_MESSAGE", "7"),
                ("QUIRE_NETWORK_LISTEN", "127.0.0.1:7999"),
                ("QUIRE_CLUSTER_SEEDS", "a:1, b:2"),
                ("QUIRE_STORAGE_DURABILITY", "batched"),
                ("QUIRE_LOG", "debug"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.queues.mailbox_capacity, 20);
        assert_eq!(cfg.queues.agent_batch, 3, "the file's value stays");
        assert_eq!(cfg.wasm.limits.fuel_per_message, 7);
        assert_eq!(cfg.network.listen.as_deref(), Some("127.0.0.1:7999"));
        assert_eq!(
            cfg.cluster.seeds,
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert!(cfg.storage.durability.is_persistent());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_environment_variables_are_named() {
        let err =
            NodeConfig::load(None, vars(&[("QUIRE_QUEUES_MAILBOX_CAPACTY", "2")])).unwrap_err();
        assert!(err.to_string().contains("mailbox_capacty"), "{err}");
        let err = NodeConfig::load(None, vars(&[("QUIRE_NOPE_X", "2")])).unwrap_err();
        assert!(err.to_string().contains("QUIRE_NOPE_X"), "{err}");
        let err =
            NodeConfig::load(None, vars(&[("QUIRE_QUEUES_MAILBOX_CAPACITY", "lots")])).unwrap_err();
        assert!(err.to_string().contains("mailbox_capacity"), "{err}");
    }

    #[test]
    fn priorities_and_metrics_come_from_file_and_environment() {
        let cfg = NodeConfig::from_toml(
            "[priorities]\nexpress_scheduling = false\nurgent_headroom = 3\n[metrics]\nlisten = \"127.0.0.1:9401\"\nstall_threshold_ms = 0\n",
        )
        .unwrap();
        assert!(!cfg.priorities.express_scheduling);
        assert_eq!(cfg.priorities.urgent_headroom, 3);
        assert_eq!(
            cfg.metrics.listen_addr().unwrap(),
            Some("127.0.0.1:9401".parse().unwrap())
        );
        assert_eq!(cfg.metrics.stall_threshold_ms, 0);
        let cfg = NodeConfig::load(
            None,
            vars(&[
                ("QUIRE_PRIORITIES_URGENT_HEADROOM", "7"),
                ("QUIRE_METRICS_LISTEN", "127.0.0.1:9402"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.priorities.urgent_headroom, 7);
        assert_eq!(cfg.metrics.listen.as_deref(), Some("127.0.0.1:9402"));
        let err = NodeConfig::from_toml("[metrics]\nlisten = \"nowhere\"").unwrap_err();
        assert!(err.to_string().contains("metrics.listen"), "{err}");
        let err = NodeConfig::from_toml("[priorities]\nexpress = true").unwrap_err();
        assert!(err.to_string().contains("express"), "{err}");
    }

    #[test]
    fn embedded_default_matches_the_code_defaults() {
        let parsed = NodeConfig::from_toml(DEFAULT_CONFIG_TOML).unwrap();
        let empty = NodeConfig::from_toml("").unwrap();
        assert_eq!(parsed, empty);
    }

    #[test]
    fn errors_name_the_key() {
        let err = NodeConfig::from_toml("[queues]\nmailbox_capacity = 0").unwrap_err();
        assert!(
            err.to_string()
                .contains("queues.mailbox_capacity must be at least 1"),
            "{err}"
        );
        let err = NodeConfig::from_toml("[node]\nshards = 0").unwrap_err();
        assert!(err.to_string().contains("node.shards"), "{err}");
        let err = NodeConfig::from_toml("[node]\nsharts = 2").unwrap_err();
        assert!(err.to_string().contains("sharts"), "{err}");
        let err = NodeConfig::from_toml("[queues]\nmailbox_capacity = \"big\"").unwrap_err();
        assert!(err.to_string().contains("mailbox_capacity"), "{err}");
        let err = NodeConfig::from_toml("[storage]\ndurability = \"sometimes\"").unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        let err = NodeConfig::from_toml("[storage]\nbatch_max_messages = 0").unwrap_err();
        assert!(
            err.to_string().contains("storage.batch_max_messages"),
            "{err}"
        );
        let err = NodeConfig::from_toml("[storage]\ndurability = \"batched\"\ndata_dir = \"\"")
            .unwrap_err();
        assert!(err.to_string().contains("storage.data_dir"), "{err}");
        let err = NodeConfig::from_toml("[node]\nspin_before_park_us = 5000000").unwrap_err();
        assert!(
            err.to_string().contains("node.spin_before_park_us"),
            "{err}"
        );
    }

    #[test]
    fn missing_file_is_named() {
        let err = NodeConfig::from_file(Path::new("/nonexistent/quire.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/quire.toml"));
    }
}
