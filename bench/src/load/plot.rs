//! A PNG percentile plot: latency (log scale) against percentile (on
//! HdrHistogram's 1/(1-p) axis: 0%, 90%, 99%, 99.9%, ...), one line per
//! series, drawn with a few lines and a built-in 5x7 font so that no
//! font or plotting library is needed.

use hdrhistogram::Histogram;

const W: usize = 900;
const H: usize = 520;
const LEFT: usize = 80;
const RIGHT: usize = 30;
const TOP: usize = 30;
const BOTTOM: usize = 50;
/// Percentile axis: 1/(1-p) up to 10^NINES.
const NINES: f64 = 5.0;

/// Series colours, in order.
const COLOURS: [[u8; 3]; 4] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40]];

struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Self {
            px: vec![255; W * H * 3],
        }
    }

    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            let i = (y as usize * W + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: bool) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.put(x, y, c);
            if thick {
                self.put(x, y + 1, c);
                self.put(x + 1, y, c);
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        self.put(x + (k as i64) * 6 + col, y + r as i64, c);
                    }
                }
            }
        }
    }
}

/// 5x7 glyphs for what the axes and legend need.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_lowercase() {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '/' => [1, 1, 2, 4, 8, 16, 16],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        'a' => [0, 0, 14, 1, 15, 17, 15],
        'b' => [16, 16, 22, 25, 17, 17, 30],
        'c' => [0, 0, 14, 16, 16, 17, 14],
        'd' => [1, 1, 13, 19, 17, 17, 15],
        'e' => [0, 0, 14, 17, 31, 16, 14],
        'h' => [16, 16, 22, 25, 17, 17, 17],
        'i' => [4, 0, 12, 4, 4, 4, 14],
        'k' => [16, 16, 18, 20, 24, 20, 18],
        'l' => [12, 4, 4, 4, 4, 4, 14],
        'm' => [0, 0, 26, 21, 21, 17, 17],
        'n' => [0, 0, 22, 25, 17, 17, 17],
        'o' => [0, 0, 14, 17, 17, 17, 14],
        'p' => [0, 0, 30, 17, 30, 16, 16],
        'q' => [0, 0, 13, 19, 15, 1, 1],
        'r' => [0, 0, 22, 25, 16, 16, 16],
        's' => [0, 0, 14, 16, 14, 1, 30],
        't' => [8, 8, 28, 8, 8, 9, 6],
        'u' | 'µ' => [0, 0, 17, 17, 17, 19, 13],
        'x' => [0, 0, 17, 10, 4, 10, 17],
        'y' => [0, 0, 17, 17, 15, 1, 14],
        'w' => [0, 0, 17, 17, 21, 21, 10],
        'g' => [0, 0, 15, 17, 15, 1, 14],
        'f' => [6, 9, 8, 28, 8, 8, 8],
        _ => [0; 7],
    }
}

fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3}s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.3}ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.3}us", ns / 1e3)
    } else {
        format!("{ns:.0}ns")
    }
}

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
    let mut c = Canvas::new();
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
    let grey = [200, 200, 200];
    let black = [0, 0, 0];
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
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, W as u32, H as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(&c.px).map_err(|e| e.to_string())?;
    }
    Ok(out)
}
