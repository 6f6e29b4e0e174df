//! Agents deployed by name pattern: `sensor-*` makes every name that starts
//! with `sensor-` an agent of that module, created by the owning shard when
//! the first message for it arrives (and journaled then, so its state
//! survives like any deployed agent's). Every shard keeps every pattern.

use std::rc::Rc;

use quire_storage::AgentRecord;

use super::agent::{WasmAgent, WasmSpec, WASM_KIND};
use super::engine::WasmModule;
use super::shard::WasmShard;
use crate::agent_id::AgentId;
use crate::error::DefinitionError;
use crate::shard_core::Activator;
use crate::shard_core::Agent;

/// The kind a pattern's record is stored as (it is not an agent itself).
pub const WASM_PATTERN_KIND: &str = "wasm-pattern";

/// Checks a name pattern: a non-empty prefix followed by one `*`.
///
/// ```
/// use quire_shards::wasm::pattern_prefix;
/// assert_eq!(pattern_prefix("sensor-*"), Ok("sensor-"));
/// assert!(pattern_prefix("sensor").is_err());
/// assert!(pattern_prefix("*").is_err());
/// ```
pub fn pattern_prefix(pattern: &str) -> Result<&str, DefinitionError> {
    match pattern.strip_suffix('*') {
        Some(prefix) if !prefix.is_empty() && !prefix.contains('*') => Ok(prefix),
        _ => Err(DefinitionError::NotAPattern(pattern.to_string())),
    }
}

pub(crate) struct NamePattern {
    prefix: String,
    spec: WasmSpec,
    module: WasmModule,
}

impl WasmShard {
    /// Adds (or replaces) the pattern `record` defines (kind `wasm-pattern`,
    /// name the pattern, config a [`WasmSpec`]).
    pub fn add_pattern(&self, record: &AgentRecord) -> Result<(), DefinitionError> {
        if record.kind != WASM_PATTERN_KIND {
            return Err(DefinitionError::WrongKind {
                name: record.name.clone(),
                kind: record.kind.clone(),
                expected: WASM_PATTERN_KIND,
            });
        }
        let prefix = pattern_prefix(&record.name)?.to_string();
        let as_agent = AgentRecord::new(record.name.clone(), WASM_KIND, record.config.clone());
        let spec = WasmSpec::from_record(&as_agent)?;
        spec.limits.validate()?;
        let module = self.engine().module(&spec.module_hash()?)?;
        let mut patterns = self.patterns.borrow_mut();
        patterns.retain(|p| p.prefix != prefix);
        patterns.push(NamePattern {
            prefix,
            spec,
            module,
        });
        // Longest prefix first: the most specific pattern wins.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.prefix.len()));
        Ok(())
    }

    /// Removes a pattern; true if it was there. Agents it created stay.
    pub fn remove_pattern(&self, pattern: &str) -> bool {
        let Ok(prefix) = pattern_prefix(pattern) else {
            return false;
        };
        let mut patterns = self.patterns.borrow_mut();
        let before = patterns.len();
        patterns.retain(|p| p.prefix != prefix);
        patterns.len() != before
    }

    /// The patterns this shard knows, each with its module's short hash,
    /// longest prefix first.
    pub fn patterns(&self) -> Vec<(String, String)> {
        self.patterns
            .borrow()
            .iter()
            .map(|p| (format!("{}*", p.prefix), p.module.hash.short().to_string()))
            .collect()
    }

    /// What a shard core calls for a message to an unknown name.
    pub fn activator(self: &Rc<Self>) -> Activator {
        let host = self.clone();
        Box::new(move |id: &AgentId| {
            let patterns = host.patterns.borrow();
            let p = patterns
                .iter()
                .find(|p| id.as_str().starts_with(&p.prefix))?;
            let agent = WasmAgent::new(&host, p.module.clone(), p.spec.limits, p.spec.supervision);
            Some((
                p.spec.record(id.as_str()),
                Box::new(agent) as Box<dyn Agent>,
            ))
        })
    }
}

impl WasmSpec {
    /// The record that deploys this spec under name pattern `pattern`.
    pub fn pattern_record(&self, pattern: &str) -> AgentRecord {
        let mut record = self.record(pattern);
        record.kind = WASM_PATTERN_KIND.to_string();
        record
    }
}
