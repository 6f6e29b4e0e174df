//! Profiles of a running node, taken on request from the admin endpoint
//! (`GET /profile/cpu`, `GET /profile/memory`; `quire profile`): where the
//! shards' CPU time goes, by agent and by runtime activity, and what the
//! heap holds. Sampling runs on a thread of its own; shards only keep
//! publishing what they always publish.

pub mod cpu;
pub mod memory;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use crate::activity::{Activity, ActivityProbe};
pub use cpu::CpuProfile;
pub use memory::MemoryProfile;

use crate::client::Client;
use crate::watchdog::ShardPulse;

/// Longest profile window taken.
pub const MAX_WINDOW: Duration = Duration::from_secs(300);

/// What a profile needs of a node: its shards' published state and a
/// handle to ask them for names and figures.
#[derive(Clone)]
pub(crate) struct Profiler {
    pub client: Client,
    pub pulses: Vec<Arc<ShardPulse>>,
}

impl Profiler {
    /// Samples every shard for `window` at `hz`.
    pub fn cpu(&self, window: Duration, hz: u32) -> CpuProfile {
        let window = window.min(MAX_WINDOW);
        let raw = cpu::sample(&self.pulses, window, hz);
        let wanted: Vec<Vec<usize>> = raw.iter().map(cpu::RawShard::slots).collect();
        let names = self
            .client
            .slot_names_blocking(&wanted, Duration::from_secs(2));
        let shards = raw
            .into_iter()
            .zip(names)
            .enumerate()
            .map(|(shard, (raw, answer))| {
                let answer = answer.unwrap_or_default();
                let names: HashMap<usize, String> = answer.names.into_iter().collect();
                let mut profile = raw.finish(shard, &names);
                profile.fullest_mailbox = answer.fullest_mailbox;
                profile
            })
            .collect();
        CpuProfile {
            seconds: window.as_secs_f64(),
            hz,
            shards,
        }
    }

    /// jemalloc's figures over `window` and a heap profile of it.
    pub fn memory(&self, window: Duration) -> MemoryProfile {
        let window = window.min(MAX_WINDOW);
        let (before, heap_profile, after) = memory::heap_profile(window);
        let shards = self
            .client
            .metrics_blocking(crate::metrics::SCRAPE_TIMEOUT)
            .into_iter()
            .flatten()
            .map(|m| {
                let value = |name: &str| {
                    m.samples
                        .iter()
                        .filter(|s| s.name == name)
                        .map(|s| s.value)
                        .sum::<f64>() as u64
                };
                memory::ShardMemory {
                    shard: usize::from(m.shard),
                    agents: value("quire_agents"),
                    agent_memory_bytes: value("quire_agent_memory_bytes"),
                    wasm_instances: value("quire_wasm_live_instances"),
                    queued_messages: value("quire_queued_messages"),
                }
            })
            .collect();
        MemoryProfile {
            seconds: window.as_secs_f64(),
            before,
            after,
            shards,
            heap_profile,
        }
    }
}
