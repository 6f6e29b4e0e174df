//! Measures what one durable commit of a small batch costs on this disk:
//! `cargo run --release -p quire-storage --example commit_cost [DIR]`.

use std::time::Instant;

use quire_storage::{DurableMessage, Mutation, Partition, WriteBatch};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("commit-cost-{}.redb", std::process::id()));
    let part = Partition::open(&path).unwrap();
    for batch_size in [1usize, 64, 1024, 4096] {
        let rounds = 200;
        let mut times = Vec::with_capacity(rounds);
        let mut seq = 0u64;
        for _ in 0..rounds {
            let batch: WriteBatch = (0..batch_size)
                .map(|_| {
                    seq += 1;
                    Mutation::Enqueue(DurableMessage {
                        seq,
                        dedup: seq,
                        to: "agent".into(),
                        priority: 2,
                        payload: vec![0u8; 64].into(),
                    })
                })
                .collect();
            let t = Instant::now();
            part.commit(&batch, true).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "batch {batch_size:>5}: commit p50 {:.2} ms, p99 {:.2} ms",
            times[rounds / 2],
            times[rounds * 99 / 100]
        );
    }
    drop(part);
    let _ = std::fs::remove_file(&path);
}
