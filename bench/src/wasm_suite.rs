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

/// The SDK's echo agent (sdk/quire-agent/examples/echo.rs).
pub const ECHO_WASM: &[u8] = include_bytes!("../../sdk/prebuilt/echo.wasm");
/// The SDK's counter agent.
pub const COUNTER_WASM: &[u8] = include_bytes!("../../sdk/prebuilt/counter.wasm");

/// Loops forever on every message (a hostile agent).
const LOOPER_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "quire_abi_version") (result i32) i32.const 1)
  (func (export "quire_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
    (loop $forever (br $forever)) i32.const 0))"#;

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
        .shards(
            shards.min(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
            ),
        )
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

/// Counts sends (a native sink).
struct Sink;

impl Agent for Sink {
    fn handle(&mut self, _ctx: &mut Context<'_>, _msg: Envelope) {}
}

/// A shard state machine on this thread, pinned to the last CPU.
fn pinned_shard(mailbox: usize) -> ShardCore {
    if let Some(core) = core_affinity::get_core_ids().and_then(|c| c.last().copied()) {
        core_affinity::set_for_current(core);
    }
    ShardCore::new(ShardConfig {
        mailbox_capacity: mailbox,
        ..ShardConfig::new(0, 1)
    })
}

fn wasm_host(pool_size: usize) -> Rc<WasmShard> {
    WasmShard::new(
        WasmEngine::new(None),
        WasmShardConfig {
            pool_size,
            ..WasmShardConfig::default()
        },
    )
}

/// Runs `f` on a thread of its own (pinned shards, thread-local hosts) and
/// returns what it returned.
fn on_own_thread<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| format!("the {what} thread died"))?
}

/// Compiles `bytes` on `host` and registers a wasm agent running it under
/// each of `names`.
fn register_wasm<'a>(
    shard: &mut ShardCore,
    host: &Rc<WasmShard>,
    bytes: &[u8],
    names: impl IntoIterator<Item = &'a AgentId>,
) -> Result<(), String> {
    let module = host.engine().compile(bytes).map_err(|e| e.to_string())?;
    for name in names {
        let agent = WasmAgent::new(
            host,
            module.clone(),
            AgentLimits::default(),
            Supervision::default(),
        );
        shard
            .register(name.clone(), Box::new(agent))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Messages per second through `shard`'s agents `names`, `messages` in all.
fn pump(shard: &mut ShardCore, names: &[AgentId], messages: u64) -> u64 {
    let payload = Bytes::from_static(&crate::routing::PAYLOAD);
    let per_round = 256;
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < messages {
        for name in names {
            for _ in 0..per_round {
                let _ = shard.admit_client(name.clone(), payload.clone(), SendOptions::default());
            }
            sent += per_round;
        }
        shard.run_until_idle();
    }
    let handled = shard.stats().handled;
    (handled as f64 / started.elapsed().as_secs_f64()) as u64
}

fn shard_throughput(opts: &WasmBenchOptions) -> Result<Throughput, String> {
    let (runs, messages) = (opts.runs, opts.messages);
    let (native, wasm) = on_own_thread("throughput", move || {
        let names: Vec<AgentId> = (0..64).map(|i| AgentId::from(format!("a{i}"))).collect();
        let mut native = Vec::new();
        let mut wasm = Vec::new();
        for _ in 0..runs {
            let mut shard = pinned_shard(1024);
            for n in &names {
                shard
                    .register(n.clone(), Box::new(Sink))
                    .map_err(|e| e.to_string())?;
            }
            native.push(pump(&mut shard, &names, messages));
            let mut shard = pinned_shard(1024);
            register_wasm(&mut shard, &wasm_host(0), ECHO_WASM, &names)?;
            wasm.push(pump(&mut shard, &names, messages));
        }
        Ok((median(native), median(wasm)))
    })?;
    Ok(Throughput {
        native_msgs_per_s: native,
        wasm_msgs_per_s: wasm,
        ratio: wasm as f64 / native.max(1) as f64,
    })
}

/// Activation of 10 000 idle SDK counters by their first message: from a
/// pool refilled between batches (as the sweeper does), then with none.
fn activation() -> Result<(Percentiles, Percentiles), String> {
    let run = |pool: usize| {
        on_own_thread("activation", move || {
            let mut shard = pinned_shard(64);
            let host = wasm_host(pool);
            let names: Vec<AgentId> = (0..10_000)
                .map(|i| AgentId::from(format!("c{i}")))
                .collect();
            register_wasm(&mut shard, &host, COUNTER_WASM, &names)?;
            for batch in names.chunks(pool.max(1)) {
                while host.refill() > 0 {}
                for n in batch {
                    let _ = shard.admit_client(n.clone(), Bytes::new(), SendOptions::default());
                }
                shard.run_until_idle();
            }
            Ok(host.stats().activation_ns)
        })
    };
    let pooled = run(64)?;
    let cold = run(0)?;
    Ok((Percentiles::of(&pooled), Percentiles::of(&cold)))
}

fn deploy_time(opts: &WasmBenchOptions) -> Result<Percentiles, String> {
    let node = node(opts, 2)?;
    let client = node.client();
    client
        .deploy_wasm_blocking("warm", COUNTER_WASM, WasmOptions::default())
        .map_err(|e| e.to_string())?;
    let mut h = new_latency_histogram();
    for i in 0..2_000 {
        let started = Instant::now();
        client
            .deploy_wasm_blocking(format!("d{i}"), COUNTER_WASM, WasmOptions::default())
            .map_err(|e| e.to_string())?;
        h.saturating_record(started.elapsed().as_nanos() as u64);
    }
    node.shutdown();
    Ok(Percentiles::of(&h))
}

fn memory(opts: &WasmBenchOptions) -> Result<Memory, String> {
    let (agents, active) = (opts.agents, opts.active.min(opts.agents));
    on_own_thread("memory", move || {
        let mut shard = pinned_shard(64);
        let host = wasm_host(0);
        let name = |i: usize| AgentId::from(format!("agent-{i}"));
        let base = resident_bytes();
        let mut addressable = Vec::new();
        let mut made = 0;
        for target in [agents / 10, agents] {
            if target <= made {
                continue;
            }
            let names: Vec<AgentId> = (made..target).map(name).collect();
            register_wasm(&mut shard, &host, COUNTER_WASM, &names)?;
            made = target;
            let grew = resident_bytes().saturating_sub(base);
            addressable.push((target, grew, grew / target as u64));
        }
        let before = resident_bytes();
        for i in 0..active {
            let _ = shard.admit_client(name(i), Bytes::new(), SendOptions::default());
            if i % 256 == 255 {
                shard.run_until_idle();
            }
        }
        shard.run_until_idle();
        let live = host.stats().live_instances as usize;
        if live < active {
            return Err(format!("only {live} of {active} agents became active"));
        }
        let grew = resident_bytes().saturating_sub(before);
        Ok(Memory {
            addressable,
            active: (active, grew, grew / active.max(1) as u64),
        })
    })
}

/// Open-loop load from inside a shard: calls fall due at a fixed rate and
/// each latency runs from the call's intended start, so a stall that
/// delays the driver itself still counts against every call it held up
/// (coordinated omission corrected). The driver clocks itself by sending
/// itself a tick after each pass: it needs no timer, and it runs between
/// the other agents' turns like any agent.
struct OpenLoopDriver {
    targets: Vec<AgentId>,
    interval: Duration,
    total: u64,
    issued: u64,
    answered: u64,
    start: Option<Instant>,
    intended: std::collections::HashMap<quire_shards::MessageId, Instant>,
    latency: Histogram<u64>,
    report: std::sync::mpsc::Sender<Histogram<u64>>,
}

impl Agent for OpenLoopDriver {
    fn handle(&mut self, ctx: &mut Context<'_>, _tick: Envelope) {
        let start = *self.start.get_or_insert_with(Instant::now);
        let now = Instant::now();
        while self.issued < self.total {
            let due = start + self.interval * self.issued as u32;
            if due > now {
                break;
            }
            let to = self.targets[self.issued as usize % self.targets.len()].clone();
            self.issued += 1;
            match ctx.call(to, Bytes::from_static(b"ping"), Duration::from_secs(5)) {
                Ok(id) => {
                    self.intended.insert(id, due);
                }
                Err(_) => self.answered += 1,
            }
        }
        if self.issued < self.total {
            let me = ctx.id().clone();
            let _ = ctx.send(me, Bytes::new());
        }
    }

    fn on_reply(
        &mut self,
        _ctx: &mut Context<'_>,
        call: quire_shards::MessageId,
        _reply: Result<Envelope, quire_shards::CallError>,
    ) {
        if let Some(due) = self.intended.remove(&call) {
            self.latency
                .saturating_record(due.elapsed().as_nanos() as u64);
        }
        self.answered += 1;
        if self.answered == self.total {
            let _ = self.report.send(std::mem::replace(
                &mut self.latency,
                new_latency_histogram(),
            ));
        }
    }
}

fn open_loop(
    client: &quire_runtime::Client,
    tag: &str,
    targets: &[AgentId],
    rate: u64,
    secs: u64,
) -> Result<Histogram<u64>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let driver = OpenLoopDriver {
        targets: targets.to_vec(),
        interval: Duration::from_nanos(1_000_000_000 / rate.max(1)),
        total: rate * secs,
        issued: 0,
        answered: 0,
        start: None,
        intended: std::collections::HashMap::new(),
        latency: new_latency_histogram(),
        report: tx,
    };
    let name = format!("{tag}/driver");
    client
        .register_blocking(name.as_str(), move || driver)
        .map_err(|e| e.to_string())?;
    client
        .send_blocking(name.as_str(), Bytes::new())
        .map_err(|e| e.to_string())?;
    rx.recv_timeout(Duration::from_secs(secs + 60))
        .map_err(|_| format!("{tag}: the open-loop run did not finish"))
}

/// The looping-neighbour figure, medians over `runs` fresh nodes.
fn looping_neighbour(opts: &WasmBenchOptions) -> Result<Neighbour, String> {
    let runs: Vec<Neighbour> = (0..opts.runs.max(1))
        .map(|_| looping_neighbour_once(opts))
        .collect::<Result<_, _>>()?;
    let quiet = Percentiles::median_of(&runs.iter().map(|r| r.quiet).collect::<Vec<_>>());
    let hammered = Percentiles::median_of(&runs.iter().map(|r| r.hammered).collect::<Vec<_>>());
    let sum = |f: fn(&Neighbour) -> u64| runs.iter().map(f).sum::<u64>();
    Ok(Neighbour {
        p99_growth: latency_ratio(hammered.p99_ns, quiet.p99_ns),
        quiet,
        hammered,
        looper_sent: sum(|r| r.looper_sent),
        looper_failures: sum(|r| r.looper_failures),
        looper_quarantined: sum(|r| r.looper_quarantined),
        looper_message_ns: median(runs.iter().map(|r| r.looper_message_ns).collect()),
    })
}

fn looping_neighbour_once(opts: &WasmBenchOptions) -> Result<Neighbour, String> {
    // One shard: the well-behaved agents and the looper share it.
    let node = Node::builder()
        .shards(1)
        .spin_before_park(Duration::from_micros(opts.spin_us))
        .start()
        .map_err(|e| e.to_string())?;
    let client = node.client();
    let targets: Vec<AgentId> = (0..16)
        .map(|i| AgentId::from(format!("good-{i}")))
        .collect();
    for t in &targets {
        client
            .deploy_wasm_blocking(t.clone(), ECHO_WASM, WasmOptions::default())
            .map_err(|e| e.to_string())?;
    }
    let looper = wasmer::wat2wasm(LOOPER_WAT.as_bytes()).map_err(|e| e.to_string())?;
    // The looper's fuel budget: 250 K operators per message (a quarter of
    // a millisecond here, a thousand times what the echo needs), and the
    // default supervision: 5 failures in 10 s quarantine it.
    let limits = AgentLimits {
        fuel_per_message: opts.neighbour_fuel,
        ..AgentLimits::default()
    };
    client
        .deploy_wasm_blocking(
            "looper",
            looper.into_owned(),
            WasmOptions::default().limits(limits),
        )
        .map_err(|e| e.to_string())?;
    // What one looping message costs the shard (a looper of its own, so the
    // measured one starts with no failures).
    client
        .deploy_wasm_blocking(
            "looper-probe",
            wasmer::wat2wasm(LOOPER_WAT.as_bytes())
                .map_err(|e| e.to_string())?
                .into_owned(),
            WasmOptions::default().limits(limits),
        )
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let _ = client.call_blocking(
        "looper-probe",
        Bytes::from_static(b"spin"),
        Duration::from_secs(5),
    );
    let looper_message_ns = started.elapsed().as_nanos() as u64;
    let quiet = open_loop(
        &client,
        "quiet",
        &targets,
        opts.neighbour_rate,
        opts.neighbour_secs,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = {
        let client = client.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = client.send_blocking("looper", Bytes::from_static(b"spin"));
                sent += 1;
            }
            sent
        })
    };
    let hammered = open_loop(
        &client,
        "hammered",
        &targets,
        opts.neighbour_rate,
        opts.neighbour_secs,
    )?;
    stop.store(true, Ordering::Relaxed);
    let looper_sent = hammer.join().unwrap_or(0);
    let stats = quire_shards::ShardStats::total(&client.stats_blocking());
    node.shutdown();
    let (quiet, hammered) = (Percentiles::of(&quiet), Percentiles::of(&hammered));
    Ok(Neighbour {
        p99_growth: latency_ratio(hammered.p99_ns, quiet.p99_ns),
        quiet,
        hammered,
        looper_sent,
        // The probe's one failure is not the hammered looper's.
        looper_failures: stats.rejected_for(quire_shards::Rejection::FuelExhausted) - 1,
        looper_message_ns,
        looper_quarantined: stats.rejected_for(quire_shards::Rejection::Quarantined),
    })
}
