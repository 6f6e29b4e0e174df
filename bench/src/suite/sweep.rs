//! `quire-bench sweep`: latency against load for every system in one run,
//! the way wrk2 and HdrHistogram users read a system. Each system's rate
//! climbs a ladder (from ~1% of what this machine can take, times
//! `--factor` each step) until its objective breaks and `--past` steps
//! beyond; every step is an open-loop request/reply run whose generator
//! spins to each due instant, next to a null run of the same schedule (the
//! ruler's own lateness at that rate). Outputs: a table per system, its
//! breaking point, `sweep.json`, `sweep.md` and `sweep.png` (p50, p99,
//! p99.9, p99.99 against achieved rate, all systems on each panel).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::*;
use crate::load::null_run::{null_run, CALIBRATED_P99_NS};
use crate::load::rate_plot::{latency_by_rate_png, RatePoint, PANELS};

/// The systems a sweep can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// An embedded Quire node (native echo agents).
    Quire,
    /// tokio's multi-thread runtime, one task per agent (the conventional
    /// design).
    Tokio,
    /// tokio thread per core: pinned current-thread runtimes, agents placed
    /// by Quire's hash (the design its latency-minded users pick).
    TokioTpc,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Quire => "quire",
            System::Tokio => "tokio",
            System::TokioTpc => "tokio-tpc",
        }
    }
}

/// Options of `quire-bench sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepOptions {
    /// Keep idle reactors polling this many µs before they sleep (Quire's
    /// low-latency option; tokio's workers spin before parking too).
    #[arg(long, default_value_t = 200)]
    pub spin_us: u64,
    /// Target agents, spread over every shard (runtime).
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// First rate of the ladder, msg/s.
    #[arg(long, default_value_t = 2_000)]
    pub from: u64,
    /// Each step's rate over the one before.
    #[arg(long, default_value_t = 2.0)]
    pub factor: f64,
    /// No step above this rate, msg/s.
    #[arg(long, default_value_t = 8_000_000)]
    pub max_rate: u64,
    /// Broken steps run past the breaking point before a system stops.
    #[arg(long, default_value_t = 1)]
    pub past: u32,
    /// Measured seconds per step (after a half-second warm-up).
    #[arg(long, default_value_t = 2.0)]
    pub step: f64,
    /// The objective: p99 at most this, ms...
    #[arg(long, default_value_t = 10.0)]
    pub slo_ms: f64,
    /// ...with at most this share of messages refused or missing.
    #[arg(long, default_value_t = 0.01)]
    pub max_loss: f64,
    /// Systems to sweep, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "quire,tokio,tokio-tpc"
    )]
    pub systems: Vec<System>,
    /// Shards (threads, runtimes) of each system (default: one per CPU).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Where the outputs go.
    #[arg(long, default_value = "bench-results/sweep")]
    pub out: PathBuf,
}

/// The rates one system climbs: from `from`, times `factor` each step, up
/// to `max`, ending `past` broken steps after the first one.
///
/// ```
/// use quire_bench::suite::Ladder;
/// let mut ladder = Ladder::new(1_000, 2.0, 100_000, 1);
/// assert_eq!(ladder.next_rate(), Some(1_000));
/// ladder.record(true);
/// assert_eq!(ladder.next_rate(), Some(2_000));
/// ladder.record(false); // broken at 2 000: one more step past it
/// assert_eq!(ladder.next_rate(), Some(4_000));
/// ladder.record(false);
/// assert_eq!(ladder.next_rate(), None);
/// assert_eq!(ladder.held(), Some(1_000));
/// ```
#[derive(Debug, Clone)]
pub struct Ladder {
    next: u64,
    factor: f64,
    max: u64,
    past: u32,
    broken: u32,
    held: Option<u64>,
}

impl Ladder {
    /// A ladder from `from` msg/s.
    pub fn new(from: u64, factor: f64, max: u64, past: u32) -> Self {
        Self {
            next: from.max(1),
            factor: factor.max(1.01),
            max,
            past,
            broken: 0,
            held: None,
        }
    }

    /// The rate to run next, if any.
    pub fn next_rate(&self) -> Option<u64> {
        (self.next <= self.max && self.broken <= self.past).then_some(self.next)
    }

    /// Whether the step at [`Ladder::next_rate`] met the objective.
    pub fn record(&mut self, held: bool) {
        if held && self.broken == 0 {
            self.held = Some(self.next);
        }
        if !held {
            self.broken += 1;
        }
        self.next = ((self.next as f64 * self.factor).round() as u64).max(self.next + 1);
    }

    /// The highest rate that met the objective before the first broken
    /// step: the breaking point is the step after it.
    pub fn held(&self) -> Option<u64> {
        self.held
    }
}

/// One step of one system.
#[derive(Debug, Clone, Serialize)]
pub struct SweepStep {
    /// Offered msg/s.
    pub offered: u64,
    /// Measured (answered) msg/s.
    pub achieved: f64,
    /// Corrected latency, ns: p50, p99, p99.9, p99.99.
    pub latency_ns: [u64; 4],
    /// Corrected max, ns.
    pub max_ns: u64,
    /// Refused or failed calls.
    pub refused: u64,
    /// Calls neither answered nor refused by the end of the step.
    pub missing: u64,
    /// This run's generator lateness p99, ns.
    pub generator_p99_ns: u64,
    /// The null run's lateness p99 at this rate, ns.
    pub null_p99_ns: u64,
    /// Whether the step met the objective.
    pub held: bool,
    /// Whether this is the second try of a step that broke the first time
    /// (one noisy moment of a VM breaks a step; a system breaks when it
    /// breaks twice in a row).
    pub retried: bool,
}

/// One system's sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SystemSweep {
    /// The system.
    pub system: System,
    /// Its steps, in the order run.
    pub steps: Vec<SweepStep>,
    /// The highest offered rate that met the objective before it broke.
    pub held_msgs_per_s: Option<u64>,
}

/// What `quire-bench sweep` measured.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// This machine.
    pub machine: MachineInfo,
    /// Agents, shards, objective, step length.
    pub setup: String,
    /// Every system's sweep.
    pub systems: Vec<SystemSweep>,
}

/// `quire-bench sweep`.
pub fn sweep(opts: &SweepOptions) -> Result<SweepReport, String> {
    let out = Outputs::new(&opts.out)?;
    let shards = opts.shards.unwrap_or_else(crate::report::cpus).max(1);
    let spec = |rate| ladder_step(opts.agents, rate, opts.step);
    let slo_ns = (opts.slo_ms * 1e6) as u64;
    let setup = format!(
        "request/reply, {} agents, {shards} shards/threads, {} s per step, objective p99 <= {} ms and <= {:.1}% lost, Quire spin {} µs",
        opts.agents,
        opts.step,
        opts.slo_ms,
        opts.max_loss * 100.0,
        opts.spin_us
    );
    println!("sweep: {setup}");
    // The ruler at each rate, measured once with no system running (after
    // each system's sweep) and shown next to every system.
    let mut nulls: BTreeMap<u64, u64> = BTreeMap::new();
    let mut systems = Vec::new();
    for &system in &opts.systems {
        println!("{}:", system.name());
        let node = match system {
            System::Quire => Some(embedded_node(Some(shards), opts.spin_us)?),
            _ => None,
        };
        let mut ladder = Ladder::new(opts.from, opts.factor, opts.max_rate, opts.past);
        let mut steps = Vec::new();
        let mut runs = 0;
        let mut run = |spec: &LoadSpec| -> Result<LoadResult, String> {
            runs += 1;
            match (&node, system) {
                (Some(node), _) => {
                    load::quire::run(&node.client(), &format!("sweep-{runs}"), spec, |_| {})
                }
                (None, System::Tokio) => load::tokio_peer::run(spec, shards, 1024),
                (None, _) => load::tokio_tpc::run(spec, shards, 1024),
            }
        };
        while let Some(rate) = ladder.next_rate() {
            let spec = spec(rate);
            let mut step = measure_step(&spec, &run(&spec)?, slo_ns, opts.max_loss);
            if !step.held {
                println!("{} (once more)", step_line(&step));
                step = measure_step(&spec, &run(&spec)?, slo_ns, opts.max_loss);
                step.retried = true;
            }
            println!("{}", step_line(&step));
            ladder.record(step.held);
            steps.push(step);
        }
        if let Some(node) = node {
            node.shutdown();
        }
        for step in &mut steps {
            step.null_p99_ns = *nulls
                .entry(step.offered)
                .or_insert_with(|| null_run(&spec(step.offered)).value_at_quantile(0.99));
        }
        println!(
            "  null runs (the generator alone, no system): {}",
            steps
                .iter()
                .map(|s| format!("{} msg/s p99 {}", s.offered, human_ns(s.null_p99_ns)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        systems.push(SystemSweep {
            system,
            steps,
            held_msgs_per_s: ladder.held(),
        });
    }
    let report = SweepReport {
        machine: MachineInfo::current(),
        setup,
        systems,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    out.write("sweep.json", json)?;
    let md = markdown(&report);
    out.write("sweep.md", &md)?;
    let points: Vec<(&str, Vec<RatePoint>)> = report
        .systems
        .iter()
        .map(|s| {
            let pts = s
                .steps
                .iter()
                .map(|st| RatePoint {
                    achieved: st.achieved,
                    latency_ns: st.latency_ns,
                })
                .collect();
            (s.system.name(), pts)
        })
        .collect();
    let curves: Vec<(&str, &[RatePoint])> = points.iter().map(|(n, p)| (*n, &p[..])).collect();
    out.write(
        "sweep.png",
        latency_by_rate_png(&curves, "request-reply sweep")?,
    )?;
    println!("\n{md}");
    println!("outputs in {}", opts.out.display());
    Ok(report)
}

/// A step's figures (its null run is filled in once no system runs).
fn measure_step(spec: &LoadSpec, r: &LoadResult, slo_ns: u64, max_loss: f64) -> SweepStep {
    let latency_ns = PANELS.map(|(_, q)| r.corrected.value_at_quantile(q));
    let lost = (r.rejected + r.missing()) as f64 / r.expected.max(1) as f64;
    SweepStep {
        offered: spec.rate,
        achieved: r.achieved_rate(spec),
        latency_ns,
        max_ns: r.corrected.max(),
        refused: r.rejected,
        missing: r.missing(),
        generator_p99_ns: r.send_lateness.value_at_quantile(0.99),
        null_p99_ns: 0,
        held: latency_ns[1] <= slo_ns && lost <= max_loss,
        retried: false,
    }
}

/// p50, p99, p99.9, p99.99 and max of a step, with their units.
fn latency_cells(s: &SweepStep) -> [String; 5] {
    let [a, b, c, d] = s.latency_ns.map(human_ns);
    [a, b, c, d, human_ns(s.max_ns)]
}

fn step_line(s: &SweepStep) -> String {
    let [p50, p99, p999, p9999, max] = latency_cells(s);
    format!(
        "  {:>8} msg/s offered, {:>10.0} achieved: p50 {p50} p99 {p99} p99.9 {p999} p99.99 {p9999} max {max}, refused+missing {}, generator p99 {} -> {}",
        s.offered,
        s.achieved,
        s.refused + s.missing,
        human_ns(s.generator_p99_ns),
        if s.held { "held" } else { "BROKEN" }
    )
}

/// The report: the setup, each system's steps and its breaking point.
fn markdown(report: &SweepReport) -> String {
    let mut md = String::new();
    let m = &report.machine;
    let _ = writeln!(md, "# Latency against load\n");
    let _ = writeln!(
        md,
        "Machine: {} ({} CPUs, kernel {}). {}. Latency from each call's intended send time (coordinated omission corrected); \"null p99\" is the generator alone on the same schedule with no system running (calibrated when <= {}), \"gen p99\" the generator's lateness in the run itself. A step that broke is run once more; a system breaks where a step broke twice.\n",
        m.cpu_model, m.cpus, m.kernel, report.setup, crate::load::null_run::CALIBRATED_P99
    );
    let worst_null = report
        .systems
        .iter()
        .flat_map(|s| s.steps.iter().map(|st| st.null_p99_ns))
        .max()
        .unwrap_or(0);
    if worst_null > CALIBRATED_P99_NS {
        let _ = writeln!(
            md,
            "**The ruler is not calibrated on this machine**: a null run's p99 reached {}, over {}. The latency figures below measure this machine's hold-ups as much as the systems; the breaking points and achieved rates stand.\n",
            human_ns(worst_null),
            crate::load::null_run::CALIBRATED_P99
        );
    }
    for s in &report.systems {
        let _ = writeln!(
            md,
            "## {}: held up to {}\n",
            s.system.name(),
            s.held_msgs_per_s
                .map_or("no step".to_string(), |r| format!("{r} msg/s"))
        );
        let _ = writeln!(
            md,
            "| offered msg/s | achieved | p50 | p99 | p99.9 | p99.99 | max | lost | gen p99 | null p99 | |"
        );
        let _ = writeln!(
            md,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for st in &s.steps {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {} | {} | {} | {} | {} |",
                st.offered,
                st.achieved,
                latency_cells(st).join(" | "),
                st.refused + st.missing,
                human_ns(st.generator_p99_ns),
                human_ns(st.null_p99_ns),
                match (st.held, st.retried) {
                    (true, false) => "held",
                    (true, true) => "held (2nd try)",
                    (false, _) => "broken (twice)",
                }
            );
        }
        md.push('\n');
    }
    md
}
