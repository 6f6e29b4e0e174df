//! Prometheus text exposition (format 0.0.4) of every shard's samples: a
//! pure function, tested without sockets.
//!
//! Each metric gets one `# HELP` and `# TYPE` line, then one line per shard
//! (and label), `shard` always the first label. Latency distributions are
//! Prometheus summaries: a line per quantile, then `_sum` and `_count`.

use std::fmt::Write;

use super::{SampleKind, ShardMetrics};

/// Renders the samples of every shard, plus node-wide gauges `node` (name,
/// help, value).
///
/// ```
/// use quire_runtime::metrics::{render, Sample, SampleKind, ShardMetrics};
/// let shard = |i, v| ShardMetrics {
///     shard: i,
///     samples: vec![Sample {
///         name: "quire_messages_handled_total",
///         help: "Messages handed to an agent's handler on the shard.",
///         kind: SampleKind::Counter,
///         label: None,
///         value: v,
///     }],
///     summaries: vec![],
///     storage_failure: None,
/// };
/// let text = render(&[shard(0, 5.0), shard(1, 7.0)], &[]);
/// assert!(text.contains("# TYPE quire_messages_handled_total counter\n"));
/// assert!(text.contains("quire_messages_handled_total{shard=\"0\"} 5\n"));
/// assert!(text.contains("quire_messages_handled_total{shard=\"1\"} 7\n"));
/// ```
pub fn render(shards: &[ShardMetrics], node: &[(&str, &str, f64)]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Metric names in the order they first appear.
    let mut names: Vec<(&str, &str, &str)> = Vec::new();
    let mut note = |name: &'static str, help: &'static str, kind: &'static str| match names
        .iter_mut()
        .find(|(n, _, _)| *n == name)
    {
        Some(entry) if entry.1.is_empty() => entry.1 = help,
        Some(_) => {}
        None => names.push((name, help, kind)),
    };
    for m in shards {
        for s in &m.samples {
            let kind = match s.kind {
                SampleKind::Counter => "counter",
                SampleKind::Gauge => "gauge",
            };
            note(s.name, s.help, kind);
        }
        for s in &m.summaries {
            note(s.name, s.help, "summary");
        }
    }
    for (name, help, value) in node {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {}", number(*value));
    }
    for (name, help, kind) in names {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for m in shards {
            for s in m.samples.iter().filter(|s| s.name == name) {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    labels(
                        m.shard,
                        s.label.as_ref().map(|(k, v)| (*k, v.as_ref())),
                        None
                    ),
                    number(s.value)
                );
            }
            for s in m.summaries.iter().filter(|s| s.name == name) {
                for (q, v) in &s.summary.quantiles {
                    let _ = writeln!(
                        out,
                        "{name}{} {}",
                        labels(m.shard, s.label, Some(*q)),
                        number(*v)
                    );
                }
                let plain = labels(m.shard, s.label, None);
                let _ = writeln!(out, "{name}_sum{plain} {}", number(s.summary.sum_seconds));
                let _ = writeln!(out, "{name}_count{plain} {}", s.summary.count);
            }
        }
    }
    out
}

fn labels(shard: u16, label: Option<(&str, &str)>, quantile: Option<f64>) -> String {
    let mut l = format!("{{shard=\"{shard}\"");
    if let Some((k, v)) = label {
        let _ = write!(l, ",{k}=\"{}\"", escape_label(v));
    }
    if let Some(q) = quantile {
        let _ = write!(l, ",quantile=\"{q}\"");
    }
    l.push('}');
    l
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{LatencySummary, Sample, SummarySample};

    #[test]
    fn summaries_have_quantiles_sum_and_count_and_one_help_per_metric() {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        h.record(2_000).unwrap();
        let shard = |i| ShardMetrics {
            shard: i,
            samples: vec![Sample {
                name: "quire_messages_rejected_total",
                help: "Messages refused, by reason.",
                kind: SampleKind::Counter,
                label: Some(("reason", "queue_full".into())),
                value: 3.0,
            }],
            summaries: vec![SummarySample {
                name: "quire_routing_latency_seconds",
                help: "Round trips.",
                label: Some(("scope", "local")),
                summary: LatencySummary::of_ns(&h),
            }],
            storage_failure: None,
        };
        let text = render(&[shard(0), shard(1)], &[("quire_shards", "Shards.", 2.0)]);
        assert_eq!(
            text.matches("# HELP quire_routing_latency_seconds").count(),
            1
        );
        assert!(text.contains("# TYPE quire_routing_latency_seconds summary\n"));
        assert!(text.contains(
            "quire_routing_latency_seconds{shard=\"1\",scope=\"local\",quantile=\"0.99\"} 0.000002\n"
        ));
        assert!(
            text.contains("quire_routing_latency_seconds_count{shard=\"0\",scope=\"local\"} 1\n")
        );
        assert!(
            text.contains("quire_messages_rejected_total{shard=\"0\",reason=\"queue_full\"} 3\n")
        );
        assert!(text.starts_with(
            "# HELP quire_shards Shards.\n# TYPE quire_shards gauge\nquire_shards 2\n"
        ));
        // Every non-comment line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
