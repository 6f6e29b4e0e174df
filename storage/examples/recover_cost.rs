//! Times reopening and reading back a partition of many agents with much
//! state: `cargo run --release -p quire-storage --example recover_cost [AGENTS] [MIB] [DIR]`.

use std::time::Instant;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use quire_storage::{AgentRecord, Mutation, Partition, WriteBatch};

fn main() {
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(512);
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let keep = std::env::var_os("KEEP").is_some();
    let path = dir.join(format!("recover-cost-{agents}-{mib}.redb"));
    let reuse = keep && path.exists();
    let blob: bytes::Bytes = vec![7u8; mib * (1 << 20) / agents].into();
    let t = Instant::now();
    if !reuse {
        let part = Partition::open(&path).unwrap();
        let mut batch = WriteBatch::default();
        for i in 0..agents {
            let name = format!("agent-{i}");
            batch.push(Mutation::PutAgent(AgentRecord::new(
                &name,
                "counter",
                Vec::new(),
            )));
            batch.push(Mutation::PutState {
                agent: name,
                key: b"blob".to_vec(),
                value: blob.clone(),
            });
            if batch.len() >= 4000 {
                part.commit(&std::mem::take(&mut batch), false).unwrap();
            }
        }
        part.commit(&batch, true).unwrap();
    }
    println!(
        "wrote {agents} agents, {mib} MiB in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let part = Partition::open(&path).unwrap();
    let opened = t.elapsed();
    let rec = part.recover().unwrap();
    println!(
        "open {:.1} ms, recover {:.1} ms ({} agents, {} state bytes)",
        opened.as_secs_f64() * 1e3,
        (t.elapsed() - opened).as_secs_f64() * 1e3,
        rec.agents.len(),
        rec.state_bytes
    );
    drop(part);
    if !keep {
        let _ = std::fs::remove_file(&path);
    }
}
