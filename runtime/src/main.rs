//! The `quire` command: run a node, show its placement, handle its config.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use quire_runtime::builtin_kinds::builtin_kinds;
use quire_runtime::config::{NodeConfig, DEFAULT_CONFIG_TOML};
use quire_runtime::net::{ClientError, RemoteClient};
use quire_runtime::protocol::ErrorCode;
use quire_runtime::{demo, Node, NodeBuilder};
use quire_shards::{owning_shard, ShardStats};
use quire_storage::{partition_path, Durability, Partition};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "quire",
    version,
    about = "Quire: a thread-per-core runtime for WebAssembly agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct PlacementArgs {
    /// Config file (TOML); default: the embedded configuration.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Number of shards (default: one per CPU of the affinity mask).
    #[arg(long)]
    shards: Option<usize>,
    /// CPUs to pin shards to, cpuset(7) list format, e.g. 0-3,8.
    #[arg(long)]
    cpuset: Option<String>,
    /// none, batched or immediate (overrides storage.durability).
    #[arg(long)]
    durability: Option<Durability>,
    /// Data directory (overrides storage.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Where a client command goes.
#[derive(clap::Args, Clone)]
struct Target {
    /// The node's client address.
    #[arg(long, env = "QUIRE_NODE", default_value = "127.0.0.1:7400")]
    node: String,
    /// The node's admin token (deploy, undeploy).
    #[arg(long, env = "QUIRE_ADMIN_TOKEN")]
    token: Option<String>,
}

/// Sockets and cluster of `quire node`.
#[derive(clap::Args, Clone)]
struct NetArgs {
    /// Client address (shard i takes node links on port + 1 + i; gossip is
    /// UDP on port); default: network.listen, else 127.0.0.1:7400.
    #[arg(long)]
    listen: Option<String>,
    /// Open no socket at all.
    #[arg(long, conflicts_with = "listen")]
    no_listen: bool,
    /// Nodes to join through, host:port,... (their --listen addresses).
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<String>,
    /// The cluster's shared secret.
    #[arg(long, env = "QUIRE_CLUSTER_SECRET")]
    secret: Option<String>,
    /// Token that deploy and undeploy over the wire must present.
    #[arg(long, env = "QUIRE_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// This node's name in the cluster (default: its listen address).
    #[arg(long)]
    node_name: Option<String>,
    /// Run no demo agents (the default in a cluster: demo agents are
    /// placed per node, not by the cluster).
    #[arg(long)]
    no_demo: bool,
    /// Admin HTTP endpoint for GET /metrics and /health; default:
    /// metrics.listen, else 127.0.0.1:9400 (with --no-listen: none).
    #[arg(long)]
    metrics: Option<String>,
    /// Serve no metrics endpoint.
    #[arg(long, conflicts_with = "metrics")]
    no_metrics: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node with the demo agents, printing latency until Ctrl-C.
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
        /// The agent's name, or a pattern `prefix-*` (deployed on every member).
        #[arg(long)]
        name: String,
    },
    /// Remove an agent (or a pattern) from a running node (needs the admin token).
    Undeploy {
        #[command(flatten)]
        to: Target,
        /// The agent or pattern.
        name: String,
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
    /// The cluster's members as a node sees them.
    Cluster {
        #[command(flatten)]
        to: Target,
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
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Data directories (offline: the node must be stopped).
    #[command(subcommand)]
    Storage(StorageCommand),
}

#[derive(Subcommand)]
enum StorageCommand {
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
enum ConfigCommand {
    /// Print the default configuration, with comments.
    Default,
    /// Validate a configuration file.
    Check {
        /// The file.
        file: PathBuf,
    },
}

fn builder(args: &PlacementArgs) -> Result<(NodeBuilder, NodeConfig), String> {
    // The file (or the embedded default), then QUIRE_* variables, then flags.
    let mut config =
        NodeConfig::load(args.config.as_deref(), std::env::vars()).map_err(|e| e.to_string())?;
    if let Some(n) = args.shards {
        config.node.shards = Some(n);
    }
    if let Some(list) = &args.cpuset {
        config.node.cpuset = Some(list.clone());
    }
    if let Some(mode) = args.durability {
        config.storage.durability = mode;
    }
    if let Some(dir) = &args.data_dir {
        config.storage.data_dir = dir.clone();
    }
    config.validate().map_err(|e| e.to_string())?;
    let builder = Node::builder()
        .config(config.clone())
        .agent_kinds(builtin_kinds());
    Ok((builder, config))
}

fn run_node(
    args: &PlacementArgs,
    spin_us: Option<u64>,
    duration: Option<f64>,
    net: &NetArgs,
) -> Result<(), String> {
    let (_, mut config) = builder(args)?;
    if net.no_listen {
        config.network.listen = None;
    } else if let Some(listen) = &net.listen {
        config.network.listen = Some(listen.clone());
    } else if config.network.listen.is_none() {
        config.network.listen = Some("127.0.0.1:7400".into());
    }
    if net.no_metrics {
        config.metrics.listen = None;
    } else if let Some(metrics) = &net.metrics {
        config.metrics.listen = Some(metrics.clone());
    } else if config.metrics.listen.is_none() && !net.no_listen {
        config.metrics.listen = Some("127.0.0.1:9400".into());
    }
    if !net.seeds.is_empty() {
        config.cluster.seeds = net.seeds.clone();
    }
    if net.secret.is_some() {
        config.cluster.secret = net.secret.clone();
    }
    if net.admin_token.is_some() {
        config.network.admin_token = net.admin_token.clone();
    }
    if net.node_name.is_some() {
        config.cluster.node_name = net.node_name.clone();
    }
    config.validate().map_err(|e| e.to_string())?;
    let clustered = config
        .cluster
        .secret
        .as_deref()
        .is_some_and(|s| !s.is_empty());
    let demo_load = !(net.no_demo || clustered);
    if !demo_load {
        config.demo.pingers_per_shard = 0;
        config.demo.pongers_per_shard = 0;
        config.demo.wasm_pongers_per_shard = 0;
    }
    let mut builder = Node::builder()
        .config(config.clone())
        .agent_kinds(builtin_kinds());
    if let Some(us) = spin_us {
        builder = builder.spin_before_park(Duration::from_micros(us));
    }
    let node = builder.start().map_err(|e| e.to_string())?;
    println!("quire node: {} shard(s)", node.placement().len());
    match &config.network.listen {
        Some(listen) => println!(
            "listening for clients on {listen} (quire call/send/agents/stats/cluster --node {listen}){}",
            if clustered { "; cluster gossip on the same port (UDP)" } else { "" }
        ),
        None => println!("no sockets (--no-listen)"),
    }
    if let Some(addr) = node.metrics_addr() {
        println!("metrics: curl http://{addr}/metrics (Prometheus text), /health");
    }
    print!("{}", node.placement());
    let client = node.client();
    for report in node.recovery() {
        println!("{report}");
    }
    let pingers = demo::start(&client, &config.demo)?;
    println!(
        "demo: {pingers} pinger(s) each calling a ponger every {} µs, pongers on every shard; Ctrl-C to stop",
        config.demo.call_interval_us
    );
    let durable = config.storage.durability.is_persistent();
    // The durable demo traffic is demo load too: --no-demo runs none.
    let counters = if durable && demo_load {
        demo::deploy_counters(&client)?
    } else {
        Vec::new()
    };
    if durable && demo_load {
        println!(
            "storage: {} in {}; durable messages go to {} counter agent(s)",
            config.storage.durability,
            config.storage.data_dir.display(),
            counters.len()
        );
    }

    let (stop_tx, stop_rx) = flume::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    })
    .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    let until = duration.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let every = Duration::from_millis(config.demo.report_interval_ms);
    let mut previous = ShardStats::total(&client.stats_blocking());
    let mut last = Instant::now();
    loop {
        let wait = match until {
            Some(u) => every.min(u.saturating_duration_since(Instant::now())),
            None => every,
        };
        let stop = if counters.is_empty() {
            stop_rx.recv_timeout(wait).is_ok()
        } else {
            // Durable traffic through the interval, from this thread.
            let until = Instant::now() + wait;
            let mut stop = false;
            while Instant::now() < until && !stop {
                let line = demo::durable_round(&client, &counters, 64);
                if let Err(e) = line {
                    // Never a panic: stderr may be a file on the full disk.
                    let _ = std::io::Write::write_fmt(
                        &mut std::io::stderr(),
                        format_args!("durable send failed: {e}\n"),
                    );
                }
                stop = stop_rx.try_recv().is_ok();
            }
            stop
        };
        let now = ShardStats::total(&client.stats_blocking());
        let seconds = last.elapsed().as_secs_f64();
        last = Instant::now();
        println!(
            "{}",
            demo::summary_line(&demo::interval(&now, &previous), seconds)
        );
        if durable {
            println!("{}", demo::storage_line(&now, &previous, seconds));
        }
        previous = now;
        if stop || until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
    }
    let all = &previous.call_latency_ns;
    println!(
        "whole run: {} calls ({} timed), round trip p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        previous.replies,
        all.len(),
        all.value_at_quantile(0.5) as f64 / 1e3,
        all.value_at_quantile(0.99) as f64 / 1e3,
        all.value_at_quantile(0.999) as f64 / 1e3,
        all.max() as f64 / 1e3
    );
    println!("{}", node.shutdown());
    Ok(())
}

fn doctor(
    args: &PlacementArgs,
    root: Option<&std::path::Path>,
    limits: &[u64],
) -> Result<(), String> {
    use quire_runtime::doctor::{self, Host, Verdict};
    let mut cpus = match &args.cpuset {
        Some(list) => quire_runtime::cpuset::parse_cpu_list(list).map_err(|e| e.to_string())?,
        None => quire_runtime::placement::inherited_affinity(),
    };
    if let Some(n) = args.shards {
        cpus.truncate(n);
    }
    let mut host = Host::current(cpus);
    if let Some(root) = root {
        host.root = root.to_path_buf();
        host.probe_io_uring = false;
    }
    if let [memlock, nofile] = limits {
        host.memlock = *memlock;
        host.nofile = *nofile;
    }
    let checks = doctor::run(&host);
    for c in &checks {
        println!("{c}");
    }
    match doctor::worst(&checks) {
        Verdict::Fail => Err("some checks failed: a node will not run as planned".into()),
        Verdict::Warn => {
            println!("a node runs here; the warnings cost speed or capacity");
            Ok(())
        }
        Verdict::Ok => {
            println!("all good");
            Ok(())
        }
    }
}

/// Connects to `to` and runs `f`; errors in plain words.
fn remote(
    to: &Target,
    f: impl FnOnce(&mut RemoteClient) -> Result<(), ClientError>,
) -> Result<(), String> {
    let mut client =
        RemoteClient::connect(to.node.as_str(), to.token.as_deref()).map_err(|e| e.to_string())?;
    f(&mut client).map_err(|e| match &e {
        ClientError::Node {
            detail: Some(d), ..
        } if e.code() == Some(ErrorCode::Rejected) => format!("{e} ({d})"),
        _ => e.to_string(),
    })
}

/// JSON becomes MessagePack of the same value; anything else a string.
fn encode_payload(text: &str) -> Vec<u8> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => rmp_serde::to_vec(&value).unwrap_or_else(|_| text.as_bytes().to_vec()),
        Err(_) => rmp_serde::to_vec(text).unwrap_or_else(|_| text.as_bytes().to_vec()),
    }
}

/// MessagePack as JSON, else the bytes as text.
fn decode_payload(bytes: &[u8]) -> String {
    match rmp_serde::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => value.to_string(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn check_storage(dir: &std::path::Path) -> Result<(), String> {
    // The same checks a node makes when it starts on this directory.
    let manifest = quire_storage::integrity::inspect_data_dir(dir).map_err(|e| e.to_string())?;
    println!(
        "{}: node {}, {} shard(s), format {}",
        dir.display(),
        manifest.node_id,
        manifest.shards,
        manifest.format_version
    );
    for shard in 0..manifest.shards {
        let path = partition_path(dir, shard);
        let rec = Partition::verify(&path).map_err(|e| e.to_string())?;
        println!(
            "{}: ok, {} agents, {} state entries ({} bytes), {} unfinished durable messages",
            path.display(),
            rec.agents.len(),
            rec.state.len(),
            rec.state_bytes,
            rec.inbox.len()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUIRE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // A log that cannot be written (stderr on a full disk) must not
        // take a shard down: tracing's own report of that failure would
        // panic in eprintln! on the shard's thread.
        .log_internal_errors(false)
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Node {
            placement,
            spin_us,
            duration,
            net,
        } => run_node(placement, *spin_us, *duration, net),
        Command::Send {
            to,
            agent,
            payload,
            durable: _,
            key,
        } => remote(to, |c| {
            match key {
                Some(key) => {
                    let id = c.send_durable(agent, &encode_payload(payload), key)?;
                    println!("committed {id}");
                }
                None => {
                    let id = c.send(agent, &encode_payload(payload))?;
                    println!("queued {id}");
                }
            }
            Ok(())
        }),
        Command::Call {
            to,
            agent,
            payload,
            timeout_ms,
        } => remote(to, |c| {
            let reply = c.call(agent, &encode_payload(payload), Duration::from_millis(*timeout_ms))?;
            println!("{}", decode_payload(&reply));
            Ok(())
        }),
        Command::Deploy { to, file, name } => {
            match std::fs::read(file) {
                Err(e) => Err(format!("cannot read {}: {e}", file.display())),
                Ok(module) => remote(to, |c| {
                    if name.ends_with('*') {
                        // A pattern is known node by node: deploy it on every member.
                        let members = c.cluster()?;
                        for m in members.iter().filter(|m| m.state != "down") {
                            let mut there = RemoteClient::connect(m.addr.as_str(), to.token.as_deref())?;
                            let hash = there.deploy(name, &module)?;
                            println!("deployed pattern {name} on {} ({hash})", m.name);
                        }
                        return Ok(());
                    }
                    let hash = c.deploy(name, &module)?;
                    println!("deployed {name} ({hash})");
                    Ok(())
                }),
            }
        }
        Command::Undeploy { to, name } => remote(to, |c| {
            c.undeploy(name)?;
            println!("undeployed {name}");
            Ok(())
        }),
        Command::Agents { to } => remote(to, |c| {
            let agents = c.agents()?;
            println!(
                "{:<32} {:>5} {:<12} {:>7} {:>8} {:>8} {:>10} {:>10}  version",
                "agent", "shard", "state", "queued", "failures", "restarts", "activations", "memory"
            );
            for a in &agents {
                println!(
                    "{:<32} {:>5} {:<12} {:>7} {:>8} {:>8} {:>10} {:>10}  {}",
                    a.name,
                    a.shard,
                    a.state,
                    a.queued,
                    a.failures,
                    a.restarts,
                    a.activations,
                    a.memory_bytes,
                    a.version.as_deref().map_or("-", |v| &v[..v.len().min(16)])
                );
            }
            println!("{} agent(s) on {}", agents.len(), c.node());
            Ok(())
        }),
        Command::Stats { to } => remote(to, |c| {
            for row in c.stats()? {
                let line: Vec<String> = row.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("{}", line.join(" "));
            }
            Ok(())
        }),
        Command::Cluster { to } => remote(to, |c| {
            println!("{:<24} {:<24} {:<8} shards", "node", "address", "state");
            for m in c.cluster()? {
                println!("{:<24} {:<24} {:<8} {}", m.name, m.addr, m.state, m.shards);
            }
            Ok(())
        }),
        Command::Placement { placement } => builder(placement)
            .and_then(|(b, _)| b.plan().map_err(|e| e.to_string()))
            .map(|plan| print!("{plan}")),
        Command::Doctor {
            placement,
            root,
            limits,
        } => doctor(placement, root.as_deref(), limits),
        Command::Config(ConfigCommand::Default) => {
            print!("{DEFAULT_CONFIG_TOML}");
            Ok(())
        }
        Command::Config(ConfigCommand::Check { file }) => NodeConfig::from_file(file)
            .map(|_| println!("{}: ok", file.display()))
            .map_err(|e| e.to_string()),
        Command::Storage(StorageCommand::Reshard { data_dir, shards }) => {
            quire_storage::reshard::reshard(data_dir, *shards, |name, n| {
                owning_shard(name, n) as usize
            })
            .map(|r| {
                println!(
                    "resharded {} from {} to {} shards: {} agents, {} state entries, {} unfinished messages moved; old partitions kept in {}",
                    data_dir.display(),
                    r.from,
                    r.to,
                    r.agents,
                    r.state_entries,
                    r.messages,
                    r.backup.display()
                )
            })
            .map_err(|e| e.to_string())
        }
        Command::Storage(StorageCommand::Check { data_dir }) => check_storage(data_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quire: {e}");
            ExitCode::FAILURE
        }
    }
}
