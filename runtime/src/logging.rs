//! The process's log: events formatted where they happen, written to stderr
//! by a thread of its own.
//!
//! A shard must never wait on its log. Stderr may be a pipe to a journald
//! that is behind, a terminal, or a file on a full disk; and agents write
//! log lines (up to their per-message cap) that are theirs to write but
//! never theirs to stall their shard with. So lines go through a bounded
//! queue (tracing-appender's non-blocking writer) to the `quire-log`
//! thread; when the queue is full a line is dropped and counted
//! ([`lines_dropped`], `quire_log_lines_dropped_total` on /metrics), not
//! waited for.

use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines the queue holds before it drops: a burst of warnings fits, and
/// agents' lines (4 KiB at most) hold at most 16 MiB.
const QUEUED_LINES: usize = 4096;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Flushes what is queued when dropped (keep it for the life of `main`).
#[must_use = "the log is flushed and its thread ends when the guard is dropped"]
pub struct LogGuard {
    _worker: Option<WorkerGuard>,
}

/// Installs the process's subscriber: `QUIRE_LOG` (an `EnvFilter`) or
/// `default_filter`, to stderr through the log thread. A second call (a
/// subscriber already set) changes nothing.
///
/// ```
/// let _log = quire_runtime::logging::init("warn");
/// tracing::warn!("written by the quire-log thread");
/// assert_eq!(quire_runtime::logging::lines_dropped(), 0);
/// ```
pub fn init(default_filter: &str) -> LogGuard {
    let filter =
        EnvFilter::try_from_env("QUIRE_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("quire-log")
        .finish(std::io::stderr());
    let counter = writer.error_counter();
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // A log that cannot be written (stderr on a full disk) must not
        // take a shard down: tracing's own report of that failure would
        // panic in eprintln!.
        .log_internal_errors(false)
        .try_init()
        .is_ok();
    if !installed {
        return LogGuard { _worker: None };
    }
    let _ = DROPPED.set(counter);
    LogGuard {
        _worker: Some(worker),
    }
}

/// Log lines dropped so far because the log thread was behind.
pub fn lines_dropped() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}
