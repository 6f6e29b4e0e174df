//! Per-shard counters and latency histograms.
//!
//! Each shard records into its own [`ShardStats`] with plain integer adds and
//! one histogram record per completed call: no atomics, no locks, no
//! cross-shard traffic. A reader asks the shard for a copy and merges copies.

use hdrhistogram::Histogram;

use crate::error::Rejection;

/// Highest latency a histogram tracks (60 s in ns); larger values are clamped.
pub const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds, 3 significant digits.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("static histogram bounds are valid")
}

/// What one shard has counted since it started.
///
/// The accounting identity, summed over every shard of a quiescent node:
/// `sent == handled + rejected_total()`. Every ordinary message is either
/// handled by an agent or rejected back to its sender with a reason.
#[derive(Debug, Clone)]
pub struct ShardStats {
    /// The shard these figures belong to.
    pub shard: u16,
    /// Ordinary messages (sends and calls) emitted on this shard by agents,
    /// clients and timers, accepted or not.
    pub sent: u64,
    /// Ordinary messages handed to an agent's handler on this shard.
    pub handled: u64,
    /// Ordinary messages rejected on this shard, by reason ([`Rejection::index`]).
    pub rejected: [u64; Rejection::ALL.len()],
    /// Replies delivered to a waiting caller.
    pub replies: u64,
    /// Replies or bounces that arrived after their call had timed out.
    pub late_replies: u64,
    /// Calls that ended in a timeout.
    pub call_timeouts: u64,
    /// Control messages whose receiver no longer existed.
    pub control_dropped: u64,
    /// Handler panics caught (the message is rejected as `AgentFailed`).
    pub agent_panics: u64,
    /// Envelopes put on the mesh towards other shards.
    pub cross_shard_out: u64,
    /// Envelopes received from other shards.
    pub cross_shard_in: u64,
    /// Batches put on the mesh (`cross_shard_out / batches_out` is the mean batch).
    pub batches_out: u64,
    /// Envelopes this shard put on links to other nodes.
    pub cross_node_out: u64,
    /// Envelopes that came in from other nodes.
    pub cross_node_in: u64,
    /// Agents registered now.
    pub agents: u64,
    /// Messages waiting in this shard's mailboxes now.
    pub queued: u64,
    /// Durable messages accepted (journaled) on this shard.
    pub durable_accepted: u64,
    /// Durable messages refused as already accepted or finished (retries).
    pub durable_duplicates: u64,
    /// Durable messages queued again after a restart.
    pub durable_redelivered: u64,
    /// Commits of this shard's journal to its partition.
    pub commits: u64,
    /// Durable messages those commits accepted.
    pub committed_messages: u64,
    /// Mutations those commits applied.
    pub committed_mutations: u64,
    /// Commits that failed (the partition then takes no more writes).
    pub commit_failures: u64,
    /// Time per commit, fsync included, in ns.
    pub commit_latency_ns: Histogram<u64>,
    /// Round trips of calls within this node completed on this shard (call
    /// to reply; agents' calls sampled one in [`crate::LATENCY_SAMPLE_EVERY`],
    /// clients' calls all), in ns.
    pub call_latency_ns: Histogram<u64>,
    /// Round trips of agents' calls to agents on other nodes (sampled the
    /// same way), in ns.
    pub remote_call_latency_ns: Histogram<u64>,
    /// Time agents' handlers took per message (one message in
    /// [`crate::LATENCY_SAMPLE_EVERY`] timed), in ns.
    pub handle_ns: Histogram<u64>,
}

impl ShardStats {
    /// Empty figures for `shard`.
    pub fn new(shard: u16) -> Self {
        Self {
            shard,
            sent: 0,
            handled: 0,
            rejected: [0; Rejection::ALL.len()],
            replies: 0,
            late_replies: 0,
            call_timeouts: 0,
            control_dropped: 0,
            agent_panics: 0,
            cross_shard_out: 0,
            cross_shard_in: 0,
            batches_out: 0,
            cross_node_out: 0,
            cross_node_in: 0,
            agents: 0,
            queued: 0,
            durable_accepted: 0,
            durable_duplicates: 0,
            durable_redelivered: 0,
            commits: 0,
            committed_messages: 0,
            committed_mutations: 0,
            commit_failures: 0,
            commit_latency_ns: new_latency_histogram(),
            call_latency_ns: new_latency_histogram(),
            remote_call_latency_ns: new_latency_histogram(),
            handle_ns: new_latency_histogram(),
        }
    }

    /// Messages rejected for `reason`.
    pub fn rejected_for(&self, reason: Rejection) -> u64 {
        self.rejected[reason.index()]
    }

    /// All rejections, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Dead letters: messages whose deadline passed before they were handled.
    pub fn dead_letters(&self) -> u64 {
        self.rejected_for(Rejection::Expired)
    }

    pub(crate) fn reject(&mut self, reason: Rejection) {
        self.rejected[reason.index()] += 1;
    }

    /// Node-wide totals of several shards' figures (`shard` is 0).
    ///
    /// ```
    /// use quire_shards::ShardStats;
    /// let mut a = ShardStats::new(0);
    /// a.sent = 2;
    /// let mut b = ShardStats::new(1);
    /// b.sent = 3;
    /// assert_eq!(ShardStats::total([&a, &b]).sent, 5);
    /// ```
    pub fn total<'a>(shards: impl IntoIterator<Item = &'a ShardStats>) -> ShardStats {
        let mut total = ShardStats::new(0);
        for s in shards {
            total.merge(s);
        }
        total
    }

    /// Adds `other` into `self` (for node-wide totals; `shard` keeps its value).
    ///
    /// ```
    /// use quire_shards::ShardStats;
    /// let mut total = ShardStats::new(0);
    /// let mut one = ShardStats::new(1);
    /// one.sent = 3;
    /// one.call_latency_ns.record(1_000).unwrap();
    /// total.merge(&one);
    /// assert_eq!(total.sent, 3);
    /// assert_eq!(total.call_latency_ns.len(), 1);
    /// ```
    pub fn merge(&mut self, other: &ShardStats) {
        self.sent += other.sent;
        self.handled += other.handled;
        for (a, b) in self.rejected.iter_mut().zip(other.rejected) {
            *a += b;
        }
        self.replies += other.replies;
        self.late_replies += other.late_replies;
        self.call_timeouts += other.call_timeouts;
        self.control_dropped += other.control_dropped;
        self.agent_panics += other.agent_panics;
        self.durable_accepted += other.durable_accepted;
        self.durable_duplicates += other.durable_duplicates;
        self.durable_redelivered += other.durable_redelivered;
        self.commits += other.commits;
        self.committed_messages += other.committed_messages;
        self.committed_mutations += other.committed_mutations;
        self.commit_failures += other.commit_failures;
        let _ = self.commit_latency_ns.add(&other.commit_latency_ns);
        self.cross_shard_out += other.cross_shard_out;
        self.cross_shard_in += other.cross_shard_in;
        self.batches_out += other.batches_out;
        self.cross_node_out += other.cross_node_out;
        self.cross_node_in += other.cross_node_in;
        self.agents += other.agents;
        self.queued += other.queued;
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.call_latency_ns.add(&other.call_latency_ns);
        let _ = self
            .remote_call_latency_ns
            .add(&other.remote_call_latency_ns);
        let _ = self.handle_ns.add(&other.handle_ns);
    }
}
