//! Helpers for tests and examples: envelopes and agents with no logic of
//! their own. Public so that other crates' tests and doc examples use them too.

use bytes::Bytes;

use crate::envelope::{Address, Envelope, Kind, MessageId, Priority};
use crate::AgentId;

/// A one-way envelope for `to` with an empty payload.
///
/// ```
/// use quire_shards::{testing::envelope_to, Priority};
/// assert_eq!(envelope_to("a", Priority::High).priority, Priority::High);
/// ```
pub fn envelope_to(to: &str, priority: Priority) -> Envelope {
    Envelope {
        id: MessageId::new(0, 1).expect("nonzero"),
        from: Address::Nobody,
        to: Address::Agent(AgentId::from(to)),
        conversation: None,
        in_reply_to: None,
        priority,
        deadline: None,
        kind: Kind::Send,
        payload: Bytes::new(),
    }
}
