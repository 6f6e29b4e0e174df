//! Storage errors: each names the file it concerns and, where there is one,
//! what to do about it.

use std::path::PathBuf;

/// What can go wrong with a data directory or a partition.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The partition file could not be opened or is not a redb file.
    #[error("cannot open partition {file}: {detail}")]
    Open {
        /// The partition file.
        file: PathBuf,
        /// redb's or the system's own words.
        detail: String,
    },
    /// The partition opened but its content is damaged.
    #[error("partition {file} is corrupted: {detail}")]
    Corrupted {
        /// The partition file.
        file: PathBuf,
        /// What was found.
        detail: String,
    },
    /// A read or a commit failed.
    #[error("storage operation on {file} failed: {detail}")]
    Io {
        /// The partition file.
        file: PathBuf,
        /// redb's or the system's own words.
        detail: String,
    },
    /// The manifest is missing pieces, unreadable, or of another format.
    #[error("node manifest {file}: {detail}")]
    Manifest {
        /// The manifest file.
        file: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The data directory was written by a node with another shard count.
    #[error(
        "data directory {dir} was written by a node with {found} shards, this node has {expected}; \
         agents are placed by shard count, so run `quire storage reshard --data-dir {dir} --shards {expected}` \
         (offline) to move them, or start with --shards {found}"
    )]
    ShardCountMismatch {
        /// The data directory.
        dir: PathBuf,
        /// Shards in the manifest.
        found: usize,
        /// Shards this node runs.
        expected: usize,
    },
    /// The partition has failed before; it takes no more writes until the
    /// node restarts and recovers it.
    #[error("partition {file} failed earlier and takes no more writes: {detail}")]
    Failed {
        /// The partition file.
        file: PathBuf,
        /// The first failure.
        detail: String,
    },
}
