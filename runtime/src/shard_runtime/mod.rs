//! One shard's executor: the glommio tasks that drive its [`ShardCore`].
//!
//! Tasks of a shard, all on its pinned thread:
//! - the **dispatcher** is the hot loop: it takes batches off the inbound
//!   SPSC channels, runs ready agents a budget at a time, and puts each peer's
//!   outbox on its channel as one batch. When a peer keeps up, a batch holds
//!   the one message just sent; when its channel is full the outbox fills and
//!   the next batch carries all of it. When there is nothing to do it spins
//!   (for `spin_before_park`) watching the peers' doorbells, then parks;
//! - one **receiver** per peer delivers batches that arrive while the
//!   dispatcher is parked (glommio wakes it);
//! - one **flusher** per peer waits for room when that peer's channel is
//!   full, so the dispatcher never blocks on a slow peer;
//! - the **timer** task fires call timeouts and delayed sends while parked;
//! - the **command** task serves client handles (register, send, call,
//!   stats, shutdown).
//!
//! Why a doorbell next to each glommio channel: a glommio receiver can only
//! be polled by registering a waker, and glommio's own wake-up path costs a
//! full reactor iteration (several µs here). Each sender bumps a shared
//! counter after each batch; a spinning dispatcher sees it change within
//! nanoseconds and takes the batch, which is then certain to be there.

mod serve;

use serve::serve;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use glommio::channels::shared_channel::{
    ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::{GlommioError, ResourceType};
use quire_shards::{
    Agent, AgentId, AgentRecord, CallError, DurableAdmission, Envelope, MessageId, RegisterError,
    Rejection, SendOptions, ShardConfig, ShardCore, ShardStats,
};

use quire_shards::wasm::{WasmEngine, WasmShard, WasmShardConfig, WasmShardStats};
use quire_shards::AgentInfo;

use crate::agent_kinds::AgentKinds;
use crate::client::{DeployError, DurableError, DurableReceipt};
use crate::profile::Activity;
use crate::shard_storage::{ShardStorage, StorageSetup};
use crate::signal::Signal;

/// Longest time a shard's reactor sleeps without looking around (see the
/// timers task).
const HEARTBEAT: Duration = Duration::from_millis(2);

/// What crosses the mesh: envelopes in send order.
pub(crate) type Batch = Vec<Envelope>;

/// Builds an agent on its shard's thread (agents need not be `Send`).
pub type AgentFactory = Box<dyn FnOnce() -> Box<dyn Agent> + Send>;

/// Requests from client handles to a shard.
pub(crate) enum Command {
    Register {
        id: AgentId,
        factory: AgentFactory,
        done: flume::Sender<Result<(), RegisterError>>,
    },
    /// Many native agents at once (`Client::register_many`): an answer
    /// per agent, in order.
    RegisterMany {
        agents: Vec<(AgentId, AgentFactory)>,
        done: flume::Sender<Vec<Result<(), RegisterError>>>,
    },
    /// Many deploys at once (`Client::deploy_wasm_many`): answered, in
    /// order, once the shard's journal holding them all is committed.
    DeployMany {
        records: Vec<AgentRecord>,
        done: flume::Sender<Vec<Result<(), DeployError>>>,
    },
    Unregister {
        id: AgentId,
        done: flume::Sender<Result<usize, RegisterError>>,
    },
    Deploy {
        record: AgentRecord,
        done: flume::Sender<Result<(), DeployError>>,
    },
    SendDurable {
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        dedup: u64,
        done: flume::Sender<Result<DurableReceipt, DurableError>>,
    },
    Send {
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        done: flume::Sender<Result<MessageId, Rejection>>,
    },
    Call {
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        timeout: Duration,
        done: flume::Sender<Result<Envelope, CallError>>,
    },
    Stats {
        done: flume::Sender<ShardStats>,
    },
    Redeploy {
        record: AgentRecord,
        done: flume::Sender<Result<(), DeployError>>,
    },
    SetStopped {
        id: AgentId,
        stopped: bool,
        done: flume::Sender<Result<(), RegisterError>>,
    },
    ListAgents {
        done: flume::Sender<Vec<AgentInfo>>,
    },
    DeployPattern {
        record: AgentRecord,
        done: flume::Sender<Result<(), DeployError>>,
    },
    UndeployPattern {
        pattern: String,
        done: flume::Sender<Result<bool, DeployError>>,
    },
    WasmStats {
        done: flume::Sender<WasmShardStats>,
    },
    /// The shard's figures for a scrape of `/metrics`.
    Metrics {
        done: flume::Sender<crate::metrics::ShardMetrics>,
    },
    Probe {
        done: flume::Sender<Probe>,
    },
    /// Names of the agents in published running slots (slot + 1), for a
    /// CPU profile.
    NameSlots {
        slots: Vec<usize>,
        done: flume::Sender<crate::profile::ShardNames>,
    },
    /// The cluster's members changed (sent by the membership on shard 0).
    Members {
        members: Vec<crate::cluster::MemberInfo>,
    },
    Drain,
    Stop,
}

/// A shard's answer to "are you done?" during shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    pub idle: bool,
    pub cross_out: u64,
    pub cross_in: u64,
}

/// Counts batches put on one shard-to-shard channel; the receiving shard
/// compares it with what it took off. On its own cache line, since two
/// cores touch it.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Doorbell(AtomicU64);

/// Everything a shard's thread needs, built on the node's thread.
pub(crate) struct ShardWiring {
    pub cfg: ShardConfig,
    pub dispatch_budget: usize,
    /// Stop taking batches from peers while this many messages wait here.
    pub intake_limit: usize,
    /// Keep polling this long when idle before parking.
    pub spin: Option<Duration>,
    /// Index = peer shard; `None` for this shard itself. With the doorbell
    /// this shard rings after each batch it puts on that channel.
    pub senders: Vec<Option<(SharedSender<Batch>, Arc<Doorbell>)>>,
    /// One per peer, with the doorbell that peer rings.
    pub receivers: Vec<(SharedReceiver<Batch>, Arc<Doorbell>)>,
    pub commands: flume::Receiver<Command>,
    /// How deployed agents are built.
    pub kinds: AgentKinds,
    /// The shard's partition and what it held, when the node is durable.
    pub storage: Option<StorageSetup>,
    /// The node's module compiler, for this shard's wasm host.
    pub wasm_engine: WasmEngine,
    /// Pools and idle deactivation of this shard's wasm agents.
    pub wasm: WasmShardConfig,
    /// The shard's sockets, when the node listens.
    pub net: Option<crate::net::NetWiring>,
    /// Bumped every heartbeat while the reactor runs (see `watchdog`), with
    /// the reactor's stall counters.
    pub pulse: Arc<crate::watchdog::ShardPulse>,
    /// glommio's backtrace reports for task queues running this long (off
    /// unless `metrics.stall_backtraces`).
    pub stall_backtraces: Option<Duration>,
}

struct Outbound {
    peer: u16,
    sender: ConnectedSender<Batch>,
    doorbell: Arc<Doorbell>,
    /// A batch the channel had no room for, now the flusher's to send.
    parked: RefCell<Option<Batch>>,
    /// Set while the flusher owns this route: the dispatcher then leaves the
    /// outbox alone, so that order is kept.
    blocked: Cell<bool>,
    wake_flusher: Signal,
}

impl Outbound {
    fn sent(&self) {
        self.doorbell.0.fetch_add(1, Ordering::Release);
    }
}

struct Inbound {
    receiver: ConnectedReceiver<Batch>,
    doorbell: Arc<Doorbell>,
    /// Batches taken off (by the dispatcher or the receiver task).
    taken: Cell<u64>,
}

impl Inbound {
    fn has_batches(&self) -> bool {
        self.doorbell.0.load(Ordering::Acquire) > self.taken.get()
    }
}

pub(crate) struct Shared {
    pub(crate) core: RefCell<ShardCore>,
    /// Messages queued here above which socket readers stop and let the
    /// dispatcher catch up (see `queues.intake_limit`).
    pub(crate) intake_limit: usize,
    pub(crate) work: Signal,
    /// Set when a connection's writer or a link was woken: the dispatcher
    /// then yields, so that they write before it spins or runs on.
    pub(crate) io_pending: Rc<Cell<bool>>,
    net: Option<Rc<crate::net::NetShard>>,
    timer: Signal,
    outbound: Vec<Outbound>,
    inbound: Vec<Inbound>,
    commands: flume::Receiver<Command>,
    /// Batches taken from an outbox and not yet on a channel.
    in_flight: Cell<usize>,
    stopped: Cell<bool>,
    kinds: AgentKinds,
    storage: Option<ShardStorage>,
    wasm: Rc<WasmShard>,
    /// The watchdog's view of this shard (stalls, nudges).
    pub(crate) pulse: Arc<crate::watchdog::ShardPulse>,
    /// When the shard started (for uptime).
    pub(crate) started: Instant,
    /// The previous scrape: when, and the reactor's busy time then (for
    /// utilisation since it).
    pub(crate) last_scrape: Cell<Option<(Instant, Duration)>>,
}

impl Shared {
    /// Lets the dispatcher run while this shard holds `intake_limit` or more
    /// queued messages: a socket reader calls it after admitting, so that a
    /// fast sender fills its own outbox (and gets `QueueFull` there) rather
    /// than overflowing mailboxes here.
    pub(crate) async fn make_room(&self) {
        while self.core.borrow().queued() >= self.intake_limit && !self.stopped.get() {
            self.work.notify();
            future::yield_now().await;
        }
    }

    /// Wakes the committer when the core journaled something.
    #[inline]
    fn note_writes(&self) {
        if let Some(storage) = &self.storage {
            storage.note_writes(self.core.borrow().journal_position());
        }
    }

    pub(crate) fn storage(&self) -> Option<&ShardStorage> {
        self.storage.as_ref()
    }

    pub(crate) fn net(&self) -> Option<&crate::net::NetShard> {
        self.net.as_deref()
    }

    pub(crate) fn wasm(&self) -> &WasmShard {
        &self.wasm
    }

    /// Envelopes waiting for the mesh (in outboxes and taken batches).
    pub(crate) fn mesh_backlog(&self) -> usize {
        let core = self.core.borrow();
        self.outbound
            .iter()
            .map(|o| core.outbox_len(o.peer))
            .sum::<usize>()
    }

    fn stats(&self) -> ShardStats {
        let mut stats = self.core.borrow().stats();
        if let Some(storage) = &self.storage {
            storage.fill(&mut stats);
        }
        stats
    }

    /// Delivers the batches waiting on the inbound channels while fewer than
    /// `intake_limit` messages wait here; returns how many envelopes came in.
    ///
    /// A shard that is behind leaves batches on its channels: they fill,
    /// the sending shard's outbox fills behind them, and its agents get
    /// `QueueFull` at once, which costs far less than accepting messages
    /// that would only bounce off full mailboxes later.
    async fn take_inbound(&self, intake_limit: usize) -> usize {
        let mut delivered = 0;
        for inbound in &self.inbound {
            while inbound.has_batches() && self.core.borrow().queued() < intake_limit {
                // The doorbell rang after the push, so the batch is there and
                // this poll completes without registering a waker.
                match future::poll_once(inbound.receiver.recv()).await {
                    Some(Some(batch)) => {
                        inbound.taken.set(inbound.taken.get() + 1);
                        delivered += batch.len();
                        self.deliver(batch);
                    }
                    _ => break,
                }
            }
        }
        delivered
    }

    fn deliver(&self, batch: Batch) {
        let mut core = self.core.borrow_mut();
        for env in batch {
            core.deliver_from_peer(env);
        }
    }

    /// Puts every non-empty outbox on its channel; a full channel hands its
    /// route to the flusher. Returns how many batches went out.
    fn flush_outbound(&self) -> usize {
        let mut sent = 0;
        for out in &self.outbound {
            if out.blocked.get() {
                continue;
            }
            let batch = {
                let mut core = self.core.borrow_mut();
                if core.outbox_len(out.peer) == 0 {
                    continue;
                }
                core.take_outbox(out.peer)
            };
            match out.sender.try_send(batch) {
                Ok(()) => {
                    out.sent();
                    sent += 1;
                }
                Err(GlommioError::WouldBlock(ResourceType::Channel(batch))) => {
                    out.blocked.set(true);
                    self.in_flight.set(self.in_flight.get() + 1);
                    *out.parked.borrow_mut() = Some(batch);
                    out.wake_flusher.notify();
                }
                Err(GlommioError::Closed(ResourceType::Channel(batch))) => {
                    self.core
                        .borrow_mut()
                        .reject_undeliverable(batch, Rejection::ShuttingDown);
                }
                Err(_) => {}
            }
        }
        sent
    }

    fn stop(&self) {
        let rejected = self.core.borrow_mut().abort_all();
        if rejected > 0 {
            tracing::info!(
                shard = self.core.borrow().shard(),
                rejected,
                "shutdown rejected queued messages"
            );
        }
        self.stopped.set(true);
        if let Some(net) = &self.net {
            net.stop();
        }
        self.work.notify();
        self.timer.notify();
        if let Some(storage) = &self.storage {
            storage.kick.notify();
        }
        for out in &self.outbound {
            out.wake_flusher.notify();
        }
    }
}

/// Runs a shard until it is told to stop and every peer has closed its
/// channel towards it; returns the shard's final figures.
pub(crate) async fn run_shard(
    mut wiring: ShardWiring,
    mut core: ShardCore,
    wasm: Rc<WasmShard>,
) -> ShardStats {
    // The reactor's pulse: the node's watchdog nudges a shard whose pulse
    // stops (a reactor asleep past its own timers).
    wiring.pulse.register_thread();
    core.publish_running(wiring.pulse.running.clone());
    let pulse = wiring.pulse.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(HEARTBEAT).await;
            pulse.beat.fetch_add(1, Ordering::Relaxed);
        }
    })
    .detach();
    let net_wiring = wiring.net.take();
    let net = net_wiring
        .as_ref()
        .map(|w| crate::net::NetShard::new(core.shard(), w.settings.clone(), w.client.clone()));
    if let Some(routes) = net.as_ref().and_then(|n| n.routes()) {
        core.set_remote_routes(routes);
    }
    // Until the timer task runs, a heartbeat of its own keeps this reactor
    // from sleeping through a lost wake-up while the mesh connects (seen:
    // two shards asleep, each waiting for the other's connect).
    let connecting = heartbeat_while_set();
    // Connect every channel end at once: a connect waits for its peer's, and
    // peers connect in their own order.
    let sender_tasks: Vec<_> = wiring
        .senders
        .into_iter()
        .enumerate()
        .filter_map(|(peer, s)| s.map(|(s, bell)| (peer, bell, glommio::spawn_local(s.connect()))))
        .collect();
    let receiver_tasks: Vec<_> = wiring
        .receivers
        .into_iter()
        .map(|(r, bell)| (bell, glommio::spawn_local(r.connect())))
        .collect();
    let mut outbound = Vec::new();
    for (peer, doorbell, task) in sender_tasks {
        outbound.push(Outbound {
            peer: peer as u16,
            sender: task.await,
            doorbell,
            parked: RefCell::new(None),
            blocked: Cell::new(false),
            wake_flusher: Signal::default(),
        });
    }
    let mut inbound = Vec::new();
    for (doorbell, task) in receiver_tasks {
        inbound.push(Inbound {
            receiver: task.await,
            doorbell,
            taken: Cell::new(0),
        });
    }
    connecting.set(false);

    let shared = Rc::new(Shared {
        core: RefCell::new(core),
        intake_limit: wiring.intake_limit,
        work: Signal::default(),
        io_pending: Rc::new(Cell::new(false)),
        net: net.clone(),
        timer: Signal::default(),
        outbound,
        inbound,
        commands: wiring.commands,
        in_flight: Cell::new(0),
        stopped: Cell::new(false),
        kinds: wiring.kinds,
        storage: wiring
            .storage
            .map(|s| ShardStorage::new(s.partition, s.policy)),
        wasm,
        pulse: wiring.pulse,
        started: Instant::now(),
        last_scrape: Cell::new(None),
    });
    if let (Some(net), Some(wiring)) = (&net, net_wiring) {
        crate::net::start(&shared, net, wiring);
    }
    let mut tasks = Vec::new();
    for i in 0..shared.outbound.len() {
        tasks.push(glommio::spawn_local(flusher(shared.clone(), i)));
    }
    let receivers: Vec<_> = (0..shared.inbound.len())
        .map(|i| glommio::spawn_local(receiver(shared.clone(), i)))
        .collect();
    tasks.push(glommio::spawn_local(timers(shared.clone())));
    tasks.push(glommio::spawn_local(commands(shared.clone())));
    let committer = shared.storage.is_some().then(|| {
        let shared = shared.clone();
        glommio::spawn_local(async move {
            if let Some(storage) = &shared.storage {
                storage
                    .run(&shared.core, &shared.work, || shared.stopped.get())
                    .await;
            }
        })
    });

    dispatcher(
        &shared,
        wiring.dispatch_budget,
        wiring.intake_limit,
        wiring.spin,
    )
    .await;
    // The timer task ends with the dispatcher; what follows waits on peers
    // and on the commit thread, whose wake-ups glommio can lose too (seen
    // once in a test: both shards asleep with no timer due until a signal
    // woke them).
    let stopping = heartbeat_while_set();
    for t in tasks {
        t.await;
    }
    // Peers may still be sending until they stop too; what arrives now is
    // counted as rejected by the stopped core.
    for r in receivers {
        r.await;
    }
    // What handlers journaled before the stop is committed before the shard
    // reports, so a clean shutdown redelivers nothing that was handled.
    if let Some(c) = committer {
        c.await;
    }
    stopping.set(false);
    shared.stats()
}

/// Wakes this reactor every heartbeat until the returned flag is cleared:
/// for the phases when the timer task is not running.
fn heartbeat_while_set() -> Rc<Cell<bool>> {
    let flag = Rc::new(Cell::new(true));
    let running = flag.clone();
    glommio::spawn_local(async move {
        while running.get() {
            glommio::timer::sleep(HEARTBEAT).await;
        }
    })
    .detach();
    flag
}

/// Reactor polls the dispatcher waits for after agents took the shard's
/// turn quota (see `dispatcher`).
const REACTOR_HOPS_AFTER_LONG_HANDLER: usize = 4;

async fn dispatcher(
    shared: &Rc<Shared>,
    budget: usize,
    intake_limit: usize,
    spin: Option<Duration>,
) {
    loop {
        if shared.stopped.get() {
            return;
        }
        // Whatever woke us is about to be handled by this iteration.
        shared.work.clear();
        let activity = &shared.pulse.activity;
        activity.set(Activity::Intake);
        let mut progress = shared.take_inbound(intake_limit).await;
        let yield_asked;
        {
            let mut core = shared.core.borrow_mut();
            activity.set(Activity::Agents);
            progress += core.run(budget);
            yield_asked = core.take_yield_request();
            // A busy shard keeps its timers itself; the timer task only
            // covers a parked one.
            activity.set(Activity::Timers);
            progress += core.fire_due_timers();
        }
        shared.note_writes();
        activity.set(Activity::Flush);
        progress += shared.flush_outbound();
        if let Some(net) = &shared.net {
            net.flush_links(shared);
        }
        activity.set(Activity::Reactor);
        if shared.core.borrow_mut().take_timer_rearm() {
            shared.timer.notify();
        }
        if yield_asked {
            // Agents took the turn quota: whatever arrived meanwhile (client commands,
            // socket reads, links) is known only to the reactor, which a
            // plain yield does not reach (glommio runs the ready tasks of
            // the queue again first). A timer makes this task wait for a
            // reactor poll, so every task woken by it runs before the next
            // agent's turn; a request takes a few such hops (socket read,
            // command to each shard, answer, socket write), so the
            // dispatcher waits out as many polls.
            activity.set(Activity::Reactor);
            for _ in 0..REACTOR_HOPS_AFTER_LONG_HANDLER {
                glommio::timer::sleep(Duration::from_micros(1)).await;
            }
        } else if shared.io_pending.replace(false) {
            // Connection writers and links were woken: let them write now.
            future::yield_now().await;
        }
        if progress > 0 {
            // Busy: let glommio in only when its time slice is up.
            glommio::yield_if_needed().await;
            continue;
        }
        if shared.core.borrow().has_ready() {
            continue;
        }
        if let Some(spin) = spin {
            activity.set(Activity::Spin);
            let news = spin_for_news(shared, spin);
            activity.set(Activity::Reactor);
            match news {
                // Batches from peers and due timers are the dispatcher's own.
                News::Work => continue,
                // Client commands are served by their task, which glommio
                // wakes only from its reactor: park, and the command task
                // wakes the dispatcher when it is done.
                News::Commands | News::Nothing => {}
            }
        }
        shared.work.wait().await;
    }
}

/// What ended a spin.
enum News {
    /// Batches from peers, a wake-up from another task, or a timer due.
    Work,
    /// Client commands are waiting.
    Commands,
    /// The spin time ran out.
    Nothing,
}

/// Polls for work without yielding for up to `spin`.
fn spin_for_news(shared: &Shared, spin: Duration) -> News {
    let until = Instant::now() + spin;
    let next_timer = shared.core.borrow_mut().next_timer();
    let mut rounds = 0u32;
    loop {
        if shared.inbound.iter().any(Inbound::has_batches)
            || shared.work.is_set()
            || shared.io_pending.get()
        {
            return News::Work;
        }
        rounds += 1;
        // The client queue takes a lock and the clock costs a call: look
        // at them less often than at the doorbells.
        if rounds.is_multiple_of(16) && !shared.commands.is_empty() {
            return News::Commands;
        }
        if rounds.is_multiple_of(64) {
            let now = Instant::now();
            if next_timer.is_some_and(|t| now >= t) {
                return News::Work;
            }
            if now >= until {
                return News::Nothing;
            }
        }
        std::hint::spin_loop();
    }
}

async fn flusher(shared: Rc<Shared>, index: usize) {
    let out = &shared.outbound[index];
    loop {
        out.wake_flusher.wait().await;
        let mut next = out.parked.borrow_mut().take();
        while let Some(batch) = next {
            match out.sender.send(batch).await {
                Ok(()) => out.sent(),
                Err(GlommioError::Closed(ResourceType::Channel(batch))) => {
                    shared
                        .core
                        .borrow_mut()
                        .reject_undeliverable(batch, Rejection::ShuttingDown);
                }
                Err(_) => {}
            }
            // Whatever queued up meanwhile goes next, still in order.
            let more = shared.core.borrow_mut().take_outbox(out.peer);
            next = (!more.is_empty()).then_some(more);
        }
        if out.blocked.replace(false) {
            shared.in_flight.set(shared.in_flight.get() - 1);
        }
        shared.work.notify();
        if shared.stopped.get() {
            out.sender.close();
            return;
        }
    }
}

async fn receiver(shared: Rc<Shared>, index: usize) {
    let inbound = &shared.inbound[index];
    while let Some(batch) = inbound.receiver.recv().await {
        inbound.taken.set(inbound.taken.get() + 1);
        shared.deliver(batch);
        shared.work.notify();
    }
}

/// Logs the stalls the watchdog counted since the last call, naming the
/// agent whose turn it was (the watchdog cannot: names live here).
fn report_stalls(shared: &Shared, reported: &mut u64) {
    let pulse = &shared.pulse;
    let counted = pulse.counters.stalls.load(Ordering::Relaxed);
    if counted == *reported {
        return;
    }
    let missed = counted - *reported - 1;
    *reported = counted;
    let ns = pulse.last_stall.1.load(Ordering::Relaxed);
    let running = pulse.last_stall.0.load(Ordering::Relaxed);
    let shard = shared.core.borrow().shard();
    let what = match shared.core.borrow().slot_name(running) {
        Some(agent) => format!("agent {agent}'s turn"),
        None => format!(
            "the runtime itself ({}; no agent's turn)",
            pulse.last_stall_activity.get().as_str()
        ),
    };
    // A stall the thread spent mostly off its CPU is the host's doing
    // (another thread had the CPU, or a blocking call), not a long task.
    let cpu_ns = pulse.last_stall_cpu_ns.load(Ordering::Relaxed).min(ns);
    let on_cpu = if cpu_ns * 2 < ns {
        format!(
            " (on its CPU for only {} ms of them: the thread waited for a CPU another thread \
             had, or blocked in a system call)",
            cpu_ns / 1_000_000
        )
    } else {
        String::new()
    };
    let faults = pulse.last_stall_faults.load(Ordering::Relaxed);
    let on_cpu = if faults > 0 {
        format!("{on_cpu} ({faults} page faults while it was seen)")
    } else {
        on_cpu
    };
    tracing::warn!(
        shard,
        stalled_ms = ns / 1_000_000,
        on_cpu_ms = cpu_ns / 1_000_000,
        page_faults = faults,
        "reactor stall: shard {shard} did not yield for {} ms, running {what}{on_cpu}{}",
        ns / 1_000_000,
        if missed > 0 {
            format!(" ({missed} more stall(s) since the last report)")
        } else {
            String::new()
        }
    );
}

async fn timers(shared: Rc<Shared>) {
    // The wasm host's sweep (idle deactivation, pool refills) rides on this
    // task's wake-ups, at most every tenth of a second.
    let sweep_every = shared.wasm.sweep_interval().min(Duration::from_millis(100));
    let mut last_sweep = Instant::now();
    let mut stalls_reported = 0;
    while !shared.stopped.get() {
        let next = shared.core.borrow_mut().next_timer();
        // Never sleep longer than a heartbeat: glommio 0.9 can lose the
        // wake-up a foreign thread (a client, the blocking pool) sends to a
        // reactor that is just going to sleep (seen in tests about once in
        // ten runs as a shard asleep on a waiting command). A reactor that
        // wakes each heartbeat picks such a wake-up up within it.
        let now = Instant::now();
        let wait = next.map_or(HEARTBEAT, |at| {
            at.saturating_duration_since(now).min(HEARTBEAT)
        });
        if !wait.is_zero() {
            future::or(glommio::timer::sleep(wait), shared.timer.wait()).await;
        }
        if shared.stopped.get() {
            return;
        }
        // A batch a peer rang for but whose channel wake-up was lost (the
        // receiver task asleep, the dispatcher parked) is taken now, within
        // a heartbeat, instead of never.
        if shared.inbound.iter().any(Inbound::has_batches) {
            shared.work.notify();
        }
        let now = Instant::now();
        shared.pulse.activity.set(Activity::Timers);
        if shared.core.borrow_mut().fire_timers(now) > 0 {
            shared.work.notify();
            shared.note_writes();
        }
        report_stalls(&shared, &mut stalls_reported);
        if now.duration_since(last_sweep) >= sweep_every {
            last_sweep = now;
            shared.pulse.activity.set(Activity::Sweep);
            shared.wasm.sweep(now);
        }
        shared.pulse.activity.set(Activity::Reactor);
    }
}

/// The commands task gives the reactor back after this long (or 64
/// commands), so that a queue of heavy commands (batch registrations,
/// deploys) never holds the shard's agents up past a stall threshold.
const COMMANDS_SLICE: Duration = Duration::from_micros(250);

async fn commands(shared: Rc<Shared>) {
    let mut since_yield = 0u32;
    let mut slice_start = Instant::now();
    while let Ok(cmd) = shared.commands.recv_async().await {
        let stop = matches!(cmd, Command::Stop);
        shared.pulse.activity.set(Activity::Commands);
        serve(&shared, cmd);
        shared.note_writes();
        shared.pulse.activity.set(Activity::Reactor);
        if stop {
            // Anything still queued from clients is answered by dropping its
            // reply channel, which the client reports as `ShuttingDown`.
            return;
        }
        shared.work.notify();
        since_yield += 1;
        if since_yield >= 64 || slice_start.elapsed() >= COMMANDS_SLICE {
            since_yield = 0;
            future::yield_now().await;
            slice_start = Instant::now();
        }
    }
    // Every client handle is gone: stop as if told to.
    shared.stop();
}
