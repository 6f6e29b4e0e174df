//! Agent kinds every `quire` node knows, so that deployment, durable
//! messages and recovery can be used (and tested) without writing an agent:
//!
//! - `echo`: replies to every call with the request's payload;
//! - `counter`: counts the messages it handled in its durable state (key
//!   `count`, u64 little-endian) and, for a message with a payload, records
//!   under `m/<payload>` the count at which it was handled. A call is
//!   answered with the count. Because the count and the records live in the
//!   same state, a message handled twice shows as more counts than records.

use bytes::Bytes;
use quire_shards::{Agent, Context, Envelope, Kind};

use crate::agent_kinds::AgentKinds;

/// Replies with the request's payload.
pub struct Echo;

impl Agent for Echo {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        let _ = ctx.reply(msg.payload);
    }
}

/// Counts handled messages in durable state (see the module docs).
pub struct Counter;

/// The state key of the count.
pub const COUNT_KEY: &[u8] = b"count";

/// The state key that records message `payload`.
pub fn record_key(payload: &[u8]) -> Vec<u8> {
    let mut k = b"m/".to_vec();
    k.extend_from_slice(payload);
    k
}

/// Reads a count stored by [`Counter`].
pub fn decode_count(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_le_bytes).unwrap_or(0)
}

impl Agent for Counter {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        let count = ctx.state(COUNT_KEY).map_or(0, |v| decode_count(&v)) + 1;
        let bytes = Bytes::copy_from_slice(&count.to_le_bytes());
        ctx.put_state(COUNT_KEY.to_vec(), bytes.clone());
        if !msg.payload.is_empty() {
            ctx.put_state(record_key(&msg.payload), bytes.clone());
        }
        if msg.kind == Kind::Call {
            let _ = ctx.reply(bytes);
        }
    }
}

/// The kinds above, ready for [`crate::NodeBuilder::agent_kinds`].
///
/// ```
/// let kinds = quire_runtime::builtin_kinds::builtin_kinds();
/// assert_eq!(kinds.names(), ["counter", "echo"]);
/// ```
pub fn builtin_kinds() -> AgentKinds {
    let mut kinds = AgentKinds::default();
    kinds.add("echo", |_| Ok(Box::new(Echo)));
    kinds.add("counter", |_| Ok(Box::new(Counter)));
    kinds
}
