//! Node configuration: a TOML file with an embedded default.
//!
//! Unknown keys are errors (a typo must not silently fall back to a
//! default), and every bound is checked with the key named in the message.
//!
//! One room per file: `sections` (the `[section]` structs and their
//! defaults), `env` (the file, then `QUIRE_*` variables on top), `validate`
//! (every bound, with its key), and this file (the whole and its errors).

mod env;
mod sections;
#[cfg(test)]
mod tests;
mod validate;

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use sections::*;

/// The configuration `quire node` runs with when given no file.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../default-config.toml");

/// Everything a node reads at start-up.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Placement and reactor behaviour.
    pub node: NodeSection,
    /// Bounds of every queue.
    pub queues: QueueSection,
    /// Durability and the data directory.
    pub storage: StorageSection,
    /// The demo workload of `quire node`.
    pub demo: DemoSection,
    /// WebAssembly agents: default limits, supervision, pools.
    pub wasm: WasmSection,
    /// Client and node-to-node sockets.
    pub network: NetworkSection,
    /// Cluster membership.
    pub cluster: ClusterSection,
    /// Message priorities: headroom and scheduling.
    pub priorities: PrioritySection,
    /// The metrics endpoint and stall reports.
    pub metrics: MetricsSection,
}

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or an unknown key or a wrong type.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A `QUIRE_*` environment variable that names no key, or whose
    /// value does not fit its key.
    #[error("invalid environment variable {var}: {problem}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A value out of range.
    #[error("invalid config: {key} {problem}")]
    Invalid {
        /// Dotted key, e.g. `queues.mailbox_capacity`.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl NodeConfig {
    /// Parses and validates TOML text.
    ///
    /// ```
    /// use quire_runtime::config::NodeConfig;
    /// let cfg = NodeConfig::from_toml("[queues]\nmailbox_capacity = 64").unwrap();
    /// assert_eq!(cfg.queues.mailbox_capacity, 64);
    /// assert!(NodeConfig::from_toml("[queues]\nmailbox_capacty = 64").is_err());
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// `node.spin_before_park_us` as a duration (`None` when 0).
    pub fn spin_before_park(&self) -> Option<Duration> {
        (self.node.spin_before_park_us > 0)
            .then(|| Duration::from_micros(self.node.spin_before_park_us))
    }
}
