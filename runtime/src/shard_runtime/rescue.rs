//! The heartbeat as a safety net that counts. Each heartbeat the timers task
//! looks at what waits for its shard (batches a peer rang the doorbell for,
//! client commands) and wakes the dispatcher for it; this room decides
//! whether that look *rescued* something: work that was already waiting at
//! the last look, has not been touched since, while the reactor slept
//! through most of the time between. Work like that waited a whole
//! heartbeat for a wake-up that never came (a lost wake-up); a shard that
//! was busy, or work that came in since, is not counted.
//!
//! Pure: each look is handed its figures and `now`, so the rule is tested
//! with made-up clocks.

use std::time::{Duration, Instant};

/// What waited for the shard at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiting {
    /// When the look was taken.
    pub at: Instant,
    /// Batches rung for on every inbound doorbell, in all.
    pub batches_rung: u64,
    /// Batches taken off the inbound channels, in all.
    pub batches_taken: u64,
    /// Client commands queued.
    pub commands_queued: usize,
    /// Client commands served, in all.
    pub commands_served: u64,
    /// CPU time the shard's thread has had, in all (a reactor asleep in
    /// `io_uring_enter` gets none).
    pub thread_cpu: Duration,
}

/// What a rescue found waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rescued {
    /// Batches from a peer nobody took.
    Batches,
    /// Client commands nobody served.
    Commands,
}

/// The last look, kept between heartbeats.
#[derive(Debug, Default)]
pub(crate) struct RescueWatch {
    last: Option<Waiting>,
}

impl RescueWatch {
    /// Looks at `now`; `Some` when the look is a rescue. Looks closer than
    /// `min_gap` to the last one (the timers task also wakes for timers)
    /// are not judged: the last one is kept, so each verdict spans at least
    /// `min_gap`.
    pub(crate) fn look(&mut self, now: Waiting, min_gap: Duration) -> Option<Rescued> {
        let Some(last) = self.last else {
            self.last = Some(now);
            return None;
        };
        let gap = now.at.saturating_duration_since(last.at);
        if gap < min_gap {
            return None;
        }
        self.last = Some(now);
        let busy = now.thread_cpu.saturating_sub(last.thread_cpu);
        // A thread that had its CPU for a quarter of the gap or more was
        // working (a long handler, a backlog it leaves on the channels by
        // design), not asleep on a lost wake-up.
        if busy >= gap / 4 {
            return None;
        }
        if last.batches_rung > last.batches_taken && now.batches_taken == last.batches_taken {
            return Some(Rescued::Batches);
        }
        if last.commands_queued > 0
            && now.commands_queued > 0
            && now.commands_served == last.commands_served
        {
            return Some(Rescued::Commands);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_millis(2);

    fn idle(at: Instant) -> Waiting {
        Waiting {
            at,
            batches_rung: 10,
            batches_taken: 10,
            commands_queued: 0,
            commands_served: 5,
            thread_cpu: Duration::from_millis(1),
        }
    }

    #[test]
    fn a_batch_left_a_whole_heartbeat_with_the_reactor_asleep_is_a_rescue() {
        let t0 = Instant::now();
        let mut watch = RescueWatch::default();
        let rung = Waiting {
            batches_rung: 11,
            ..idle(t0)
        };
        assert_eq!(watch.look(rung, GAP), None);
        let later = Waiting {
            at: t0 + GAP,
            ..rung
        };
        assert_eq!(watch.look(later, GAP), Some(Rescued::Batches));
    }

    #[test]
    fn a_batch_taken_since_or_rung_since_is_not() {
        let t0 = Instant::now();
        let mut watch = RescueWatch::default();
        watch.look(
            Waiting {
                batches_rung: 11,
                ..idle(t0)
            },
            GAP,
        );
        // Taken in between, and another rung just now.
        let now = Waiting {
            at: t0 + GAP,
            batches_rung: 12,
            batches_taken: 11,
            ..idle(t0)
        };
        assert_eq!(watch.look(now, GAP), None);
        // The one rung just now was not waiting at the last look.
        assert_eq!(
            watch.look(
                Waiting {
                    at: t0 + 2 * GAP,
                    ..now
                },
                GAP
            ),
            Some(Rescued::Batches)
        );
    }

    #[test]
    fn a_busy_reactor_is_not_rescued() {
        let t0 = Instant::now();
        let mut watch = RescueWatch::default();
        let waiting = Waiting {
            commands_queued: 3,
            ..idle(t0)
        };
        watch.look(waiting, GAP);
        // A 2 ms handler ran: the commands waited on it, not on a wake-up.
        let now = Waiting {
            at: t0 + GAP,
            thread_cpu: waiting.thread_cpu + GAP,
            ..waiting
        };
        assert_eq!(watch.look(now, GAP), None);
    }

    #[test]
    fn commands_nobody_served_with_the_reactor_asleep_are_a_rescue() {
        let t0 = Instant::now();
        let mut watch = RescueWatch::default();
        let waiting = Waiting {
            commands_queued: 1,
            ..idle(t0)
        };
        watch.look(waiting, GAP);
        // Too soon to judge: the timers task woke for a timer.
        let soon = Waiting {
            at: t0 + GAP / 4,
            ..waiting
        };
        assert_eq!(watch.look(soon, GAP), None);
        let now = Waiting {
            at: t0 + GAP,
            ..waiting
        };
        assert_eq!(watch.look(now, GAP), Some(Rescued::Commands));
        // Served meanwhile (and one more queued): not a rescue.
        let served = Waiting {
            at: t0 + 2 * GAP,
            commands_served: 6,
            ..waiting
        };
        assert_eq!(watch.look(served, GAP), None);
    }
}
