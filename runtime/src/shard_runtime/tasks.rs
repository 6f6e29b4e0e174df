//! The tasks of a shard besides `run_shard` itself: the dispatcher (the hot
//! loop), a receiver and a flusher per peer, the timers, the command server,
//! and stall reports.

use super::rescue::{RescueWatch, Waiting};
use super::*;
use quire_shards::ThreadCpuClock;

/// Wakes this reactor every heartbeat until the returned flag is cleared:
/// for the phases when the timer task is not running.
pub(super) fn heartbeat_while_set() -> Rc<Cell<bool>> {
    let flag = Rc::new(Cell::new(true));
    let running = flag.clone();
    glommio::spawn_local(async move {
        while running.get() {
            glommio::timer::sleep(HEARTBEAT).await;
        }
    })
    .detach();
    flag
}

/// Reactor polls the dispatcher waits for after agents took the shard's
/// turn quota (see `dispatcher`).
const REACTOR_HOPS_AFTER_LONG_HANDLER: usize = 4;

pub(super) async fn dispatcher(
    shared: &Rc<Shared>,
    budget: usize,
    intake_limit: usize,
    spin: Option<Duration>,
) {
    loop {
        if shared.stopped.get() {
            return;
        }
        // Whatever woke us is about to be handled by this iteration.
        shared.work.clear();
        let activity = &shared.pulse.activity;
        activity.set(Activity::Intake);
        let mut progress = shared.take_inbound(intake_limit).await;
        let yield_asked;
        {
            let mut core = shared.core.borrow_mut();
            activity.set(Activity::Agents);
            progress += core.run(budget);
            yield_asked = core.take_yield_request();
            // A busy shard keeps its timers itself; the timer task only
            // covers a parked one.
            activity.set(Activity::Timers);
            progress += core.fire_due_timers();
        }
        shared.note_writes();
        activity.set(Activity::Flush);
        progress += shared.flush_outbound();
        if let Some(net) = &shared.net {
            net.flush_links(&shared.cell);
        }
        activity.set(Activity::Reactor);
        if shared.core.borrow_mut().take_timer_rearm() {
            shared.timer.notify();
        }
        if yield_asked {
            // Agents took the turn quota: whatever arrived meanwhile (client commands,
            // socket reads, links) is known only to the reactor, which a
            // plain yield does not reach (glommio runs the ready tasks of
            // the queue again first). A timer makes this task wait for a
            // reactor poll, so every task woken by it runs before the next
            // agent's turn; a request takes a few such hops (socket read,
            // command to each shard, answer, socket write), so the
            // dispatcher waits out as many polls.
            activity.set(Activity::Reactor);
            for _ in 0..REACTOR_HOPS_AFTER_LONG_HANDLER {
                glommio::timer::sleep(Duration::from_micros(1)).await;
            }
        } else if shared.io_pending.replace(false) {
            // Connection writers and links were woken: let them write now.
            future::yield_now().await;
        }
        if progress > 0 {
            // Busy: let glommio in only when its time slice is up.
            glommio::yield_if_needed().await;
            continue;
        }
        if shared.core.borrow().has_ready() {
            continue;
        }
        if let Some(spin) = spin {
            activity.set(Activity::Spin);
            let news = spin_for_news(shared, spin);
            activity.set(Activity::Reactor);
            match news {
                // Batches from peers and due timers are the dispatcher's own.
                News::Work => continue,
                // Client commands are served by their task, which glommio
                // wakes only from its reactor: park, and the command task
                // wakes the dispatcher when it is done.
                News::Commands | News::Nothing => {}
            }
        }
        shared.work.wait().await;
    }
}

/// What ended a spin.
enum News {
    /// Batches from peers, a wake-up from another task, or a timer due.
    Work,
    /// Client commands are waiting.
    Commands,
    /// The spin time ran out.
    Nothing,
}

/// Polls for work without yielding for up to `spin`.
fn spin_for_news(shared: &Shared, spin: Duration) -> News {
    let until = Instant::now() + spin;
    let next_timer = shared.core.borrow_mut().next_timer();
    let mut rounds = 0u32;
    loop {
        if shared.inbound.iter().any(Inbound::has_batches)
            || shared.work.is_set()
            || shared.io_pending.get()
        {
            return News::Work;
        }
        rounds += 1;
        // The client queue takes a lock and the clock costs a call: look
        // at them less often than at the doorbells.
        if rounds.is_multiple_of(16) && !shared.commands.is_empty() {
            return News::Commands;
        }
        // With a timer pending the clock is read 8x as often: a timer is a
        // promise of a time (~1 µs late at one read per 64 rounds, ~0.15 µs
        // at one per 8), and a read costs tens of ns.
        if rounds.is_multiple_of(if next_timer.is_some() { 8 } else { 64 }) {
            let now = Instant::now();
            if next_timer.is_some_and(|t| now >= t) {
                return News::Work;
            }
            if now >= until {
                return News::Nothing;
            }
        }
        std::hint::spin_loop();
    }
}

pub(super) async fn flusher(shared: Rc<Shared>, index: usize) {
    let out = &shared.outbound[index];
    loop {
        out.wake_flusher.wait().await;
        let mut next = out.parked.borrow_mut().take();
        while let Some(batch) = next {
            match out.sender.send(batch).await {
                Ok(()) => out.sent(),
                Err(GlommioError::Closed(ResourceType::Channel(batch))) => {
                    shared
                        .core
                        .borrow_mut()
                        .reject_undeliverable(batch, Rejection::ShuttingDown);
                }
                Err(_) => {}
            }
            // Whatever queued up meanwhile goes next, still in order.
            let more = shared.core.borrow_mut().take_outbox(out.peer);
            next = (!more.is_empty()).then_some(more);
        }
        if out.blocked.replace(false) {
            shared.in_flight.set(shared.in_flight.get() - 1);
        }
        shared.work.notify();
        if shared.stopped.get() {
            out.sender.close();
            return;
        }
    }
}

pub(super) async fn receiver(shared: Rc<Shared>, index: usize) {
    let inbound = &shared.inbound[index];
    while let Some(batch) = inbound.receiver.recv().await {
        inbound.taken.set(inbound.taken.get() + 1);
        shared.deliver(batch);
        shared.work.notify();
    }
}

/// Logs the stalls the watchdog counted since the last call, naming the
/// agent whose turn it was (the watchdog cannot: names live here).
pub(super) fn report_stalls(shared: &Shared, reported: &mut u64) {
    let pulse = &shared.pulse;
    let counted = pulse.counters.stalls.load(Ordering::Relaxed);
    if counted == *reported {
        return;
    }
    let missed = counted - *reported - 1;
    *reported = counted;
    let ns = pulse.last_stall.1.load(Ordering::Relaxed);
    let running = pulse.last_stall.0.load(Ordering::Relaxed);
    let shard = shared.core.borrow().shard();
    let what = match shared.core.borrow().slot_name(running) {
        Some(agent) => format!("agent {agent}'s turn"),
        None => format!(
            "the runtime itself ({}; no agent's turn)",
            pulse.last_stall_activity.get().as_str()
        ),
    };
    // A stall the thread spent mostly off its CPU is the host's doing
    // (another thread had the CPU, or a blocking call), not a long task.
    let cpu_ns = pulse.last_stall_cpu_ns.load(Ordering::Relaxed).min(ns);
    let on_cpu = if cpu_ns * 2 < ns {
        format!(
            " (on its CPU for only {} ms of them: the thread waited for a CPU another thread \
             had, or blocked in a system call)",
            cpu_ns / 1_000_000
        )
    } else {
        String::new()
    };
    let faults = pulse.last_stall_faults.load(Ordering::Relaxed);
    let on_cpu = if faults > 0 {
        format!("{on_cpu} ({faults} page faults while it was seen)")
    } else {
        on_cpu
    };
    tracing::warn!(
        shard,
        stalled_ms = ns / 1_000_000,
        on_cpu_ms = cpu_ns / 1_000_000,
        page_faults = faults,
        "reactor stall: shard {shard} did not yield for {} ms, running {what}{on_cpu}{}",
        ns / 1_000_000,
        if missed > 0 {
            format!(" ({missed} more stall(s) since the last report)")
        } else {
            String::new()
        }
    );
}

pub(super) async fn timers(shared: Rc<Shared>) {
    // The wasm host's sweep (idle deactivation, pool refills) rides on this
    // task's wake-ups, at most every tenth of a second.
    let sweep_every = shared.wasm.sweep_interval().min(Duration::from_millis(100));
    let mut last_sweep = Instant::now();
    let mut stalls_reported = 0;
    let mut rescues = RescueWatch::default();
    let cpu = ThreadCpuClock::current();
    while !shared.stopped.get() {
        let next = shared.core.borrow_mut().next_timer();
        // Never sleep longer than a heartbeat: glommio 0.9 can lose the
        // wake-up a foreign thread (a client, the blocking pool) sends to a
        // reactor that is just going to sleep (seen in tests about once in
        // ten runs as a shard asleep on a waiting command). A reactor that
        // wakes each heartbeat picks such a wake-up up within it.
        let now = Instant::now();
        let wait = next.map_or(HEARTBEAT, |at| {
            at.saturating_duration_since(now).min(HEARTBEAT)
        });
        if !wait.is_zero() {
            future::or(glommio::timer::sleep(wait), shared.timer.wait()).await;
        }
        if shared.stopped.get() {
            return;
        }
        // A batch a peer rang for but whose channel wake-up was lost (the
        // receiver task asleep, the dispatcher parked) is taken now, within
        // a heartbeat, instead of never; and counted, as is a client command
        // this wake-up ends the wait of (see `rescue`).
        if shared.inbound.iter().any(Inbound::has_batches) {
            shared.work.notify();
        }
        if let Some(what) = rescues.look(waiting(&shared, cpu.as_ref()), HEARTBEAT) {
            let n = shared
                .pulse
                .counters
                .rescues
                .fetch_add(1, Ordering::Relaxed);
            if n == 0 {
                tracing::warn!(
                    shard = shared.core.borrow().shard(),
                    waiting = ?what,
                    "the heartbeat found work a lost wake-up had left waiting a whole heartbeat (counted in quire_reactor_rescues_total)"
                );
            }
        }
        publish_sleeps(&shared);
        let now = Instant::now();
        shared.pulse.activity.set(Activity::Timers);
        if shared.core.borrow_mut().fire_timers(now) > 0 {
            shared.work.notify();
            shared.note_writes();
        }
        report_stalls(&shared, &mut stalls_reported);
        if now.duration_since(last_sweep) >= sweep_every {
            last_sweep = now;
            shared.pulse.activity.set(Activity::Sweep);
            shared.wasm.sweep(now);
        }
        shared.pulse.activity.set(Activity::Reactor);
    }
}

/// Copies what this thread's reactor saw of its own sleeps into the
/// shard's counters (the watchdog and the scrape read them there).
fn publish_sleeps(shared: &Shared) {
    let seen = glommio::sleep_probe::counters();
    let counters = &shared.pulse.counters;
    counters.oversleeps.store(seen.overslept, Ordering::Relaxed);
    counters
        .missed_wakeups
        .store(seen.missed_wakeups, Ordering::Relaxed);
    counters
        .signalled_untimed
        .store(seen.signalled_untimed, Ordering::Relaxed);
    counters
        .signalled_past_timer
        .store(seen.signalled_past_timer, Ordering::Relaxed);
    counters
        .parks_with_tasks_ready
        .store(seen.parks_with_tasks_ready, Ordering::Relaxed);
}

/// What waits for the shard now, for the heartbeat's rescue count
/// (`cpu`: the shard thread's own clock).
fn waiting(shared: &Shared, cpu: Option<&ThreadCpuClock>) -> Waiting {
    let (batches_rung, batches_taken) = shared
        .inbound
        .iter()
        .map(Inbound::counts)
        .fold((0, 0), |(r, t), (ri, ti)| (r + ri, t + ti));
    Waiting {
        at: Instant::now(),
        batches_rung,
        batches_taken,
        commands_queued: shared.commands.len(),
        commands_served: shared.commands_served.get(),
        thread_cpu: Duration::from_nanos(cpu.and_then(ThreadCpuClock::now_ns).unwrap_or(0)),
    }
}

/// The commands task gives the reactor back after this long (or 64
/// commands), so that a queue of heavy commands (batch registrations,
/// deploys) never holds the shard's agents up past a stall threshold.
const COMMANDS_SLICE: Duration = Duration::from_micros(250);

pub(super) async fn commands(shared: Rc<Shared>) {
    let mut since_yield = 0u32;
    let mut slice_start = Instant::now();
    while let Ok(cmd) = shared.commands.recv_async().await {
        let stop = matches!(cmd, Command::Stop);
        shared.pulse.activity.set(Activity::Commands);
        serve(&shared, cmd);
        shared.commands_served.set(shared.commands_served.get() + 1);
        shared.note_writes();
        shared.pulse.activity.set(Activity::Reactor);
        if stop {
            // Anything still queued from clients is answered by dropping its
            // reply channel, which the client reports as `ShuttingDown`.
            return;
        }
        shared.work.notify();
        since_yield += 1;
        if since_yield >= 64 || slice_start.elapsed() >= COMMANDS_SLICE {
            since_yield = 0;
            future::yield_now().await;
            slice_start = Instant::now();
        }
    }
    // Every client handle is gone: stop as if told to.
    shared.stop();
}
