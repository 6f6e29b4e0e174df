//! The `[section]` structs of a node's configuration, with their defaults
//! (the embedded default file says the same, with comments).

use std::path::PathBuf;
use std::time::Duration;

use quire_shards::wasm::{AgentLimits, Supervision, WasmShardConfig};
use quire_storage::{Durability, GroupCommit};
use serde::Deserialize;

use super::ConfigError;

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
    /// A connection that has not finished its `HELLO` this long after it
    /// was accepted is closed with an error frame (ms): an idle socket
    /// holds no buffer of the node's for good.
    pub hello_timeout_ms: u64,
    /// Reply bytes a connection may leave unread before it is closed as a
    /// slow client.
    pub max_unsent_bytes: usize,
    /// A client presenting this token in its HELLO is granted every scope
    /// (the credential named `admin`); unset: no such token.
    pub admin_token: Option<String>,
    /// More tokens, each with its own scopes (`[[network.tokens]]`).
    pub tokens: Vec<TokenEntry>,
    /// The scopes of a connection that presents no credential: `message`
    /// and `read` by default (calls, sends and listings need no token;
    /// deploys do). `[]`: every request needs a token.
    pub anonymous_scopes: Vec<String>,
    /// Requests one connection may have unanswered at once; the next is
    /// answered `ERROR WINDOW_FULL` and not acted on. Stated in WELCOME.
    pub max_requests_in_flight: usize,
    /// A call that came in from another node is answered `expired` after
    /// this long if its agent has not replied (ms).
    pub remote_call_timeout_ms: u64,
    /// TLS on the client port (`[network.tls]`); unset: clear text.
    pub tls: Option<ClientTls>,
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            listen: None,
            max_frame_bytes: crate::protocol::DEFAULT_MAX_FRAME_BYTES,
            coalesce_delay_us: 0,
            frame_timeout_ms: 10_000,
            hello_timeout_ms: 5_000,
            max_unsent_bytes: 16 << 20,
            admin_token: None,
            tokens: Vec::new(),
            anonymous_scopes: vec!["message".into(), "read".into()],
            max_requests_in_flight: 16_384,
            remote_call_timeout_ms: 30_000,
            tls: None,
        }
    }
}

/// `[network.tls]`: the client port speaks TLS only (a clear-text HELLO
/// is refused by the handshake), with this certificate.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// PEM: this node's certificate, then any intermediates. Its names
    /// (DNS or IP) are what clients check the node against.
    pub cert_file: PathBuf,
    /// PEM: the certificate's private key (PKCS#8, SEC1 or PKCS#1).
    pub key_file: PathBuf,
}

/// `[cluster.tls]`: node links speak mutual TLS. Both ends present a
/// certificate from `ca_file`'s authority; the certificate must name the
/// node (its `cluster.node_name` as a DNS name), so a node holding the
/// cluster secret can no longer claim another node's name.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkTls {
    /// PEM: the certificate authority every node's link certificate is
    /// signed by.
    pub ca_file: PathBuf,
    /// PEM: this node's certificate (naming `cluster.node_name`).
    pub cert_file: PathBuf,
    /// PEM: its private key.
    pub key_file: PathBuf,
}

/// One `[[network.tokens]]` entry: a secret a client may present in its
/// HELLO and the scopes it grants.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// What WELCOME, logs and errors call it (never the secret).
    pub name: String,
    /// The secret itself; or give `secret_file` instead.
    #[serde(default)]
    pub secret: String,
    /// A file holding the secret (read when the node starts; one trailing
    /// newline is dropped), e.g. a systemd credential or a mounted secret,
    /// so the config file itself holds none.
    #[serde(default)]
    pub secret_file: Option<std::path::PathBuf>,
    /// Any of `message` (CALL, SEND), `read` (AGENTS, STATS, MEMBERS,
    /// WHERE), `admin` (DEPLOY, DEPLOY_MANY, UNDEPLOY).
    pub scopes: Vec<String>,
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
    /// Mutual TLS on node links (`[cluster.tls]`); unset: clear text.
    pub tls: Option<LinkTls>,
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
            tls: None,
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
