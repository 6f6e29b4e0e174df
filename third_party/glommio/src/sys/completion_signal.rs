//! Quire: how a reactor sleeps.
//!
//! Upstream glommio slept in `io_uring_enter` on its main ring, waiting
//! for one completion that "links the rings": a `POLL_ADD` of the latency
//! ring's file descriptor, which turns readable when the latency ring has
//! a completion (its timer, or the read of the eventfd other threads write
//! to wake it). Every wake-up then crossed two rings and a poll of one
//! ring by another, each step a task-work hand-off in the kernel; a chain
//! that breaks leaves the thread asleep past its timers until a signal
//! ends the sleep (glommio issues #326 and #547, the hangs PR #552 fixed
//! for its authors by the same change as this one).
//!
//! Here the kernel itself signals one eventfd whenever it posts a
//! completion to the main or the latency ring (`IORING_REGISTER_EVENTFD`),
//! and the reactor sleeps in `ppoll` on that eventfd and on the notifier's
//! eventfd that other threads write, with the next timer as `ppoll`'s own
//! timeout: no ring is linked to another, and a timer needs no request in
//! a ring to end the sleep. The reactor drains the counter before it
//! looks at the rings for the last time, so a completion posted after that
//! look leaves the counter non-zero and `ppoll` returns at once.
//!
//! A completion the kernel finishes as task work of this thread (a timer,
//! a poll-driven read) interrupts `ppoll` through `TIF_NOTIFY_SIGNAL`; the
//! task work posts the completion and signals the eventfd before `ppoll`
//! is restarted, so it returns at once.

use std::{io, os::unix::io::RawFd, time::Duration};

/// Why a sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// A completion was posted or another thread wrote the notifier.
    Ready,
    /// The timer the sleep was given ran out.
    TimedOut,
    /// A signal ended it (the runtime's watchdog nudge, a debugger).
    Signal,
}

/// The eventfd the kernel signals on every completion of the rings it is
/// registered with.
#[derive(Debug)]
pub(crate) struct CompletionSignal {
    fd: RawFd,
}

impl CompletionSignal {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory preconditions.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd
    }

    /// Resets the counter. Whatever the kernel counted before is visible in
    /// the rings once this returns: it signals after it moved a ring's tail,
    /// and the eventfd's lock orders the two.
    pub(crate) fn drain(&self) -> io::Result<()> {
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a u64 this frame owns.
        let n = unsafe { libc::read(self.fd, &mut count as *mut u64 as *mut libc::c_void, 8) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(()),
                _ => Err(err),
            };
        }
        Ok(())
    }

    /// Sleeps until a completion is posted, `notifier` turns readable, the
    /// timeout runs out or a signal arrives.
    pub(crate) fn sleep(&self, notifier: RawFd, timeout: Option<Duration>) -> io::Result<Woken> {
        let mut fds = [
            libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: notifier,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timeout = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let timeout_ptr = timeout
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: two pollfds this frame owns; the timespec outlives the call.
        let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, timeout_ptr, std::ptr::null()) };
        match n {
            0 => Ok(Woken::TimedOut),
            n if n > 0 => Ok(Woken::Ready),
            _ => {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => Ok(Woken::Signal),
                    _ => Err(err),
                }
            }
        }
    }
}

impl Drop for CompletionSignal {
    fn drop(&mut self) {
        // SAFETY: the fd is this struct's own; the rings it was registered
        // with hold their own reference.
        unsafe { libc::close(self.fd) };
    }
}

/// Asks the kernel to end this thread's timed sleeps within 1 ns of their
/// deadline instead of the default 50 µs slack: a reactor's next timer is
/// its `ppoll` timeout.
pub(crate) fn precise_timers_for_this_thread() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}
