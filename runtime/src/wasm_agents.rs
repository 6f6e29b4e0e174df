//! WebAssembly agents on a node: the `wasm` agent kind, each shard's wasm
//! host, and the options a deploy takes.
//!
//! The node owns one [`WasmEngine`] (compiles once, caches on disk); each
//! shard thread makes its own [`WasmShard`] (pools, idle sweep) and installs
//! it here before it rebuilds its agents, so that the `wasm` kind's factory,
//! which runs on the owning shard's thread, finds the host of that shard.

use std::cell::RefCell;
use std::rc::Rc;

use quire_shards::wasm::{
    AgentLimits, ModuleHash, Supervision, WasmAgent, WasmShard, WasmSpec, WASM_PATTERN_KIND,
};
use quire_shards::{Agent, AgentRecord, DefinitionError};

use crate::agent_kinds::AgentKinds;

thread_local! {
    static SHARD_HOST: RefCell<Option<Rc<WasmShard>>> = const { RefCell::new(None) };
}

/// Makes `host` the wasm host of the calling (shard) thread.
pub(crate) fn install(host: Rc<WasmShard>) {
    SHARD_HOST.with(|h| *h.borrow_mut() = Some(host));
}

/// Adds the `wasm` kind to `kinds` (a node always knows it), and the
/// `wasm-pattern` kind of name patterns (restored apart: never built).
pub(crate) fn add_kind(kinds: &mut AgentKinds) {
    kinds.add(quire_shards::wasm::WASM_KIND, build);
    kinds.add(WASM_PATTERN_KIND, |record| {
        Err(format!("{} is a name pattern, not an agent", record.name).into())
    });
}

/// Puts back a name pattern at recovery, on the calling shard thread.
pub(crate) fn restore_pattern(record: &AgentRecord) -> Result<(), DefinitionError> {
    SHARD_HOST.with(|h| {
        h.borrow()
            .as_ref()
            .ok_or(DefinitionError::from(NOT_A_SHARD))?
            .add_pattern(record)
    })
}

const NOT_A_SHARD: &str = "this thread is not a shard with a wasm host";

fn build(record: &AgentRecord) -> Result<Box<dyn Agent>, DefinitionError> {
    SHARD_HOST.with(|h| {
        let host = h.borrow();
        let host = host.as_ref().ok_or(DefinitionError::from(NOT_A_SHARD))?;
        Ok(Box::new(WasmAgent::from_record(host, record)?) as Box<dyn Agent>)
    })
}

/// How a WebAssembly agent is deployed: limits and supervision, each
/// defaulting to the node's `[wasm]` configuration.
///
/// ```
/// use quire_runtime::WasmOptions;
/// use quire_shards::wasm::AgentLimits;
/// let opts = WasmOptions::default().limits(AgentLimits { fuel_per_message: 1_000_000, ..AgentLimits::default() });
/// assert!(opts.supervision.is_none());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WasmOptions {
    /// Limits for this agent, or the node's defaults.
    pub limits: Option<AgentLimits>,
    /// Supervision for this agent, or the node's default.
    pub supervision: Option<Supervision>,
}

impl WasmOptions {
    /// Sets the limits.
    pub fn limits(mut self, limits: AgentLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Sets the supervision.
    pub fn supervision(mut self, supervision: Supervision) -> Self {
        self.supervision = Some(supervision);
        self
    }

    pub(crate) fn spec(&self, module: ModuleHash, defaults: &WasmDefaults) -> WasmSpec {
        WasmSpec::new(
            module,
            self.limits.unwrap_or(defaults.limits),
            self.supervision.unwrap_or(defaults.supervision),
        )
    }
}

/// The node's defaults for deploys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WasmDefaults {
    pub limits: AgentLimits,
    pub supervision: Supervision,
}
