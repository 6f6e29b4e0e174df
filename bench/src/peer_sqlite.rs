//! The SQLite peer of the storage benchmark: one storage thread per shard
//! that owns a SQLite database in WAL mode and does, for each durable
//! message, the same writes a Quire shard commits (the counter's count, the
//! message's record, its de-duplication slot), acknowledging once its
//! transaction committed.
//!
//! Like Quire's batched mode it commits group-wise: each transaction takes
//! every message waiting (up to a bound); its per-message mode commits each
//! message alone, like Quire's immediate mode.

use std::collections::HashMap;
use std::path::Path;
use std::thread::JoinHandle;

use rusqlite::{params, Connection};

/// `synchronous=` setting of the WAL database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync at checkpoints only (WAL commits are not durable on power loss).
    Normal,
    /// fsync every commit.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }

    /// Name for reports.
    pub fn label(self) -> &'static str {
        match self {
            Synchronous::Normal => "SQLite WAL/NORMAL",
            Synchronous::Full => "SQLite WAL/FULL",
        }
    }
}

struct Job {
    id: u64,
    counter: u32,
    ack: flume::Sender<()>,
}

/// A SQLite-backed durable message store with group commit.
pub struct SqliteStore {
    jobs: Option<flume::Sender<Job>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl SqliteStore {
    /// Opens `path` (WAL, `sync`) and starts its storage thread; a
    /// transaction takes at most `max_batch` messages.
    pub fn open(path: &Path, sync: Synchronous, max_batch: usize) -> Result<Self, String> {
        let conn = Connection::open(path).map_err(|e| e.to_string())?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={};
             CREATE TABLE IF NOT EXISTS state (agent INTEGER, key BLOB, value BLOB, PRIMARY KEY (agent, key));
             CREATE TABLE IF NOT EXISTS dedup (slot INTEGER PRIMARY KEY, id INTEGER);",
            sync.pragma()
        ))
        .map_err(|e| e.to_string())?;
        let (tx, rx) = flume::bounded::<Job>(64 * 1024);
        let thread = std::thread::Builder::new()
            .name("sqlite-store".into())
            .spawn(move || store_loop(conn, rx, max_batch.max(1)))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues message `id` for `counter`; the returned receiver yields once
    /// it is committed (and is closed if the store failed).
    pub fn send(&self, id: u64, counter: u32) -> flume::Receiver<()> {
        let (ack, done) = flume::bounded(1);
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job { id, counter, ack });
        }
        done
    }

    /// Stops the storage thread.
    pub fn close(mut self) -> Result<(), String> {
        self.jobs.take();
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| "sqlite thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

const DEDUP_SLOTS: u64 = 262_144;

fn store_loop(
    mut conn: Connection,
    rx: flume::Receiver<Job>,
    max_batch: usize,
) -> Result<(), String> {
    let mut counts: HashMap<u32, u64> = HashMap::new();
    let mut slot = 0u64;
    let mut batch = Vec::with_capacity(max_batch);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO state (agent, key, value) VALUES (?1, ?2, ?3)",
                )
                .map_err(|e| e.to_string())?;
            let mut dedup = tx
                .prepare_cached("INSERT OR REPLACE INTO dedup (slot, id) VALUES (?1, ?2)")
                .map_err(|e| e.to_string())?;
            for job in &batch {
                let count = counts.entry(job.counter).or_insert(0);
                *count += 1;
                let value = count.to_le_bytes();
                put.execute(params![job.counter, &b"count"[..], &value[..]])
                    .map_err(|e| e.to_string())?;
                let key = format!("m/{}", job.id);
                put.execute(params![job.counter, key.as_bytes(), &value[..]])
                    .map_err(|e| e.to_string())?;
                dedup
                    .execute(params![slot as i64, job.id as i64])
                    .map_err(|e| e.to_string())?;
                slot = (slot + 1) % DEDUP_SLOTS;
            }
        }
        tx.commit().map_err(|e| e.to_string())?;
        for job in batch.drain(..) {
            let _ = job.ack.send(());
        }
    }
    Ok(())
}
