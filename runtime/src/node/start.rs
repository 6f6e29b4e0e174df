//! Starting a node: storage opened and recovered, modules preloaded, one
//! pinned executor thread per shard, the SPSC mesh wired between them.

use super::*;

impl NodeBuilder {
    /// Starts the node: returns once every shard runs and the mesh is wired.
    pub fn start(self) -> Result<Node, StartError> {
        let placement = self.plan()?;
        check_host(placement.len())?;
        let config = self.config;
        crate::ports::check(&config, placement.len())?;
        let mut kinds = self.kinds;
        crate::wasm_agents::add_kind(&mut kinds);
        let wasm_engine = WasmEngine::with_compiler(
            config.wasm.cache_dir_for(&config.storage),
            config.wasm.max_module_bytes,
            self.compiler
                .map(|program| quire_shards::wasm::CompilerProcess {
                    program,
                    limits: config.wasm.compile_limits(),
                }),
        );
        let wasm_defaults = WasmDefaults {
            limits: config.wasm.limits,
            supervision: config.wasm.supervision,
        };
        let n = placement.len();
        let q = &config.queues;
        let mut storage = open_storage(&config, n, &kinds, &wasm_engine, self.faults.as_ref())?;
        let commit_cpus = match &config.storage.commit_cpuset {
            Some(list) => Some(crate::cpuset::parse_cpu_list(list).map_err(|e| {
                StartError::Config(crate::config::ConfigError::Invalid {
                    key: "storage.commit_cpuset",
                    problem: e.to_string(),
                })
            })?),
            None => None,
        };

        // Full mesh: one SPSC channel per ordered pair of shards.
        type Route = (shared_channel::SharedSender<Batch>, Arc<Doorbell>);
        let mut senders: Vec<Vec<Option<Route>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        let mut receivers: Vec<Vec<(shared_channel::SharedReceiver<Batch>, Arc<Doorbell>)>> =
            (0..n).map(|_| Vec::new()).collect();
        for (from, row) in senders.iter_mut().enumerate() {
            for (to, slot) in row.iter_mut().enumerate() {
                if from != to {
                    let (tx, rx) = shared_channel::new_bounded(q.mesh_channel_capacity);
                    let bell = Arc::new(Doorbell::default());
                    *slot = Some((tx, bell.clone()));
                    receivers[to].push((rx, bell));
                }
            }
        }

        let (command_senders, command_receivers): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| flume::bounded(q.client_channel_capacity))
            .unzip();
        let client = Client::new(command_senders, wasm_engine.clone(), wasm_defaults);
        let sockets = crate::net::bind(&config.network, &config.cluster, n)?;
        let stall_threshold = (config.metrics.stall_threshold_ms > 0)
            .then(|| Duration::from_millis(config.metrics.stall_threshold_ms));
        let watchdog = crate::watchdog::Watchdog::new(n, stall_threshold);
        let profiler = crate::profile::Profiler {
            client: client.clone(),
            pulses: (0..n).map(|shard| watchdog.pulse(shard)).collect(),
        };
        let metrics = match config.metrics.listen_addr()? {
            Some(addr) => Some(
                crate::admin_endpoint::MetricsEndpoint::with_profiler(
                    addr,
                    client.clone(),
                    profiler,
                )
                .map_err(|e| {
                    StartError::Metrics(format!(
                        "{e} (choose another with metrics.listen or quire node --metrics ADDR, \
                             or none with --no-metrics)"
                    ))
                })?,
            ),
            None => None,
        };
        let net_settings = match config.network.listen_addr()? {
            Some(listen) => {
                let node_name = config
                    .cluster
                    .node_name
                    .clone()
                    .unwrap_or_else(|| listen.to_string());
                let tls = crate::net::TlsSetup::from_config(
                    &config.network,
                    &config.cluster,
                    &node_name,
                )?;
                Some(crate::net::NetSettings {
                    listen,
                    node_name,
                    tls,
                    shards: n as u16,
                    network: config.network.clone(),
                    cluster: config.cluster.clone(),
                    max_admin_frame: config.wasm.max_module_bytes + (64 << 10),
                    credentials: crate::net::Credentials::from_config(&config.network)?,
                    seeds: crate::net::resolve_seeds(&config.cluster)?,
                })
            }
            None => None,
        };
        let mut sockets = sockets.map(Vec::into_iter);
        let mut threads = Vec::with_capacity(n);
        let mut go_senders = Vec::with_capacity(n);
        let (ready_tx, ready_rx) = mpsc::channel::<(usize, Ready)>();
        for (shard, ((row, rx_row), cmd_rx)) in senders
            .into_iter()
            .zip(receivers)
            .zip(command_receivers)
            .enumerate()
        {
            let net = match (sockets.as_mut().and_then(Iterator::next), &net_settings) {
                (Some((clients, links, gossip)), Some(settings)) => Some(crate::net::NetWiring {
                    settings: settings.clone(),
                    clients,
                    links,
                    gossip,
                    client: client.clone(),
                }),
                _ => None,
            };
            let cfg = ShardConfig {
                mailbox_capacity: q.mailbox_capacity,
                outbox_capacity: q.outbox_capacity,
                max_pending_calls: q.max_pending_calls,
                max_pending_calls_per_agent: q.max_pending_calls_per_agent,
                mailbox_max_bytes: q.mailbox_max_bytes,
                agent_batch: q.agent_batch,
                turn_quota: std::time::Duration::from_micros(q.turn_quota_us as u64),
                journal: config.storage.durability.is_persistent(),
                output_commit: config.storage.output_commit,
                dedup_window: config.storage.dedup_window,
                urgent_headroom: config.priorities.urgent_headroom,
                express_scheduling: config.priorities.express_scheduling,
                ..ShardConfig::new(shard as u16, n)
            };
            let wiring = ShardWiring {
                cfg,
                dispatch_budget: q.dispatch_budget,
                intake_limit: q.intake_limit,
                spin: config.spin_before_park(),
                senders: row,
                receivers: rx_row,
                commands: cmd_rx,
                kinds: kinds.clone(),
                storage: storage.as_mut().map(|s| s.remove(0)),
                wasm_engine: wasm_engine.clone(),
                wasm: config.wasm.shard_config(),
                net,
                pulse: watchdog.pulse(shard),
                stall_backtraces: stall_threshold.filter(|_| config.metrics.stall_backtraces),
            };
            let cpu = placement.shards[shard].cpu.cpu;
            let commit_cpus = commit_cpus.clone();
            let ready = ready_tx.clone();
            let (go_tx, go_rx) = mpsc::channel::<bool>();
            go_senders.push(go_tx);
            let name = format!("quire-shard-{shard}");
            let thread = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || shard_thread(shard, cpu, commit_cpus, &name, wiring, ready, go_rx))
                .map_err(|e| StartError::Executor {
                    shard,
                    cpu,
                    reason: e.to_string(),
                })?;
            threads.push(thread);
        }
        drop(ready_tx);

        // Every executor must exist before any shard connects to the mesh:
        // a shard waiting for a peer that failed would wait forever.
        let mut failure = None;
        let mut recovery = Vec::new();
        for _ in 0..n {
            match ready_rx.recv() {
                Ok((_, Ok(report))) => {
                    if let Some(report) = report {
                        tracing::info!("{report}");
                        recovery.push(report);
                    }
                }
                Ok((shard, Err(reason))) => {
                    failure.get_or_insert(StartError::Executor {
                        shard,
                        cpu: placement.shards[shard].cpu.cpu,
                        reason,
                    });
                }
                Err(_) => break,
            }
        }
        let go = failure.is_none();
        for g in go_senders {
            let _ = g.send(go);
        }
        if let Some(err) = failure {
            for t in threads {
                let _ = t.join();
            }
            return Err(err);
        }
        recovery.sort_by_key(|r| r.shard);
        let mut watchdog = watchdog;
        watchdog.start(&threads);
        Ok(Node {
            recovery,
            client,
            placement,
            threads,
            watchdog,
            metrics,
            grace: Duration::from_millis(config.node.shutdown_grace_ms),
        })
    }
}

/// A shard's start-up outcome: its recovery (on a durable node) or why its
/// executor could not start.
type Ready = Result<Option<RecoveryReport>, String>;

/// Checks the data directory against this node and reads every partition,
/// one thread per shard; `None` when the node keeps nothing on disk.
fn open_storage(
    config: &NodeConfig,
    shards: usize,
    kinds: &AgentKinds,
    wasm: &WasmEngine,
    faults: Option<&FaultSwitch>,
) -> Result<Option<Vec<StorageSetup>>, StartError> {
    let s = &config.storage;
    if s.durability == Durability::None {
        return Ok(None);
    }
    quire_storage::integrity::open_data_dir(&s.data_dir, shards, &s.node_id)?;
    let read = |shard: usize| -> Result<StorageSetup, StorageError> {
        let started = Instant::now();
        let path = partition_path(&s.data_dir, shard);
        // The same check as `quire storage check`: present, whole, readable.
        let (partition, recovered) = quire_storage::integrity::open_verified(&path, true)?;
        let partition = match faults {
            None => partition,
            Some(switch) => {
                drop(partition);
                quire_storage::faults::FaultyFile::partition(&path, switch.clone())?
            }
        };
        Ok(StorageSetup {
            partition: Arc::new(partition),
            recovered,
            read_time: started.elapsed(),
            policy: s.group_commit(),
        })
    };
    let setups: Vec<Result<StorageSetup, StorageError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..shards)
            .map(|shard| scope.spawn(move || read(shard)))
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(shard, h)| {
                h.join().unwrap_or_else(|panic| {
                    let detail = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|m| m.to_string()))
                        .unwrap_or_else(|| "redb panicked while reading it".into());
                    Err(StorageError::Corrupted {
                        file: partition_path(&s.data_dir, shard),
                        detail,
                    })
                })
            })
            .collect()
    });
    let setups = setups.into_iter().collect::<Result<Vec<_>, _>>()?;
    for setup in &setups {
        if let Some(rec) = setup
            .recovered
            .agents
            .iter()
            .find(|a| !kinds.knows(&a.kind))
        {
            return Err(StartError::UnknownAgentKind {
                file: setup.partition.file().display().to_string(),
                agent: rec.name.clone(),
                kind: rec.kind.clone(),
                known: kinds.names().join(", "),
            });
        }
    }
    preload_modules(&setups, wasm)?;
    Ok(Some(setups))
}

/// Loads (or compiles) every module a recovered wasm agent or pattern
/// runs, here on the starting thread, so that shards rebuild their agents
/// from modules in memory and a module that cannot be had stops the start.
fn preload_modules(setups: &[StorageSetup], wasm: &WasmEngine) -> Result<(), StartError> {
    for setup in setups {
        for record in &setup.recovered.agents {
            if record.kind != WASM_KIND && record.kind != WASM_PATTERN_KIND {
                continue;
            }
            let as_agent = AgentRecord::new(record.name.clone(), WASM_KIND, record.config.clone());
            let loaded = WasmSpec::from_record(&as_agent)
                .and_then(|spec| spec.module_hash())
                .and_then(|hash| wasm.module(&hash).map_err(DefinitionError::from));
            if let Err(reason) = loaded {
                return Err(StartError::AgentModule {
                    file: setup.partition.file().display().to_string(),
                    agent: record.name.clone(),
                    reason: reason.to_string(),
                });
            }
        }
    }
    Ok(())
}

fn shard_thread(
    shard: usize,
    cpu: usize,
    commit_cpus: Option<Vec<usize>>,
    name: &str,
    mut wiring: ShardWiring,
    ready: mpsc::Sender<(usize, Ready)>,
    go: mpsc::Receiver<bool>,
) -> ShardStats {
    // Without sockets the dispatcher spins on its own (cheaper than
    // glommio's reactor spin, see shard_runtime) and glommio parks at once.
    // With sockets the spin must also see socket completions, which only
    // glommio's reactor polls: glommio spins then, the dispatcher does not.
    let reactor_spin = if wiring.net.is_some() {
        wiring.spin.take()
    } else {
        None
    };
    let mut builder = LocalExecutorBuilder::new(glommio::Placement::Fixed(cpu));
    if let Some(spin) = reactor_spin {
        builder = builder.spin_before_park(spin);
    }
    if let Some(threshold) = wiring.stall_backtraces {
        builder = builder.detect_stalls(Some(Box::new(
            crate::metrics::stalls::GlommioStallSettings::new(threshold),
        )));
    }
    let builder = builder
        .name(name)
        // A busy dispatcher yields to glommio (client commands, I/O, timers)
        // at least this often.
        .preempt_timer(Duration::from_micros(500))
        // Registered I/O buffers are not used yet; keep the locked-memory
        // footprint within the default limit.
        .io_memory(256 * 1024)
        // Commits (fsync) run here, off the reactor. Not pinned to the
        // shard's CPU: a spinning shard would starve a thread that shares
        // its core.
        .blocking_thread_pool_placement(
            match commit_cpus.and_then(|cpus| {
                CpuSet::online()
                    .ok()
                    .map(|set| set.filter(|l| cpus.contains(&l.cpu)))
            }) {
                Some(set) => PoolPlacement::Fenced(1, set),
                None => PoolPlacement::Unbound(1),
            },
        );
    let executor = match builder.make() {
        Ok(ex) => ex,
        Err(e) => {
            let _ = ready.send((shard, Err(e.to_string())));
            return ShardStats::new(shard as u16);
        }
    };
    // The core and its agents are built here, on the shard's own thread
    // (agents need not be Send), before the node reports itself started.
    let mut core = ShardCore::new(wiring.cfg.clone());
    let wasm = WasmShard::new(wiring.wasm_engine.clone(), wiring.wasm);
    crate::wasm_agents::install(wasm.clone());
    core.set_activator(wasm.activator());
    let report = wiring
        .storage
        .as_mut()
        .map(|setup| restore(&mut core, setup, &wiring.kinds));
    let _ = ready.send((shard, Ok(report)));
    if go.recv() != Ok(true) {
        return ShardStats::new(shard as u16);
    }
    // A shard whose thread died would leave its agents' callers waiting for
    // good while the node looks alive. Crash-only instead: the process ends
    // (a supervisor restarts it), and output commit means nothing a reply or
    // an acknowledgement promised is lost with it. Agents' own panics never
    // get here: the core catches them per message.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        executor.run(run_shard(wiring, core, wasm))
    })) {
        Ok(stats) => stats,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|m| m.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            // Nothing here may panic again (a log line to a full disk would:
            // that is one way to get here), so no tracing, no eprintln!.
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!("quire: shard {shard} failed ({what}); the node stops at once\n"),
            );
            std::process::abort()
        }
    }
}
