//! Stopping a handler that runs past its wall-clock limit while it runs.
//!
//! Fuel bounds how many operators a handler executes, not how long it takes:
//! one `memory.fill` of MiBs costs one unit, and so does a host call. The
//! time limit is therefore kept from outside the shard: while a guest call
//! is in progress its shard publishes which instance is running and until
//! when ([`ShardPreemption::arm`]); the node's preemption thread looks at
//! every shard each `period` and interrupts a call past its deadline with
//! wasmer's host interrupt (a SIGUSR1 to the shard's thread, handled by
//! wasmer: the guest traps with `HostInterrupt` at once, or when the host
//! function it is in returns). glommio's stall backtraces use another signal
//! (see `quire_runtime::metrics::stalls`), so the two do not clash.
//!
//! The thread sleeps `period` = a quarter of the smallest time limit armed so
//! far (1 to 20 ms): a handler is stopped within about 1.5x its limit (it is
//! judged from the first period that sees it), and a node whose agents keep
//! the default 10 ms limit wakes the thread 400 times a second. The limit is
//! on the time the handler *ran*: a call past its deadline whose thread was
//! on its CPU for less than half the time since it was first seen (an
//! oversubscribed host, a VM's steal) gets more time, up to 10x its limit.
//!
//! The shard side costs two relaxed-or-SeqCst stores per guest call and no
//! lock: the published pointer changes only when another instance runs, and
//! an instance's [`CallWatch`] is freed only once the thread is known not to
//! be reading it (a flag each side checks after its own store, Dekker's
//! way).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use wasmer::Interrupter;

use crate::ThreadCpuClock;

/// Instants become ns since this one (0 means "no call in progress").
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn ns_since_epoch(t: Instant) -> u64 {
    t.saturating_duration_since(*EPOCH).as_nanos() as u64 + 1
}

/// Shortest and longest sleep of the preemption thread.
const MIN_PERIOD: Duration = Duration::from_millis(1);
const MAX_PERIOD: Duration = Duration::from_millis(20);
/// An interrupt that did not end the call (it came while the guest was in a
/// host function that has not returned, or the signal was lost) is sent
/// again after this.
const RETRY_AFTER: Duration = Duration::from_millis(10);

/// One instance's stop button and its current deadline.
pub(crate) struct CallWatch {
    interrupter: Interrupter,
    /// ns since [`EPOCH`] by which the call in progress must end; 0: none.
    deadline_ns: AtomicU64,
    /// ns since [`EPOCH`] of the last interrupt sent for the call; 0: none.
    interrupted_ns: AtomicU64,
    /// ns since [`EPOCH`] when the call in progress began.
    armed_ns: AtomicU64,
}

impl CallWatch {
    pub(crate) fn new(interrupter: Interrupter) -> Arc<Self> {
        Arc::new(Self {
            interrupter,
            deadline_ns: AtomicU64::new(0),
            interrupted_ns: AtomicU64::new(0),
            armed_ns: AtomicU64::new(0),
        })
    }
}

/// What the preemption thread reads of one shard.
struct ShardWatch {
    /// The CPU clock of the shard's thread: a call is stopped for the time
    /// it ran, not for time its thread was descheduled (an oversubscribed
    /// host must not fail well-behaved handlers).
    cpu_clock: Option<ThreadCpuClock>,
    /// The watch of the instance that last entered a guest call.
    current: AtomicPtr<CallWatch>,
    /// Set by the thread while it reads through `current`.
    reading: AtomicBool,
    /// Interrupts sent to this shard's calls.
    interrupts: AtomicU64,
}

/// Every shard's watch, and the smallest time limit armed so far.
struct Registry {
    shards: Mutex<Vec<Weak<ShardWatch>>>,
    min_limit_ns: AtomicU64,
    started: std::sync::Once,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    shards: Mutex::new(Vec::new()),
    min_limit_ns: AtomicU64::new(MAX_PERIOD.as_nanos() as u64 * 4),
    started: std::sync::Once::new(),
});

/// One shard's side of preemption. Lives on the shard's thread.
pub(crate) struct ShardPreemption {
    watch: Arc<ShardWatch>,
    /// Keeps the published watch alive.
    published: RefCell<Option<Arc<CallWatch>>>,
    /// Watches replaced while the thread was reading: freed later.
    retired: RefCell<Vec<Arc<CallWatch>>>,
}

impl ShardPreemption {
    /// Registers a shard with the node's preemption thread (started on the
    /// first registration).
    pub(crate) fn new() -> Self {
        let watch = Arc::new(ShardWatch {
            cpu_clock: ThreadCpuClock::current(),
            current: AtomicPtr::default(),
            reading: AtomicBool::new(false),
            interrupts: AtomicU64::new(0),
        });
        let registry = &*REGISTRY;
        let mut shards = registry.shards.lock().expect("preemption registry");
        shards.retain(|w| w.strong_count() > 0);
        shards.push(Arc::downgrade(&watch));
        drop(shards);
        registry.started.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("quire-preempt".into())
                .spawn(watch_calls);
            if let Err(e) = spawned {
                tracing::error!(
                    "no preemption thread: handlers over their time limit will run on ({e})"
                );
            }
        });
        Self {
            watch,
            published: RefCell::default(),
            retired: RefCell::default(),
        }
    }

    /// Interrupts sent to this shard's handlers so far.
    pub(crate) fn interrupts(&self) -> u64 {
        self.watch.interrupts.load(Ordering::Relaxed)
    }

    /// Publishes that `call`'s instance enters a guest call begun at
    /// `started` that must end within `limit`. The guard ends it.
    pub(crate) fn arm<'a>(
        &'a self,
        call: &'a Arc<CallWatch>,
        started: Instant,
        limit: Duration,
    ) -> ArmedCall<'a> {
        let limit_ns = limit.as_nanos() as u64;
        if limit_ns < REGISTRY.min_limit_ns.load(Ordering::Relaxed) {
            REGISTRY.min_limit_ns.fetch_min(limit_ns, Ordering::Relaxed);
        }
        self.publish(call);
        call.interrupted_ns.store(0, Ordering::Relaxed);
        let start = ns_since_epoch(started);
        call.armed_ns.store(start, Ordering::Relaxed);
        call.deadline_ns.store(start + limit_ns, Ordering::Release);
        ArmedCall { call }
    }

    fn publish(&self, call: &Arc<CallWatch>) {
        let ptr = Arc::as_ptr(call).cast_mut();
        if self.watch.current.load(Ordering::Relaxed) == ptr {
            return;
        }
        self.watch.current.store(ptr, Ordering::SeqCst);
        let old = self.published.replace(Some(call.clone()));
        let mut retired = self.retired.borrow_mut();
        if self.watch.reading.load(Ordering::SeqCst) {
            // The thread may hold the old pointer: free it later.
            retired.extend(old);
        } else {
            // Not reading now, so any later read sees the new pointer.
            retired.clear();
        }
    }
}

/// A guest call in progress; dropping it ends the call's deadline.
pub(crate) struct ArmedCall<'a> {
    call: &'a CallWatch,
}

impl Drop for ArmedCall<'_> {
    fn drop(&mut self) {
        self.call.deadline_ns.store(0, Ordering::Release);
    }
}

/// A call as the thread first saw it: its deadline, and the wall and CPU
/// clocks then.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Sighting {
    deadline: u64,
    wall: u64,
    cpu: u64,
}

/// A call past its deadline whose thread ran less than this share of the
/// time since it was first seen was mostly descheduled: it gets more time,
/// up to [`MAX_STRETCH`] times its limit.
const MIN_CPU_SHARE: (u64, u64) = (1, 2);
const MAX_STRETCH: u64 = 10;

/// The preemption thread: interrupts every call past its deadline.
fn watch_calls() {
    let registry = &*REGISTRY;
    let mut sightings: std::collections::HashMap<usize, Sighting> = Default::default();
    loop {
        let min_limit = Duration::from_nanos(registry.min_limit_ns.load(Ordering::Relaxed));
        std::thread::sleep((min_limit / 4).clamp(MIN_PERIOD, MAX_PERIOD));
        let now = ns_since_epoch(Instant::now());
        let shards = registry.shards.lock().expect("preemption registry");
        for shard in shards.iter().filter_map(Weak::upgrade) {
            let key = Arc::as_ptr(&shard) as usize;
            shard.reading.store(true, Ordering::SeqCst);
            let ptr = shard.current.load(Ordering::SeqCst);
            // SAFETY: the shard frees a published watch only after seeing
            // `reading` false after it replaced the pointer (see `publish`).
            if let Some(call) = unsafe { ptr.as_ref() } {
                let deadline = call.deadline_ns.load(Ordering::Acquire);
                let cpu = shard.cpu_clock.and_then(|c| c.now_ns());
                let seen = match (deadline, cpu) {
                    (0, _) => None,
                    (_, None) => Some(Sighting {
                        deadline,
                        wall: 0,
                        cpu: 0,
                    }),
                    (_, Some(cpu)) => match sightings.get(&key) {
                        Some(s) if s.deadline == deadline => Some(*s),
                        _ => {
                            let s = Sighting {
                                deadline,
                                wall: now,
                                cpu,
                            };
                            sightings.insert(key, s);
                            // No CPU baseline yet: judge it next time.
                            None
                        }
                    },
                };
                let descheduled = match (seen, cpu) {
                    (Some(s), Some(cpu)) if s.wall > 0 => {
                        let wall = now.saturating_sub(s.wall);
                        let ran = cpu.saturating_sub(s.cpu);
                        let limit = s
                            .deadline
                            .saturating_sub(call.armed_ns.load(Ordering::Relaxed));
                        ran * MIN_CPU_SHARE.1 < wall * MIN_CPU_SHARE.0
                            && now < s.deadline + limit * (MAX_STRETCH - 1)
                    }
                    _ => false,
                };
                if seen.is_some() && !descheduled && interrupt_if_late(call, now) {
                    shard.interrupts.fetch_add(1, Ordering::Relaxed);
                }
            }
            shard.reading.store(false, Ordering::Release);
        }
        sightings.retain(|_, s| now.saturating_sub(s.wall) < 60_000_000_000);
    }
}

fn interrupt_if_late(call: &CallWatch, now: u64) -> bool {
    let deadline = call.deadline_ns.load(Ordering::Acquire);
    if deadline == 0 || now <= deadline {
        return false;
    }
    let last = call.interrupted_ns.load(Ordering::Relaxed);
    if last != 0 && now - last < RETRY_AFTER.as_nanos() as u64 {
        return false;
    }
    call.interrupted_ns.store(now, Ordering::Release);
    // The call may have ended (and another begun) since the deadline was
    // read: look again right before the signal.
    if call.deadline_ns.load(Ordering::Acquire) != deadline {
        return false;
    }
    call.interrupter.interrupt();
    true
}
