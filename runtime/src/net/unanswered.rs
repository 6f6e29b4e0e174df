//! The requests of one client connection still owed an answer: counted
//! for the request window, and awaited (not polled) when the client has
//! finished sending and the connection drains before it closes.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// A count of owed answers and the one task that may wait on it.
#[derive(Debug, Default)]
pub(super) struct Unanswered {
    count: Cell<usize>,
    waiter: RefCell<Option<Waker>>,
}

impl Unanswered {
    /// Requests owed an answer now.
    pub fn get(&self) -> usize {
        self.count.get()
    }

    /// One more request is owed an answer.
    pub fn owe(&self) {
        self.count.set(self.count.get() + 1);
    }

    /// One owed answer was queued on the connection. Wakes the waiter at
    /// every answer, so that it can look at whatever else it waits for.
    pub fn answered(&self) {
        self.count.set(self.count.get().saturating_sub(1));
        if let Some(waker) = self.waiter.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Resolves once nothing is owed, or `give_up()` is true when looked
    /// at (after each answer).
    pub async fn settled(&self, give_up: impl Fn() -> bool) {
        poll_fn(|cx| {
            if self.count.get() == 0 || give_up() {
                return Poll::Ready(());
            }
            *self.waiter.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn settles_at_the_last_answer_and_not_before() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let owed = Rc::new(Unanswered::default());
                owed.owe();
                owed.owe();
                let done = Rc::new(Cell::new(false));
                let waiting = glommio::spawn_local({
                    let (owed, done) = (owed.clone(), done.clone());
                    async move {
                        owed.settled(|| false).await;
                        done.set(true);
                    }
                });
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                owed.answered();
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                assert!(!done.get(), "settled with one answer still owed");
                owed.answered();
                waiting.await;
                assert!(done.get());
                assert_eq!(owed.get(), 0);
                // Nothing owed: settles at once.
                owed.settled(|| false).await;
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
