//! A thread's CPU-time clock: how long it ran, not how long it existed.
//!
//! Both of the node's outside observers judge a shard by it: the
//! preemption thread (a handler is stopped for the time it ran, not time
//! its thread was descheduled) and the stall watchdog (a stall on CPU is
//! the shard's, one off CPU is the host's).

/// The CPU-time clock of one thread of this process.
///
/// ```
/// use quire_shards::ThreadCpuClock;
/// let clock = ThreadCpuClock::current().expect("Linux has per-thread clocks");
/// let before = clock.now_ns().unwrap();
/// let mut x = 0u64;
/// for i in 0..100_000 { x = x.wrapping_add(std::hint::black_box(i)); }
/// assert!(clock.now_ns().unwrap() >= before);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadCpuClock(libc::clockid_t);

impl ThreadCpuClock {
    /// The calling thread's clock.
    pub fn current() -> Option<Self> {
        // SAFETY: pthread_self is the calling thread, alive while it calls.
        unsafe { Self::of(libc::pthread_self()) }
    }

    /// The clock of `thread`.
    ///
    /// # Safety
    /// `thread` must be a live thread of this process (for instance one
    /// whose `JoinHandle` the caller holds unjoined).
    pub unsafe fn of(thread: libc::pthread_t) -> Option<Self> {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: the caller vouches for `thread`; the out pointer is ours.
        (unsafe { libc::pthread_getcpuclockid(thread, &mut clock) } == 0).then_some(Self(clock))
    }

    /// CPU time the thread has run so far, in ns (`None` once it is gone).
    pub fn now_ns(&self) -> Option<u64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a clock id from pthread_getcpuclockid and an out pointer
        // of ours (a clock of a thread that ended fails, it does not fault).
        (unsafe { libc::clock_gettime(self.0, &mut ts) } == 0)
            .then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }
}
