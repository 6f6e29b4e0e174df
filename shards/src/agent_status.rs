//! What an agent reports of itself: its [`AgentState`] and [`AgentStatus`],
//! as listings and `AGENT_INFO` show them. Plain data, shared by the core
//! and every agent kind.

/// What an agent is doing now, as listings show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Ready to handle messages (a native agent, or a live instance).
    #[default]
    Running,
    /// Addressable but with no live instance: activated by its next message.
    Idle,
    /// Failed too often; messages are refused until the policy lets it run.
    Quarantined,
    /// Took more than its share of its shard's time (or had too many sends
    /// refused) in its current window: messages are refused until the
    /// window ends.
    Throttled,
    /// Stopped by an operator; messages are refused until it is started.
    Stopped,
}

/// An agent's status: its state and what its supervision counted.
///
/// ```
/// use quire_shards::{AgentState, AgentStatus};
/// assert_eq!(AgentStatus::default().state, AgentState::Running);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgentStatus {
    /// What it is doing.
    pub state: AgentState,
    /// The version it runs (a WebAssembly module's content hash), if any.
    pub version: Option<String>,
    /// Messages it failed (limits broken, traps) since it was deployed.
    pub failures: u64,
    /// Fresh instances it was given after a failure.
    pub restarts: u64,
    /// Times it was activated from idle.
    pub activations: u64,
    /// Memory of its live instance (linear memory and tables), in bytes (0
    /// when idle or native).
    pub memory_bytes: u64,
    /// Time its handlers ran, in ns (WebAssembly agents).
    pub busy_ns: u64,
    /// Its latest failure: the reason's name and what the node saw, e.g.
    /// `fuel_exhausted: the handler ran out of fuel (limit 5)`.
    pub last_error: Option<String>,
}
