//! When to commit: the durability mode and the group-commit policy, as pure
//! decisions (the runtime owns the clock and the commit thread).

use std::time::Duration;

/// How durable messages and state reach the disk.
///
/// ```
/// use quire_storage::Durability;
/// let d: Durability = "batched".parse().unwrap();
/// assert!(d.is_persistent());
/// assert!("sometimes".parse::<Durability>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Memory only: nothing is written, every acknowledgement is immediate.
    #[default]
    None,
    /// Group commit: one fsync for every batch of messages.
    Batched,
    /// One commit (and fsync) per durable message.
    Immediate,
}

impl Durability {
    /// True when a partition is written at all.
    pub fn is_persistent(self) -> bool {
        self != Durability::None
    }
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "batched" => Ok(Self::Batched),
            "immediate" => Ok(Self::Immediate),
            other => Err(format!(
                "unknown durability {other:?} (expected none, batched or immediate)"
            )),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Batched => "batched",
            Self::Immediate => "immediate",
        })
    }
}

/// What the commit loop should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDecision {
    /// Commit what is pending now.
    Now,
    /// Nothing is due yet; look again after this long (or when more comes).
    After(Duration),
    /// Nothing is pending.
    Idle,
}

/// The group-commit policy: a batch closes at `max_messages` durable
/// messages or when its oldest write has waited `max_delay`, whichever comes
/// first. Only one commit runs at a time per partition, so writes that come
/// in during a commit join the next batch: under load batches grow by
/// themselves and each fsync covers more messages.
///
/// ```
/// use std::time::Duration;
/// use quire_storage::{Durability, FlushDecision, GroupCommit};
/// let g = GroupCommit::new(Durability::Batched, 100, Duration::from_micros(500));
/// assert_eq!(g.decide(0, 0, Duration::ZERO), FlushDecision::Idle);
/// assert_eq!(g.decide(3, 100, Duration::from_micros(50)), FlushDecision::Now);
/// assert_eq!(g.decide(3, 10, Duration::from_micros(600)), FlushDecision::Now);
/// assert_eq!(g.decide(3, 10, Duration::from_micros(100)), FlushDecision::After(Duration::from_micros(400)));
/// let i = GroupCommit::new(Durability::Immediate, 100, Duration::from_micros(500));
/// assert_eq!(i.decide(1, 1, Duration::ZERO), FlushDecision::Now);
/// assert_eq!(i.max_messages(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    max_messages: usize,
    max_delay: Duration,
}

impl GroupCommit {
    /// The policy for `mode`; `immediate` commits each message alone.
    pub fn new(mode: Durability, max_messages: usize, max_delay: Duration) -> Self {
        match mode {
            Durability::Immediate => Self {
                max_messages: 1,
                max_delay: Duration::ZERO,
            },
            _ => Self {
                max_messages: max_messages.max(1),
                max_delay,
            },
        }
    }

    /// Durable messages one commit takes at most.
    pub fn max_messages(&self) -> usize {
        self.max_messages
    }

    /// Decides, given the pending writes, the durable messages among them
    /// and how long the oldest has waited.
    pub fn decide(&self, writes: usize, messages: usize, oldest: Duration) -> FlushDecision {
        if writes == 0 {
            FlushDecision::Idle
        } else if messages >= self.max_messages || oldest >= self.max_delay {
            FlushDecision::Now
        } else {
            FlushDecision::After(self.max_delay - oldest)
        }
    }
}
