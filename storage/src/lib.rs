//! A Quire shard's storage partition on [redb].
//!
//! Each shard alone owns one partition file, `data_dir/shard-<i>.redb`, next
//! to a small node [`manifest`] (format version, node id, shard count).
//! Nothing here is shared between shards and nothing here is async: a
//! [`Partition`] commits a [`WriteBatch`] synchronously, and the runtime runs
//! that commit on a thread that is not the shard's reactor.
//!
//! What a partition holds:
//! - agent definitions ([`AgentRecord`]): what to rebuild on restart;
//! - agent key-value state;
//! - durable messages ([`DurableMessage`]) that were acknowledged and not yet
//!   finished, redelivered after a restart;
//! - a window of recently finished durable message ids ([`DedupWindow`]), so
//!   a message sent again after its handling was committed is not handled
//!   twice.
//!
//! ```
//! use quire_storage::{AgentRecord, Mutation, Partition, WriteBatch};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let part = Partition::open(dir.path().join("shard-0.redb")).unwrap();
//! let mut batch = WriteBatch::default();
//! batch.push(Mutation::PutAgent(AgentRecord::new("counter-1", "counter", Vec::new())));
//! batch.push(Mutation::PutState {
//!     agent: "counter-1".into(),
//!     key: b"n".to_vec(),
//!     value: b"41".to_vec().into(),
//! });
//! part.commit(&batch, true).unwrap();
//!
//! let recovered = part.recover().unwrap();
//! assert_eq!(recovered.agents[0].name, "counter-1");
//! assert_eq!(recovered.state[0].value.as_ref(), b"41");
//! ```

#![warn(missing_docs)]

mod batch;
mod dedup;
mod error;
pub mod faults;
mod group_commit;
pub mod integrity;
pub mod manifest;
mod partition;
mod records;
pub mod reshard;

pub use batch::{Mutation, WriteBatch};
pub use dedup::DedupWindow;
pub use error::StorageError;
pub use group_commit::{Durability, FlushDecision, GroupCommit};
pub use manifest::NodeManifest;
pub use partition::{CommitStats, Partition, Recovered, StateEntry};
pub use records::{AgentRecord, DurableMessage};

/// The partition file of shard `shard` under `data_dir`.
///
/// ```
/// let p = quire_storage::partition_path(std::path::Path::new("/var/lib/quire"), 3);
/// assert_eq!(p.to_str(), Some("/var/lib/quire/shard-3.redb"));
/// ```
pub fn partition_path(data_dir: &std::path::Path, shard: usize) -> std::path::PathBuf {
    data_dir.join(format!("shard-{shard}.redb"))
}
