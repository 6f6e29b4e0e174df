//! The embeddable node: plans placement, checks the host, starts one pinned
//! glommio executor per shard, wires the full SPSC mesh between them, and
//! shuts them down with every message accounted for.

use std::fmt;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel;
use glommio::{CpuSet, LocalExecutorBuilder, PoolPlacement};
use quire_shards::wasm::{WasmEngine, WasmShard, WasmSpec, WASM_KIND, WASM_PATTERN_KIND};
use quire_shards::{Agent, AgentRecord, Rejection, ShardConfig, ShardCore, ShardStats};
use quire_storage::faults::FaultSwitch;
use quire_storage::{partition_path, Durability, StorageError};

use crate::agent_kinds::AgentKinds;
use crate::client::Client;
use crate::config::NodeConfig;
use crate::placement::{inherited_affinity, Placement, PlacementError, PlacementRequest};
use crate::preflight::{check_host, PreflightError};
use crate::shard_runtime::{run_shard, Batch, Command, Doorbell, ShardWiring};
use crate::shard_storage::{restore, RecoveryReport, StorageSetup};
use crate::topology::{MachineTopology, TopologyError};
use crate::wasm_agents::WasmDefaults;

/// Why a node did not start. Each variant's message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The topology could not be read.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// No placement fits the request.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// A host limit is in the way.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// An executor could not be created.
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(
        "{file}: agent {agent} is of kind {kind:?}, which this node does not know (known: {known}); \
         register the kind with NodeBuilder::agent_kind"
    )]
    UnknownAgentKind {
        file: String,
        agent: String,
        kind: String,
        known: String,
    },
    /// A deployed WebAssembly agent's module can be neither loaded from
    /// the module cache nor compiled again.
    #[error("{file} holds WebAssembly agent {agent}, whose module cannot be loaded: {reason}")]
    AgentModule {
        /// The partition.
        file: String,
        /// The agent (or name pattern).
        agent: String,
        /// Why.
        reason: String,
    },
    /// The metrics endpoint could not listen.
    #[error("{0}")]
    Metrics(String),
    #[error("shard {shard} could not start its executor on CPU {cpu}: {reason}")]
    Executor {
        /// The shard.
        shard: usize,
        /// Its CPU.
        cpu: usize,
        /// glommio's error.
        reason: String,
    },
}

/// Configures and starts a [`Node`].
///
/// ```no_run
/// use quire_runtime::Node;
/// let node = Node::builder().cpuset("0-1").mailbox_capacity(4096).start().unwrap();
/// print!("{}", node.placement());
/// node.shutdown();
/// ```
#[derive(Debug, Clone, Default)]
pub struct NodeBuilder {
    config: NodeConfig,
    affinity: Option<Vec<usize>>,
    kinds: AgentKinds,
    faults: Option<FaultSwitch>,
    compiler: Option<std::path::PathBuf>,
}

impl NodeBuilder {
    /// Starts from a whole configuration.
    pub fn config(mut self, config: NodeConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs `n` shards.
    pub fn shards(mut self, n: usize) -> Self {
        self.config.node.shards = Some(n);
        self
    }

    /// Pins shards to these CPUs (cpuset(7) list format).
    pub fn cpuset(mut self, list: &str) -> Self {
        self.config.node.cpuset = Some(list.to_owned());
        self
    }

    /// Bounds every agent's mailbox.
    pub fn mailbox_capacity(mut self, n: usize) -> Self {
        self.config.queues.mailbox_capacity = n;
        self
    }

    /// Keeps idle reactors polling this long before sleeping (low latency at
    /// the price of busy cores).
    pub fn spin_before_park(mut self, spin: Duration) -> Self {
        self.config.node.spin_before_park_us = spin.as_micros() as u64;
        self
    }

    /// Plans against this affinity mask instead of the calling thread's.
    /// Sets the durability mode (`storage.durability`).
    pub fn durability(mut self, mode: Durability) -> Self {
        self.config.storage.durability = mode;
        self
    }

    /// CPUs the commit threads may use (`storage.commit_cpuset`).
    pub fn commit_cpuset(mut self, list: &str) -> Self {
        self.config.storage.commit_cpuset = Some(list.to_owned());
        self
    }

    /// Sets the data directory (`storage.data_dir`).
    pub fn data_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.storage.data_dir = dir.into();
        self
    }

    /// Teaches the node an agent kind: [`Client::deploy`] with this kind
    /// builds agents with `factory`, and so does recovery after a restart.
    ///
    /// ```no_run
    /// use quire_runtime::Node;
    /// use quire_shards::{Agent, Context, Envelope};
    ///
    /// struct Counter;
    /// impl Agent for Counter {
    ///     fn handle(&mut self, ctx: &mut Context<'_>, _msg: Envelope) {
    ///         let n = ctx.state(b"n").map_or(0, |v| v[0]);
    ///         ctx.put_state(b"n".to_vec(), vec![n.wrapping_add(1)]);
    ///     }
    /// }
    ///
    /// let node = Node::builder()
    ///     .agent_kind("counter", |_record| Ok(Box::new(Counter)))
    ///     .start()
    ///     .unwrap();
    /// node.client().deploy_blocking("c1", "counter", Vec::new()).unwrap();
    /// ```
    pub fn agent_kind<F>(mut self, kind: &str, factory: F) -> Self
    where
        F: Fn(&AgentRecord) -> Result<Box<dyn Agent>, String> + Send + Sync + 'static,
    {
        self.kinds.add(kind, factory);
        self
    }

    /// Runs every partition on a backend whose writes and fsyncs fail while
    /// `switch` says so: for tests of full disks and I/O errors (see
    /// [`quire_storage::faults`]).
    pub fn partition_faults(mut self, switch: FaultSwitch) -> Self {
        self.faults = Some(switch);
        self
    }

    /// Compiles new WebAssembly modules in child processes of `program`
    /// (run with [`quire_shards::wasm::COMPILE_SUBCOMMAND`]; the `quire`
    /// binary passes itself) under `wasm.compile_timeout_ms` and
    /// `wasm.compile_max_memory_bytes`. Without it, modules compile on the
    /// deploying thread with no limit.
    pub fn compile_in_child(mut self, program: std::path::PathBuf) -> Self {
        self.compiler = Some(program);
        self
    }

    /// Adds every kind of `kinds` (see [`crate::builtin_kinds`]).
    pub fn agent_kinds(mut self, kinds: AgentKinds) -> Self {
        self.kinds.extend(kinds);
        self
    }

    pub fn affinity(mut self, cpus: Vec<usize>) -> Self {
        self.affinity = Some(cpus);
        self
    }

    /// The placement this builder would use on this machine, without starting.
    pub fn plan(&self) -> Result<Placement, StartError> {
        self.config.validate()?;
        let topology = MachineTopology::discover()?;
        let affinity = self.affinity.clone().unwrap_or_else(inherited_affinity);
        let request = PlacementRequest {
            cpuset: self.config.node.cpuset.clone(),
            shards: self.config.node.shards,
        };
        Ok(Placement::plan(&topology, &affinity, &request)?)
    }

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
                crate::metrics::MetricsEndpoint::with_profiler(addr, client.clone(), profiler)
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
            Some(listen) => Some(crate::net::NetSettings {
                listen,
                node_name: config
                    .cluster
                    .node_name
                    .clone()
                    .unwrap_or_else(|| listen.to_string()),
                shards: n as u16,
                network: config.network.clone(),
                cluster: config.cluster.clone(),
                max_admin_frame: config.wasm.max_module_bytes + (64 << 10),
                seeds: crate::net::resolve_seeds(&config.cluster)?,
            }),
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
                .and_then(|hash| wasm.module(&hash).map_err(|e| e.to_string()));
            if let Err(reason) = loaded {
                return Err(StartError::AgentModule {
                    file: setup.partition.file().display().to_string(),
                    agent: record.name.clone(),
                    reason,
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

/// A running node. Dropping it shuts it down (with the configured grace).
pub struct Node {
    recovery: Vec<RecoveryReport>,
    client: Client,
    placement: Placement,
    threads: Vec<JoinHandle<ShardStats>>,
    watchdog: crate::watchdog::Watchdog,
    metrics: Option<crate::metrics::MetricsEndpoint>,
    grace: Duration,
}

/// How a shutdown went, with every shard's final figures.
#[derive(Debug, Clone)]
pub struct ShutdownReport {
    /// Final figures, in shard order.
    pub shards: Vec<ShardStats>,
    /// True when all queued work finished within the grace period.
    pub drained: bool,
    /// How long the drain took.
    pub drain_time: Duration,
}

impl ShutdownReport {
    /// Node-wide totals.
    pub fn totals(&self) -> ShardStats {
        ShardStats::total(&self.shards)
    }

    /// Ordinary messages rejected because the node stopped.
    pub fn rejected_at_shutdown(&self) -> u64 {
        self.totals().rejected_for(Rejection::ShuttingDown)
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.totals();
        write!(
            f,
            "shutdown {} in {:.1} ms: sent {}, handled {}, rejected {} (",
            if self.drained {
                "drained"
            } else {
                "cut the drain short"
            },
            self.drain_time.as_secs_f64() * 1e3,
            t.sent,
            t.handled,
            t.rejected_total()
        )?;
        let reasons: Vec<String> = Rejection::ALL
            .iter()
            .filter(|r| t.rejected_for(**r) > 0)
            .map(|r| format!("{} {}", r.as_str(), t.rejected_for(*r)))
            .collect();
        write!(
            f,
            "{})",
            if reasons.is_empty() {
                "none".to_string()
            } else {
                reasons.join(", ")
            }
        )
    }
}

impl Node {
    /// A builder with the embedded default configuration.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// Where the metrics endpoint listens (`metrics.listen`), if it does.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr())
    }

    /// A handle for sending to agents and managing them.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Where the shards run.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// What each shard found in its partition at start (empty unless the
    /// node is durable).
    pub fn recovery(&self) -> &[RecoveryReport] {
        &self.recovery
    }

    /// Stops the node: clients are refused from now on, queued work gets the
    /// configured grace period to finish, then whatever is left is rejected
    /// (and counted) and every shard's thread ends.
    pub fn shutdown(mut self) -> ShutdownReport {
        let grace = self.grace;
        self.stop(grace)
    }

    /// [`Self::shutdown`] with another grace period.
    pub fn shutdown_with_grace(mut self, grace: Duration) -> ShutdownReport {
        self.stop(grace)
    }

    fn stop(&mut self, grace: Duration) -> ShutdownReport {
        // Scrapes end first: a scrape waiting on a stopping shard would
        // only time out.
        self.metrics.take();
        let started = Instant::now();
        self.client.broadcast_blocking(|| Command::Drain);
        let drained = self.wait_for_quiescence(started + grace);
        let drain_time = started.elapsed();
        self.client.broadcast_blocking(|| Command::Stop);
        // Shards may still need a nudge while they stop; the watchdog ends
        // before any shard thread is joined (its thread ids stay valid).
        self.watchdog_until_stopped();
        let shards = std::mem::take(&mut self.threads)
            .into_iter()
            .enumerate()
            .map(|(i, t)| t.join().unwrap_or_else(|_| ShardStats::new(i as u16)))
            .collect();
        ShutdownReport {
            shards,
            drained,
            drain_time,
        }
    }

    /// Keeps the watchdog running until every shard thread has finished,
    /// then stops it.
    fn watchdog_until_stopped(&mut self) {
        while !self.threads.iter().all(JoinHandle::is_finished) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.watchdog.stop();
    }

    /// Quiescent: every shard idle and every envelope put on the mesh taken
    /// off it, seen twice in a row with the same counts (so nothing moved
    /// between the two looks).
    fn wait_for_quiescence(&self, deadline: Instant) -> bool {
        let mut previous = None;
        loop {
            let Some(probes) = self.client.probe_blocking() else {
                return false;
            };
            let out: u64 = probes.iter().map(|p| p.cross_out).sum();
            let inn: u64 = probes.iter().map(|p| p.cross_in).sum();
            let settled = probes.iter().all(|p| p.idle) && out == inn;
            if settled && previous == Some(out) {
                return true;
            }
            previous = settled.then_some(out);
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let grace = self.grace;
            self.stop(grace);
        }
    }
}
