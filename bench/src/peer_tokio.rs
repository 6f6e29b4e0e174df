//! The conventional design Quire replaces, for side-by-side figures: a tokio
//! multi-threaded runtime, one task per agent with a bounded tokio mpsc
//! mailbox, agents found by name in a DashMap registry on every send, and
//! request/reply over a oneshot channel. The same workloads as
//! [`crate::routing`], with the same payload and the same counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use hdrhistogram::Histogram;
use quire_shards::new_latency_histogram;
use tokio::sync::{mpsc, oneshot};

use crate::routing::PAYLOAD;

/// A message in the tokio design.
pub struct Msg {
    /// Opaque bytes.
    pub payload: Bytes,
    /// Where a call's reply goes.
    pub reply: Option<oneshot::Sender<Bytes>>,
}

type Registry = Arc<DashMap<String, mpsc::Sender<Msg>>>;

/// A tokio runtime and its agent registry.
pub struct TokioNode {
    runtime: tokio::runtime::Runtime,
    registry: Registry,
    mailbox_capacity: usize,
}

impl TokioNode {
    /// A runtime with `workers` threads (as many as Quire has shards).
    pub fn new(workers: usize, mailbox_capacity: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("tokio runtime");
        Self {
            runtime,
            registry: Arc::default(),
            mailbox_capacity,
        }
    }

    fn spawn_agent<F, Fut>(&self, name: &str, body: F)
    where
        F: FnOnce(mpsc::Receiver<Msg>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(self.mailbox_capacity);
        self.registry.insert(name.to_owned(), tx);
        self.runtime.spawn(body(rx));
    }

    /// Request/reply latency: one driver task calls one echo agent.
    pub fn request_reply(&self, tag: &str, warmup: u64, samples: u64) -> Histogram<u64> {
        let echo = format!("{tag}/echo");
        self.spawn_agent(&echo, |mut rx| async move {
            while let Some(m) = rx.recv().await {
                if let Some(r) = m.reply {
                    let _ = r.send(m.payload);
                }
            }
        });
        let registry = self.registry.clone();
        let h = self.runtime.block_on(async move {
            let registry2 = registry.clone();
            tokio::spawn(async move {
                let mut h = new_latency_histogram();
                for i in 0..warmup + samples {
                    let started = Instant::now();
                    let mailbox = registry2
                        .get(&echo)
                        .map(|s| s.clone())
                        .expect("echo registered");
                    let (tx, rx) = oneshot::channel();
                    let msg = Msg {
                        payload: Bytes::from_static(&PAYLOAD),
                        reply: Some(tx),
                    };
                    if mailbox.send(msg).await.is_err() {
                        break;
                    }
                    if rx.await.is_err() {
                        break;
                    }
                    if i >= warmup {
                        h.saturating_record((started.elapsed().as_nanos() as u64).max(1));
                    }
                }
                registry2.remove(&echo);
                h
            })
            .await
            .expect("driver task")
        });
        h
    }

    /// Request/reply latency between two threads, the tokio counterpart of
    /// Quire's cross-shard figure: the echo agent runs on a current-thread
    /// runtime of its own thread, the driver on another, and they talk over
    /// the same bounded mpsc mailbox and oneshot reply.
    pub fn cross_thread_request_reply(&self, warmup: u64, samples: u64) -> Histogram<u64> {
        let (mailbox, mut rx) = mpsc::channel::<Msg>(self.mailbox_capacity);
        let echo = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                while let Some(m) = rx.recv().await {
                    if let Some(r) = m.reply {
                        let _ = r.send(m.payload);
                    }
                }
            });
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let h = rt.block_on(async move {
            let mut h = new_latency_histogram();
            for i in 0..warmup + samples {
                let started = Instant::now();
                let (tx, rx) = oneshot::channel();
                let msg = Msg {
                    payload: Bytes::from_static(&PAYLOAD),
                    reply: Some(tx),
                };
                if mailbox.send(msg).await.is_err() || rx.await.is_err() {
                    break;
                }
                if i >= warmup {
                    h.saturating_record((started.elapsed().as_nanos() as u64).max(1));
                }
            }
            h
        });
        let _ = echo.join();
        h
    }

    /// One-way throughput: `producers` tasks each send `per_target` messages
    /// to each of `consumers` agents. Returns messages per second.
    pub fn one_way_throughput(
        &self,
        tag: &str,
        producers: usize,
        consumers: usize,
        per_target: u64,
    ) -> u64 {
        let expected = per_target * producers as u64;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Instant>();
        let names: Vec<String> = (0..consumers)
            .map(|i| format!("{tag}/consumer-{i}"))
            .collect();
        for name in &names {
            let done = done_tx.clone();
            self.spawn_agent(name, move |mut rx| async move {
                let mut received = 0;
                while let Some(_m) = rx.recv().await {
                    received += 1;
                    if received == expected {
                        let _ = done.send(Instant::now());
                    }
                }
            });
        }
        let registry = self.registry.clone();
        let rate = self.runtime.block_on(async move {
            let start = Instant::now();
            for p in 0..producers {
                let registry = registry.clone();
                let mut targets = names.clone();
                targets.rotate_left(p % names.len());
                tokio::spawn(async move {
                    let total = per_target * targets.len() as u64;
                    for k in 0..total {
                        let to = &targets[(k % targets.len() as u64) as usize];
                        let mailbox = registry
                            .get(to)
                            .map(|s| s.clone())
                            .expect("consumer registered");
                        if mailbox
                            .send(Msg {
                                payload: Bytes::from_static(&PAYLOAD),
                                reply: None,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
            let mut last = start;
            for _ in 0..consumers {
                match tokio::time::timeout(Duration::from_secs(120), done_rx.recv()).await {
                    Ok(Some(t)) => last = last.max(t),
                    _ => break,
                }
            }
            for name in &names {
                registry.remove(name);
            }
            ((per_target * producers as u64 * consumers as u64) as f64
                / last.duration_since(start).as_secs_f64()) as u64
        });
        rate
    }
}

/// Spawns `n` idle agents (a task and a mailbox of `mailbox_capacity` each,
/// registered by name) on a runtime of `workers` threads: agents per second
/// until every one is spawned and registered (as Quire's `register` is
/// timed; each then answers a call, untimed) and heap bytes per agent.
pub fn spawn_agents(workers: usize, mailbox_capacity: usize, n: usize) -> (f64, f64) {
    let node = TokioNode::new(workers, mailbox_capacity);
    let before = crate::report::allocated_bytes();
    let started = Instant::now();
    for i in 0..n {
        node.spawn_agent(&format!("spawn-{i}"), |mut rx| async move {
            while let Some(msg) = rx.recv().await {
                if let Some(reply) = msg.reply {
                    let _ = reply.send(msg.payload);
                }
            }
        });
    }
    // Spawned and addressable: what `register` gives Quire's caller too.
    let rate = n as f64 / started.elapsed().as_secs_f64();
    // Every task answers a call (untimed).
    node.runtime.block_on(async {
        for i in 0..n {
            let (tx, rx) = oneshot::channel();
            let mailbox = node.registry.get(&format!("spawn-{i}")).map(|m| m.clone());
            if let Some(m) = mailbox {
                let _ = m
                    .send(Msg {
                        payload: Bytes::new(),
                        reply: Some(tx),
                    })
                    .await;
                let _ = rx.await;
            }
        }
    });
    let per_agent =
        crate::report::allocated_bytes().saturating_sub(before) as f64 / n.max(1) as f64;
    (rate, per_agent)
}
