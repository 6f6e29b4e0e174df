//! Reactor stalls: glommio's stall detection for the backtrace, the node's
//! watchdog for the count.
//!
//! A shard's reactor stalls when one task runs on without yielding: every
//! other task of the shard (mesh intake, sockets, timers, commits) waits.
//! - the node's watchdog ([`crate::watchdog`]), on by default
//!   (`metrics.stall_threshold_ms`), counts: a shard whose 2 ms pulse stood
//!   still for the threshold while its thread was busy (not asleep) is
//!   stalled; when the pulse moves again the stall is counted with its
//!   length in [`ReactorCounters`], and the shard logs it with the agent
//!   whose turn it was;
//! - glommio's stall detection, configured by [`GlommioStallSettings`],
//!   with `metrics.stall_backtraces`: glommio signals the shard's thread
//!   for a backtrace and logs it (through the `log` crate) once the task
//!   queue yields. Off by default: glommio resolves the backtrace's symbols
//!   on the shard's thread (seconds with a big binary's debug info), and
//!   its handler cannot be replaced (glommio 0.9 does not export the type
//!   its callback takes).
//!
//! The signal is a real-time one (`SIGRTMIN + 5`): glommio's default,
//! SIGUSR1, is the one wasmer uses to interrupt running WebAssembly code.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use glommio::{StallDetectionHandler, TaskQueueHandle};

/// A shard's reactor figures, written by the node's watchdog thread and read
/// when the shard is scraped.
#[derive(Debug, Default)]
pub struct ReactorCounters {
    /// Stalls counted.
    pub stalls: AtomicU64,
    /// Time spent in counted stalls, ns.
    pub stall_ns: AtomicU64,
    /// Longest counted stall, ns.
    pub max_stall_ns: AtomicU64,
    /// Times the watchdog nudged the reactor out of a sleep past its timers.
    pub nudges: AtomicU64,
    /// Times the shard's heartbeat found work a lost wake-up had left
    /// waiting a whole heartbeat (a rung doorbell, a client command).
    pub rescues: AtomicU64,
    /// Times the whole process was held up (the watchdog overslept), e.g.
    /// hypervisor steal: not counted as stalls.
    pub host_pauses: AtomicU64,
    /// Sleeps of the reactor that lasted over 5 ms past the timer they
    /// were given (published by the shard from `glommio::sleep_probe`).
    pub oversleeps: AtomicU64,
    /// Sleeps that a signal ended while the rings held completions whose
    /// wake-up never reached the sleeper: lost wake-ups.
    pub missed_wakeups: AtomicU64,
    /// Sleeps a signal ended that had no timer (the reactor had nothing
    /// to wake for); for the watchdog's stop line, not a metric.
    pub signalled_untimed: AtomicU64,
    /// Sleeps a signal ended over 1 ms past their timer; likewise.
    pub signalled_past_timer: AtomicU64,
    /// Parks the executor skipped because tasks were ready (the glommio
    /// fix in `run_task_queues` should leave none); likewise.
    pub parks_with_tasks_ready: AtomicU64,
}

impl ReactorCounters {
    /// Counts one stall of `ns`.
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// use quire_runtime::metrics::stalls::ReactorCounters;
    /// let c = ReactorCounters::default();
    /// c.count_stall(12_000_000);
    /// c.count_stall(30_000_000);
    /// assert_eq!(c.stalls.load(Ordering::Relaxed), 2);
    /// assert_eq!(c.max_stall_ns.load(Ordering::Relaxed), 30_000_000);
    /// ```
    pub fn count_stall(&self, ns: u64) {
        self.stalls.fetch_add(1, Ordering::Relaxed);
        self.stall_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_stall_ns.fetch_max(ns, Ordering::Relaxed);
    }
}

/// glommio's stall detection for one shard: the threshold and the signal.
///
/// ```
/// use std::time::Duration;
/// use quire_runtime::metrics::stalls::GlommioStallSettings;
///
/// let ex = glommio::LocalExecutorBuilder::default()
///     .detect_stalls(Some(Box::new(GlommioStallSettings::new(Duration::from_millis(10)))))
///     .make()
///     .unwrap();
/// ex.run(async {});
/// ```
#[derive(Debug)]
pub struct GlommioStallSettings {
    threshold: Duration,
}

impl GlommioStallSettings {
    /// Reports a task queue that ran `threshold` or longer without yielding.
    pub fn new(threshold: Duration) -> Self {
        Self { threshold }
    }
}

impl StallDetectionHandler for GlommioStallSettings {
    fn threshold(
        &self,
        _queue: TaskQueueHandle,
        max_expected_runtime: Duration,
    ) -> Option<Duration> {
        // glommio adds this to the queue's budget (the preempt timer); the
        // configured threshold is meant as the whole run time.
        Some(self.threshold.saturating_sub(max_expected_runtime))
    }

    fn signal(&self) -> u8 {
        (libc::SIGRTMIN() + 5) as u8
    }
}
