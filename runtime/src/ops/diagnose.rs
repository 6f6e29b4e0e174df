//! `quire diagnose`: two scrapes of a node's `/metrics`, a CPU profile
//! taken between them and the host's load, read by rules that say in words
//! which shard, agent or queue is the bottleneck. Pure: the rules are
//! handed what was measured and tested without a node.

use std::fmt;

use super::Scrape;
use crate::profile::CpuProfile;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Something is broken now.
    Critical,
    /// A bottleneck or a loss.
    Warning,
    /// Worth knowing.
    Info,
}

/// One thing diagnosis found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// What it is about: `shard 1`, `agent slow-7`, `host`.
    pub subject: String,
    /// What was seen and what to do, in words.
    pub says: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "WARNING",
            Severity::Info => "info",
        };
        write!(f, "{level:<8} {}: {}", self.subject, self.says)
    }
}

/// The host's load over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostLoad {
    /// CPUs online.
    pub cpus: usize,
    /// One-minute load average at the end.
    pub load_average: f64,
    /// Share of CPU time the hypervisor took (steal), 0-1.
    pub steal_share: f64,
}

/// What diagnosis is given.
pub struct Observations<'a> {
    /// `/metrics` at the window's start.
    pub before: &'a Scrape,
    /// `/metrics` at its end.
    pub after: &'a Scrape,
    /// The window's length (s).
    pub seconds: f64,
    /// A CPU profile of the window, when one could be taken.
    pub profile: Option<&'a CpuProfile>,
    /// The host, when read.
    pub host: Option<HostLoad>,
}

/// A handler p99 over this is a slow agent (s).
const SLOW_HANDLER_S: f64 = 1e-3;
/// A shard busier than this is saturated.
const SATURATED: f64 = 0.85;
/// An agent taking this share of its shard's samples is that shard's load.
const HOT_AGENT: f64 = 0.25;

/// What the rules make of `o`, most severe first.
pub fn diagnose(o: &Observations<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut add = |severity, subject: String, says: String| {
        found.push(Finding {
            severity,
            subject,
            says,
        })
    };
    let shards = o.after.shards();
    let delta = |name: &str, labels: &[(&str, &str)]| {
        (o.after.sum(name, labels) - o.before.sum(name, labels)).max(0.0)
    };
    for shard in &shards {
        let s = [("shard", shard.as_str())];
        let subject = format!("shard {shard}");
        if o.after.value("quire_shard_up", &s) == Some(0.0) {
            add(
                Severity::Critical,
                subject.clone(),
                "did not answer the scrape within 1 s: its reactor is held by one task \
                 (the node's log names the agent in a \"reactor stall\" line)"
                    .into(),
            );
            continue;
        }
        if o.after.value("quire_storage_available", &s) == Some(0.0) {
            add(
                Severity::Critical,
                subject.clone(),
                "its storage partition refuses commits (full disk or I/O error): writes wait, \
                 replies reporting them are held; GET /health names the error"
                    .into(),
            );
        }
        let failures = delta("quire_commit_failures_total", &s);
        if failures > 0.0 {
            add(
                Severity::Warning,
                subject.clone(),
                format!("{failures} commits failed in the window (retried until they succeed)"),
            );
        }
        let busy = delta("quire_shard_busy_seconds_total", &s) / o.seconds.max(1e-9);
        let profiled = o
            .profile
            .and_then(|p| p.shards.iter().find(|p| p.shard.to_string() == *shard));
        // The profile's share leaves idle spinning out; the counter does not.
        let busy = profiled.map_or(busy, |p| p.busy_share);
        if busy >= SATURATED {
            add(
                Severity::Warning,
                subject.clone(),
                format!(
                    "saturated: busy {:.0}% of the window; messages to its agents wait in line",
                    busy * 100.0
                ),
            );
        }
        if let Some(p) = profiled {
            for e in p.entries.iter().filter(|e| e.share >= HOT_AGENT) {
                if let Some(agent) = e.what.strip_prefix("agent ") {
                    add(
                        if busy >= SATURATED {
                            Severity::Warning
                        } else {
                            Severity::Info
                        },
                        format!("agent {agent}"),
                        format!(
                            "takes {:.0}% of shard {shard}'s time: the bottleneck of that shard \
                             (make its handler cheaper, or split its work over several agents, \
                             which spread over the shards)",
                            e.share * 100.0
                        ),
                    );
                }
            }
        }
        let p99 = o
            .after
            .value(
                "quire_message_processing_seconds",
                &[("shard", shard), ("quantile", "0.99")],
            )
            .unwrap_or(0.0);
        if p99 >= SLOW_HANDLER_S {
            add(
                Severity::Warning,
                subject.clone(),
                format!(
                    "handlers are slow: p99 {:.2} ms per message (every agent behind them waits)",
                    p99 * 1e3
                ),
            );
        }
        let capacity = o
            .after
            .value("quire_mailbox_capacity_messages", &s)
            .unwrap_or(0.0);
        let fullest = o
            .after
            .value("quire_mailbox_fullest_messages", &s)
            .unwrap_or(0.0);
        if capacity > 0.0 && fullest / capacity >= 0.8 {
            let who = profiled
                .and_then(|p| p.fullest_mailbox.as_ref())
                .map_or_else(|| "one agent".to_string(), |(a, _)| format!("agent {a}"));
            add(
                Severity::Warning,
                subject.clone(),
                format!(
                    "a mailbox is {:.0}% full ({who}: {fullest} of {capacity}): its senders will \
                     get queue_full",
                    100.0 * fullest / capacity
                ),
            );
        }
        for sample in o.after.select("quire_messages_rejected_total", &s) {
            let Some(reason) = sample.labels.get("reason") else {
                continue;
            };
            let n = delta(
                "quire_messages_rejected_total",
                &[("shard", shard), ("reason", reason)],
            );
            if n > 0.0 {
                add(
                    Severity::Warning,
                    subject.clone(),
                    format!("refused {n} messages as {reason} in the window"),
                );
            }
        }
        let timeouts = delta("quire_call_timeouts_total", &s);
        if timeouts > 0.0 {
            add(
                Severity::Warning,
                subject.clone(),
                format!("{timeouts} calls timed out in the window"),
            );
        }
        let stalls = delta("quire_reactor_stalls_total", &s);
        if stalls > 0.0 {
            add(
                Severity::Warning,
                subject.clone(),
                format!(
                    "{stalls} reactor stalls in the window (longest so far {:.1} ms); the log \
                     names the agent of each",
                    o.after
                        .value("quire_reactor_max_stall_seconds", &s)
                        .unwrap_or(0.0)
                        * 1e3
                ),
            );
        }
        let nudges = delta("quire_watchdog_nudges_total", &s);
        if nudges > 0.0 {
            add(
                Severity::Info,
                subject.clone(),
                format!("the watchdog woke its sleeping reactor {nudges} times (a lost wake-up)"),
            );
        }
        let rescues = delta("quire_reactor_rescues_total", &s);
        if rescues > 0.0 {
            add(
                Severity::Info,
                subject.clone(),
                format!("its heartbeat found work a lost wake-up had left waiting {rescues} times"),
            );
        }
    }
    let pauses = shards
        .first()
        .map_or(0.0, |s| delta("quire_host_pauses_total", &[("shard", s)]));
    if pauses > 0.0 {
        add(
            Severity::Warning,
            "host".into(),
            format!(
                "held the whole process up {pauses} times past 25 ms (steal, swapping, a stop)"
            ),
        );
    }
    if let Some(h) = o.host {
        if h.steal_share >= 0.05 {
            add(
                Severity::Warning,
                "host".into(),
                format!(
                    "the hypervisor took {:.0}% of the CPU time (steal): latency is the host's",
                    h.steal_share * 100.0
                ),
            );
        }
        if h.cpus > 0 && h.load_average > h.cpus as f64 {
            add(
                Severity::Warning,
                "host".into(),
                format!(
                    "load average {:.1} over {} CPUs: other programs compete with the shards",
                    h.load_average, h.cpus
                ),
            );
        }
    }
    found.sort_by_key(|f| f.severity);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::cpu::{ProfileEntry, ShardCpuProfile};

    fn page(busy: f64, rejected: u64, fullest: u64) -> Scrape {
        Scrape::parse(&format!(
            "quire_shard_up{{shard=\"0\"}} 1\nquire_shard_up{{shard=\"1\"}} 0\n\
             quire_shard_busy_seconds_total{{shard=\"0\"}} {busy}\n\
             quire_messages_rejected_total{{shard=\"0\",reason=\"queue_full\"}} {rejected}\n\
             quire_mailbox_capacity_messages{{shard=\"0\"}} 100\n\
             quire_mailbox_fullest_messages{{shard=\"0\"}} {fullest}\n\
             quire_message_processing_seconds{{shard=\"0\",quantile=\"0.99\"}} 0.004\n"
        ))
        .unwrap()
    }

    #[test]
    fn the_rules_name_the_shard_the_agent_and_the_queue() {
        let before = page(1.0, 5, 0);
        let after = page(2.9, 9, 95);
        let profile = CpuProfile {
            seconds: 2.0,
            hz: 100,
            shards: vec![ShardCpuProfile {
                shard: 0,
                samples: 200,
                cpu_seconds: 1.9,
                busy_share: 0.95,
                entries: vec![ProfileEntry {
                    what: "agent slow".into(),
                    samples: 180,
                    share: 0.9,
                }],
                fullest_mailbox: Some(("slow".into(), 95)),
            }],
        };
        let found = diagnose(&Observations {
            before: &before,
            after: &after,
            seconds: 2.0,
            profile: Some(&profile),
            host: Some(HostLoad {
                cpus: 2,
                load_average: 3.5,
                steal_share: 0.0,
            }),
        });
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        let has = |s: &str| text.iter().any(|t| t.contains(s));
        assert_eq!(found[0].severity, Severity::Critical, "{text:#?}");
        assert!(found[0].says.contains("did not answer"), "{text:#?}");
        assert!(has("shard 0: saturated: busy 95%"), "{text:#?}");
        assert!(has("agent slow: takes 90% of shard 0's time"), "{text:#?}");
        assert!(has("95% full (agent slow: 95 of 100)"), "{text:#?}");
        assert!(has("refused 4 messages as queue_full"), "{text:#?}");
        assert!(has("p99 4.00 ms"), "{text:#?}");
        assert!(has("load average 3.5 over 2 CPUs"), "{text:#?}");
    }

    #[test]
    fn a_quiet_node_has_nothing_to_say() {
        let quiet = Scrape::parse("quire_shard_up{shard=\"0\"} 1\n").unwrap();
        let found = diagnose(&Observations {
            before: &quiet,
            after: &quiet,
            seconds: 1.0,
            profile: None,
            host: None,
        });
        assert!(found.is_empty(), "{found:?}");
    }
}
