//! Hard limits on one WebAssembly agent, and the supervision policy that
//! decides what happens when it keeps breaking them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::DefinitionError;

/// What one agent may use. Node-wide defaults come from the configuration;
/// a deploy may override them.
///
/// ```
/// use quire_shards::wasm::AgentLimits;
/// let limits = AgentLimits { fuel_per_message: 1_000, ..AgentLimits::default() };
/// assert_eq!(limits.memory_pages(), 256); // 16 MiB in 64 KiB pages
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentLimits {
    /// Largest linear memory, in bytes (rounded down to 64 KiB pages).
    pub max_memory_bytes: u64,
    /// WebAssembly operators one message (one event) may execute.
    pub fuel_per_message: u64,
    /// Wall-clock time one message may take, in microseconds.
    pub max_time_us: u64,
    /// Largest payload the agent may send or reply, and largest state value.
    pub max_message_bytes: u32,
    /// Bytes of state (keys and values together) the agent may keep.
    pub max_state_bytes: u64,
    /// Longest state key, in bytes.
    pub max_key_bytes: u32,
}

impl Default for AgentLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 16 << 20,
            fuel_per_message: 10_000_000,
            // An actor's handler is short; a shard's neighbours wait out
            // whatever one takes, so the default is what a latency budget
            // can afford once, not what a batch job would want.
            max_time_us: 10_000,
            max_message_bytes: 1 << 20,
            max_state_bytes: 64 << 20,
            max_key_bytes: 1024,
        }
    }
}

impl AgentLimits {
    /// The memory limit in wasm pages (at least one).
    pub fn memory_pages(&self) -> u32 {
        (self.max_memory_bytes / 65_536).clamp(1, 65_536) as u32
    }

    /// The time limit.
    pub fn max_time(&self) -> Duration {
        Duration::from_micros(self.max_time_us)
    }

    /// Checks the values make sense; the error names the field.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        let out_of_bounds = |field, rule| Err(DefinitionError::OutOfBounds { field, rule });
        if self.max_memory_bytes < 65_536 {
            return out_of_bounds("max_memory_bytes", "at least 65536 (one wasm page)");
        }
        if self.fuel_per_message == 0 {
            return out_of_bounds("fuel_per_message", "at least 1");
        }
        if self.max_time_us == 0 {
            return out_of_bounds("max_time_us", "at least 1");
        }
        if self.max_key_bytes == 0 {
            return out_of_bounds("max_key_bytes", "at least 1");
        }
        Ok(())
    }
}

/// What to do with an agent that failed `max_failures` times within
/// `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnRepeatedFailure {
    /// Quarantine it for `quarantine_ms`, then give it a fresh instance.
    #[default]
    Restart,
    /// Quarantine it until it is reloaded or started again by an operator.
    Stop,
}

/// Supervision of one agent. Every failure (a broken limit, a trap) fails
/// that message and restarts the agent from a fresh instance, its state
/// kept; too many failures in a window quarantine it.
///
/// ```
/// use quire_shards::wasm::{OnRepeatedFailure, Supervision};
/// let s = Supervision { policy: OnRepeatedFailure::Stop, ..Supervision::default() };
/// assert_eq!(s.max_failures, 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Supervision {
    /// Failures within the window that quarantine the agent.
    pub max_failures: u32,
    /// The window, in milliseconds.
    pub window_ms: u64,
    /// What quarantine means.
    pub policy: OnRepeatedFailure,
    /// How long a first `restart` quarantine lasts, in milliseconds; each
    /// quarantine that follows the last one's end within `window_ms` lasts
    /// twice the one before (up to 64 times this).
    pub quarantine_ms: u64,
    /// Quarantine at once, rather than after `max_failures`, an agent whose
    /// message ran past its time limit (it held its shard that long) or
    /// that went over its cost budget: every agent next to it on its shard
    /// waits while it runs, so the costly ones go first. Off: a time limit
    /// is one failure, and an agent over budget is throttled until its
    /// window ends (one failure).
    pub quarantine_on_cost: bool,
    /// The window over which an agent's cost is counted, in milliseconds.
    pub cost_window_ms: u64,
    /// Share of its shard's time (percent of the cost window) an agent's
    /// handlers may take: beyond it the agent is throttled for the rest of
    /// the window, and each throttling counts as a failure.
    pub max_busy_percent: u32,
    /// Sends and calls of the agent refused (queue_full and the like) in a
    /// cost window beyond which it is throttled (a storm).
    pub max_refused_per_window: u64,
}

impl Default for Supervision {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window_ms: 10_000,
            policy: OnRepeatedFailure::Restart,
            quarantine_ms: 5_000,
            quarantine_on_cost: true,
            cost_window_ms: 100,
            max_busy_percent: 25,
            max_refused_per_window: 1_000,
        }
    }
}
