//! A storage backend that fails on demand: how the tests make a partition
//! meet a full disk or a failing fsync, deterministically (redb's own
//! fault-injection tests work the same way, over its `StorageBackend`).
//!
//! ```
//! use quire_storage::faults::{FaultSwitch, FaultyFile};
//! use quire_storage::{Mutation, Partition, WriteBatch};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("shard-0.redb");
//! let switch = FaultSwitch::default();
//! let part = FaultyFile::partition(&path, switch.clone()).unwrap();
//! let batch: WriteBatch = [Mutation::DeleteAgent("a".into())].into_iter().collect();
//! switch.fail_writes(true);
//! assert!(part.commit(&batch, true).is_err());
//! switch.fail_writes(false);
//! part.commit(&batch, true).unwrap(); // reopened, then committed
//! ```

use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use crate::{Partition, StorageError};

/// Turns failures on and off for every backend made with it.
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch(Arc<Faults>);

#[derive(Debug, Default)]
struct Faults {
    writes: AtomicBool,
    syncs: AtomicBool,
    injected: AtomicU64,
}

impl FaultSwitch {
    /// Writes and length changes fail with "no space left on device".
    pub fn fail_writes(&self, on: bool) {
        self.0.writes.store(on, Ordering::SeqCst);
    }

    /// fsyncs fail with an I/O error.
    pub fn fail_syncs(&self, on: bool) {
        self.0.syncs.store(on, Ordering::SeqCst);
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.0.injected.load(Ordering::SeqCst)
    }

    fn check(&self, flag: &AtomicBool, what: io::ErrorKind, message: &str) -> io::Result<()> {
        if flag.load(Ordering::SeqCst) {
            self.0.injected.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::new(what, message.to_string()));
        }
        Ok(())
    }
}

/// A file backend whose writes and fsyncs fail while its switch says so.
#[derive(Debug)]
pub struct FaultyFile {
    inner: FileBackend,
    switch: FaultSwitch,
}

impl FaultyFile {
    /// A backend on the file at `path` (created if missing).
    pub fn open(path: &Path, switch: FaultSwitch) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let inner = FileBackend::new(file).map_err(io::Error::other)?;
        Ok(Self { inner, switch })
    }

    /// A partition at `path` on such a backend (a new one each time the
    /// partition reopens its file after a failure).
    pub fn partition(path: &Path, switch: FaultSwitch) -> Result<Partition, StorageError> {
        let at: PathBuf = path.to_path_buf();
        Partition::open_on_backend(path, move || {
            Self::open(&at, switch.clone()).expect("the partition file opens")
        })
    }
}

impl StorageBackend for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.switch.check(
            &self.switch.0.writes,
            io::ErrorKind::StorageFull,
            "injected: no space left on device",
        )?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.switch.check(
            &self.switch.0.syncs,
            io::ErrorKind::Other,
            "injected: fsync failed (EIO)",
        )?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.switch.check(
            &self.switch.0.writes,
            io::ErrorKind::StorageFull,
            "injected: no space left on device",
        )?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
