//! A PNG percentile plot: latency (log scale) against percentile (on
//! HdrHistogram's 1/(1-p) axis: 0%, 90%, 99%, 99.9%, ...), one line per
//! series.

use hdrhistogram::Histogram;

use super::canvas::{human, Canvas, BLACK, COLOURS, GREY};

const W: usize = 900;
const H: usize = 520;
const LEFT: usize = 80;
const RIGHT: usize = 30;
const TOP: usize = 30;
const BOTTOM: usize = 50;
/// Percentile axis: 1/(1-p) up to 10^NINES.
const NINES: f64 = 5.0;

/// A PNG of the percentile curves of `series` (name, histogram in ns).
///
/// ```
/// let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
/// for v in 1..10_000u64 {
///     h.record(v * 100).unwrap();
/// }
/// let png = quire_bench::load::plot::percentile_png(&[("quire", &h)], "request-reply").unwrap();
/// assert_eq!(&png[1..4], b"PNG");
/// ```
pub fn percentile_png(series: &[(&str, &Histogram<u64>)], title: &str) -> Result<Vec<u8>, String> {
    let mut c = Canvas::new(W, H);
    let (x0, x1) = (LEFT as f64, (W - RIGHT) as f64);
    let (y0, y1) = ((H - BOTTOM) as f64, TOP as f64);
    let max_ns = series
        .iter()
        .map(|(_, h)| h.max())
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    let min_ns = series
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(_, h)| h.min())
        .min()
        .unwrap_or(1)
        .max(1) as f64;
    let (lo, hi) = (
        min_ns.log10().floor(),
        max_ns.log10().ceil().max(min_ns.log10().floor() + 1.0),
    );
    let x_of = |q: f64| {
        let nines = (1.0 / (1.0 - q.min(1.0 - 10f64.powf(-NINES)))).log10();
        x0 + (x1 - x0) * nines / NINES
    };
    let y_of = |ns: f64| y0 - (y0 - y1) * (ns.max(1.0).log10() - lo) / (hi - lo);
    let (grey, black) = (GREY, BLACK);
    // Grid and labels.
    for k in 0..=NINES as usize {
        let q = 1.0 - 10f64.powi(-(k as i32));
        let x = x_of(q) as i64;
        c.line((x, y1 as i64), (x, y0 as i64), grey, false);
        let label = match k {
            0 => "0%".to_string(),
            1 => "90%".to_string(),
            n => format!("99.{}%", "9".repeat(n - 2)).replace("99.%", "99%"),
        };
        c.text(x - 10, y0 as i64 + 8, &label, black);
    }
    let mut decade = lo;
    while decade <= hi {
        let y = y_of(10f64.powf(decade)) as i64;
        c.line((x0 as i64, y), (x1 as i64, y), grey, false);
        c.text(4, y - 3, &human(10f64.powf(decade)), black);
        decade += 1.0;
    }
    c.line((x0 as i64, y0 as i64), (x1 as i64, y0 as i64), black, false);
    c.line((x0 as i64, y0 as i64), (x0 as i64, y1 as i64), black, false);
    c.text(
        x0 as i64,
        10,
        &format!("{title}: latency by percentile"),
        black,
    );
    c.text((W / 2) as i64 - 30, (H - 18) as i64, "percentile", black);
    // Curves.
    for (k, (name, h)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let mut last: Option<(i64, i64)> = None;
        if !h.is_empty() {
            for v in h.iter_quantiles(4) {
                let q = v.quantile_iterated_to();
                let p = (
                    x_of(q) as i64,
                    y_of(h.highest_equivalent(v.value_iterated_to()) as f64) as i64,
                );
                if let Some(l) = last {
                    c.line(l, p, colour, true);
                }
                last = Some(p);
                if q >= 1.0 - 10f64.powf(-NINES) {
                    break;
                }
            }
        }
        let ly = TOP as i64 + 10 + 14 * k as i64;
        c.line(
            (x0 as i64 + 12, ly + 3),
            (x0 as i64 + 32, ly + 3),
            colour,
            true,
        );
        c.text(x0 as i64 + 38, ly, name, black);
    }
    c.png()
}
