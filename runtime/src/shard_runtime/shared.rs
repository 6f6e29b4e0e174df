//! The state a shard's tasks share on its thread (`Shared`: the core, its
//! mesh channels and doorbells, storage, the network), and how it is wired
//! on the node's thread (`ShardWiring`).

use super::*;

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

pub(super) struct Outbound {
    pub(super) peer: u16,
    pub(super) sender: ConnectedSender<Batch>,
    pub(super) doorbell: Arc<Doorbell>,
    /// A batch the channel had no room for, now the flusher's to send.
    pub(super) parked: RefCell<Option<Batch>>,
    /// Set while the flusher owns this route: the dispatcher then leaves the
    /// outbox alone, so that order is kept.
    pub(super) blocked: Cell<bool>,
    pub(super) wake_flusher: Signal,
}

impl Outbound {
    pub(super) fn sent(&self) {
        self.doorbell.ring();
    }
}

pub(super) struct Inbound {
    pub(super) receiver: ConnectedReceiver<Batch>,
    pub(super) doorbell: Arc<Doorbell>,
    /// Batches taken off (by the dispatcher or the receiver task).
    pub(super) taken: Cell<u64>,
}

impl Inbound {
    /// Batches rung for and batches taken off, so far.
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.doorbell.rung(), self.taken.get())
    }

    pub(super) fn has_batches(&self) -> bool {
        self.doorbell.rang_beyond(self.taken.get())
    }
}

/// Everything a shard's tasks share; the part the network shares too is
/// its [`ShardCell`] (reached through `Deref`: `shared.core`, `shared.work`).
pub(crate) struct Shared {
    pub(crate) cell: Rc<ShardCell>,
    pub(super) net: Option<Rc<crate::net::NetShard>>,
    pub(super) timer: Signal,
    pub(super) outbound: Vec<Outbound>,
    pub(super) inbound: Vec<Inbound>,
    pub(super) commands: flume::Receiver<Command>,
    /// Batches taken from an outbox and not yet on a channel.
    pub(super) in_flight: Cell<usize>,
    pub(super) kinds: AgentKinds,
    pub(super) storage: Option<ShardStorage>,
    pub(super) wasm: Rc<WasmShard>,
    /// The watchdog's view of this shard (stalls, nudges).
    pub(crate) pulse: Arc<crate::watchdog::ShardPulse>,
    /// When the shard started (for uptime).
    pub(crate) started: Instant,
    /// The previous scrape: when, and the reactor's busy time then (for
    /// utilisation since it).
    pub(crate) last_scrape: Cell<Option<(Instant, Duration)>>,
    /// Client commands served so far (for the heartbeat's rescue count).
    pub(super) commands_served: Cell<u64>,
    /// The reactor's time running tasks so far (see `reactor_busy`).
    pub(super) reactor_busy: Cell<Duration>,
}

impl std::ops::Deref for Shared {
    type Target = ShardCell;

    fn deref(&self) -> &ShardCell {
        &self.cell
    }
}

impl Shared {
    /// Wakes the committer when the core journaled something.
    #[inline]
    pub(super) fn note_writes(&self) {
        if let Some(storage) = &self.storage {
            storage.note_writes(self.core.borrow().journal_position());
        }
    }

    /// The reactor's time running tasks since the shard started (a
    /// spinning dispatcher included). glommio's `executor_stats()` hands
    /// over what accrued since its previous call and resets it, so every
    /// reader goes through here, which keeps the running sum.
    pub(crate) fn reactor_busy(&self) -> Duration {
        let accrued = glommio::executor().executor_stats().executor_runtime();
        let total = self.reactor_busy.get() + accrued;
        self.reactor_busy.set(total);
        total
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

    pub(super) fn stats(&self) -> ShardStats {
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
    pub(super) async fn take_inbound(&self, intake_limit: usize) -> usize {
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

    pub(super) fn deliver(&self, batch: Batch) {
        let mut core = self.core.borrow_mut();
        for env in batch {
            core.deliver_from_peer(env);
        }
    }

    /// Puts every non-empty outbox on its channel; a full channel hands its
    /// route to the flusher. Returns how many batches went out.
    pub(super) fn flush_outbound(&self) -> usize {
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

    pub(super) fn stop(&self) {
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
