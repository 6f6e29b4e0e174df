//! Two nodes in one cluster: an agent on one node called from the other.
//!
//! Each node names itself and shares the cluster secret; the second one
//! names the first as its seed. Membership (SWIM over UDP) makes them meet,
//! and every agent name then has one owner among the members (rendezvous
//! hashing): a call made on node-a for an agent node-b owns crosses their
//! link and its reply comes back the same way. Real deployments run one node
//! per process (one per NUMA node); two in one process keep the example
//! small.
//!
//! ```sh
//! cargo run -p quire-runtime --example two_node_cluster
//! ```

use std::time::{Duration, Instant};

use quire_client::RemoteClient;
use quire_runtime::cluster::rendezvous::owner;
use quire_runtime::config::NodeConfig;
use quire_runtime::net::free_port_block;
use quire_runtime::{Node, StartError};
use quire_shards::{fnv1a64, Agent, Context, Envelope};

/// Answers every call with the name of the node it runs on.
struct WhereAmI(&'static str);

impl Agent for WhereAmI {
    fn handle(&mut self, ctx: &mut Context<'_>, _msg: Envelope) {
        let _ = ctx.reply(self.0);
    }
}

fn start(name: &str, port: u16, seed: Option<u16>) -> Result<Node, StartError> {
    let mut config = NodeConfig::default();
    config.node.shards = Some(1);
    config.network.listen = Some(format!("127.0.0.1:{port}"));
    config.cluster.node_name = Some(name.into());
    config.cluster.secret = Some("example-secret".into());
    config.cluster.seeds = seed
        .map(|p| vec![format!("127.0.0.1:{p}")])
        .unwrap_or_default();
    Node::builder().config(config).start()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (port_a, port_b) = (free_port_block(1), free_port_block(1));
    let a = start("node-a", port_a, None)?;
    let b = start("node-b", port_b, Some(port_a))?;

    // Wait until node-a sees both members (its CLUSTER answer over the wire).
    let mut wire = RemoteClient::connect(format!("127.0.0.1:{port_a}").as_str(), None)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while wire.cluster()?.len() < 2 {
        if Instant::now() > deadline {
            return Err("the nodes never met".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "members: {:?}",
        wire.cluster()?.iter().map(|m| &m.name).collect::<Vec<_>>()
    );

    // A name node-b owns, and its agent registered there.
    let members = [
        (fnv1a64(b"node-a"), "node-a"),
        (fnv1a64(b"node-b"), "node-b"),
    ];
    let name = (0..)
        .map(|i| format!("where-{i}"))
        .find(|n| owner(n, &members) == Some(1))
        .expect("some name is node-b's");
    b.client()
        .register_blocking(name.as_str(), || WhereAmI("node-b"))?;

    // Called on node-a, answered on node-b.
    let reply = a
        .client()
        .call_blocking(name.as_str(), "", Duration::from_secs(2))?;
    println!(
        "{name}, called on node-a, answered from {}",
        String::from_utf8_lossy(&reply.payload)
    );
    drop(wire);
    println!("node-b: {}", b.shutdown());
    println!("node-a: {}", a.shutdown());
    Ok(())
}
