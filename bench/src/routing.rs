//! Quire's side of the routing benchmark: native agents on a running node.
//!
//! - request/reply: one driver agent calls one echo agent, one call at a
//!   time, and records each round trip (agent to agent, measured inside the
//!   driver) in an hdrhistogram;
//! - one-way throughput: producer agents on every shard send to consumer
//!   agents on every shard as fast as the runtime accepts, resending what
//!   comes back `QueueFull`, until every consumer has its share.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use quire_runtime::demo::names_on_shard;
use quire_runtime::Client;
use quire_shards::{
    new_latency_histogram, Agent, AgentId, CallError, Context, Envelope, MessageId, Rejection,
};

/// 64 bytes of payload, shared without allocation.
pub static PAYLOAD: [u8; 64] = [0x5a; 64];

/// Calls `target` `warmup + samples` times in a row; reports the histogram
/// of the last `samples` round trips.
pub struct Driver {
    target: AgentId,
    warmup: u64,
    samples: u64,
    done_calls: u64,
    started: Instant,
    latency: Histogram<u64>,
    report: mpsc::Sender<Histogram<u64>>,
}

impl Driver {
    fn call_next(&mut self, ctx: &mut Context<'_>) {
        self.started = Instant::now();
        if ctx
            .call(
                self.target.clone(),
                Bytes::from_static(&PAYLOAD),
                Duration::from_secs(5),
            )
            .is_err()
        {
            let _ = self.report.send(Histogram::new(1).expect("valid"));
        }
    }
}

impl Agent for Driver {
    fn handle(&mut self, ctx: &mut Context<'_>, _start: Envelope) {
        self.call_next(ctx);
    }

    fn on_reply(
        &mut self,
        ctx: &mut Context<'_>,
        _call: MessageId,
        reply: Result<Envelope, CallError>,
    ) {
        let rtt = self.started.elapsed().as_nanos() as u64;
        if reply.is_err() {
            // A lost reply ends the run with whatever was measured.
            let _ = self.report.send(std::mem::replace(
                &mut self.latency,
                new_latency_histogram(),
            ));
            return;
        }
        self.done_calls += 1;
        if self.done_calls > self.warmup {
            self.latency.saturating_record(rtt.max(1));
        }
        if self.done_calls < self.warmup + self.samples {
            self.call_next(ctx);
        } else {
            let _ = self.report.send(std::mem::replace(
                &mut self.latency,
                new_latency_histogram(),
            ));
        }
    }
}

/// Replies with the request's payload.
pub struct Echo;

impl Agent for Echo {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        let _ = ctx.reply(msg.payload);
    }
}

/// Measures request/reply latency between a driver on `driver_shard` and an
/// echo on `echo_shard`. `tag` keeps agent names unique across runs.
pub fn request_reply(
    client: &Client,
    tag: &str,
    driver_shard: usize,
    echo_shard: usize,
    warmup: u64,
    samples: u64,
) -> Result<Histogram<u64>, String> {
    let n = client.shard_count();
    let echo = names_on_shard(&format!("bench/{tag}/echo"), echo_shard, n, 1).remove(0);
    let driver = names_on_shard(&format!("bench/{tag}/driver"), driver_shard, n, 1).remove(0);
    client
        .register_blocking(echo.clone(), || Echo)
        .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel();
    let target = echo.clone();
    client
        .register_blocking(driver.clone(), move || Driver {
            target,
            warmup,
            samples,
            done_calls: 0,
            started: Instant::now(),
            latency: new_latency_histogram(),
            report: tx,
        })
        .map_err(|e| e.to_string())?;
    client
        .send_blocking(driver.clone(), Bytes::new())
        .map_err(|e| e.to_string())?;
    let h = rx
        .recv_timeout(Duration::from_secs(120))
        .map_err(|_| "request/reply run did not finish in 120 s".to_string())?;
    let _ = futures_lite::future::block_on(client.unregister(driver));
    let _ = futures_lite::future::block_on(client.unregister(echo));
    if h.len() < samples {
        return Err(format!("only {} of {samples} calls completed", h.len()));
    }
    Ok(h)
}

/// Sends `per_target` messages to each target, `burst` per turn, resending
/// anything refused.
pub struct Producer {
    targets: Vec<AgentId>,
    /// Next (target index, sequence) to send; sequence runs to `per_target`.
    next: u64,
    total: u64,
    retry: Vec<AgentId>,
    burst: usize,
    /// Messages refused and resent (for the report).
    pub resent: u64,
}

impl Producer {
    fn pump(&mut self, ctx: &mut Context<'_>) {
        let mut sent = 0;
        while sent < self.burst {
            let to = if let Some(to) = self.retry.pop() {
                to
            } else if self.next < self.total {
                let t = self.targets[(self.next % self.targets.len() as u64) as usize].clone();
                self.next += 1;
                t
            } else {
                break;
            };
            match ctx.send(to.clone(), Bytes::from_static(&PAYLOAD)) {
                Ok(_) => sent += 1,
                Err(_) => {
                    // The route is full: keep it for the next turn.
                    self.retry.push(to);
                    self.resent += 1;
                    break;
                }
            }
        }
        if !self.retry.is_empty() || self.next < self.total {
            let me = ctx.id().clone();
            let _ = ctx.send(me, Bytes::new());
        }
    }
}

impl Agent for Producer {
    fn handle(&mut self, ctx: &mut Context<'_>, _go: Envelope) {
        self.pump(ctx);
    }

    fn on_undelivered(&mut self, ctx: &mut Context<'_>, msg: Envelope, reason: Rejection) {
        if let Some(to) = msg.to_agent() {
            if to == ctx.id() {
                // Our own "continue" bounced: our mailbox is full of them, fine.
                return;
            }
            debug_assert_eq!(reason, Rejection::QueueFull);
            self.retry.push(to.clone());
            self.resent += 1;
            let me = ctx.id().clone();
            let _ = ctx.send(me, Bytes::new());
        }
    }
}

/// Counts messages and reports when it has `expected` of them.
pub struct Consumer {
    received: u64,
    expected: u64,
    report: mpsc::Sender<Instant>,
}

impl Agent for Consumer {
    fn handle(&mut self, _ctx: &mut Context<'_>, _msg: Envelope) {
        self.received += 1;
        if self.received == self.expected {
            let _ = self.report.send(Instant::now());
        }
    }
}

/// One-way throughput: `per_shard` producers and `per_shard` consumers on
/// every shard; every producer sends `per_target` messages to every
/// consumer. Returns messages per second.
pub fn one_way_throughput(
    client: &Client,
    tag: &str,
    per_shard: usize,
    per_target: u64,
    burst: usize,
) -> Result<u64, String> {
    let n = client.shard_count();
    let consumers: Vec<AgentId> = (0..n)
        .flat_map(|s| names_on_shard(&format!("bench/{tag}/consumer"), s, n, per_shard))
        .collect();
    let producers: Vec<AgentId> = (0..n)
        .flat_map(|s| names_on_shard(&format!("bench/{tag}/producer"), s, n, per_shard))
        .collect();
    let expected = per_target * producers.len() as u64;
    let (tx, rx) = mpsc::channel();
    for c in &consumers {
        let report = tx.clone();
        client
            .register_blocking(c.clone(), move || Consumer {
                received: 0,
                expected,
                report,
            })
            .map_err(|e| e.to_string())?;
    }
    for (i, p) in producers.iter().enumerate() {
        // Each producer starts at a different consumer so that they spread.
        let mut targets = consumers.clone();
        targets.rotate_left(i % consumers.len());
        let total = per_target * consumers.len() as u64;
        client
            .register_blocking(p.clone(), move || Producer {
                targets,
                next: 0,
                total,
                retry: Vec::new(),
                burst,
                resent: 0,
            })
            .map_err(|e| e.to_string())?;
    }
    let start = Instant::now();
    for p in &producers {
        client
            .send_blocking(p.clone(), Bytes::new())
            .map_err(|e| e.to_string())?;
    }
    let mut last = start;
    for _ in 0..consumers.len() {
        let t = rx
            .recv_timeout(Duration::from_secs(120))
            .map_err(|_| "throughput run did not finish in 120 s".to_string())?;
        last = last.max(t);
    }
    let total = expected * consumers.len() as u64;
    for a in consumers.iter().chain(&producers) {
        let _ = futures_lite::future::block_on(client.unregister(a.clone()));
    }
    Ok((total as f64 / last.duration_since(start).as_secs_f64()) as u64)
}
