//! The open-loop load on an embedded Quire node: one generator agent per
//! shard, target agents spread over every shard.
//!
//! Generator `g` of `G` owns messages `g, g + G, g + 2G, ...`; message `i`
//! is due at `start + i / rate` and goes to target `i mod agents` (fan-out:
//! the next `FAN_OUT` targets). On each tick a generator sends every
//! message now due, then waits for the next one (on a timer while it is
//! far, looking at the clock each turn once it is near, as every system's
//! generator does), so a generator that was held up catches up at once and
//! its late messages carry their lateness. Calls are matched to their intended time by message id;
//! one-way and fan-out messages carry it in their payload to a sink agent.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quire_runtime::demo::names_on_shard;
use quire_runtime::{Client, WasmOptions};
use quire_shards::{Agent, AgentId, CallError, Context, Envelope, MessageId};

use super::spec::{payload, LoadResult, LoadSpec, Pattern, FAN_OUT};

/// How long after the last due message replies may still come in.
const DRAIN: Duration = Duration::from_secs(2);
const REPORT: &[u8] = b"report";

/// The timing every agent of a run shares.
#[derive(Debug, Clone)]
struct Clock {
    spec: LoadSpec,
    /// Time zero of the run (ns offsets in payloads are from here).
    epoch: Instant,
    /// First due message.
    start: Instant,
    /// Messages due from here on are measured.
    measure_start: Instant,
    /// No message is due from here on.
    end: Instant,
}

impl Clock {
    fn due(&self, i: u64) -> Instant {
        self.start + self.spec.offset(i)
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}

struct Generator {
    clock: Arc<Clock>,
    targets: Arc<Vec<AgentId>>,
    next: u64,
    step: u64,
    /// Calls in flight: intended and actual send time.
    pending: HashMap<MessageId, (Instant, Instant), ahash::RandomState>,
    result: LoadResult,
    report: mpsc::Sender<LoadResult>,
    reported: bool,
}

impl Generator {
    fn send_due(&mut self, ctx: &mut Context<'_>) {
        let now = Instant::now();
        let clock = self.clock.clone();
        let n = self.targets.len();
        loop {
            let due = clock.due(self.next);
            if due > now || due >= clock.end {
                break;
            }
            let i = self.next;
            self.next += self.step;
            let measure = due >= clock.measure_start;
            match clock.spec.pattern {
                Pattern::RequestReply => {
                    let body = payload::encode(
                        clock.spec.message_size,
                        measure,
                        clock.ns(due),
                        clock.ns(now),
                    );
                    let target = self.targets[(i % n as u64) as usize].clone();
                    self.result.expected += u64::from(measure);
                    match ctx.call(target, body, DRAIN + clock.spec.duration) {
                        Ok(id) => {
                            if measure {
                                self.pending.insert(id, (due, now));
                            }
                        }
                        Err(_) => self.result.rejected += u64::from(measure),
                    }
                }
                Pattern::OneWay | Pattern::FanOut => {
                    let fan = if clock.spec.pattern == Pattern::FanOut {
                        FAN_OUT.min(n)
                    } else {
                        1
                    };
                    let body = Bytes::from(payload::encode(
                        clock.spec.message_size,
                        measure,
                        clock.ns(due),
                        clock.ns(now),
                    ));
                    for k in 0..fan {
                        let target = self.targets[((i as usize * fan) + k) % n].clone();
                        self.result.expected += u64::from(measure);
                        if ctx.send(target, body.clone()).is_err() {
                            self.result.rejected += u64::from(measure);
                        }
                    }
                }
            }
        }
        let next_due = clock.due(self.next);
        if next_due < clock.end {
            self.wait_until(ctx, next_due);
        } else {
            self.finish_when_drained(ctx);
        }
    }

    /// Has this generator called again at `due`, by a shard timer set to
    /// the instant itself: the dispatcher checks its timers between its
    /// work and while it spins, as a tokio generator looks at the clock
    /// between `yield_now`s ([`super::spec::SPIN_BEFORE_DUE`]). Not a
    /// self-sent message per turn: that keeps the dispatcher inside its
    /// agents' turn, and calls waited in the outbound buffers (p50 ~175 µs
    /// at 20 000 msg/s with the generator itself on time).
    fn wait_until(&self, ctx: &mut Context<'_>, due: Instant) {
        let left = due.saturating_duration_since(Instant::now());
        ctx.send_after(left, Bytes::new());
    }

    fn finish_when_drained(&mut self, ctx: &mut Context<'_>) {
        if self.reported {
            return;
        }
        let drained = self.pending.is_empty() || Instant::now() >= self.clock.end + DRAIN;
        if drained {
            self.pending.clear();
            self.reported = true;
            let _ = self.report.send(std::mem::replace(
                &mut self.result,
                LoadResult::empty(&self.clock.spec),
            ));
        } else {
            ctx.send_after(Duration::from_millis(10), Bytes::new());
        }
    }
}

impl Agent for Generator {
    fn handle(&mut self, ctx: &mut Context<'_>, _tick: Envelope) {
        if self.reported {
            return;
        }
        // Messages due before the end are sent even if the generator only
        // got here after it (a stall): their lateness is what it measures.
        if self.clock.due(self.next) < self.clock.end {
            self.send_due(ctx);
        } else {
            self.finish_when_drained(ctx);
        }
    }

    fn on_reply(
        &mut self,
        _ctx: &mut Context<'_>,
        call: MessageId,
        reply: Result<Envelope, CallError>,
    ) {
        let now = Instant::now();
        let Some((due, sent)) = self.pending.remove(&call) else {
            return;
        };
        match reply {
            Ok(_) => {
                let clock = &self.clock;
                self.result.record(
                    &clock.spec,
                    due.duration_since(clock.measure_start),
                    now.duration_since(due).as_nanos() as u64,
                    now.duration_since(sent).as_nanos() as u64,
                );
            }
            Err(_) => self.result.rejected += 1,
        }
    }
}

/// Replies with the request's payload (request/reply targets).
struct Echo;

impl Agent for Echo {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        let _ = ctx.reply(msg.payload);
    }
}

thread_local! {
    /// The sinks of one run on this shard's thread share one result, by run
    /// tag: a result is several histograms of ~220 KB each, and a thousand
    /// sinks with one apiece made the harness, not the node, the memory
    /// figure (2.2 GB for 1 000 one-way targets).
    static SHARD_RESULTS: RefCell<HashMap<String, Rc<RefCell<Option<LoadResult>>>>> =
        RefCell::new(HashMap::new());
}

/// Records the latency of each message it takes (one-way and fan-out
/// targets) into its shard's result for the run; reports when sent
/// [`REPORT`] (the first sink of a shard to be asked sends the whole
/// shard's result, the others nothing).
struct Sink {
    /// Set before the first message is due (targets exist before the run's
    /// clock starts).
    clock: Arc<OnceLock<Arc<Clock>>>,
    spec: LoadSpec,
    tag: String,
    result: Rc<RefCell<Option<LoadResult>>>,
    /// `None` from every sink but the first of its shard to report.
    report: mpsc::Sender<Option<LoadResult>>,
}

impl Sink {
    /// A sink on the calling (shard) thread, sharing its shard's result.
    fn new(
        clock: Arc<OnceLock<Arc<Clock>>>,
        spec: LoadSpec,
        tag: String,
        report: mpsc::Sender<Option<LoadResult>>,
    ) -> Self {
        let result = SHARD_RESULTS.with(|r| {
            r.borrow_mut()
                .entry(tag.clone())
                .or_insert_with(|| Rc::new(RefCell::new(Some(LoadResult::empty(&spec)))))
                .clone()
        });
        Sink {
            clock,
            spec,
            tag,
            result,
            report,
        }
    }
}

impl Agent for Sink {
    fn handle(&mut self, _ctx: &mut Context<'_>, msg: Envelope) {
        if msg.payload == REPORT {
            let shard_result = self.result.borrow_mut().take();
            if shard_result.is_some() {
                SHARD_RESULTS.with(|r| r.borrow_mut().remove(&self.tag));
            }
            let _ = self.report.send(shard_result);
            return;
        }
        let (Some((true, intended, actual)), Some(clock)) =
            (payload::decode(&msg.payload), self.clock.get())
        else {
            return;
        };
        let now = clock.ns(Instant::now());
        let measure_start = clock.ns(clock.measure_start);
        let mut result = self.result.borrow_mut();
        let Some(result) = result.as_mut() else {
            return; // after the report: too late to count
        };
        result.record(
            &self.spec,
            Duration::from_nanos(intended.saturating_sub(measure_start)),
            now.saturating_sub(intended),
            now.saturating_sub(actual),
        );
    }
}

/// Registers target agents `tag/target-*`, spread over every shard.
fn targets(client: &Client, tag: &str, agents: usize) -> Vec<AgentId> {
    let n = client.shard_count();
    (0..n)
        .flat_map(|s| {
            let here = agents / n + usize::from(s < agents % n);
            names_on_shard(&format!("{tag}/target"), s, n, here)
        })
        .collect()
}

/// Runs `spec` against `client`'s node; `tick` is called about every 100 ms
/// with the fraction of the run done (for a progress bar).
pub fn run(
    client: &Client,
    tag: &str,
    spec: &LoadSpec,
    tick: impl FnMut(f64),
) -> Result<LoadResult, String> {
    run_with(client, tag, spec, None, tick)
}

/// [`run`] whose request/reply targets are WebAssembly agents of
/// `wasm_echo` (a module that replies with the request) when given.
pub fn run_with(
    client: &Client,
    tag: &str,
    spec: &LoadSpec,
    wasm_echo: Option<&[u8]>,
    mut tick: impl FnMut(f64),
) -> Result<LoadResult, String> {
    if spec.agents == 0 || spec.rate == 0 {
        return Err("a run needs at least one agent and a rate above 0".into());
    }
    let n = client.shard_count();
    let names = targets(client, tag, spec.agents);
    let epoch = Instant::now();
    let (sink_tx, sink_rx) = mpsc::channel();
    let clock_cell: Arc<OnceLock<Arc<Clock>>> = Arc::default();
    // The sinks' shared results are kept per run, never reused by another.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run_key = format!(
        "{tag}#{}",
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    for name in &names {
        let result = match spec.pattern {
            Pattern::RequestReply => match wasm_echo {
                Some(module) => client
                    .deploy_wasm_blocking(name.clone(), module.to_vec(), WasmOptions::default())
                    .map_err(|e| e.to_string())
                    .map(|_| ()),
                None => client
                    .register_blocking(name.clone(), || Echo)
                    .map_err(|e| e.to_string()),
            },
            Pattern::OneWay | Pattern::FanOut => {
                let (report, clock, spec) = (sink_tx.clone(), clock_cell.clone(), spec.clone());
                let tag = run_key.clone();
                client
                    .register_blocking(name.clone(), move || Sink::new(clock, spec, tag, report))
                    .map_err(|e| e.to_string())
            }
        };
        result?;
    }
    let start = Instant::now() + Duration::from_millis(50);
    let clock = Arc::new(Clock {
        spec: spec.clone(),
        epoch,
        start,
        measure_start: start + spec.warmup,
        end: start + spec.warmup + spec.duration,
    });
    let _ = clock_cell.set(clock.clone());
    let targets = Arc::new(names.clone());
    let (gen_tx, gen_rx) = mpsc::channel();
    let mut generators = Vec::new();
    for s in 0..n {
        let name = names_on_shard(&format!("{tag}/generator"), s, n, 1).remove(0);
        let (clock, targets, report) = (clock.clone(), targets.clone(), gen_tx.clone());
        let spec = spec.clone();
        client
            .register_blocking(name.clone(), move || Generator {
                clock,
                targets,
                next: s as u64,
                step: n as u64,
                pending: HashMap::default(),
                result: LoadResult::empty(&spec),
                report,
                reported: false,
            })
            .map_err(|e| e.to_string())?;
        generators.push(name);
    }
    for g in &generators {
        client
            .send_blocking(g.clone(), Bytes::new())
            .map_err(|e| e.to_string())?;
    }
    let total = clock.end.saturating_duration_since(Instant::now());
    while Instant::now() < clock.end {
        std::thread::sleep(Duration::from_millis(100));
        let left = clock.end.saturating_duration_since(Instant::now());
        tick(1.0 - left.as_secs_f64() / total.as_secs_f64().max(1e-9));
    }
    let mut result = LoadResult::empty(spec);
    for _ in &generators {
        let r = gen_rx
            .recv_timeout(DRAIN + Duration::from_secs(10))
            .map_err(|_| "a generator did not report".to_string())?;
        result.merge(&r);
    }
    if spec.pattern != Pattern::RequestReply {
        // Deliveries still in flight get a moment, then each sink reports.
        std::thread::sleep(Duration::from_millis(200));
        for name in &names {
            client
                .send_blocking(name.clone(), Bytes::from_static(REPORT))
                .map_err(|e| e.to_string())?;
        }
        for _ in &names {
            let r = sink_rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| "a sink did not report".to_string())?;
            if let Some(r) = r {
                result.merge(&r);
            }
        }
    }
    for name in names.iter().chain(&generators) {
        if wasm_echo.is_some() && spec.pattern == Pattern::RequestReply {
            let _ = client.undeploy_blocking(name.clone());
        }
        let _ = client.unregister_blocking(name.clone());
    }
    tick(1.0);
    Ok(result)
}
