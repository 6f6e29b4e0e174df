//! A sampling CPU profile of a running node: where each shard's thread
//! spends its time, by agent and by runtime activity.
//!
//! A sampler thread looks at every shard `hz` times a second for the
//! profile's duration. Each look reads three things the shard already
//! publishes or the kernel keeps: whether the shard's thread is on (or
//! waiting for) a CPU (`/proc/self/task/TID/stat`), the reactor's phase
//! ([`crate::activity::Activity`]), and whose turn it is (the core's running slot).
//! Nothing on a shard's hot path changes while profiling: the shards keep
//! making the same relaxed stores as always. The shard's CPU time over the
//! profile (the kernel's utime + stime) is reported next to the samples.
//! Slots are named by their shards once sampling ends; a slot freed and
//! taken by another agent during the profile is named after its last
//! holder.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::activity::Activity;
use crate::thread_stat::ThreadStat;
use crate::watchdog::ShardPulse;

/// What one sample of one shard saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Seen {
    /// The thread was asleep (the reactor parked, nothing to do).
    Asleep,
    /// An agent's turn, by slot (+ 1, as the core publishes it).
    Agent(usize),
    /// The runtime itself, in this phase.
    Runtime(Activity),
}

/// Classifies one look at a shard.
pub(crate) fn classify(on_cpu: bool, activity: Activity, running_slot: usize) -> Seen {
    if !on_cpu {
        Seen::Asleep
    } else if activity == Activity::Agents && running_slot > 0 {
        Seen::Agent(running_slot)
    } else {
        Seen::Runtime(activity)
    }
}

/// One line of a shard's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileEntry {
    /// `agent NAME`, `runtime: PHASE`, `idle: spinning` or `idle: asleep`.
    pub what: String,
    /// Samples that saw it.
    pub samples: u64,
    /// Its share of the shard's samples (0-1).
    pub share: f64,
}

/// One shard's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardCpuProfile {
    /// The shard.
    pub shard: usize,
    /// Samples taken.
    pub samples: u64,
    /// CPU time the shard's thread used during the profile (user + system,
    /// to the kernel's clock tick).
    pub cpu_seconds: f64,
    /// Share of samples that found the thread on a CPU doing work (neither
    /// asleep nor spinning idle), 0-1.
    pub busy_share: f64,
    /// What the samples saw, most first.
    pub entries: Vec<ProfileEntry>,
    /// The agent with the most messages waiting when sampling ended, and
    /// how many.
    pub fullest_mailbox: Option<(String, u64)>,
}

/// A CPU profile of every shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuProfile {
    /// How long it sampled (s).
    pub seconds: f64,
    /// Samples per second per shard asked for.
    pub hz: u32,
    /// Per shard, in shard order.
    pub shards: Vec<ShardCpuProfile>,
}

impl CpuProfile {
    /// The agents that took the most samples across the node, most first:
    /// (name, shard, share of that shard's samples).
    pub fn top_agents(&self) -> Vec<(&str, usize, f64)> {
        let mut all: Vec<_> = self
            .shards
            .iter()
            .flat_map(|s| {
                s.entries.iter().filter_map(move |e| {
                    e.what.strip_prefix("agent ").map(|n| (n, s.shard, e.share))
                })
            })
            .collect();
        all.sort_by(|a, b| b.2.total_cmp(&a.2));
        all
    }

    /// Lines `shard N;what samples`: the folded-stack format flame-graph
    /// tools read.
    pub fn folded(&self) -> String {
        let mut out = String::new();
        for s in &self.shards {
            for e in &s.entries {
                let what = e.what.replace([' ', ';'], "_");
                out.push_str(&format!("shard_{};{what} {}\n", s.shard, e.samples));
            }
        }
        out
    }

    /// A table for people.
    pub fn render(&self) -> String {
        let mut out = format!(
            "CPU profile: {:.1} s at {} Hz per shard\n",
            self.seconds, self.hz
        );
        for s in &self.shards {
            out.push_str(&format!(
                "shard {}: {:.2} s CPU, busy {:.1}% of {} samples\n",
                s.shard,
                s.cpu_seconds,
                s.busy_share * 100.0,
                s.samples
            ));
            if let Some((agent, n)) = &s.fullest_mailbox {
                out.push_str(&format!(
                    "  fullest mailbox: {agent}, {n} messages waiting\n"
                ));
            }
            for e in &s.entries {
                out.push_str(&format!(
                    "  {:>6.1}%  {:>7}  {}\n",
                    e.share * 100.0,
                    e.samples,
                    e.what
                ));
            }
        }
        out
    }
}

/// Counts of one shard's samples, slots not yet named.
#[derive(Debug, Default)]
pub(crate) struct RawShard {
    pub samples: u64,
    pub seen: HashMap<Seen, u64>,
    pub cpu_seconds: f64,
}

impl RawShard {
    /// The slots whose names the shard must give.
    pub fn slots(&self) -> Vec<usize> {
        let mut slots: Vec<usize> = self
            .seen
            .keys()
            .filter_map(|k| match k {
                Seen::Agent(slot) => Some(*slot),
                _ => None,
            })
            .collect();
        slots.sort_unstable();
        slots
    }

    /// The profile, with `names` for the slots (an unnamed slot is an
    /// agent gone before the profile ended).
    pub fn finish(self, shard: usize, names: &HashMap<usize, String>) -> ShardCpuProfile {
        let mut lines: HashMap<String, u64> = HashMap::new();
        let mut idle = 0;
        for (seen, n) in self.seen {
            let what = match seen {
                Seen::Asleep => {
                    idle += n;
                    "idle: asleep".to_string()
                }
                Seen::Runtime(Activity::Spin) => {
                    idle += n;
                    "idle: spinning".to_string()
                }
                Seen::Runtime(a) => format!("runtime: {}", a.as_str()),
                Seen::Agent(slot) => match names.get(&slot) {
                    Some(name) => format!("agent {name}"),
                    None => "agent (undeployed during the profile)".to_string(),
                },
            };
            *lines.entry(what).or_default() += n;
        }
        let total = self.samples.max(1) as f64;
        let mut entries: Vec<ProfileEntry> = lines
            .into_iter()
            .map(|(what, samples)| ProfileEntry {
                what,
                samples,
                share: samples as f64 / total,
            })
            .collect();
        entries.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.what.cmp(&b.what)));
        ShardCpuProfile {
            shard,
            samples: self.samples,
            cpu_seconds: self.cpu_seconds,
            busy_share: self.samples.saturating_sub(idle) as f64 / total,
            entries,
            fullest_mailbox: None,
        }
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// Samples every shard for `duration` at `hz` looks a second.
pub(crate) fn sample(pulses: &[Arc<ShardPulse>], duration: Duration, hz: u32) -> Vec<RawShard> {
    let tids: Vec<i32> = pulses
        .iter()
        .map(|p| p.tid.load(Ordering::Relaxed))
        .collect();
    let ticks_at_start: Vec<u64> = tids
        .iter()
        .map(|&t| ThreadStat::read(t).map_or(0, |s| s.cpu_ticks))
        .collect();
    let mut raw: Vec<RawShard> = pulses.iter().map(|_| RawShard::default()).collect();
    let every = Duration::from_secs_f64(1.0 / f64::from(hz.clamp(1, 10_000)));
    let start = Instant::now();
    let mut next = start;
    while next.duration_since(start) < duration {
        for ((pulse, &tid), shard) in pulses.iter().zip(&tids).zip(raw.iter_mut()) {
            // Read the phase and the slot first, then the state: a thread
            // that was working and has just gone to sleep counts asleep,
            // never as an agent that is no longer running.
            let activity = pulse.activity.get();
            let slot = pulse.running.load(Ordering::Relaxed);
            let on_cpu = ThreadStat::read(tid).is_some_and(|s| s.state == 'R');
            *shard
                .seen
                .entry(classify(on_cpu, activity, slot))
                .or_default() += 1;
            shard.samples += 1;
        }
        next += every;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Behind (the sampler was descheduled): skip the missed looks
            // rather than take them in a burst.
            next = now;
        }
    }
    let per_tick = 1.0 / clock_ticks_per_second();
    for ((shard, &tid), start_ticks) in raw.iter_mut().zip(&tids).zip(ticks_at_start) {
        let end = ThreadStat::read(tid).map_or(start_ticks, |s| s.cpu_ticks);
        shard.cpu_seconds = end.saturating_sub(start_ticks) as f64 * per_tick;
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_classified_by_state_phase_and_slot() {
        assert_eq!(classify(false, Activity::Agents, 3), Seen::Asleep);
        assert_eq!(classify(true, Activity::Agents, 3), Seen::Agent(3));
        assert_eq!(
            classify(true, Activity::Agents, 0),
            Seen::Runtime(Activity::Agents)
        );
        assert_eq!(
            classify(true, Activity::Timers, 3),
            Seen::Runtime(Activity::Timers)
        );
    }

    #[test]
    fn a_profile_names_agents_and_ranks_them() {
        let mut raw = RawShard {
            samples: 10,
            ..RawShard::default()
        };
        raw.seen.insert(Seen::Agent(4), 6);
        raw.seen.insert(Seen::Agent(9), 1);
        raw.seen.insert(Seen::Runtime(Activity::Spin), 2);
        raw.seen.insert(Seen::Asleep, 1);
        assert_eq!(raw.slots(), vec![4, 9]);
        let names = HashMap::from([(4, "slow".to_string())]);
        let shard = raw.finish(1, &names);
        assert_eq!(shard.entries[0].what, "agent slow");
        assert!((shard.entries[0].share - 0.6).abs() < 1e-9);
        assert!((shard.busy_share - 0.7).abs() < 1e-9);
        assert!(shard
            .entries
            .iter()
            .any(|e| e.what == "agent (undeployed during the profile)"));
        let profile = CpuProfile {
            seconds: 1.0,
            hz: 10,
            shards: vec![shard],
        };
        assert_eq!(profile.top_agents()[0], ("slow", 1, 0.6));
        assert!(profile.folded().contains("shard_1;agent_slow 6\n"));
        assert!(profile.render().contains("agent slow"));
    }
}
