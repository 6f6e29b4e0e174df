//! Why a message was refused, and what a caller sees when a call fails.

use std::fmt;

/// Why a message was not delivered. Every message sent is either handled or
/// comes back to its sender with one of these: nothing is dropped silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// The receiver's mailbox (or the route to its shard) is at its bound.
    QueueFull,
    /// No agent of that name is registered on its owning shard.
    NoSuchAgent,
    /// The message's deadline passed before it was handled (a dead letter).
    Expired,
    /// Too many calls are waiting for replies on the calling shard.
    TooManyPendingCalls,
    /// The node is shutting down and no longer takes or handles messages.
    ShuttingDown,
    /// The agent's handler panicked while handling the message.
    AgentFailed,
    /// The message is malformed (e.g. a reply to something that was not a call).
    Invalid,
    /// A WebAssembly agent used up the fuel (instructions) one message may take.
    FuelExhausted,
    /// A WebAssembly agent tried to grow its memory past its limit.
    MemoryLimit,
    /// A WebAssembly agent ran past the wall-clock time one message may take.
    TimeLimit,
    /// A WebAssembly agent trapped (or reported an error) while handling the message.
    AgentTrapped,
    /// A message (or a reply) is larger than the agent's limit allows.
    TooLarge,
    /// The agent failed too often and is quarantined by its supervision policy.
    Quarantined,
    /// The agent is deployed but stopped; it takes messages again once started.
    AgentStopped,
    /// The agent's owning node is declared down by the cluster's membership.
    NodeDown,
    /// The shard's storage refuses writes (a commit failed: disk full, I/O
    /// error): what the request changed is not known to be durable. The
    /// shard retries its commits and takes such requests again once one
    /// succeeds.
    StorageUnavailable,
    /// A WebAssembly agent's state write would pass its state quota
    /// (`max_state_bytes`) or its key is longer than `max_key_bytes`.
    StateQuota,
    /// A WebAssembly agent took more than its share of its shard's time in
    /// its supervision's cost window: refused until the window ends.
    Throttled,
}

impl Rejection {
    /// Every reason, in a stable order (used for per-reason counters).
    pub const ALL: [Rejection; 18] = [
        Self::QueueFull,
        Self::NoSuchAgent,
        Self::Expired,
        Self::TooManyPendingCalls,
        Self::ShuttingDown,
        Self::AgentFailed,
        Self::Invalid,
        Self::FuelExhausted,
        Self::MemoryLimit,
        Self::TimeLimit,
        Self::AgentTrapped,
        Self::TooLarge,
        Self::Quarantined,
        Self::AgentStopped,
        Self::NodeDown,
        Self::StorageUnavailable,
        Self::StateQuota,
        Self::Throttled,
    ];

    /// Stable snake_case name, as used in metrics and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::NoSuchAgent => "no_such_agent",
            Self::Expired => "expired",
            Self::TooManyPendingCalls => "too_many_pending_calls",
            Self::ShuttingDown => "shutting_down",
            Self::AgentFailed => "agent_failed",
            Self::Invalid => "invalid",
            Self::FuelExhausted => "fuel_exhausted",
            Self::MemoryLimit => "memory_limit",
            Self::TimeLimit => "time_limit",
            Self::AgentTrapped => "agent_trapped",
            Self::TooLarge => "too_large",
            Self::Quarantined => "quarantined",
            Self::AgentStopped => "agent_stopped",
            Self::NodeDown => "node_down",
            Self::StorageUnavailable => "storage_unavailable",
            Self::StateQuota => "state_quota",
            Self::Throttled => "throttled",
        }
    }

    /// The reason's code on the wire (inside node-to-node envelopes).
    /// Written out, not derived from a position: reordering or extending
    /// the enum can never change the protocol. New reasons take new codes.
    ///
    /// ```
    /// use quire_shards::Rejection;
    /// assert_eq!(Rejection::QueueFull.wire_code(), 0);
    /// assert_eq!(Rejection::StorageUnavailable.wire_code(), 15);
    /// for r in Rejection::ALL {
    ///     assert_eq!(Rejection::from_wire_code(r.wire_code()), Some(r));
    /// }
    /// ```
    pub const fn wire_code(self) -> u64 {
        match self {
            Self::QueueFull => 0,
            Self::NoSuchAgent => 1,
            Self::Expired => 2,
            Self::TooManyPendingCalls => 3,
            Self::ShuttingDown => 4,
            Self::AgentFailed => 5,
            Self::Invalid => 6,
            Self::FuelExhausted => 7,
            Self::MemoryLimit => 8,
            Self::TimeLimit => 9,
            Self::AgentTrapped => 10,
            Self::TooLarge => 11,
            Self::Quarantined => 12,
            Self::AgentStopped => 13,
            Self::NodeDown => 14,
            Self::StorageUnavailable => 15,
            Self::StateQuota => 16,
            Self::Throttled => 17,
        }
    }

    /// The reason whose wire code is `code`.
    pub fn from_wire_code(code: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.wire_code() == code)
    }

    /// Index into per-reason counter arrays.
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// The reason at `index` (the inverse of [`Self::index`]).
    ///
    /// ```
    /// use quire_shards::Rejection;
    /// assert_eq!(Rejection::from_index(Rejection::Quarantined.index()), Some(Rejection::Quarantined));
    /// assert_eq!(Rejection::from_index(99), None);
    /// ```
    pub fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    /// True for the reasons that mean the agent broke one of its limits or
    /// trapped: what a supervision policy counts as a failure.
    pub fn is_agent_failure(self) -> bool {
        matches!(
            self,
            Self::AgentFailed
                | Self::FuelExhausted
                | Self::MemoryLimit
                | Self::TimeLimit
                | Self::AgentTrapped
                | Self::TooLarge
                | Self::StateQuota
        )
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::QueueFull => "the receiver's queue is full",
            Self::NoSuchAgent => "no such agent",
            Self::Expired => "the message expired before it was handled",
            Self::TooManyPendingCalls => "too many calls are waiting for replies",
            Self::ShuttingDown => "the node is shutting down",
            Self::AgentFailed => "the agent failed while handling the message",
            Self::Invalid => "invalid message",
            Self::FuelExhausted => "the agent used up its fuel for one message",
            Self::MemoryLimit => "the agent tried to grow its memory past its limit",
            Self::TimeLimit => "the agent ran past its time limit for one message",
            Self::AgentTrapped => "the agent trapped while handling the message",
            Self::TooLarge => "the message is larger than the agent's limit",
            Self::Quarantined => "the agent is quarantined after repeated failures",
            Self::AgentStopped => "the agent is stopped",
            Self::NodeDown => "the agent's node is down",
            Self::StorageUnavailable => {
                "the shard's storage is unavailable (a commit failed); the outcome is not known to be durable"
            }
            Self::StateQuota => "the agent's state write is over its state quota or key length limit",
            Self::Throttled => "the agent took more than its share of its shard's time and is throttled",
        })
    }
}

impl std::error::Error for Rejection {}

/// How a client's call ended without a reply, with what the runtime saw
/// when a handler failed on it ([`crate::Kind::HandlerFailed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct CallFailure {
    /// Why.
    pub error: CallError,
    /// What the runtime saw, for a call whose handler failed.
    pub detail: Option<String>,
}

impl From<CallError> for CallFailure {
    fn from(error: CallError) -> Self {
        Self {
            error,
            detail: None,
        }
    }
}

impl From<Rejection> for CallFailure {
    fn from(reason: Rejection) -> Self {
        CallError::Rejected(reason).into()
    }
}

/// How a call ended without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No reply came within the call's timeout.
    #[error("the call timed out")]
    Timeout,
    /// The request was refused or lost its way; see the reason.
    #[error("the call was rejected: {0}")]
    Rejected(#[from] Rejection),
}

/// Why an agent's definition (its [`crate::AgentRecord`]: kind and config)
/// cannot be used: at deploy, at a reload, when a node rebuilds its agents
/// at start. Each says what was wrong in words an operator can act on.
///
/// ```
/// use quire_shards::DefinitionError;
/// let e = DefinitionError::OutOfBounds { field: "fuel_per_message", rule: "at least 1" };
/// assert_eq!(e.to_string(), "fuel_per_message must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// The record is of another kind than the one reading it.
    #[error("agent {name} is of kind {kind:?}, not {expected}")]
    WrongKind {
        /// The agent.
        name: String,
        /// Its record's kind.
        kind: String,
        /// The kind that was expected.
        expected: &'static str,
    },
    /// Its config bytes do not decode.
    #[error("agent {name}: unreadable {what}: {detail}")]
    Unreadable {
        /// The agent.
        name: String,
        /// What was being read, e.g. `wasm spec`.
        what: &'static str,
        /// The decoder's words.
        detail: String,
    },
    /// A limit or setting is out of its bounds.
    #[error("{field} must be {rule}")]
    OutOfBounds {
        /// The setting's name, as the config spells it.
        field: &'static str,
        /// What it must be, e.g. `at least 1`.
        rule: &'static str,
    },
    /// A module reference that is not a BLAKE3 hash.
    #[error("{0:?} is not a module hash")]
    NotAModuleHash(String),
    /// The module it names could not be loaded (unknown, does not compile,
    /// not an agent).
    #[error("{0}")]
    Module(String),
    /// A name pattern that is not a prefix followed by one `*`.
    #[error("{0:?} is not a name pattern: write a prefix followed by one '*', like \"sensor-*\"")]
    NotAPattern(String),
    /// No factory is registered for its kind.
    #[error("unknown agent kind {kind:?} (this node knows: {})", known.join(", "))]
    UnknownKind {
        /// The record's kind.
        kind: String,
        /// The kinds the node knows.
        known: Vec<String>,
    },
    /// Agents of this kind keep their definition for life.
    #[error("agents of kind {kind:?} cannot be reloaded")]
    NotReloadable {
        /// The kind.
        kind: String,
    },
    /// The kind's own words (a native kind's factory).
    #[error("{0}")]
    Refused(String),
}

impl From<String> for DefinitionError {
    /// A native kind's factory refusing in its own words.
    fn from(words: String) -> Self {
        Self::Refused(words)
    }
}

impl From<&str> for DefinitionError {
    fn from(words: &str) -> Self {
        Self::Refused(words.to_string())
    }
}
