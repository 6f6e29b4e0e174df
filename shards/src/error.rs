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
}

impl Rejection {
    /// Every reason, in a stable order (used for per-reason counters).
    pub const ALL: [Rejection; 7] = [
        Self::QueueFull,
        Self::NoSuchAgent,
        Self::Expired,
        Self::TooManyPendingCalls,
        Self::ShuttingDown,
        Self::AgentFailed,
        Self::Invalid,
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
        }
    }

    /// Index into per-reason counter arrays.
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
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
        })
    }
}

impl std::error::Error for Rejection {}

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
