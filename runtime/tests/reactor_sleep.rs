//! How a bare glommio reactor sleeps and wakes, without Quire's safety nets.
//!
//! Two executors, nothing else: no heartbeat, no watchdog to nudge them.
//! They ping-pong through glommio's shared channels while each sleeps on
//! short timers between messages, so nearly every message finds its
//! receiver asleep (a cross-thread wake-up through the notifier's eventfd)
//! and nearly every sleep ends on a timer. A lost wake-up here is a hang,
//! and the test fails after a generous liveness bound instead of hanging;
//! the reactors' own sleep counters (`glommio::sleep_probe`) must show that
//! they slept, that no signal had to end a sleep, and no missed wake-up.
//! (This is the reproduction for issue 15's lost wake-ups: upstream
//! glommio's linked-ring sleep; third_party/README.md.)

use std::sync::mpsc;
use std::time::Duration;

use glommio::channels::shared_channel;
use glommio::sleep_probe::SleepCounters;
use glommio::{LocalExecutorBuilder, Placement};

const ROUNDS: u32 = 3_000;
/// Not a timing assertion: only a hang takes this long.
const LIVENESS: Duration = Duration::from_secs(120);

/// Runs `run` on an executor of its own; its sleep counters once done.
fn counters_after<F, Fut>(name: &str, run: F) -> glommio::ExecutorJoinHandle<SleepCounters>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .spawn(move || async move {
            run().await;
            glommio::sleep_probe::counters()
        })
        .expect("an executor starts (ulimit -l: 512 KiB each)")
}

/// The counters of both executors once they are done; a failure, not a
/// hang, when they are not within [`LIVENESS`].
fn both_within_liveness(
    a: glommio::ExecutorJoinHandle<SleepCounters>,
    b: glommio::ExecutorJoinHandle<SleepCounters>,
) -> (SleepCounters, SleepCounters) {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let a = a.join().unwrap();
        let b = b.join().unwrap();
        let _ = done_tx.send((a, b));
    });
    done_rx.recv_timeout(LIVENESS).unwrap_or_else(|_| {
        panic!("not done in {LIVENESS:?}: a reactor slept through its wake-up or with work")
    })
}

#[test]
fn two_bare_reactors_never_lose_a_wake_up() {
    let (ping_tx, ping_rx) = shared_channel::new_bounded::<u32>(1);
    let (pong_tx, pong_rx) = shared_channel::new_bounded::<u32>(1);
    let pinger = counters_after("pinger", move || {
        async move {
            let ping = ping_tx.connect().await;
            let pong = pong_rx.connect().await;
            for i in 0..ROUNDS {
                ping.send(i).await.unwrap();
                assert_eq!(pong.recv().await, Some(i));
                // A timer between rounds, so the ponger sleeps too.
                glommio::timer::sleep(Duration::from_micros(50 + u64::from(i % 7) * 30)).await;
            }
        }
    });
    let ponger = counters_after("ponger", move || async move {
        let ping = ping_rx.connect().await;
        let pong = pong_tx.connect().await;
        while let Some(i) = ping.recv().await {
            if i % 3 == 0 {
                glommio::timer::sleep(Duration::from_micros(40)).await;
            }
            pong.send(i).await.unwrap();
        }
    });
    let (pinged, ponged) = both_within_liveness(pinger, ponger);
    for (who, seen) in [("pinger", pinged), ("ponger", ponged)] {
        eprintln!("{who}: {seen:?}");
        assert!(
            seen.sleeps >= u64::from(ROUNDS) / 2,
            "{who} slept too little to test anything: {seen:?}"
        );
        assert_eq!(seen.ended_by_signal, 0, "{who}: {seen:?}");
        assert_eq!(seen.missed_wakeups, 0, "{who}: {seen:?}");
    }
}

#[test]
fn a_reactor_alone_wakes_for_each_of_its_timers() {
    let alone = counters_after("alone", || async {
        for i in 0..ROUNDS {
            glommio::timer::sleep(Duration::from_micros(20 + u64::from(i % 5) * 40)).await;
        }
    });
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(alone.join().unwrap());
    });
    let seen = done_rx
        .recv_timeout(LIVENESS)
        .unwrap_or_else(|_| panic!("{ROUNDS} timers not done in {LIVENESS:?}"));
    eprintln!("alone: {seen:?}");
    assert!(seen.sleeps >= u64::from(ROUNDS) / 2, "{seen:?}");
    assert_eq!(seen.ended_by_signal, 0, "{seen:?}");
    assert_eq!(seen.missed_wakeups, 0, "{seen:?}");
}

/// The shape of a shard: a task on a periodic timer (the heartbeat) beside
/// the work that another executor keeps waking through the shared
/// channels. Each cross-thread wake lands in the latency ring, which
/// glommio reads as "preempt"; upstream then reported "no work" before any
/// task queue ran and parked with the timer-woken task still queued (with
/// no other timer: asleep until a signal, the untimed sleeps the watchdog
/// used to nudge). The executors count every park they skipped because
/// tasks were ready: none must be needed.
#[test]
fn a_reactor_never_parks_with_tasks_ready() {
    fn with_heartbeat() -> std::rc::Rc<std::cell::Cell<u64>> {
        let beats = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let counted = beats.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_micros(20)).await;
                counted.set(counted.get() + 1);
            }
        })
        .detach();
        beats
    }
    let (ping_tx, ping_rx) = shared_channel::new_bounded::<u32>(1);
    let (pong_tx, pong_rx) = shared_channel::new_bounded::<u32>(1);
    let pinger = counters_after("pinger-beating", move || async move {
        let beats = with_heartbeat();
        let ping = ping_tx.connect().await;
        let pong = pong_rx.connect().await;
        for i in 0..ROUNDS * 5 {
            ping.send(i).await.unwrap();
            assert_eq!(pong.recv().await, Some(i));
        }
        assert!(beats.get() > 0, "the heartbeat ran");
    });
    let ponger = counters_after("ponger-beating", move || async move {
        let _beats = with_heartbeat();
        let ping = ping_rx.connect().await;
        let pong = pong_tx.connect().await;
        while let Some(i) = ping.recv().await {
            pong.send(i).await.unwrap();
        }
    });
    let (pinged, ponged) = both_within_liveness(pinger, ponger);
    for (who, seen) in [("pinger", pinged), ("ponger", ponged)] {
        eprintln!("{who}: {seen:?}");
        assert!(seen.sleeps > 0, "{who} never slept: {seen:?}");
        assert_eq!(seen.parks_with_tasks_ready, 0, "{who}: {seen:?}");
        assert_eq!(seen.ended_by_signal, 0, "{who}: {seen:?}");
    }
}
