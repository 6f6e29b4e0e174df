//! Recovery: how long a node with many agents and much state takes to
//! start again (a data directory written as the node would place it).

use super::*;

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

pub(super) fn recovery(opts: &StorageOptions, base: &Path) -> Result<RecoveryFigures, String> {
    let shards = crate::report::cpus().min(2);
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
