//! Agent kinds: the factories a node builds deployed agents with.
//!
//! A deployed agent is stored as an [`AgentRecord`] (name, kind, config
//! bytes), not as code, so after a restart the node must be able to build
//! it again: each kind names a factory registered on the [`NodeBuilder`].
//!
//! ```
//! use quire_runtime::AgentKinds;
//! use quire_shards::{Agent, AgentRecord, Context, Envelope};
//!
//! struct Echo;
//! impl Agent for Echo {
//!     fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
//!         let _ = ctx.reply(msg.payload);
//!     }
//! }
//!
//! let mut kinds = AgentKinds::default();
//! kinds.add("echo", |_record: &AgentRecord| Ok(Box::new(Echo) as Box<dyn Agent>));
//! assert!(kinds.build(&AgentRecord::new("e1", "echo", vec![])).is_ok());
//! assert!(kinds.build(&AgentRecord::new("e2", "nope", vec![])).is_err());
//! ```
//!
//! [`NodeBuilder`]: crate::NodeBuilder

use std::collections::BTreeMap;
use std::sync::Arc;

use quire_shards::{Agent, AgentRecord, DefinitionError};

/// Builds an agent of one kind from its record; runs on the owning shard's
/// thread. An `Err` (a config the kind cannot use) refuses the deploy; a
/// factory's own words go in [`DefinitionError::Refused`] (`"...".into()`).
pub type KindFactory =
    Arc<dyn Fn(&AgentRecord) -> Result<Box<dyn Agent>, DefinitionError> + Send + Sync>;

/// The kinds a node can deploy, by name.
#[derive(Clone, Default)]
pub struct AgentKinds {
    kinds: BTreeMap<String, KindFactory>,
}

impl std::fmt::Debug for AgentKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

impl AgentKinds {
    /// Adds (or replaces) the factory of `kind`.
    pub fn add<F>(&mut self, kind: impl Into<String>, factory: F) -> &mut Self
    where
        F: Fn(&AgentRecord) -> Result<Box<dyn Agent>, DefinitionError> + Send + Sync + 'static,
    {
        self.kinds.insert(kind.into(), Arc::new(factory));
        self
    }

    /// Adds every kind of `other` (its factories win on a clash).
    pub fn extend(&mut self, other: AgentKinds) {
        self.kinds.extend(other.kinds);
    }

    /// True when `kind` is known.
    pub fn knows(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    /// Known kinds, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    /// Builds the agent `record` describes.
    pub fn build(&self, record: &AgentRecord) -> Result<Box<dyn Agent>, DefinitionError> {
        let factory = self
            .kinds
            .get(&record.kind)
            .ok_or_else(|| DefinitionError::UnknownKind {
                kind: record.kind.clone(),
                known: self.names().into_iter().map(str::to_string).collect(),
            })?;
        factory(record)
    }
}
