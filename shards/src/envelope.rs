//! The message envelope: what every message carries besides its payload.
//!
//! Inside a node an [`Envelope`] moves between shards by value (the payload is a
//! reference-counted [`Bytes`]), never re-encoded. At node edges it is encoded
//! as MessagePack `ENVELOPE` frames by the runtime's wire protocol
//! (docs/protocol.md).

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::agent_id::{AgentId, ShardId};
use crate::error::{CallError, Rejection};

/// Node-unique message id: the sending shard in the top 16 bits, a per-shard
/// sequence number (from 1) below. Also the id of a call, which its reply
/// refers to. Never zero, so that an `Option<MessageId>` costs no extra space.
///
/// ```
/// use quire_shards::MessageId;
/// let id = MessageId::new(3, 7).unwrap();
/// assert_eq!(id.shard(), 3);
/// assert_eq!(MessageId::from_raw(id.get()), Some(id));
/// assert_eq!(MessageId::from_raw(0), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(NonZeroU64);

impl MessageId {
    /// The id of message `seq` (1-based, below 2^48) from `shard`.
    pub fn new(shard: ShardId, seq: u64) -> Option<Self> {
        Self::from_raw((u64::from(shard) << 48) | (seq & ((1 << 48) - 1)))
    }

    /// From the raw 64-bit form; `None` for zero.
    pub fn from_raw(raw: u64) -> Option<Self> {
        NonZeroU64::new(raw).map(Self)
    }

    /// The raw 64-bit form.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// The shard that sent the message.
    pub fn shard(self) -> ShardId {
        (self.get() >> 48) as ShardId
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.shard(), self.get() & ((1 << 48) - 1))
    }
}

/// Groups the messages of one exchange: the id of its first message, copied
/// into every message sent while handling one of it, so that a conversation
/// can be followed across agents.
pub type ConversationId = MessageId;

/// Strict priority classes: a mailbox always hands out the highest class
/// first; within a class it is FIFO.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Control traffic that must overtake everything else.
    Critical = 0,
    /// Latency-sensitive requests.
    High = 1,
    /// The default.
    #[default]
    Normal = 2,
    /// Background work, handled when nothing else waits.
    Low = 3,
}

impl Priority {
    /// All classes, highest first.
    pub const ALL: [Priority; 4] = [Self::Critical, Self::High, Self::Normal, Self::Low];

    /// Index into per-class arrays (0 = critical).
    pub fn index(self) -> usize {
        self as usize
    }

    /// High or Critical: may use a mailbox's urgent headroom, and puts its
    /// agent in the shard's express ready queue.
    ///
    /// ```
    /// use quire_shards::Priority;
    /// assert!(Priority::High.is_urgent());
    /// assert!(!Priority::Normal.is_urgent());
    /// ```
    #[inline(always)]
    pub fn is_urgent(self) -> bool {
        self as usize <= Priority::High as usize
    }
}

/// Who a message is from, and so where a reply or a rejection goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An agent, wherever it lives.
    Agent(AgentId),
    /// A client that entered the node through a [`ClientTicket`]; replies go
    /// back to the shard that holds the ticket.
    Client(ClientTicket),
    /// Nobody: replies and rejections for this message are counted and dropped.
    Nobody,
}

impl Address {
    /// The agent behind this address, if it is one.
    pub fn agent(&self) -> Option<&AgentId> {
        match self {
            Address::Agent(id) => Some(id),
            _ => None,
        }
    }
}

/// A client's waiting call, parked on the shard that admitted it: the shard
/// in the top 16 bits, the waiter's key on that shard below.
///
/// ```
/// use quire_shards::ClientTicket;
/// let t = ClientTicket::new(2, 99);
/// assert_eq!((t.shard(), t.key()), (2, 99));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientTicket(u64);

impl ClientTicket {
    /// Waiter `key` (below 2^48) on `shard`.
    pub fn new(shard: ShardId, key: u64) -> Self {
        Self((u64::from(shard) << 48) | (key & ((1 << 48) - 1)))
    }

    /// From the raw 64-bit form.
    pub fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw 64-bit form.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The shard holding the waiter.
    pub fn shard(self) -> ShardId {
        (self.0 >> 48) as ShardId
    }

    /// The waiter's key on its shard.
    pub fn key(self) -> u64 {
        self.0 & ((1 << 48) - 1)
    }
}

/// What an envelope is for. Replies and bounces are *control* messages: each
/// answers exactly one message its receiver sent, so they are bounded by the
/// receiver's own traffic and are never refused for a full mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A one-way message.
    Send,
    /// A request; its id is the call id the reply refers to.
    Call,
    /// The answer to the call `in_reply_to`.
    Reply,
    /// The one-way message `in_reply_to` could not be delivered; it comes back
    /// to its sender with its payload.
    Bounce(Rejection),
    /// The call `in_reply_to` could not be delivered or handled; it comes back
    /// to its caller with its payload.
    CallRejected(Rejection),
    /// The call `in_reply_to` reached its agent and the handler failed (a
    /// trap, a broken limit): the reason says which, and the payload is not
    /// the call's but what the runtime saw, as UTF-8 text, for the caller
    /// to read (a wasm trap's message, the limit and the figure).
    HandlerFailed(Rejection),
    /// Local only, never on the mesh or the wire: the caller's shard turns a
    /// bounced call or a timeout into this before the caller sees it.
    CallFailed(CallError),
}

impl Kind {
    /// Control messages bypass mailbox bounds (see [`Kind`]).
    pub fn is_control(&self) -> bool {
        !matches!(self, Kind::Send | Kind::Call)
    }
}

/// A message and everything the runtime needs to route it.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Node-unique id.
    pub id: MessageId,
    /// Sender; replies and bounces go here.
    pub from: Address,
    /// Receiver.
    pub to: Address,
    /// The exchange this message belongs to.
    pub conversation: Option<ConversationId>,
    /// For replies and bounces: the message answered.
    pub in_reply_to: Option<MessageId>,
    /// Scheduling class.
    pub priority: Priority,
    /// After this instant the message is a dead letter (TTL expired).
    pub deadline: Option<Instant>,
    /// What the envelope is for.
    pub kind: Kind,
    /// Opaque bytes; MessagePack by convention.
    pub payload: Bytes,
}

impl Envelope {
    /// True when the deadline has passed at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// The receiver's name, when the receiver is an agent.
    pub fn to_agent(&self) -> Option<&AgentId> {
        self.to.agent()
    }
}

/// Per-message options for [`Context::send_with`] and [`Context::call_with`].
///
/// ```
/// use std::time::Duration;
/// use quire_shards::{Priority, SendOptions};
/// let opts = SendOptions::default().priority(Priority::High).ttl(Duration::from_millis(5));
/// assert_eq!(opts.priority, Priority::High);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// Scheduling class at the receiver.
    pub priority: Priority,
    /// Time to live: after it the message is a dead letter.
    pub ttl: Option<Duration>,
    /// The conversation to file the message under (default: the current
    /// message's, or a new one).
    pub conversation: Option<ConversationId>,
}

impl SendOptions {
    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the time to live.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the conversation id.
    pub fn conversation(mut self, id: ConversationId) -> Self {
        self.conversation = Some(id);
        self
    }
}
