//! A PNG of latency against load, the way wrk2 and HdrHistogram users read
//! a rate sweep: four panels (p50, p99, p99.9, p99.99), each with achieved
//! msg/s on a log axis across and latency on a log axis up, one line per
//! system; every panel on the same scales, so systems and percentiles
//! compare at a glance.

use super::canvas::{human, Canvas, BLACK, COLOURS, GREY};

const W: usize = 1040;
const H: usize = 800;
const PANEL_W: usize = 450;
const PANEL_H: usize = 320;
const LEFT: usize = 75;
const TOP: usize = 70;
const GAP_X: usize = 45;
const GAP_Y: usize = 50;

/// The percentiles drawn, one panel each.
pub const PANELS: [(&str, f64); 4] = [
    ("p50", 0.5),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// One step of a sweep: the rate a system achieved and its latency (ns)
/// at each of [`PANELS`]' percentiles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePoint {
    /// Messages per second measured (not offered).
    pub achieved: f64,
    /// Latency at p50, p99, p99.9, p99.99, in ns.
    pub latency_ns: [u64; 4],
}

/// A PNG of `curves` (system name, its points in the order run).
///
/// ```
/// use quire_bench::load::rate_plot::{latency_by_rate_png, RatePoint};
/// let quire = [
///     RatePoint { achieved: 1e3, latency_ns: [2_000, 10_000, 40_000, 90_000] },
///     RatePoint { achieved: 1e5, latency_ns: [3_000, 20_000, 80_000, 400_000] },
/// ];
/// let png = latency_by_rate_png(&[("quire", &quire[..])], "request-reply").unwrap();
/// assert_eq!(&png[1..4], b"PNG");
/// ```
pub fn latency_by_rate_png(
    curves: &[(&str, &[RatePoint])],
    title: &str,
) -> Result<Vec<u8>, String> {
    let points = || curves.iter().flat_map(|(_, p)| p.iter());
    let (mut rate_lo, mut rate_hi) = (f64::MAX, 1.0f64);
    let (mut ns_lo, mut ns_hi) = (u64::MAX, 1u64);
    for p in points() {
        rate_lo = rate_lo.min(p.achieved.max(1.0));
        rate_hi = rate_hi.max(p.achieved);
        for &ns in &p.latency_ns {
            ns_lo = ns_lo.min(ns.max(1));
            ns_hi = ns_hi.max(ns);
        }
    }
    if rate_lo > rate_hi {
        (rate_lo, ns_lo) = (1.0, 1);
    }
    let decades = |lo: f64, hi: f64| {
        let (a, b) = (lo.log10().floor(), hi.log10().ceil());
        (a, b.max(a + 1.0))
    };
    let (x_lo, x_hi) = decades(rate_lo, rate_hi);
    let (y_lo, y_hi) = decades(ns_lo as f64, ns_hi as f64);

    let mut c = Canvas::new(W, H);
    c.text(
        LEFT as i64,
        10,
        &format!("{title}: latency by achieved rate (msg/s)"),
        BLACK,
    );
    for (k, (name, _)) in curves.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let x = LEFT as i64 + 160 * k as i64;
        c.line((x, 33), (x + 20, 33), colour, true);
        c.text(x + 26, 30, name, BLACK);
    }
    for (panel, (label, _)) in PANELS.iter().enumerate() {
        let px = (LEFT + (panel % 2) * (PANEL_W + GAP_X)) as f64;
        let py = (TOP + (panel / 2) * (PANEL_H + GAP_Y)) as f64;
        let x_of = |rate: f64| px + PANEL_W as f64 * (rate.max(1.0).log10() - x_lo) / (x_hi - x_lo);
        let y_of = |ns: u64| {
            py + PANEL_H as f64
                - PANEL_H as f64 * ((ns.max(1) as f64).log10() - y_lo) / (y_hi - y_lo)
        };
        let (left, right) = (px as i64, (px + PANEL_W as f64) as i64);
        let (top, bottom) = (py as i64, (py + PANEL_H as f64) as i64);
        let mut decade = x_lo;
        while decade <= x_hi {
            let x = x_of(10f64.powf(decade)) as i64;
            c.line((x, top), (x, bottom), GREY, false);
            c.text(x - 8, bottom + 6, &rate_label(10f64.powf(decade)), BLACK);
            decade += 1.0;
        }
        let mut decade = y_lo;
        while decade <= y_hi {
            let y = y_of(10f64.powf(decade) as u64) as i64;
            c.line((left, y), (right, y), GREY, false);
            if panel % 2 == 0 {
                c.text(4, y - 3, &human(10f64.powf(decade)), BLACK);
            }
            decade += 1.0;
        }
        c.line((left, bottom), (right, bottom), BLACK, false);
        c.line((left, bottom), (left, top), BLACK, false);
        c.text(left + 6, top + 4, label, BLACK);
        for (k, (_, pts)) in curves.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let mut last = None;
            for p in pts.iter() {
                let at = (x_of(p.achieved) as i64, y_of(p.latency_ns[panel]) as i64);
                if let Some(l) = last {
                    c.line(l, at, colour, true);
                }
                // A small cross marks each measured step.
                c.line((at.0 - 2, at.1), (at.0 + 2, at.1), colour, false);
                c.line((at.0, at.1 - 2), (at.0, at.1 + 2), colour, false);
                last = Some(at);
            }
        }
    }
    c.png()
}

/// 1000 -> "1k", 1e6 -> "1m" (the font has lower case only).
fn rate_label(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.0}m", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.0}k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}
