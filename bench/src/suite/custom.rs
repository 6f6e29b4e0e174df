//! `quire-bench custom`: one open-loop run on an embedded node and on the
//! tokio design, with every output.

use super::*;

/// Options of `quire-bench custom`.
#[derive(Debug, Clone, Args)]
pub struct CustomOptions {
    /// Keep idle reactors polling this many µs before they sleep (the
    /// low-latency option, as tokio's workers spin before parking); 0:
    /// park at once (the default configuration).
    #[arg(long, default_value_t = 200)]
    pub spin_us: u64,

    /// Target agents, spread over every shard.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Messages per second (open loop, constant rate).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// How the load talks to the agents.
    #[arg(long, value_enum, default_value = "request-reply")]
    pub pattern: Pattern,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 64)]
    pub message_size: usize,
    /// Shards of the embedded node (default: one per CPU).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Skip the tokio peer.
    #[arg(long)]
    pub no_peer: bool,
    /// Drive this running node over the wire (`host:port` of its client
    /// listener) instead of an embedded one; request-reply only. The echo
    /// targets are deployed as WebAssembly agents, so the node needs its
    /// admin token (`--token`). No in-run peer: `quire-bench net` compares
    /// the wire path with a tokio design.
    #[arg(long)]
    pub node: Option<String>,
    /// The node's admin token (deploys the targets).
    #[arg(long, env = "QUIRE_ADMIN_TOKEN")]
    pub token: Option<String>,
    /// Where the outputs go.
    #[arg(long, default_value = "bench-results/custom")]
    pub out: PathBuf,
    /// A summary to compare against in the report.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
}

/// `quire-bench custom`.
pub fn custom(opts: &CustomOptions) -> Result<Summary, String> {
    let mut spec = LoadSpec::new(
        opts.pattern,
        opts.agents,
        opts.rate,
        Duration::from_secs_f64(opts.duration),
    );
    spec.warmup = Duration::from_secs_f64(opts.warmup);
    spec.message_size = opts.message_size.max(load::spec::payload::HEADER);
    let out = Outputs::new(&opts.out)?;
    let started = SystemTime::now();
    let mut tpc = None;
    let (quire, peer) = match &opts.node {
        Some(addr) => {
            let bar = progress(&format!("custom: {addr}"));
            let r = load::remote::run(
                addr,
                opts.token.as_deref(),
                crate::wasm_suite::ECHO_WASM,
                &spec,
                |f| bar.set_position((f * 1000.0) as u64),
            )?;
            bar.finish();
            (r, None)
        }
        None => {
            let node = embedded_node(opts.shards, opts.spin_us)?;
            let both = side_by_side(&node, "custom", &spec, !opts.no_peer)?;
            let shards = node.client().shard_count();
            node.shutdown();
            if !opts.no_peer && spec.pattern == Pattern::RequestReply {
                // The rival latency-minded tokio users pick: thread per core.
                tpc = Some(load::tokio_tpc::run(&spec, shards, 1024)?);
            }
            both
        }
    };
    print_run("quire", &spec, &quire);
    let mut series = vec![("quire", &quire)];
    if let Some(p) = &peer {
        print_run("tokio", &spec, p);
        series.push(("tokio", p));
    }
    if let Some(t) = &tpc {
        print_run("tokio-tpc", &spec, t);
        series.push(("tokio-tpc", t));
    }
    print_ruler(&spec, &series);
    out.latency("custom", &spec, started, &series)?;
    let mut figures = latency_figures("custom", &quire, peer.as_ref().map(|p| ("tokio", p)));
    if let Some(t) = &tpc {
        figures.extend(latency_figures(
            "custom vs thread-per-core",
            &quire,
            Some(("tokio-tpc", t)),
        ));
    }
    figures.push(
        Figure::new(
            "custom",
            "measured msg/s",
            "msg/s",
            Better::Higher,
            quire.achieved_rate(&spec),
        )
        .vs_maybe(peer.as_ref().map(|p| ("tokio", p.achieved_rate(&spec)))),
    );
    let summary = Summary {
        suite: format!(
            "custom ({:?}, {} agents, {} msg/s, {} B, {} s)",
            opts.pattern, opts.agents, opts.rate, spec.message_size, opts.duration
        ),
        machine: MachineInfo::current(),
        figures,
    };
    out.summary(&summary, opts.baseline.as_deref())?;
    Ok(summary)
}
