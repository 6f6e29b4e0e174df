//! Connects to a node, says how far away it is, and lists its agents.
//!
//! ```sh
//! cargo run -p quire-client --example ping -- 127.0.0.1:7400
//! ```

use quire_client::{ClientError, RemoteClient};

fn main() -> Result<(), ClientError> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7400".to_string());
    let mut node = RemoteClient::connect(addr.as_str(), None)?;
    let rtt = node.ping()?;
    println!(
        "{} (shard {}): round trip {rtt:?}",
        node.node(),
        node.shard()
    );
    for agent in node.agents()? {
        println!("  {} on shard {}: {}", agent.name, agent.shard, agent.state);
    }
    Ok(())
}
