//! What a wasm agent costs its shard, measured on one shard's state
//! machine on a pinned thread (no mesh, no client channel): one-way
//! throughput next to native agents, activation from a pool and without
//! one, resident memory per idle and per active agent; and deploy time on
//! a running node.

use super::*;

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

pub(super) fn shard_throughput(opts: &WasmBenchOptions) -> Result<Throughput, String> {
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
pub(super) fn activation() -> Result<(Percentiles, Percentiles), String> {
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

pub(super) fn deploy_time(opts: &WasmBenchOptions) -> Result<Percentiles, String> {
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

pub(super) fn memory(opts: &WasmBenchOptions) -> Result<Memory, String> {
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
