//! The `routing` benchmark: Quire and the tokio design on the same
//! workloads, several runs each, medians and ratios.

use std::time::Duration;

use serde::Serialize;

use crate::peer_tokio::TokioNode;
use crate::report::{
    latency_table, median, throughput_line, LatencyComparison, MachineInfo, Percentiles,
    ThroughputComparison,
};
use crate::routing;

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct RoutingOptions {
    /// Runs of every workload (figures are medians over runs).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Request/reply round trips measured per run.
    #[arg(long, default_value_t = 200_000)]
    pub samples: u64,
    /// Round trips before measuring.
    #[arg(long, default_value_t = 20_000)]
    pub warmup: u64,
    /// One-way messages each producer sends to each consumer.
    #[arg(long, default_value_t = 250_000)]
    pub per_target: u64,
    /// Producers and consumers per shard in the throughput workload.
    #[arg(long, default_value_t = 2)]
    pub agents_per_shard: usize,
    /// Messages a producer sends per turn (its credit window per consumer
    /// keeps consumers' mailboxes bounded whatever this is).
    #[arg(long, default_value_t = 64)]
    pub burst: usize,
    /// Shards (and tokio worker threads).
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// CPUs to pin shards to.
    #[arg(long)]
    pub cpuset: Option<String>,
    /// Quire's spin-before-park, µs (the low-latency option; 0 = park at once).
    #[arg(long, default_value_t = 200)]
    pub spin_us: u64,
    /// Per-agent mailbox bound, both designs.
    #[arg(long, default_value_t = 65_536)]
    pub mailbox: usize,
    /// Envelopes waiting for the mesh towards one peer (Quire's outbox bound).
    #[arg(long, default_value_t = 16_384)]
    pub outbox: usize,
    /// Batches in flight on one shard-to-shard channel.
    #[arg(long, default_value_t = 256)]
    pub mesh_capacity: usize,
    /// Messages an agent handles per turn.
    #[arg(long, default_value_t = 32)]
    pub agent_batch: usize,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Everything the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct RoutingReport {
    /// Where it ran.
    pub machine: MachineInfo,
    /// Shards / tokio workers.
    pub shards: usize,
    /// The CPUs Quire's shards were pinned to.
    pub cpus: Vec<usize>,
    /// Quire's spin-before-park, µs.
    pub spin_us: u64,
    /// Runs per workload.
    pub runs: usize,
    /// Same-shard request/reply.
    pub same_shard_request_reply: LatencyComparison,
    /// Cross-shard request/reply (tokio has no shards: the same peer figure).
    pub cross_shard_request_reply: Option<LatencyComparison>,
    /// One-way throughput over all shards.
    pub one_way_throughput: ThroughputComparison,
}

/// Runs the whole benchmark and prints it as it goes.
pub fn run(opts: &RoutingOptions) -> Result<RoutingReport, String> {
    let mut config = quire_runtime::config::NodeConfig::default();
    config.queues.outbox_capacity = opts.outbox;
    config.queues.mesh_channel_capacity = opts.mesh_capacity;
    config.queues.agent_batch = opts.agent_batch;
    let mut builder = quire_runtime::Node::builder()
        .config(config)
        .shards(opts.shards)
        .mailbox_capacity(opts.mailbox)
        .spin_before_park(Duration::from_micros(opts.spin_us));
    if let Some(c) = &opts.cpuset {
        builder = builder.cpuset(c);
    }
    let machine = MachineInfo::current();
    println!(
        "routing benchmark: {} ({} CPUs, kernel {}), {} shard(s), {} run(s) per figure, spin {} µs",
        machine.cpu_model, machine.cpus, machine.kernel, opts.shards, opts.runs, opts.spin_us
    );

    let mut same = Vec::new();
    let mut cross = Vec::new();
    let mut quire_tput = Vec::new();
    let mut peer_rr = Vec::new();
    let mut peer_cross: Vec<Percentiles> = Vec::new();
    let mut peer_tput = Vec::new();
    let mut cpus = Vec::new();
    let per_shard = opts.agents_per_shard;
    for run in 0..opts.runs {
        // Quire and the peer alternate, each alone on the machine while it runs.
        let node = builder.clone().start().map_err(|e| e.to_string())?;
        cpus = node.placement().cpus();
        let client = node.client();
        let h = routing::request_reply(
            &client,
            &format!("same{run}"),
            0,
            0,
            opts.warmup,
            opts.samples,
        )?;
        same.push(Percentiles::of(&h));
        if opts.shards > 1 {
            let h = routing::request_reply(
                &client,
                &format!("cross{run}"),
                0,
                1,
                opts.warmup,
                opts.samples,
            )?;
            cross.push(Percentiles::of(&h));
        }
        quire_tput.push(routing::one_way_throughput(
            &client,
            &format!("tput{run}"),
            per_shard,
            opts.per_target,
            opts.burst,
        )?);
        let report = node.shutdown();
        eprintln!("  quire node: {report}");
        let t = report.totals();
        if t.sent != t.handled + t.rejected_total() {
            return Err(format!("accounting broke: {report}"));
        }

        let peer = TokioNode::new(opts.shards, opts.mailbox);
        peer_rr.push(Percentiles::of(&peer.request_reply(
            &format!("rr{run}"),
            opts.warmup,
            opts.samples,
        )));
        if opts.shards > 1 {
            peer_cross.push(Percentiles::of(
                &peer.cross_thread_request_reply(opts.warmup, opts.samples),
            ));
        }
        let agents = per_shard * opts.shards;
        peer_tput.push(peer.one_way_throughput(
            &format!("tput{run}"),
            agents,
            agents,
            opts.per_target,
        ));
        drop(peer);
        eprintln!(
            "  run {}: quire same-shard p50 {} ns, cross-shard p50 {} ns, {} msg/s | tokio p50 {} ns, cross-thread p50 {} ns, {} msg/s",
            run + 1,
            same.last().map_or(0, |p| p.p50_ns),
            cross.last().map_or(0, |p| p.p50_ns),
            quire_tput.last().copied().unwrap_or(0),
            peer_rr.last().map_or(0, |p| p.p50_ns),
            peer_cross.last().map_or(0, |p| p.p50_ns),
            peer_tput.last().copied().unwrap_or(0),
        );
    }

    let same_shard_request_reply = LatencyComparison {
        name: "request/reply, same shard (tokio: multi-threaded runtime, DashMap lookup per call)"
            .into(),
        quire: Percentiles::median_of(&same),
        peer: Percentiles::median_of(&peer_rr),
        quire_runs: same,
        peer_runs: peer_rr,
    };
    let cross_shard_request_reply = (!cross.is_empty()).then(|| LatencyComparison {
        name: "request/reply, cross shard (tokio: driver and echo on two threads, each a current-thread runtime)"
            .into(),
        quire: Percentiles::median_of(&cross),
        peer: Percentiles::median_of(&peer_cross),
        quire_runs: cross,
        peer_runs: peer_cross,
    });
    let one_way_throughput = ThroughputComparison {
        name: format!(
            "one-way throughput, {} producers -> {} consumers over all shards",
            per_shard * opts.shards,
            per_shard * opts.shards
        ),
        quire_msgs_per_s: median(quire_tput.clone()),
        peer_msgs_per_s: median(peer_tput.clone()),
        quire_runs: quire_tput,
        peer_runs: peer_tput,
    };
    let report = RoutingReport {
        machine,
        shards: opts.shards,
        cpus,
        spin_us: opts.spin_us,
        runs: opts.runs,
        same_shard_request_reply,
        cross_shard_request_reply,
        one_way_throughput,
    };
    println!();
    print!(
        "{}",
        latency_table(&report.same_shard_request_reply, "tokio")
    );
    if let Some(c) = &report.cross_shard_request_reply {
        print!("{}", latency_table(c, "tokio"));
    }
    print!("{}", throughput_line(&report.one_way_throughput, "tokio"));
    if let Some(path) = &opts.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    Ok(report)
}
