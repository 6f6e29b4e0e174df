//! The priority class a `SEND` or `CALL` asks for, and its wire code.

/// Strict priority classes, highest first: a node's mailboxes hand out the
/// highest class first, FIFO within a class. The wire code is the class's
/// position (0 = critical); a node takes codes 0 to 3.
///
/// ```
/// use quire_client::Priority;
/// assert_eq!(Priority::from_code(1), Some(Priority::High));
/// assert_eq!(Priority::Low.code(), 3);
/// assert_eq!(Priority::from_code(4), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
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
    /// All classes, highest first (indexed by wire code).
    pub const ALL: [Priority; 4] = [Self::Critical, Self::High, Self::Normal, Self::Low];

    /// Its wire code.
    pub fn code(self) -> u64 {
        self as u64
    }

    /// The class of a wire code; `None` above 3.
    pub fn from_code(code: u64) -> Option<Self> {
        Self::ALL.get(usize::try_from(code).ok()?).copied()
    }
}
