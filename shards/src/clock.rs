//! The shard's logical clock: the one time source for deadlines, call
//! timeouts, delayed sends and the wasm supervision's windows.
//!
//! A [`ShardCore`](crate::ShardCore) reads time only through its [`Clock`],
//! so tests hand it a [`ManualClock`] and move time themselves: a TTL
//! expires, a call times out or a quarantine ends exactly when the test
//! says, with no sleeps and no timing luck (quinn-proto's "the caller hands
//! in `now`", kept in one place instead of on every call).
//!
//! What is *not* logical time, and keeps the real clock: how long a wasm
//! handler or a compilation actually ran (the time limit a watcher thread
//! enforces, the turn quota's charges, an agent's busy share). Those
//! measure work done on this machine; a test cannot make a handler faster
//! by moving a clock. The windows they are counted in are logical time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a shard reads the time.
///
/// ```
/// use std::time::Duration;
/// use quire_shards::{Clock, ManualClock};
///
/// let manual = ManualClock::new();
/// let clock = Clock::from(manual.clone());
/// let start = clock.now();
/// manual.advance(Duration::from_millis(5));
/// assert_eq!(clock.now() - start, Duration::from_millis(5));
/// ```
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The machine's monotonic clock (`Instant::now`): what nodes run on.
    #[default]
    System,
    /// Time that moves only when its [`ManualClock`] is advanced.
    Manual(ManualClock),
}

impl Clock {
    /// The current time.
    #[inline]
    pub fn now(&self) -> Instant {
        match self {
            Self::System => Instant::now(),
            Self::Manual(manual) => manual.now(),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Self::Manual(manual)
    }
}

/// A clock that stands still until it is advanced; clones share one time.
/// It may be advanced from another thread (a test driving a shard that
/// runs elsewhere).
///
/// ```
/// use std::time::Duration;
/// use quire_shards::ManualClock;
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// assert_eq!(clock.now(), t0);
/// clock.clone().advance(Duration::from_secs(2));
/// assert_eq!(clock.now(), t0 + Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<ManualTime>);

#[derive(Debug)]
struct ManualTime {
    start: Instant,
    /// Nanoseconds since `start`: an atomic so the handle is `Send + Sync`.
    elapsed_ns: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the moment it was made.
    pub fn new() -> Self {
        Self(Arc::new(ManualTime {
            start: Instant::now(),
            elapsed_ns: AtomicU64::new(0),
        }))
    }

    /// The time it stands at.
    pub fn now(&self) -> Instant {
        self.0.start + Duration::from_nanos(self.0.elapsed_ns.load(Ordering::Acquire))
    }

    /// Moves the time on by `by` (saturating at ~584 years).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .0
            .elapsed_ns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |ns| {
                Some(ns.saturating_add(by))
            });
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_time_moves_only_when_advanced_and_clones_share_it() {
        let clock = ManualClock::new();
        let shared = Clock::from(clock.clone());
        let t0 = shared.now();
        std::thread::spawn({
            let clock = clock.clone();
            move || clock.advance(Duration::from_micros(7))
        })
        .join()
        .unwrap();
        assert_eq!(shared.now(), t0 + Duration::from_micros(7));
        clock.advance(Duration::MAX);
        assert!(shared.now() > t0 + Duration::from_secs(500 * 365 * 86_400));
    }
}
