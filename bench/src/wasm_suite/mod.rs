//! `quire-bench wasm`: what WebAssembly agents cost, next to native agents
//! measured in the same run.
//!
//! - **echo latency**: a native driver calls an echo on the same shard, one
//!   call at a time (the routing benchmark's driver): the SDK's echo module
//!   next to a native echo, and the overhead ratio;
//! - **throughput per shard**: one shard's state machine on a pinned thread
//!   handling one-way messages to 64 wasm echo agents, next to 64 native
//!   ones (the shard's own cost: no mesh, no client channel);
//! - **activation**: idle agents activated by their first message, from a
//!   pre-warmed pool and with an empty pool (new instance), p50/p99; and
//!   deploy (spawn) of an agent on a running node, p50/p99;
//! - **memory**: resident memory of 10 000 and 100 000 addressable (idle)
//!   agents, and of 10 000 active ones (a live instance each);
//! - **looping neighbour**: open-loop calls at a fixed rate from a driver
//!   agent to well-behaved wasm agents on the same shard, latency from each
//!   call's intended send time (coordinated omission corrected), without
//!   and then with a client hammering an agent on that shard that loops
//!   forever on every message.
//!
//! Rooms: `shard_cost` (throughput, activation, deploy and memory on one
//! shard), `neighbour` (the looping neighbour); here the options, the
//! figures, the echo overhead and the report.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use quire_runtime::{Node, WasmOptions};
use quire_shards::wasm::{
    AgentLimits, Supervision, WasmAgent, WasmEngine, WasmShard, WasmShardConfig,
};
use quire_shards::{
    new_latency_histogram, Agent, AgentId, Context, Envelope, SendOptions, ShardConfig, ShardCore,
};
use serde::Serialize;

use crate::report::{human_ns, latency_ratio, median, resident_bytes, MachineInfo, Percentiles};
use crate::routing::{request_reply, request_reply_with};

mod neighbour;
mod shard_cost;

use neighbour::looping_neighbour;
use shard_cost::{activation, deploy_time, memory, shard_throughput};

/// The SDK's echo agent (sdk/quire-agent/examples/echo.rs).
pub const ECHO_WASM: &[u8] = include_bytes!("../../../sdk/prebuilt/echo.wasm");
/// The SDK's counter agent.
pub const COUNTER_WASM: &[u8] = include_bytes!("../../../sdk/prebuilt/counter.wasm");
/// Options of `quire-bench wasm`.
#[derive(Debug, Clone, Args)]
pub struct WasmBenchOptions {
    /// Runs per latency/throughput figure (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Measured calls per echo-latency run.
    #[arg(long, default_value_t = 200_000)]
    pub samples: u64,
    /// Calls before measuring.
    #[arg(long, default_value_t = 20_000)]
    pub warmup: u64,
    /// Messages per throughput run.
    #[arg(long, default_value_t = 2_000_000)]
    pub messages: u64,
    /// Largest count of addressable agents in the memory figure.
    #[arg(long, default_value_t = 100_000)]
    pub agents: usize,
    /// Agents activated (live instances) in the memory figure.
    #[arg(long, default_value_t = 10_000)]
    pub active: usize,
    /// Seconds of open-loop load per looping-neighbour phase.
    #[arg(long, default_value_t = 3)]
    pub neighbour_secs: u64,
    /// Calls per second of that load.
    #[arg(long, default_value_t = 20_000)]
    pub neighbour_rate: u64,
    /// Fuel per message of the looping agent.
    #[arg(long, default_value_t = 250_000)]
    pub neighbour_fuel: u64,
    /// Spin before parking (µs) for the node figures.
    #[arg(long, default_value_t = 200)]
    pub spin_us: u64,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Latency of one agent kind next to another.
#[derive(Debug, Clone, Serialize)]
pub struct Overhead {
    /// Native figures.
    pub native: Percentiles,
    /// WebAssembly figures.
    pub wasm: Percentiles,
    /// wasm p50 / native p50.
    pub p50_ratio: f64,
    /// wasm p99 / native p99.
    pub p99_ratio: f64,
}

/// Messages per second through one shard.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Native agents.
    pub native_msgs_per_s: u64,
    /// WebAssembly agents.
    pub wasm_msgs_per_s: u64,
    /// wasm / native.
    pub ratio: f64,
}

/// Resident memory figures.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// Addressable agents counted at each step, with the resident bytes
    /// they added and bytes per agent.
    pub addressable: Vec<(usize, u64, u64)>,
    /// Active agents, resident bytes they added on top, bytes per agent.
    pub active: (usize, u64, u64),
}

/// The looping-neighbour figure.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbour {
    /// Well-behaved calls, shard alone.
    pub quiet: Percentiles,
    /// The same while a looping agent on the shard is hammered.
    pub hammered: Percentiles,
    /// hammered p99 / quiet p99.
    pub p99_growth: f64,
    /// Messages the looping agent was sent (all runs together).
    pub looper_sent: u64,
    /// Its failures (fuel).
    pub looper_failures: u64,
    /// Its messages refused while quarantined.
    pub looper_quarantined: u64,
    /// Shard time one looping message takes before its fuel runs out (a
    /// client call to it, round trip), ns.
    pub looper_message_ns: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct WasmReport {
    /// The machine.
    pub machine: MachineInfo,
    /// Same-shard echo request/reply.
    pub echo: Overhead,
    /// One-way messages through one shard.
    pub throughput: Throughput,
    /// Activation from a pool.
    pub activation_pooled: Percentiles,
    /// Activation with an empty pool.
    pub activation_cold: Percentiles,
    /// Deploy of an agent on a node (module cached), client to answer.
    pub deploy: Percentiles,
    /// Memory.
    pub memory: Memory,
    /// Looping neighbour.
    pub neighbour: Neighbour,
}

/// Runs the suite and prints it as it goes.
pub fn run(opts: &WasmBenchOptions) -> Result<WasmReport, String> {
    let machine = MachineInfo::current();
    println!(
        "wasm benchmark: {} ({} CPUs, kernel {}), {} run(s) per figure",
        machine.cpu_model, machine.cpus, machine.kernel, opts.runs
    );
    let echo = echo_overhead(opts)?;
    println!(
        "same-shard echo request/reply: native p50 {} p99 {} | wasm p50 {} p99 {} | wasm/native p50 {:.2}x p99 {:.2}x",
        human_ns(echo.native.p50_ns),
        human_ns(echo.native.p99_ns),
        human_ns(echo.wasm.p50_ns),
        human_ns(echo.wasm.p99_ns),
        echo.p50_ratio,
        echo.p99_ratio
    );
    let throughput = shard_throughput(opts)?;
    println!(
        "one shard, one-way to 64 agents: native {:.2} M msg/s | wasm {:.2} M msg/s | wasm/native {:.2}",
        throughput.native_msgs_per_s as f64 / 1e6,
        throughput.wasm_msgs_per_s as f64 / 1e6,
        throughput.ratio
    );
    let (activation_pooled, activation_cold) = activation()?;
    println!(
        "activation (SDK counter): from the pool p50 {} p99 {} | new instance p50 {} p99 {}",
        human_ns(activation_pooled.p50_ns),
        human_ns(activation_pooled.p99_ns),
        human_ns(activation_cold.p50_ns),
        human_ns(activation_cold.p99_ns)
    );
    let deploy = deploy_time(opts)?;
    println!(
        "deploy on a node (module cached), client to answer: p50 {} p99 {}",
        human_ns(deploy.p50_ns),
        human_ns(deploy.p99_ns)
    );
    let memory = memory(opts)?;
    for (n, bytes, per) in &memory.addressable {
        println!(
            "{n} addressable agents: {:.1} MiB resident, {per} B per agent",
            *bytes as f64 / (1 << 20) as f64
        );
    }
    let (n, bytes, per) = memory.active;
    println!(
        "{n} active agents (a live instance each): +{:.1} MiB resident, {:.1} KiB per agent",
        bytes as f64 / (1 << 20) as f64,
        per as f64 / 1024.0
    );
    let neighbour = looping_neighbour(opts)?;
    println!(
        "well-behaved wasm calls at {}/s, open loop inside the shard: quiet p50 {} p99 {} p99.9 {} max {} | looping neighbour hammered p50 {} p99 {} p99.9 {} max {} | p99 growth {:.2}x (one looping message: {}; looper: {} sent, {} failed, {} refused in quarantine)",
        opts.neighbour_rate,
        human_ns(neighbour.quiet.p50_ns),
        human_ns(neighbour.quiet.p99_ns),
        human_ns(neighbour.quiet.p999_ns),
        human_ns(neighbour.quiet.max_ns),
        human_ns(neighbour.hammered.p50_ns),
        human_ns(neighbour.hammered.p99_ns),
        human_ns(neighbour.hammered.p999_ns),
        human_ns(neighbour.hammered.max_ns),
        neighbour.p99_growth,
        human_ns(neighbour.looper_message_ns),
        neighbour.looper_sent,
        neighbour.looper_failures,
        neighbour.looper_quarantined
    );
    let report = WasmReport {
        machine,
        echo,
        throughput,
        activation_pooled,
        activation_cold,
        deploy,
        memory,
        neighbour,
    };
    if let Some(path) = &opts.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(report)
}

fn node(opts: &WasmBenchOptions, shards: usize) -> Result<Node, String> {
    Node::builder()
        .shards(shards.min(crate::report::cpus()))
        .spin_before_park(Duration::from_micros(opts.spin_us))
        .start()
        .map_err(|e| e.to_string())
}

fn echo_overhead(opts: &WasmBenchOptions) -> Result<Overhead, String> {
    let mut native = Vec::new();
    let mut wasm = Vec::new();
    for run in 0..opts.runs {
        let node = node(opts, 2)?;
        let client = node.client();
        let h = request_reply(&client, &format!("n{run}"), 0, 0, opts.warmup, opts.samples)?;
        native.push(Percentiles::of(&h));
        let h = request_reply_with(
            &client,
            &format!("w{run}"),
            0,
            0,
            opts.warmup,
            opts.samples,
            |client, name| {
                client
                    .deploy_wasm_blocking(name, ECHO_WASM, WasmOptions::default())
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        )?;
        wasm.push(Percentiles::of(&h));
        node.shutdown();
    }
    let native = Percentiles::median_of(&native);
    let wasm = Percentiles::median_of(&wasm);
    Ok(Overhead {
        p50_ratio: latency_ratio(wasm.p50_ns, native.p50_ns),
        p99_ratio: latency_ratio(wasm.p99_ns, native.p99_ns),
        native,
        wasm,
    })
}
