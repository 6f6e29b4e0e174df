//! One shard's redb file: opening it, committing write batches, and reading
//! everything back at recovery.
//!
//! Tables:
//! - `agents`: agent name -> [`AgentRecord`];
//! - `state`: (agent name, key) -> value, the key encoded as the name's
//!   length (u16, big-endian), the name, then the agent's key, so that one
//!   agent's keys sit together and an undeploy removes a key range;
//! - `inbox`: seq -> [`DurableMessage`], accepted and not finished;
//! - `dedup`: the finished message ids of the de-duplication ring (see
//!   [`crate::DedupWindow`]), 512 slots a row (a bitmap of the slots in use,
//!   then the ids);
//! - `meta`: small counters (`dedup_next`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ahash::RandomState;
use bytes::Bytes;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::batch::{Mutation, WriteBatch};
use crate::error::StorageError;
use crate::records::{AgentRecord, DurableMessage};

const AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agents");
const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const INBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("inbox");
const DEDUP: TableDefinition<u32, &[u8]> = TableDefinition::new("dedup");

/// Ring slots per `dedup` row: a batch of finished messages rewrites one or
/// two rows instead of inserting one row per message.
const DEDUP_CHUNK: u32 = 512;
/// A row: a bitmap of the slots in use, then one id per slot.
const DEDUP_ROW_BYTES: usize = (DEDUP_CHUNK as usize) / 8 + 8 * DEDUP_CHUNK as usize;
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// One agent state entry read back at recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The agent.
    pub agent: String,
    /// Its key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Bytes,
}

/// Everything a shard needs to come back after a restart.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Agent definitions, by name.
    pub agents: Vec<AgentRecord>,
    /// Agent state, grouped by agent.
    pub state: Vec<StateEntry>,
    /// Durable messages accepted and not finished, in acceptance order.
    pub inbox: Vec<DurableMessage>,
    /// The de-duplication ring: (slot, id).
    pub dedup: Vec<(u32, u64)>,
    /// The ring slot the next finished message takes.
    pub dedup_next: u32,
    /// Bytes of state values read.
    pub state_bytes: u64,
}

impl Recovered {
    /// The first inbox sequence number not yet used.
    pub fn next_seq(&self) -> u64 {
        self.inbox.last().map_or(1, |m| m.seq + 1)
    }
}

/// What one commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Mutations applied.
    pub mutations: usize,
    /// Durable messages accepted in the batch.
    pub messages: usize,
    /// Messages accepted and finished within the same batch, so never
    /// written to the inbox at all.
    pub coalesced: usize,
    /// State writes overwritten later in the same batch, so skipped.
    pub superseded: usize,
    /// Time spent in the transaction, fsync included.
    pub elapsed: Duration,
}

/// Opens the partition's database: on its file, or (in fault-injection
/// tests) on a backend of the test's own.
type Opener = Box<dyn Fn() -> Result<redb::Database, redb::DatabaseError> + Send + Sync>;

/// A shard's partition. `Sync`: the runtime hands it to a commit thread.
///
/// A commit that fails (disk full, I/O error) leaves redb refusing every
/// later operation until the database is opened again; so the next commit
/// after a failure first reopens the file (redb rolls back to the last
/// durable commit and repairs), then applies its batch. The runtime retries
/// the failed batch itself, so nothing it committed is lost and nothing
/// after it is applied before it.
pub struct Partition {
    db: Mutex<Option<redb::Database>>,
    opener: Opener,
    file: PathBuf,
    /// The last failure, until a commit succeeds again.
    failed: Mutex<Option<String>>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("file", &self.file)
            .finish()
    }
}

impl Partition {
    /// Opens (or creates) the partition file at `path`. A file that is not a
    /// redb partition, or is damaged beyond redb's repair, is an error naming
    /// the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let file = path.as_ref().to_path_buf();
        let at = file.clone();
        Self::open_with(file, Box::new(move || redb::Database::create(&at)))
    }

    /// Opens the partition named `file` on a storage backend `backend`
    /// makes (a new one for each reopen after a failure): how tests inject
    /// write and fsync failures, as redb's own fault-injection tests do.
    pub fn open_on_backend<B: redb::StorageBackend>(
        file: impl AsRef<Path>,
        backend: impl Fn() -> B + Send + Sync + 'static,
    ) -> Result<Self, StorageError> {
        Self::open_with(
            file.as_ref().to_path_buf(),
            Box::new(move || redb::Builder::new().create_with_backend(backend())),
        )
    }

    fn open_with(file: PathBuf, opener: Opener) -> Result<Self, StorageError> {
        let db = open_db(&file, &opener)?;
        let fresh = {
            let tx = db.begin_read().map_err(|e| StorageError::Open {
                file: file.clone(),
                detail: e.to_string(),
            })?;
            tx.list_tables().map_or(true, |mut t| t.next().is_none())
        };
        let part = Partition {
            db: Mutex::new(Some(db)),
            opener,
            file,
            failed: Mutex::new(None),
        };
        if fresh {
            // Create every table up front so that readers never meet a
            // missing one.
            part.commit(&WriteBatch::default(), true)?;
        }
        Ok(part)
    }

    /// The partition file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Verifies every page checksum: an error naming the file when a page
    /// is damaged (or had to be repaired).
    pub fn check_integrity(&self) -> Result<(), StorageError> {
        let ok = {
            let mut db = self.db.lock().expect("partition lock");
            let db = db.as_mut().ok_or_else(|| self.corrupted("not open"))?;
            catch_unwind(AssertUnwindSafe(|| db.check_integrity()))
                .map_err(|p| self.corrupted(panic_message(&p)))?
                .map_err(|e| self.error(redb::Error::from(e)))?
        };
        if !ok {
            return Err(self.corrupted("integrity check repaired the file"));
        }
        Ok(())
    }

    /// Applies `batch` as one transaction; with `durable` the commit returns
    /// only once it is on disk (fsync). A failed commit changes nothing on
    /// disk; the caller keeps the batch and commits it again later (the
    /// partition reopens its file first, see [`Partition`]).
    pub fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<CommitStats, StorageError> {
        let started = Instant::now();
        let mut db = self.db.lock().expect("partition lock");
        if self.failed.lock().expect("failure flag").is_some() || db.is_none() {
            // redb takes nothing more after an I/O error until reopened.
            *db = None;
            *db = Some(open_db(&self.file, &self.opener).map_err(|e| self.note_failure(e))?);
        }
        let result = self.apply(db.as_ref().expect("opened above"), batch, durable);
        drop(db);
        match result {
            Ok(mut stats) => {
                *self.failed.lock().expect("failure flag") = None;
                stats.elapsed = started.elapsed();
                Ok(stats)
            }
            Err(e) => Err(self.note_failure(e)),
        }
    }

    /// The last commit failure, while no commit has succeeded since.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().expect("failure flag").clone()
    }

    fn note_failure(&self, e: StorageError) -> StorageError {
        *self.failed.lock().expect("failure flag") = Some(e.to_string());
        e
    }

    fn apply(
        &self,
        db: &redb::Database,
        batch: &WriteBatch,
        durable: bool,
    ) -> Result<CommitStats, StorageError> {
        let mut stats = CommitStats {
            mutations: batch.len(),
            messages: batch.messages(),
            ..CommitStats::default()
        };
        // A message accepted and finished within this batch never needs the
        // inbox: skipping both writes is most of batched mode's speed.
        let finished: HashSet<u64, RandomState> = batch
            .mutations()
            .iter()
            .filter_map(|m| match m {
                Mutation::Finish { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        let mut enqueued_here: HashSet<u64, RandomState> = HashSet::default();
        // Only the last write of a state key in a batch reaches the table
        // (a counter bumped by every message of a batch is written once).
        let mut last_write: HashMap<(&str, &[u8]), usize, RandomState> = HashMap::default();
        for (i, m) in batch.mutations().iter().enumerate() {
            match m {
                Mutation::PutState { agent, key, .. } | Mutation::DeleteState { agent, key } => {
                    last_write.insert((agent.as_str(), key.as_slice()), i);
                }
                _ => {}
            }
        }
        let superseded: Vec<bool> = batch
            .mutations()
            .iter()
            .enumerate()
            .map(|(i, m)| match m {
                Mutation::PutState { agent, key, .. } | Mutation::DeleteState { agent, key } => {
                    last_write[&(agent.as_str(), key.as_slice())] != i
                }
                _ => false,
            })
            .collect();
        drop(last_write);
        let mut ring: BTreeMap<u32, Vec<(u32, u64)>> = BTreeMap::new();

        let mut tx = db.begin_write().map_err(|e| self.error(e))?;
        tx.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })
        .map_err(|e| self.error(e))?;
        tx.set_quick_repair(true);
        {
            let mut agents = tx.open_table(AGENTS).map_err(|e| self.error(e))?;
            let mut state = tx.open_table(STATE).map_err(|e| self.error(e))?;
            let mut inbox = tx.open_table(INBOX).map_err(|e| self.error(e))?;
            let mut dedup = tx.open_table(DEDUP).map_err(|e| self.error(e))?;
            let mut meta = tx.open_table(META).map_err(|e| self.error(e))?;
            let mut dedup_next = None;
            let mut key_buf = Vec::new();
            for (m, superseded) in batch.mutations().iter().zip(superseded) {
                if superseded {
                    stats.superseded += 1;
                    continue;
                }
                match m {
                    Mutation::PutAgent(rec) => {
                        agents
                            .insert(rec.name.as_str(), rec.encode().as_slice())
                            .map_err(|e| self.error(e))?;
                    }
                    Mutation::DeleteAgent(name) => {
                        agents.remove(name.as_str()).map_err(|e| self.error(e))?;
                        let prefix = state_key(name, b"", &mut key_buf).to_vec();
                        let keys: Vec<Vec<u8>> = state
                            .range(prefix.as_slice()..)
                            .map_err(|e| self.error(e))?
                            .map_while(|entry| {
                                let (k, _) = entry.ok()?;
                                let k = k.value();
                                k.starts_with(&prefix).then(|| k.to_vec())
                            })
                            .collect();
                        for k in keys {
                            state.remove(k.as_slice()).map_err(|e| self.error(e))?;
                        }
                    }
                    Mutation::PutState { agent, key, value } => {
                        let k = state_key(agent, key, &mut key_buf);
                        state.insert(k, value.as_ref()).map_err(|e| self.error(e))?;
                    }
                    Mutation::DeleteState { agent, key } => {
                        let k = state_key(agent, key, &mut key_buf);
                        state.remove(k).map_err(|e| self.error(e))?;
                    }
                    Mutation::Enqueue(msg) => {
                        if finished.contains(&msg.seq) {
                            enqueued_here.insert(msg.seq);
                            stats.coalesced += 1;
                        } else {
                            inbox
                                .insert(msg.seq, msg.encode().as_slice())
                                .map_err(|e| self.error(e))?;
                        }
                    }
                    &Mutation::Finish {
                        seq,
                        dedup: id,
                        slot,
                    } => {
                        if !enqueued_here.contains(&seq) {
                            inbox.remove(seq).map_err(|e| self.error(e))?;
                        }
                        ring.entry(slot / DEDUP_CHUNK)
                            .or_default()
                            .push((slot % DEDUP_CHUNK, id));
                        dedup_next = Some(slot.wrapping_add(1));
                    }
                }
            }
            for (chunk, slots) in ring {
                let mut row = dedup
                    .get(chunk)
                    .map_err(|e| self.error(e))?
                    .map(|v| v.value().to_vec())
                    .filter(|v| v.len() == DEDUP_ROW_BYTES)
                    .unwrap_or_else(|| vec![0; DEDUP_ROW_BYTES]);
                for (offset, id) in slots {
                    let offset = offset as usize;
                    row[offset / 8] |= 1 << (offset % 8);
                    let at = DEDUP_CHUNK as usize / 8 + offset * 8;
                    row[at..at + 8].copy_from_slice(&id.to_le_bytes());
                }
                dedup
                    .insert(chunk, row.as_slice())
                    .map_err(|e| self.error(e))?;
            }
            if let Some(next) = dedup_next {
                meta.insert("dedup_next", u64::from(next))
                    .map_err(|e| self.error(e))?;
            }
        }
        tx.commit().map_err(|e| self.error(e))?;
        Ok(stats)
    }

    /// Reads everything back (recovery).
    pub fn recover(&self) -> Result<Recovered, StorageError> {
        let tx = {
            let db = self.db.lock().expect("partition lock");
            let db = db.as_ref().ok_or_else(|| StorageError::Failed {
                file: self.file.clone(),
                detail: "the partition is being reopened after a failure".into(),
            })?;
            db.begin_read().map_err(|e| self.error(e))?
        };
        let mut out = Recovered::default();

        let agents = tx.open_table(AGENTS).map_err(|e| self.error(e))?;
        for entry in agents.iter().map_err(|e| self.error(e))? {
            let (name, rec) = entry.map_err(|e| self.error(e))?;
            let rec = AgentRecord::decode(rec.value())
                .map_err(|e| self.corrupted(format!("agent record {:?}: {e}", name.value())))?;
            out.agents.push(rec);
        }

        let state = tx.open_table(STATE).map_err(|e| self.error(e))?;
        for entry in state.iter().map_err(|e| self.error(e))? {
            let (k, v) = entry.map_err(|e| self.error(e))?;
            let (agent, key) =
                split_state_key(k.value()).ok_or_else(|| self.corrupted("malformed state key"))?;
            let value = Bytes::copy_from_slice(v.value());
            out.state_bytes += value.len() as u64;
            out.state.push(StateEntry {
                agent: agent.to_string(),
                key: key.to_vec(),
                value,
            });
        }

        let inbox = tx.open_table(INBOX).map_err(|e| self.error(e))?;
        for entry in inbox.iter().map_err(|e| self.error(e))? {
            let (seq, msg) = entry.map_err(|e| self.error(e))?;
            let msg = DurableMessage::decode(msg.value())
                .map_err(|e| self.corrupted(format!("inbox message {}: {e}", seq.value())))?;
            out.inbox.push(msg);
        }

        let dedup = tx.open_table(DEDUP).map_err(|e| self.error(e))?;
        for entry in dedup.iter().map_err(|e| self.error(e))? {
            let (chunk, row) = entry.map_err(|e| self.error(e))?;
            let (chunk, row) = (chunk.value(), row.value());
            if row.len() != DEDUP_ROW_BYTES {
                return Err(self.corrupted(format!("dedup row {chunk} has {} bytes", row.len())));
            }
            for offset in 0..DEDUP_CHUNK as usize {
                if row[offset / 8] & (1 << (offset % 8)) != 0 {
                    let at = DEDUP_CHUNK as usize / 8 + offset * 8;
                    let id = u64::from_le_bytes(row[at..at + 8].try_into().expect("8 bytes"));
                    out.dedup.push((chunk * DEDUP_CHUNK + offset as u32, id));
                }
            }
        }

        let meta = tx.open_table(META).map_err(|e| self.error(e))?;
        out.dedup_next = meta
            .get("dedup_next")
            .map_err(|e| self.error(e))?
            .map_or(0, |v| v.value() as u32);
        Ok(out)
    }

    fn error(&self, e: impl Into<redb::Error>) -> StorageError {
        match e.into() {
            redb::Error::Corrupted(detail) => self.corrupted(detail),
            other => StorageError::Io {
                file: self.file.clone(),
                detail: other.to_string(),
            },
        }
    }

    fn corrupted(&self, detail: impl Into<String>) -> StorageError {
        StorageError::Corrupted {
            file: self.file.clone(),
            detail: detail.into(),
        }
    }
}

/// The `state` table key of `key` of `agent`, built in `buf`.
fn state_key<'b>(agent: &str, key: &[u8], buf: &'b mut Vec<u8>) -> &'b [u8] {
    buf.clear();
    let len = u16::try_from(agent.len()).expect("agent names are shorter than 64 KiB");
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(agent.as_bytes());
    buf.extend_from_slice(key);
    buf
}

fn split_state_key(k: &[u8]) -> Option<(&str, &[u8])> {
    let len = usize::from(u16::from_be_bytes(k.get(..2)?.try_into().ok()?));
    let name = std::str::from_utf8(k.get(2..2 + len)?).ok()?;
    Some((name, &k[2 + len..]))
}

/// Opens the database; a damaged file is an error naming it, never a panic
/// (redb asserts on some malformed headers).
fn open_db(file: &Path, opener: &Opener) -> Result<redb::Database, StorageError> {
    match catch_unwind(AssertUnwindSafe(opener)) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(match redb::Error::from(e) {
            redb::Error::Corrupted(detail) => StorageError::Corrupted {
                file: file.to_path_buf(),
                detail,
            },
            other => StorageError::Open {
                file: file.to_path_buf(),
                detail: other.to_string(),
            },
        }),
        Err(panic) => Err(StorageError::Corrupted {
            file: file.to_path_buf(),
            detail: panic_message(&panic),
        }),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "redb panicked while opening the file".into())
}
