//! The open-loop request/reply load on tokio run the way its latency-minded
//! users run it: thread per core. One `current_thread` runtime per core,
//! each thread pinned; every agent lives on the runtime its name hashes to
//! (the same FNV-1a + jump hash Quire places by), found through a fixed
//! table of mailbox senders (no shared map on the path); one generator per
//! runtime spins to each due instant ([`super::tokio_peer::wait_until`]) and
//! calls agents wherever they live, as Quire's generators do across shards.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quire_shards::owning_shard;
use tokio::sync::{mpsc, oneshot};

use super::spec::{payload, LoadResult, LoadSpec, Pattern};

struct Call {
    payload: Bytes,
    reply: oneshot::Sender<Bytes>,
}

/// Runs `spec` (request/reply) on `threads` pinned current-thread runtimes
/// whose agents have mailboxes of `mailbox_capacity`.
pub fn run(spec: &LoadSpec, threads: usize, mailbox_capacity: usize) -> Result<LoadResult, String> {
    if spec.pattern != Pattern::RequestReply {
        return Err("the thread-per-core tokio design runs request/reply only".into());
    }
    let threads = threads.max(1);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let names: Vec<String> = (0..spec.agents).map(|i| format!("target-{i}")).collect();
    let mut senders = Vec::new();
    let mut inboxes: Vec<Vec<mpsc::Receiver<Call>>> = (0..threads).map(|_| Vec::new()).collect();
    for name in &names {
        let (tx, rx) = mpsc::channel::<Call>(mailbox_capacity);
        senders.push(tx);
        inboxes[owning_shard(name, threads) as usize].push(rx);
    }
    let senders = Arc::new(senders);
    let ready = Arc::new(Barrier::new(threads + 1));
    let epoch = Instant::now();
    let start_cell = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut handles = Vec::new();
    for (t, agents) in inboxes.into_iter().enumerate() {
        let (spec, senders, ready, start_cell) = (
            spec.clone(),
            senders.clone(),
            ready.clone(),
            start_cell.clone(),
        );
        let core = cores.get(t % cores.len().max(1)).copied();
        handles.push(std::thread::spawn(move || -> Result<LoadResult, String> {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                for mut inbox in agents {
                    tokio::spawn(async move {
                        while let Some(call) = inbox.recv().await {
                            let _ = call.reply.send(call.payload);
                        }
                    });
                }
                ready.wait();
                let start = *start_cell.wait();
                Ok(generate(&spec, t as u64, threads as u64, &senders, epoch, start).await)
            })
        }));
    }
    ready.wait();
    let _ = start_cell.set(Instant::now() + Duration::from_millis(50));
    let mut total = LoadResult::empty(spec);
    for h in handles {
        total.merge(&h.join().map_err(|_| "a runtime thread panicked")??);
    }
    Ok(total)
}

/// Generator `g` of `of`: messages `g, g + of, ...`, each a call to agent
/// `i mod agents`; returns what it measured.
async fn generate(
    spec: &LoadSpec,
    g: u64,
    of: u64,
    senders: &Arc<Vec<mpsc::Sender<Call>>>,
    epoch: Instant,
    start: Instant,
) -> LoadResult {
    let measure_start = start + spec.warmup;
    let end = measure_start + spec.duration;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Instant, Instant, Instant)>();
    let mut result = LoadResult::empty(spec);
    let period = |i: u64| start + spec.offset(i);
    let n = senders.len() as u64;
    let mut i = g;
    while period(i) < end {
        super::tokio_peer::wait_until(period(i)).await;
        let now = Instant::now();
        while period(i) <= now && period(i) < end {
            let due = period(i);
            let measure = due >= measure_start;
            let body = Bytes::from(payload::encode(
                spec.message_size,
                measure,
                due.duration_since(epoch).as_nanos() as u64,
                now.duration_since(epoch).as_nanos() as u64,
            ));
            result.expected += u64::from(measure);
            let (tx, rx) = oneshot::channel();
            let sent = senders[(i % n) as usize]
                .try_send(Call {
                    payload: body,
                    reply: tx,
                })
                .is_ok();
            if !sent {
                result.rejected += u64::from(measure);
            } else if measure {
                let done = done_tx.clone();
                tokio::spawn(async move {
                    if rx.await.is_ok() {
                        let _ = done.send((due, now, Instant::now()));
                    }
                });
            }
            i += of;
        }
    }
    drop(done_tx);
    super::tokio_peer::record_replies(spec, measure_start, end, &mut done_rx, &mut result).await;
    result
}
