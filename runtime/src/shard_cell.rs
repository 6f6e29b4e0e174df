//! The part of a shard's state that its network tasks share with the rest
//! of its runtime: the core itself, the dispatcher's wake-up, the intake
//! bound, the flag that lets connection writers go first, and whether the
//! shard stopped. A small type of its own so that `net` depends on it
//! alone and never on the shard runtime, which owns the network.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_lite::future;
use quire_shards::ShardCore;

use crate::signal::Signal;

/// Shared by a shard's tasks on its thread, behind an `Rc`.
pub(crate) struct ShardCell {
    pub(crate) core: RefCell<ShardCore>,
    /// Messages queued here above which socket readers stop and let the
    /// dispatcher catch up (see `queues.intake_limit`).
    pub(crate) intake_limit: usize,
    /// Wakes the dispatcher.
    pub(crate) work: Signal,
    /// Set when a connection's writer or a link was woken: the dispatcher
    /// then yields, so that they write before it spins or runs on.
    pub(crate) io_pending: Rc<Cell<bool>>,
    /// Set once the shard stops: waits on it end.
    pub(crate) stopped: Cell<bool>,
    /// The shard journals to a storage partition (the node's durability
    /// is not `none`): durable sends are possible.
    pub(crate) durable: bool,
}

impl ShardCell {
    /// A cell around `core`.
    pub(crate) fn new(core: ShardCore, intake_limit: usize, durable: bool) -> Self {
        Self {
            core: RefCell::new(core),
            intake_limit,
            work: Signal::default(),
            io_pending: Rc::new(Cell::new(false)),
            stopped: Cell::new(false),
            durable,
        }
    }

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
}
