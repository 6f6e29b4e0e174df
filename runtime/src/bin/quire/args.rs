//! The command line of `quire`: every subcommand, its flags and their help.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use quire_storage::Durability;

#[derive(Parser)]
#[command(
    name = "quire",
    version,
    about = "Quire: a thread-per-core runtime for WebAssembly agents"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Verb,
}

#[derive(clap::Args, Clone)]
pub struct PlacementArgs {
    /// Config file (TOML); default: the embedded configuration.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Number of shards (default: one per CPU of the affinity mask).
    #[arg(long)]
    pub shards: Option<usize>,
    /// CPUs to pin shards to, cpuset(7) list format, e.g. 0-3,8.
    #[arg(long)]
    pub cpuset: Option<String>,
    /// none, batched or immediate (overrides storage.durability).
    #[arg(long)]
    pub durability: Option<Durability>,
    /// Data directory (overrides storage.data_dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Where a client command goes.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// The node's client address.
    #[arg(long, env = "QUIRE_NODE", default_value = "127.0.0.1:7400")]
    pub node: String,
    /// A token for the HELLO: the node's admin token or one of its
    /// `[[network.tokens]]`; its scopes decide what may be asked (deploys
    /// need `admin`).
    #[arg(long, env = "QUIRE_ADMIN_TOKEN")]
    pub token: Option<String>,
    /// Connect over TLS, trusting the certificate authority in this PEM
    /// file (a node with `[network.tls]` speaks TLS only).
    #[arg(long, env = "QUIRE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// The name the node's certificate must carry (default: the host of
    /// --node).
    #[arg(long, env = "QUIRE_TLS_NAME", requires = "tls_ca")]
    pub tls_name: Option<String>,
}

impl Target {
    /// A connection to the node at `addr` with this target's token and TLS.
    pub fn connect(
        &self,
        addr: &str,
    ) -> Result<quire_client::RemoteClient, quire_client::ClientError> {
        let tls = match &self.tls_ca {
            Some(ca) => {
                let options = quire_client::TlsOptions::from_ca_file(ca)?;
                Some(match &self.tls_name {
                    Some(name) => options.server_name(name.clone()),
                    None => options,
                })
            }
            None => None,
        };
        quire_client::RemoteClient::open(addr, self.token.as_deref(), tls.as_ref())
    }
}

/// A node's admin HTTP endpoint.
#[derive(clap::Args, Clone)]
pub struct AdminTarget {
    /// The node's metrics endpoint (its --metrics address).
    #[arg(long, env = "QUIRE_METRICS", default_value = "127.0.0.1:9400")]
    pub metrics: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ProfileKind {
    Cpu,
    Memory,
}

/// Sockets and cluster of `quire node`.
#[derive(clap::Args, Clone)]
pub struct NetArgs {
    /// Client address (shard i takes node links on port + 1 + i; gossip is
    /// UDP on port); default: network.listen, else 127.0.0.1:7400.
    #[arg(long)]
    pub listen: Option<String>,
    /// Open no socket at all.
    #[arg(long, conflicts_with = "listen")]
    pub no_listen: bool,
    /// Nodes to join through, host:port,... (their --listen addresses).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// The cluster's shared secret.
    #[arg(long, env = "QUIRE_CLUSTER_SECRET")]
    pub secret: Option<String>,
    /// Token that deploy and undeploy over the wire must present.
    #[arg(long, env = "QUIRE_ADMIN_TOKEN")]
    pub admin_token: Option<String>,
    /// This node's name in the cluster (default: its listen address).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Also run the demo agents (pingers calling pongers across shards,
    /// durable counters on a durable node) and print a latency summary
    /// every `demo.report_interval_ms`. Off unless asked: a node users run
    /// carries no load of its own. Refused in a cluster (demo agents are
    /// placed per node, not by the cluster).
    #[arg(long, conflicts_with = "no_demo")]
    pub demo: bool,
    /// No demo agents: the default since `--demo` exists; still accepted
    /// so unit files written for older releases start.
    #[arg(long, hide = true)]
    pub no_demo: bool,
    /// Admin HTTP endpoint for GET /metrics and /health; default:
    /// metrics.listen, else 127.0.0.1:9400 (with --no-listen: none).
    #[arg(long)]
    pub metrics: Option<String>,
    /// Serve no metrics endpoint.
    #[arg(long, conflicts_with = "metrics")]
    pub no_metrics: bool,
}

#[derive(Subcommand)]
pub enum Verb {
    /// Run a node: its shards, client port and metrics until Ctrl-C (or
    /// --duration); --demo adds the demo agents and a latency summary.
    Node {
        #[command(flatten)]
        placement: PlacementArgs,
        /// Keep idle reactors polling this many µs before sleeping.
        #[arg(long)]
        spin_us: Option<u64>,
        /// Stop after this many seconds instead of waiting for Ctrl-C.
        #[arg(long)]
        duration: Option<f64>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Send a one-way message to an agent of a running node.
    Send {
        #[command(flatten)]
        to: Target,
        /// The agent.
        agent: String,
        /// The message: JSON (sent as MessagePack) or any text (a MessagePack string).
        payload: String,
        /// Wait until the message is committed on its agent's shard (the
        /// node must run with persistent durability); needs --key.
        #[arg(long, requires = "key")]
        durable: bool,
        /// Idempotency key: a durable send retried with the same key is
        /// handled once.
        #[arg(long, requires = "durable")]
        key: Option<String>,
    },
    /// Call an agent of a running node and print its reply.
    Call {
        #[command(flatten)]
        to: Target,
        /// The agent.
        agent: String,
        /// The request: JSON (sent as MessagePack) or any text (a MessagePack string).
        payload: String,
        /// How long to wait for the reply (ms).
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
    },
    /// Deploy a WebAssembly agent module on a running node (needs the admin token).
    Deploy {
        #[command(flatten)]
        to: Target,
        /// The module (.wasm).
        file: PathBuf,
        /// The agent's name, or a pattern `prefix-*` (deployed on every
        /// member); several names (comma-separated) deploy the module under
        /// each in one request (compiled once, one commit per shard).
        #[arg(long, value_delimiter = ',', required = true)]
        name: Vec<String>,
        /// A limit or supervision setting of this agent (KEY=VALUE, the
        /// names of [wasm.limits] and [wasm.supervision], e.g.
        /// fuel_per_message=50000, policy=stop); repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Remove an agent (or a pattern) from a running node (needs the admin token).
    Undeploy {
        #[command(flatten)]
        to: Target,
        /// The agent or pattern.
        name: String,
    },
    /// Replace a deployed WebAssembly agent's module in place: its state
    /// and queue are kept (needs the admin scope).
    Reload {
        #[command(flatten)]
        to: Target,
        /// The new module (.wasm).
        file: PathBuf,
        /// The agent's name.
        #[arg(long)]
        name: String,
        /// Limit or supervision settings (KEY=VALUE), as for deploy; the
        /// others are the node's defaults.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Stop an agent: it keeps its state and queue, messages to it are
    /// refused `agent_stopped` until `quire start` (needs the admin scope).
    Stop {
        #[command(flatten)]
        to: Target,
        /// The agent's name.
        name: String,
    },
    /// Start a stopped or quarantined agent again (needs the admin scope).
    Start {
        #[command(flatten)]
        to: Target,
        /// The agent's name.
        name: String,
    },
    /// One agent's state, version, queue, failures, memory and time.
    Info {
        #[command(flatten)]
        to: Target,
        /// The agent's name.
        name: String,
    },
    /// List the name patterns (`prefix-*`) deployed on a running node.
    Patterns {
        #[command(flatten)]
        to: Target,
    },
    /// List the agents of a running node.
    Agents {
        #[command(flatten)]
        to: Target,
    },
    /// Per-shard counters of a running node.
    Stats {
        #[command(flatten)]
        to: Target,
    },
    /// Where an agent lives: its owning node and shard, and whether it is
    /// deployed there (asked of the owner when another node owns it).
    Where {
        /// The agent's name.
        name: String,
        #[command(flatten)]
        to: Target,
    },
    /// The cluster's members as a node sees them.
    Cluster {
        #[command(flatten)]
        to: Target,
    },
    /// Make a certificate authority and one certificate per node, for
    /// `[network.tls]` and `[cluster.tls]`: DIR/ca.pem, DIR/ca.key and
    /// DIR/NODE.pem, DIR/NODE.key for each node.
    Certs {
        /// Where to write them.
        #[arg(long)]
        out: PathBuf,
        /// Node names, a,b,... (each certificate names its node).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Host names and IP addresses clients reach the nodes by, put in
        /// every certificate.
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
        hosts: Vec<String>,
        /// Days the certificates are valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Print where shards would run on this machine, and exit.
    Placement {
        #[command(flatten)]
        placement: PlacementArgs,
    },
    /// Check this host: io_uring, limits, vm.max_map_count, CPU governor,
    /// transparent huge pages, NUMA layout against the planned shards.
    Doctor {
        #[command(flatten)]
        placement: PlacementArgs,
        /// Read proc/ and sys/ under this directory (tests fake a host).
        #[arg(long, hide = true)]
        root: Option<PathBuf>,
        /// With --root: the soft RLIMIT_MEMLOCK (bytes) and RLIMIT_NOFILE to judge.
        #[arg(long, hide = true, num_args = 2, value_names = ["MEMLOCK", "NOFILE"])]
        limits: Vec<u64>,
    },
    /// Profile a running node through its admin endpoint: `cpu` (per
    /// shard, by agent and by runtime activity) or `memory` (jemalloc's
    /// figures and a heap profile of the window).
    Profile {
        /// cpu or memory.
        kind: ProfileKind,
        #[command(flatten)]
        admin: AdminTarget,
        /// How long to sample, seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Where to write the profile: JSON for cpu (`--folded` for
        /// flame-graph tools), the jeprof heap profile for memory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Samples per second per shard (cpu).
        #[arg(long, default_value_t = 499)]
        hz: u32,
        /// Write the cpu profile as folded stacks instead of JSON.
        #[arg(long)]
        folded: bool,
    },
    /// Say in words which shard, agent or queue of a running node is the
    /// bottleneck: two scrapes of /metrics, a CPU profile between them, and
    /// this host's load.
    Diagnose {
        #[command(flatten)]
        admin: AdminTarget,
        /// How long to watch, seconds.
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
    },
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Data directories (offline: the node must be stopped).
    #[command(subcommand)]
    Storage(StorageCommand),
}

#[derive(Subcommand)]
pub enum StorageCommand {
    /// Move every agent, its state and its unfinished durable messages to
    /// the partition that owns it under a new shard count.
    Reshard {
        /// The data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The new shard count.
        #[arg(long)]
        shards: usize,
    },
    /// Verify every partition (checksums and records) and summarise it.
    Check {
        /// The data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the default configuration, with comments.
    Default,
    /// Validate a configuration file and print the sockets it lays out
    /// (a layout whose ports collide with each other is refused).
    Check {
        /// The file.
        file: PathBuf,
        /// Shards to lay the link ports out for; default: as the file
        /// places them on this machine.
        #[arg(long)]
        shards: Option<usize>,
    },
}
