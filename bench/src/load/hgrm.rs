//! The percentile spectrum in HdrHistogram's `.hgrm` text format (what
//! `outputPercentileDistribution` prints and HdrHistogram's plotter reads):
//! columns Value, Percentile, TotalCount, 1/(1-Percentile), then the
//! `#[Mean ...]` footer. The crate has no printer, so it is written here,
//! with a parser to read one back.

use std::fmt::Write;

use hdrhistogram::Histogram;

/// `.hgrm` text of a histogram of nanoseconds, values in milliseconds.
///
/// ```
/// let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
/// for us in 1..=1000u64 {
///     h.record(us * 1000).unwrap();
/// }
/// let text = quire_bench::load::hgrm::write(&h);
/// let rows = quire_bench::load::hgrm::parse(&text).unwrap();
/// let (value_ms, _, count) = rows.last().copied().unwrap();
/// assert_eq!(count, 1000);
/// assert!((value_ms - 1.0).abs() < 0.01);
/// ```
pub fn write(h: &Histogram<u64>) -> String {
    const SCALE: f64 = 1e6; // ns per ms
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = h.highest_equivalent(v.value_iterated_to()) as f64 / SCALE;
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / SCALE,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

/// The rows of `.hgrm` text: (value, percentile, total count).
pub fn parse(text: &str) -> Result<Vec<(f64, f64, u64)>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("Value") {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("line {}: {line:?}", n + 1);
        if cols.len() < 3 {
            return Err(bad());
        }
        rows.push((
            cols[0].parse().map_err(|_| bad())?,
            cols[1].parse().map_err(|_| bad())?,
            cols[2].parse().map_err(|_| bad())?,
        ));
    }
    if rows.is_empty() {
        return Err("no rows".into());
    }
    Ok(rows)
}
