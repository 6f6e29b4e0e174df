//! A WebAssembly agent under hard limits.
//!
//! The module (the SDK's counter, prebuilt in `sdk/prebuilt/`) is compiled
//! once per node off the shards' threads, checked against the agent ABI,
//! and run by wasmer with a fuel budget per message, a memory limit and a
//! time limit; a listing shows how each agent is doing.
//!
//! ```sh
//! cargo run -p quire-runtime --example wasm_agent
//! ```

use std::time::Duration;

use quire_runtime::{Node, WasmOptions};
use quire_shards::wasm::AgentLimits;

const COUNTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/prebuilt/counter.wasm");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::builder().shards(1).start()?;
    let client = node.client();
    let limits = AgentLimits {
        fuel_per_message: 1_000_000,
        max_memory_bytes: 4 << 20,
        ..AgentLimits::default()
    };
    let module = std::fs::read(COUNTER)?;
    let hash =
        client.deploy_wasm_blocking("counter", module, WasmOptions::default().limits(limits))?;
    println!("deployed module {}", hash.short());
    for _ in 0..3 {
        let reply = client.call_blocking("counter", "tick", Duration::from_secs(1))?;
        let count = u64::from_le_bytes(reply.payload[..8].try_into()?);
        println!("counter answered {count}");
    }
    for agent in client.agents_blocking() {
        println!(
            "{} on shard {}: {:?}, {} activation(s), {} bytes of memory",
            agent.name,
            agent.shard,
            agent.status.state,
            agent.status.activations,
            agent.status.memory_bytes
        );
    }
    println!("{}", node.shutdown());
    Ok(())
}
