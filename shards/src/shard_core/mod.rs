//! The shard state machine: registry, mailboxes, scheduling, routing decisions,
//! pending calls and timers, with no I/O and no threads.
//!
//! A runtime drives a [`ShardCore`] by feeding it messages (from agents, from
//! clients, from peer shards), calling [`ShardCore::run`] to let agents handle
//! what is queued, taking each peer's outbox to put on the mesh, and firing
//! timers when they fall due. Everything here is deterministic and tested
//! without executors or sockets (in the manner of quinn's `quinn-proto`):
//! time too, which the core reads only from the [`Clock`] it is given
//! ([`ShardCore::with_clock`]; tests pass a [`crate::ManualClock`]).
//!
//! The rooms, each an `impl ShardCore` block of its own: [`registry`] (agents,
//! slots, recovery), [`admission`] (every entry point, durable messages
//! included), [`routing`] (where an envelope goes, bounces, client calls
//! completed), [`dispatch`] (turns, handlers, replies held for output
//! commit), [`timers`] (call timeouts, delayed sends) and [`journaling`]
//! (state writes, the journal, commits reported back). This file holds the
//! types they share and the shard's lifecycle (drain, stop, figures).
//!
//! Accounting rule: every ordinary message (send or call) is counted once as
//! `sent` on the shard where it was emitted, and once as either `handled` or
//! `rejected[reason]` on the shard where its fate was decided.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use ahash::RandomState;
use bytes::Bytes;

use quire_storage::{AgentRecord, DurableMessage, Mutation, WriteBatch};

use crate::agent_id::{AgentId, ShardId};
use crate::agent_status::{AgentState, AgentStatus};
use crate::clock::Clock;
use crate::envelope::{Address, ClientTicket, Envelope, Kind, MessageId, Priority, SendOptions};
use crate::error::{CallError, CallFailure, DefinitionError, Rejection};
use crate::journal::{DurableAdmission, Journal};
use crate::mailbox::Mailbox;
use crate::output_commit::HeldReplies;
use crate::stats::ShardStats;

mod admission;
mod agent;
mod dispatch;
mod journaling;
mod registry;
mod routing;
mod timers;

pub use agent::Agent;
pub use dispatch::context::Context;
pub(crate) use dispatch::context::Current;

/// Sizes and bounds of one shard.
///
/// ```
/// use quire_shards::ShardConfig;
/// let cfg = ShardConfig { mailbox_capacity: 64, ..ShardConfig::new(0, 2) };
/// assert_eq!(cfg.shard_count, 2);
/// ```
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// This shard's index.
    pub shard: ShardId,
    /// Shards on the node (ownership depends on it).
    pub shard_count: usize,
    /// Ordinary messages one agent's mailbox holds.
    pub mailbox_capacity: usize,
    /// Envelopes waiting for the mesh towards one peer shard.
    pub outbox_capacity: usize,
    /// Calls (agents' and clients') waiting for replies on this shard.
    pub max_pending_calls: usize,
    /// Calls one agent may have waiting for replies: one agent cannot take
    /// the whole shard's table from the others and its clients.
    pub max_pending_calls_per_agent: usize,
    /// Payload bytes of ordinary messages one agent's mailbox holds.
    pub mailbox_max_bytes: usize,
    /// Messages an agent handles in one turn before others get theirs.
    pub agent_batch: usize,
    /// Handler time, as agents report it ([`Context::charge_time`]), after
    /// which the running agent's turn ends and [`ShardCore::run`] returns
    /// so the shard's other tasks run (Seastar's task quota).
    pub turn_quota: Duration,
    /// Journal deployments, agent state and durable messages for a storage
    /// partition (off when the node's durability is `none`).
    pub journal: bool,
    /// With `journal`: replies to clients wait for the commit of what their
    /// handler wrote (output commit). Off, a crash can roll back state a
    /// reply reported; only for measuring what output commit costs.
    pub output_commit: bool,
    /// Finished durable message ids remembered for de-duplication.
    pub dedup_window: usize,
    /// Mailbox slots above `mailbox_capacity` that only High and Critical
    /// messages may take.
    pub urgent_headroom: usize,
    /// Agents with High or Critical mail get their turn before agents with
    /// only Normal and Low mail (a second ready queue); off: one FIFO.
    pub express_scheduling: bool,
}

impl ShardConfig {
    /// Defaults for shard `shard` of `shard_count`.
    pub fn new(shard: ShardId, shard_count: usize) -> Self {
        Self {
            shard,
            shard_count,
            mailbox_capacity: 1024,
            outbox_capacity: 16 * 1024,
            max_pending_calls: 64 * 1024,
            max_pending_calls_per_agent: 4096,
            mailbox_max_bytes: 16 << 20,
            agent_batch: 32,
            turn_quota: Duration::from_micros(500),
            journal: false,
            output_commit: true,
            dedup_window: 256 * 1024,
            urgent_headroom: 0,
            express_scheduling: true,
        }
    }
}

/// Why an agent could not be registered or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The name hashes to another shard.
    #[error("agent {id} belongs to shard {owner}, not shard {this}")]
    WrongShard {
        /// The name.
        id: AgentId,
        /// Its owner.
        owner: ShardId,
        /// The shard asked.
        this: ShardId,
    },
    /// The name is taken.
    #[error("an agent named {0} is already registered")]
    AlreadyRegistered(AgentId),
    /// There is no such agent.
    #[error("no agent named {0} is registered")]
    NotRegistered(AgentId),
    /// The shard is stopping.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The agent refused a new definition.
    #[error("agent {id} refused the new definition: {reason}")]
    Refused {
        /// The name.
        id: AgentId,
        /// Why.
        reason: DefinitionError,
    },
    /// The change could not be committed to the shard's partition.
    #[error("storage failed: {0}")]
    Storage(String),
}

/// One agent as [`ShardCore::list_agents`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgentInfo {
    /// Its name.
    pub name: String,
    /// The shard that owns it.
    pub shard: ShardId,
    /// Deployed (rebuilt after a restart) rather than registered.
    pub deployed: bool,
    /// Ordinary messages waiting in its mailbox.
    pub queued: usize,
    /// Keys in its key-value state.
    pub state_entries: usize,
    /// Bytes of its state (keys and values).
    pub state_bytes: usize,
    /// Calls it made that wait for their answers.
    pub calls_waiting: usize,
    /// What it is doing, and what its supervision counted.
    pub status: AgentStatus,
}

/// Builds an agent for a name no agent has yet, when a message arrives for
/// it (agents deployed by name pattern): its record, journaled like a
/// deploy, and the agent. `None` leaves the message to `NoSuchAgent`.
pub type Activator = Box<dyn FnMut(&AgentId) -> Option<(AgentRecord, Box<dyn Agent>)>>;

/// Completes a client's call on the client's side (a channel send, or a
/// reply frame queued on the connection the call came in on). Runs on the
/// shard's thread, so it need not be `Send`.
pub type ClientWaiter = Box<dyn FnOnce(Result<Envelope, CallFailure>)>;

/// Where an agent lives when the node is part of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteRoute {
    /// On this node: its owning shard here takes it.
    Here,
    /// On another node, reached through the shard's link number `n`.
    Link(usize),
    /// Its owning node is declared down: refuse at once with `NodeDown`.
    Down,
}

/// The cluster's view of agent ownership, as one shard consults it. The
/// runtime implements it (rendezvous hashing over the members); a node
/// that is not in a cluster has none and routes only by shard.
pub trait RemoteRoutes {
    /// Where `to` lives.
    fn route(&mut self, to: &AgentId) -> RemoteRoute;
}

type TimerKey = (Instant, u64);

/// Whose call a timeout belongs to.
#[derive(Debug, Clone, Copy)]
enum TimeoutOf {
    Agent(MessageId),
    Client(u64),
}

enum Timer {
    Timeout(TimeoutOf),
    Delayed(Envelope),
}

struct PendingCall {
    /// The caller's slot and that slot's generation at the time of the call
    /// (a slot reused by another agent has a newer generation).
    caller_slot: usize,
    caller_generation: u32,
    /// Set for the calls whose round trip is measured (one in
    /// [`LATENCY_SAMPLE_EVERY`]), so that the others cost no clock read.
    started: Option<Instant>,
    /// The callee lives on another node (its round trip is a remote one).
    remote: bool,
}

/// One agent call in this many is timed for the call-latency histogram.
pub const LATENCY_SAMPLE_EVERY: u64 = 16;

struct ClientCall {
    waiter: ClientWaiter,
    started: Instant,
}

struct Slot {
    /// `None` while the agent is running (its context borrows the name).
    id: Option<AgentId>,
    /// Bumped each time the slot is given to a new agent.
    generation: u32,
    /// `None` while the agent is handling a message, or once it is removed.
    agent: Option<Box<dyn Agent>>,
    mailbox: Mailbox,
    /// In the ready queue (or being run) right now.
    scheduled: bool,
    /// In the express ready queue (urgent mail) right now.
    express: bool,
    live: bool,
    /// Deployed (journaled, rebuilt after a restart) rather than registered.
    persistent: bool,
    /// Stopped by an operator: ordinary messages are refused (`AgentStopped`).
    stopped: bool,
    /// The agent's key-value state, kept here so that reads never wait on
    /// the disk; journaled writes make it durable.
    state: KeyValues,
    /// Calls this agent made that wait for their answers.
    calls_waiting: usize,
    /// Bytes of its state (keys and values).
    state_bytes: usize,
}

/// A state entry as it was before a write: its key and its old value
/// (`None`: there was none).
pub(crate) type StateUndo = (Box<[u8]>, Option<Bytes>);

/// One agent's key-value state.
type KeyValues = HashMap<Box<[u8]>, Bytes, RandomState>;

/// One shard's agents, queues, pending calls and timers.
///
/// ```
/// use std::time::Duration;
/// use quire_shards::{Agent, AgentId, Context, Envelope, SendOptions, ShardConfig, ShardCore};
///
/// struct Echo;
/// impl Agent for Echo {
///     fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
///         let _ = ctx.reply(msg.payload);
///     }
/// }
///
/// let mut shard = ShardCore::new(ShardConfig::new(0, 1));
/// shard.register(AgentId::from("echo"), Box::new(Echo)).unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let waiter = Box::new(move |r| tx.send(r).unwrap());
/// shard
///     .admit_client_call("echo".into(), "hi".into(), SendOptions::default(), Duration::from_secs(1), waiter)
///     .unwrap();
/// shard.run(usize::MAX);
/// assert_eq!(&rx.recv().unwrap().unwrap().payload[..], b"hi");
/// ```
pub struct ShardCore {
    cfg: ShardConfig,
    slots: Vec<Slot>,
    free_slots: Vec<usize>,
    by_name: HashMap<AgentId, usize, RandomState>,
    ready: VecDeque<usize>,
    /// Agents that were given High or Critical mail: served before `ready`.
    express: VecDeque<usize>,
    outboxes: Vec<Vec<Envelope>>,
    pending_calls: HashMap<MessageId, PendingCall, RandomState>,
    client_calls: HashMap<u64, ClientCall, RandomState>,
    /// Call timeouts in deadline order. Calls nearly always share one timeout,
    /// so deadlines arrive in order and a FIFO holds them; a call that
    /// finishes leaves its entry behind, skipped when it comes up (the queue
    /// is compacted if such entries pile up behind a long-lived call).
    call_timeouts: VecDeque<(Instant, TimeoutOf)>,
    /// Delayed sends, and call timeouts that arrived out of order.
    timers: BTreeMap<TimerKey, Timer>,
    /// Call timeouts among `timers` (live or finished).
    timeouts_in_timers: usize,
    timer_seq: u64,
    timer_rearm: bool,
    /// Messages waiting in all mailboxes.
    queued: usize,
    /// Calls agents have made (for sampling their latency).
    calls_made: u64,
    /// Where this shard reads the time ([`ShardCore::with_clock`]).
    clock: Clock,
    /// The clock as read when the current `run` began.
    turn_clock: Instant,
    message_seq: u64,
    ticket_seq: u64,
    stats: ShardStats,
    draining: bool,
    stopping: bool,
    journal: Journal,
    activator: Option<Activator>,
    /// Ownership across nodes; `None` outside a cluster.
    remote: Option<Box<dyn RemoteRoutes>>,
    /// Envelopes waiting for each link to another node.
    link_outboxes: Vec<Vec<Envelope>>,
    /// Set by [`Context::end_turn`]: the running agent's turn ends after
    /// its current message.
    pub(crate) end_turn: bool,
    /// Set by [`Context::yield_shard`]: [`ShardCore::run`] returns after
    /// the current turn, so the shard's other tasks get their turn.
    pub(crate) yield_requested: bool,
    /// Handler time charged ([`Context::charge_time`]) in this run of
    /// [`ShardCore::run`].
    run_time: Duration,
    /// While an agent that asked for it handles a message
    /// ([`Context::undo_state_on_failure`]): the state entries its writes
    /// replaced, to put back if the message fails.
    pub(crate) state_undo: Option<Vec<StateUndo>>,
    /// Where the slot of the agent whose turn it is (plus one; 0: none) is
    /// published for another thread (a watchdog naming what a stalled shard
    /// was running).
    running: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    /// Replies to clients waiting for the commit of what they report.
    replies: HeldReplies,
}

impl ShardCore {
    /// An empty shard on the machine's clock.
    pub fn new(cfg: ShardConfig) -> Self {
        Self::with_clock(cfg, Clock::System)
    }

    /// An empty shard that reads the time from `clock`: every deadline,
    /// call timeout, delayed send and latency sample of the core, and
    /// [`Context::now`] for its agents.
    ///
    /// ```
    /// use std::time::Duration;
    /// use quire_shards::{Agent, Context, Envelope, ManualClock, ShardConfig, ShardCore};
    ///
    /// struct NeverAnswers;
    /// impl Agent for NeverAnswers {
    ///     fn handle(&mut self, _: &mut Context<'_>, _: Envelope) {}
    /// }
    ///
    /// let clock = ManualClock::new();
    /// let mut shard = ShardCore::with_clock(ShardConfig::new(0, 1), clock.clone().into());
    /// shard.register("mute".into(), Box::new(NeverAnswers)).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let waiter = Box::new(move |r| tx.send(r).unwrap());
    /// let timeout = Duration::from_secs(1);
    /// shard
    ///     .admit_client_call("mute".into(), "hi".into(), Default::default(), timeout, waiter)
    ///     .unwrap();
    /// shard.run(usize::MAX);
    /// assert_eq!(shard.next_timer(), Some(clock.now() + timeout));
    /// clock.advance(timeout - Duration::from_nanos(1));
    /// assert_eq!(shard.fire_timers(clock.now()), 0);
    /// clock.advance(Duration::from_nanos(1));
    /// assert_eq!(shard.fire_timers(clock.now()), 1);
    /// assert!(rx.try_recv().unwrap().is_err(), "the call timed out");
    /// ```
    pub fn with_clock(cfg: ShardConfig, clock: Clock) -> Self {
        assert!(cfg.shard_count > 0 && (cfg.shard as usize) < cfg.shard_count);
        let journal = Journal::new(cfg.journal, cfg.dedup_window);
        Self {
            replies: HeldReplies::new(cfg.journal && cfg.output_commit),
            outboxes: (0..cfg.shard_count).map(|_| Vec::new()).collect(),
            stats: ShardStats::new(cfg.shard),
            cfg,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_name: HashMap::default(),
            ready: VecDeque::new(),
            express: VecDeque::new(),
            pending_calls: HashMap::default(),
            client_calls: HashMap::default(),
            call_timeouts: VecDeque::new(),
            timers: BTreeMap::new(),
            timeouts_in_timers: 0,
            timer_seq: 0,
            timer_rearm: false,
            queued: 0,
            calls_made: 0,
            turn_clock: clock.now(),
            clock,
            message_seq: 0,
            ticket_seq: 0,
            draining: false,
            stopping: false,
            journal,
            activator: None,
            remote: None,
            link_outboxes: Vec::new(),
            end_turn: false,
            yield_requested: false,
            run_time: Duration::ZERO,
            state_undo: None,
            running: None,
        }
    }

    /// This shard's index.
    pub fn shard(&self) -> ShardId {
        self.cfg.shard
    }

    /// Where it reads the time.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ShardConfig {
        &self.cfg
    }

    pub(crate) fn next_message_id(&mut self) -> MessageId {
        self.message_seq += 1;
        if self.message_seq >= 1 << 48 {
            // 2^48 messages later: start over (ids are unique within any
            // window a call or a trace could span).
            self.message_seq = 1;
        }
        MessageId::new(self.cfg.shard, self.message_seq).expect("sequence starts at 1")
    }

    /// Nothing to run and nothing waiting for the mesh.
    pub fn is_idle(&self) -> bool {
        !self.has_ready() && self.outboxes.iter().all(Vec::is_empty)
    }

    /// This shard's counters as they stand, without copying the histogram.
    /// (`agents` and `queued` are filled in by [`Self::stats`] only.)
    pub fn counters(&self) -> &ShardStats {
        &self.stats
    }

    /// A copy of this shard's figures.
    pub fn stats(&self) -> ShardStats {
        let mut s = self.stats.clone();
        s.agents = self.by_name.len() as u64;
        s.queued = self.queued as u64;
        s
    }

    /// Ends a pending call (answered or timed out): its entry, with its
    /// caller's count of waiting calls lowered.
    #[inline(always)]
    fn take_pending_call(&mut self, call: MessageId) -> Option<PendingCall> {
        let pending = self.pending_calls.remove(&call)?;
        let caller = &mut self.slots[pending.caller_slot];
        if caller.generation == pending.caller_generation {
            caller.calls_waiting = caller.calls_waiting.saturating_sub(1);
        }
        Some(pending)
    }

    /// Calls waiting for replies (agents' and clients').
    pub fn pending_calls(&self) -> usize {
        self.pending_calls.len() + self.client_calls.len()
    }

    /// Starts a shutdown: from now on clients' messages and new registrations
    /// are refused as `ShuttingDown`, while agents finish what is queued.
    pub fn begin_drain(&mut self) {
        self.draining = true;
    }

    /// Envelopes taken from an outbox that could not be put on the mesh (the
    /// peer shard is gone): ordinary ones are rejected for `reason` and
    /// counted, control ones are counted as dropped.
    pub fn reject_undeliverable(&mut self, batch: Vec<Envelope>, reason: Rejection) {
        for env in batch {
            if env.kind.is_control() {
                self.stats.control_dropped += 1;
            } else {
                self.stats.reject(reason);
            }
        }
    }

    /// Sends every ordinary envelope of `batch` back to its sender refused
    /// with `reason` (a link to a node that is gone); control envelopes are
    /// counted and dropped.
    pub fn bounce_undeliverable(&mut self, batch: Vec<Envelope>, reason: Rejection) {
        for env in batch {
            if env.kind.is_control() {
                self.stats.control_dropped += 1;
            } else {
                self.stats.reject(reason);
                self.bounce(env, reason);
            }
        }
    }

    /// True once [`Self::abort_all`] ran.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Stops the shard: everything still queued or on its way out is rejected
    /// as `ShuttingDown` (and counted), waiting clients are told so, pending
    /// timers are dropped, and later arrivals are refused. Returns the number
    /// of ordinary messages rejected.
    pub fn abort_all(&mut self) -> u64 {
        self.stopping = true;
        let before = self.stats.rejected_for(Rejection::ShuttingDown);
        for slot in &mut self.slots {
            for env in slot.mailbox.drain() {
                if !env.kind.is_control() {
                    self.stats.rejected[Rejection::ShuttingDown.index()] += 1;
                }
            }
        }
        for outbox in &mut self.outboxes {
            for env in outbox.drain(..) {
                if !env.kind.is_control() {
                    self.stats.rejected[Rejection::ShuttingDown.index()] += 1;
                }
            }
        }
        for (_, call) in self.client_calls.drain() {
            (call.waiter)(Err(Rejection::ShuttingDown.into()));
        }
        self.queued = 0;
        self.pending_calls.clear();
        for slot in &mut self.slots {
            slot.calls_waiting = 0;
        }
        self.call_timeouts.clear();
        self.timers.clear();
        self.timeouts_in_timers = 0;
        self.ready.clear();
        self.express.clear();
        for slot in &mut self.slots {
            slot.express = false;
        }
        self.stats.rejected_for(Rejection::ShuttingDown) - before
    }
}

impl ShardCore {
    /// Time since `started` in ns on the shard's clock, within what a
    /// latency histogram tracks (at least 1).
    fn elapsed_ns(&self, started: Instant) -> u64 {
        self.clock
            .now()
            .saturating_duration_since(started)
            .as_nanos()
            .clamp(1, u128::from(crate::stats::MAX_TRACKED_NS)) as u64
    }
}
