//! The demo workload `quire node --demo` runs: pinger agents on every shard call
//! ponger agents spread over all shards at a steady rate, so a fresh node
//! does real routing work (same-shard and cross-shard calls) and its latency
//! summary means something. Some pongers are native agents, some are the
//! Rust SDK's echo module run as WebAssembly agents.

use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use quire_shards::{
    owning_shard, Agent, AgentId, CallError, Context, Envelope, MessageId, RegisterError,
    ShardStats,
};

use crate::client::{Client, DeployError};
use crate::wasm_agents::WasmOptions;

/// The Rust SDK's echo agent (sdk/quire-agent/examples/echo.rs).
const WASM_ECHO: &[u8] = include_bytes!("../../sdk/prebuilt/echo.wasm");
use crate::config::DemoSection;

/// Answers every call with the request's payload.
pub struct Ponger;

impl Agent for Ponger {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        let _ = ctx.reply(msg.payload);
    }
}

/// Calls the pongers in turn, one call per interval, driven by its own timer.
pub struct Pinger {
    pongers: Vec<AgentId>,
    next: usize,
    interval: Duration,
    payload: Bytes,
}

impl Pinger {
    /// A pinger over `pongers`, calling once per `interval`.
    pub fn new(pongers: Vec<AgentId>, interval: Duration) -> Self {
        Self {
            pongers,
            next: 0,
            interval,
            payload: Bytes::from(vec![0xa5; 64]),
        }
    }
}

impl Agent for Pinger {
    fn handle(&mut self, ctx: &mut Context<'_>, _tick: Envelope) {
        let to = self.pongers[self.next % self.pongers.len()].clone();
        self.next += 1;
        // A refusal is counted by the shard; the pinger just keeps its pace.
        let _ = ctx.call(to, self.payload.clone(), Duration::from_secs(1));
        ctx.send_after(self.interval, Bytes::new());
    }

    fn on_reply(
        &mut self,
        _ctx: &mut Context<'_>,
        _call: MessageId,
        _reply: Result<Envelope, CallError>,
    ) {
        // The shard records every round trip in its call-latency histogram.
    }
}

/// The first `count` names `prefix-K` owned by `shard`.
pub fn names_on_shard(
    prefix: &str,
    shard: usize,
    shard_count: usize,
    count: usize,
) -> Vec<AgentId> {
    (0..)
        .map(|k| format!("{prefix}-{k}"))
        .filter(|n| owning_shard(n, shard_count) as usize == shard)
        .take(count)
        .map(AgentId::from)
        .collect()
}

/// Registers the demo agents and starts the pingers.
pub fn start(client: &Client, demo: &DemoSection) -> Result<usize, String> {
    let n = client.shard_count();
    let pongers: Vec<AgentId> = (0..n)
        .flat_map(|s| names_on_shard("demo/ponger", s, n, demo.pongers_per_shard))
        .collect();
    for p in &pongers {
        client
            .register_blocking(p.clone(), || Ponger)
            .map_err(|e| e.to_string())?;
    }
    let wasm_pongers: Vec<AgentId> = (0..n)
        .flat_map(|s| names_on_shard("demo/wasm-ponger", s, n, demo.wasm_pongers_per_shard))
        .collect();
    for p in &wasm_pongers {
        match client.deploy_wasm_blocking(p.clone(), WASM_ECHO, WasmOptions::default()) {
            // A durable node brought it back from its last run.
            Ok(_) | Err(DeployError::Register(RegisterError::AlreadyRegistered(_))) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let pongers: Vec<AgentId> = pongers.into_iter().chain(wasm_pongers).collect();
    let interval = Duration::from_micros(demo.call_interval_us);
    let mut pingers = 0;
    for s in 0..n {
        for name in names_on_shard("demo/pinger", s, n, demo.pingers_per_shard) {
            let targets = pongers.clone();
            client
                .register_blocking(name.clone(), move || Pinger::new(targets, interval))
                .map_err(|e| e.to_string())?;
            client
                .send_blocking(name, Bytes::new())
                .map_err(|e| e.to_string())?;
            pingers += 1;
        }
    }
    Ok(pingers)
}

/// One line of the running summary: what happened since `previous`.
pub struct Interval {
    /// Calls completed in the interval.
    pub calls: u64,
    /// Their round-trip latencies.
    pub latency: Histogram<u64>,
    /// Messages rejected in the interval.
    pub rejected: u64,
}

/// The difference between two node-wide snapshots.
pub fn interval(now: &ShardStats, previous: &ShardStats) -> Interval {
    let mut latency = now.call_latency_ns.clone();
    // Histograms only grow, so the previous one is a subset.
    let _ = latency.subtract(&previous.call_latency_ns);
    Interval {
        calls: now.replies - previous.replies,
        latency,
        rejected: now.rejected_total() - previous.rejected_total(),
    }
}

/// Formats an interval as `calls/s` and percentiles in µs (of the calls the
/// shards timed: one agent call in [`quire_shards::LATENCY_SAMPLE_EVERY`]).
pub fn summary_line(i: &Interval, seconds: f64) -> String {
    let us = |q: f64| i.latency.value_at_quantile(q) as f64 / 1e3;
    format!(
        "{:>9.0} calls/s  round trip p50 {:>7.1} µs  p99 {:>7.1} µs  p99.9 {:>7.1} µs  max {:>8.1} µs  rejected {}",
        i.calls as f64 / seconds,
        us(0.5),
        us(0.99),
        us(0.999),
        i.latency.max() as f64 / 1e3,
        i.rejected
    )
}

/// Deploys one `counter` agent per shard for the durable part of the demo
/// (on a restart they are back already, with their counts).
pub fn deploy_counters(client: &Client) -> Result<Vec<AgentId>, String> {
    let n = client.shard_count();
    let names: Vec<AgentId> = (0..n)
        .flat_map(|s| names_on_shard("demo/counter", s, n, 1))
        .collect();
    for name in &names {
        match client.deploy_blocking(name.clone(), "counter", Vec::new()) {
            Ok(()) | Err(DeployError::Register(RegisterError::AlreadyRegistered(_))) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(names)
}

/// Sends `count` durable messages spread over `counters`, all in flight at
/// once, and waits for every acknowledgement.
pub fn durable_round(client: &Client, counters: &[AgentId], count: usize) -> Result<(), String> {
    let acks: Vec<_> = (0..count)
        .map(|i| {
            client.send_durable_pipelined(
                counters[i % counters.len()].clone(),
                Bytes::new(),
                quire_shards::SendOptions::default(),
                client.next_dedup_id(),
            )
        })
        .collect();
    for ack in acks {
        ack.wait_blocking().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One line about commits since `previous`.
pub fn storage_line(now: &ShardStats, previous: &ShardStats, seconds: f64) -> String {
    let mut latency = now.commit_latency_ns.clone();
    let _ = latency.subtract(&previous.commit_latency_ns);
    let commits = now.commits - previous.commits;
    let messages = now.committed_messages - previous.committed_messages;
    format!(
        "{:>9.0} durable msgs/s  {:>6.0} commits/s  ({:.1} msgs per commit)  commit p50 {:.2} ms  p99 {:.2} ms  failures {}",
        messages as f64 / seconds,
        commits as f64 / seconds,
        messages as f64 / commits.max(1) as f64,
        latency.value_at_quantile(0.5) as f64 / 1e6,
        latency.value_at_quantile(0.99) as f64 / 1e6,
        now.commit_failures
    )
}
