//! `quire-bench storage`: durable messages per second and acknowledgement
//! latency per shard in each durability mode, next to SQLite doing the same
//! writes in the same run; routing latency on a shard with and without a
//! concurrent commit storm; recovery time of a node with many agents and
//! much state.
//!
//! The load is closed-loop: `senders` threads each keep `window` durable
//! messages in flight to `counter` agents on one shard, and time each from
//! its send to its acknowledgement (after a warm-up). The SQLite peer gets
//! the same threads, window and writes per message (count, record,
//! de-duplication slot), committed by one storage thread per database, group
//! by group like Quire's batched mode or one by one like its immediate mode.
//!
//! Rooms: `durable` (the closed loop, Quire and SQLite runs), `storm`,
//! `recovery`; here the options, the figures, the one-shard node they all
//! start, and the report.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use quire_runtime::builtin_kinds::builtin_kinds;
use quire_runtime::demo::names_on_shard;
use quire_runtime::{Client, Node, NodeBuilder};
use quire_shards::{new_latency_histogram, AgentId, AgentRecord, SendOptions, MAX_TRACKED_NS};
use quire_storage::{partition_path, Durability, Mutation, NodeManifest, Partition, WriteBatch};
use serde::Serialize;

use crate::peer_sqlite::{SqliteStore, Synchronous};
use crate::report::{human_ns, median, MachineInfo, Percentiles};
use crate::routing::request_reply;

mod durable;
mod recovery;
mod storm;

use durable::{medians, quire_run, sqlite_run};
use recovery::recovery;
use storm::storm;

/// Options of `quire-bench storage`.
#[derive(clap::Args, Debug, Clone)]
pub struct StorageOptions {
    /// Runs of each measurement; the report gives medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Seconds of load per batched/none run (after a 0.5 s warm-up).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Seconds of load per immediate/per-message run.
    #[arg(long, default_value_t = 1.0)]
    pub immediate_seconds: f64,
    /// Client threads keeping messages in flight.
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// Messages each sender keeps in flight.
    #[arg(long, default_value_t = 384)]
    pub window: usize,
    /// Messages each sender keeps in flight in the one-commit-per-message
    /// runs (they commit a few thousand a second: a big window would only
    /// measure queueing).
    #[arg(long, default_value_t = 8)]
    pub immediate_window: usize,
    /// Counter agents the load is spread over.
    #[arg(long, default_value_t = 16)]
    pub counters: usize,
    /// Durable messages per group commit at most (Quire and SQLite alike).
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// Longest wait of a write for its group commit, µs.
    #[arg(long, default_value_t = 300)]
    pub delay_us: u64,
    /// CPU of the measured shard (default: the last one; the load and the
    /// commit thread get the others).
    #[arg(long)]
    pub shard_cpu: Option<usize>,
    /// Agents of the recovery scenario.
    #[arg(long, default_value_t = 100_000)]
    pub recovery_agents: usize,
    /// State of the recovery scenario, MiB in all.
    #[arg(long, default_value_t = 1024)]
    pub recovery_mib: usize,
    /// Skip the recovery scenario.
    #[arg(long)]
    pub skip_recovery: bool,
    /// Request/reply samples per routing measurement.
    #[arg(long, default_value_t = 100_000)]
    pub rr_samples: u64,
    /// Where data directories go (default: the system temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One system's figures under one mode, medians over runs.
#[derive(Debug, Clone, Serialize)]
pub struct DurableFigures {
    /// Quire mode or SQLite setting.
    pub system: String,
    /// Acknowledged messages per second (median).
    pub msgs_per_s: f64,
    /// Acknowledgement latency (median of each percentile).
    pub ack: Percentiles,
}

/// Routing with and without a commit storm.
#[derive(Debug, Clone, Serialize)]
pub struct StormFigures {
    /// Same-shard request/reply without storage traffic.
    pub quiet: Percentiles,
    /// The same while durable messages are committed flat out on the shard.
    pub storm: Percentiles,
    /// Durable messages per second the storm achieved.
    pub storm_msgs_per_s: f64,
}

/// Recovery of a big data directory.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryFigures {
    /// Agents in the directory.
    pub agents: usize,
    /// Bytes of state.
    pub state_bytes: u64,
    /// Shards.
    pub shards: usize,
    /// Slowest shard: read + rebuild, ms.
    pub slowest_shard_ms: f64,
    /// `Node::start` to a serving node, ms.
    pub node_start_ms: f64,
    /// The same two figures for the first start right after the directory
    /// was written.
    pub first_start_slowest_shard_ms: f64,
    /// See above.
    pub first_start_ms: f64,
}

/// Everything the suite measured.
#[derive(Debug, Clone, Serialize)]
pub struct StorageReport {
    /// Where it ran.
    pub machine: MachineInfo,
    /// Group commit (Quire batched, SQLite per batch).
    pub batched: Vec<DurableFigures>,
    /// One commit per message.
    pub immediate: Vec<DurableFigures>,
    /// Quire with durability none.
    pub memory: DurableFigures,
    /// Routing during a commit storm.
    pub storm: StormFigures,
    /// Recovery (absent with --skip-recovery).
    pub recovery: Option<RecoveryFigures>,
}

fn other_cpus(shard_cpu: usize) -> Option<Vec<usize>> {
    let all: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .filter(|&c| c != shard_cpu)
        .collect();
    (!all.is_empty()).then_some(all)
}

fn shard_cpu(opts: &StorageOptions) -> usize {
    opts.shard_cpu.unwrap_or_else(|| {
        core_affinity::get_core_ids()
            .unwrap_or_default()
            .iter()
            .map(|c| c.id)
            .max()
            .unwrap_or(0)
    })
}

fn one_shard_node(opts: &StorageOptions, dir: &Path, mode: Durability) -> NodeBuilder {
    let cpu = shard_cpu(opts);
    let mut b = Node::builder()
        .cpuset(&cpu.to_string())
        .shards(1)
        .durability(mode)
        .data_dir(dir)
        .spin_before_park(Duration::from_micros(200))
        .agent_kinds(builtin_kinds());
    let mut config = quire_runtime::config::NodeConfig::default();
    config.node.cpuset = Some(cpu.to_string());
    config.node.shards = Some(1);
    config.node.spin_before_park_us = 200;
    config.storage.durability = mode;
    config.storage.data_dir = dir.to_path_buf();
    config.storage.batch_max_messages = opts.batch;
    config.storage.batch_max_delay_us = opts.delay_us;
    config.storage.commit_cpuset = other_cpus(cpu).map(|cpus| {
        cpus.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    });
    config.queues.mailbox_capacity = 1 << 16;
    b = b.config(config);
    b
}

fn deploy_counters(client: &Client, n: usize) -> Result<Vec<AgentId>, String> {
    let names = names_on_shard("bench/counter", 0, 1, n);
    for name in &names {
        client
            .deploy_blocking(name.clone(), "counter", Vec::new())
            .map_err(|e| e.to_string())?;
    }
    Ok(names)
}

fn fresh_dir(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(format!("quire-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn row(f: &DurableFigures, reference: Option<&DurableFigures>) -> String {
    let ratio = reference.map_or(String::new(), |q| {
        format!(
            "  (Quire/this: {:.1}x)",
            q.msgs_per_s / f.msgs_per_s.max(1.0)
        )
    });
    format!(
        "  {:<28} {:>11.0} msgs/s   ack p50 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>9}{ratio}",
        f.system,
        f.msgs_per_s,
        human_ns(f.ack.p50_ns),
        human_ns(f.ack.p99_ns),
        human_ns(f.ack.p999_ns),
        human_ns(f.ack.max_ns),
    )
}

/// Runs the suite and prints its report.
pub fn run(opts: &StorageOptions) -> Result<StorageReport, String> {
    let base = opts.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let machine = MachineInfo::current();
    println!(
        "storage benchmark on {} ({} CPUs, kernel {}), data in {}; shard on CPU {}, load and commit threads on the others",
        machine.cpu_model,
        machine.cpus,
        machine.kernel,
        base.display(),
        shard_cpu(opts)
    );
    println!(
        "closed loop: {} senders x {} in flight ({} for one commit per message), {} counters, group commit <= {} msgs or {} µs; medians of {} runs",
        opts.senders, opts.window, opts.immediate_window, opts.counters, opts.batch, opts.delay_us, opts.runs
    );
    let mut q_batched = Vec::new();
    let mut s_normal = Vec::new();
    let mut s_full = Vec::new();
    let mut q_immediate = Vec::new();
    let mut s_full_each = Vec::new();
    let mut s_normal_each = Vec::new();
    let mut q_none = Vec::new();
    for run in 0..opts.runs {
        println!("run {}/{}", run + 1, opts.runs);
        q_batched.push(quire_run(opts, &base, Durability::Batched, opts.seconds)?);
        s_normal.push(sqlite_run(
            opts,
            &base,
            Synchronous::Normal,
            opts.batch,
            opts.seconds,
        )?);
        s_full.push(sqlite_run(
            opts,
            &base,
            Synchronous::Full,
            opts.batch,
            opts.seconds,
        )?);
        q_immediate.push(quire_run(
            opts,
            &base,
            Durability::Immediate,
            opts.immediate_seconds,
        )?);
        s_full_each.push(sqlite_run(
            opts,
            &base,
            Synchronous::Full,
            1,
            opts.immediate_seconds,
        )?);
        s_normal_each.push(sqlite_run(
            opts,
            &base,
            Synchronous::Normal,
            1,
            opts.immediate_seconds,
        )?);
        q_none.push(quire_run(opts, &base, Durability::None, opts.seconds)?);
        println!(
            "  batched {:.0}/s vs SQLite NORMAL {:.0}/s, FULL {:.0}/s; immediate {:.0}/s vs SQLite FULL {:.0}/s; none {:.0}/s",
            q_batched[run].0, s_normal[run].0, s_full[run].0, q_immediate[run].0, s_full_each[run].0, q_none[run].0
        );
    }
    let batched = vec![
        medians("Quire batched", q_batched),
        medians("SQLite WAL/NORMAL, group", s_normal),
        medians("SQLite WAL/FULL, group", s_full),
    ];
    let immediate = vec![
        medians("Quire immediate", q_immediate),
        medians("SQLite WAL/FULL, per msg", s_full_each),
        medians("SQLite WAL/NORMAL, per msg", s_normal_each),
    ];
    let memory = medians("Quire none (memory)", q_none);
    println!(
        "\ndurable messages, one shard (medians of {} runs):",
        opts.runs
    );
    println!("{}", row(&batched[0], None));
    for f in &batched[1..] {
        println!("{}", row(f, Some(&batched[0])));
    }
    println!("{}", row(&immediate[0], None));
    for f in &immediate[1..] {
        println!("{}", row(f, Some(&immediate[0])));
    }
    println!("{}", row(&memory, None));

    println!(
        "\nrouting during a commit storm (same-shard request/reply, {} samples):",
        opts.rr_samples
    );
    let storm = storm(opts, &base)?;
    println!(
        "  quiet: p50 {}  p99 {}  p99.9 {}\n  storm: p50 {}  p99 {}  p99.9 {}  ({:.0} durable msgs/s committed meanwhile)\n  p99 storm/quiet: {:.2}x",
        human_ns(storm.quiet.p50_ns),
        human_ns(storm.quiet.p99_ns),
        human_ns(storm.quiet.p999_ns),
        human_ns(storm.storm.p50_ns),
        human_ns(storm.storm.p99_ns),
        human_ns(storm.storm.p999_ns),
        storm.storm_msgs_per_s,
        storm.storm.p99_ns as f64 / storm.quiet.p99_ns.max(1) as f64
    );

    let recovery = if opts.skip_recovery {
        None
    } else {
        println!("\nrecovery:");
        let r = recovery(opts, &base)?;
        println!(
            "  {} agents, {:.0} MiB of state, {} shard(s): restart: slowest shard {:.0} ms, node start {:.0} ms; first start after writing: slowest shard {:.0} ms, node start {:.0} ms",
            r.agents,
            r.state_bytes as f64 / (1 << 20) as f64,
            r.shards,
            r.slowest_shard_ms,
            r.node_start_ms,
            r.first_start_slowest_shard_ms,
            r.first_start_ms
        );
        Some(r)
    };
    let report = StorageReport {
        machine,
        batched,
        immediate,
        memory,
        storm,
        recovery,
    };
    if let Some(path) = &opts.json {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::write(
            path,
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(report)
}
