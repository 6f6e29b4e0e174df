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
    /// Summarises a histogram of nanoseconds in one walk over its
    /// recorded values (a scrape runs this on the shard: one pass, not one
    /// per quantile).
    pub fn of_ns(h: &Histogram<u64>) -> Self {
        let count = h.len();
        let mut quantiles: Vec<(f64, f64)> = QUANTILES.iter().map(|&q| (q, 0.0)).collect();
        let mut sum = 0.0;
        if count > 0 {
            // The rank each quantile is reached at (as value_at_quantile).
            let ranks: Vec<u64> = QUANTILES
                .iter()
                .map(|&q| ((q * count as f64).ceil() as u64).clamp(1, count))
                .collect();
            let mut next = 0;
            let mut seen = 0u64;
            for v in h.iter_recorded() {
                let n = v.count_at_value();
                let value = h.highest_equivalent(v.value_iterated_to());
                seen += n;
                sum += h.median_equivalent(v.value_iterated_to()) as f64 * n as f64;
                while next < ranks.len() && seen >= ranks[next] {
                    quantiles[next].1 = value as f64 / 1e9;
                    next += 1;
                }
            }
            if let Some(last) = quantiles.last_mut() {
                last.1 = h.max() as f64 / 1e9;
            }
        }
        Self {
            quantiles,
            sum_seconds: sum / 1e9,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_agrees_with_the_histogram_s_own_quantiles() {
        let mut h = quire_shards::new_latency_histogram();
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            h.record(1_000 + (x >> 40) % 5_000_000).unwrap();
        }
        let s = LatencySummary::of_ns(&h);
        for (q, v) in &s.quantiles {
            let expected = if *q >= 1.0 {
                h.max()
            } else {
                h.value_at_quantile(*q)
            };
            assert_eq!((*v * 1e9).round() as u64, expected, "quantile {q}");
        }
        assert_eq!(s.count, 20_000);
        let mean = s.sum_seconds * 1e9 / s.count as f64;
        assert!(
            (mean - h.mean()).abs() / h.mean() < 0.001,
            "{mean} vs {}",
            h.mean()
        );
    }
}
