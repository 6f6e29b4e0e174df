//! Quire: what this thread's reactor saw each time it slept.
//!
//! A reactor sleeps in `ppoll` on the eventfd the kernel signals for every
//! completion of its rings and on the eventfd other threads write to wake
//! it, with its next timer as the timeout (see `sys::completion_signal`).
//! These counters tell how its sleeps ended, so a lost wake-up (a sleep a
//! signal had to end while completions waited) or a sleep the host
//! stretched far past its timer shows in the runtime's metrics.

use std::cell::Cell;
use std::time::Duration;

use crate::sys::completion_signal::Woken;

/// This thread's sleeps since it started (all counters only grow).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SleepCounters {
    /// Sleeps in `ppoll`.
    pub sleeps: u64,
    /// Sleeps a signal ended (the runtime's watchdog nudge, a debugger).
    pub ended_by_signal: u64,
    /// Of those, sleeps that ended with completions waiting in the rings:
    /// the kernel posted them, yet their eventfd signal never woke the
    /// sleeper. A lost wake-up.
    pub missed_wakeups: u64,
    /// Of the sleeps a signal ended, those with no timer: the reactor had
    /// nothing to wake for (no task waited on a timer), so a signal that
    /// found nothing waiting woke it for nothing.
    pub signalled_untimed: u64,
    /// Of the sleeps a signal ended, those that had outlasted their timer
    /// by over 1 ms: the kernel had not ended the sleep at its timeout (or
    /// the thread waited that long for a CPU after it).
    pub signalled_past_timer: u64,
    /// Sleeps that lasted over 5 ms past the timer they were given (the
    /// host held the thread up, or a wake-up was lost).
    pub overslept: u64,
    /// The longest of those, past its timer.
    pub longest_overslept: Duration,
    /// Times the executor was about to park while its task queues held
    /// tasks ready to run, and ran them instead. Upstream parked then (a
    /// completion in the latency ring made `run_task_queues` report no
    /// work before any queue ran; fixed there): the tasks waited for the
    /// next timer, or for a signal when their own timers had just fired.
    pub parks_with_tasks_ready: u64,
}

thread_local! {
    static COUNTERS: Cell<SleepCounters> = Cell::new(SleepCounters::default());
}

/// The calling thread's counters (all zero on a thread with no reactor).
pub fn counters() -> SleepCounters {
    COUNTERS.with(Cell::get)
}

/// Records one sleep: how long it lasted, the timer it was given, what
/// ended it and how many completions the rings held then.
pub(crate) fn record(slept: Duration, timer: Option<Duration>, woken: Woken, waiting: usize) {
    COUNTERS.with(|c| {
        let mut n = c.get();
        n.sleeps += 1;
        if woken == Woken::Signal {
            n.ended_by_signal += 1;
            if waiting > 0 {
                n.missed_wakeups += 1;
            }
            match timer {
                None => n.signalled_untimed += 1,
                Some(timer) if slept > timer + Duration::from_millis(1) => {
                    n.signalled_past_timer += 1
                }
                Some(_) => {}
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

/// Counts one park skipped because tasks were ready (see
/// [`SleepCounters::parks_with_tasks_ready`]).
pub(crate) fn record_park_with_tasks_ready() {
    COUNTERS.with(|c| {
        let mut n = c.get();
        n.parks_with_tasks_ready += 1;
        c.set(n);
    });
}
