//! A one-slot wake-up flag for tasks of one executor.
//!
//! Shard tasks wake each other (the receiver wakes the dispatcher, the
//! dispatcher wakes a flusher) many times per message; this costs a `Cell`
//! write and, only when the waiter is parked, one waker call. It is `!Send`
//! on purpose: it never leaves its shard.

use std::cell::Cell;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Set by [`Signal::notify`], consumed by [`Signal::wait`]. Notifications
/// that arrive while nobody waits are kept (once), never lost.
#[derive(Default)]
pub struct Signal {
    set: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Signal {
    /// Wakes the waiter, or lets the next `wait` return at once.
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// True when a notification waits to be consumed.
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Consumes a waiting notification without waiting (for a task that
    /// is about to do the work anyway).
    pub fn clear(&self) {
        self.set.set(false);
    }

    /// Returns once `notify` has been called since the last `wait` returned.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn a_notification_before_the_wait_is_kept() {
        let s = Signal::default();
        s.notify();
        future::block_on(s.wait());
        assert!(future::block_on(future::poll_once(s.wait())).is_none());
    }
}
