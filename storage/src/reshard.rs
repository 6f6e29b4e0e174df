//! Offline resharding: moves every agent (definition, state, unfinished
//! durable messages) of a data directory to the partition its name maps to
//! under a new shard count. The node must be stopped.
//!
//! The new partitions are built in `data_dir/reshard-new/` first; then the
//! old files move to `data_dir/pre-reshard-<old>-to-<new>/` (kept as a
//! backup), the new ones take their place, and the manifest is rewritten
//! last. The de-duplication windows of all old partitions are merged into
//! every new one, since a retried message may now arrive at any of them.

use std::fs;
use std::path::{Path, PathBuf};

use crate::batch::{Mutation, WriteBatch};
use crate::error::StorageError;
use crate::manifest::NodeManifest;
use crate::partition::Partition;
use crate::partition_path;

/// What a reshard moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReshardReport {
    /// Shards before.
    pub from: usize,
    /// Shards after.
    pub to: usize,
    /// Agents moved (all of them, wherever they landed).
    pub agents: usize,
    /// State entries moved.
    pub state_entries: usize,
    /// Unfinished durable messages moved.
    pub messages: usize,
    /// Where the old partitions were kept.
    pub backup: PathBuf,
}

/// Reshards `data_dir` to `shards` partitions; `owner(name, shards)` says
/// which shard owns an agent (the node's own placement function).
pub fn reshard(
    data_dir: &Path,
    shards: usize,
    owner: impl Fn(&str, usize) -> usize,
) -> Result<ReshardReport, StorageError> {
    let manifest = NodeManifest::read(data_dir)?.ok_or_else(|| StorageError::Manifest {
        file: data_dir.join(crate::manifest::MANIFEST_FILE),
        detail: "no manifest: not a Quire data directory".into(),
    })?;
    if shards == 0 {
        return Err(StorageError::Manifest {
            file: data_dir.join(crate::manifest::MANIFEST_FILE),
            detail: "cannot reshard to 0 shards".into(),
        });
    }
    let from = manifest.shards;
    let staging = data_dir.join("reshard-new");
    let backup = data_dir.join(format!("pre-reshard-{from}-to-{shards}"));
    let io = |file: &Path, e: std::io::Error| StorageError::Io {
        file: file.to_path_buf(),
        detail: e.to_string(),
    };
    if backup.exists() {
        return Err(StorageError::Io {
            file: backup.clone(),
            detail: "a backup of an earlier reshard is in the way; move it elsewhere first".into(),
        });
    }
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| io(&staging, e))?;
    }
    fs::create_dir_all(&staging).map_err(|e| io(&staging, e))?;

    let mut batches: Vec<WriteBatch> = (0..shards).map(|_| WriteBatch::default()).collect();
    let mut next_seq = vec![1u64; shards];
    let mut dedup_ids = Vec::new();
    let mut report = ReshardReport {
        from,
        to: shards,
        backup: backup.clone(),
        ..ReshardReport::default()
    };
    for old in 0..from {
        let path = partition_path(data_dir, old);
        if !path.exists() {
            continue;
        }
        let rec = Partition::open(&path)?.recover()?;
        for agent in rec.agents {
            let to = owner(&agent.name, shards);
            batches[to].push(Mutation::PutAgent(agent));
            report.agents += 1;
        }
        for s in rec.state {
            let to = owner(&s.agent, shards);
            batches[to].push(Mutation::PutState {
                agent: s.agent,
                key: s.key,
                value: s.value,
            });
            report.state_entries += 1;
        }
        for mut msg in rec.inbox {
            let to = owner(&msg.to, shards);
            msg.seq = next_seq[to];
            next_seq[to] += 1;
            batches[to].push(Mutation::Enqueue(msg));
            report.messages += 1;
        }
        dedup_ids.extend(rec.dedup.into_iter().map(|(_, id)| id));
    }
    for (shard, mut batch) in batches.into_iter().enumerate() {
        for (slot, id) in dedup_ids.iter().enumerate() {
            // Finish of a seq that is not in the inbox only fills the ring.
            batch.push(Mutation::Finish {
                seq: 0,
                dedup: *id,
                slot: slot as u32,
            });
        }
        Partition::open(partition_path(&staging, shard))?.commit(&batch, true)?;
    }

    fs::create_dir_all(&backup).map_err(|e| io(&backup, e))?;
    for old in 0..from {
        let path = partition_path(data_dir, old);
        if path.exists() {
            fs::rename(&path, partition_path(&backup, old)).map_err(|e| io(&path, e))?;
        }
    }
    let old_manifest = data_dir.join(crate::manifest::MANIFEST_FILE);
    fs::copy(&old_manifest, backup.join(crate::manifest::MANIFEST_FILE))
        .map_err(|e| io(&old_manifest, e))?;
    for shard in 0..shards {
        let path = partition_path(&staging, shard);
        fs::rename(&path, partition_path(data_dir, shard)).map_err(|e| io(&path, e))?;
    }
    fs::remove_dir_all(&staging).map_err(|e| io(&staging, e))?;
    NodeManifest { shards, ..manifest }.write(data_dir)?;
    Ok(report)
}
