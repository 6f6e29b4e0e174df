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

/// Sends durable messages from `senders` threads, `window` in flight each,
/// for `seconds` after a warm-up; `send(thread, seq)` returns something to
/// wait on, `wait` says whether it was acknowledged.
fn closed_loop<P, S, W>(
    senders: usize,
    window: usize,
    seconds: f64,
    affinity: Option<Vec<usize>>,
    send: S,
    wait: W,
) -> (f64, Histogram<u64>)
where
    S: Fn(usize, u64) -> P + Send + Sync,
    W: Fn(P) -> bool + Send + Sync,
{
    let warmup = Duration::from_millis(500);
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + Duration::from_secs_f64(seconds);
    let (send, wait) = (&send, &wait);
    let results: Vec<(u64, Histogram<u64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..senders)
            .map(|t| {
                let affinity = affinity.clone();
                scope.spawn(move || {
                    if let Some(cpus) = affinity {
                        if let Some(&cpu) = cpus.get(t % cpus.len().max(1)) {
                            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                        }
                    }
                    let mut h = new_latency_histogram();
                    let mut acked = 0u64;
                    let mut in_flight = VecDeque::with_capacity(window);
                    let mut seq = 0u64;
                    loop {
                        let now = Instant::now();
                        if now >= until {
                            break;
                        }
                        while in_flight.len() < window {
                            in_flight.push_back((Instant::now(), send(t, seq)));
                            seq += 1;
                        }
                        let (sent, pending) = in_flight.pop_front().expect("window is full");
                        let ok = wait(pending);
                        let done = Instant::now();
                        if ok && sent >= measure_from && done <= until {
                            acked += 1;
                            let ns = (done - sent).as_nanos() as u64;
                            h.saturating_record(ns.clamp(1, MAX_TRACKED_NS));
                        }
                    }
                    for (_, pending) in in_flight {
                        let _ = wait(pending);
                    }
                    (acked, h)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sender"))
            .collect()
    });
    let mut all = new_latency_histogram();
    let mut acked = 0;
    for (n, h) in results {
        acked += n;
        let _ = all.add(&h);
    }
    (acked as f64 / seconds, all)
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

fn quire_run(
    opts: &StorageOptions,
    base: &Path,
    mode: Durability,
    seconds: f64,
) -> Result<(f64, Histogram<u64>), String> {
    let window = if mode == Durability::Immediate {
        opts.immediate_window
    } else {
        opts.window
    };
    let dir = fresh_dir(base, &mode.to_string());
    let node = one_shard_node(opts, &dir, mode)
        .start()
        .map_err(|e| e.to_string())?;
    let client = node.client();
    let counters = deploy_counters(&client, opts.counters)?;
    let affinity = other_cpus(shard_cpu(opts));
    let result = closed_loop(
        opts.senders,
        window,
        seconds,
        affinity,
        |t, seq| {
            let id = client.next_dedup_id();
            client.send_durable_pipelined(
                counters[(seq as usize + t) % counters.len()].clone(),
                Bytes::new(),
                SendOptions::default(),
                id,
            )
        },
        |pending| pending.wait_blocking().is_ok(),
    );
    let report = node.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    if report.totals().commit_failures > 0 {
        return Err("commits failed during the run".into());
    }
    Ok(result)
}

fn sqlite_run(
    opts: &StorageOptions,
    base: &Path,
    sync: Synchronous,
    max_batch: usize,
    seconds: f64,
) -> Result<(f64, Histogram<u64>), String> {
    let dir = fresh_dir(base, "sqlite");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let store = SqliteStore::open(&dir.join("bench.sqlite"), sync, max_batch)?;
    let counters = opts.counters as u32;
    let affinity = other_cpus(shard_cpu(opts));
    let ids = std::sync::atomic::AtomicU64::new(0);
    let window = if max_batch == 1 {
        opts.immediate_window
    } else {
        opts.window
    };
    let result = closed_loop(
        opts.senders,
        window,
        seconds,
        affinity,
        |t, seq| {
            let id = ids.fetch_add(1, Ordering::Relaxed);
            store.send(id, (seq as u32).wrapping_add(t as u32) % counters)
        },
        |done| done.recv().is_ok(),
    );
    store.close()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result)
}

fn medians(system: &str, runs: Vec<(f64, Histogram<u64>)>) -> DurableFigures {
    let rates: Vec<u64> = runs.iter().map(|(r, _)| *r as u64).collect();
    let pct: Vec<Percentiles> = runs.iter().map(|(_, h)| Percentiles::of(h)).collect();
    DurableFigures {
        system: system.into(),
        msgs_per_s: median(rates) as f64,
        ack: Percentiles::median_of(&pct),
    }
}

fn storm(opts: &StorageOptions, base: &Path) -> Result<StormFigures, String> {
    let dir = fresh_dir(base, "storm");
    let node = one_shard_node(opts, &dir, Durability::Batched)
        .start()
        .map_err(|e| e.to_string())?;
    let client = node.client();
    let counters = deploy_counters(&client, opts.counters)?;
    let warm = opts.rr_samples / 10;
    let mut quiet = Vec::new();
    let mut stormy = Vec::new();
    let mut rates = Vec::new();
    for run in 0..opts.runs {
        quiet.push(Percentiles::of(&request_reply(
            &client,
            &format!("quiet{run}"),
            0,
            0,
            warm,
            opts.rr_samples,
        )?));
        let stop = Arc::new(AtomicBool::new(false));
        let storm_client = client.clone();
        let storm_counters = counters.clone();
        let storm_stop = stop.clone();
        let affinity = other_cpus(shard_cpu(opts));
        let window = opts.window;
        let storm_thread = std::thread::spawn(move || {
            if let Some(cpu) = affinity.and_then(|c| c.first().copied()) {
                core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
            }
            let started = Instant::now();
            let mut acked = 0u64;
            let mut in_flight = VecDeque::new();
            let mut seq = 0usize;
            while !storm_stop.load(Ordering::Relaxed) {
                while in_flight.len() < window {
                    in_flight.push_back(storm_client.send_durable_pipelined(
                        storm_counters[seq % storm_counters.len()].clone(),
                        Bytes::new(),
                        SendOptions::default(),
                        storm_client.next_dedup_id(),
                    ));
                    seq += 1;
                }
                if let Some(p) = in_flight.pop_front() {
                    if p.wait_blocking().is_ok() {
                        acked += 1;
                    }
                }
            }
            for p in in_flight {
                let _ = p.wait_blocking();
            }
            acked as f64 / started.elapsed().as_secs_f64()
        });
        // Let the storm reach its pace first.
        std::thread::sleep(Duration::from_millis(300));
        let h = request_reply(&client, &format!("storm{run}"), 0, 0, warm, opts.rr_samples);
        stop.store(true, Ordering::Relaxed);
        rates.push(storm_thread.join().map_err(|_| "storm thread panicked")? as u64);
        stormy.push(Percentiles::of(&h?));
    }
    let report = node.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    if report.totals().commits == 0 {
        return Err("the storm committed nothing".into());
    }
    Ok(StormFigures {
        quiet: Percentiles::median_of(&quiet),
        storm: Percentiles::median_of(&stormy),
        storm_msgs_per_s: median(rates) as f64,
    })
}

/// Writes a data directory of `agents` counters with `bytes` of state in
/// all, spread over `shards` partitions as the node would place them.
fn build_big_dir(dir: &Path, shards: usize, agents: usize, bytes: u64) -> Result<(), String> {
    NodeManifest::open_or_create(dir, shards, "bench").map_err(|e| e.to_string())?;
    let per_agent = (bytes / agents.max(1) as u64) as usize;
    let blob = Bytes::from(vec![0xabu8; per_agent]);
    let parts: Vec<Partition> = (0..shards)
        .map(|s| Partition::open(partition_path(dir, s)).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut batches: Vec<WriteBatch> = (0..shards).map(|_| WriteBatch::default()).collect();
    for i in 0..agents {
        let name = format!("big/agent-{i}");
        let s = quire_shards::owning_shard(&name, shards) as usize;
        batches[s].push(Mutation::PutAgent(AgentRecord::new(
            &name,
            "counter",
            Vec::new(),
        )));
        batches[s].push(Mutation::PutState {
            agent: name,
            key: b"blob".to_vec(),
            value: blob.clone(),
        });
        if batches[s].len() >= 4000 {
            let b = std::mem::take(&mut batches[s]);
            parts[s].commit(&b, false).map_err(|e| e.to_string())?;
        }
    }
    for (s, b) in batches.into_iter().enumerate() {
        parts[s].commit(&b, true).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn recovery(opts: &StorageOptions, base: &Path) -> Result<RecoveryFigures, String> {
    let shards = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(2);
    let dir = fresh_dir(base, "recovery");
    let bytes = opts.recovery_mib as u64 * (1 << 20);
    println!(
        "  writing {} agents with {} MiB of state over {shards} partition(s)...",
        opts.recovery_agents, opts.recovery_mib
    );
    build_big_dir(&dir, shards, opts.recovery_agents, bytes)?;
    // Two starts: the first right after the directory was written (its
    // pages still being written back), the second a plain restart.
    let start = || {
        let started = Instant::now();
        Node::builder()
            .shards(shards)
            .durability(Durability::Batched)
            .data_dir(&dir)
            .agent_kinds(builtin_kinds())
            .start()
            .map_err(|e| e.to_string())
            .map(|node| (node, started.elapsed().as_secs_f64() * 1e3))
    };
    let (first, first_ms) = start()?;
    let first_slowest = first
        .recovery()
        .iter()
        .map(|r| r.total_time().as_secs_f64() * 1e3)
        .fold(0.0, f64::max);
    for r in first.recovery() {
        println!("  first start: {r}");
    }
    first.shutdown();
    let (node, node_start_ms) = start()?;
    let agents: usize = node.recovery().iter().map(|r| r.agents).sum();
    let state_bytes = node.recovery().iter().map(|r| r.state_bytes).sum();
    let slowest_shard_ms = node
        .recovery()
        .iter()
        .map(|r| r.total_time().as_secs_f64() * 1e3)
        .fold(0.0, f64::max);
    for r in node.recovery() {
        println!("  restart: {r}");
    }
    node.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    if agents != opts.recovery_agents {
        return Err(format!(
            "recovered {agents} of {} agents",
            opts.recovery_agents
        ));
    }
    Ok(RecoveryFigures {
        agents,
        state_bytes,
        shards,
        slowest_shard_ms,
        node_start_ms,
        first_start_slowest_shard_ms: first_slowest,
        first_start_ms: first_ms,
    })
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
