//! One shard's executor: the glommio tasks that drive its [`ShardCore`].
//!
//! Tasks of a shard, all on its pinned thread:
//! - the **dispatcher** runs ready agents, a budget at a time;
//! - one **flusher** per peer shard takes that peer's outbox as one batch and
//!   puts it on the SPSC channel. When the peer keeps up, each batch holds the
//!   one message just sent; when the channel is full the flusher waits for
//!   room while the outbox fills, and the next batch carries all of it;
//! - one **receiver** per peer delivers incoming batches;
//! - the **timer** task fires call timeouts and delayed sends;
//! - the **command** task serves client handles (register, send, call,
//!   stats, shutdown).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use glommio::channels::shared_channel::{
    ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::{GlommioError, ResourceType};
use quire_shards::{
    Agent, AgentId, CallError, Envelope, MessageId, RegisterError, Rejection, SendOptions,
    ShardConfig, ShardCore, ShardStats,
};

use crate::signal::Signal;

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
    Unregister {
        id: AgentId,
        done: flume::Sender<Result<usize, RegisterError>>,
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
    Probe {
        done: flume::Sender<Probe>,
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

/// Everything a shard's thread needs, built on the node's thread.
pub(crate) struct ShardWiring {
    pub cfg: ShardConfig,
    pub dispatch_budget: usize,
    /// Index = peer shard; `None` for this shard itself.
    pub senders: Vec<Option<SharedSender<Batch>>>,
    pub receivers: Vec<SharedReceiver<Batch>>,
    pub commands: flume::Receiver<Command>,
}

struct Shared {
    core: RefCell<ShardCore>,
    work: Signal,
    timer: Signal,
    flush: Vec<Signal>,
    /// Batches taken from an outbox and not yet on the channel.
    in_flight: Cell<usize>,
    stopped: Cell<bool>,
}

impl Shared {
    /// After anything changed the core: wake whoever has new work.
    fn kick(&self) {
        let mut core = self.core.borrow_mut();
        for (peer, flush) in self.flush.iter().enumerate() {
            if core.outbox_len(peer as u16) > 0 {
                flush.notify();
            }
        }
        if core.take_timer_rearm() {
            self.timer.notify();
        }
        if core.has_ready() {
            self.work.notify();
        }
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
        self.work.notify();
        self.timer.notify();
        for f in &self.flush {
            f.notify();
        }
    }
}

/// Runs a shard until it is told to stop and every peer has closed its
/// channel towards it; returns the shard's final figures.
pub(crate) async fn run_shard(wiring: ShardWiring) -> ShardStats {
    let shard_count = wiring.cfg.shard_count;
    let shared = Rc::new(Shared {
        core: RefCell::new(ShardCore::new(wiring.cfg)),
        work: Signal::default(),
        timer: Signal::default(),
        flush: (0..shard_count).map(|_| Signal::default()).collect(),
        in_flight: Cell::new(0),
        stopped: Cell::new(false),
    });

    // Connect every channel end at once: a connect waits for its peer's, and
    // peers connect in their own order.
    let sender_tasks: Vec<_> = wiring
        .senders
        .into_iter()
        .enumerate()
        .filter_map(|(peer, s)| s.map(|s| (peer, glommio::spawn_local(s.connect()))))
        .collect();
    let receiver_tasks: Vec<_> = wiring
        .receivers
        .into_iter()
        .map(|r| glommio::spawn_local(r.connect()))
        .collect();
    let mut senders = Vec::new();
    for (peer, task) in sender_tasks {
        senders.push((peer, task.await));
    }
    let mut receivers = Vec::new();
    for task in receiver_tasks {
        receivers.push(task.await);
    }

    let mut tasks = Vec::new();
    for (peer, sender) in senders {
        tasks.push(glommio::spawn_local(flusher(shared.clone(), peer, sender)));
    }
    let receiver_handles: Vec<_> = receivers
        .into_iter()
        .map(|r| glommio::spawn_local(receiver(shared.clone(), r)))
        .collect();
    tasks.push(glommio::spawn_local(timers(shared.clone())));
    tasks.push(glommio::spawn_local(commands(
        shared.clone(),
        wiring.commands,
    )));

    dispatcher(&shared, wiring.dispatch_budget).await;
    for t in tasks {
        t.await;
    }
    // Peers may still be sending until they stop too; what arrives now is
    // counted as rejected by the stopped core.
    for r in receiver_handles {
        r.await;
    }
    let stats = shared.core.borrow().stats();
    stats
}

async fn dispatcher(shared: &Shared, budget: usize) {
    loop {
        shared.work.wait().await;
        if shared.stopped.get() {
            return;
        }
        loop {
            let more = {
                let mut core = shared.core.borrow_mut();
                core.run(budget);
                core.has_ready()
            };
            shared.kick();
            if !more || shared.stopped.get() {
                break;
            }
            // Let receivers, flushers and timers in between budgets.
            future::yield_now().await;
        }
    }
}

async fn flusher(shared: Rc<Shared>, peer: usize, sender: ConnectedSender<Batch>) {
    let signal = &shared.flush[peer];
    loop {
        signal.wait().await;
        loop {
            let batch = shared.core.borrow_mut().take_outbox(peer as u16);
            if batch.is_empty() {
                break;
            }
            shared.in_flight.set(shared.in_flight.get() + 1);
            let sent = match sender.try_send(batch) {
                Ok(()) => Ok(()),
                Err(GlommioError::WouldBlock(ResourceType::Channel(batch))) => {
                    sender.send(batch).await
                }
                Err(e) => Err(e),
            };
            shared.in_flight.set(shared.in_flight.get() - 1);
            if let Err(GlommioError::Closed(ResourceType::Channel(batch))) = sent {
                shared
                    .core
                    .borrow_mut()
                    .reject_undeliverable(batch, Rejection::ShuttingDown);
            }
        }
        if shared.stopped.get() {
            sender.close();
            return;
        }
    }
}

async fn receiver(shared: Rc<Shared>, rx: ConnectedReceiver<Batch>) {
    while let Some(batch) = rx.recv().await {
        {
            let mut core = shared.core.borrow_mut();
            for env in batch {
                core.deliver_from_peer(env);
            }
        }
        if !shared.stopped.get() {
            shared.kick();
        }
    }
}

async fn timers(shared: Rc<Shared>) {
    while !shared.stopped.get() {
        let next = shared.core.borrow_mut().next_timer();
        match next {
            None => shared.timer.wait().await,
            Some(at) => {
                let now = Instant::now();
                if at > now {
                    future::or(glommio::timer::sleep(at - now), shared.timer.wait()).await;
                }
            }
        }
        if shared.stopped.get() {
            return;
        }
        let fired = shared.core.borrow_mut().fire_timers(Instant::now());
        if fired > 0 {
            shared.kick();
        }
    }
}

async fn commands(shared: Rc<Shared>, rx: flume::Receiver<Command>) {
    let mut since_yield = 0u32;
    while let Ok(cmd) = rx.recv_async().await {
        let stop = matches!(cmd, Command::Stop);
        serve(&shared, cmd);
        if stop {
            // Anything still queued from clients is answered by dropping its
            // reply channel, which the client reports as `ShuttingDown`.
            return;
        }
        shared.kick();
        since_yield += 1;
        if since_yield >= 64 {
            since_yield = 0;
            future::yield_now().await;
        }
    }
    // Every client handle is gone: stop as if told to.
    shared.stop();
}

fn serve(shared: &Shared, cmd: Command) {
    let mut core = shared.core.borrow_mut();
    match cmd {
        Command::Register { id, factory, done } => {
            let _ = done.send(core.register(id, factory()));
        }
        Command::Unregister { id, done } => {
            let _ = done.send(core.unregister(&id));
        }
        Command::Send {
            to,
            payload,
            opts,
            done,
        } => {
            let _ = done.send(core.admit_client(to, payload, opts));
        }
        Command::Call {
            to,
            payload,
            opts,
            timeout,
            done,
        } => {
            let waiter = Box::new(move |r| {
                let _ = done.send(r);
            });
            let _ = core.admit_client_call(to, payload, opts, timeout, waiter);
        }
        Command::Stats { done } => {
            let _ = done.send(core.stats());
        }
        Command::Probe { done } => {
            let s = core.counters();
            let _ = done.send(Probe {
                idle: core.is_idle() && shared.in_flight.get() == 0,
                cross_out: s.cross_shard_out,
                cross_in: s.cross_shard_in,
            });
        }
        Command::Drain => core.begin_drain(),
        Command::Stop => {
            drop(core);
            shared.stop();
        }
    }
}
