//! The interval log (`.hlog`): one compressed histogram per interval of the
//! run, in HdrHistogram's interval log format (V2 deflate encoding), which
//! HdrHistogram's HistogramLogProcessor and the crate's
//! `IntervalLogIterator` read.

use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

/// Writes `intervals` (each `interval` long, the first starting at
/// `started`) as an interval log, tagged `tag`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
/// let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
/// h.record(42).unwrap();
/// let log = quire_bench::load::hlog::write(&[h.clone(), h], Duration::from_secs(1), SystemTime::now(), "quire").unwrap();
/// let intervals = IntervalLogIterator::new(&log)
///     .filter(|e| matches!(e, Ok(LogEntry::Interval(_))))
///     .count();
/// assert_eq!(intervals, 2);
/// ```
pub fn write(
    intervals: &[Histogram<u64>],
    interval: Duration,
    started: SystemTime,
    tag: &str,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment("quire-bench interval log: latency in ns, corrected for coordinated omission")
        .with_start_time(started)
        .with_base_time(started)
        .with_max_value_divisor(1e6)
        .begin_log_with(&mut out, &mut serializer)
        .map_err(|e| e.to_string())?;
    let tag = Tag::new(tag);
    for (i, h) in intervals.iter().enumerate() {
        writer
            .write_histogram(h, interval * i as u32, interval, tag)
            .map_err(|e| format!("{e:?}"))?;
    }
    drop(writer);
    Ok(out)
}
