//! Quire: what this thread's reactor saw each time it slept.
//!
//! A reactor sleeps in `io_uring_enter` on its main ring, waiting for the
//! one completion that links the rings (a poll of the latency ring's file
//! descriptor, which turns readable when the latency ring has a completion:
//! its timer, or the read of the eventfd that other threads write to wake
//! it). If that chain breaks, the thread sleeps on though its timer fired
//! or it was told to wake, until a signal ends the sleep. These counters
//! tell the two kinds of wake-up apart, so a lost wake-up can be traced to
//! the ring that held it.

use std::cell::Cell;
use std::time::Duration;

/// This thread's sleeps since it started (all counters only grow).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SleepCounters {
    /// Sleeps in `io_uring_enter` waiting for the rings' link.
    pub sleeps: u64,
    /// Sleeps that ended with no completion on the main ring: a signal
    /// (or a spurious wake-up) ended them, not the link.
    pub ended_without_link: u64,
    /// Of those, sleeps that ended with completions waiting on the latency
    /// ring: its timer or its eventfd read had completed (or was about to,
    /// as task work the kernel ran on the way out), yet the poll that links
    /// the rings never woke the sleeper.
    pub latency_completions_left: u64,
    /// Sleeps that lasted over 5 ms past the timer they were armed with.
    pub overslept: u64,
    /// The longest of those, past its timer.
    pub longest_overslept: Duration,
}

thread_local! {
    static COUNTERS: Cell<SleepCounters> = Cell::new(SleepCounters::default());
}

/// The calling thread's counters (all zero on a thread with no reactor).
pub fn counters() -> SleepCounters {
    COUNTERS.with(Cell::get)
}

/// Records one sleep: how long it lasted, the timer it was armed with,
/// and the completions each ring held when it ended.
pub(crate) fn record(
    slept: Duration,
    timer: Option<Duration>,
    main_ready: usize,
    latency_ready: usize,
) {
    COUNTERS.with(|c| {
        let mut n = c.get();
        n.sleeps += 1;
        if main_ready == 0 {
            n.ended_without_link += 1;
            if latency_ready > 0 {
                n.latency_completions_left += 1;
            }
        }
        if let Some(timer) = timer {
            let past = slept.saturating_sub(timer);
            if past > Duration::from_millis(5) {
                n.overslept += 1;
                n.longest_overslept = n.longest_overslept.max(past);
            }
        }
        c.set(n);
    });
}
