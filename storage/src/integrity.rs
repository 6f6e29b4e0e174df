//! What a data directory must hold before a node may use it, checked the
//! same way at every start and by `quire storage check`.
//!
//! A directory with no manifest and no partition is new: the node writes
//! its manifest and creates the partitions. Anything else must be whole:
//! the manifest present and readable, every partition it promises present,
//! not empty, a redb file whose pages pass their checksums and whose
//! records decode. Nothing is ever recreated silently: a missing or damaged
//! file stops the node with an error naming the file and the fix, since a
//! partition created afresh in place of a lost one would start that shard's
//! agents with no state while the node looks healthy.

use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::manifest::{NodeManifest, MANIFEST_FILE};
use crate::partition::{Partition, Recovered};
use crate::partition_path;

/// Partition files (`shard-<i>.redb`) found in `dir`, by shard index.
fn partitions_in(dir: &Path) -> Vec<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<usize> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("shard-")?
                .strip_suffix(".redb")?
                .parse()
                .ok()
        })
        .collect();
    found.sort_unstable();
    found
}

/// The manifest of a data directory a node with `shards` shards is about to
/// use: written when the directory holds no data yet, read and checked
/// otherwise (shard count, format, every partition present and not empty).
///
/// ```
/// use quire_storage::integrity::open_data_dir;
/// let dir = tempfile::tempdir().unwrap();
/// open_data_dir(dir.path(), 2, "n1").unwrap(); // new: partitions, then the manifest
/// std::fs::remove_file(dir.path().join("shard-1.redb")).unwrap();
/// let err = open_data_dir(dir.path(), 2, "n1").unwrap_err();
/// assert!(err.to_string().contains("shard-1.redb"), "{err}");
/// ```
pub fn open_data_dir(
    dir: &Path,
    shards: usize,
    node_id: &str,
) -> Result<NodeManifest, StorageError> {
    match NodeManifest::read(dir)? {
        None => {
            let found = partitions_in(dir);
            if !found.is_empty() {
                return Err(StorageError::MissingManifest {
                    file: dir.join(MANIFEST_FILE),
                    partitions: found.len(),
                });
            }
            // New: the partitions first, the manifest last, so that a
            // manifest always means every partition exists (a start killed
            // in between leaves partitions and no manifest: refused, with
            // nothing in them to lose).
            std::fs::create_dir_all(dir).map_err(|e| StorageError::Open {
                file: dir.to_path_buf(),
                detail: e.to_string(),
            })?;
            for shard in 0..shards {
                Partition::open(partition_path(dir, shard))?;
            }
            NodeManifest::open_or_create(dir, shards, node_id)
        }
        Some(_) => {
            let manifest = NodeManifest::open_or_create(dir, shards, node_id)?;
            for shard in 0..manifest.shards {
                require_partition(&partition_path(dir, shard))?;
            }
            Ok(manifest)
        }
    }
}

/// The manifest of an existing data directory, checked as a start checks it
/// (without writing anything).
pub fn inspect_data_dir(dir: &Path) -> Result<NodeManifest, StorageError> {
    let manifest = NodeManifest::read(dir)?.ok_or_else(|| StorageError::MissingManifest {
        file: dir.join(MANIFEST_FILE),
        partitions: partitions_in(dir).len(),
    })?;
    for shard in 0..manifest.shards {
        require_partition(&partition_path(dir, shard))?;
    }
    Ok(manifest)
}

/// Opens the partition file at `path`, which must exist, and verifies
/// every page checksum and every record (the crash test's "opens
/// cleanly"); returns what it holds. The check a node makes at start.
pub fn verify_partition(path: impl AsRef<Path>) -> Result<Recovered, StorageError> {
    open_verified(path.as_ref(), true).map(|(_, rec)| rec)
}

/// Opens the partition at `path` and verifies it whole (every page
/// checksum, every record), returning it with everything it holds. With
/// `must_exist` a missing or empty file is an error instead of a new
/// partition.
pub fn open_verified(
    path: &Path,
    must_exist: bool,
) -> Result<(Partition, Recovered), StorageError> {
    if must_exist {
        require_partition(path)?;
    }
    let part = Partition::open(path)?;
    part.check_integrity()?;
    let recovered = part.recover()?;
    Ok((part, recovered))
}

fn require_partition(path: &Path) -> Result<(), StorageError> {
    let file: PathBuf = path.to_path_buf();
    match std::fs::metadata(path) {
        Ok(m) if m.len() > 0 => Ok(()),
        Ok(_) => Err(StorageError::MissingPartition {
            file,
            detail: "the file is empty (truncated)".into(),
        }),
        Err(e) => Err(StorageError::MissingPartition {
            file,
            detail: e.to_string(),
        }),
    }
}
