//! The blocking twin of each asynchronous [`Client`] method, for plain
//! threads: `x_blocking` runs `x` to completion on the calling thread.

use std::time::Duration;

use bytes::Bytes;
use futures_lite::future::block_on;
use quire_shards::wasm::{ModuleHash, WasmShardStats};
use quire_shards::{
    AgentId, AgentInfo, CallError, Envelope, MessageId, Rejection, SendOptions, ShardStats,
};

use super::{Client, DeployError, DurableError, DurableReceipt, RegisterError};
use crate::wasm_agents::WasmOptions;

/// `async_method => blocking_method(args) -> answer;` for each pair.
macro_rules! blocking_twins {
    ($($method:ident => $blocking:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        impl Client {
            $(
                #[doc = concat!("[`Self::", stringify!($method), "`] for plain threads.")]
                pub fn $blocking(&self, $($arg: $ty),*) -> $ret {
                    block_on(self.$method($($arg),*))
                }
            )*
        }
    };
}

blocking_twins! {
    unregister => unregister_blocking(name: impl Into<AgentId>) -> Result<usize, RegisterError>;
    deploy => deploy_blocking(name: impl Into<AgentId>, kind: &str, config: impl Into<Vec<u8>>) -> Result<(), DeployError>;
    undeploy => undeploy_blocking(name: impl Into<AgentId>) -> Result<usize, RegisterError>;
    send_durable => send_durable_blocking(to: impl Into<AgentId>, payload: impl Into<Bytes>) -> Result<DurableReceipt, DurableError>;
    send => send_blocking(to: impl Into<AgentId>, payload: impl Into<Bytes>) -> Result<MessageId, Rejection>;
    send_with => send_with_blocking(to: impl Into<AgentId>, payload: impl Into<Bytes>, opts: SendOptions) -> Result<MessageId, Rejection>;
    call => call_blocking(to: impl Into<AgentId>, payload: impl Into<Bytes>, timeout: Duration) -> Result<Envelope, CallError>;
    deploy_wasm => deploy_wasm_blocking(name: impl Into<AgentId>, module: impl Into<Vec<u8>>, opts: WasmOptions) -> Result<ModuleHash, DeployError>;
    reload_wasm => reload_wasm_blocking(name: impl Into<AgentId>, module: impl Into<Vec<u8>>, opts: WasmOptions) -> Result<ModuleHash, DeployError>;
    deploy_wasm_pattern => deploy_wasm_pattern_blocking(pattern: &str, module: impl Into<Vec<u8>>, opts: WasmOptions) -> Result<ModuleHash, DeployError>;
    stop_agent => stop_agent_blocking(name: impl Into<AgentId>) -> Result<(), RegisterError>;
    start_agent => start_agent_blocking(name: impl Into<AgentId>) -> Result<(), RegisterError>;
    agents => agents_blocking() -> Vec<AgentInfo>;
    wasm_stats => wasm_stats_blocking() -> Vec<WasmShardStats>;
    stats => stats_blocking() -> Vec<ShardStats>;
}
