//! Routing latency on a shard with and without a concurrent commit storm:
//! what durable writers cost the agents next to them.

use super::*;

pub(super) fn storm(opts: &StorageOptions, base: &Path) -> Result<StormFigures, String> {
    let dir = fresh_dir(base, "storm");
    let node = one_shard_node(opts, &dir, Durability::Batched)
        .start()
        .map_err(|e| e.to_string())?;
    let client = node.client();
    let counters = deploy_counters(&client, opts.counters)?;
    let warm = opts.rr_samples / 10;
    let mut quiet = Vec::new();
    let mut stormy = Vec::new();
    let mut rates = Vec::new();
    for run in 0..opts.runs {
        quiet.push(Percentiles::of(&request_reply(
            &client,
            &format!("quiet{run}"),
            0,
            0,
            warm,
            opts.rr_samples,
        )?));
        let stop = Arc::new(AtomicBool::new(false));
        let storm_client = client.clone();
        let storm_counters = counters.clone();
        let storm_stop = stop.clone();
        let affinity = other_cpus(shard_cpu(opts));
        let window = opts.window;
        let storm_thread = std::thread::spawn(move || {
            if let Some(cpu) = affinity.and_then(|c| c.first().copied()) {
                core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
            }
            let started = Instant::now();
            let mut acked = 0u64;
            let mut in_flight = VecDeque::new();
            let mut seq = 0usize;
            while !storm_stop.load(Ordering::Relaxed) {
                while in_flight.len() < window {
                    in_flight.push_back(storm_client.send_durable_pipelined(
                        storm_counters[seq % storm_counters.len()].clone(),
                        Bytes::new(),
                        SendOptions::default(),
                        storm_client.next_dedup_id(),
                    ));
                    seq += 1;
                }
                if let Some(p) = in_flight.pop_front() {
                    if p.wait_blocking().is_ok() {
                        acked += 1;
                    }
                }
            }
            for p in in_flight {
                let _ = p.wait_blocking();
            }
            acked as f64 / started.elapsed().as_secs_f64()
        });
        // Let the storm reach its pace first.
        std::thread::sleep(Duration::from_millis(300));
        let h = request_reply(&client, &format!("storm{run}"), 0, 0, warm, opts.rr_samples);
        stop.store(true, Ordering::Relaxed);
        rates.push(storm_thread.join().map_err(|_| "storm thread panicked")? as u64);
        stormy.push(Percentiles::of(&h?));
    }
    let report = node.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    if report.totals().commits == 0 {
        return Err("the storm committed nothing".into());
    }
    Ok(StormFigures {
        quiet: Percentiles::median_of(&quiet),
        storm: Percentiles::median_of(&stormy),
        storm_msgs_per_s: median(rates) as f64,
    })
}
