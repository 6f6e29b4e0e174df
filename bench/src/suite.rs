//! `quire-bench run | custom | stress | compare`: the benchmark suite as a
//! tool users run.
//!
//! - `custom`: one open-loop run (pattern, agents, rate, duration, size) on
//!   an embedded node and on the tokio design, with every output: the
//!   percentile spectrum (`.hgrm`), the interval log (`.hlog`), a JSON
//!   summary, a markdown report and a PNG percentile plot;
//! - `run --suite standard`: the seed suite's scenarios, each next to its
//!   peers, into one summary and report;
//! - `stress --find-breaking-point`: the highest request rate whose p99
//!   stays under an objective with (almost) nothing refused;
//! - `compare --baseline FILE`: fails when a figure regressed by more than
//!   a threshold, judged on its ratio to the in-run peer so that machine
//!   noise cancels.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use quire_runtime::Node;
use serde::{Deserialize, Serialize};

use crate::load::spec::Burst;
use crate::load::{self, LoadResult, LoadSpec, Pattern};
use crate::report::{allocated_bytes, human_ns, median, MachineInfo};

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Latencies, memory, recovery time.
    Lower,
    /// Rates.
    Higher,
}

/// One figure of a report, with its peer's from the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The scenario, e.g. `latency`.
    pub scenario: String,
    /// What is measured, e.g. `p99`.
    pub metric: String,
    /// Unit of `quire` and `peer`.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// Quire's value.
    pub quire: f64,
    /// The peer measured in the same run, if any.
    pub peer_name: Option<String>,
    /// The peer's value.
    pub peer: Option<f64>,
}

impl Figure {
    /// A figure without a peer; [`Self::vs`] adds one.
    pub fn new(
        scenario: impl Into<String>,
        metric: impl Into<String>,
        unit: &str,
        better: Better,
        quire: f64,
    ) -> Self {
        Self {
            scenario: scenario.into(),
            metric: metric.into(),
            unit: unit.into(),
            better,
            quire,
            peer_name: None,
            peer: None,
        }
    }

    /// With the peer `name` measured at `value` in the same run.
    pub fn vs(self, name: impl Into<String>, value: f64) -> Self {
        self.vs_maybe(Some((name, value)))
    }

    /// [`Self::vs`] when the peer ran.
    pub fn vs_maybe(mut self, peer: Option<(impl Into<String>, f64)>) -> Self {
        if let Some((name, value)) = peer {
            self.peer_name = Some(name.into());
            self.peer = Some(value);
        }
        self
    }

    /// Quire's advantage over the peer: above 1 means Quire did better
    /// (peer/quire for lower-is-better figures, quire/peer otherwise).
    pub fn ratio(&self) -> Option<f64> {
        let peer = self.peer?;
        if self.quire <= 0.0 || peer <= 0.0 {
            return None;
        }
        Some(match self.better {
            Better::Lower => peer / self.quire,
            Better::Higher => self.quire / peer,
        })
    }

    fn key(&self) -> (String, String, Option<String>) {
        (
            self.scenario.clone(),
            self.metric.clone(),
            self.peer_name.clone(),
        )
    }

    fn shown(&self, v: f64) -> String {
        match self.unit.as_str() {
            "ns" => human_ns(v as u64),
            "msg/s" | "agents/s" => format!("{:.0}", v),
            "bytes" => format!("{:.0} B", v),
            "ms" => format!("{v:.1} ms"),
            "x" => format!("{v:.2}x"),
            _ => format!("{v:.3}"),
        }
    }
}

/// A report: where it ran and its figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// `standard`, `custom`, `stress`.
    pub suite: String,
    /// The machine.
    pub machine: MachineInfo,
    /// Every figure.
    pub figures: Vec<Figure>,
}

impl Summary {
    /// The markdown report; with a baseline, each figure's change from it
    /// (judged on the ratio to the peer where there is one).
    pub fn markdown(&self, baseline: Option<&Summary>) -> String {
        let mut out = format!(
            "# quire-bench {}\n\nMachine: {} ({} CPUs, kernel {}).\n\n",
            self.suite, self.machine.cpu_model, self.machine.cpus, self.machine.kernel
        );
        out.push_str("| metric | baseline | current | change | peer (same run) | ratio |\n|---|---|---|---|---|---|\n");
        for f in &self.figures {
            let base = baseline.and_then(|b| b.figures.iter().find(|g| g.key() == f.key()));
            let (base_text, change) = match base {
                Some(b) => (b.shown(b.quire), change_text(b, f)),
                None => ("-".to_string(), "-".to_string()),
            };
            let peer = match (&f.peer_name, f.peer) {
                (Some(name), Some(v)) => format!("{name}: {}", f.shown(v)),
                _ => "-".into(),
            };
            let ratio = f.ratio().map_or("-".into(), |r| format!("{r:.2}x"));
            out.push_str(&format!(
                "| {} {} | {} | {} | {} | {} | {} |\n",
                f.scenario,
                f.metric,
                base_text,
                f.shown(f.quire),
                change,
                peer,
                ratio
            ));
        }
        out.push_str("\nratio: Quire's advantage over the peer measured in the same run (above 1: Quire better).\n");
        out
    }
}

fn change_text(base: &Figure, now: &Figure) -> String {
    match (base.ratio(), now.ratio()) {
        (Some(b), Some(n)) => format!("{:+.1}% (ratio {b:.2}x -> {n:.2}x)", (n / b - 1.0) * 100.0),
        _ if base.quire > 0.0 => format!("{:+.1}%", (now.quire / base.quire - 1.0) * 100.0),
        _ => "-".into(),
    }
}

/// Figures that got worse than `baseline` by more than `threshold` (0.1 =
/// 10%): judged on the ratio to the in-run peer where both have one, else
/// (with `absolute`) on the value itself.
pub fn regressions(
    current: &Summary,
    baseline: &Summary,
    threshold: f64,
    absolute: bool,
) -> Vec<String> {
    let mut found = Vec::new();
    for b in &baseline.figures {
        let Some(c) = current.figures.iter().find(|f| f.key() == b.key()) else {
            found.push(format!(
                "{} {}: missing from the current run",
                b.scenario, b.metric
            ));
            continue;
        };
        let worse = match (b.ratio(), c.ratio()) {
            (Some(br), Some(cr)) => (cr < br * (1.0 - threshold)).then(|| {
                format!(
                    "{} {} (vs {}): ratio {br:.2}x -> {cr:.2}x",
                    b.scenario,
                    b.metric,
                    b.peer_name.as_deref().unwrap_or("peer")
                )
            }),
            _ if absolute && b.quire > 0.0 => {
                let change = c.quire / b.quire - 1.0;
                let bad = match b.better {
                    Better::Lower => change > threshold,
                    Better::Higher => change < -threshold,
                };
                bad.then(|| {
                    format!(
                        "{} {}: {} -> {}",
                        b.scenario,
                        b.metric,
                        b.shown(b.quire),
                        c.shown(c.quire)
                    )
                })
            }
            _ => None,
        };
        found.extend(worse);
    }
    found
}

/// Options of `quire-bench compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareOptions {
    /// The baseline summary (JSON from `run` or `custom`).
    #[arg(long)]
    pub baseline: PathBuf,
    /// The current summary.
    #[arg(long, default_value = "bench-results/standard/summary.json")]
    pub current: PathBuf,
    /// Largest regression tolerated (0.1 = 10%).
    #[arg(long, default_value_t = 0.10)]
    pub threshold: f64,
    /// Also judge figures without a peer on their value (noisy).
    #[arg(long)]
    pub absolute: bool,
}

fn read_summary(path: &Path) -> Result<Summary, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a quire-bench summary: {e}", path.display()))
}

/// Compares; `Err` lists the regressions (the command exits non-zero).
pub fn compare(opts: &CompareOptions) -> Result<(), String> {
    let baseline = read_summary(&opts.baseline)?;
    let current = read_summary(&opts.current)?;
    print!("{}", current.markdown(Some(&baseline)));
    let found = regressions(&current, &baseline, opts.threshold, opts.absolute);
    if found.is_empty() {
        println!("\nno regression beyond {:.0}%", opts.threshold * 100.0);
        Ok(())
    } else {
        Err(format!(
            "{} regression(s) beyond {:.0}%:\n  {}",
            found.len(),
            opts.threshold * 100.0,
            found.join("\n  ")
        ))
    }
}

fn progress(label: &str) -> ProgressBar {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:40}] {percent:>3}% {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// The ruler's error next to what it measured: a null run of the same
/// schedule, and each run's own generator lateness, with a warning where a
/// generator was late by more than a calibrated ruler allows.
fn print_ruler(spec: &LoadSpec, series: &[(&str, &LoadResult)]) {
    let null = load::null_run::null_run(spec);
    println!("{}", load::null_run::describe(&null));
    for (name, r) in series {
        let p99 = r.send_lateness.value_at_quantile(0.99);
        println!(
            "{name}'s generator in this run: lateness p50 {:.2} µs p99 {:.2} µs max {:.2} µs{}",
            r.send_lateness.value_at_quantile(0.5) as f64 / 1e3,
            p99 as f64 / 1e3,
            r.send_lateness.max() as f64 / 1e3,
            if p99 > load::null_run::CALIBRATED_P99_NS {
                format!(
                    ": over {}, so its tail measures the generator as much as the system",
                    load::null_run::CALIBRATED_P99
                )
            } else {
                String::new()
            }
        );
    }
}

fn latency_figures(
    scenario: &str,
    quire: &LoadResult,
    peer: Option<(&str, &LoadResult)>,
) -> Vec<Figure> {
    let mut figures: Vec<Figure> = [
        ("p50", 0.5),
        ("p99", 0.99),
        ("p99.9", 0.999),
        ("p99.99", 0.9999),
        ("max", 1.0),
    ]
    .into_iter()
    .map(|(metric, q)| {
        Figure::new(
            scenario,
            metric,
            "ns",
            Better::Lower,
            quire.corrected.value_at_quantile(q) as f64,
        )
        .vs_maybe(peer.map(|(n, r)| (n, r.corrected.value_at_quantile(q) as f64)))
    })
    .collect();
    // Each generator's own lateness, in the same run: the ruler's error
    // bar, shown next to what it measured.
    figures.push(
        Figure::new(
            scenario,
            "generator lateness p99",
            "ns",
            Better::Lower,
            quire.send_lateness.value_at_quantile(0.99) as f64,
        )
        .vs_maybe(peer.map(|(n, r)| (n, r.send_lateness.value_at_quantile(0.99) as f64))),
    );
    figures
}

/// Where a run's outputs go, and writing them.
struct Outputs {
    dir: PathBuf,
}

impl Outputs {
    fn new(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> Result<PathBuf, String> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// The .hgrm and .hlog of each series and their PNG plot.
    fn latency(
        &self,
        stem: &str,
        spec: &LoadSpec,
        started: SystemTime,
        series: &[(&str, &LoadResult)],
    ) -> Result<(), String> {
        for (name, r) in series {
            self.write(
                &format!("{stem}.{name}.hgrm"),
                load::hgrm::write(&r.corrected),
            )?;
            self.write(
                &format!("{stem}.{name}.uncorrected.hgrm"),
                load::hgrm::write(&r.uncorrected),
            )?;
            self.write(
                &format!("{stem}.{name}.hlog"),
                load::hlog::write(&r.intervals, spec.interval, started, name)?,
            )?;
        }
        let hists: Vec<(&str, &Histogram<u64>)> =
            series.iter().map(|(n, r)| (*n, &r.corrected)).collect();
        self.write(
            &format!("{stem}.png"),
            load::plot::percentile_png(&hists, stem)?,
        )?;
        Ok(())
    }

    fn summary(&self, summary: &Summary, baseline: Option<&Path>) -> Result<(), String> {
        let json = serde_json::to_string_pretty(summary).map_err(|e| e.to_string())?;
        self.write("summary.json", json)?;
        let base = baseline.map(read_summary).transpose()?;
        let md = summary.markdown(base.as_ref());
        self.write("report.md", &md)?;
        println!("\n{md}");
        println!("outputs in {}", self.dir.display());
        Ok(())
    }
}

fn embedded_node(shards: Option<usize>, spin_us: u64) -> Result<Node, String> {
    let mut config = quire_runtime::config::NodeConfig::default();
    config.node.shards = shards;
    config.node.spin_before_park_us = spin_us;
    // Its metrics endpoint on any free port (the scrape scenario uses it).
    config.metrics.listen = Some("127.0.0.1:0".into());
    Node::builder()
        .config(config)
        .start()
        .map_err(|e| e.to_string())
}

/// Scrapes `GET /metrics` at `addr` `per_second` times a second until
/// `stop`; returns how many scrapes succeeded.
fn scrape_until(
    addr: std::net::SocketAddr,
    per_second: u32,
    stop: &std::sync::atomic::AtomicBool,
) -> u64 {
    use std::io::{Read, Write};
    let every = Duration::from_secs(1) / per_second.max(1);
    let mut next = Instant::now();
    let mut ok = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = write!(
                s,
                "GET /metrics HTTP/1.1\r\nHost: q\r\nConnection: close\r\n\r\n"
            );
            let mut body = Vec::new();
            if s.read_to_end(&mut body).is_ok() && body.starts_with(b"HTTP/1.1 200") {
                ok += 1;
            }
        }
        next += every;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    ok
}

/// Runs `spec` on Quire then on the tokio design, with a progress bar each.
fn side_by_side(
    node: &Node,
    tag: &str,
    spec: &LoadSpec,
    peer: bool,
) -> Result<(LoadResult, Option<LoadResult>), String> {
    let bar = progress(&format!("{tag}: quire"));
    let quire = load::quire::run(&node.client(), tag, spec, |f| {
        bar.set_position((f * 1000.0) as u64)
    })?;
    bar.finish();
    let peer = if peer {
        let bar = progress(&format!("{tag}: tokio"));
        bar.enable_steady_tick(Duration::from_millis(100));
        let r = load::tokio_peer::run(spec, node.client().shard_count(), 1024)?;
        bar.finish();
        Some(r)
    } else {
        None
    };
    Ok((quire, peer))
}

fn print_run(tag: &str, spec: &LoadSpec, r: &LoadResult) {
    println!(
        "{tag}: {:.0} msg/s measured of {} asked, p50 {} p99 {} p99.9 {} max {} (uncorrected p99 {}), refused {}, missing {}",
        r.achieved_rate(spec),
        spec.rate,
        human_ns(r.corrected.value_at_quantile(0.5)),
        human_ns(r.corrected.value_at_quantile(0.99)),
        human_ns(r.corrected.value_at_quantile(0.999)),
        human_ns(r.corrected.max()),
        human_ns(r.uncorrected.value_at_quantile(0.99)),
        r.rejected,
        r.missing()
    );
}

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
    let spec = |rate| {
        let mut s = LoadSpec::new(
            Pattern::RequestReply,
            opts.agents,
            rate,
            Duration::from_secs_f64(opts.step),
        );
        s.warmup = Duration::from_millis(500);
        s
    };
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
