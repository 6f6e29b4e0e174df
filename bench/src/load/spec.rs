//! What an open-loop run does and what it measured.

use std::time::Duration;

use hdrhistogram::Histogram;
use quire_shards::new_latency_histogram;
use serde::Serialize;

/// How generators talk to the target agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// A call per message; latency is intended send to reply.
    RequestReply,
    /// A one-way message; latency is intended send to handling.
    OneWay,
    /// Each message goes to `FAN_OUT` agents at once; latency per delivery.
    FanOut,
}

/// Targets one fan-out message reaches (fewer if there are fewer agents).
pub const FAN_OUT: usize = 8;

/// How long before a due instant the tokio generators ([`super::tokio_peer`],
/// [`super::tokio_tpc`]) stop waiting on tokio's timer and look at the clock
/// between their runtime's other tasks (`yield_now`) instead: tokio's timer
/// has a 1 ms resolution, so a generator that slept to each due instant
/// measured its own timer. Quire's generator agents wait on a shard timer
/// set to the instant itself, which the dispatcher checks between its work
/// and while it spins ([`super::quire`] says why not a self-sent message
/// per turn). Every report shows each generator's lateness.
pub const SPIN_BEFORE_DUE: std::time::Duration = std::time::Duration::from_millis(2);

/// One open-loop run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSpec {
    /// The pattern.
    pub pattern: Pattern,
    /// Target agents, spread over every shard.
    pub agents: usize,
    /// Messages per second, all generators together (fan-out: deliveries
    /// per second are `rate * FAN_OUT`).
    pub rate: u64,
    /// Measured time, after the warm-up.
    pub duration: Duration,
    /// Time at the start whose messages are not recorded.
    pub warmup: Duration,
    /// Payload bytes per message (at least 17: the timestamps ride in it).
    pub message_size: usize,
    /// Length of one interval of the interval log.
    pub interval: Duration,
    /// A burst within the run, if any.
    pub burst: Option<Burst>,
}

/// A stretch of the run at a multiple of the base rate.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Burst {
    /// Where it starts, from the first due message (warm-up included).
    pub at: Duration,
    /// How long it lasts.
    pub length: Duration,
    /// Its rate as a multiple of the base rate.
    pub factor: u64,
}

impl LoadSpec {
    /// A run of `pattern` at `rate` msg/s over `agents` agents for
    /// `duration` (1 s warm-up, 64-byte messages, 1 s intervals, no burst).
    pub fn new(pattern: Pattern, agents: usize, rate: u64, duration: Duration) -> Self {
        Self {
            pattern,
            agents,
            rate,
            duration,
            warmup: Duration::from_secs(1),
            message_size: 64,
            interval: Duration::from_secs(1),
            burst: None,
        }
    }

    /// When message `i` is due, from the first one: `i / rate`, with the
    /// burst (if any) at `factor` times the rate.
    ///
    /// ```
    /// use std::time::Duration;
    /// use quire_bench::load::{spec::Burst, LoadSpec, Pattern};
    /// let mut spec = LoadSpec::new(Pattern::OneWay, 1, 1000, Duration::from_secs(3));
    /// assert_eq!(spec.offset(500), Duration::from_millis(500));
    /// spec.burst = Some(Burst { at: Duration::from_secs(1), length: Duration::from_millis(100), factor: 10 });
    /// // 1000 before the burst, 1000 in its 100 ms, then the base rate again.
    /// assert_eq!(spec.offset(1500), Duration::from_millis(1050));
    /// assert_eq!(spec.offset(2500), Duration::from_millis(1600));
    /// ```
    pub fn offset(&self, i: u64) -> Duration {
        let at = |n: u64, rate: u64| {
            Duration::from_nanos((n as u128 * 1_000_000_000 / rate.max(1) as u128) as u64)
        };
        let Some(b) = self.burst else {
            return at(i, self.rate);
        };
        let before = (b.at.as_nanos() * self.rate as u128 / 1_000_000_000) as u64;
        let during = (b.length.as_nanos() * (self.rate * b.factor) as u128 / 1_000_000_000) as u64;
        if i < before {
            at(i, self.rate)
        } else if i < before + during {
            b.at + at(i - before, self.rate * b.factor)
        } else {
            b.at + b.length + at(i - before - during, self.rate)
        }
    }

    /// Intervals in the measured part of the run.
    pub fn intervals(&self) -> usize {
        (self
            .duration
            .as_nanos()
            .div_ceil(self.interval.as_nanos().max(1)) as usize)
            .max(1)
    }
}

/// What a run measured (latencies in ns).
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Latency from each message's intended send time.
    pub corrected: Histogram<u64>,
    /// Latency from each message's actual send time.
    pub uncorrected: Histogram<u64>,
    /// `corrected`, per interval of the measured part (by intended time).
    pub intervals: Vec<Histogram<u64>>,
    /// The generator's own lateness: from each message's intended send
    /// time to when the generator actually sent it. A ruler whose p99 here
    /// is over a few µs measures its own timer, not the system.
    pub send_lateness: Histogram<u64>,
    /// Messages (deliveries for fan-out) meant to be measured.
    pub expected: u64,
    /// Refused (a full queue) or failed.
    pub rejected: u64,
}

impl LoadResult {
    /// An empty result for `spec`.
    pub fn empty(spec: &LoadSpec) -> Self {
        Self {
            corrected: new_latency_histogram(),
            uncorrected: new_latency_histogram(),
            intervals: (0..spec.intervals())
                .map(|_| new_latency_histogram())
                .collect(),
            send_lateness: new_latency_histogram(),
            expected: 0,
            rejected: 0,
        }
    }

    /// Adds another generator's or sink's figures.
    pub fn merge(&mut self, other: &LoadResult) {
        let _ = self.corrected.add(&other.corrected);
        let _ = self.uncorrected.add(&other.uncorrected);
        let _ = self.send_lateness.add(&other.send_lateness);
        for (a, b) in self.intervals.iter_mut().zip(&other.intervals) {
            let _ = a.add(b);
        }
        self.expected += other.expected;
        self.rejected += other.rejected;
    }

    /// Measured messages that were neither answered (delivered) nor
    /// refused before the run ended.
    pub fn missing(&self) -> u64 {
        self.expected
            .saturating_sub(self.corrected.len() + self.rejected)
    }

    /// Records one measured message.
    pub fn record(
        &mut self,
        spec: &LoadSpec,
        since_measure_start: Duration,
        corrected: u64,
        uncorrected: u64,
    ) {
        let ns = corrected.max(1);
        self.corrected.saturating_record(ns);
        self.uncorrected.saturating_record(uncorrected.max(1));
        self.send_lateness
            .saturating_record(corrected.saturating_sub(uncorrected).max(1));
        let i = (since_measure_start.as_nanos() / spec.interval.as_nanos().max(1)) as usize;
        let last = self.intervals.len().saturating_sub(1);
        if let Some(h) = self.intervals.get_mut(i.min(last)) {
            h.saturating_record(ns);
        }
    }

    /// Measured messages per second (deliveries for fan-out).
    pub fn achieved_rate(&self, spec: &LoadSpec) -> f64 {
        self.corrected.len() as f64 / spec.duration.as_secs_f64()
    }
}

/// The wire layout of a load message's payload: a flag byte (1: measure
/// it), the intended and the actual send time (ns since the run's epoch,
/// little-endian), then padding.
pub mod payload {
    /// Bytes the header takes.
    pub const HEADER: usize = 17;

    /// A payload of `size` bytes (at least [`HEADER`]).
    pub fn encode(size: usize, measure: bool, intended_ns: u64, actual_ns: u64) -> Vec<u8> {
        let mut b = vec![0u8; size.max(HEADER)];
        b[0] = u8::from(measure);
        b[1..9].copy_from_slice(&intended_ns.to_le_bytes());
        b[9..17].copy_from_slice(&actual_ns.to_le_bytes());
        b
    }

    /// `(measure, intended_ns, actual_ns)` of a payload.
    pub fn decode(b: &[u8]) -> Option<(bool, u64, u64)> {
        if b.len() < HEADER {
            return None;
        }
        Some((
            b[0] == 1,
            u64::from_le_bytes(b[1..9].try_into().ok()?),
            u64::from_le_bytes(b[9..17].try_into().ok()?),
        ))
    }
}
