//! The shard state machine: registry, mailboxes, scheduling, routing decisions,
//! pending calls and timers, with no I/O and no threads.
//!
//! A runtime drives a [`ShardCore`] by feeding it messages (from agents, from
//! clients, from peer shards), calling [`ShardCore::run`] to let agents handle
//! what is queued, taking each peer's outbox to put on the mesh, and firing
//! timers when they fall due. Everything here is deterministic and tested
//! without executors or sockets (in the manner of quinn's `quinn-proto`).
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

use crate::agent::{
    Agent, AgentState as AgentStatusState, AgentStatus, Context, Current, SendOptions,
};
use crate::agent_id::{AgentId, ShardId};
use crate::envelope::{Address, ClientTicket, Envelope, Kind, MessageId, Priority};
use crate::error::{CallError, Rejection};
use crate::journal::{DurableAdmission, Journal};
use crate::mailbox::Mailbox;
use crate::output_commit::HeldReplies;
use crate::stats::ShardStats;

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
    /// Messages an agent handles in one turn before others get theirs.
    pub agent_batch: usize,
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
            agent_batch: 32,
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
        reason: String,
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
pub type ClientWaiter = Box<dyn FnOnce(Result<Envelope, CallError>)>;

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
    state: AgentState,
}

type AgentState = HashMap<Box<[u8]>, Bytes, RandomState>;

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
    /// Where the slot of the agent whose turn it is (plus one; 0: none) is
    /// published for another thread (a watchdog naming what a stalled shard
    /// was running).
    running: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    /// Replies to clients waiting for the commit of what they report.
    replies: HeldReplies,
}

impl ShardCore {
    /// An empty shard.
    pub fn new(cfg: ShardConfig) -> Self {
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
            turn_clock: Instant::now(),
            message_seq: 0,
            ticket_seq: 0,
            draining: false,
            stopping: false,
            journal,
            activator: None,
            remote: None,
            link_outboxes: Vec::new(),
            end_turn: false,
            running: None,
        }
    }

    /// This shard's index.
    pub fn shard(&self) -> ShardId {
        self.cfg.shard
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

    // ---- registry ----

    /// Registers a native agent under `id`, which must hash to this shard.
    pub fn register(&mut self, id: AgentId, agent: Box<dyn Agent>) -> Result<(), RegisterError> {
        if self.stopping || self.draining {
            return Err(RegisterError::ShuttingDown);
        }
        let owner = id.owning_shard(self.cfg.shard_count);
        if owner != self.cfg.shard {
            return Err(RegisterError::WrongShard {
                id,
                owner,
                this: self.cfg.shard,
            });
        }
        if self.by_name.contains_key(&id) {
            return Err(RegisterError::AlreadyRegistered(id));
        }
        let mut slot = Slot {
            id: Some(id.clone()),
            generation: 0,
            agent: Some(agent),
            mailbox: Mailbox::with_headroom(self.cfg.mailbox_capacity, self.cfg.urgent_headroom),
            scheduled: false,
            express: false,
            live: true,
            persistent: false,
            stopped: false,
            state: AgentState::default(),
        };
        let idx = match self.free_slots.pop() {
            Some(idx) => {
                slot.generation = self.slots[idx].generation.wrapping_add(1);
                self.slots[idx] = slot;
                idx
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.by_name.insert(id, idx);
        Ok(())
    }

    /// Removes an agent; what waited in its mailbox goes back to its senders
    /// as `NoSuchAgent`. Returns how many ordinary messages were rejected.
    pub fn unregister(&mut self, id: &AgentId) -> Result<usize, RegisterError> {
        let idx = self
            .by_name
            .remove(id)
            .ok_or_else(|| RegisterError::NotRegistered(id.clone()))?;
        let slot = &mut self.slots[idx];
        slot.live = false;
        slot.agent = None;
        slot.state = AgentState::default();
        if std::mem::take(&mut slot.persistent) {
            self.journal
                .log(Mutation::DeleteAgent(id.as_str().to_string()));
        }
        let slot = &mut self.slots[idx];
        let waiting: Vec<Envelope> = slot.mailbox.drain().collect();
        self.queued -= waiting.len();
        if !slot.scheduled {
            self.free_slots.push(idx);
        }
        let mut rejected = 0;
        for env in waiting {
            if env.kind.is_control() {
                self.stats.control_dropped += 1;
            } else {
                rejected += 1;
                self.stats.reject(Rejection::NoSuchAgent);
                self.bounce(env, Rejection::NoSuchAgent);
            }
        }
        Ok(rejected)
    }

    /// True when `id` is registered here.
    pub fn is_registered(&self, id: &AgentId) -> bool {
        self.by_name.contains_key(id)
    }

    /// Messages waiting in this shard's mailboxes, all agents together.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Agents registered here.
    pub fn agent_count(&self) -> usize {
        self.by_name.len()
    }

    // ---- entry points ----

    /// A one-way message from outside the shards (a client). `Ok` means it is
    /// queued at its receiver or on its way there; an error means it was
    /// refused and is counted.
    pub fn admit_client(
        &mut self,
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
    ) -> Result<MessageId, Rejection> {
        let env = self.outside_envelope(to, payload, Kind::Send, Address::Nobody, opts);
        let id = env.id;
        self.refuse_while_draining()?;
        self.route_ordinary(env).map_err(|(r, _)| r)?;
        Ok(id)
    }

    /// A call from outside the shards. `waiter` is completed exactly once:
    /// with the reply, a rejection (also when refused at once, which the
    /// returned error repeats) or a timeout.
    pub fn admit_client_call(
        &mut self,
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        timeout: Duration,
        waiter: ClientWaiter,
    ) -> Result<MessageId, Rejection> {
        self.admit_waited(to, payload, opts, timeout, waiter, Kind::Call)
    }

    fn admit_waited(
        &mut self,
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        timeout: Duration,
        waiter: ClientWaiter,
        kind: Kind,
    ) -> Result<MessageId, Rejection> {
        self.ticket_seq += 1;
        let ticket = self.ticket_seq;
        let from = Address::Client(ClientTicket::new(self.cfg.shard, ticket));
        let env = self.outside_envelope(to, payload, kind, from, opts);
        let id = env.id;
        if let Err(reason) = self
            .refuse_while_draining()
            .and_then(|()| self.check_pending_room())
        {
            waiter(Err(reason.into()));
            return Err(reason);
        }
        // The waiter is in place before the message moves: a confirmed send
        // queued on this very shard is answered while it is routed.
        let started = Instant::now();
        self.client_calls
            .insert(ticket, ClientCall { waiter, started });
        if let Err((reason, _)) = self.route_ordinary(env) {
            if let Some(call) = self.client_calls.remove(&ticket) {
                (call.waiter)(Err(reason.into()));
            }
            return Err(reason);
        }
        self.add_call_timeout(started + timeout, TimeoutOf::Client(ticket));
        Ok(id)
    }

    /// A one-way message from a client that wants to know its fate:
    /// `waiter` is completed exactly once, with an empty reply once the
    /// message is queued at its receiver (on whichever shard or node owns
    /// it), or with the reason it was refused there (or at once), or with
    /// `Timeout`. What the agent does with it is not waited for.
    pub fn admit_client_confirmed(
        &mut self,
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        timeout: Duration,
        waiter: ClientWaiter,
    ) -> Result<MessageId, Rejection> {
        self.admit_waited(to, payload, opts, timeout, waiter, Kind::Send)
    }

    /// Envelopes another shard of this node put on the mesh for this one.
    pub fn deliver_from_peer(&mut self, env: Envelope) {
        self.stats.cross_shard_in += 1;
        if self.stopping {
            if !env.kind.is_control() {
                self.stats.reject(Rejection::ShuttingDown);
            }
            return;
        }
        if env.kind.is_control() {
            self.route_control(env);
        } else if let Err((reason, env)) = self.deliver_local(env) {
            self.stats.reject(reason);
            self.bounce(env, reason);
        }
    }

    /// Consults `routes` for every agent address from now on: the node
    /// joined a cluster.
    pub fn set_remote_routes(&mut self, routes: Box<dyn RemoteRoutes>) {
        self.remote = Some(routes);
    }

    /// Envelopes waiting for link `link` to another node.
    pub fn link_outbox_len(&self, link: usize) -> usize {
        self.link_outboxes.get(link).map_or(0, Vec::len)
    }

    /// Takes everything waiting for link `link`, in order.
    pub fn take_link_outbox(&mut self, link: usize) -> Vec<Envelope> {
        match self.link_outboxes.get_mut(link) {
            Some(outbox) if !outbox.is_empty() => {
                let batch = std::mem::take(outbox);
                self.stats.cross_node_out += batch.len() as u64;
                batch
            }
            _ => Vec::new(),
        }
    }

    /// An envelope another node sent to an agent of this one: delivered
    /// here or across the mesh to its owning shard, never forwarded to a
    /// third node (the sender already chose this one). A refused ordinary
    /// message bounces to its sender, wherever that is.
    pub fn admit_from_link(&mut self, env: Envelope) {
        self.stats.cross_node_in += 1;
        if env.kind.is_control() {
            self.route_control(env);
            return;
        }
        if self.stopping || self.draining {
            self.stats.reject(Rejection::ShuttingDown);
            self.bounce(env, Rejection::ShuttingDown);
            return;
        }
        if let Err((reason, env)) = self.route_here(env) {
            self.stats.reject(reason);
            self.bounce(env, reason);
        }
    }

    /// A reply or a bounce made outside the shard (an answer that came back
    /// over a link, or a link's failure reported to its waiting callers).
    pub fn accept_control(&mut self, env: Envelope) {
        self.route_control(env);
    }

    #[inline(always)]
    pub(crate) fn send_from_agent(
        &mut self,
        env: Envelope,
        call: Option<(usize, Duration)>,
    ) -> Result<(), Rejection> {
        let Some((caller_slot, timeout)) = call else {
            return self.route_ordinary(env).map_err(|(r, _)| r);
        };
        self.check_pending_room()?;
        let id = env.id;
        let links_before = self.stats.cross_node_out;
        self.route_ordinary(env).map_err(|(r, _)| r)?;
        let remote = self.stats.cross_node_out != links_before;
        // Timeouts run from the start of the current turn (the clock the shard
        // read when it began running agents), which saves a clock read per call.
        self.calls_made += 1;
        let started = self
            .calls_made
            .is_multiple_of(LATENCY_SAMPLE_EVERY)
            .then(Instant::now);
        let caller_generation = self.slots[caller_slot].generation;
        self.pending_calls.insert(
            id,
            PendingCall {
                caller_slot,
                caller_generation,
                started,
                remote,
            },
        );
        self.add_call_timeout(self.turn_clock + timeout, TimeoutOf::Agent(id));
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn send_control(&mut self, env: Envelope) {
        self.route_control(env);
    }

    pub(crate) fn schedule(&mut self, at: Instant, env: Envelope) {
        self.add_timer(at, Timer::Delayed(env));
    }

    // ---- driving ----

    /// Publishes, in `probe`, which agent has its turn (slot + 1, 0 between
    /// turns): two relaxed stores per turn. [`Self::slot_name`] names it.
    pub fn publish_running(&mut self, probe: std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        self.running = Some(probe);
    }

    /// The agent in a slot published by [`Self::publish_running`] (slot + 1).
    pub fn slot_name(&self, published: usize) -> Option<AgentId> {
        let slot = self.slots.get(published.checked_sub(1)?)?;
        slot.id.clone()
    }

    /// Lets ready agents handle up to about `budget` messages (an agent's turn
    /// is not cut short). Returns how many were handled or rejected.
    pub fn run(&mut self, budget: usize) -> usize {
        self.turn_clock = Instant::now();
        let mut done = 0;
        while done < budget {
            let (idx, from_express) = match self.express.pop_front() {
                Some(idx) => (idx, true),
                None => match self.ready.pop_front() {
                    Some(idx) => (idx, false),
                    None => break,
                },
            };
            let slot = &mut self.slots[idx];
            if from_express {
                slot.express = false;
                if !slot.live || slot.agent.is_none() {
                    // Its entry in `ready` finishes the bookkeeping.
                    continue;
                }
            }
            if !slot.live {
                slot.scheduled = false;
                self.free_slots.push(idx);
                continue;
            }
            let (Some(mut agent), Some(me)) = (slot.agent.take(), slot.id.take()) else {
                continue;
            };
            if let Some(probe) = &self.running {
                probe.store(idx + 1, std::sync::atomic::Ordering::Relaxed);
            }
            // The clock is read only when a message has a deadline to check,
            // and then once per turn.
            let mut now = None;
            let mut turn = 0;
            while turn < self.cfg.agent_batch {
                let Some(env) = self.slots[idx].mailbox.pop() else {
                    break;
                };
                self.queued -= 1;
                turn += 1;
                self.dispatch(agent.as_mut(), &me, idx, env, &mut now);
                if std::mem::take(&mut self.end_turn) {
                    break;
                }
            }
            done += turn;
            if let Some(probe) = &self.running {
                probe.store(0, std::sync::atomic::Ordering::Relaxed);
            }
            let slot = &mut self.slots[idx];
            slot.id = Some(me);
            if slot.live {
                slot.agent = Some(agent);
            }
            if from_express {
                // Still in `ready` (scheduled), or put there for the rest.
                if slot.live && !slot.mailbox.is_empty() && !slot.scheduled {
                    slot.scheduled = true;
                    self.ready.push_back(idx);
                }
            } else if slot.live && !slot.mailbox.is_empty() {
                self.ready.push_back(idx);
            } else {
                slot.scheduled = false;
                if !slot.live {
                    self.free_slots.push(idx);
                }
            }
        }
        done
    }

    /// True when some agent has messages waiting.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.express.is_empty()
    }

    /// Envelopes waiting for the mesh towards `peer`.
    pub fn outbox_len(&self, peer: ShardId) -> usize {
        self.outboxes[peer as usize].len()
    }

    /// Takes everything waiting for `peer`, in order, as one batch.
    pub fn take_outbox(&mut self, peer: ShardId) -> Vec<Envelope> {
        let outbox = &mut self.outboxes[peer as usize];
        if outbox.is_empty() {
            return Vec::new();
        }
        // The next batch will likely be as large as this one: allocate it
        // once now rather than growing it message by message.
        let next = Vec::with_capacity(outbox.len().next_power_of_two().min(4096));
        let batch = std::mem::replace(outbox, next);
        self.stats.cross_shard_out += batch.len() as u64;
        self.stats.batches_out += 1;
        batch
    }

    /// When the earliest timer falls due.
    pub fn next_timer(&mut self) -> Option<Instant> {
        self.skip_finished_timeouts();
        let fifo = self.call_timeouts.front().map(|(at, _)| *at);
        let tree = self.timers.first_key_value().map(|(k, _)| k.0);
        match (fifo, tree) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True (once) when a timer earlier than every previous one was added, so
    /// the driver must re-arm its wake-up.
    pub fn take_timer_rearm(&mut self) -> bool {
        std::mem::take(&mut self.timer_rearm)
    }

    /// Fires every timer due at `now`; returns how many fired.
    pub fn fire_timers(&mut self, now: Instant) -> usize {
        let mut fired = 0;
        while let Some(&(at, of)) = self.call_timeouts.front() {
            if at > now {
                break;
            }
            self.call_timeouts.pop_front();
            fired += usize::from(self.time_out(of));
        }
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                Timer::Timeout(of) => {
                    self.timeouts_in_timers -= 1;
                    fired += usize::from(self.time_out(of));
                }
                Timer::Delayed(env) => {
                    fired += 1;
                    if let Err((reason, env)) = self.route_ordinary(env) {
                        self.bounce(env, reason);
                    }
                }
            }
        }
        fired
    }

    /// Ends a call with `Timeout` if it is still waiting; false if it was over.
    fn time_out(&mut self, of: TimeoutOf) -> bool {
        match of {
            TimeoutOf::Agent(call) => {
                let Some(p) = self.pending_calls.remove(&call) else {
                    return false;
                };
                self.stats.call_timeouts += 1;
                let caller = &self.slots[p.caller_slot];
                let caller = match (
                    &caller.id,
                    caller.live && caller.generation == p.caller_generation,
                ) {
                    (Some(id), true) => id.clone(),
                    _ => {
                        self.stats.control_dropped += 1;
                        return true;
                    }
                };
                let env = Envelope {
                    id: self.next_message_id(),
                    from: Address::Nobody,
                    to: Address::Agent(caller),
                    conversation: None,
                    in_reply_to: Some(call),
                    priority: crate::Priority::Normal,
                    deadline: None,
                    kind: Kind::CallFailed(CallError::Timeout),
                    payload: Bytes::new(),
                };
                if self.deliver_local(env).is_err() {
                    self.stats.control_dropped += 1;
                }
            }
            TimeoutOf::Client(ticket) => {
                let Some(call) = self.client_calls.remove(&ticket) else {
                    return false;
                };
                self.stats.call_timeouts += 1;
                (call.waiter)(Err(CallError::Timeout));
            }
        }
        true
    }

    fn is_waiting(&self, of: TimeoutOf) -> bool {
        match of {
            TimeoutOf::Agent(call) => self.pending_calls.contains_key(&call),
            TimeoutOf::Client(ticket) => self.client_calls.contains_key(&ticket),
        }
    }

    fn skip_finished_timeouts(&mut self) {
        while let Some(&(_, of)) = self.call_timeouts.front() {
            if self.is_waiting(of) {
                break;
            }
            self.call_timeouts.pop_front();
        }
    }

    fn add_call_timeout(&mut self, at: Instant, of: TimeoutOf) {
        // Entries of finished calls at the front are dropped as they come up
        // (or by `compact_timeouts`); checking them here costs lookups, so
        // only once the queue has grown.
        let checks = if self.call_timeouts.len() > 256 { 2 } else { 0 };
        for _ in 0..checks {
            match self.call_timeouts.front() {
                Some(&(_, front)) if !self.is_waiting(front) => {
                    self.call_timeouts.pop_front();
                }
                _ => break,
            }
        }
        let in_order = self
            .call_timeouts
            .back()
            .is_none_or(|(last, _)| *last <= at);
        if !in_order {
            self.timeouts_in_timers += 1;
            self.add_timer(at, Timer::Timeout(of));
            self.compact_timeouts();
            return;
        }
        if self
            .call_timeouts
            .front()
            .is_none_or(|(first, _)| at < *first)
            && self.timers.first_key_value().is_none_or(|(k, _)| at < k.0)
        {
            self.timer_rearm = true;
        }
        self.call_timeouts.push_back((at, of));
        self.compact_timeouts();
    }

    /// Keeps finished calls' entries from outnumbering live ones (they pile
    /// up behind a call that waits long while many short ones finish).
    fn compact_timeouts(&mut self) {
        let live = self.pending_calls.len() + self.client_calls.len();
        let limit = 2 * live + 1024;
        if self.call_timeouts.len() > limit {
            let mut queue = std::mem::take(&mut self.call_timeouts);
            queue.retain(|(_, of)| self.is_waiting(*of));
            self.call_timeouts = queue;
        }
        if self.timeouts_in_timers > limit {
            let mut timers = std::mem::take(&mut self.timers);
            timers.retain(|_, t| match t {
                Timer::Timeout(of) => self.is_waiting(*of),
                Timer::Delayed(_) => true,
            });
            self.timers = timers;
            self.timeouts_in_timers = self
                .timers
                .values()
                .filter(|t| matches!(t, Timer::Timeout(_)))
                .count();
        }
    }

    /// Fires the timers due at the start of the last `run` (no clock read):
    /// for a driver that is too busy to wait on a timer of its own.
    pub fn fire_due_timers(&mut self) -> usize {
        let now = self.turn_clock;
        if self.next_timer().is_some_and(|t| t <= now) {
            self.fire_timers(now)
        } else {
            0
        }
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
            (call.waiter)(Err(CallError::Rejected(Rejection::ShuttingDown)));
        }
        self.queued = 0;
        self.pending_calls.clear();
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

    // ---- persistence ----

    /// Deploys an agent: registers it and journals its definition, so that a
    /// restart rebuilds it (with its state) from `record`.
    pub fn deploy(
        &mut self,
        record: AgentRecord,
        agent: Box<dyn Agent>,
    ) -> Result<(), RegisterError> {
        let id = AgentId::from(record.name.as_str());
        self.register(id.clone(), agent)?;
        let idx = self.by_name[&id];
        self.slots[idx].persistent = true;
        self.journal.log(Mutation::PutAgent(record));
        Ok(())
    }

    /// Gives a deployed agent a new definition (a hot reload): the agent
    /// takes it through [`Agent::reconfigure`], between two of its messages,
    /// and the new record is journaled. Nothing queued is lost: what waits in
    /// the mailbox is handled by the new version.
    pub fn redeploy(&mut self, record: AgentRecord) -> Result<(), RegisterError> {
        let id = AgentId::from(record.name.as_str());
        let idx = *self
            .by_name
            .get(&id)
            .ok_or_else(|| RegisterError::NotRegistered(id.clone()))?;
        let slot = &mut self.slots[idx];
        // Handlers run to completion before the shard takes a command, so the
        // agent is always in its slot here.
        let agent = slot
            .agent
            .as_mut()
            .ok_or_else(|| RegisterError::NotRegistered(id.clone()))?;
        agent
            .reconfigure(&record)
            .map_err(|reason| RegisterError::Refused { id, reason })?;
        if slot.persistent {
            self.journal.log(Mutation::PutAgent(record));
        }
        Ok(())
    }

    /// Stops (`true`) or starts again (`false`) an agent: a stopped agent
    /// keeps its state and what is queued, and ordinary messages sent to it
    /// are refused as `AgentStopped`.
    pub fn set_stopped(&mut self, id: &AgentId, stopped: bool) -> Result<(), RegisterError> {
        let idx = *self
            .by_name
            .get(id)
            .ok_or_else(|| RegisterError::NotRegistered(id.clone()))?;
        let slot = &mut self.slots[idx];
        slot.stopped = stopped;
        if !stopped && !slot.mailbox.is_empty() && !slot.scheduled {
            slot.scheduled = true;
            self.ready.push_back(idx);
        }
        Ok(())
    }

    /// Every agent on this shard with its status, sorted by name.
    pub fn list_agents(&self) -> Vec<AgentInfo> {
        let mut list: Vec<AgentInfo> = self
            .by_name
            .iter()
            .map(|(id, &idx)| {
                let slot = &self.slots[idx];
                let mut status = slot.agent.as_ref().map(|a| a.status()).unwrap_or_default();
                if slot.stopped {
                    status.state = AgentStatusState::Stopped;
                }
                AgentInfo {
                    name: id.as_str().to_string(),
                    shard: self.cfg.shard,
                    deployed: slot.persistent,
                    queued: slot.mailbox.len(),
                    state_entries: slot.state.len(),
                    status,
                }
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Sets what builds agents for unknown names (see [`Activator`]).
    pub fn set_activator(&mut self, activator: Activator) {
        self.activator = Some(activator);
    }

    /// Journals a definition that is not an agent of this shard (a name
    /// pattern every shard keeps), so a restart reads it back.
    pub fn log_definition(&mut self, record: AgentRecord) {
        self.journal.log(Mutation::PutAgent(record));
    }

    /// Journals the removal of such a definition.
    pub fn drop_definition(&mut self, name: &str) {
        self.journal.log(Mutation::DeleteAgent(name.to_string()));
    }

    /// The slot of a new agent the activator builds for `id`, if it does.
    #[cold]
    fn activate_unknown(&mut self, id: &AgentId) -> Option<usize> {
        if self.draining || self.stopping {
            return None;
        }
        let mut activator = self.activator.take()?;
        let built = activator(id);
        self.activator = Some(activator);
        let (record, agent) = built?;
        self.deploy(record, agent).ok()?;
        self.by_name.get(id).copied()
    }

    /// Brings back a deployed agent at recovery (its definition is stored
    /// already, so nothing is journaled).
    pub fn restore_agent(
        &mut self,
        id: AgentId,
        agent: Box<dyn Agent>,
    ) -> Result<(), RegisterError> {
        self.register(id.clone(), agent)?;
        let idx = self.by_name[&id];
        self.slots[idx].persistent = true;
        Ok(())
    }

    /// Puts back one state entry of a restored agent; `false` when no such
    /// agent is registered.
    pub fn restore_state(&mut self, id: &AgentId, key: Vec<u8>, value: Bytes) -> bool {
        let Some(&idx) = self.by_name.get(id) else {
            return false;
        };
        self.slots[idx].state.insert(key.into_boxed_slice(), value);
        true
    }

    /// Rebuilds the de-duplication window from the partition.
    pub fn restore_dedup(&mut self, slots: impl IntoIterator<Item = (u32, u64)>, next: u32) {
        self.journal.restore_dedup(slots, next);
    }

    /// Queues again a durable message that was accepted before a restart and
    /// not finished. It takes its place even in a full mailbox (it was
    /// acknowledged long ago); one whose agent is gone is dead-lettered.
    pub fn redeliver(&mut self, msg: DurableMessage) -> Result<MessageId, Rejection> {
        let id = self.next_message_id();
        self.journal.readmit(id, msg.seq, msg.dedup);
        self.stats.durable_redelivered += 1;
        self.stats.sent += 1;
        let to = AgentId::from(msg.to.as_str());
        let priority = Priority::ALL
            .get(usize::from(msg.priority))
            .copied()
            .unwrap_or_default();
        let env = Envelope {
            id,
            from: Address::Nobody,
            to: Address::Agent(to.clone()),
            conversation: Some(id),
            in_reply_to: None,
            priority,
            deadline: None,
            kind: Kind::Send,
            payload: msg.payload,
        };
        let Some(&idx) = self.by_name.get(&to) else {
            self.stats.reject(Rejection::NoSuchAgent);
            self.journal.finish(id);
            return Err(Rejection::NoSuchAgent);
        };
        let slot = &mut self.slots[idx];
        slot.mailbox.push_unbounded(env);
        self.queued += 1;
        if !slot.scheduled {
            slot.scheduled = true;
            self.ready.push_back(idx);
        }
        Ok(id)
    }

    /// A one-way message from a client that must survive a crash once
    /// acknowledged. `dedup` is the sender's id for it, the same on every
    /// retry. The runtime acknowledges an accepted message (and a duplicate)
    /// once [`Self::journal_position`], read right after this call, is
    /// committed. Without a journal this is [`Self::admit_client`].
    pub fn admit_durable(
        &mut self,
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        dedup: u64,
    ) -> Result<DurableAdmission, Rejection> {
        if !self.journal.enabled() {
            return self
                .admit_client(to, payload, opts)
                .map(DurableAdmission::Accepted);
        }
        if self.journal.is_duplicate(dedup) {
            self.stats.durable_duplicates += 1;
            return Ok(DurableAdmission::Duplicate);
        }
        if to.owning_shard(self.cfg.shard_count) != self.cfg.shard {
            // Durable messages are journaled where their agent lives.
            return Err(Rejection::Invalid);
        }
        let msg = DurableMessage {
            seq: self.journal.next_seq(),
            dedup,
            to: to.as_str().to_string(),
            priority: opts.priority as u8,
            payload: payload.clone(),
        };
        let env = self.outside_envelope(to, payload, Kind::Send, Address::Nobody, opts);
        let id = env.id;
        self.refuse_while_draining()?;
        self.route_ordinary(env).map_err(|(r, _)| r)?;
        self.journal.accept(id, msg);
        self.stats.durable_accepted += 1;
        Ok(DurableAdmission::Accepted(id))
    }

    /// True when this shard journals writes for a partition.
    pub fn is_journaling(&self) -> bool {
        self.journal.enabled()
    }

    /// Mutations journaled since the shard started: a write is durable once
    /// a commit ending at or after its position succeeded.
    pub fn journal_position(&self) -> u64 {
        self.journal.position()
    }

    /// Everything journaled up to `position` is on disk: the replies to
    /// clients that waited for it leave (output commit), and a shard whose
    /// storage was unavailable takes state-changing requests again. Returns
    /// how many replies left.
    pub fn commit_reached(&mut self, position: u64) -> usize {
        let mut out = Vec::new();
        self.replies.committed(position, &mut out);
        let released = out.len();
        for env in out {
            self.route_control(env);
        }
        released
    }

    /// A commit failed: replies waiting for it, and every reply that needs
    /// a commit until [`Self::commit_reached`] reports one, are answered
    /// [`Rejection::StorageUnavailable`] instead.
    pub fn storage_failed(&mut self) {
        let mut out = Vec::new();
        self.replies.storage_failed(&mut out);
        for env in out {
            // Counted as handled already: a withheld reply is no new rejection.
            self.route_control(env);
        }
    }

    /// True between a failed commit and the next successful one.
    pub fn storage_unavailable(&self) -> bool {
        self.replies.is_unavailable()
    }

    /// Replies to clients waiting for a commit.
    pub fn held_replies(&self) -> usize {
        self.replies.held()
    }

    /// Journaled writes not yet taken, and the durable messages among them.
    pub fn pending_writes(&self) -> (usize, usize) {
        self.journal.pending()
    }

    /// Durable messages accepted (or redelivered) and not yet finished.
    pub fn durable_inflight(&self) -> usize {
        self.journal.inflight()
    }

    /// Takes journaled writes, oldest first, with at most `max_messages`
    /// durable messages among them; returns the batch and the journal
    /// position it ends at.
    pub fn take_writes(&mut self, max_messages: usize) -> (WriteBatch, u64) {
        self.journal.take(max_messages)
    }

    pub(crate) fn state_get(&self, slot: usize, key: &[u8]) -> Option<Bytes> {
        self.slots[slot].state.get(key).cloned()
    }

    pub(crate) fn state_put(&mut self, slot: usize, me: &AgentId, key: Vec<u8>, value: Bytes) {
        let s = &mut self.slots[slot];
        if s.persistent {
            self.journal.log(Mutation::PutState {
                agent: me.as_str().to_string(),
                key: key.clone(),
                value: value.clone(),
            });
        }
        s.state.insert(key.into_boxed_slice(), value);
    }

    pub(crate) fn state_delete(&mut self, slot: usize, me: &AgentId, key: &[u8]) -> bool {
        let s = &mut self.slots[slot];
        let existed = s.state.remove(key).is_some();
        if existed && s.persistent {
            self.journal.log(Mutation::DeleteState {
                agent: me.as_str().to_string(),
                key: key.to_vec(),
            });
        }
        existed
    }

    /// Bytes of state values held by this shard's agents.
    pub fn state_bytes(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.live)
            .flat_map(|s| s.state.iter())
            .map(|(k, v)| k.len() + v.len())
            .sum()
    }

    // ---- internals ----

    fn outside_envelope(
        &mut self,
        to: AgentId,
        payload: Bytes,
        kind: Kind,
        from: Address,
        opts: SendOptions,
    ) -> Envelope {
        let id = self.next_message_id();
        Envelope {
            id,
            from,
            to: Address::Agent(to),
            conversation: opts.conversation.or(Some(id)),
            in_reply_to: None,
            priority: opts.priority,
            deadline: opts.ttl.map(|ttl| Instant::now() + ttl),
            kind,
            payload,
        }
    }

    fn refuse_while_draining(&mut self) -> Result<(), Rejection> {
        if self.draining {
            self.stats.sent += 1;
            self.stats.reject(Rejection::ShuttingDown);
            return Err(Rejection::ShuttingDown);
        }
        Ok(())
    }

    fn check_pending_room(&mut self) -> Result<(), Rejection> {
        if self.pending_calls() >= self.cfg.max_pending_calls {
            self.stats.sent += 1;
            self.stats.reject(Rejection::TooManyPendingCalls);
            return Err(Rejection::TooManyPendingCalls);
        }
        Ok(())
    }

    fn add_timer(&mut self, at: Instant, timer: Timer) -> TimerKey {
        self.timer_seq += 1;
        let key = (at, self.timer_seq);
        if self
            .timers
            .first_key_value()
            .is_none_or(|(first, _)| key < *first)
        {
            self.timer_rearm = true;
        }
        self.timers.insert(key, timer);
        key
    }

    /// Routes an ordinary message emitted on this shard; counts it as sent,
    /// and as rejected when refused at once.
    #[allow(clippy::result_large_err)] // the message itself comes back, unboxed
    #[inline(always)]
    fn route_ordinary(&mut self, env: Envelope) -> Result<(), (Rejection, Envelope)> {
        self.stats.sent += 1;
        let result = if self.stopping {
            Err((Rejection::ShuttingDown, env))
        } else {
            match &env.to {
                Address::Agent(to) => match self.remote_route(to) {
                    RemoteRoute::Here => self.route_here(env),
                    RemoteRoute::Link(link) => {
                        let outbox = &mut self.link_outboxes[link];
                        if outbox.len() >= self.cfg.outbox_capacity {
                            Err((Rejection::QueueFull, env))
                        } else {
                            outbox.push(env);
                            Ok(())
                        }
                    }
                    RemoteRoute::Down => Err((Rejection::NodeDown, env)),
                },
                _ => Err((Rejection::Invalid, env)),
            }
        };
        if let Err((reason, _)) = &result {
            self.stats.reject(*reason);
        }
        result
    }

    /// Where `to` lives as the cluster sees it (always here outside one).
    #[inline(always)]
    fn remote_route(&mut self, to: &AgentId) -> RemoteRoute {
        let Some(remote) = self.remote.as_mut() else {
            return RemoteRoute::Here;
        };
        let route = remote.route(to);
        if let RemoteRoute::Link(link) = route {
            if link >= self.link_outboxes.len() {
                self.link_outboxes.resize_with(link + 1, Vec::new);
            }
        }
        route
    }

    /// Routes an ordinary message to its owning shard on this node.
    #[allow(clippy::result_large_err)] // the message itself comes back, unboxed
    #[inline(always)]
    fn route_here(&mut self, env: Envelope) -> Result<(), (Rejection, Envelope)> {
        let Address::Agent(to) = &env.to else {
            return Err((Rejection::Invalid, env));
        };
        let owner = to.owning_shard(self.cfg.shard_count);
        if owner == self.cfg.shard {
            self.deliver_local(env)
        } else {
            let outbox = &mut self.outboxes[owner as usize];
            if outbox.len() >= self.cfg.outbox_capacity {
                Err((Rejection::QueueFull, env))
            } else {
                outbox.push(env);
                Ok(())
            }
        }
    }

    /// Routes a reply or a bounce. These are never refused for room (see
    /// [`Kind`]); one whose receiver is gone is counted and dropped.
    #[inline(always)]
    fn route_control(&mut self, env: Envelope) {
        // A handler's reply to a client waits for its commit (output commit).
        let Some(env) = self.replies.capture(env) else {
            return;
        };
        let owner = match &env.to {
            Address::Agent(id) => match self.remote_route(id) {
                RemoteRoute::Here => id.owning_shard(self.cfg.shard_count),
                RemoteRoute::Link(link) => {
                    self.link_outboxes[link].push(env);
                    return;
                }
                RemoteRoute::Down => {
                    self.stats.control_dropped += 1;
                    return;
                }
            },
            Address::Client(t) => t.shard(),
            Address::Nobody => {
                self.stats.control_dropped += 1;
                return;
            }
        };
        if owner == self.cfg.shard {
            if self.deliver_local(env).is_err() {
                self.stats.control_dropped += 1;
            }
        } else {
            self.outboxes[owner as usize].push(env);
        }
    }

    /// Puts a message for an agent (or a client) of this shard where it goes.
    #[allow(clippy::result_large_err)] // the message itself comes back, unboxed
    #[inline(always)]
    fn deliver_local(&mut self, mut env: Envelope) -> Result<(), (Rejection, Envelope)> {
        if let Address::Client(ticket) = &env.to {
            self.complete_client_call(ticket.key(), env);
            return Ok(());
        }
        // An answer to a call goes to the slot recorded with the call, with
        // no name lookup; anything else finds its agent by name.
        let answered_slot = match env.kind {
            Kind::Reply | Kind::CallRejected(_) => {
                let Some(pending) = env
                    .in_reply_to
                    .and_then(|call| self.pending_calls.remove(&call))
                else {
                    // The call already timed out: its caller has its answer.
                    self.stats.late_replies += 1;
                    return Ok(());
                };
                if let Kind::CallRejected(reason) = env.kind {
                    env.kind = Kind::CallFailed(CallError::Rejected(reason));
                } else {
                    self.stats.replies += 1;
                    if let Some(started) = pending.started {
                        if pending.remote {
                            self.record_remote_round_trip(started);
                        } else {
                            self.record_round_trip(started);
                        }
                    }
                }
                let slot = &self.slots[pending.caller_slot];
                if !slot.live || slot.generation != pending.caller_generation {
                    return Err((Rejection::NoSuchAgent, env));
                }
                Some(pending.caller_slot)
            }
            Kind::Send | Kind::Call | Kind::Bounce(_) | Kind::CallFailed(_) => None,
        };
        let idx = match answered_slot {
            Some(idx) => idx,
            None => match &env.to {
                Address::Agent(id) => match self.by_name.get(id) {
                    Some(&idx) => idx,
                    None => {
                        let id = id.clone();
                        let activated = match env.kind {
                            Kind::Send | Kind::Call if self.activator.is_some() => {
                                self.activate_unknown(&id)
                            }
                            _ => None,
                        };
                        match activated {
                            Some(idx) => idx,
                            None => return Err((Rejection::NoSuchAgent, env)),
                        }
                    }
                },
                _ => return Err((Rejection::Invalid, env)),
            },
        };
        let slot = &mut self.slots[idx];
        if slot.stopped && !env.kind.is_control() {
            return Err((Rejection::AgentStopped, env));
        }
        let urgent = env.priority.is_urgent();
        // A client's confirmed send is answered once it is queued here.
        let confirm = match (&env.kind, &env.from) {
            (Kind::Send, Address::Client(ticket)) => Some((*ticket, env.id, env.priority)),
            _ => None,
        };
        match slot.mailbox.push(env) {
            Ok(()) => {
                if let Some((ticket, id, priority)) = confirm {
                    self.confirm_queued(ticket, id, priority);
                }
                let slot = &mut self.slots[idx];
                self.queued += 1;
                if !slot.scheduled {
                    slot.scheduled = true;
                    self.ready.push_back(idx);
                }
                if urgent && self.cfg.express_scheduling && !slot.express {
                    slot.express = true;
                    self.express.push_back(idx);
                }
                Ok(())
            }
            Err(env) => Err((Rejection::QueueFull, env)),
        }
    }

    /// Tells the client whose send was just queued here (an empty reply).
    #[cold]
    fn confirm_queued(&mut self, ticket: ClientTicket, id: MessageId, priority: Priority) {
        let reply = self.next_message_id();
        self.route_control(Envelope {
            id: reply,
            from: Address::Nobody,
            to: Address::Client(ticket),
            conversation: Some(id),
            in_reply_to: Some(id),
            priority,
            deadline: None,
            kind: Kind::Reply,
            payload: Bytes::new(),
        });
    }

    /// Ends the capture of the handler that just ran on `slot`: its replies
    /// to clients leave now, or once what they report is committed.
    #[inline(always)]
    fn release_replies(&mut self, slot: usize, position_before: u64) {
        let position = self.journal.position();
        let needs_commit = position != position_before || self.slots[slot].persistent;
        let mut out = Vec::new();
        self.replies.end_handler(position, needs_commit, &mut out);
        for env in out {
            self.route_control(env);
        }
    }

    fn complete_client_call(&mut self, ticket: u64, env: Envelope) {
        let Some(call) = self.client_calls.remove(&ticket) else {
            self.stats.late_replies += 1;
            return;
        };
        let result = match env.kind {
            Kind::Reply => {
                self.stats.replies += 1;
                self.record_round_trip(call.started);
                Ok(env)
            }
            Kind::CallRejected(reason) | Kind::Bounce(reason) => Err(CallError::Rejected(reason)),
            Kind::CallFailed(e) => Err(e),
            Kind::Send | Kind::Call => Err(CallError::Rejected(Rejection::Invalid)),
        };
        (call.waiter)(result);
    }

    fn record_round_trip(&mut self, started: Instant) {
        self.stats
            .call_latency_ns
            .saturating_record(elapsed_ns(started));
    }

    fn record_remote_round_trip(&mut self, started: Instant) {
        self.stats
            .remote_call_latency_ns
            .saturating_record(elapsed_ns(started));
    }

    /// Sends a refused ordinary message back to its sender.
    fn bounce(&mut self, env: Envelope, reason: Rejection) {
        // A durable message that cannot be delivered is dead-lettered: it
        // leaves the inbox like a handled one.
        self.journal.finish(env.id);
        let kind = match env.kind {
            Kind::Send => Kind::Bounce(reason),
            Kind::Call => Kind::CallRejected(reason),
            _ => {
                self.stats.control_dropped += 1;
                return;
            }
        };
        let id = self.next_message_id();
        self.route_control(Envelope {
            id,
            from: env.to,
            to: env.from,
            conversation: env.conversation,
            in_reply_to: Some(env.id),
            priority: env.priority,
            deadline: None,
            kind,
            payload: env.payload,
        });
    }

    #[allow(clippy::too_many_lines)]
    fn dispatch(
        &mut self,
        agent: &mut dyn Agent,
        me: &AgentId,
        slot: usize,
        env: Envelope,
        now: &mut Option<Instant>,
    ) {
        match env.kind {
            Kind::Send | Kind::Call => {
                if env.deadline.is_some() && env.is_expired(*now.get_or_insert_with(Instant::now)) {
                    self.stats.reject(Rejection::Expired);
                    self.bounce(env, Rejection::Expired);
                    return;
                }
                // One message in LATENCY_SAMPLE_EVERY is timed: two clock
                // reads per 16 messages.
                let timed = (self.stats.handled + self.stats.agent_panics)
                    .is_multiple_of(LATENCY_SAMPLE_EVERY)
                    .then(Instant::now);
                let current = Current {
                    id: env.id,
                    // Only a call can be replied to; a send needs no return address.
                    from: (env.kind == Kind::Call).then(|| env.from.clone()),
                    kind: env.kind,
                    conversation: env.conversation,
                    priority: env.priority,
                    replied: false,
                    failed: None,
                };
                let position_before = self.journal.position();
                self.replies.begin_handler();
                let mut ctx = Context {
                    core: self,
                    me,
                    slot,
                    current: Some(current),
                };
                let panicked =
                    catch_unwind(AssertUnwindSafe(|| agent.handle(&mut ctx, env))).is_err();
                let current = ctx.current.take().expect("current message is kept");
                if let Some(started) = timed {
                    self.stats.handle_ns.saturating_record(elapsed_ns(started));
                }
                // A durable message is finished once handled, failed or not:
                // a message that makes its handler panic must not come back
                // after every restart.
                self.journal.finish(current.id);
                self.release_replies(slot, position_before);
                let reason = if panicked {
                    self.stats.agent_panics += 1;
                    Rejection::AgentFailed
                } else if let Some(reason) = current.failed {
                    reason
                } else {
                    self.stats.handled += 1;
                    return;
                };
                self.stats.reject(reason);
                let answered = current.kind == Kind::Call && current.replied;
                if !answered {
                    // The payload went to the handler; the sender gets the reason.
                    let failed = Envelope {
                        id: current.id,
                        from: current.from.unwrap_or(Address::Nobody),
                        to: Address::Agent(me.clone()),
                        conversation: current.conversation,
                        in_reply_to: None,
                        priority: current.priority,
                        deadline: None,
                        kind: current.kind,
                        payload: Bytes::new(),
                    };
                    self.bounce(failed, reason);
                }
            }
            Kind::Reply | Kind::CallFailed(_) | Kind::Bounce(_) | Kind::CallRejected(_) => {
                let mut ctx = Context {
                    core: self,
                    me,
                    slot,
                    current: None,
                };
                let outcome = catch_unwind(AssertUnwindSafe(|| match env.kind {
                    Kind::Reply => {
                        let call = env.in_reply_to.unwrap_or(env.id);
                        agent.on_reply(&mut ctx, call, Ok(env));
                    }
                    Kind::CallFailed(e) => {
                        agent.on_reply(&mut ctx, env.in_reply_to.unwrap_or(env.id), Err(e));
                    }
                    Kind::Bounce(reason) | Kind::CallRejected(reason) => {
                        agent.on_undelivered(&mut ctx, returned_original(env), reason);
                    }
                    Kind::Send | Kind::Call => unreachable!("ordinary kinds are handled above"),
                }));
                if outcome.is_err() {
                    self.stats.agent_panics += 1;
                }
            }
        }
    }
}

/// The message a bounce carries back, as its sender sent it: addressed to the
/// agent that could not take it, with its original id and payload.
/// Time since `started` in ns, within what a latency histogram tracks
/// (at least 1).
fn elapsed_ns(started: Instant) -> u64 {
    started
        .elapsed()
        .as_nanos()
        .clamp(1, u128::from(crate::stats::MAX_TRACKED_NS)) as u64
}

fn returned_original(bounce: Envelope) -> Envelope {
    let kind = match bounce.kind {
        Kind::CallRejected(_) => Kind::Call,
        _ => Kind::Send,
    };
    Envelope {
        id: bounce.in_reply_to.unwrap_or(bounce.id),
        from: bounce.to,
        to: bounce.from,
        in_reply_to: None,
        kind,
        ..bounce
    }
}
