//! The crash test: a node process under durable load is killed with SIGKILL
//! at random moments and restarted, again and again; then the data
//! directory must prove that nothing acknowledged was lost and nothing
//! committed was handled twice.
//!
//! The **worker** (`quire-bench crash-worker`) runs a durable node with
//! `counter` agents and keeps durable messages in flight from several
//! threads. Message ids (also their de-duplication ids and payloads) are
//! unique across the whole test. The worker appends each id to its acked
//! log once the node acknowledged it. On start, it first re-sends the last
//! acknowledged ids of the previous run: each must come back a duplicate.
//!
//! The **harness** (`quire-bench crash`) runs the cycles, then starts the
//! node once more in-process, lets it finish what recovery redelivered, and
//! checks every partition with [`quire_storage::integrity::verify_partition`]:
//! - every acknowledged id is recorded by its counter (handled after recovery);
//! - each counter's count equals its records (no message handled twice once
//!   its handling was committed: a second handling would count without a
//!   new record);
//! - no partition holds unfinished messages after the final drain.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quire_runtime::builtin_kinds::{builtin_kinds, decode_count, COUNT_KEY};
use quire_runtime::{DeployError, Node};
use quire_shards::{RegisterError, SendOptions};
use quire_storage::{partition_path, Durability, NodeManifest};

/// `quire-bench crash` options.
#[derive(clap::Args, Debug, Clone)]
pub struct CrashOptions {
    /// Kill-and-restart cycles.
    #[arg(long, default_value_t = 20)]
    pub cycles: usize,
    /// Data directory (default: a fresh one under the system temp dir,
    /// removed after a passing run).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Shards of the node (default: up to 2, as the machine allows).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Kill after a random time between these many ms after the worker is up...
    #[arg(long, default_value_t = 30)]
    pub min_ms: u64,
    /// ...and this many.
    #[arg(long, default_value_t = 300)]
    pub max_ms: u64,
    /// Random seed (default: from the clock; printed for a re-run).
    #[arg(long)]
    pub seed: Option<u64>,
    /// `immediate` or `batched`.
    #[arg(long, default_value = "batched")]
    pub durability: Durability,
}

/// `quire-bench crash-worker` options (started by the harness).
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerOptions {
    #[arg(long)]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub shards: usize,
    /// First message id of this run.
    #[arg(long)]
    pub first_id: u64,
    #[arg(long, default_value = "batched")]
    pub durability: Durability,
}

const COUNTERS: u64 = 8;
const SENDERS: u64 = 4;
const WINDOW: usize = 64;
/// Ids of one run: a run never gets near this many acknowledgements.
const IDS_PER_RUN: u64 = 1 << 32;
/// Acknowledged ids of the previous run that a new run sends again.
const RETRIES: usize = 32;

fn counter_of(id: u64) -> String {
    format!("crash/counter-{}", id % COUNTERS)
}

fn acked_log(dir: &Path, sender: u64) -> PathBuf {
    dir.join(format!("acked-{sender}.log"))
}

fn read_acked(dir: &Path) -> Vec<u64> {
    let mut ids = Vec::new();
    for sender in 0..SENDERS {
        if let Ok(f) = File::open(acked_log(dir, sender)) {
            // A kill can cut the last line short; a partial line is no ack.
            let text = std::io::read_to_string(f).unwrap_or_default();
            let complete = text.rfind('\n').map_or("", |end| &text[..end]);
            ids.extend(complete.lines().filter_map(|l| l.parse::<u64>().ok()));
        }
    }
    ids
}

fn node(data_dir: &Path, shards: usize, durability: Durability) -> Result<Node, String> {
    Node::builder()
        .shards(shards)
        .durability(durability)
        .data_dir(data_dir)
        .agent_kinds(builtin_kinds())
        .start()
        .map_err(|e| e.to_string())
}

/// The worker: never returns while the load runs; the harness kills it.
pub fn worker(opts: &WorkerOptions) -> Result<(), String> {
    let logs = opts.data_dir.join("logs");
    fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let previous = read_acked(&logs);
    let node = node(&opts.data_dir.join("node"), opts.shards, opts.durability)?;
    for report in node.recovery() {
        eprintln!("{report}");
    }
    let client = node.client();
    for c in 0..COUNTERS {
        match client.deploy_blocking(counter_of(c), "counter", Vec::new()) {
            Ok(()) | Err(DeployError::Register(RegisterError::AlreadyRegistered(_))) => {}
            Err(e) => return Err(format!("deploy: {e}")),
        }
    }
    // Retries of acknowledged messages must be recognised.
    let mut sorted = previous;
    sorted.sort_unstable();
    for &id in sorted.iter().rev().take(RETRIES) {
        let receipt = client
            .send_durable_pipelined(counter_of(id), id.to_string(), SendOptions::default(), id)
            .wait_blocking()
            .map_err(|e| format!("retry of {id}: {e}"))?;
        if !receipt.duplicate {
            return Err(format!(
                "message {id} was acknowledged before, yet its retry was accepted as new"
            ));
        }
    }
    println!("ready");
    let _ = std::io::stdout().flush();

    let failed = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let client = client.clone();
            let logs = logs.clone();
            let failed = failed.clone();
            let first = opts.first_id;
            std::thread::spawn(move || -> Result<(), String> {
                let mut log = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(acked_log(&logs, sender))
                    .map_err(|e| e.to_string())?;
                let mut in_flight = std::collections::VecDeque::new();
                let mut k = 0u64;
                while !failed.load(Ordering::Relaxed) {
                    while in_flight.len() < WINDOW {
                        let id = first + sender + k * SENDERS;
                        k += 1;
                        let ack = client.send_durable_pipelined(
                            counter_of(id),
                            id.to_string(),
                            SendOptions::default(),
                            id,
                        );
                        in_flight.push_back((id, ack));
                    }
                    let (id, ack) = in_flight.pop_front().expect("window is full");
                    match ack.wait_blocking() {
                        // One write per ack: the kernel keeps it when the
                        // process is killed.
                        Ok(_) => log
                            .write_all(format!("{id}\n").as_bytes())
                            .map_err(|e| e.to_string())?,
                        Err(quire_runtime::DurableError::Rejected(_)) => {
                            // Full mailbox: never acknowledged, so the id
                            // is simply not used again.
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            return Err(format!("message {id}: {e}"));
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "sender panicked".to_string())??;
    }
    Err("load stopped".into())
}

/// What the final check found.
#[derive(Debug, Default)]
pub struct CrashReport {
    pub cycles: usize,
    pub acked: usize,
    pub handled: u64,
    pub redelivered_last_start: usize,
    pub recovery_ms_max: f64,
}

/// The harness.
pub fn run(opts: &CrashOptions) -> Result<CrashReport, String> {
    let shards = opts.shards.unwrap_or_else(|| crate::report::cpus().min(2));
    let (dir, temporary) = match &opts.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("quire-crash-{}", std::process::id())),
            true,
        ),
    };
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let seed = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!(
        "crash test: {} cycles, {} shard(s), {} durability, kills {}-{} ms after start, seed {seed}, data in {}",
        opts.cycles,
        shards,
        opts.durability,
        opts.min_ms,
        opts.max_ms,
        dir.display()
    );
    let mut rng = seed | 1;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut recovery_ms_max: f64 = 0.0;
    for cycle in 0..opts.cycles {
        let mut child = Command::new(&exe)
            .arg("crash-worker")
            .arg("--data-dir")
            .arg(&dir)
            .arg("--shards")
            .arg(shards.to_string())
            .arg("--first-id")
            .arg(((cycle as u64 + 1) * IDS_PER_RUN).to_string())
            .arg("--durability")
            .arg(opts.durability.to_string())
            .env("QUIRE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the worker: {e}"))?;
        let started = Instant::now();
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            let status = child.wait().map_err(|e| e.to_string())?;
            let err =
                std::io::read_to_string(child.stderr.take().expect("piped")).unwrap_or_default();
            return Err(format!(
                "cycle {cycle}: the worker failed before it was ready ({status}):\n{err}"
            ));
        }
        let up = started.elapsed();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = opts.min_ms + rng % (opts.max_ms - opts.min_ms).max(1);
        std::thread::sleep(Duration::from_millis(delay));
        // A worker that stopped by itself failed.
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let err =
                std::io::read_to_string(child.stderr.take().expect("piped")).unwrap_or_default();
            return Err(format!(
                "cycle {cycle}: the worker exited ({status}):\n{err}"
            ));
        }
        child.kill().map_err(|e| e.to_string())?; // SIGKILL
        child.wait().map_err(|e| e.to_string())?;
        let err = std::io::read_to_string(child.stderr.take().expect("piped")).unwrap_or_default();
        let recovered: Vec<&str> = err.lines().filter(|l| l.contains(" recovered ")).collect();
        let recovery = recovered
            .iter()
            .filter_map(|l| {
                let ms = l.split(" to redeliver in ").nth(1)?.split(" ms").next()?;
                ms.trim().parse::<f64>().ok()
            })
            .fold(0.0, f64::max);
        let redelivered: u64 = recovered
            .iter()
            .filter_map(|l| {
                let n = l
                    .split(" messages to redeliver")
                    .next()?
                    .rsplit(' ')
                    .next()?;
                n.parse::<u64>().ok()
            })
            .sum();
        recovery_ms_max = recovery_ms_max.max(recovery);
        println!(
            "cycle {cycle:>3}: up in {:>5.0} ms (slowest shard recovery {recovery:.1} ms, {redelivered} redelivered), killed after {delay} ms, {} acks so far",
            up.as_secs_f64() * 1e3,
            read_acked(&dir.join("logs")).len()
        );
    }
    let mut report = verify(&dir, shards, opts.durability)?;
    report.cycles = opts.cycles;
    report.recovery_ms_max = recovery_ms_max;
    println!(
        "crash test passed: {} cycles, {} acknowledged messages all handled, {} handled in all, none twice, every partition clean; {} redelivered at the last start; slowest shard recovery {:.1} ms",
        report.cycles, report.acked, report.handled, report.redelivered_last_start, report.recovery_ms_max
    );
    if temporary {
        let _ = fs::remove_dir_all(&dir);
    }
    Ok(report)
}

/// Starts the node once more, lets it finish what was redelivered, then
/// checks the partitions against the acked logs.
fn verify(dir: &Path, shards: usize, durability: Durability) -> Result<CrashReport, String> {
    let node_dir = dir.join("node");
    let node = node(&node_dir, shards, durability)?;
    let redelivered = node.recovery().iter().map(|r| r.redelivered).sum();
    let report = node.shutdown();
    if !report.drained {
        return Err(format!("the final node did not drain: {report}"));
    }
    let manifest = NodeManifest::read(&node_dir)
        .map_err(|e| e.to_string())?
        .ok_or("no manifest")?;
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut records: HashMap<String, HashSet<u64>> = HashMap::new();
    for shard in 0..manifest.shards {
        let rec = quire_storage::integrity::verify_partition(partition_path(&node_dir, shard))
            .map_err(|e| e.to_string())?;
        if !rec.inbox.is_empty() {
            return Err(format!(
                "shard {shard} still holds {} unfinished messages after the final drain",
                rec.inbox.len()
            ));
        }
        for s in rec.state {
            if s.key == COUNT_KEY {
                counts.insert(s.agent, decode_count(&s.value));
            } else if let Some(id) = s.key.strip_prefix(b"m/") {
                let id = std::str::from_utf8(id)
                    .ok()
                    .and_then(|t| t.parse::<u64>().ok())
                    .ok_or("malformed record key")?;
                records.entry(s.agent).or_default().insert(id);
            }
        }
    }
    let acked = read_acked(&dir.join("logs"));
    for &id in &acked {
        let counter = counter_of(id);
        if !records.get(&counter).is_some_and(|r| r.contains(&id)) {
            return Err(format!("message {id} was acknowledged but never handled"));
        }
    }
    let mut handled = 0;
    for (counter, count) in &counts {
        let recorded = records.get(counter).map_or(0, HashSet::len) as u64;
        if *count != recorded {
            return Err(format!(
                "{counter} counted {count} messages but recorded {recorded}: some message was handled twice"
            ));
        }
        handled += count;
    }
    Ok(CrashReport {
        acked: acked.len(),
        handled,
        redelivered_last_start: redelivered,
        ..CrashReport::default()
    })
}
