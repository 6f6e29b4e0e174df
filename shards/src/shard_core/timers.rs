//! Time in the core: call timeouts (a FIFO of deadlines, with the out-of-
//! order ones in a map) and delayed sends.

use super::*;

impl ShardCore {
    /// When the earliest timer falls due.
    pub fn next_timer(&mut self) -> Option<Instant> {
        self.skip_finished_timeouts();
        let fifo = self.call_timeouts.front().map(|(at, _)| *at);
        let tree = self.timers.first_key_value().map(|(k, _)| k.0);
        match (fifo, tree) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True (once) when a timer earlier than every previous one was added, so
    /// the driver must re-arm its wake-up.
    pub fn take_timer_rearm(&mut self) -> bool {
        std::mem::take(&mut self.timer_rearm)
    }

    /// Fires every timer due at `now`; returns how many fired.
    pub fn fire_timers(&mut self, now: Instant) -> usize {
        let mut fired = 0;
        while let Some(&(at, of)) = self.call_timeouts.front() {
            if at > now {
                break;
            }
            self.call_timeouts.pop_front();
            fired += usize::from(self.time_out(of));
        }
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                Timer::Timeout(of) => {
                    self.timeouts_in_timers -= 1;
                    fired += usize::from(self.time_out(of));
                }
                Timer::Delayed(env) => {
                    fired += 1;
                    if let Err((reason, env)) = self.route_ordinary(env) {
                        self.bounce(env, reason);
                    }
                }
            }
        }
        fired
    }

    /// Ends a call with `Timeout` if it is still waiting; false if it was over.
    pub(super) fn time_out(&mut self, of: TimeoutOf) -> bool {
        match of {
            TimeoutOf::Agent(call) => {
                let Some(p) = self.take_pending_call(call) else {
                    return false;
                };
                self.stats.call_timeouts += 1;
                let caller = &self.slots[p.caller_slot];
                let caller = match (
                    &caller.id,
                    caller.live && caller.generation == p.caller_generation,
                ) {
                    (Some(id), true) => id.clone(),
                    _ => {
                        self.stats.control_dropped += 1;
                        return true;
                    }
                };
                let env = Envelope {
                    id: self.next_message_id(),
                    from: Address::Nobody,
                    to: Address::Agent(caller),
                    conversation: None,
                    in_reply_to: Some(call),
                    priority: crate::Priority::Normal,
                    deadline: None,
                    kind: Kind::CallFailed(CallError::Timeout),
                    payload: Bytes::new(),
                };
                if self.deliver_local(env).is_err() {
                    self.stats.control_dropped += 1;
                }
            }
            TimeoutOf::Client(ticket) => {
                let Some(call) = self.client_calls.remove(&ticket) else {
                    return false;
                };
                self.stats.call_timeouts += 1;
                (call.waiter)(Err(CallError::Timeout.into()));
            }
        }
        true
    }

    pub(super) fn is_waiting(&self, of: TimeoutOf) -> bool {
        match of {
            TimeoutOf::Agent(call) => self.pending_calls.contains_key(&call),
            TimeoutOf::Client(ticket) => self.client_calls.contains_key(&ticket),
        }
    }

    pub(super) fn skip_finished_timeouts(&mut self) {
        while let Some(&(_, of)) = self.call_timeouts.front() {
            if self.is_waiting(of) {
                break;
            }
            self.call_timeouts.pop_front();
        }
    }

    pub(super) fn add_call_timeout(&mut self, at: Instant, of: TimeoutOf) {
        // Entries of finished calls at the front are dropped as they come up
        // (or by `compact_timeouts`); checking them here costs lookups, so
        // only once the queue has grown.
        let checks = if self.call_timeouts.len() > 256 { 2 } else { 0 };
        for _ in 0..checks {
            match self.call_timeouts.front() {
                Some(&(_, front)) if !self.is_waiting(front) => {
                    self.call_timeouts.pop_front();
                }
                _ => break,
            }
        }
        let in_order = self
            .call_timeouts
            .back()
            .is_none_or(|(last, _)| *last <= at);
        if !in_order {
            self.timeouts_in_timers += 1;
            self.add_timer(at, Timer::Timeout(of));
            self.compact_timeouts();
            return;
        }
        if self
            .call_timeouts
            .front()
            .is_none_or(|(first, _)| at < *first)
            && self.timers.first_key_value().is_none_or(|(k, _)| at < k.0)
        {
            self.timer_rearm = true;
        }
        self.call_timeouts.push_back((at, of));
        self.compact_timeouts();
    }

    /// Keeps finished calls' entries from outnumbering live ones (they pile
    /// up behind a call that waits long while many short ones finish).
    pub(super) fn compact_timeouts(&mut self) {
        let live = self.pending_calls.len() + self.client_calls.len();
        let limit = 2 * live + 1024;
        if self.call_timeouts.len() > limit {
            let mut queue = std::mem::take(&mut self.call_timeouts);
            queue.retain(|(_, of)| self.is_waiting(*of));
            self.call_timeouts = queue;
        }
        if self.timeouts_in_timers > limit {
            let mut timers = std::mem::take(&mut self.timers);
            timers.retain(|_, t| match t {
                Timer::Timeout(of) => self.is_waiting(*of),
                Timer::Delayed(_) => true,
            });
            self.timers = timers;
            self.timeouts_in_timers = self
                .timers
                .values()
                .filter(|t| matches!(t, Timer::Timeout(_)))
                .count();
        }
    }

    /// Fires the timers due at the start of the last `run` (no clock read):
    /// for a driver that is too busy to wait on a timer of its own.
    pub fn fire_due_timers(&mut self) -> usize {
        let now = self.turn_clock;
        if self.next_timer().is_some_and(|t| t <= now) {
            self.fire_timers(now)
        } else {
            0
        }
    }

    pub(super) fn add_timer(&mut self, at: Instant, timer: Timer) -> TimerKey {
        self.timer_seq += 1;
        let key = (at, self.timer_seq);
        if self
            .timers
            .first_key_value()
            .is_none_or(|(first, _)| key < *first)
        {
            self.timer_rearm = true;
        }
        self.timers.insert(key, timer);
        key
    }
}
