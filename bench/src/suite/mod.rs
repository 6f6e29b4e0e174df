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
//! - `sweep`: latency against load for Quire and both tokio designs, from
//!   ~1% of capacity to past each one's breaking point, one PNG;
//! - `compare --baseline FILE`: fails when a figure regressed by more than
//!   a threshold, judged on its ratio to the in-run peer so that machine
//!   noise cancels.
//!
//! One room per file: `compare` (figures, summaries, regressions), `custom`,
//! `stress`, `sweep`, `standard` (the seed suite), and here what they share (the
//! embedded node, progress bars, the ruler's own lateness, outputs).

mod compare;
mod custom;
mod standard;
mod stress;
mod sweep;

use compare::read_summary;
pub use compare::{compare, regressions, Better, CompareOptions, Figure, Summary};
pub use custom::{custom, CustomOptions};
pub use standard::{run_suite, RunOptions};
pub use stress::{stress, StressOptions};
pub use sweep::{sweep, Ladder, SweepOptions, SweepReport, SweepStep, System, SystemSweep};

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

pub(super) fn progress(label: &str) -> ProgressBar {
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
pub(super) fn print_ruler(spec: &LoadSpec, series: &[(&str, &LoadResult)]) {
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

pub(super) fn latency_figures(
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
pub(super) struct Outputs {
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

/// One step of a rate ladder (`stress`, `sweep`): request/reply over
/// `agents` at `rate` for `seconds` after a half-second warm-up.
pub(super) fn ladder_step(agents: usize, rate: u64, seconds: f64) -> LoadSpec {
    let mut s = LoadSpec::new(
        Pattern::RequestReply,
        agents,
        rate,
        Duration::from_secs_f64(seconds),
    );
    s.warmup = Duration::from_millis(500);
    s
}

pub(super) fn embedded_node(shards: Option<usize>, spin_us: u64) -> Result<Node, String> {
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
pub(super) fn scrape_until(
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
pub(super) fn side_by_side(
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

pub(super) fn print_run(tag: &str, spec: &LoadSpec, r: &LoadResult) {
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
