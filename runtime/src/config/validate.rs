//! Every bound of a configuration, checked with its key named.

use quire_client::protocol::Scope;

use super::{ConfigError, NetworkSection, NodeConfig};

impl NodeConfig {
    /// Checks every bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("queues.mailbox_capacity", self.queues.mailbox_capacity),
            ("queues.outbox_capacity", self.queues.outbox_capacity),
            (
                "queues.mesh_channel_capacity",
                self.queues.mesh_channel_capacity,
            ),
            (
                "queues.client_channel_capacity",
                self.queues.client_channel_capacity,
            ),
            ("queues.max_pending_calls", self.queues.max_pending_calls),
            (
                "queues.max_pending_calls_per_agent",
                self.queues.max_pending_calls_per_agent,
            ),
            ("queues.mailbox_max_bytes", self.queues.mailbox_max_bytes),
            ("queues.agent_batch", self.queues.agent_batch),
            ("queues.turn_quota_us", self.queues.turn_quota_us),
            ("queues.dispatch_budget", self.queues.dispatch_budget),
            ("queues.intake_limit", self.queues.intake_limit),
            (
                "demo.report_interval_ms",
                self.demo.report_interval_ms as usize,
            ),
            ("demo.call_interval_us", self.demo.call_interval_us as usize),
            (
                "storage.batch_max_messages",
                self.storage.batch_max_messages,
            ),
            ("storage.dedup_window", self.storage.dedup_window),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    problem: "must be at least 1".into(),
                });
            }
        }
        if self.node.shards == Some(0) {
            return Err(ConfigError::Invalid {
                key: "node.shards",
                problem: "must be at least 1".into(),
            });
        }
        if self.storage.durability.is_persistent() && self.storage.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "storage.data_dir",
                problem: "must name a directory when durability is not none".into(),
            });
        }
        if let Some(list) = &self.storage.commit_cpuset {
            crate::cpuset::parse_cpu_list(list).map_err(|e| ConfigError::Invalid {
                key: "storage.commit_cpuset",
                problem: e.to_string(),
            })?;
        }
        if self.storage.batch_max_delay_us > 10_000_000 {
            return Err(ConfigError::Invalid {
                key: "storage.batch_max_delay_us",
                problem: format!(
                    "is {} but at most 10000000 (10 s) makes sense",
                    self.storage.batch_max_delay_us
                ),
            });
        }
        self.wasm
            .limits
            .validate()
            .map_err(|problem| ConfigError::Invalid {
                key: "wasm.limits",
                problem: problem.to_string(),
            })?;
        for (key, value) in [
            ("wasm.max_module_bytes", self.wasm.max_module_bytes as u64),
            ("wasm.compile_timeout_ms", self.wasm.compile_timeout_ms),
            (
                "wasm.compile_max_memory_bytes",
                self.wasm.compile_max_memory_bytes,
            ),
            ("wasm.idle_deactivate_ms", self.wasm.idle_deactivate_ms),
            (
                "wasm.supervision.max_failures",
                u64::from(self.wasm.supervision.max_failures),
            ),
            (
                "wasm.supervision.window_ms",
                self.wasm.supervision.window_ms,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    problem: "must be at least 1".into(),
                });
            }
        }
        for (key, value) in [
            (
                "network.max_frame_bytes",
                self.network.max_frame_bytes as u64,
            ),
            ("network.frame_timeout_ms", self.network.frame_timeout_ms),
            ("network.hello_timeout_ms", self.network.hello_timeout_ms),
            (
                "network.max_requests_in_flight",
                self.network.max_requests_in_flight as u64,
            ),
            (
                "network.max_unsent_bytes",
                self.network.max_unsent_bytes as u64,
            ),
            (
                "network.remote_call_timeout_ms",
                self.network.remote_call_timeout_ms,
            ),
            ("cluster.probe_rtt_ms", self.cluster.probe_rtt_ms),
            (
                "cluster.suspect_to_down_ms",
                self.cluster.suspect_to_down_ms,
            ),
            ("cluster.gossip_period_ms", self.cluster.gossip_period_ms),
            (
                "cluster.expected_members",
                u64::from(self.cluster.expected_members),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    problem: "must be at least 1".into(),
                });
            }
        }
        if self.network.max_frame_bytes > u32::MAX as usize {
            return Err(ConfigError::Invalid {
                key: "network.max_frame_bytes",
                problem: "must fit the 4-byte length prefix".into(),
            });
        }
        if self.cluster.probe_period_ms <= self.cluster.probe_rtt_ms {
            return Err(ConfigError::Invalid {
                key: "cluster.probe_period_ms",
                problem: format!(
                    "is {} but must be larger than cluster.probe_rtt_ms ({})",
                    self.cluster.probe_period_ms, self.cluster.probe_rtt_ms
                ),
            });
        }
        self.network.listen_addr()?;
        self.metrics.listen_addr()?;
        validate_credentials(&self.network)?;
        if !self.cluster.seeds.is_empty() {
            if self.network.listen.is_none() {
                return Err(ConfigError::Invalid {
                    key: "cluster.seeds",
                    problem: "a node joins a cluster only with network.listen set".into(),
                });
            }
            if self.cluster.secret.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::Invalid {
                    key: "cluster.secret",
                    problem: "is required to join a cluster (cluster.seeds is set)".into(),
                });
            }
        }
        if self.node.spin_before_park_us > 1_000_000 {
            return Err(ConfigError::Invalid {
                key: "node.spin_before_park_us",
                problem: format!(
                    "is {} but at most 1000000 (1 s) makes sense",
                    self.node.spin_before_park_us
                ),
            });
        }
        Ok(())
    }
}

/// Credential names the node gives itself: a token may not take them.
const RESERVED_NAMES: [&str; 2] = ["admin", "anonymous"];

/// Every token named, distinct in name and secret, with known scopes; the
/// anonymous scopes known.
fn validate_credentials(net: &NetworkSection) -> Result<(), ConfigError> {
    let invalid = |key, problem: String| ConfigError::Invalid { key, problem };
    let known = || {
        Scope::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for name in &net.anonymous_scopes {
        if Scope::from_name(name).is_none() {
            return Err(invalid(
                "network.anonymous_scopes",
                format!("no scope is called {name:?} (scopes: {})", known()),
            ));
        }
    }
    if net.admin_token.as_deref() == Some("") {
        return Err(invalid(
            "network.admin_token",
            "is empty: unset it, or give a secret".into(),
        ));
    }
    for (i, token) in net.tokens.iter().enumerate() {
        let which = if token.name.is_empty() {
            format!("entry {}", i + 1)
        } else {
            format!("token {:?}", token.name)
        };
        let problem = if token.name.is_empty() {
            Some("has no name".to_string())
        } else if RESERVED_NAMES.contains(&token.name.as_str()) {
            Some(format!(
                "may not be called {:?} (the node's own name for {})",
                token.name,
                if token.name == "admin" {
                    "network.admin_token"
                } else {
                    "no credential"
                }
            ))
        } else if token.secret.is_empty() == token.secret_file.is_none() {
            Some(if token.secret.is_empty() {
                "has no secret (give secret or secret_file)".into()
            } else {
                "has both secret and secret_file: give one".into()
            })
        } else if token.scopes.is_empty() {
            Some("grants no scope".into())
        } else if let Some(bad) = token.scopes.iter().find(|s| Scope::from_name(s).is_none()) {
            Some(format!("no scope is called {bad:?} (scopes: {})", known()))
        } else if net.tokens[..i].iter().any(|t| t.name == token.name) {
            Some("is named twice".into())
        } else if !token.secret.is_empty()
            && (net.tokens[..i].iter().any(|t| t.secret == token.secret)
                || net.admin_token.as_deref() == Some(token.secret.as_str()))
        {
            // One secret, two grants: which one a client gets would be luck.
            Some("has the same secret as another token".into())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(invalid("network.tokens", format!("{which} {problem}")));
        }
    }
    Ok(())
}
