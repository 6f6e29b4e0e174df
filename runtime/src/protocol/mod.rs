//! The Quire wire protocol as a node speaks it: every frame of the client
//! protocol (the `quire-client` crate, re-exported here) and the node links'
//! `ENVELOPE` frame, which carries the shard's own [`quire_shards::Envelope`]
//! and so is read and written here. No I/O.

mod envelope;
mod link;

pub use envelope::encode_envelope;
pub use link::{core_priority, decode_link, wire_priority, LinkFrame};
pub use quire_client::protocol::*;
