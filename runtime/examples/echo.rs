//! The smallest embedded node: one native agent, one call.
//!
//! A node starts its shards (one per CPU unless told otherwise), a
//! [`quire_runtime::Client`] registers an agent on the shard that owns its
//! name, and a call goes straight to that shard and back.
//!
//! ```sh
//! cargo run -p quire-runtime --example echo
//! ```

use std::time::Duration;

use quire_runtime::Node;
use quire_shards::{Agent, Context, Envelope};

/// Answers every call with the call's own payload.
struct Echo;

impl Agent for Echo {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        // A handler never blocks: the reply leaves when the turn ends.
        let _ = ctx.reply(msg.payload);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::builder().shards(1).start()?;
    let client = node.client();
    // The factory runs on the owning shard's thread: agents need not be Send.
    client.register_blocking("echo", || Echo)?;
    let reply = client.call_blocking("echo", "hello", Duration::from_secs(1))?;
    println!(
        "echo answered {:?}",
        String::from_utf8_lossy(&reply.payload)
    );
    // Shutdown drains what is queued and reports what every shard did.
    println!("{}", node.shutdown());
    Ok(())
}
