//! Nudges a shard whose reactor stopped its pulse.
//!
//! Each shard bumps a counter every heartbeat (2 ms) from a task of its
//! own. Upstream glommio 0.9 can leave a reactor asleep in `io_uring_enter`
//! past its own timers after a lost wake-up (seen: both shards asleep while
//! a client waited on a durable acknowledgement; any signal to the thread,
//! even a debugger attaching, got it going again); our glommio sleeps in
//! `ppoll` instead (third_party/README.md), and this stays as a safety net
//! that counts what it does. A watchdog thread checks the
//! counters every 10 ms; a shard whose counter has not moved for 30 ms gets
//! SIGURG, whose handler does nothing: the signal only interrupts the
//! sleeping syscall (glommio treats EINTR as "look again").
//!
//! The same pulses tell reactor stalls: a shard whose pulse stood still for
//! `metrics.stall_threshold_ms` while its thread was busy (running, or in a
//! system call other than the reactor's sleep in `ppoll`, as
//! /proc/self/task/TID/syscall tells) is stalled: one task kept the
//! reactor. When the pulse moves again the stall is counted with its length
//! (to within a check, 10 ms) and the shard logs it, naming the agent whose
//! turn it was when the stall was seen; such a shard is not nudged. A
//! shard whose thread waits for the CPU (another thread has it) counts as
//! stalled too: its agents wait all the same. When the watchdog's own
//! 10 ms sleep lasted over 25 ms, the whole process or the VM was held up
//! (hypervisor steal, a stopped process): that is counted as a host pause
//! on every shard, not as a stall of any.

use std::os::unix::thread::JoinHandleExt;
use std::path::Path;
use std::sync::atomic::AtomicI32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use quire_shards::ThreadCpuClock;

use crate::metrics::stalls::ReactorCounters;
use crate::thread_stat::ThreadStat;

const CHECK_EVERY: Duration = Duration::from_millis(10);
/// Checks without a pulse before a nudge.
const SILENT_CHECKS: u32 = 3;
/// A check this late means the watchdog itself was held up (host pause).
const HOST_PAUSE: Duration = Duration::from_millis(25);

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

/// What one shard shares with the watchdog.
#[derive(Debug, Default)]
pub(crate) struct ShardPulse {
    /// Bumped by the shard every heartbeat.
    pub beat: AtomicU64,
    /// The shard thread's kernel id (0 until it started).
    pub tid: AtomicI32,
    /// Stalls and nudges, for `/metrics`.
    pub counters: ReactorCounters,
    /// The agent whose turn it is (slot + 1; 0: none), published by the
    /// shard's core.
    pub running: Arc<std::sync::atomic::AtomicUsize>,
    /// What `running` held when the last counted stall was seen, and its
    /// length (ns): the shard logs it, naming the agent.
    pub last_stall: (std::sync::atomic::AtomicUsize, AtomicU64),
    /// The reactor's phase, published by the shard's tasks.
    pub activity: crate::activity::ActivityProbe,
    /// What `activity` held when the last counted stall was seen.
    pub last_stall_activity: crate::activity::ActivityProbe,
    /// CPU time the shard's thread had during the last counted stall (ns):
    /// far less than the stall's length means the thread was off its CPU
    /// (another thread had it, or a blocking call), not running a task.
    pub last_stall_cpu_ns: AtomicU64,
    /// Page faults the shard's thread took during the last counted stall
    /// (from when it was seen): first-touch memory is CPU time in the
    /// kernel, which a stall on its CPU may be made of.
    pub last_stall_faults: AtomicU64,
}

impl ShardPulse {
    /// Called on the shard's thread before its reactor starts.
    pub fn register_thread(&self) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        self.tid.store(tid, Ordering::Relaxed);
    }
}

/// True when the thread `tid` of this process is busy: running, runnable,
/// or blocked in any system call but the reactor's own sleep (`ppoll`;
/// `io_uring_enter` too, where a reactor waits for its rings), e.g. a task
/// that calls fsync or sleeps on the reactor.
fn thread_is_busy(tid: i32) -> bool {
    // "running", or the number of the system call it is blocked in.
    if let Ok(syscall) = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")) {
        let first = syscall.split_whitespace().next().unwrap_or("");
        return match first.parse::<libc::c_long>() {
            Ok(nr) => nr != libc::SYS_ppoll && nr != libc::SYS_io_uring_enter,
            Err(_) => first == "running",
        };
    }
    // Without that file: the state in its stat line.
    ThreadStat::read(tid).is_some_and(|s| s.state == 'R')
}

/// The pulses of a node's shards and the thread watching them.
pub(crate) struct Watchdog {
    pulses: Vec<Arc<ShardPulse>>,
    stall_threshold: Option<Duration>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A stall in progress as the watchdog saw it.
struct StallSeen {
    /// The last pulse before it.
    since: Instant,
    /// The running slot when it was seen.
    running: usize,
    /// The reactor's phase when it was seen.
    activity: crate::activity::Activity,
    /// When it was seen and the thread's CPU time then.
    cpu_at_sight: Option<(Instant, u64)>,
    /// The thread's page faults (minor + major) when it was seen.
    faults_at_sight: Option<u64>,
}

/// What the watchdog knows of one shard between checks.
struct Watch {
    last_beat: u64,
    last_change: Instant,
    silent_checks: u32,
    /// The stall in progress, if any.
    stalled_since: Option<StallSeen>,
}

impl Watchdog {
    /// Pulses for `shards` shards; stalls of `stall_threshold` or longer
    /// are counted (none: not). Nothing watched until [`Self::start`].
    pub fn new(shards: usize, stall_threshold: Option<Duration>) -> Self {
        Self {
            pulses: (0..shards).map(|_| Arc::default()).collect(),
            stall_threshold,
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        }
    }

    /// What shard `shard` bumps and where its figures go.
    pub fn pulse(&self, shard: usize) -> Arc<ShardPulse> {
        self.pulses[shard].clone()
    }

    /// Watches the shard threads (in shard order).
    pub fn start<T>(&mut self, shard_threads: &[JoinHandle<T>]) {
        install_handler();
        let targets: Vec<libc::pthread_t> =
            shard_threads.iter().map(|t| t.as_pthread_t()).collect();
        let cpu_clocks: Vec<Option<ThreadCpuClock>> = targets
            .iter()
            // SAFETY: the node holds these threads' JoinHandles until after
            // the watchdog stops.
            .map(|&t| unsafe { ThreadCpuClock::of(t) })
            .collect();
        let pulses = self.pulses.clone();
        let stop = self.stop.clone();
        let stall_threshold = self.stall_threshold;
        self.thread = std::thread::Builder::new()
            .name("quire-watchdog".into())
            .spawn(move || {
                let start = Instant::now();
                let mut watches: Vec<Watch> = pulses
                    .iter()
                    .map(|p| Watch {
                        last_beat: p.beat.load(Ordering::Relaxed),
                        last_change: start,
                        silent_checks: 0,
                        stalled_since: None,
                    })
                    .collect();
                let mut last_check = start;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(CHECK_EVERY);
                    let now = Instant::now();
                    // The watchdog itself slept far past its time: the
                    // whole process (or the VM) was held up, not one shard.
                    // What the pulses say about that stretch is no evidence
                    // of a shard stall: count a host pause and look afresh.
                    let overslept = now.duration_since(last_check) > HOST_PAUSE;
                    last_check = now;
                    if overslept {
                        for (pulse, w) in pulses.iter().zip(&mut watches) {
                            pulse.counters.host_pauses.fetch_add(1, Ordering::Relaxed);
                            w.last_beat = pulse.beat.load(Ordering::Relaxed);
                            w.last_change = now;
                            w.silent_checks = 0;
                            w.stalled_since = None;
                        }
                        continue;
                    }
                    for (i, (pulse, w)) in pulses.iter().zip(&mut watches).enumerate() {
                        let beat = pulse.beat.load(Ordering::Relaxed);
                        if beat != w.last_beat {
                            if let Some(StallSeen {
                                since,
                                running,
                                activity,
                                cpu_at_sight: cpu_then,
                                faults_at_sight,
                            }) = w.stalled_since.take()
                            {
                                let faults = match (
                                    faults_at_sight,
                                    ThreadStat::read(pulse.tid.load(Ordering::Relaxed))
                                        .map(|s| s.faults),
                                ) {
                                    (Some(then), Some(now)) => now.saturating_sub(then),
                                    _ => 0,
                                };
                                pulse.last_stall_faults.store(faults, Ordering::Relaxed);
                                let ns = now.duration_since(since).as_nanos() as u64;
                                // The thread's CPU clock is read from when the
                                // stall was seen; its share of that window
                                // stands for the whole stall.
                                let cpu_ns =
                                    match (cpu_then, cpu_clocks[i].and_then(|c| c.now_ns())) {
                                        (Some((seen, then)), Some(cpu_now)) => {
                                            let window = now.duration_since(seen).as_nanos().max(1);
                                            let used = u128::from(cpu_now.saturating_sub(then));
                                            (u128::from(ns) * used.min(window) / window) as u64
                                        }
                                        _ => ns,
                                    };
                                pulse.last_stall_cpu_ns.store(cpu_ns, Ordering::Relaxed);
                                // The shard logs it (it can name the agent).
                                pulse.last_stall_activity.set(activity);
                                pulse.last_stall.0.store(running, Ordering::Relaxed);
                                pulse.last_stall.1.store(ns, Ordering::Relaxed);
                                pulse.counters.count_stall(ns);
                            }
                            w.last_beat = beat;
                            w.last_change = now;
                            w.silent_checks = 0;
                            continue;
                        }
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if w.stalled_since.is_some() {
                            continue;
                        }
                        let tid = pulse.tid.load(Ordering::Relaxed);
                        let silent_for = now.duration_since(w.last_change);
                        // Before its first beat a shard is still starting
                        // (recovery, pools): busy, but not stalled.
                        let started = w.last_beat > 0;
                        if let Some(threshold) = stall_threshold {
                            if started && silent_for >= threshold && tid != 0 && thread_is_busy(tid)
                            {
                                w.stalled_since = Some(StallSeen {
                                    since: w.last_change,
                                    running: pulse.running.load(Ordering::Relaxed),
                                    activity: pulse.activity.get(),
                                    cpu_at_sight: cpu_clocks[i]
                                        .and_then(|c| c.now_ns())
                                        .map(|cpu| (now, cpu)),
                                    faults_at_sight: ThreadStat::read(tid).map(|s| s.faults),
                                });
                                continue;
                            }
                        }
                        // Nor asleep past its timers: before its first beat
                        // its thread may not run a reactor yet (recovery,
                        // waiting for the other shards).
                        if !started {
                            continue;
                        }
                        w.silent_checks += 1;
                        if w.silent_checks >= SILENT_CHECKS {
                            w.silent_checks = 0;
                            pulse.counters.nudges.fetch_add(1, Ordering::Relaxed);
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
        let sum = |counter: fn(&ShardPulse) -> &AtomicU64| -> u64 {
            self.pulses
                .iter()
                .map(|p| counter(p).load(Ordering::Relaxed))
                .sum()
        };
        let nudges = sum(|p| &p.counters.nudges);
        let rescues = sum(|p| &p.counters.rescues);
        let oversleeps = sum(|p| &p.counters.oversleeps);
        let missed = sum(|p| &p.counters.missed_wakeups);
        let untimed = sum(|p| &p.counters.signalled_untimed);
        let past_timer = sum(|p| &p.counters.signalled_past_timer);
        let ready_parks = sum(|p| &p.counters.parks_with_tasks_ready);
        if nudges > 0 || rescues > 0 {
            tracing::info!(
                nudges,
                rescues,
                "safety nets: the watchdog nudged silent reactors, heartbeats rescued lost wake-ups"
            );
        }
        if let Some(path) = std::env::var_os(SAFETY_NET_LOG) {
            let line = format!(
                "nudges {nudges} rescues {rescues} oversleeps {oversleeps} missed {missed} untimed {untimed} past_timer {past_timer} ready_parks {ready_parks} pid {}\n",
                std::process::id()
            );
            append_safety_net_line(Path::new(&path), &line);
        }
    }
}

/// A file to which every node of this process tree appends one line when
/// its watchdog stops: `nudges N rescues M oversleeps O missed W untimed U past_timer T ready_parks R pid P`
/// (see `ReactorCounters`). For soak runs
/// (`scripts/wakeup-soak.sh`) that count the safety nets over hundreds of
/// test runs; unset, nothing is written.
pub const SAFETY_NET_LOG: &str = "QUIRE_SAFETY_NET_LOG";

fn append_safety_net_line(path: &Path, line: &str) {
    use std::io::Write;
    // One short write with O_APPEND: lines of nodes stopping at once do not
    // interleave.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), "cannot append to {SAFETY_NET_LOG}: {e}");
    }
}
