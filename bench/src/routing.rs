//! Quire's side of the routing benchmark: native agents on a running node.
//!
//! - request/reply: one driver agent calls one echo agent, one call at a
//!   time, and records each round trip (agent to agent, measured inside the
//!   driver) in an hdrhistogram;
//! - one-way throughput: producer agents on every shard send to consumer
//!   agents on every shard as fast as the runtime accepts, until every
//!   consumer has its share. Producers keep a credit window per consumer (at
//!   least one message in 256 asks for credit, and the consumer grants back
//!   exactly what it took since its last grant), the usual flow control over
//!   a runtime whose queues refuse rather than block. Anything refused all
//!   the same is resent, a refused ask is asked again and a refused grant is
//!   granted again, so that no loss can stall the window (small queues, as in
//!   the memory-optimized profile, refuse often).

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
    /// Calls `target` `warmup + samples` times once started by any message;
    /// sends the histogram of the last `samples` round trips to `report`.
    pub fn new(
        target: AgentId,
        warmup: u64,
        samples: u64,
        report: mpsc::Sender<Histogram<u64>>,
    ) -> Self {
        Self {
            target,
            warmup,
            samples,
            done_calls: 0,
            started: Instant::now(),
            latency: new_latency_histogram(),
            report,
        }
    }

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
    request_reply_with(
        client,
        tag,
        driver_shard,
        echo_shard,
        warmup,
        samples,
        |client, echo| {
            client
                .register_blocking(echo, || Echo)
                .map_err(|e| e.to_string())
        },
    )
}

/// [`request_reply`] against an echo that `make_echo` puts in place under
/// the name it is given (a native agent, a WebAssembly module, ...).
pub fn request_reply_with(
    client: &Client,
    tag: &str,
    driver_shard: usize,
    echo_shard: usize,
    warmup: u64,
    samples: u64,
    make_echo: impl FnOnce(&Client, AgentId) -> Result<(), String>,
) -> Result<Histogram<u64>, String> {
    let n = client.shard_count();
    let echo = names_on_shard(&format!("{tag}/echo"), echo_shard, n, 1).remove(0);
    let driver = names_on_shard(&format!("{tag}/driver"), driver_shard, n, 1).remove(0);
    make_echo(client, echo.clone())?;
    let (tx, rx) = mpsc::channel();
    let target = echo.clone();
    client
        .register_blocking(driver.clone(), move || {
            Driver::new(target, warmup, samples, tx)
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

/// A consumer grants a producer this many more messages each time it has
/// taken that many from it.
pub const CREDIT_BATCH: u32 = 256;
/// Messages a producer may have on their way to one consumer, not yet
/// granted back: enough to keep the pipe full, few enough that the
/// consumer's mailbox never overflows.
pub const WINDOW: u32 = 8 * CREDIT_BATCH;

const ASK_FOR_CREDIT: &[u8] = b"\x01credit?";
/// A grant: this prefix, then the count granted (u32 little-endian).
const CREDIT: &[u8] = b"credit";
/// A consumer's reminder to itself to retry grants that were refused.
const RETRY_GRANTS: &[u8] = b"\x02retry";
/// How long a refused self-message or grant waits before its retry.
const RETRY_DELAY: Duration = Duration::from_micros(200);

fn grant(count: u32) -> Bytes {
    let mut b = Vec::with_capacity(CREDIT.len() + 4);
    b.extend_from_slice(CREDIT);
    b.extend_from_slice(&count.to_le_bytes());
    Bytes::from(b)
}

fn granted(payload: &[u8]) -> Option<u32> {
    let count = payload.strip_prefix(CREDIT)?;
    Some(u32::from_le_bytes(count.try_into().ok()?))
}

/// Sends `per_target` messages to each target, `burst` per turn, with a
/// credit window per target (flow control, so that no mailbox overflows);
/// anything refused all the same is resent.
pub struct Producer {
    targets: Vec<AgentId>,
    /// Messages still to send to each target.
    left: Vec<u64>,
    /// Messages sent to each target and not yet granted back.
    in_flight: Vec<u32>,
    /// An ask for credit to this target was refused: the next message asks.
    ask_again: Vec<bool>,
    next_target: usize,
    burst: usize,
    continue_queued: bool,
    /// Messages refused and resent (for the report).
    pub resent: u64,
}

impl Producer {
    /// Sends `per_target` messages to each of `targets`, `burst` per turn.
    pub fn new(targets: Vec<AgentId>, per_target: u64, burst: usize) -> Self {
        let n = targets.len();
        Self {
            targets,
            left: vec![per_target; n],
            in_flight: vec![0; n],
            ask_again: vec![false; n],
            next_target: 0,
            burst,
            continue_queued: false,
            resent: 0,
        }
    }

    fn pump(&mut self, ctx: &mut Context<'_>) {
        let n = self.targets.len();
        let mut sent = 0;
        let mut skipped = 0;
        while sent < self.burst && skipped < n {
            let t = self.next_target;
            self.next_target = (t + 1) % n;
            if self.left[t] == 0 || self.in_flight[t] >= WINDOW {
                skipped += 1;
                continue;
            }
            skipped = 0;
            self.in_flight[t] += 1;
            // The in-flight count climbs one at a time, so every window of
            // CREDIT_BATCH sends holds an ask, and the send that fills the
            // window is one.
            let ask = self.in_flight[t].is_multiple_of(CREDIT_BATCH)
                || self.left[t] == 1
                || self.ask_again[t];
            let payload = if ask {
                Bytes::from_static(ASK_FOR_CREDIT)
            } else {
                Bytes::from_static(&PAYLOAD)
            };
            if ctx.send(self.targets[t].clone(), payload).is_ok() {
                self.left[t] -= 1;
                self.ask_again[t] &= !ask;
                sent += 1;
            } else {
                // The route to that shard is full: try again next turn.
                self.in_flight[t] -= 1;
                self.resent += 1;
                break;
            }
        }
        self.queue_continue(ctx);
    }

    fn has_sendable(&self) -> bool {
        (0..self.targets.len()).any(|t| self.left[t] > 0 && self.in_flight[t] < WINDOW)
    }

    fn queue_continue(&mut self, ctx: &mut Context<'_>) {
        if self.continue_queued || !self.has_sendable() {
            return;
        }
        let me = ctx.id().clone();
        if ctx.send(me, Bytes::new()).is_err() {
            // Our own queue is full: a timer brings the reminder instead.
            ctx.send_after(RETRY_DELAY, Bytes::new());
        }
        self.continue_queued = true;
    }
}

impl Agent for Producer {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        if let Some(count) = granted(&msg.payload) {
            if let Some(t) = self
                .targets
                .iter()
                .position(|c| Some(c) == msg.from.agent())
            {
                self.in_flight[t] = self.in_flight[t].saturating_sub(count);
            }
        } else {
            self.continue_queued = false;
        }
        self.pump(ctx);
    }

    fn on_undelivered(&mut self, ctx: &mut Context<'_>, msg: Envelope, reason: Rejection) {
        let Some(to) = msg.to_agent() else { return };
        if to == ctx.id() {
            self.continue_queued = false;
        } else if let Some(t) = self.targets.iter().position(|c| c == to) {
            debug_assert!(matches!(reason, Rejection::QueueFull), "{reason:?}");
            self.left[t] += 1;
            self.in_flight[t] = self.in_flight[t].saturating_sub(1);
            if msg.payload.first() == Some(&1) {
                self.ask_again[t] = true;
            }
            self.resent += 1;
        }
        self.queue_continue(ctx);
    }
}

/// Counts messages, grants credit back when asked, and reports when it has
/// `expected` of them.
pub struct Consumer {
    received: u64,
    expected: u64,
    report: mpsc::Sender<Instant>,
    /// Per producer: messages taken and not yet granted back.
    ungranted: std::collections::HashMap<AgentId, u32>,
    /// Grants refused by a full queue, to send again.
    refused: Vec<(AgentId, u32)>,
    retry_armed: bool,
}

impl Consumer {
    /// Reports the instant it has taken `expected` messages.
    pub fn new(expected: u64, report: mpsc::Sender<Instant>) -> Self {
        Self {
            received: 0,
            expected,
            report,
            ungranted: Default::default(),
            refused: Vec::new(),
            retry_armed: false,
        }
    }

    fn grant(&mut self, ctx: &mut Context<'_>, producer: AgentId, count: u32) {
        if count == 0 {
            return;
        }
        if ctx.send(producer.clone(), grant(count)).is_err() {
            self.refused.push((producer, count));
            self.arm_retry(ctx);
        }
    }

    fn arm_retry(&mut self, ctx: &mut Context<'_>) {
        if !self.retry_armed {
            self.retry_armed = true;
            ctx.send_after(RETRY_DELAY, Bytes::from_static(RETRY_GRANTS));
        }
    }
}

impl Agent for Consumer {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        if msg.payload == RETRY_GRANTS {
            self.retry_armed = false;
            for (producer, count) in std::mem::take(&mut self.refused) {
                self.grant(ctx, producer, count);
            }
            return;
        }
        self.received += 1;
        if let Some(producer) = msg.from.agent() {
            let taken = self.ungranted.entry(producer.clone()).or_insert(0);
            *taken += 1;
            if msg.payload.first() == Some(&1) {
                let count = std::mem::take(taken);
                self.grant(ctx, producer.clone(), count);
            }
        }
        if self.received == self.expected {
            let _ = self.report.send(Instant::now());
        }
    }

    fn on_undelivered(&mut self, ctx: &mut Context<'_>, msg: Envelope, _reason: Rejection) {
        // A grant (or our own reminder) that bounced off a full queue goes
        // again later.
        if msg.payload == RETRY_GRANTS {
            self.retry_armed = false;
            self.arm_retry(ctx);
        } else if let (Some(to), Some(count)) = (msg.to_agent(), granted(&msg.payload)) {
            self.refused.push((to.clone(), count));
            self.arm_retry(ctx);
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
        .flat_map(|s| names_on_shard(&format!("{tag}/cons"), s, n, per_shard))
        .collect();
    let producers: Vec<AgentId> = (0..n)
        .flat_map(|s| names_on_shard(&format!("{tag}/prod"), s, n, per_shard))
        .collect();
    let expected = per_target * producers.len() as u64;
    let (tx, rx) = mpsc::channel();
    for c in &consumers {
        let report = tx.clone();
        client
            .register_blocking(c.clone(), move || Consumer::new(expected, report))
            .map_err(|e| e.to_string())?;
    }
    for (i, p) in producers.iter().enumerate() {
        // Each producer starts at a different consumer so that they spread.
        let mut targets = consumers.clone();
        targets.rotate_left(i % consumers.len());
        client
            .register_blocking(p.clone(), move || Producer::new(targets, per_target, burst))
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
