//! The `quire` command: run a node, show its placement, handle its config.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use quire_runtime::builtin_kinds::builtin_kinds;
use quire_runtime::config::{NodeConfig, DEFAULT_CONFIG_TOML};
use quire_runtime::{demo, Node, NodeBuilder};
use quire_shards::{owning_shard, ShardStats};
use quire_storage::{partition_path, Durability, NodeManifest, Partition};

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
    },
    /// Print where shards would run on this machine, and exit.
    Placement {
        #[command(flatten)]
        placement: PlacementArgs,
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
    let mut config = match &args.config {
        Some(path) => NodeConfig::from_file(path).map_err(|e| e.to_string())?,
        None => NodeConfig::default(),
    };
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
) -> Result<(), String> {
    let (mut builder, config) = builder(args)?;
    if let Some(us) = spin_us {
        builder = builder.spin_before_park(Duration::from_micros(us));
    }
    let node = builder.start().map_err(|e| e.to_string())?;
    println!("quire node: {} shard(s)", node.placement().len());
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
    let counters = if durable {
        demo::deploy_counters(&client)?
    } else {
        Vec::new()
    };
    if durable {
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
                    eprintln!("durable send failed: {e}");
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

fn check_storage(dir: &std::path::Path) -> Result<(), String> {
    let manifest = NodeManifest::read(dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{}: no manifest.toml; not a Quire data directory",
                dir.display()
            )
        })?;
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
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Node {
            placement,
            spin_us,
            duration,
        } => run_node(placement, *spin_us, *duration),
        Command::Placement { placement } => builder(placement)
            .and_then(|(b, _)| b.plan().map_err(|e| e.to_string()))
            .map(|plan| print!("{plan}")),
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
