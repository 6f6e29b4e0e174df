//! The same open-loop load on the conventional tokio design (see
//! [`crate::peer_tokio`]): a multi-thread runtime, one task per agent with a
//! bounded mpsc mailbox, agents found by name in a DashMap on every send,
//! calls answered over a oneshot. One generator task per worker, the same
//! schedule, payloads and correction as [`super::quire`]; the generators
//! spin to each due instant (see [`wait_until`]), as a spinning Quire reactor
//! does, so that neither side is measured against a coarser clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};

use super::spec::{payload, LoadResult, LoadSpec, Pattern, FAN_OUT, SPIN_BEFORE_DUE};

struct Msg {
    payload: Bytes,
    reply: Option<oneshot::Sender<Bytes>>,
}

type Registry = Arc<DashMap<String, mpsc::Sender<Msg>>>;

/// Waits for `due` the way every in-process generator does
/// ([`SPIN_BEFORE_DUE`]): tokio's timer wheel has a 1 ms resolution, so a
/// generator that slept on it sent up to a millisecond late and measured
/// its own timer. Sleeps on the timer only while more than
/// [`SPIN_BEFORE_DUE`] remains, then spins, yielding to the runtime's other
/// tasks (agents, reply waiters) between looks at the clock.
pub(super) async fn wait_until(due: Instant) {
    if let Some(far) = due.checked_sub(SPIN_BEFORE_DUE) {
        if far > Instant::now() {
            tokio::time::sleep_until(far.into()).await;
        }
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

/// Records every reply that comes back within 2 s of the run's end: each
/// is (intended, sent, answered).
pub(super) async fn record_replies(
    spec: &LoadSpec,
    measure_start: Instant,
    end: Instant,
    done: &mut mpsc::UnboundedReceiver<(Instant, Instant, Instant)>,
    result: &mut LoadResult,
) {
    let drain_until = tokio::time::Instant::from(end + Duration::from_secs(2));
    while let Ok(Some((due, sent, at))) = tokio::time::timeout_at(drain_until, done.recv()).await {
        result.record(
            spec,
            due.duration_since(measure_start),
            at.duration_since(due).as_nanos() as u64,
            at.duration_since(sent).as_nanos() as u64,
        );
    }
}

/// Runs `spec` on a tokio runtime of `workers` threads whose agents have
/// mailboxes of `mailbox_capacity`.
pub fn run(spec: &LoadSpec, workers: usize, mailbox_capacity: usize) -> Result<LoadResult, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let spec = spec.clone();
    rt.block_on(async move {
        let registry: Registry = Arc::default();
        let names: Vec<String> = (0..spec.agents).map(|i| format!("target-{i}")).collect();
        // The clock starts once every target exists (as on Quire's side):
        // the sinks read it through this cell.
        let clock: Arc<std::sync::OnceLock<(Instant, Instant)>> = Arc::default();
        let mut sinks = Vec::new();
        for name in &names {
            let (tx, mut rx) = mpsc::channel::<Msg>(mailbox_capacity);
            registry.insert(name.clone(), tx);
            let (spec, clock) = (spec.clone(), clock.clone());
            sinks.push(tokio::spawn(async move {
                let mut result = LoadResult::empty(&spec);
                while let Some(msg) = rx.recv().await {
                    match msg.reply {
                        Some(reply) => {
                            let _ = reply.send(msg.payload);
                        }
                        None => {
                            let (Some((true, intended, actual)), Some(&(epoch, measure_start))) =
                                (payload::decode(&msg.payload), clock.get())
                            else {
                                continue;
                            };
                            let now = epoch.elapsed().as_nanos() as u64;
                            let ms = measure_start.duration_since(epoch).as_nanos() as u64;
                            result.record(
                                &spec,
                                Duration::from_nanos(intended.saturating_sub(ms)),
                                now.saturating_sub(intended),
                                now.saturating_sub(actual),
                            );
                        }
                    }
                }
                result
            }));
        }
        let epoch = Instant::now();
        let start = epoch + Duration::from_millis(50);
        let measure_start = start + spec.warmup;
        let end = measure_start + spec.duration;
        let _ = clock.set((epoch, measure_start));
        let generators = workers.max(1) as u64;
        let mut gens = Vec::new();
        for g in 0..generators {
            let (registry, names, spec) = (registry.clone(), names.clone(), spec.clone());
            gens.push(tokio::spawn(async move {
                let (done_tx, mut done_rx) =
                    mpsc::unbounded_channel::<(Instant, Instant, Instant)>();
                let mut result = LoadResult::empty(&spec);
                let period = |i: u64| start + spec.offset(i);
                let n = names.len();
                let mut i = g;
                loop {
                    let due = period(i);
                    if due >= end {
                        break;
                    }
                    wait_until(due).await;
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
                        match spec.pattern {
                            Pattern::RequestReply => {
                                let target = &names[(i % n as u64) as usize];
                                result.expected += u64::from(measure);
                                let (tx, rx) = oneshot::channel();
                                let sent = registry
                                    .get(target)
                                    .map(|m| {
                                        m.try_send(Msg {
                                            payload: body,
                                            reply: Some(tx),
                                        })
                                        .is_ok()
                                    })
                                    .unwrap_or(false);
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
                            }
                            Pattern::OneWay | Pattern::FanOut => {
                                let fan = if spec.pattern == Pattern::FanOut {
                                    FAN_OUT.min(n)
                                } else {
                                    1
                                };
                                for k in 0..fan {
                                    let target = &names[((i as usize * fan) + k) % n];
                                    result.expected += u64::from(measure);
                                    let sent = registry
                                        .get(target)
                                        .map(|m| {
                                            m.try_send(Msg {
                                                payload: body.clone(),
                                                reply: None,
                                            })
                                            .is_ok()
                                        })
                                        .unwrap_or(false);
                                    if !sent {
                                        result.rejected += u64::from(measure);
                                    }
                                }
                            }
                        }
                        i += generators;
                    }
                }
                drop(done_tx);
                record_replies(&spec, measure_start, end, &mut done_rx, &mut result).await;
                result
            }));
        }
        let mut total = LoadResult::empty(&spec);
        for g in gens {
            total.merge(&g.await.map_err(|e| e.to_string())?);
        }
        registry.clear();
        for s in sinks {
            total.merge(&s.await.map_err(|e| e.to_string())?);
        }
        Ok(total)
    })
}
