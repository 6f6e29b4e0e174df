//! What output commit costs: closed-loop calls to stateful agents (the
//! built-in `counter`, one state write per call) on a durable node, each
//! durability mode with replies held for their commit and without, run
//! alternately in one process so that both see the same disk.
//!
//! `cargo run --release -p quire-bench -- output-commit`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quire_runtime::builtin_kinds::builtin_kinds;
use quire_runtime::Node;
use quire_storage::Durability;

/// `quire-bench output-commit` options.
#[derive(clap::Args, Debug, Clone)]
pub struct OutputCommitOptions {
    /// Runs of each configuration; the report gives medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Seconds of calls per run (after a 0.3 s warm-up).
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Client threads, each with one call in flight.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Shards of the node (default: up to 2, as the machine allows).
    #[arg(long)]
    pub shards: Option<usize>,
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
pub struct CallFigures {
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Calls answered per second.
    pub calls_per_s: f64,
}

/// Closed-loop calls to counters on a fresh durable node.
pub fn measure(
    mode: Durability,
    output_commit: bool,
    opts: &OutputCommitOptions,
) -> Result<CallFigures, String> {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "quire-output-commit-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let shards = opts.shards.unwrap_or_else(|| crate::report::cpus().min(2));
    let mut config = quire_runtime::config::NodeConfig::default();
    config.node.shards = Some(shards);
    config.storage.durability = mode;
    config.storage.data_dir = dir.clone();
    config.storage.output_commit = output_commit;
    let builder = Node::builder().config(config).agent_kinds(builtin_kinds());
    let node = builder.start().map_err(|e| e.to_string())?;
    let client = node.client();
    let counters = 16;
    for c in 0..counters {
        client
            .deploy_blocking(format!("counter-{c}"), "counter", Vec::new())
            .map_err(|e| e.to_string())?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..opts.clients)
        .map(|t| {
            let (client, stop, measuring) = (client.clone(), stop.clone(), measuring.clone());
            std::thread::spawn(move || {
                let mut h =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let ok = client
                        .call_blocking(
                            format!("counter-{}", i % counters),
                            "",
                            Duration::from_secs(10),
                        )
                        .is_ok();
                    i += 1;
                    if ok && measuring.load(Ordering::Relaxed) {
                        h.saturating_record(started.elapsed().as_nanos() as u64);
                    }
                }
                h
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(opts.seconds));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    for t in threads {
        all.add(t.join().map_err(|_| "client thread panicked")?)
            .map_err(|e| e.to_string())?;
    }
    node.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(CallFigures {
        p50_us: all.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: all.value_at_quantile(0.99) as f64 / 1e3,
        calls_per_s: all.len() as f64 / elapsed,
    })
}

use crate::report::median_f64 as median;

/// Runs every configuration `runs` times (alternating), prints the table of
/// medians and returns it: (mode, output commit, figures).
pub fn run(opts: &OutputCommitOptions) -> Result<Vec<(Durability, bool, CallFigures)>, String> {
    let configs = [
        (Durability::Batched, false),
        (Durability::Batched, true),
        (Durability::Immediate, false),
        (Durability::Immediate, true),
    ];
    let mut runs: Vec<Vec<CallFigures>> = vec![Vec::new(); configs.len()];
    for run in 0..opts.runs.max(1) {
        for (i, (mode, oc)) in configs.iter().enumerate() {
            let f = measure(*mode, *oc, opts)?;
            eprintln!(
                "run {run}: {mode} output commit {}: p50 {:.1} µs p99 {:.1} µs {:.0} calls/s",
                if *oc { "on" } else { "off" },
                f.p50_us,
                f.p99_us,
                f.calls_per_s
            );
            runs[i].push(f);
        }
    }
    println!(
        "closed loop: {} clients, one call in flight each, 16 counters (one state write per call); medians of {} runs",
        opts.clients,
        opts.runs.max(1)
    );
    println!("| mode | output commit | call p50 | call p99 | calls/s |");
    println!("|---|---|---|---|---|");
    let mut out = Vec::new();
    for (i, (mode, oc)) in configs.iter().enumerate() {
        let f = CallFigures {
            p50_us: median(runs[i].iter().map(|f| f.p50_us).collect()),
            p99_us: median(runs[i].iter().map(|f| f.p99_us).collect()),
            calls_per_s: median(runs[i].iter().map(|f| f.calls_per_s).collect()),
        };
        println!(
            "| {mode} | {} | {:.1} µs | {:.1} µs | {:.0} |",
            if *oc {
                "on"
            } else {
                "off (replies before commit)"
            },
            f.p50_us,
            f.p99_us,
            f.calls_per_s
        );
        out.push((*mode, *oc, f));
    }
    Ok(out)
}
