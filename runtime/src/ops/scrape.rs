//! A `/metrics` page read back: the Prometheus text a node exports, parsed
//! into samples that diagnosis (and the monitoring checks) can look up by
//! name and labels.

use std::collections::BTreeMap;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapedSample {
    /// The series name (`_sum`, `_count` kept as part of it).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A whole page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// Every sample line, in page order.
    pub samples: Vec<ScrapedSample>,
}

/// What is wrong with a line of a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} of the metrics page is not a sample ({problem}): {text:?}")]
pub struct ScrapeError {
    /// 1-based.
    pub line: usize,
    /// The line.
    pub text: String,
    /// What is wrong.
    pub problem: &'static str,
}

impl Scrape {
    /// Parses Prometheus text format 0.0.4 as this runtime writes it.
    ///
    /// ```
    /// use quire_runtime::ops::Scrape;
    /// let page = "# TYPE quire_agents gauge\nquire_agents{shard=\"0\"} 3\n";
    /// let scrape = Scrape::parse(page).unwrap();
    /// assert_eq!(scrape.value("quire_agents", &[("shard", "0")]), Some(3.0));
    /// ```
    pub fn parse(text: &str) -> Result<Self, ScrapeError> {
        let mut samples = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |problem| ScrapeError {
                line: i + 1,
                text: raw.to_string(),
                problem,
            };
            let (series, value) = line.rsplit_once(' ').ok_or_else(|| bad("no value"))?;
            let value = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| bad("value is not a number"))?,
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .ok_or_else(|| bad("labels not closed"))?;
                    (name, parse_labels(body).ok_or_else(|| bad("bad labels"))?)
                }
            };
            samples.push(ScrapedSample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        Ok(Self { samples })
    }

    /// Samples named `name` whose labels include all of `labels`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a ScrapedSample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The one value of `name` with `labels` (the first, if several).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.select(name, labels).next().map(|s| s.value)
    }

    /// The sum of every sample of `name` with `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.select(name, labels).map(|s| s.value).sum()
    }

    /// The shards the page has figures of (`quire_shard_up`).
    pub fn shards(&self) -> Vec<String> {
        self.select("quire_shard_up", &[])
            .filter_map(|s| s.labels.get("shard").cloned())
            .collect()
    }

    /// Every series name on the page, once each.
    pub fn names(&self) -> std::collections::BTreeSet<&str> {
        self.samples.iter().map(|s| s.name.as_str()).collect()
    }
}

fn parse_labels(body: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        // The value ends at the first quote not escaped.
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_this_runtime_parse() {
        let page = "# HELP x y\n# TYPE quire_messages_rejected_total counter\n\
            quire_messages_rejected_total{shard=\"1\",reason=\"queue_full\"} 3\n\
            quire_routing_latency_seconds{shard=\"0\",scope=\"local\",quantile=\"0.99\"} 0.000002\n\
            quire_shards 2\nquire_shard_up{shard=\"0\"} 1\nquire_shard_up{shard=\"1\"} 0\n\
            odd{shard=\"0\",v=\"a\\\"b,c\"} NaN\n";
        let s = Scrape::parse(page).unwrap();
        assert_eq!(
            s.value("quire_messages_rejected_total", &[("reason", "queue_full")]),
            Some(3.0)
        );
        assert_eq!(
            s.value("quire_routing_latency_seconds", &[("quantile", "0.99")]),
            Some(0.000002)
        );
        assert_eq!(s.value("quire_shards", &[]), Some(2.0));
        assert_eq!(s.shards(), vec!["0", "1"]);
        assert_eq!(s.sum("quire_shard_up", &[]), 1.0);
        assert_eq!(s.select("odd", &[("v", "a\"b,c")]).count(), 1);
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = Scrape::parse("quire_agents{shard=\"0\" 3\n").unwrap_err();
        assert_eq!(err.line, 1);
        let err = Scrape::parse("\nquire_agents x\n").unwrap_err();
        assert_eq!((err.line, err.problem), (2, "value is not a number"));
    }
}
