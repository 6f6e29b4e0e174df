//! `quire-bench run --suite standard`: the seed suite's scenarios, each
//! next to its peers.

use super::*;

/// Options of `quire-bench run`.
#[derive(Debug, Clone, Args)]
pub struct RunOptions {
    /// Keep idle reactors polling this many µs before they sleep (the
    /// low-latency option, as tokio's workers spin before parking); 0:
    /// park at once (the default configuration).
    #[arg(long, default_value_t = 200)]
    pub spin_us: u64,

    /// The suite (only `standard`).
    #[arg(long, default_value = "standard")]
    pub suite: String,
    /// Measured seconds of each open-loop scenario.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Seconds of the sustained scenario (long runs: 600 or more).
    #[arg(long, default_value_t = 10.0)]
    pub sustained: f64,
    /// Shards of the embedded node.
    #[arg(long)]
    pub shards: Option<usize>,
    /// Where the outputs go.
    #[arg(long, default_value = "bench-results/standard")]
    pub out: PathBuf,
    /// A summary to compare against in the report.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Largest agent count in the scalability scenario.
    #[arg(long, default_value_t = 10_000)]
    pub max_agents: usize,
}

/// Recovery after a burst: from the burst's end until an interval's p99 is
/// back within twice the p99 before the burst, ms.
fn recovery_ms(r: &LoadResult, spec: &LoadSpec, burst: Burst) -> f64 {
    let interval = spec.interval;
    // Intervals are counted from the end of the warm-up.
    let index_of =
        |t: Duration| (t.saturating_sub(spec.warmup).as_nanos() / interval.as_nanos()) as usize;
    let first_burst = index_of(burst.at);
    let after = index_of(burst.at + burst.length);
    let before: Vec<u64> = r.intervals[..first_burst.min(r.intervals.len())]
        .iter()
        .filter(|h| !h.is_empty())
        .map(|h| h.value_at_quantile(0.99))
        .collect();
    let base = median(before).max(1);
    for (k, h) in r.intervals.iter().enumerate().skip(after) {
        if !h.is_empty() && h.value_at_quantile(0.99) <= 2 * base {
            return ((k - after) as u64 * interval.as_millis() as u64) as f64;
        }
    }
    (r.intervals.len().saturating_sub(after) as u64 * interval.as_millis() as u64) as f64
}

/// Request/reply p99 at 20 000 msg/s with /metrics scraped 10 times a
/// second next to the same without scrapes, medians of 5 alternating runs.
fn scrape_overhead(node: &Node, setting: &str, secs: Duration) -> Result<Figure, String> {
    let client = node.client();
    let addr = node
        .metrics_addr()
        .ok_or("the node has no metrics endpoint")?;
    let spec = LoadSpec::new(Pattern::RequestReply, 100, 20_000, secs);
    let (mut quiet, mut scraped) = (Vec::new(), Vec::new());
    let mut scrapes = 0;
    for round in 0..5 {
        let bar = progress(&format!("scrape overhead {}/5", round + 1));
        let r = load::quire::run(&client, &format!("quiet-{round}"), &spec, |f| {
            bar.set_position((f * 500.0) as u64)
        })?;
        quiet.push(r.corrected.value_at_quantile(0.99));
        let stop = std::sync::atomic::AtomicBool::new(false);
        let r = std::thread::scope(|scope| {
            let scraper = scope.spawn(|| scrape_until(addr, 10, &stop));
            let r = load::quire::run(&client, &format!("scraped-{round}"), &spec, |f| {
                bar.set_position(500 + (f * 500.0) as u64)
            });
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            scrapes += scraper.join().unwrap_or(0);
            r
        })?;
        scraped.push(r.corrected.value_at_quantile(0.99));
        bar.finish();
    }
    println!(
        "{setting} ({} shard(s)): {scrapes} scrapes; p99 unscraped {quiet:?} ns, scraped {scraped:?} ns",
        client.shard_count()
    );
    Ok(Figure::new(
        format!("latency 20k msg/s, /metrics scraped 10/s, {setting}"),
        "p99",
        "ns",
        Better::Lower,
        median(scraped) as f64,
    )
    .vs("unscraped (same node)", median(quiet) as f64))
}

/// Prints each shard's stalls, host pauses and nudges so far.
fn print_reactor_figures(client: &quire_runtime::Client) {
    for m in client
        .metrics_blocking(Duration::from_secs(1))
        .into_iter()
        .flatten()
    {
        let v = |name| m.value(name, None).unwrap_or(0.0);
        println!(
            "shard {}: reactor stalls {} (longest {:.1} ms), host pauses {}, watchdog nudges {}",
            m.shard,
            v("quire_reactor_stalls_total"),
            v("quire_reactor_max_stall_seconds") * 1e3,
            v("quire_host_pauses_total"),
            v("quire_watchdog_nudges_total")
        );
    }
}

/// `quire-bench run --suite standard`.
pub fn run_suite(opts: &RunOptions) -> Result<Summary, String> {
    if opts.suite != "standard" {
        return Err(format!(
            "unknown suite {:?} (there is: standard)",
            opts.suite
        ));
    }
    let out = Outputs::new(&opts.out)?;
    let node = embedded_node(opts.shards, opts.spin_us)?;
    let client = node.client();
    let shards = client.shard_count();
    let secs = Duration::from_secs_f64(opts.duration);
    let mut figures = Vec::new();

    // A first run warms the node up (allocations, page faults, caches); it
    // is not reported.
    let warm = LoadSpec::new(Pattern::RequestReply, 100, 20_000, Duration::from_secs(1));
    let bar = progress("warm-up");
    load::quire::run(&client, "warm-up", &warm, |f| {
        bar.set_position((f * 1000.0) as u64)
    })?;
    bar.finish();
    let started = SystemTime::now();

    // Latency: open-loop request/reply.
    let spec = LoadSpec::new(Pattern::RequestReply, 100, 20_000, secs);
    let (q, p) = side_by_side(&node, "latency", &spec, true)?;
    let p = p.expect("peer ran");
    out.latency("latency", &spec, started, &[("quire", &q), ("tokio", &p)])?;
    figures.extend(latency_figures(
        "latency 20k msg/s",
        &q,
        Some(("tokio", &p)),
    ));
    // Native request/reply, one call at a time, next to actix.
    let qh = crate::routing::request_reply(&client, "closed-rr", 0, 1 % shards, 5_000, 50_000)?;
    let ah = crate::peer_actix::request_reply(5_000, 50_000);
    for (metric, q) in [("p50", 0.5), ("p99", 0.99)] {
        figures.push(
            Figure::new(
                "request/reply one at a time",
                metric,
                "ns",
                Better::Lower,
                qh.value_at_quantile(q) as f64,
            )
            .vs("actix", ah.value_at_quantile(q) as f64),
        );
    }

    // Throughput: one-way as fast as accepted, next to tokio and actix.
    let bar = progress("throughput");
    bar.enable_steady_tick(Duration::from_millis(100));
    let qt = crate::routing::one_way_throughput(&client, "tput", 2, 100_000, 64)?;
    let tt = crate::peer_tokio::TokioNode::new(shards, 1024).one_way_throughput(
        "tput",
        2 * shards,
        2 * shards,
        100_000,
    );
    let at = crate::peer_actix::one_way_throughput(shards, 2, 100_000);
    bar.finish();
    for (peer, v) in [("tokio", tt), ("actix", at)] {
        figures.push(
            Figure::new(
                "throughput one-way",
                "msg/s",
                "msg/s",
                Better::Higher,
                qt as f64,
            )
            .vs(peer, v as f64),
        );
    }

    // Scalability: the same rate over more and more agents.
    for agents in [1usize, 10, 100, 1_000, 10_000]
        .into_iter()
        .filter(|a| *a <= opts.max_agents)
    {
        let spec = LoadSpec::new(
            Pattern::RequestReply,
            agents,
            10_000,
            secs.min(Duration::from_secs(2)),
        );
        let (q, p) = side_by_side(&node, &format!("scale-{agents}"), &spec, true)?;
        // A peer run that measured nothing is left out, not shown as 0.
        let p = p.filter(|p| !p.corrected.is_empty());
        figures.push(
            Figure::new(
                format!("scalability {agents} agents"),
                "p99",
                "ns",
                Better::Lower,
                q.corrected.value_at_quantile(0.99) as f64,
            )
            .vs_maybe(
                p.as_ref()
                    .map(|p| ("tokio", p.corrected.value_at_quantile(0.99) as f64)),
            ),
        );
    }

    // Spawn and memory per agent: 10 000 native agents, on a fresh node
    // (a node that had agents reuses their slots).
    let spawn_n = 10_000usize.min(opts.max_agents.max(1));
    let fresh = embedded_node(opts.shards, opts.spin_us)?;
    let fresh_client = fresh.client();
    let before = allocated_bytes();
    let t = Instant::now();
    for i in 0..spawn_n {
        fresh_client
            .register_blocking(format!("spawn-{i}"), || crate::routing::Echo)
            .map_err(|e| e.to_string())?;
    }
    let quire_spawn = spawn_n as f64 / t.elapsed().as_secs_f64();
    let quire_mem = allocated_bytes().saturating_sub(before) as f64 / spawn_n as f64;
    fresh.shutdown();
    // The same agents in one batch: one command per shard.
    let fresh = embedded_node(opts.shards, opts.spin_us)?;
    let t = Instant::now();
    let batch = fresh.client().register_many_blocking(
        (0..spawn_n).map(|i| (format!("spawn-{i}"), || crate::routing::Echo)),
    );
    let quire_batch_spawn = spawn_n as f64 / t.elapsed().as_secs_f64();
    if let Some(e) = batch.into_iter().find_map(Result::err) {
        return Err(e.to_string());
    }
    fresh.shutdown();
    let (tokio_spawn, tokio_mem) = crate::peer_tokio::spawn_agents(shards, 1024, spawn_n);
    figures.push(
        Figure::new(
            format!("spawn {spawn_n} agents"),
            "agents/s",
            "agents/s",
            Better::Higher,
            quire_spawn,
        )
        .vs("tokio", tokio_spawn),
    );
    figures.push(
        Figure::new(
            format!("spawn {spawn_n} agents in one batch"),
            "agents/s",
            "agents/s",
            Better::Higher,
            quire_batch_spawn,
        )
        .vs("tokio", tokio_spawn),
    );
    figures.push(
        Figure::new(
            "memory per idle agent",
            "heap (jemalloc allocated)",
            "bytes",
            Better::Lower,
            quire_mem.max(1.0),
        )
        .vs("tokio", tokio_mem.max(1.0)),
    );

    // WebAssembly overhead: the same open-loop request/reply on wasm echoes.
    let spec = LoadSpec::new(Pattern::RequestReply, 100, 5_000, secs);
    let bar = progress("wasm overhead");
    let native = load::quire::run(&client, "wasm-native", &spec, |f| {
        bar.set_position((f * 500.0) as u64)
    })?;
    let wasm = load::quire::run_with(
        &client,
        "wasm-echo",
        &spec,
        Some(crate::wasm_suite::ECHO_WASM),
        |f| bar.set_position(500 + (f * 500.0) as u64),
    )?;
    bar.finish();
    for (metric, q) in [("p50", 0.5), ("p99", 0.99)] {
        figures.push(
            Figure::new(
                "wasm echo vs native echo",
                metric,
                "ns",
                Better::Lower,
                wasm.corrected.value_at_quantile(q) as f64,
            )
            .vs("native agent", native.corrected.value_at_quantile(q) as f64),
        );
    }

    // Peak load: 1 000 agents, 1 KB messages.
    let mut spec = LoadSpec::new(Pattern::RequestReply, 1_000, 50_000, secs);
    spec.message_size = 1024;
    let (q, p) = side_by_side(&node, "peak", &spec, true)?;
    let p = p.expect("peer ran");
    figures.extend(latency_figures(
        "peak 1000 agents 1 KB 50k msg/s",
        &q,
        Some(("tokio", &p)),
    ));

    // Sustained: the latency scenario for longer; drift of interval p99s.
    let spec = LoadSpec::new(
        Pattern::RequestReply,
        100,
        20_000,
        Duration::from_secs_f64(opts.sustained),
    );
    let (q, p) = side_by_side(&node, "sustained", &spec, true)?;
    let p = p.expect("peer ran");
    let drift = |r: &LoadResult| {
        let p99s: Vec<u64> = r
            .intervals
            .iter()
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(0.99))
            .collect();
        let worst = p99s.iter().copied().max().unwrap_or(0) as f64;
        worst / median(p99s).max(1) as f64
    };
    figures.extend(latency_figures(
        &format!("sustained {} s", opts.sustained),
        &q,
        Some(("tokio", &p)),
    ));
    figures.push(
        Figure::new(
            format!("sustained {} s", opts.sustained),
            "worst/median interval p99",
            "x",
            Better::Lower,
            drift(&q),
        )
        .vs("tokio", drift(&p)),
    );

    // Burst: 5k msg/s, 50x for 200 ms, back to 5k; recovery to baseline p99.
    let burst = Burst {
        at: Duration::from_secs(3),
        length: Duration::from_millis(200),
        factor: 50,
    };
    let mut spec = LoadSpec::new(Pattern::RequestReply, 100, 5_000, Duration::from_secs(5));
    spec.interval = Duration::from_millis(100);
    spec.burst = Some(burst);
    let (q, p) = side_by_side(&node, "burst", &spec, true)?;
    let p = p.expect("peer ran");
    // 0 ms (recovered within the first interval) counts as one interval.
    let recovery =
        |r: &LoadResult| recovery_ms(r, &spec, burst).max(spec.interval.as_millis() as f64);
    figures.push(
        Figure::new(
            "burst 50x for 200 ms",
            "recovery to 2x baseline p99",
            "ms",
            Better::Lower,
            recovery(&q),
        )
        .vs("tokio", recovery(&p)),
    );
    figures.extend(latency_figures(
        "burst 50x for 200 ms",
        &q,
        Some(("tokio", &p)),
    ));
    // Metrics: the latency scenario with /metrics scraped 10 times a second,
    // alternating with unscraped runs; on this node (every CPU a shard) and
    // on one that leaves a CPU to the scraper (as docs/tuning.md advises).
    figures.push(scrape_overhead(&node, "every CPU a shard", secs)?);
    print_reactor_figures(&client);
    node.shutdown();
    if shards > 1 {
        let spared = embedded_node(Some(shards - 1), opts.spin_us)?;
        figures.push(scrape_overhead(
            &spared,
            "a CPU left for housekeeping",
            secs,
        )?);
        spared.shutdown();
    }

    let summary = Summary {
        suite: "standard".into(),
        machine: MachineInfo::current(),
        figures,
    };
    out.summary(&summary, opts.baseline.as_deref())?;
    Ok(summary)
}
