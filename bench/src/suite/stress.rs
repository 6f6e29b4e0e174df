//! `quire-bench stress --find-breaking-point`: the highest rate whose p99
//! stays under an objective.

use super::*;

/// Options of `quire-bench stress`.
#[derive(Debug, Clone, Args)]
pub struct StressOptions {
    /// Keep idle reactors polling this many µs before they sleep (the
    /// low-latency option, as tokio's workers spin before parking); 0:
    /// park at once (the default configuration).
    #[arg(long, default_value_t = 200)]
    pub spin_us: u64,

    /// Raise the rate until the objective breaks (the only mode).
    #[arg(long)]
    pub find_breaking_point: bool,
    /// Request/reply p99 objective, ms.
    #[arg(long, default_value_t = 10.0)]
    pub slo_ms: f64,
    /// Largest share of messages refused or missing.
    #[arg(long, default_value_t = 0.01)]
    pub max_loss: f64,
    /// First rate tried, msg/s (doubled each step).
    #[arg(long, default_value_t = 10_000)]
    pub start_rate: u64,
    /// Target agents.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Seconds per step.
    #[arg(long, default_value_t = 2.0)]
    pub step: f64,
    /// Also find the tokio design's breaking point.
    #[arg(long)]
    pub peer: bool,
    /// Shards of the embedded node.
    #[arg(long)]
    pub shards: Option<usize>,
}

/// The highest rate meeting the objective, by doubling then bisecting once.
fn breaking_point(
    opts: &StressOptions,
    mut run: impl FnMut(u64) -> Result<LoadResult, String>,
) -> Result<u64, String> {
    let slo_ns = (opts.slo_ms * 1e6) as u64;
    let ok = |r: &LoadResult| {
        let lost = (r.rejected + r.missing()) as f64 / r.expected.max(1) as f64;
        r.corrected.value_at_quantile(0.99) <= slo_ns && lost <= opts.max_loss
    };
    let mut good = 0;
    let mut rate = opts.start_rate.max(1);
    loop {
        let r = run(rate)?;
        let pass = ok(&r);
        println!(
            "  {rate:>9} msg/s: p99 {}, refused+missing {}/{} -> {}",
            human_ns(r.corrected.value_at_quantile(0.99)),
            r.rejected + r.missing(),
            r.expected,
            if pass { "ok" } else { "BROKEN" }
        );
        if !pass {
            break;
        }
        good = rate;
        rate *= 2;
        if rate > 50_000_000 {
            break;
        }
    }
    if good > 0 {
        let mid = good + (rate - good) / 2;
        let r = run(mid)?;
        if ok(&r) {
            println!("  {mid:>9} msg/s: ok");
            good = mid;
        } else {
            println!("  {mid:>9} msg/s: BROKEN");
        }
    }
    Ok(good)
}

/// `quire-bench stress --find-breaking-point`.
pub fn stress(opts: &StressOptions) -> Result<Summary, String> {
    if !opts.find_breaking_point {
        return Err("stress needs --find-breaking-point".into());
    }
    let node = embedded_node(opts.shards, opts.spin_us)?;
    let client = node.client();
    let spec = |rate| ladder_step(opts.agents, rate, opts.step);
    println!(
        "quire: request/reply over {} agents, p99 <= {} ms, loss <= {:.1}%",
        opts.agents,
        opts.slo_ms,
        opts.max_loss * 100.0
    );
    let mut step = 0;
    let quire = breaking_point(opts, |rate| {
        step += 1;
        load::quire::run(&client, &format!("stress-{step}"), &spec(rate), |_| {})
    })?;
    let shards = client.shard_count();
    node.shutdown();
    let peer = if opts.peer {
        println!("tokio:");
        Some(breaking_point(opts, |rate| {
            load::tokio_peer::run(&spec(rate), shards, 1024)
        })?)
    } else {
        None
    };
    let summary = Summary {
        suite: "stress".into(),
        machine: MachineInfo::current(),
        figures: vec![Figure::new(
            "stress",
            format!("highest rate with p99 <= {} ms", opts.slo_ms),
            "msg/s",
            Better::Higher,
            quire as f64,
        )
        .vs_maybe(peer.map(|p| ("tokio", p as f64)))],
    };
    println!("{}", summary.markdown(None));
    Ok(summary)
}
