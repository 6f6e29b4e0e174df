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
    /// A partition the manifest promises is missing or empty.
    #[error(
        "partition {file} is missing or unusable ({detail}); its shard's agents and state would be lost. \
         Restore it from a backup, or, to give that shard's data up for good, delete the whole data \
         directory (or move it away) and start empty; the node never recreates a partition in place"
    )]
    MissingPartition {
        /// The partition file.
        file: PathBuf,
        /// What was found.
        detail: String,
    },
    /// Partitions are present but the manifest that says how many shards
    /// wrote them is not.
    #[error(
        "{file} is missing but the directory holds {partitions} partition(s): without it the shard \
         count they were written with is unknown. Restore it from a backup (or write it back with the \
         shard count the node ran with: `format_version = 1`, `node_id`, `shards`); the node never \
         guesses"
    )]
    MissingManifest {
        /// Where the manifest should be.
        file: PathBuf,
        /// Partition files found.
        partitions: usize,
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
