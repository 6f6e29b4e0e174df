//! A latency histogram reduced to what a scrape carries: a few quantiles,
//! the sum and the count, in seconds. Computed on the shard from its own
//! hdrhistogram, so that a scrape copies a few numbers, not the histogram.

use hdrhistogram::Histogram;

/// Quantiles reported for every latency distribution.
pub const QUANTILES: [f64; 6] = [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0];

/// A latency distribution in seconds.
///
/// ```
/// use quire_runtime::metrics::LatencySummary;
/// let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
/// for us in 1..=100u64 {
///     h.record(us * 1_000).unwrap(); // 1..100 µs, in ns
/// }
/// let s = LatencySummary::of_ns(&h);
/// assert_eq!(s.count, 100);
/// assert!((s.quantile(0.5).unwrap() - 50e-6).abs() < 1e-6);
/// assert!((s.sum_seconds - 5050e-6).abs() < 1e-5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySummary {
    /// `(quantile, seconds)` for each of [`QUANTILES`].
    pub quantiles: Vec<(f64, f64)>,
    /// Sum of every recorded value, in seconds (from the histogram's mean).
    pub sum_seconds: f64,
    /// Values recorded.
    pub count: u64,
}

impl LatencySummary {
    /// Summarises a histogram of nanoseconds.
    pub fn of_ns(h: &Histogram<u64>) -> Self {
        let count = h.len();
        let quantiles = QUANTILES
            .iter()
            .map(|&q| {
                let ns = if count == 0 {
                    0
                } else if q >= 1.0 {
                    h.max()
                } else {
                    h.value_at_quantile(q)
                };
                (q, ns as f64 / 1e9)
            })
            .collect();
        Self {
            quantiles,
            sum_seconds: h.mean() * count as f64 / 1e9,
            count,
        }
    }

    /// The value at `q`, if it is one of [`QUANTILES`].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantiles
            .iter()
            .find(|(k, _)| (*k - q).abs() < 1e-12)
            .map(|(_, v)| *v)
    }
}
