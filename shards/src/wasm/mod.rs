//! The WebAssembly host: agents that users deploy as wasm modules, run by
//! wasmer inside the shard that owns them.
//!
//! - [`abi`]: agent ABI v1 (docs/agent-abi.md), checked at deploy;
//! - [`WasmEngine`]: compiles modules once per node, off the reactors, and
//!   caches the compiled artifacts on disk by content hash;
//! - [`WasmShard`]: one shard's pools of pre-warmed instances and its idle
//!   sweep (virtual agents: activated on a message, deactivated when idle);
//! - [`WasmAgent`]: a module as an [`crate::Agent`], under [`AgentLimits`]
//!   (memory, fuel, time, message size) and a [`Supervision`] policy;
//! - name patterns: `sensor-*` deploys a module for every matching name,
//!   created on its first message.
//!
//! ```
//! use quire_shards::wasm::{AgentLimits, Supervision, WasmAgent, WasmEngine, WasmShard, WasmShardConfig};
//! use quire_shards::{AgentId, SendOptions, ShardConfig, ShardCore};
//!
//! let echo = wasmer::wat2wasm(br#"(module
//!   (import "quire" "reply" (func $reply (param i32 i32) (result i32)))
//!   (memory (export "memory") 1)
//!   (func (export "quire_abi_version") (result i32) i32.const 1)
//!   (func (export "quire_alloc") (param i32) (result i32) i32.const 1024)
//!   (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
//!     (drop (call $reply (local.get 3) (local.get 4)))
//!     i32.const 0))"#).unwrap();
//! let engine = WasmEngine::new(None);
//! let module = engine.compile(&echo).unwrap();
//! let host = WasmShard::new(engine, WasmShardConfig::default());
//! let agent = WasmAgent::new(&host, module, AgentLimits::default(), Supervision::default());
//!
//! let mut shard = ShardCore::new(ShardConfig::new(0, 1));
//! shard.register(AgentId::from("echo"), Box::new(agent)).unwrap();
//! let (tx, rx) = std::sync::mpsc::channel();
//! shard.admit_client_call("echo".into(), "hi".into(), SendOptions::default(),
//!     std::time::Duration::from_secs(1), Box::new(move |r| tx.send(r).unwrap())).unwrap();
//! shard.run_until_idle();
//! assert_eq!(&rx.recv().unwrap().unwrap().payload[..], b"hi");
//! ```

pub mod abi;
mod agent;
mod bulk_metering;
mod compile_limit;
mod engine;
mod host;
mod instance;
mod limits;
mod memory;
mod patterns;
mod preempt;
mod shard;
mod tunables;

pub use agent::{WasmAgent, WasmSpec, WASM_KIND};
pub use compile_limit::{
    compile_artifact, compile_child_main, CompileLimits, CompilerProcess, COMPILE_SUBCOMMAND,
};
pub use engine::{
    EngineStats, ModuleHash, WasmEngine, WasmError, WasmModule, DEFAULT_MAX_MODULE_BYTES,
};
pub use limits::{AgentLimits, OnRepeatedFailure, Supervision};
pub use patterns::{pattern_prefix, WASM_PATTERN_KIND};
pub use shard::{WasmShard, WasmShardConfig, WasmShardStats};
