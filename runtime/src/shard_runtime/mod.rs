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
//! Why a doorbell next to each glommio channel (`doorbell`): a glommio
//! receiver can only be polled by registering a waker, and glommio's own
//! wake-up path costs a full reactor iteration (several µs here). Each
//! sender bumps a shared counter after each batch; a spinning dispatcher
//! sees it change within nanoseconds and takes the batch, which is then
//! certain to be there.

mod collect;
mod doorbell;
mod rescue;
mod serve;
mod shared;
mod tasks;

pub(crate) use doorbell::Doorbell;
use serve::serve;
pub(crate) use shared::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasks::*;

/// The atomics `doorbell` is written against: std's here, loom's in the
/// model checker's build of the same file.
mod atomics {
    pub(super) use std::sync::atomic::{AtomicU64, Ordering};
}

use futures_lite::future;
use glommio::channels::shared_channel::{
    ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::{GlommioError, ResourceType};
use quire_shards::{
    AgentRecord, DurableAdmission, Envelope, RegisterError, Rejection, ShardConfig, ShardCore,
    ShardStats,
};

use quire_shards::wasm::{WasmEngine, WasmShard, WasmShardConfig};

use crate::activity::Activity;
use crate::agent_kinds::AgentKinds;
use crate::command::{Command, DeployError, DurableError, DurableReceipt, Probe};
use crate::shard_cell::ShardCell;
use crate::shard_storage::{ShardStorage, StorageSetup};
use crate::signal::Signal;

/// What crosses the mesh: envelopes in send order.
pub(crate) type Batch = Vec<Envelope>;

/// Longest time a shard's reactor sleeps without looking around (see the
/// timers task).
const HEARTBEAT: Duration = Duration::from_millis(2);

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

    let durable = wiring.storage.is_some();
    let shared = Rc::new(Shared {
        cell: Rc::new(ShardCell::new(core, wiring.intake_limit, durable)),
        net: net.clone(),
        timer: Signal::default(),
        outbound,
        inbound,
        commands: wiring.commands,
        in_flight: Cell::new(0),
        kinds: wiring.kinds,
        storage: wiring
            .storage
            .map(|s| ShardStorage::new(s.partition, s.policy)),
        wasm,
        pulse: wiring.pulse,
        started: Instant::now(),
        last_scrape: Cell::new(None),
        commands_served: Cell::new(0),
        reactor_busy: Cell::new(Duration::ZERO),
    });
    if let (Some(net), Some(wiring)) = (&net, net_wiring) {
        crate::net::start(&shared.cell, net, wiring);
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
    // A clustered node tells the members it leaves before its links close.
    if let Some(net) = &shared.net {
        net.leave_cluster().await;
    }
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
