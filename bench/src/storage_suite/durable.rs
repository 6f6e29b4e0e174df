//! Durable messages per mode, closed loop: Quire's shard next to SQLite
//! doing the same writes with the same threads and window.

use super::*;

/// Sends durable messages from `senders` threads, `window` in flight each,
/// for `seconds` after a warm-up; `send(thread, seq)` returns something to
/// wait on, `wait` says whether it was acknowledged.
fn closed_loop<P, S, W>(
    senders: usize,
    window: usize,
    seconds: f64,
    affinity: Option<Vec<usize>>,
    send: S,
    wait: W,
) -> (f64, Histogram<u64>)
where
    S: Fn(usize, u64) -> P + Send + Sync,
    W: Fn(P) -> bool + Send + Sync,
{
    let warmup = Duration::from_millis(500);
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + Duration::from_secs_f64(seconds);
    let (send, wait) = (&send, &wait);
    let results: Vec<(u64, Histogram<u64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..senders)
            .map(|t| {
                let affinity = affinity.clone();
                scope.spawn(move || {
                    if let Some(cpus) = affinity {
                        if let Some(&cpu) = cpus.get(t % cpus.len().max(1)) {
                            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                        }
                    }
                    let mut h = new_latency_histogram();
                    let mut acked = 0u64;
                    let mut in_flight = VecDeque::with_capacity(window);
                    let mut seq = 0u64;
                    loop {
                        let now = Instant::now();
                        if now >= until {
                            break;
                        }
                        while in_flight.len() < window {
                            in_flight.push_back((Instant::now(), send(t, seq)));
                            seq += 1;
                        }
                        let (sent, pending) = in_flight.pop_front().expect("window is full");
                        let ok = wait(pending);
                        let done = Instant::now();
                        if ok && sent >= measure_from && done <= until {
                            acked += 1;
                            let ns = (done - sent).as_nanos() as u64;
                            h.saturating_record(ns.clamp(1, MAX_TRACKED_NS));
                        }
                    }
                    for (_, pending) in in_flight {
                        let _ = wait(pending);
                    }
                    (acked, h)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sender"))
            .collect()
    });
    let mut all = new_latency_histogram();
    let mut acked = 0;
    for (n, h) in results {
        acked += n;
        let _ = all.add(&h);
    }
    (acked as f64 / seconds, all)
}

pub(super) fn quire_run(
    opts: &StorageOptions,
    base: &Path,
    mode: Durability,
    seconds: f64,
) -> Result<(f64, Histogram<u64>), String> {
    let window = if mode == Durability::Immediate {
        opts.immediate_window
    } else {
        opts.window
    };
    let dir = fresh_dir(base, &mode.to_string());
    let node = one_shard_node(opts, &dir, mode)
        .start()
        .map_err(|e| e.to_string())?;
    let client = node.client();
    let counters = deploy_counters(&client, opts.counters)?;
    let affinity = other_cpus(shard_cpu(opts));
    let result = closed_loop(
        opts.senders,
        window,
        seconds,
        affinity,
        |t, seq| {
            let id = client.next_dedup_id();
            client.send_durable_pipelined(
                counters[(seq as usize + t) % counters.len()].clone(),
                Bytes::new(),
                SendOptions::default(),
                id,
            )
        },
        |pending| pending.wait_blocking().is_ok(),
    );
    let report = node.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    if report.totals().commit_failures > 0 {
        return Err("commits failed during the run".into());
    }
    Ok(result)
}

pub(super) fn sqlite_run(
    opts: &StorageOptions,
    base: &Path,
    sync: Synchronous,
    max_batch: usize,
    seconds: f64,
) -> Result<(f64, Histogram<u64>), String> {
    let dir = fresh_dir(base, "sqlite");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let store = SqliteStore::open(&dir.join("bench.sqlite"), sync, max_batch)?;
    let counters = opts.counters as u32;
    let affinity = other_cpus(shard_cpu(opts));
    let ids = std::sync::atomic::AtomicU64::new(0);
    let window = if max_batch == 1 {
        opts.immediate_window
    } else {
        opts.window
    };
    let result = closed_loop(
        opts.senders,
        window,
        seconds,
        affinity,
        |t, seq| {
            let id = ids.fetch_add(1, Ordering::Relaxed);
            store.send(id, (seq as u32).wrapping_add(t as u32) % counters)
        },
        |done| done.recv().is_ok(),
    );
    store.close()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result)
}

pub(super) fn medians(system: &str, runs: Vec<(f64, Histogram<u64>)>) -> DurableFigures {
    let rates: Vec<u64> = runs.iter().map(|(r, _)| *r as u64).collect();
    let pct: Vec<Percentiles> = runs.iter().map(|(_, h)| Percentiles::of(h)).collect();
    DurableFigures {
        system: system.into(),
        msgs_per_s: median(rates) as f64,
        ack: Percentiles::median_of(&pct),
    }
}
