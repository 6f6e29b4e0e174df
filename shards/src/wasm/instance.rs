//! One live instance of an agent module: its own wasmer `Store` (stores
//! never free what they hold, so a store per instance is what lets a
//! restarted or deactivated instance give its memory back), the host
//! functions it imports, and the call that delivers one event under the
//! agent's limits.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::RandomState;

use bytes::Bytes;
use wasmer::{
    imports, Function, FunctionEnv, Global, Instance, Memory, RuntimeError, Store, TypedFunction,
    Value,
};

use super::abi::{
    self, ABI_VERSION, EXPORT_ABI_VERSION, EXPORT_ALLOC, EXPORT_HANDLE, EXPORT_MEMORY,
};
use super::engine::{WasmError, WasmModule};
use super::host::{self, HostEnv};
use super::limits::AgentLimits;
use super::preempt::{CallWatch, ShardPreemption};
use super::tunables::{grows_refused, with_budget, InstanceBudget};
use crate::envelope::MessageId;
use crate::error::Rejection;
use crate::shard_core::Context;

/// How an event ended when it did not end well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub reason: Rejection,
    pub detail: String,
}

impl Violation {
    fn new(reason: Rejection, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// An event for the guest's `quire_handle`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub kind: i32,
    pub id: i64,
    pub code: i32,
}

pub(crate) struct LiveInstance {
    store: Store,
    env: FunctionEnv<HostEnv>,
    memory: Memory,
    alloc: TypedFunction<i32, i32>,
    handle: TypedFunction<(i32, i64, i32, i32, i32), i32>,
    version: TypedFunction<(), i32>,
    remaining_fuel: Global,
    fuel_exhausted: Global,
    memory_pages: u32,
    /// The most its tables may take.
    table_bytes: u64,
    /// Its stop button for the preemption thread.
    watch: Arc<CallWatch>,
    /// What the last event cost: its time (the real clock's: work done)
    /// and its sends and calls refused.
    pub last_cost: (Duration, u32),
    /// Calls this instance made whose answers have not come yet (after a
    /// hot reload the old version still hears its own answers).
    pub outstanding_calls: HashSet<MessageId, RandomState>,
}

impl LiveInstance {
    /// Instantiates `module` under `limits` (memory capped at instantiation).
    pub(crate) fn new(module: &WasmModule, limits: &AgentLimits) -> Result<Self, String> {
        let mut store = Store::new(module.engine.clone());
        let env = FunctionEnv::new(&mut store, HostEnv::new(*limits));
        let f = |store: &mut Store, name: &str| -> Function { host::function(store, &env, name) };
        let imports = imports! {
            abi::HOST_MODULE => {
                "send" => f(&mut store, "send"),
                "call" => f(&mut store, "call"),
                "reply" => f(&mut store, "reply"),
                "state_get" => f(&mut store, "state_get"),
                "state_put" => f(&mut store, "state_put"),
                "state_delete" => f(&mut store, "state_delete"),
                "log" => f(&mut store, "log"),
                "now" => f(&mut store, "now"),
                "self_id" => f(&mut store, "self_id"),
            }
        };
        let tables: Vec<_> = module.module.info().tables.values().copied().collect();
        let budget = InstanceBudget::new(limits.max_memory_bytes, &tables)?;
        let pages = budget.memory_pages;
        let instance = with_budget(budget, || {
            Instance::new(&mut store, &module.module, &imports).map_err(|e| e.to_string())
        })?;
        let exports = &instance.exports;
        let memory = exports
            .get_memory(EXPORT_MEMORY)
            .map_err(|e| e.to_string())?
            .clone();
        let alloc = exports
            .get_typed_function(&store, EXPORT_ALLOC)
            .map_err(|e| e.to_string())?;
        let handle = exports
            .get_typed_function(&store, EXPORT_HANDLE)
            .map_err(|e| e.to_string())?;
        let version = exports
            .get_typed_function(&store, EXPORT_ABI_VERSION)
            .map_err(|e| e.to_string())?;
        let global = |name: &str| -> Result<Global, String> {
            exports.get_global(name).cloned().map_err(|e| e.to_string())
        };
        let remaining_fuel = global("wasmer_metering_remaining_points")?;
        let fuel_exhausted = global("wasmer_metering_points_exhausted")?;
        env.as_mut(&mut store).memory = Some(memory.clone());
        env.as_mut(&mut store).fuel = Some(remaining_fuel.clone());
        let watch = CallWatch::new(store.interrupter());
        Ok(Self {
            store,
            env,
            memory,
            alloc,
            handle,
            version,
            remaining_fuel,
            fuel_exhausted,
            memory_pages: pages,
            table_bytes: budget.table_bytes,
            watch,
            last_cost: (Duration::ZERO, 0),
            outstanding_calls: HashSet::default(),
        })
    }

    /// Calls `quire_abi_version` (with a little fuel) and checks the answer.
    pub(crate) fn check_version(mut self) -> Result<(), WasmError> {
        self.refuel(100_000);
        // Runs on a compiling thread, not a shard's, but is stopped all the
        // same: a `memory.fill` loop costs little fuel.
        let preemption = ShardPreemption::new();
        let armed = preemption.arm(&self.watch, Instant::now(), VERSION_CHECK_TIME);
        let found = self.version.call(&mut self.store);
        drop(armed);
        let found =
            found.map_err(|e| WasmError::Instantiate(format!("quire_abi_version trapped: {e}")))?;
        if found != ABI_VERSION {
            return Err(abi::AbiError::WrongVersion { found }.into());
        }
        Ok(())
    }

    /// Applies limits that live in the host environment (for an instance
    /// taken from a pool).
    pub(crate) fn set_limits(&mut self, limits: &AgentLimits) {
        self.env.as_mut(&mut self.store).limits = *limits;
    }

    /// Bytes of memory the instance may hold now: its linear memory, and
    /// its tables at their largest.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.memory.view(&self.store).data_size() + self.table_bytes
    }

    fn refuel(&mut self, fuel: u64) {
        // Both globals are the metering middleware's own, of these types.
        let _ = self
            .remaining_fuel
            .set(&mut self.store, Value::I64(fuel as i64));
        let _ = self.fuel_exhausted.set(&mut self.store, Value::I32(0));
    }

    /// Delivers one event with `payload`, under `limits`, with `ctx` as the
    /// host functions' view of the shard.
    pub(crate) fn deliver(
        &mut self,
        ctx: &mut Context<'_>,
        event: Event,
        payload: &Bytes,
        limits: &AgentLimits,
        preemption: &ShardPreemption,
    ) -> Result<(), Violation> {
        self.refuel(limits.fuel_per_message);
        let refused_before = grows_refused();
        let started = Instant::now();
        self.env.as_mut(&mut self.store).begin_event();
        let guest = GuestHandler {
            memory: &self.memory,
            alloc: &self.alloc,
            handle: &self.handle,
        };
        let armed = preemption.arm(&self.watch, started, limits.max_time());
        let result = guest.run(&mut self.store, &self.env, ctx, event, payload);
        drop(armed);
        let elapsed = started.elapsed();
        ctx.charge_time(elapsed);
        let env = self.env.as_mut(&mut self.store);
        self.last_cost = (elapsed, env.refused);
        self.outstanding_calls.extend(env.take_calls_made());
        if env.logs_dropped > 0 {
            tracing::warn!(
                agent = ctx.id().as_str(),
                "{} more log lines of this message were left out (at most {} lines and {} KiB a message)",
                env.logs_dropped,
                super::host::MAX_LOG_LINES,
                super::host::MAX_LOG_BYTES_PER_EVENT >> 10
            );
        }
        if let Some(violation) = env.take_violation() {
            return Err(violation);
        }
        match result {
            Ok(0) => {}
            Ok(code) => {
                return Err(Violation::new(
                    Rejection::AgentFailed,
                    format!("the agent's handler returned error code {code}"),
                ))
            }
            Err(err) => {
                return Err(self.classify(err, grows_refused() > refused_before, elapsed, limits))
            }
        }
        // The time limit is kept by the preemption thread (on the time the
        // handler ran, not time its thread was descheduled): a handler that
        // ended on its own before it was stopped did not break it.
        Ok(())
    }

    fn classify(
        &mut self,
        err: RuntimeError,
        grow_refused: bool,
        elapsed: Duration,
        limits: &AgentLimits,
    ) -> Violation {
        if err.clone().to_trap() == Some(wasmer::sys::vm::TrapCode::HostInterrupt) {
            return Violation::new(
                Rejection::TimeLimit,
                format!(
                    "the handler was stopped after {} µs, over its limit of {} µs",
                    elapsed.as_micros(),
                    limits.max_time_us
                ),
            );
        }
        let exhausted = matches!(self.fuel_exhausted.get(&mut self.store), Value::I32(n) if n > 0);
        if exhausted {
            return Violation::new(
                Rejection::FuelExhausted,
                "the handler used up its fuel for one message",
            );
        }
        let pages = self.memory.view(&self.store).size().0;
        let message = err.message();
        if grow_refused {
            // A guest whose allocation failed at its limit traps (Rust's
            // allocator aborts): report the limit, not the trap.
            return Violation::new(
                Rejection::MemoryLimit,
                format!(
                    "the agent's memory ({pages} pages) could not grow within its limit of {} pages, and it trapped: {message}",
                    self.memory_pages
                ),
            );
        }
        Violation::new(
            Rejection::AgentTrapped,
            format!("the agent trapped: {message}"),
        )
    }
}

/// Time `quire_abi_version` may take at deploy.
const VERSION_CHECK_TIME: Duration = Duration::from_millis(100);

/// Message ids cross the boundary as i64 (they fit in 63 bits).
pub(crate) fn id_to_guest(id: MessageId) -> i64 {
    id.get() as i64
}

/// The exports one event goes through, borrowed apart from the instance's
/// store (so the instance's stop button can stay armed by reference).
struct GuestHandler<'a> {
    memory: &'a Memory,
    alloc: &'a TypedFunction<i32, i32>,
    handle: &'a TypedFunction<(i32, i64, i32, i32, i32), i32>,
}

impl GuestHandler<'_> {
    /// Copies `payload` into the guest and calls its handler, with `ctx`
    /// bound for the host functions.
    fn run(
        self,
        store: &mut Store,
        env: &FunctionEnv<HostEnv>,
        ctx: &mut Context<'_>,
        event: Event,
        payload: &Bytes,
    ) -> Result<i32, RuntimeError> {
        let len = payload.len() as i32;
        let ptr = if payload.is_empty() {
            0
        } else {
            let ptr = self.alloc.call(store, len)?;
            self.memory
                .view(store)
                .write(ptr as u32 as u64, payload)
                .map_err(|_| {
                    RuntimeError::new("quire_alloc returned room outside the agent's memory")
                })?;
            ptr
        };
        let _bound = host::bind_context(env, store, ctx);
        self.handle
            .call(store, event.kind, event.id, event.code, ptr, len)
    }
}
