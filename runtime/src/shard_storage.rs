//! A shard's side of storage: recovery at start, and the commit loop that
//! moves the shard's journal into its partition without ever blocking the
//! reactor.
//!
//! The shard journals writes in memory (deployments, agent state, durable
//! messages accepted and finished). The **committer** task takes them in
//! batches by the group-commit policy and runs each commit, fsync included,
//! on glommio's blocking thread pool; the dispatcher keeps routing while the
//! disk works. One commit runs at a time, so writes that arrive meanwhile
//! make the next batch bigger: the busier the shard, the more messages each
//! fsync covers.
//!
//! Acknowledgements wait on journal positions: a durable send or a deploy
//! is answered once a commit that ends at or after the position of its
//! write has succeeded, and so is a reply to a client (output commit, held
//! by the core: [`ShardCore::commit_reached`]).
//!
//! A failed commit (disk full, I/O error) is not the end: every waiting
//! acknowledgement and held reply is answered with the failure (the client
//! learns its outcome is not known to be durable), the shard refuses
//! durable sends and deploys and answers state-changing calls
//! `storage_unavailable` while it lasts, and the committer retries the
//! *same* batch (then everything journaled since) with a growing pause
//! until the disk takes it again. The partition reopens its file before a
//! retry, so redb's rollback to the last durable commit is all the disk
//! ever holds besides whole batches in journal order: nothing acknowledged
//! is lost, and the shard resumes without a restart.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use hdrhistogram::Histogram;
use quire_shards::wasm::WASM_PATTERN_KIND;
use quire_shards::{new_latency_histogram, AgentId, ShardCore, ShardStats, MAX_TRACKED_NS};
use quire_storage::{FlushDecision, GroupCommit, Partition, Recovered, WriteBatch};

use crate::agent_kinds::AgentKinds;
use crate::signal::Signal;

/// How often a shard looks for a finished commit besides being woken.
const COMMIT_POLL: Duration = Duration::from_millis(1);
/// The first pause before a failed commit is tried again; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Runs once the writes up to a journal position are committed (`Ok`) or
/// can no longer be (`Err` with the reason).
pub(crate) type Ack = Box<dyn FnOnce(Result<(), Arc<str>>)>;

/// What a shard's storage needs from the node.
pub(crate) struct StorageSetup {
    pub partition: Arc<Partition>,
    pub recovered: Recovered,
    pub read_time: Duration,
    pub policy: GroupCommit,
}

/// What one shard found in its partition at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The shard.
    pub shard: usize,
    /// Agents rebuilt.
    pub agents: usize,
    /// Agents whose kind failed to build (logged, left in the partition).
    pub agents_failed: usize,
    /// State entries put back.
    pub state_entries: usize,
    /// Bytes of state put back.
    pub state_bytes: u64,
    /// Durable messages queued again.
    pub redelivered: usize,
    /// Reading the partition.
    pub read_time: Duration,
    /// Rebuilding agents, state and queues from what was read.
    pub rebuild_time: Duration,
}

impl RecoveryReport {
    /// Read plus rebuild.
    pub fn total_time(&self) -> Duration {
        self.read_time + self.rebuild_time
    }
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "shard {} recovered {} agents, {} state entries ({:.1} MiB), {} messages to redeliver in {:.1} ms (read {:.1} ms, rebuild {:.1} ms)",
            self.shard,
            self.agents,
            self.state_entries,
            self.state_bytes as f64 / (1 << 20) as f64,
            self.redelivered,
            self.total_time().as_secs_f64() * 1e3,
            self.read_time.as_secs_f64() * 1e3,
            self.rebuild_time.as_secs_f64() * 1e3,
        )?;
        if self.agents_failed > 0 {
            write!(f, "; {} agents failed to build", self.agents_failed)?;
        }
        Ok(())
    }
}

/// Rebuilds a shard from what its partition held: agents first, then their
/// state, the de-duplication window, and last the unfinished messages.
pub(crate) fn restore(
    core: &mut ShardCore,
    setup: &mut StorageSetup,
    kinds: &AgentKinds,
) -> RecoveryReport {
    let started = Instant::now();
    let rec = std::mem::take(&mut setup.recovered);
    let mut report = RecoveryReport {
        shard: core.shard() as usize,
        read_time: setup.read_time,
        state_bytes: rec.state_bytes,
        ..RecoveryReport::default()
    };
    for record in &rec.agents {
        if record.kind == WASM_PATTERN_KIND {
            // A name pattern every shard keeps, not an agent of this one.
            if let Err(e) = crate::wasm_agents::restore_pattern(record) {
                report.agents_failed += 1;
                tracing::error!(shard = report.shard, pattern = %record.name, "cannot restore pattern: {e}");
            }
            continue;
        }
        let built = kinds
            .build(record)
            .map_err(|e| e.to_string())
            .and_then(|agent| {
                core.restore_agent(AgentId::from(record.name.as_str()), agent)
                    .map_err(|e| e.to_string())
            });
        match built {
            Ok(()) => report.agents += 1,
            Err(e) => {
                report.agents_failed += 1;
                tracing::error!(shard = report.shard, agent = %record.name, "cannot rebuild agent: {e}");
            }
        }
    }
    for entry in rec.state {
        if core.restore_state(&AgentId::from(entry.agent.as_str()), entry.key, entry.value) {
            report.state_entries += 1;
        }
    }
    core.restore_dedup(rec.dedup.iter().copied(), rec.dedup_next);
    for msg in rec.inbox {
        // A message for an agent that is gone is dead-lettered (and
        // journaled as finished) by the core.
        if core.redeliver(msg).is_ok() {
            report.redelivered += 1;
        }
    }
    report.rebuild_time = started.elapsed();
    report
}

/// A shard's commit state.
pub(crate) struct ShardStorage {
    partition: Arc<Partition>,
    policy: GroupCommit,
    /// Rung when the journal grows (or the shard stops).
    pub kick: Signal,
    acks: RefCell<VecDeque<(u64, Ack)>>,
    committed: Cell<u64>,
    seen: Cell<u64>,
    /// When the oldest uncommitted write was journaled.
    first_pending: Cell<Option<Instant>>,
    /// Why commits fail, until one succeeds again.
    failed: RefCell<Option<Arc<str>>>,
    /// The batch a failed commit could not write: tried again before
    /// anything journaled after it.
    retry: RefCell<Option<(WriteBatch, u64)>>,
    /// The pause before the next retry.
    backoff: Cell<Duration>,
    figures: RefCell<CommitFigures>,
}

struct CommitFigures {
    commits: u64,
    messages: u64,
    mutations: u64,
    failures: u64,
    latency_ns: Histogram<u64>,
}

impl ShardStorage {
    pub fn new(partition: Arc<Partition>, policy: GroupCommit) -> Self {
        Self {
            partition,
            policy,
            kick: Signal::default(),
            acks: RefCell::new(VecDeque::new()),
            committed: Cell::new(0),
            seen: Cell::new(0),
            first_pending: Cell::new(None),
            failed: RefCell::new(None),
            retry: RefCell::new(None),
            backoff: Cell::new(RETRY_FIRST),
            figures: RefCell::new(CommitFigures {
                commits: 0,
                messages: 0,
                mutations: 0,
                failures: 0,
                latency_ns: new_latency_histogram(),
            }),
        }
    }

    /// Called after the core ran: wakes the committer when the journal grew.
    #[inline]
    pub fn note_writes(&self, position: u64) {
        if position != self.seen.get() {
            self.seen.set(position);
            if self.first_pending.get().is_none() {
                self.first_pending.set(Some(Instant::now()));
            }
            self.kick.notify();
        }
    }

    /// Runs `ack` once everything journaled up to `position` is committed.
    pub fn ack_after(&self, position: u64, ack: Ack) {
        if let Some(reason) = self.failed.borrow().clone() {
            ack(Err(reason));
        } else if position <= self.committed.get() {
            ack(Ok(()));
        } else {
            self.acks.borrow_mut().push_back((position, ack));
        }
    }

    /// Why the partition takes no writes right now (a commit failed and
    /// no retry has succeeded yet).
    pub fn failure(&self) -> Option<Arc<str>> {
        self.failed.borrow().clone()
    }

    /// Commits, failed commits, and their latency summarised (for a scrape:
    /// the histogram is not copied).
    pub fn commit_figures(&self) -> (u64, u64, crate::metrics::LatencySummary) {
        let f = self.figures.borrow();
        (
            f.commits,
            f.failures,
            crate::metrics::LatencySummary::of_ns(&f.latency_ns),
        )
    }

    /// Adds the commit figures to a copy of the shard's stats.
    pub fn fill(&self, stats: &mut ShardStats) {
        let f = self.figures.borrow();
        stats.commits = f.commits;
        stats.committed_messages = f.messages;
        stats.committed_mutations = f.mutations;
        stats.commit_failures = f.failures;
        stats.commit_latency_ns = f.latency_ns.clone();
    }

    /// The commit loop; returns once `stopped()` and the journal is empty
    /// (or, with the disk still failing, once stopped: what is left is
    /// lost with the process, and nothing of it was acknowledged). `work`
    /// is rung when replies were released, so the dispatcher sends them.
    pub async fn run(&self, core: &RefCell<ShardCore>, work: &Signal, stopped: impl Fn() -> bool) {
        loop {
            let stopping = stopped();
            if self.retry.borrow().is_some() {
                if !stopping {
                    // A stop cuts the pause short: one more try, then out.
                    future::or(glommio::timer::sleep(self.backoff.get()), async {
                        while !stopped() {
                            glommio::timer::sleep(Duration::from_millis(10)).await;
                        }
                    })
                    .await;
                }
                self.commit_next(core, work).await;
                if stopped() && self.retry.borrow().is_some() {
                    tracing::error!(
                        "shard stops with writes its disk did not take; none of them was acknowledged"
                    );
                    return;
                }
                continue;
            }
            let (writes, messages) = core.borrow().pending_writes();
            let age = self
                .first_pending
                .get()
                .map_or(Duration::ZERO, |t| t.elapsed());
            let decision = match self.policy.decide(writes, messages, age) {
                // On the way out everything journaled is committed now.
                FlushDecision::After(_) if stopping => FlushDecision::Now,
                // Replies wait for this commit (output commit): waiting for
                // a bigger batch would only make them later. Writes that
                // arrive during the fsync still join the next batch.
                FlushDecision::After(_) if core.borrow().held_replies() > 0 => FlushDecision::Now,
                d => d,
            };
            match decision {
                FlushDecision::Idle if stopping => return,
                FlushDecision::Idle => self.kick.wait().await,
                FlushDecision::After(wait) => {
                    future::or(glommio::timer::sleep(wait), self.kick.wait()).await;
                }
                FlushDecision::Now => self.commit_next(core, work).await,
            }
        }
    }

    async fn commit_next(&self, core: &RefCell<ShardCore>, work: &Signal) {
        let retried = self.retry.borrow_mut().take();
        let (batch, end) = match retried {
            Some(taken) => taken,
            None => {
                let mut core = core.borrow_mut();
                let taken = core.take_writes(self.policy.max_messages());
                let left = core.pending_writes().0;
                self.first_pending.set((left > 0).then(Instant::now));
                taken
            }
        };
        let (mutations, messages) = (batch.len() as u64, batch.messages() as u64);
        let partition = self.partition.clone();
        let started = Instant::now();
        let mut commit = std::pin::pin!(glommio::executor().spawn_blocking(move || {
            let result = partition.commit(&batch, true);
            (batch, result)
        }));
        // glommio 0.9 can miss the wake-up of a sleeping reactor when a
        // blocking-pool job completes (seen here about once in ten test
        // runs: the shard slept forever on a finished commit). A tick while
        // a commit is in flight makes the reactor look again; it costs a
        // timer per millisecond only while the disk works.
        let (batch, result) = loop {
            let tick = async {
                glommio::timer::sleep(COMMIT_POLL).await;
                None
            };
            if let Some(r) = future::or(async { Some((&mut commit).await) }, tick).await {
                break r;
            }
        };
        let elapsed = started.elapsed();
        let outcome = match result {
            Ok(_) => {
                let mut f = self.figures.borrow_mut();
                f.commits += 1;
                f.messages += messages;
                f.mutations += mutations;
                let ns = (elapsed.as_nanos() as u64).clamp(1, MAX_TRACKED_NS);
                f.latency_ns.saturating_record(ns);
                drop(f);
                if self.failed.borrow_mut().take().is_some() {
                    tracing::warn!("storage is back: the retried commit succeeded; the shard takes writes again");
                }
                self.backoff.set(RETRY_FIRST);
                self.committed.set(end);
                if core.borrow_mut().commit_reached(end) > 0 {
                    work.notify();
                }
                Ok(())
            }
            Err(e) => {
                self.figures.borrow_mut().failures += 1;
                let first = self.failed.borrow().is_none();
                if first {
                    tracing::error!(
                        "{e}; the shard refuses durable sends and deploys and answers state-changing calls storage_unavailable, and retries the commit"
                    );
                } else {
                    self.backoff.set((self.backoff.get() * 2).min(RETRY_MAX));
                }
                let reason: Arc<str> = e.to_string().into();
                *self.failed.borrow_mut() = Some(reason.clone());
                *self.retry.borrow_mut() = Some((batch, end));
                if first {
                    core.borrow_mut().storage_failed();
                    work.notify();
                }
                Err(reason)
            }
        };
        let ready: Vec<Ack> = {
            let mut acks = self.acks.borrow_mut();
            let mut ready = Vec::new();
            while acks
                .front()
                .is_some_and(|(pos, _)| *pos <= end || outcome.is_err())
            {
                ready.push(acks.pop_front().expect("front exists").1);
            }
            ready
        };
        for ack in ready {
            ack(outcome.clone());
        }
    }
}
