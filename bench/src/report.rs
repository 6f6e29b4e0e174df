//! Latency and throughput figures, medians over runs, ratios to the peer, and
//! their text and JSON forms.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The CPUs this process may run on (1 when that cannot be told): the
/// default shard and thread count of every suite.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The percentiles every latency report carries, in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq)]
pub struct Percentiles {
    /// Samples behind the figures.
    pub samples: u64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// 99.99th percentile.
    pub p9999_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
}

impl Percentiles {
    /// Reads the percentiles off a histogram of nanoseconds.
    ///
    /// ```
    /// use quire_bench::report::Percentiles;
    /// let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    /// for v in 1..=1000 { h.record(v).unwrap(); }
    /// let p = Percentiles::of(&h);
    /// assert_eq!(p.samples, 1000);
    /// assert!((499..=501).contains(&p.p50_ns));
    /// assert_eq!(p.max_ns, 1000);
    /// ```
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            samples: h.len(),
            p50_ns: h.value_at_quantile(0.5),
            p90_ns: h.value_at_quantile(0.9),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            p9999_ns: h.value_at_quantile(0.9999),
            max_ns: h.max(),
        }
    }

    /// The figures in report order, with their labels.
    pub fn labelled(&self) -> [(&'static str, u64); 6] {
        [
            ("p50", self.p50_ns),
            ("p90", self.p90_ns),
            ("p99", self.p99_ns),
            ("p99.9", self.p999_ns),
            ("p99.99", self.p9999_ns),
            ("max", self.max_ns),
        ]
    }

    /// Per-figure median over several runs (each figure on its own).
    pub fn median_of(runs: &[Percentiles]) -> Self {
        let m = |f: fn(&Percentiles) -> u64| median(runs.iter().map(f).collect());
        Self {
            samples: runs.iter().map(|r| r.samples).sum(),
            p50_ns: m(|r| r.p50_ns),
            p90_ns: m(|r| r.p90_ns),
            p99_ns: m(|r| r.p99_ns),
            p999_ns: m(|r| r.p999_ns),
            p9999_ns: m(|r| r.p9999_ns),
            max_ns: m(|r| r.max_ns),
        }
    }
}

/// The median of some values (the lower middle one for an even count).
///
/// ```
/// assert_eq!(quire_bench::report::median(vec![5, 1, 3]), 3);
/// assert_eq!(quire_bench::report::median(vec![4, 1, 3, 2]), 2);
/// ```
pub fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

/// The median of figures of several runs (the upper middle one for an even
/// count; 0 for none).
///
/// ```
/// assert_eq!(quire_bench::report::median_f64(vec![5.0, 1.0, 3.0]), 3.0);
/// ```
pub fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Formats nanoseconds for people: `850 ns`, `3.2 µs`, `12.5 ms`.
pub fn human_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.2} µs", ns as f64 / 1e3),
        _ => format!("{:.2} ms", ns as f64 / 1e6),
    }
}

/// How many times better Quire is: the peer's figure over Quire's for
/// latencies (lower is better).
pub fn latency_ratio(peer: u64, quire: u64) -> f64 {
    peer as f64 / quire.max(1) as f64
}

/// One latency comparison row group.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyComparison {
    /// What was measured.
    pub name: String,
    /// Quire, median over runs.
    pub quire: Percentiles,
    /// The peer, median over runs.
    pub peer: Percentiles,
    /// Every run, Quire's.
    pub quire_runs: Vec<Percentiles>,
    /// Every run, the peer's.
    pub peer_runs: Vec<Percentiles>,
}

/// One throughput comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputComparison {
    /// What was measured.
    pub name: String,
    /// Quire, messages per second, median over runs.
    pub quire_msgs_per_s: u64,
    /// The peer, median.
    pub peer_msgs_per_s: u64,
    /// Every run, Quire's.
    pub quire_runs: Vec<u64>,
    /// Every run, the peer's.
    pub peer_runs: Vec<u64>,
}

/// Renders a latency comparison as a text table.
pub fn latency_table(c: &LatencyComparison, peer_name: &str) -> String {
    let mut out = format!("{}\n", c.name);
    out += &format!("  {:<16}", "");
    for (label, _) in c.quire.labelled() {
        out += &format!("{label:>11}");
    }
    out += "\n";
    for (who, p) in [("quire", &c.quire), (peer_name, &c.peer)] {
        out += &format!("  {who:<16}");
        for (_, v) in p.labelled() {
            out += &format!("{:>11}", human_ns(v));
        }
        out += "\n";
    }
    out += &format!("  {:<16}", format!("{peer_name}/quire"));
    for ((_, q), (_, p)) in c.quire.labelled().iter().zip(c.peer.labelled()) {
        out += &format!("{:>10.1}x", latency_ratio(p, *q));
    }
    out + "\n"
}

/// Renders a throughput comparison as text.
pub fn throughput_line(c: &ThroughputComparison, peer_name: &str) -> String {
    format!(
        "{}\n  quire {:>12} msg/s   {peer_name} {:>12} msg/s   quire/{peer_name} {:.1}x\n",
        c.name,
        c.quire_msgs_per_s,
        c.peer_msgs_per_s,
        c.quire_msgs_per_s as f64 / c.peer_msgs_per_s.max(1) as f64
    )
}

/// The machine a report was made on, as far as /proc tells.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MachineInfo {
    /// CPU model name.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
}

impl MachineInfo {
    /// Reads this machine's description.
    pub fn current() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        Self {
            cpu_model,
            cpus: cpus(),
            kernel,
        }
    }
}

/// This process's resident memory, bytes (from /proc/self/statm).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// Bytes the process has allocated and not freed, from jemalloc's own
/// statistics (more exact than resident memory for small differences).
pub fn allocated_bytes() -> u64 {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0) as u64
}
