//! actix (the crate) as a peer for native actor request/reply and one-way
//! throughput: the same payload and counts as [`crate::routing`], actors
//! spread over arbiters (one thread each) as Quire's agents are over shards.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use hdrhistogram::Histogram;
use quire_shards::new_latency_histogram;

use crate::routing::PAYLOAD;

/// A request to an echo actor.
#[derive(Message)]
#[rtype(result = "Bytes")]
struct Ping(Bytes);

struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<Ping> for Echo {
    type Result = MessageResult<Ping>;
    fn handle(&mut self, msg: Ping, _: &mut Context<Self>) -> Self::Result {
        MessageResult(msg.0)
    }
}

/// A one-way message to a counting actor.
#[derive(Message)]
#[rtype(result = "()")]
struct Item(#[allow(dead_code)] Bytes);

struct Counter {
    seen: u64,
    expected: u64,
    done: std_mpsc::Sender<Instant>,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<Item> for Counter {
    type Result = ();
    fn handle(&mut self, _: Item, _: &mut Context<Self>) {
        self.seen += 1;
        if self.seen == self.expected {
            let _ = self.done.send(Instant::now());
        }
    }
}

/// Request/reply between two actors on different arbiters (threads), one
/// call at a time: the histogram of the last `samples` round trips.
///
/// ```no_run
/// let h = quire_bench::peer_actix::request_reply(1_000, 10_000);
/// assert_eq!(h.len(), 10_000);
/// ```
pub fn request_reply(warmup: u64, samples: u64) -> Histogram<u64> {
    let system = actix::System::new();
    let h = system.block_on(async move {
        let arbiter = Arbiter::new();
        let echo = Echo::start_in_arbiter(&arbiter.handle(), |_| Echo);
        let mut h = new_latency_histogram();
        for i in 0..warmup + samples {
            let t = Instant::now();
            if echo.send(Ping(Bytes::from_static(&PAYLOAD))).await.is_err() {
                break;
            }
            if i >= warmup {
                h.saturating_record((t.elapsed().as_nanos() as u64).max(1));
            }
        }
        arbiter.stop();
        h
    });
    drop(system);
    h
}

/// One-way throughput: `per_arbiter` producers and consumers on each of
/// `arbiters` arbiters; every producer sends `per_target` messages to every
/// consumer. Messages per second.
pub fn one_way_throughput(arbiters: usize, per_arbiter: usize, per_target: u64) -> u64 {
    let system = actix::System::new();
    let rate = system.block_on(async move {
        let arbiters: Vec<Arbiter> = (0..arbiters.max(1)).map(|_| Arbiter::new()).collect();
        let producers = arbiters.len() * per_arbiter;
        let (done_tx, done_rx) = std_mpsc::channel();
        let consumers: Vec<Addr<Counter>> = arbiters
            .iter()
            .flat_map(|a| {
                let done = done_tx.clone();
                (0..per_arbiter)
                    .map(move |_| {
                        let done = done.clone();
                        Counter::start_in_arbiter(&a.handle(), move |_| Counter {
                            seen: 0,
                            expected: per_target * producers as u64,
                            done,
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let start = Instant::now();
        for (i, a) in arbiters.iter().enumerate() {
            for p in 0..per_arbiter {
                let mut targets = consumers.clone();
                targets.rotate_left((i * per_arbiter + p) % consumers.len());
                a.spawn(async move {
                    for _ in 0..per_target {
                        for t in &targets {
                            t.do_send(Item(Bytes::from_static(&PAYLOAD)));
                        }
                        // Producers share their arbiter with consumers.
                        actix_rt::task::yield_now().await;
                    }
                });
            }
        }
        let mut last = start;
        for _ in 0..consumers.len() {
            match done_rx.recv_timeout(Duration::from_secs(120)) {
                Ok(t) => last = last.max(t),
                Err(_) => return 0,
            }
        }
        let total = per_target * (producers * consumers.len()) as u64;
        for a in arbiters {
            a.stop();
        }
        (total as f64 / last.duration_since(start).as_secs_f64()) as u64
    });
    drop(system);
    rate
}
