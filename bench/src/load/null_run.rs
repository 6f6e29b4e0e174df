//! The ruler measured alone: a generator that spins to each due instant of
//! a schedule and sends nowhere, recording how late it was. Whatever a real
//! run's generator shows beyond this is the system (or its generator's
//! timing mechanism) holding the generator up; a null run whose own p99 is
//! over [`CALIBRATED_P99`] means this machine cannot time the schedule, and
//! no latency measured against it is a figure.

use std::time::Instant;

use hdrhistogram::Histogram;
use quire_shards::new_latency_histogram;

use super::spec::LoadSpec;

/// The p99 generator lateness a calibrated ruler stays within.
pub const CALIBRATED_P99_NS: u64 = 2_000;
/// The same, for messages.
pub const CALIBRATED_P99: &str = "2 µs";

/// Spins through `spec`'s schedule (warm-up included, so the thread runs as
/// long as a real run) on the calling thread; returns the lateness of the
/// measured part.
pub fn null_run(spec: &LoadSpec) -> Histogram<u64> {
    let mut lateness = new_latency_histogram();
    let start = Instant::now() + std::time::Duration::from_millis(10);
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let mut i = 0u64;
    loop {
        let due = start + spec.offset(i);
        if due >= end {
            break;
        }
        let mut now = Instant::now();
        while now < due {
            std::hint::spin_loop();
            now = Instant::now();
        }
        if due >= measure_from {
            lateness.saturating_record((now.duration_since(due).as_nanos() as u64).max(1));
        }
        i += 1;
    }
    lateness
}

/// A line for reports: the null run's lateness and whether it is calibrated.
pub fn describe(lateness: &Histogram<u64>) -> String {
    let p99 = lateness.value_at_quantile(0.99);
    format!(
        "null run (the generator alone, spinning, no system): lateness p50 {:.2} µs p99 {:.2} µs max {:.2} µs: {}",
        lateness.value_at_quantile(0.5) as f64 / 1e3,
        p99 as f64 / 1e3,
        lateness.max() as f64 / 1e3,
        if p99 <= CALIBRATED_P99_NS {
            format!("calibrated (p99 <= {CALIBRATED_P99})")
        } else {
            format!("NOT calibrated (p99 > {CALIBRATED_P99}): this machine cannot time the schedule")
        }
    )
}
