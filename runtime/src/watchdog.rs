//! Nudges a shard whose reactor stopped its pulse.
//!
//! Each shard bumps a counter every heartbeat (2 ms) from a task of its
//! own. glommio 0.9 can leave a reactor asleep in `io_uring_enter` past its
//! own timers after a lost wake-up (seen: both shards asleep while a client
//! waited on a durable acknowledgement; any signal to the thread, even a
//! debugger attaching, got it going again). A watchdog thread checks the
//! counters every 10 ms; a shard whose counter has not moved for 30 ms gets
//! SIGURG, whose handler does nothing: the signal only interrupts the
//! sleeping syscall (glommio treats EINTR as "look again").

use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::Duration;

const CHECK_EVERY: Duration = Duration::from_millis(10);
/// Checks without a pulse before a nudge.
const SILENT_CHECKS: u32 = 3;

extern "C" fn ignore(_: libc::c_int) {}

fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction with a handler that touches nothing is
        // async-signal-safe; no SA_RESTART, so the syscall returns EINTR.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGURG, &action, std::ptr::null_mut());
        }
    });
}

/// The pulses of a node's shards and the thread watching them.
pub(crate) struct Watchdog {
    pulses: Vec<Arc<AtomicU64>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Nudges sent (for the log at the end).
    nudges: Arc<AtomicU64>,
}

impl Watchdog {
    /// Pulses for `shards` shards; nothing watched until [`Self::start`].
    pub fn new(shards: usize) -> Self {
        Self {
            pulses: (0..shards).map(|_| Arc::new(AtomicU64::new(0))).collect(),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            nudges: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The counter shard `shard` bumps.
    pub fn pulse(&self, shard: usize) -> Arc<AtomicU64> {
        self.pulses[shard].clone()
    }

    /// Watches the shard threads (in shard order).
    pub fn start<T>(&mut self, shard_threads: &[JoinHandle<T>]) {
        install_handler();
        let targets: Vec<libc::pthread_t> =
            shard_threads.iter().map(|t| t.as_pthread_t()).collect();
        let pulses = self.pulses.clone();
        let stop = self.stop.clone();
        let nudges = self.nudges.clone();
        self.thread = std::thread::Builder::new()
            .name("quire-watchdog".into())
            .spawn(move || {
                let mut last: Vec<u64> = pulses.iter().map(|p| p.load(Ordering::Relaxed)).collect();
                let mut silent = vec![0u32; pulses.len()];
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(CHECK_EVERY);
                    for (i, pulse) in pulses.iter().enumerate() {
                        let now = pulse.load(Ordering::Relaxed);
                        if now != last[i] {
                            last[i] = now;
                            silent[i] = 0;
                            continue;
                        }
                        silent[i] += 1;
                        if silent[i] >= SILENT_CHECKS && !stop.load(Ordering::Relaxed) {
                            silent[i] = 0;
                            nudges.fetch_add(1, Ordering::Relaxed);
                            // SAFETY: the thread is not joined before this
                            // watchdog stops, so its id is valid.
                            unsafe { libc::pthread_kill(targets[i], libc::SIGURG) };
                        }
                    }
                }
            })
            .ok();
    }

    /// Stops watching (before the shard threads are joined).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let n = self.nudges.load(Ordering::Relaxed);
        if n > 0 {
            tracing::info!(nudges = n, "watchdog nudged silent shard reactors");
        }
    }
}
