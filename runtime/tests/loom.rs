//! Model checks (loom) of the two hand-offs between threads that a lost
//! wake-up or a missed batch would come from: every interleaving and every
//! memory order the C++/Rust model allows, explored exhaustively.
//!
//! - **The doorbell** (`runtime/src/shard_runtime/doorbell.rs`, compiled
//!   here against loom's atomics): a receiving shard that sees the bell
//!   rang finds the batch on the channel.
//! - **The reactor's sleep** (`third_party/glommio`, `Reactor::wait` and
//!   `SleepNotifier::notify`, modelled line for line): a reactor about to
//!   sleep marks itself sleeping, fences, and looks at its cross-thread
//!   queues once more; a thread that feeds a queue (a shard-to-shard
//!   channel, a client's command with its foreign waker) publishes, fences,
//!   and writes the reactor's eventfd if the mark is set. Either the
//!   reactor sees the item or the feeder sees the mark: never neither. We
//!   replaced upstream's membarrier on the sleeper's side with the
//!   feeder's fence, so this pair is ours to prove; a second model shows
//!   the check has teeth (without the feeder's fence a wake-up is lost).

use loom::sync::atomic::{fence, AtomicBool, AtomicUsize};
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::Ordering;

/// What `doorbell.rs` is written against (`super::atomics`).
mod atomics {
    pub(super) use loom::sync::atomic::{AtomicU64, Ordering};
}

#[path = "../src/shard_runtime/doorbell.rs"]
mod doorbell;

use doorbell::Doorbell;

#[test]
fn a_rung_doorbell_means_the_batch_is_on_the_channel() {
    loom::model(|| {
        // The channel's slot, written by the sender before it rings: relaxed,
        // so only the doorbell's own ordering can make it visible.
        let slot = Arc::new(AtomicUsize::new(0));
        let bell = Arc::new(Doorbell::default());
        let sender = {
            let (slot, bell) = (slot.clone(), bell.clone());
            thread::spawn(move || {
                slot.store(42, Ordering::Relaxed);
                bell.ring();
            })
        };
        if bell.rang_beyond(0) {
            assert_eq!(slot.load(Ordering::Relaxed), 42, "rung, but no batch");
        }
        sender.join().unwrap();
        assert_eq!(bell.rung(), 1);
    });
}

/// One reactor about to sleep and one thread feeding it, as glommio does
/// it with our patch; `feeder_fences: false` is upstream's feeder without
/// the sleeper's membarrier. Returns whether an item was left with the
/// reactor asleep and no eventfd write to wake it.
fn sleep_and_feed(feeder_fences: bool) -> bool {
    // `should_notify` (the sleeping mark), the queue's content, the eventfd.
    let sleeping = Arc::new(AtomicBool::new(false));
    let queued = Arc::new(AtomicBool::new(false));
    let eventfd = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (sleeping, queued, eventfd) = (sleeping.clone(), queued.clone(), eventfd.clone());
        thread::spawn(move || {
            // A channel push or a queued foreign waker (its own atomics are
            // relaxed as far as this pair is concerned).
            queued.store(true, Ordering::Relaxed);
            if feeder_fences {
                fence(Ordering::SeqCst);
            }
            if sleeping
                .compare_exchange(true, false, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                // write_eventfd: a system call, ordered by the kernel.
                eventfd.store(true, Ordering::SeqCst);
            }
        })
    };
    // The reactor: prepare_to_sleep, the fence, process_remote_channels.
    sleeping.store(true, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    let slept = !queued.load(Ordering::Relaxed);
    feeder.join().unwrap();
    // Asleep in io_uring_enter with an item queued: only the eventfd can
    // end that sleep.
    slept && !eventfd.load(Ordering::SeqCst)
}

#[test]
fn a_reactor_going_to_sleep_is_always_woken_for_what_was_queued() {
    loom::model(|| {
        assert!(!sleep_and_feed(true), "a wake-up was lost");
    });
}

#[test]
#[should_panic(expected = "a wake-up was lost")]
fn without_the_feeders_fence_a_wake_up_can_be_lost() {
    loom::model(|| {
        assert!(!sleep_and_feed(false), "a wake-up was lost");
    });
}
