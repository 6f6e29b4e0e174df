//! What a partition stores, as MessagePack records.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// An agent definition: enough to rebuild the agent after a restart.
///
/// `kind` names a factory the node knows (a native agent type, or `wasm`
/// with the module in `config`); `config` is opaque to storage.
///
/// ```
/// let rec = quire_storage::AgentRecord::new("counter-7", "counter", b"{}".to_vec());
/// let bytes = rec.encode();
/// assert_eq!(quire_storage::AgentRecord::decode(&bytes).unwrap(), rec);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The agent's name (its id).
    pub name: String,
    /// Which factory builds it.
    pub kind: String,
    /// The factory's input.
    #[serde(with = "serde_bytes")]
    pub config: Vec<u8>,
}

impl AgentRecord {
    /// A record for agent `name` built by factory `kind` from `config`.
    pub fn new(name: impl Into<String>, kind: impl Into<String>, config: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            config,
        }
    }

    /// MessagePack form.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("agent records always encode")
    }

    /// From MessagePack.
    pub fn decode(bytes: &[u8]) -> Result<Self, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }
}

/// A durable message that was accepted and has not finished yet.
///
/// `seq` orders a shard's durable messages (and keys them in the inbox);
/// `dedup` is the sender's id for the message, the same on every retry.
///
/// ```
/// use quire_storage::DurableMessage;
/// let m = DurableMessage { seq: 1, dedup: 42, to: "a".into(), priority: 2, payload: "x".into() };
/// assert_eq!(DurableMessage::decode(&m.encode()).unwrap(), m);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableMessage {
    /// Inbox key, increasing in acceptance order.
    pub seq: u64,
    /// The sender's de-duplication id.
    pub dedup: u64,
    /// Receiving agent.
    pub to: String,
    /// Priority class index (0 = critical).
    pub priority: u8,
    /// The message body.
    pub payload: Bytes,
}

impl DurableMessage {
    /// MessagePack form.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("durable messages always encode")
    }

    /// From MessagePack.
    pub fn decode(bytes: &[u8]) -> Result<Self, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }
}
