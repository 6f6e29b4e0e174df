//! `quire-bench capacity`: the figures an operator sizes a node with, per
//! shard (one shard per core): how fast agents are spawned (one by one,
//! in batches, next to tokio spawning tasks), what an idle native and an
//! idle WebAssembly agent cost in memory, how many messages a shard
//! carries, and what a client connection costs. docs/capacity.md is
//! written from its output.

use std::time::{Duration, Instant};

use quire_client::RemoteClient;
use quire_runtime::config::NodeConfig;
use quire_runtime::{Node, WasmOptions};

use crate::report::{allocated_bytes, resident_bytes};

/// What `capacity` measures with.
#[derive(clap::Args, Debug, Clone)]
pub struct CapacityOptions {
    /// Shards (default: one per CPU).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Native agents spawned in the batch run.
    #[arg(long, default_value_t = 100_000)]
    pub agents: usize,
    /// WebAssembly agents deployed.
    #[arg(long, default_value_t = 10_000)]
    pub wasm_agents: usize,
    /// Client connections opened.
    #[arg(long, default_value_t = 1_000)]
    pub connections: usize,
    /// Runs of each figure (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// One line of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CapacityFigure {
    /// What.
    pub what: String,
    /// The median value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
    /// Every run's value.
    pub runs: Vec<f64>,
}

fn node(shards: Option<usize>, listen: Option<String>) -> Result<Node, String> {
    let mut config = NodeConfig::default();
    config.node.shards = shards;
    config.network.listen = listen;
    config.demo.pingers_per_shard = 0;
    config.demo.pongers_per_shard = 0;
    config.demo.wasm_pongers_per_shard = 0;
    Node::builder()
        .config(config)
        .start()
        .map_err(|e| e.to_string())
}

use crate::report::median_f64 as median;

struct Table {
    figures: Vec<CapacityFigure>,
}

impl Table {
    fn add(&mut self, what: String, unit: &'static str, runs: Vec<f64>) {
        println!(
            "{what}: {:.1} {unit} (runs: {runs:.1?})",
            median(runs.clone())
        );
        self.figures.push(CapacityFigure {
            what,
            value: median(runs.clone()),
            unit,
            runs,
        });
    }
}

/// Runs every measurement; prints each as it comes and returns the table.
pub fn run(opts: &CapacityOptions) -> Result<Vec<CapacityFigure>, String> {
    let runs = opts.runs.max(1);
    let mut table = Table {
        figures: Vec::new(),
    };
    let shards = node(opts.shards, None)?.client().shard_count();
    println!("capacity of a node of {shards} shards");

    // Spawning native agents: one command each, then in one batch.
    let one_by_one = 10_000.min(opts.agents);
    let mut single = Vec::new();
    let mut batch = Vec::new();
    let mut per_agent = Vec::new();
    let mut tokio = Vec::new();
    let mut tokio_mem = Vec::new();
    for _ in 0..runs {
        let n = node(opts.shards, None)?;
        let client = n.client();
        let t = Instant::now();
        for i in 0..one_by_one {
            client
                .register_blocking(format!("one-{i}"), || crate::routing::Echo)
                .map_err(|e| e.to_string())?;
        }
        single.push(one_by_one as f64 / t.elapsed().as_secs_f64());
        n.shutdown();

        let n = node(opts.shards, None)?;
        let client = n.client();
        let before = allocated_bytes();
        let t = Instant::now();
        let results = client.register_many_blocking(
            (0..opts.agents).map(|i| (format!("many-{i}"), || crate::routing::Echo)),
        );
        batch.push(opts.agents as f64 / t.elapsed().as_secs_f64());
        per_agent.push(allocated_bytes().saturating_sub(before) as f64 / opts.agents as f64);
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(e.to_string());
        }
        // Spawned agents answer (untimed).
        client
            .call_blocking(
                format!("many-{}", opts.agents - 1),
                &b"x"[..],
                Duration::from_secs(5),
            )
            .map_err(|e| e.to_string())?;
        n.shutdown();

        let (rate, bytes) = crate::peer_tokio::spawn_agents(shards, 1024, opts.agents);
        tokio.push(rate);
        tokio_mem.push(bytes);
    }
    table.add(
        format!("spawn native agents one by one ({one_by_one}, register)"),
        "agents/s",
        single,
    );
    table.add(
        format!(
            "spawn native agents in one batch ({}, register_many)",
            opts.agents
        ),
        "agents/s",
        batch,
    );
    table.add(
        format!(
            "tokio: spawn tasks with mailboxes ({}, spawn + registry insert)",
            opts.agents
        ),
        "tasks/s",
        tokio,
    );
    table.add("memory per idle native agent".into(), "bytes", per_agent);
    table.add(
        "tokio: memory per idle task with mailbox".into(),
        "bytes",
        tokio_mem,
    );

    // WebAssembly agents: deployed in one batch, idle (no instance).
    let mut wasm_rate = Vec::new();
    let mut wasm_mem = Vec::new();
    for _ in 0..runs {
        let n = node(opts.shards, None)?;
        let client = n.client();
        // Compile once outside the timing (a node caches compiled modules).
        client
            .deploy_wasm_blocking(
                "warm",
                quire_shards::testing::wat_echo(),
                WasmOptions::default(),
            )
            .map_err(|e| e.to_string())?;
        let before = allocated_bytes();
        let t = Instant::now();
        let (_, results) = client
            .deploy_wasm_many_blocking(
                (0..opts.wasm_agents).map(|i| format!("wasm-{i}")),
                quire_shards::testing::wat_echo(),
                WasmOptions::default(),
            )
            .map_err(|e| e.to_string())?;
        wasm_rate.push(opts.wasm_agents as f64 / t.elapsed().as_secs_f64());
        wasm_mem.push(allocated_bytes().saturating_sub(before) as f64 / opts.wasm_agents as f64);
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(e.to_string());
        }
        n.shutdown();
    }
    table.add(
        format!(
            "deploy WebAssembly agents in one batch ({}, deploy_wasm_many)",
            opts.wasm_agents
        ),
        "agents/s",
        wasm_rate,
    );
    table.add(
        "memory per idle WebAssembly agent (no instance)".into(),
        "bytes",
        wasm_mem,
    );

    // Messages a shard carries: one-way between native agents on every
    // shard, and request/reply within one shard.
    let mut one_way = Vec::new();
    let mut calls = Vec::new();
    for run in 0..runs {
        let n = node(opts.shards, None)?;
        let client = n.client();
        let rate =
            crate::routing::one_way_throughput(&client, &format!("cap{run}"), 2, 250_000, 64)?;
        one_way.push(rate as f64 / shards as f64);
        let h =
            crate::routing::request_reply(&client, &format!("cap{run}"), 0, 0, 10_000, 100_000)?;
        calls.push(1e9 / h.mean().max(1.0));
        n.shutdown();
    }
    table.add(
        "one-way messages per shard (2 producers x 2 consumers per shard, all to all)".into(),
        "msg/s",
        one_way,
    );
    table.add(
        "request/reply round trips per shard (one caller, same shard, in sequence)".into(),
        "calls/s",
        calls,
    );

    // Client connections: opened and idle, memory of both ends.
    let mut conn_mem = Vec::new();
    for _ in 0..runs {
        let port = quire_runtime::net::free_port_block(shards as u16 + 1);
        let addr = format!("127.0.0.1:{port}");
        let n = node(opts.shards, Some(addr.clone()))?;
        let before_heap = allocated_bytes();
        let before_rss = resident_bytes();
        let mut open = Vec::with_capacity(opts.connections);
        for _ in 0..opts.connections {
            open.push(RemoteClient::connect(addr.as_str(), None).map_err(|e| e.to_string())?);
        }
        // Every connection is served: each answers a ping.
        for c in &mut open {
            c.ping().map_err(|e| e.to_string())?;
        }
        let heap = allocated_bytes().saturating_sub(before_heap) as f64;
        let rss = resident_bytes().saturating_sub(before_rss) as f64;
        conn_mem.push(heap.max(rss) / opts.connections as f64);
        drop(open);
        n.shutdown();
    }
    table.add(
        format!(
            "memory per idle client connection ({}, node and client ends together)",
            opts.connections
        ),
        "bytes",
        conn_mem,
    );
    Ok(table.figures)
}

/// The table as markdown.
pub fn markdown(figures: &[CapacityFigure]) -> String {
    let mut out = String::from("| figure | median | unit | runs |\n|---|---:|---|---|\n");
    for f in figures {
        let runs: Vec<String> = f.runs.iter().map(|r| format!("{r:.0}")).collect();
        out.push_str(&format!(
            "| {} | {:.0} | {} | {} |\n",
            f.what,
            f.value,
            f.unit,
            runs.join(", ")
        ));
    }
    out
}
