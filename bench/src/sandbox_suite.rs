//! `quire-bench sandbox`: what a hostile agent costs the good agent next to
//! it. For each attacker of [`quire_shards::hostile_agents`], a fresh node
//! (`--shards`, 1 by default: on a small machine the clients need the other
//! cores; sockets on loopback) gets the attacker and a good echo agent
//! on the same shard; one client hammers the attacker as fast as it can,
//! another calls the good agent open loop at `--rate` (the wire load's
//! writer sends each call when it is due whatever is in flight, and each
//! reply is timed from that instant, so a stall counts in full), a third asks the
//! node for its agent list every 50 ms (how long commands wait). The quiet
//! row is the same run with no attacker traffic; the echo row hammers a
//! well-behaved echo agent the same way, and is what the attack rows are
//! compared with.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;

use crate::load::{remote, LoadSpec, Pattern};
use quire_client::RemoteClient;
use quire_runtime::config::NodeConfig;
use quire_runtime::net::free_port_block;
use quire_runtime::Node;
use quire_shards::hostile_agents as hostile;

/// Options of `quire-bench sandbox`.
#[derive(Debug, Clone, Args)]
pub struct SandboxOptions {
    /// Calls per second to the good agent.
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Seconds each run lasts.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Runs of the whole table (medians are printed).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Only these attackers (comma-separated names of the table's rows;
    /// the quiet and echo rows always run).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Shards of the node (the attacker and the good agent share one).
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
}

/// One row: figures of one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Row {
    /// Good-agent latency, µs.
    pub p50_us: f64,
    /// Good-agent latency, µs.
    pub p99_us: f64,
    /// Good-agent latency, µs.
    pub p999_us: f64,
    /// Good-agent latency, µs.
    pub max_us: f64,
    /// The generator's own lateness (how late a call left that was not held
    /// up by the one before), p99, µs.
    pub lateness_p99_us: f64,
    /// Longest wait for the agent list, ms.
    pub command_max_ms: f64,
    /// Good-agent calls that failed.
    pub failed: u64,
}

type Attack = (&'static str, fn() -> Vec<u8>);

/// When the hammering starts, from the start of a run.
const ATTACK_AFTER: Duration = Duration::from_millis(750);

fn attacks() -> Vec<Attack> {
    vec![
        // The baseline: the same hammering client on a well-behaved agent.
        ("echo", hostile::echo),
        ("freezer", hostile::freezer),
        ("hog", hostile::hog),
        ("table-grower", hostile::table_grower),
        ("call-hog", hostile::call_hog),
        ("state-hog", hostile::state_hog),
        ("mailbox-bomb", hostile::mailbox_bomb),
        ("log-flood", hostile::log_flood),
        ("trap", hostile::plain_trap),
    ]
}

/// Runs the table; prints it.
pub fn run(opts: &SandboxOptions) -> Result<Vec<(String, Row)>, String> {
    let mut all: Vec<(String, Vec<Row>)> = Vec::new();
    for _ in 0..opts.runs.max(1) {
        let quiet = one_run(opts, None)?;
        push(&mut all, "quiet", quiet);
        let chosen = attacks().into_iter().filter(|(name, _)| {
            *name == "echo" || opts.only.is_empty() || opts.only.iter().any(|o| o == name)
        });
        for attack in chosen {
            let row = one_run(opts, Some(attack))?;
            push(&mut all, attack.0, row);
        }
    }
    let rows: Vec<(String, Row)> = all
        .into_iter()
        .map(|(name, rows)| (name, median_row(&rows)))
        .collect();
    // The ratio is to the echo row: the hammering client costs the shard
    // (and this 2-vCPU machine) something whatever it calls; what is left
    // is what the attack itself costs.
    let base_p99 = rows
        .iter()
        .find(|(n, _)| n == "echo")
        .map_or(1.0, |(_, r)| r.p99_us.max(1.0));
    println!(
        "sandbox: good agent on the attacker's shard, open loop {} calls/s, {} s a run, medians of {} run(s)",
        opts.rate, opts.seconds, opts.runs
    );
    println!(
        "{:<14} {:>9} {:>9} {:>10} {:>10} {:>10} {:>13} {:>14} {:>7}",
        "attacker",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "p99 / echo",
        "late p99 µs",
        "command max ms",
        "failed"
    );
    for (name, r) in &rows {
        println!(
            "{:<14} {:>9.1} {:>9.1} {:>10.1} {:>10.1} {:>10.2} {:>13.1} {:>14.1} {:>7}",
            name,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.max_us,
            r.p99_us / base_p99,
            r.lateness_p99_us,
            r.command_max_ms,
            r.failed
        );
    }
    Ok(rows)
}

fn push(all: &mut Vec<(String, Vec<Row>)>, name: &str, row: Row) {
    match all.iter_mut().find(|(n, _)| n == name) {
        Some((_, rows)) => rows.push(row),
        None => all.push((name.to_string(), vec![row])),
    }
}

fn median_row(rows: &[Row]) -> Row {
    let median = |f: fn(&Row) -> f64| crate::report::median_f64(rows.iter().map(f).collect());
    Row {
        p50_us: median(|r| r.p50_us),
        p99_us: median(|r| r.p99_us),
        p999_us: median(|r| r.p999_us),
        max_us: median(|r| r.max_us),
        lateness_p99_us: median(|r| r.lateness_p99_us),
        command_max_ms: median(|r| r.command_max_ms),
        failed: rows.iter().map(|r| r.failed).max().unwrap_or(0),
    }
}

const TOKEN: &str = "sandbox-bench";

fn connect(addr: &str) -> Result<RemoteClient, String> {
    RemoteClient::connect(addr, Some(TOKEN)).map_err(|e| e.to_string())
}

fn one_run(opts: &SandboxOptions, attack: Option<Attack>) -> Result<Row, String> {
    let port = free_port_block(3);
    let addr = format!("127.0.0.1:{port}");
    // QUIRE_* variables apply, as they do to `quire node`.
    let mut config = NodeConfig::load(None, std::env::vars()).map_err(|e| e.to_string())?;
    config.node.shards = Some(opts.shards.max(1));
    config.network.listen = Some(addr.clone());
    config.network.admin_token = Some(TOKEN.into());
    let node = Node::builder()
        .config(config)
        .start()
        .map_err(|e| e.to_string())?;
    let mut admin = connect(&addr)?;
    let attacker = attack.map_or("quiet", |a| a.0);
    admin
        .deploy(attacker, &attack.map_or_else(hostile::echo, |a| (a.1)()))
        .map_err(|e| e.to_string())?;
    if attacker == "call-hog" {
        for i in 0..8 {
            admin
                .deploy(&format!("silent-{i}"), &hostile::silent())
                .map_err(|e| e.to_string())?;
        }
    }
    let shard_of = |c: &mut RemoteClient, name: &str| -> Result<u64, String> {
        let rows = c.agents().map_err(|e| e.to_string())?;
        Ok(rows.iter().find(|r| r.name == name).map_or(0, |r| r.shard))
    };
    let target = shard_of(&mut admin, attacker)?;
    let mut good = String::new();
    for i in 0.. {
        let name = format!("good-{i}");
        admin
            .deploy(&name, &hostile::echo())
            .map_err(|e| e.to_string())?;
        if shard_of(&mut admin, &name)? == target {
            good = name;
            break;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Every attacker is called (one call at a time, as fast as its answers
    // come): a storm it starts itself is its own doing.
    let hammer = attack.map(|(name, _)| {
        let stop = stop.clone();
        let addr = addr.clone();
        std::thread::spawn(move || {
            let Ok(mut c) = connect(&addr) else { return };
            // The attack starts inside the measured window (after the
            // generator's 50 ms start and 200 ms warm-up): its first blow,
            // before any quarantine, is measured too.
            std::thread::sleep(ATTACK_AFTER);
            while !stop.load(Ordering::Relaxed) {
                let _ = c.call(name, b"x", Duration::from_secs(5));
            }
        })
    });
    let prober = {
        let stop = stop.clone();
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            let Ok(mut c) = connect(&addr) else {
                return worst;
            };
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let _ = c.agents();
                worst = worst.max(asked.elapsed());
                std::thread::sleep(Duration::from_millis(50));
            }
            worst
        })
    };
    // Open loop for real: a writer sends each call when it is due, whatever
    // is in flight, and the replies are timed from their due time (a
    // one-call-at-a-time client would fall behind for good after one slow
    // answer, and measure its own queue).
    let spec = LoadSpec {
        pattern: Pattern::RequestReply,
        agents: 1,
        rate: opts.rate,
        duration: Duration::from_secs_f64(opts.seconds),
        warmup: Duration::from_millis(200),
        message_size: 32,
        interval: Duration::from_secs(1),
        burst: None,
    };
    let measured = remote::drive(&addr, &[good], &spec, &mut |_| {})?;
    let latency = &measured.corrected;
    let lateness = &measured.send_lateness;
    // Calls meant to be measured that got no reply: refused or lost.
    let failed = measured.expected.saturating_sub(latency.len());
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = hammer {
        let _ = h.join();
    }
    let command_max = prober.join().unwrap_or_default();
    drop(admin);
    node.shutdown();
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    Ok(Row {
        p50_us: us(latency, 0.5),
        p99_us: us(latency, 0.99),
        p999_us: us(latency, 0.999),
        max_us: latency.max() as f64 / 1_000.0,
        lateness_p99_us: us(lateness, 0.99),
        command_max_ms: command_max.as_secs_f64() * 1_000.0,
        failed,
    })
}
