//! The looping neighbour: open-loop calls from a driver agent to
//! well-behaved wasm agents on one shard, without and then with an agent on
//! that shard that loops forever on every message.

use super::*;

/// Loops forever on every message (a hostile agent).
const LOOPER_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "quire_abi_version") (result i32) i32.const 1)
  (func (export "quire_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
    (loop $forever (br $forever)) i32.const 0))"#;

/// Open-loop load from inside a shard: calls fall due at a fixed rate and
/// each latency runs from the call's intended start, so a stall that
/// delays the driver itself still counts against every call it held up
/// (coordinated omission corrected). The driver clocks itself by sending
/// itself a tick after each pass: it needs no timer, and it runs between
/// the other agents' turns like any agent.
struct OpenLoopDriver {
    targets: Vec<AgentId>,
    interval: Duration,
    total: u64,
    issued: u64,
    answered: u64,
    start: Option<Instant>,
    intended: std::collections::HashMap<quire_shards::MessageId, Instant>,
    latency: Histogram<u64>,
    report: std::sync::mpsc::Sender<Histogram<u64>>,
}

impl Agent for OpenLoopDriver {
    fn handle(&mut self, ctx: &mut Context<'_>, _tick: Envelope) {
        let start = *self.start.get_or_insert_with(Instant::now);
        let now = Instant::now();
        while self.issued < self.total {
            let due = start + self.interval * self.issued as u32;
            if due > now {
                break;
            }
            let to = self.targets[self.issued as usize % self.targets.len()].clone();
            self.issued += 1;
            match ctx.call(to, Bytes::from_static(b"ping"), Duration::from_secs(5)) {
                Ok(id) => {
                    self.intended.insert(id, due);
                }
                Err(_) => self.answered += 1,
            }
        }
        if self.issued < self.total {
            let me = ctx.id().clone();
            let _ = ctx.send(me, Bytes::new());
        }
    }

    fn on_reply(
        &mut self,
        _ctx: &mut Context<'_>,
        call: quire_shards::MessageId,
        _reply: Result<Envelope, quire_shards::CallError>,
    ) {
        if let Some(due) = self.intended.remove(&call) {
            self.latency
                .saturating_record(due.elapsed().as_nanos() as u64);
        }
        self.answered += 1;
        if self.answered == self.total {
            let _ = self.report.send(std::mem::replace(
                &mut self.latency,
                new_latency_histogram(),
            ));
        }
    }
}

fn open_loop(
    client: &quire_runtime::Client,
    tag: &str,
    targets: &[AgentId],
    rate: u64,
    secs: u64,
) -> Result<Histogram<u64>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let driver = OpenLoopDriver {
        targets: targets.to_vec(),
        interval: Duration::from_nanos(1_000_000_000 / rate.max(1)),
        total: rate * secs,
        issued: 0,
        answered: 0,
        start: None,
        intended: std::collections::HashMap::new(),
        latency: new_latency_histogram(),
        report: tx,
    };
    let name = format!("{tag}/driver");
    client
        .register_blocking(name.as_str(), move || driver)
        .map_err(|e| e.to_string())?;
    client
        .send_blocking(name.as_str(), Bytes::new())
        .map_err(|e| e.to_string())?;
    rx.recv_timeout(Duration::from_secs(secs + 60))
        .map_err(|_| format!("{tag}: the open-loop run did not finish"))
}

/// The looping-neighbour figure, medians over `runs` fresh nodes.
pub(super) fn looping_neighbour(opts: &WasmBenchOptions) -> Result<Neighbour, String> {
    let runs: Vec<Neighbour> = (0..opts.runs.max(1))
        .map(|_| looping_neighbour_once(opts))
        .collect::<Result<_, _>>()?;
    let quiet = Percentiles::median_of(&runs.iter().map(|r| r.quiet).collect::<Vec<_>>());
    let hammered = Percentiles::median_of(&runs.iter().map(|r| r.hammered).collect::<Vec<_>>());
    let sum = |f: fn(&Neighbour) -> u64| runs.iter().map(f).sum::<u64>();
    Ok(Neighbour {
        p99_growth: latency_ratio(hammered.p99_ns, quiet.p99_ns),
        quiet,
        hammered,
        looper_sent: sum(|r| r.looper_sent),
        looper_failures: sum(|r| r.looper_failures),
        looper_quarantined: sum(|r| r.looper_quarantined),
        looper_message_ns: median(runs.iter().map(|r| r.looper_message_ns).collect()),
    })
}

fn looping_neighbour_once(opts: &WasmBenchOptions) -> Result<Neighbour, String> {
    // One shard: the well-behaved agents and the looper share it.
    let node = Node::builder()
        .shards(1)
        .spin_before_park(Duration::from_micros(opts.spin_us))
        .start()
        .map_err(|e| e.to_string())?;
    let client = node.client();
    let targets: Vec<AgentId> = (0..16)
        .map(|i| AgentId::from(format!("good-{i}")))
        .collect();
    for t in &targets {
        client
            .deploy_wasm_blocking(t.clone(), ECHO_WASM, WasmOptions::default())
            .map_err(|e| e.to_string())?;
    }
    let looper = wasmer::wat2wasm(LOOPER_WAT.as_bytes()).map_err(|e| e.to_string())?;
    // The looper's fuel budget: 250 K operators per message (a quarter of
    // a millisecond here, a thousand times what the echo needs), and the
    // default supervision: 5 failures in 10 s quarantine it.
    let limits = AgentLimits {
        fuel_per_message: opts.neighbour_fuel,
        ..AgentLimits::default()
    };
    client
        .deploy_wasm_blocking(
            "looper",
            looper.into_owned(),
            WasmOptions::default().limits(limits),
        )
        .map_err(|e| e.to_string())?;
    // What one looping message costs the shard (a looper of its own, so the
    // measured one starts with no failures).
    client
        .deploy_wasm_blocking(
            "looper-probe",
            wasmer::wat2wasm(LOOPER_WAT.as_bytes())
                .map_err(|e| e.to_string())?
                .into_owned(),
            WasmOptions::default().limits(limits),
        )
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let _ = client.call_blocking(
        "looper-probe",
        Bytes::from_static(b"spin"),
        Duration::from_secs(5),
    );
    let looper_message_ns = started.elapsed().as_nanos() as u64;
    let quiet = open_loop(
        &client,
        "quiet",
        &targets,
        opts.neighbour_rate,
        opts.neighbour_secs,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = {
        let client = client.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = client.send_blocking("looper", Bytes::from_static(b"spin"));
                sent += 1;
            }
            sent
        })
    };
    let hammered = open_loop(
        &client,
        "hammered",
        &targets,
        opts.neighbour_rate,
        opts.neighbour_secs,
    )?;
    stop.store(true, Ordering::Relaxed);
    let looper_sent = hammer.join().unwrap_or(0);
    let stats = quire_shards::ShardStats::total(&client.stats_blocking());
    node.shutdown();
    let (quiet, hammered) = (Percentiles::of(&quiet), Percentiles::of(&hammered));
    Ok(Neighbour {
        p99_growth: latency_ratio(hammered.p99_ns, quiet.p99_ns),
        quiet,
        hammered,
        looper_sent,
        // The probe's one failure is not the hammered looper's.
        looper_failures: stats.rejected_for(quire_shards::Rejection::FuelExhausted) - 1,
        looper_message_ns,
        looper_quarantined: stats.rejected_for(quire_shards::Rejection::Quarantined),
    })
}
