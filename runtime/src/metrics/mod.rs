//! Per-shard metrics: what a shard reports when scraped, as data, and its
//! Prometheus text. A leaf: the shard runtime fills it
//! (`shard_runtime::collect`), the admin endpoint ([`crate::admin_endpoint`])
//! serves it.
//!
//! Hot paths never touch this module: shards count into their own
//! [`quire_shards::ShardStats`] (plain adds, sampled hdrhistograms) as they
//! always do. A scrape sends each shard one command; the shard answers with
//! a [`ShardMetrics`] built from what it already has (latency histograms
//! are summarised on the shard, never copied), and the endpoint's own
//! thread renders the answers. Nothing is shared, nothing is locked.
//!
//! - [`summary`]: a latency histogram reduced to quantiles, sum and count;
//! - [`exposition`]: samples as Prometheus text (pure);
//! - [`stalls`]: glommio stall detection reports, counted per shard.

pub mod exposition;
pub mod stalls;
pub mod summary;

use std::time::Duration;

/// How long a scrape (or a profile's figures) waits for a shard's answer.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

pub use exposition::render;
pub use summary::LatencySummary;

/// Whether a sample only grows or may go either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Only grows (Prometheus `counter`; names end in `_total`).
    Counter,
    /// A value now (Prometheus `gauge`).
    Gauge,
}

/// One figure of one shard.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, e.g. `quire_messages_handled_total`.
    pub name: &'static str,
    /// What it counts (the `# HELP` line).
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: SampleKind,
    /// A label besides `shard`, e.g. `("reason", "queue_full")` (or an
    /// agent's name, which is not known at compile time).
    pub label: Option<(&'static str, std::borrow::Cow<'static, str>)>,
    /// The value.
    pub value: f64,
}

/// One latency distribution of one shard.
#[derive(Debug, Clone, PartialEq)]
pub struct SummarySample {
    /// Metric name, e.g. `quire_message_processing_seconds`.
    pub name: &'static str,
    /// What it measures.
    pub help: &'static str,
    /// A label besides `shard` and `quantile`.
    pub label: Option<(&'static str, &'static str)>,
    /// Quantiles, sum and count.
    pub summary: LatencySummary,
}

/// What one shard reports to a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardMetrics {
    /// The shard.
    pub shard: u16,
    /// Counters and gauges.
    pub samples: Vec<Sample>,
    /// Latency distributions.
    pub summaries: Vec<SummarySample>,
    /// Why the shard's storage takes no commits right now (`/health` says
    /// it), if it does not.
    pub storage_failure: Option<String>,
}

impl ShardMetrics {
    /// The value of the sample named `name` (with `label`, if given).
    ///
    /// ```
    /// use quire_runtime::metrics::{Sample, SampleKind, ShardMetrics};
    /// let m = ShardMetrics {
    ///     shard: 0,
    ///     samples: vec![Sample {
    ///         name: "quire_agents",
    ///         help: "Agents registered on the shard.",
    ///         kind: SampleKind::Gauge,
    ///         label: None,
    ///         value: 3.0,
    ///     }],
    ///     summaries: vec![],
    ///     storage_failure: None,
    /// };
    /// assert_eq!(m.value("quire_agents", None), Some(3.0));
    /// ```
    pub fn value(&self, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.label.as_ref().map(|(k, v)| (*k, v.as_ref())) == label)
            .map(|s| s.value)
    }
}
