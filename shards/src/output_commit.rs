//! Output commit: replies to clients wait for the commit that carries the
//! writes they report.
//!
//! On a journaling shard a handler's state writes reach the disk some time
//! after the handler returns (the runtime commits the journal in batches,
//! off the reactor). A reply that left at once could tell a client about a
//! state a crash then rolls back. So while a handler runs, the replies it
//! addresses to clients (programs on the socket, embedded clients, and the
//! node links that answer another node's agents) are *captured*; when it
//! returns they are stamped with the journal position reached and *held*
//! until the runtime reports a commit at or past that position. Messages
//! between agents of the node are never held: they report nothing to the
//! outside world.
//!
//! A reply that needs no commit leaves at once: the handler journaled
//! nothing and its agent keeps no state on disk, or everything journaled is
//! already committed. While the shard's storage is unavailable (a commit
//! failed and has not yet been retried successfully), held replies and new
//! ones that need a commit are answered `StorageUnavailable` instead: the
//! client learns that the outcome is not known to be durable.
//!
//! This type only decides; the core routes what it hands back.

use std::collections::VecDeque;

use crate::envelope::{Address, Envelope, Kind};
use crate::error::Rejection;

/// The replies a shard holds back until their writes are committed.
#[derive(Default)]
pub(crate) struct HeldReplies {
    enabled: bool,
    /// Set while a handler runs on a journaling shard.
    capturing: bool,
    captured: Vec<Envelope>,
    /// Replies waiting for a commit, in journal order: (position, reply).
    held: VecDeque<(u64, Envelope)>,
    /// Every write up to this journal position is on disk.
    committed: u64,
    /// The partition refuses writes right now.
    unavailable: bool,
}

impl HeldReplies {
    /// Holds replies only when `enabled` (the shard journals writes).
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            ..Self::default()
        }
    }

    /// A handler is about to run.
    #[inline(always)]
    pub fn begin_handler(&mut self) {
        self.capturing = self.enabled;
    }

    /// Takes `env` if it is a reply to a client made by the running
    /// handler; gives it back otherwise (to be routed as usual).
    #[inline(always)]
    pub fn capture(&mut self, env: Envelope) -> Option<Envelope> {
        if self.capturing && env.kind == Kind::Reply && matches!(env.to, Address::Client(_)) {
            self.captured.push(env);
            None
        } else {
            Some(env)
        }
    }

    /// The handler returned with the journal at `position`; `needs_commit`
    /// when its answer may report journaled state (it wrote, or its agent
    /// keeps state on disk). Replies that may leave now go to `out`.
    #[inline(always)]
    pub fn end_handler(&mut self, position: u64, needs_commit: bool, out: &mut Vec<Envelope>) {
        self.capturing = false;
        if self.captured.is_empty() {
            return;
        }
        if !needs_commit || (position <= self.committed && self.held.is_empty()) {
            out.append(&mut self.captured);
        } else if self.unavailable {
            out.extend(self.captured.drain(..).map(unavailable));
        } else {
            // Stamped no lower than the newest held reply, so that the queue
            // stays in position order and releases stay in handling order.
            let position = position.max(self.held.back().map_or(0, |(p, _)| *p));
            self.held
                .extend(self.captured.drain(..).map(|env| (position, env)));
        }
    }

    /// Everything journaled up to `position` is committed: the replies it
    /// covers go to `out`, oldest first.
    pub fn committed(&mut self, position: u64, out: &mut Vec<Envelope>) {
        self.committed = self.committed.max(position);
        self.unavailable = false;
        while self.held.front().is_some_and(|(p, _)| *p <= self.committed) {
            out.push(self.held.pop_front().expect("front exists").1);
        }
    }

    /// The partition failed a commit: every held reply is answered
    /// `StorageUnavailable` (into `out`), and so is every reply that needs
    /// a commit until [`Self::committed`] reports one again.
    pub fn storage_failed(&mut self, out: &mut Vec<Envelope>) {
        self.unavailable = true;
        out.extend(self.held.drain(..).map(|(_, env)| unavailable(env)));
    }

    /// True while commits fail.
    #[cfg(test)]
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    /// Replies waiting for a commit.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// The reply turned into the rejection its client gets instead.
fn unavailable(mut env: Envelope) -> Envelope {
    env.kind = Kind::CallRejected(Rejection::StorageUnavailable);
    env.payload = bytes::Bytes::new();
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{ClientTicket, MessageId, Priority};

    fn reply_to_client(n: u64) -> Envelope {
        Envelope {
            id: MessageId::new(0, n).unwrap(),
            from: Address::Nobody,
            to: Address::Client(ClientTicket::new(0, n)),
            conversation: None,
            in_reply_to: None,
            priority: Priority::Normal,
            deadline: None,
            kind: Kind::Reply,
            payload: bytes::Bytes::from_static(b"r"),
        }
    }

    fn handled(h: &mut HeldReplies, n: u64, position: u64, needs: bool) -> Vec<Envelope> {
        let mut out = Vec::new();
        h.begin_handler();
        assert!(h.capture(reply_to_client(n)).is_none());
        h.end_handler(position, needs, &mut out);
        out
    }

    #[test]
    fn a_reply_waits_for_the_commit_of_its_position() {
        let mut h = HeldReplies::new(true);
        assert!(handled(&mut h, 1, 3, true).is_empty());
        assert!(handled(&mut h, 2, 5, true).is_empty());
        let mut out = Vec::new();
        h.committed(4, &mut out);
        assert_eq!(out.len(), 1, "only the reply at position 3 is covered");
        out.clear();
        h.committed(5, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(h.held(), 0);
    }

    #[test]
    fn replies_that_report_no_journaled_state_leave_at_once() {
        let mut h = HeldReplies::new(true);
        assert_eq!(handled(&mut h, 1, 7, false).len(), 1);
        let mut out = Vec::new();
        h.committed(7, &mut out);
        // Committed and nothing held: a stateful reply leaves at once too.
        assert_eq!(handled(&mut h, 2, 7, true).len(), 1);
    }

    #[test]
    fn a_later_reply_never_overtakes_a_held_one() {
        let mut h = HeldReplies::new(true);
        let mut out = Vec::new();
        h.committed(2, &mut out);
        assert!(handled(&mut h, 1, 4, true).is_empty());
        // Position 2 is committed, but the reply at 4 is still held.
        assert!(handled(&mut h, 2, 2, true).is_empty());
        h.committed(4, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_failed_commit_turns_held_replies_into_rejections() {
        let mut h = HeldReplies::new(true);
        assert!(handled(&mut h, 1, 1, true).is_empty());
        let mut out = Vec::new();
        h.storage_failed(&mut out);
        assert_eq!(
            out[0].kind,
            Kind::CallRejected(Rejection::StorageUnavailable)
        );
        let later = handled(&mut h, 2, 2, true);
        assert_eq!(
            later[0].kind,
            Kind::CallRejected(Rejection::StorageUnavailable)
        );
        out.clear();
        h.committed(2, &mut out);
        assert!(!h.is_unavailable());
        assert!(handled(&mut h, 3, 3, true).is_empty(), "held again");
    }

    #[test]
    fn nothing_is_captured_without_a_journal_or_outside_a_handler() {
        let mut h = HeldReplies::new(false);
        h.begin_handler();
        assert!(h.capture(reply_to_client(1)).is_some());
        let mut h = HeldReplies::new(true);
        assert!(h.capture(reply_to_client(1)).is_some());
    }
}
