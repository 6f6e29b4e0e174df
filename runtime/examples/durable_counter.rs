//! A durable node: state that survives a restart.
//!
//! Agents deployed from a registered kind are journaled with their state
//! in each shard's redb partition. A durable send is acknowledged only once
//! it is on disk; after a restart on the same data directory the node
//! rebuilds the agent and its count goes on where it stopped.
//!
//! ```sh
//! cargo run -p quire-runtime --example durable_counter
//! ```

use std::time::Duration;

use quire_runtime::builtin_kinds::{builtin_kinds, decode_count};
use quire_runtime::Node;
use quire_storage::Durability;

fn start(dir: &std::path::Path) -> Result<Node, quire_runtime::StartError> {
    Node::builder()
        .shards(1)
        .durability(Durability::Batched)
        .data_dir(dir)
        // "counter" and "echo"; add your own kinds with .agent_kind(..)
        .agent_kinds(builtin_kinds())
        .start()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let node = start(dir.path())?;
    let client = node.client();
    // Answered once the definition is committed.
    client.deploy_blocking("counter-1", "counter", Vec::new())?;
    for order in ["order 1", "order 2", "order 3"] {
        // On disk when this returns: a crash now would not lose it.
        let receipt = client.send_durable_blocking("counter-1", order)?;
        println!("{order}: committed as {:?}", receipt.id);
    }
    let count = client.call_blocking("counter-1", "", Duration::from_secs(1))?;
    println!("before the restart: count {}", decode_count(&count.payload));
    println!("{}", node.shutdown());

    let node = start(dir.path())?;
    for shard in node.recovery() {
        println!("recovered: {shard}");
    }
    let count = node
        .client()
        .call_blocking("counter-1", "", Duration::from_secs(1))?;
    println!("after the restart: count {}", decode_count(&count.payload));
    node.shutdown();
    Ok(())
}
