//! A bounded, strictly prioritised per-agent mailbox.
//!
//! Four FIFO queues, one per [`Priority`]; `pop` always serves the highest
//! non-empty class. The bound counts ordinary messages only: control messages
//! (replies, bounces) answer a message the agent itself sent, so their number
//! is already bounded by the agent's own traffic, and refusing them would lose
//! the answer to something that was acknowledged. An optional headroom above
//! the bound is kept for [`Priority::High`] and [`Priority::Critical`]
//! messages, so that urgent mail still gets in when ordinary mail filled the
//! mailbox. Ordinary messages are bounded by their payload bytes as well
//! (a thousand 1 MiB messages are not "a thousand messages" to the host's
//! memory); an empty mailbox always takes one message, however large, so a
//! bound below the largest payload cannot shut an agent out.

use std::collections::VecDeque;

use crate::envelope::{Envelope, Priority};

/// The per-agent queue. Pure data: no clocks, no I/O.
///
/// ```
/// use quire_shards::{Mailbox, Priority};
/// # use quire_shards::testing::envelope_to;
/// let mut mb = Mailbox::new(2);
/// mb.push(envelope_to("a", Priority::Low)).unwrap();
/// mb.push(envelope_to("a", Priority::Critical)).unwrap();
/// assert!(mb.push(envelope_to("a", Priority::Normal)).is_err()); // full
/// assert_eq!(mb.pop().unwrap().priority, Priority::Critical);
/// ```
#[derive(Debug)]
pub struct Mailbox {
    classes: [VecDeque<Envelope>; 4],
    bounded_len: usize,
    capacity: usize,
    urgent_headroom: usize,
    /// Payload bytes of the ordinary messages waiting, and their bound.
    bounded_bytes: usize,
    max_bytes: usize,
}

impl Mailbox {
    /// A mailbox holding at most `capacity` ordinary messages.
    pub fn new(capacity: usize) -> Self {
        Self::with_headroom(capacity, 0)
    }

    /// A mailbox holding at most `capacity` ordinary messages of any
    /// priority, and up to `urgent_headroom` more of priority High or
    /// Critical.
    ///
    /// ```
    /// use quire_shards::{Mailbox, Priority};
    /// # use quire_shards::testing::envelope_to;
    /// let mut mb = Mailbox::with_headroom(1, 1);
    /// mb.push(envelope_to("a", Priority::Normal)).unwrap();
    /// assert!(mb.push(envelope_to("a", Priority::Normal)).is_err()); // full
    /// mb.push(envelope_to("a", Priority::High)).unwrap(); // the headroom
    /// assert!(mb.push(envelope_to("a", Priority::Critical)).is_err());
    /// ```
    pub fn with_headroom(capacity: usize, urgent_headroom: usize) -> Self {
        Self {
            classes: Default::default(),
            bounded_len: 0,
            capacity,
            urgent_headroom,
            bounded_bytes: 0,
            max_bytes: usize::MAX,
        }
    }

    /// The same mailbox, also refusing ordinary messages once their
    /// payloads waiting would pass `max_bytes`.
    ///
    /// ```
    /// use quire_shards::{Mailbox, Priority};
    /// # use quire_shards::testing::envelope_to;
    /// let big = |p| { let mut e = envelope_to("a", p); e.payload = vec![0; 600].into(); e };
    /// let mut mb = Mailbox::new(10).with_byte_limit(1000);
    /// mb.push(big(Priority::Normal)).unwrap();
    /// assert!(mb.push(big(Priority::Normal)).is_err()); // 1200 bytes > 1000
    /// mb.pop().unwrap();
    /// mb.push(big(Priority::Normal)).unwrap();
    /// ```
    pub fn with_byte_limit(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Queues a message; a full mailbox hands it back untouched so that the
    /// caller can reject it to its sender. Control messages always fit.
    // The Err variant is the caller's own message handed back, not an error
    // value: boxing it would cost an allocation on the hot path.
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    pub fn push(&mut self, env: Envelope) -> Result<(), Envelope> {
        if !env.kind.is_control() {
            if self.bounded_len >= self.capacity
                && (!env.priority.is_urgent()
                    || self.bounded_len >= self.capacity + self.urgent_headroom)
            {
                return Err(env);
            }
            let bytes = env.payload.len();
            if self.bounded_len > 0 && self.bounded_bytes + bytes > self.max_bytes {
                return Err(env);
            }
            self.bounded_len += 1;
            self.bounded_bytes += bytes;
        }
        self.classes[env.priority.index()].push_back(env);
        Ok(())
    }

    /// Queues an ordinary message even past the bound (a redelivered
    /// durable message that was acknowledged long ago).
    pub fn push_unbounded(&mut self, env: Envelope) {
        if !env.kind.is_control() {
            self.bounded_len += 1;
            self.bounded_bytes += env.payload.len();
        }
        self.classes[env.priority.index()].push_back(env);
    }

    /// The next message: highest class first, FIFO within a class.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<Envelope> {
        let env = self.classes.iter_mut().find_map(VecDeque::pop_front)?;
        if !env.kind.is_control() {
            self.bounded_len -= 1;
            self.bounded_bytes -= env.payload.len();
        }
        Some(env)
    }

    /// Messages waiting, control ones included.
    pub fn len(&self) -> usize {
        self.classes.iter().map(VecDeque::len).sum()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.classes.iter().all(VecDeque::is_empty)
    }

    /// Payload bytes of the ordinary messages waiting.
    pub fn bytes(&self) -> usize {
        self.bounded_bytes
    }

    /// The bound on ordinary messages.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Waiting messages of one class.
    pub fn len_of(&self, priority: Priority) -> usize {
        self.classes[priority.index()].len()
    }

    /// Empties the mailbox (for shutdown or removal), highest class first.
    pub fn drain(&mut self) -> impl Iterator<Item = Envelope> + '_ {
        self.bounded_len = 0;
        self.bounded_bytes = 0;
        self.classes.iter_mut().flat_map(|q| q.drain(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Kind;
    use crate::testing::envelope_to;

    #[test]
    fn strict_priority_then_fifo() {
        let mut mb = Mailbox::new(100);
        let order = [
            Priority::Low,
            Priority::Normal,
            Priority::Critical,
            Priority::High,
            Priority::Normal,
            Priority::Critical,
        ];
        for (i, p) in order.iter().enumerate() {
            let mut e = envelope_to("x", *p);
            e.id = crate::MessageId::new(0, i as u64 + 1).unwrap();
            mb.push(e).unwrap();
        }
        let got: Vec<_> = std::iter::from_fn(|| mb.pop())
            .map(|e| (e.priority, e.id.get() - 1))
            .collect();
        assert_eq!(
            got,
            vec![
                (Priority::Critical, 2),
                (Priority::Critical, 5),
                (Priority::High, 3),
                (Priority::Normal, 1),
                (Priority::Normal, 4),
                (Priority::Low, 0),
            ]
        );
    }

    #[test]
    fn bound_refuses_and_frees_on_pop() {
        let mut mb = Mailbox::new(3);
        for _ in 0..3 {
            mb.push(envelope_to("x", Priority::Normal)).unwrap();
        }
        let back = mb.push(envelope_to("x", Priority::Critical)).unwrap_err();
        assert_eq!(back.priority, Priority::Critical);
        mb.pop().unwrap();
        mb.push(envelope_to("x", Priority::Normal)).unwrap();
        assert_eq!(mb.len(), 3);
    }

    #[test]
    fn control_messages_bypass_the_bound() {
        let mut mb = Mailbox::new(1);
        mb.push(envelope_to("x", Priority::Normal)).unwrap();
        let mut reply = envelope_to("x", Priority::Normal);
        reply.kind = Kind::Reply;
        mb.push(reply).unwrap();
        assert_eq!(mb.len(), 2);
        assert!(mb.push(envelope_to("x", Priority::Normal)).is_err());
        mb.pop().unwrap(); // the ordinary one (FIFO)
        mb.push(envelope_to("x", Priority::Normal)).unwrap();
    }
}
