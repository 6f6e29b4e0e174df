//! The node manifest: `data_dir/manifest.toml`, saying which format the
//! partitions are in, which node wrote them and with how many shards.
//! Agents are placed by shard count, so a node must not open partitions
//! written with another count (see [`crate::reshard`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StorageError;

/// The partition format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// File name of the manifest inside a data directory.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// What a data directory holds.
///
/// ```
/// use quire_storage::NodeManifest;
/// let dir = tempfile::tempdir().unwrap();
/// let m = NodeManifest::open_or_create(dir.path(), 2, "node-a").unwrap();
/// assert_eq!(m.shards, 2);
/// // The same count opens again; another count is refused.
/// assert!(NodeManifest::open_or_create(dir.path(), 2, "node-a").is_ok());
/// let err = NodeManifest::open_or_create(dir.path(), 4, "node-a").unwrap_err();
/// assert!(err.to_string().contains("quire storage reshard"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeManifest {
    /// Partition format version.
    pub format_version: u32,
    /// The node that wrote the directory.
    pub node_id: String,
    /// Shards (and so partitions) the data was written with.
    pub shards: usize,
}

impl NodeManifest {
    /// Opens the manifest of `dir`, creating the directory and the manifest
    /// when there is none; refuses another shard count or format.
    pub fn open_or_create(dir: &Path, shards: usize, node_id: &str) -> Result<Self, StorageError> {
        match Self::read(dir)? {
            Some(m) => {
                if m.shards != shards {
                    return Err(StorageError::ShardCountMismatch {
                        dir: dir.to_path_buf(),
                        found: m.shards,
                        expected: shards,
                    });
                }
                Ok(m)
            }
            None => {
                let m = NodeManifest {
                    format_version: FORMAT_VERSION,
                    node_id: node_id.to_string(),
                    shards,
                };
                m.write(dir)?;
                Ok(m)
            }
        }
    }

    /// Reads the manifest of `dir`; `None` when the directory holds none.
    pub fn read(dir: &Path) -> Result<Option<Self>, StorageError> {
        let file = dir.join(MANIFEST_FILE);
        let text = match fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(manifest_error(&file, e)),
        };
        let m: NodeManifest = toml::from_str(&text).map_err(|e| manifest_error(&file, e))?;
        if m.format_version != FORMAT_VERSION {
            return Err(manifest_error(
                &file,
                format!(
                    "format version {} is not the {} this build reads",
                    m.format_version, FORMAT_VERSION
                ),
            ));
        }
        if m.shards == 0 {
            return Err(manifest_error(&file, "shards must be at least 1"));
        }
        Ok(Some(m))
    }

    /// Writes the manifest into `dir` atomically (temporary file, fsync,
    /// rename), creating `dir` if needed.
    pub fn write(&self, dir: &Path) -> Result<(), StorageError> {
        let file = dir.join(MANIFEST_FILE);
        let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
        let text = format!(
            "# Written by quire; do not edit. Change the shard count with `quire storage reshard`.\n{}",
            toml::to_string(self).expect("manifest encodes")
        );
        let write = || -> std::io::Result<()> {
            fs::create_dir_all(dir)?;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &file)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| manifest_error(&file, e))
    }
}

fn manifest_error(file: &Path, e: impl std::fmt::Display) -> StorageError {
    StorageError::Manifest {
        file: PathBuf::from(file),
        detail: e.to_string(),
    }
}
