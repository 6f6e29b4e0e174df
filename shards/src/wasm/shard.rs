//! One shard's WebAssembly side: pools of pre-warmed instances, the list of
//! active agents the idle sweep walks, and the shard's wasm figures.
//!
//! Virtual agents: a deployed agent holds no instance until a message comes
//! (activation takes a pre-warmed one from the pool), and gives it back to
//! nobody once idle for `idle_after` (deactivation drops it; the agent's
//! state lives in the shard, not in the instance). Memory follows active
//! agents, not addressable ones.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::engine::{ModuleHash, WasmEngine, WasmModule};
use super::instance::LiveInstance;
use super::limits::AgentLimits;
use super::preempt::ShardPreemption;
use crate::stats::new_latency_histogram;

/// Pool and idle settings of a shard's wasm host.
///
/// ```
/// use quire_shards::wasm::WasmShardConfig;
/// assert!(WasmShardConfig::default().pool_size > 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmShardConfig {
    /// Pre-warmed instances kept per module (and memory limit).
    pub pool_size: usize,
    /// An agent idle this long loses its instance.
    pub idle_after: Duration,
    /// Instances the sweep creates at most per run (bounds its time).
    pub refill_per_sweep: usize,
}

impl Default for WasmShardConfig {
    fn default() -> Self {
        Self {
            pool_size: 8,
            idle_after: Duration::from_secs(30),
            refill_per_sweep: 32,
        }
    }
}

/// What a shard's wasm host counted.
#[derive(Debug, Clone)]
pub struct WasmShardStats {
    /// Agents given an instance on a message.
    pub activations: u64,
    /// Activations served from a pre-warmed pool.
    pub pool_hits: u64,
    /// Idle agents that gave their instance up.
    pub deactivations: u64,
    /// Instances created (pool refills, activations with an empty pool, restarts).
    pub instances_created: u64,
    /// Failed messages (limits broken, traps).
    pub failures: u64,
    /// Agents quarantined.
    pub quarantines: u64,
    /// Handlers stopped while running, over their time limit.
    pub preemptions: u64,
    /// Times an agent was throttled for taking more than its share.
    pub throttles: u64,
    /// Answers (replies, undelivered notices) that came to agents while
    /// they were quarantined or throttled, and were not handed to them.
    pub answers_skipped: u64,
    /// Live instances now (agents' and pools').
    pub live_instances: u64,
    /// Linear memory of the active agents' instances now, in bytes.
    pub agent_memory_bytes: u64,
    /// Time to activate an agent (take or make an instance), in ns.
    pub activation_ns: Histogram<u64>,
}

impl Default for WasmShardStats {
    fn default() -> Self {
        Self {
            activations: 0,
            pool_hits: 0,
            deactivations: 0,
            instances_created: 0,
            failures: 0,
            quarantines: 0,
            preemptions: 0,
            throttles: 0,
            answers_skipped: 0,
            live_instances: 0,
            agent_memory_bytes: 0,
            activation_ns: new_latency_histogram(),
        }
    }
}

/// An agent's hold on its instance, shared with the idle list.
#[derive(Default)]
pub(crate) struct Activation {
    pub live: RefCell<Option<LiveInstance>>,
    pub last_tick: Cell<u64>,
}

type PoolKey = (ModuleHash, u32);

struct Pool {
    module: WasmModule,
    limits: AgentLimits,
    ready: Vec<LiveInstance>,
    /// Agents deployed with this module and limits: the pool goes (and its
    /// instances' memory with it) when the last one is undeployed.
    users: usize,
}

/// The wasm host of one shard. Not `Send`: it lives on its shard's thread.
pub struct WasmShard {
    engine: WasmEngine,
    config: WasmShardConfig,
    pools: RefCell<HashMap<PoolKey, Pool>>,
    active: RefCell<VecDeque<Weak<Activation>>>,
    tick: Cell<u64>,
    /// When the current sweep tick began (the caller's clock; the first
    /// sweep starts it).
    tick_started: Cell<Option<Instant>>,
    stats: RefCell<WasmShardStats>,
    preemption: ShardPreemption,
    pub(crate) patterns: RefCell<Vec<super::patterns::NamePattern>>,
}

impl WasmShard {
    /// A shard's wasm host using `engine` (shared with the node).
    pub fn new(engine: WasmEngine, config: WasmShardConfig) -> Rc<Self> {
        Rc::new(Self {
            engine,
            config,
            pools: RefCell::default(),
            active: RefCell::default(),
            tick: Cell::new(0),
            tick_started: Cell::new(None),
            stats: RefCell::default(),
            preemption: ShardPreemption::new(),
            patterns: RefCell::default(),
        })
    }

    /// The node's engine.
    pub fn engine(&self) -> &WasmEngine {
        &self.engine
    }

    /// Its settings.
    pub fn config(&self) -> &WasmShardConfig {
        &self.config
    }

    /// A copy of its figures.
    pub fn stats(&self) -> WasmShardStats {
        let mut s = self.stats.borrow().clone();
        s.live_instances = self.live_instances();
        s.agent_memory_bytes = self.agent_memory_bytes();
        s.preemptions = self.preemption.interrupts();
        s
    }

    /// What stops this shard's handlers that run past their time limit.
    pub(crate) fn preemption(&self) -> &ShardPreemption {
        &self.preemption
    }

    fn agent_memory_bytes(&self) -> u64 {
        self.active
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|a| a.live.borrow().as_ref().map_or(0, |l| l.memory_bytes()))
            .sum()
    }

    fn live_instances(&self) -> u64 {
        let pooled: usize = self.pools.borrow().values().map(|p| p.ready.len()).sum();
        let active = self
            .active
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|a| a.live.borrow().is_some())
            .count();
        (pooled + active) as u64
    }

    /// Registers a module/limits pair for pre-warming.
    pub(crate) fn want_pool(&self, module: &WasmModule, limits: &AgentLimits) {
        if self.config.pool_size == 0 {
            return;
        }
        self.pools
            .borrow_mut()
            .entry((module.hash.clone(), limits.memory_pages()))
            .or_insert_with(|| Pool {
                module: module.clone(),
                limits: *limits,
                ready: Vec::new(),
                users: 0,
            })
            .users += 1;
    }

    /// An agent of this module and limits is gone (undeployed, or reloaded
    /// with another): the last one takes the pool with it.
    pub(crate) fn release_pool(&self, module: &WasmModule, limits: &AgentLimits) {
        let key = (module.hash.clone(), limits.memory_pages());
        let mut pools = self.pools.borrow_mut();
        if let Some(pool) = pools.get_mut(&key) {
            pool.users = pool.users.saturating_sub(1);
            if pool.users == 0 {
                pools.remove(&key);
            }
        }
    }

    /// Gives `activation` an instance of `module`: from the pool if one is
    /// ready, else a new one.
    pub(crate) fn activate(
        &self,
        activation: &Rc<Activation>,
        module: &WasmModule,
        limits: &AgentLimits,
    ) -> Result<(), String> {
        let started = Instant::now();
        let key = (module.hash.clone(), limits.memory_pages());
        let pooled = self
            .pools
            .borrow_mut()
            .get_mut(&key)
            .and_then(|p| p.ready.pop());
        let hit = pooled.is_some();
        let mut instance = match pooled {
            Some(i) => i,
            None => {
                self.stats.borrow_mut().instances_created += 1;
                LiveInstance::new(module, limits)?
            }
        };
        instance.set_limits(limits);
        *activation.live.borrow_mut() = Some(instance);
        activation.last_tick.set(self.tick.get());
        self.active
            .borrow_mut()
            .push_back(Rc::downgrade(activation));
        let mut stats = self.stats.borrow_mut();
        stats.activations += 1;
        stats.pool_hits += u64::from(hit);
        let ns = started.elapsed().as_nanos().max(1) as u64;
        stats.activation_ns.saturating_record(ns);
        Ok(())
    }

    /// Marks an agent as used now (no clock read: the sweep's tick).
    #[inline]
    pub(crate) fn touch(&self, activation: &Activation) {
        activation.last_tick.set(self.tick.get());
    }

    pub(crate) fn count_answer_skipped(&self) {
        self.stats.borrow_mut().answers_skipped += 1;
    }

    pub(crate) fn count_throttle(&self) {
        self.stats.borrow_mut().throttles += 1;
    }

    pub(crate) fn count_failure(&self, quarantined: bool) {
        let mut stats = self.stats.borrow_mut();
        stats.failures += 1;
        stats.quarantines += u64::from(quarantined);
    }

    /// The periodic work, off the message path: deactivates agents idle for
    /// `idle_after` and tops up the pools. Call it every `sweep_interval()`.
    /// Returns how many agents it deactivated.
    pub fn sweep(&self, now: Instant) -> usize {
        let interval = self.sweep_interval();
        let before = self.tick.get();
        let tick_started = self.tick_started.get().unwrap_or(now);
        let ticks = (now.saturating_duration_since(tick_started).as_nanos()
            / interval.as_nanos().max(1))
        .min(u128::from(u32::MAX)) as u32;
        self.tick_started.set(Some(tick_started + interval * ticks));
        let tick = before + u64::from(ticks);
        self.tick.set(tick);
        let deactivated = if tick > before {
            self.deactivate_idle(tick)
        } else {
            0
        };
        self.refill();
        deactivated
    }

    /// Drops the instances of agents not touched for `idle_after` (four
    /// ticks), except those still waiting for answers to their calls.
    fn deactivate_idle(&self, tick: u64) -> usize {
        const IDLE_TICKS: u64 = 4;
        let mut deactivated = 0;
        let mut active = self.active.borrow_mut();
        for _ in 0..active.len() {
            let Some(weak) = active.pop_front() else {
                break;
            };
            let Some(activation) = weak.upgrade() else {
                continue;
            };
            if tick.saturating_sub(activation.last_tick.get()) < IDLE_TICKS {
                active.push_back(weak);
                continue;
            }
            let mut live = activation.live.borrow_mut();
            match live.as_ref() {
                Some(i) if !i.outstanding_calls.is_empty() => {
                    drop(live);
                    active.push_back(weak);
                }
                Some(_) => {
                    *live = None;
                    deactivated += 1;
                }
                None => {}
            }
        }
        drop(active);
        self.stats.borrow_mut().deactivations += deactivated as u64;
        deactivated
    }

    /// How often [`Self::sweep`] should run.
    pub fn sweep_interval(&self) -> Duration {
        (self.config.idle_after / 4).max(Duration::from_millis(1))
    }

    /// Creates up to `refill_per_sweep` instances for pools below size.
    pub fn refill(&self) -> usize {
        let mut budget = self.config.refill_per_sweep;
        let mut made = 0;
        let mut pools = self.pools.borrow_mut();
        for pool in pools.values_mut() {
            while budget > 0 && pool.ready.len() < self.config.pool_size {
                budget -= 1;
                match LiveInstance::new(&pool.module, &pool.limits) {
                    Ok(i) => {
                        pool.ready.push(i);
                        made += 1;
                    }
                    Err(e) => {
                        tracing::warn!("pre-warming module {}: {e}", pool.module.hash.short());
                        break;
                    }
                }
            }
        }
        drop(pools);
        self.stats.borrow_mut().instances_created += made as u64;
        made
    }
}
