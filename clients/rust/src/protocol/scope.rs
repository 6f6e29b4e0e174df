//! Scopes: what a credential lets a connection ask of a node, and which
//! scope each client frame needs (docs/protocol.md, "Credentials and
//! scopes").
//!
//! A node grants a connection a set of scopes at `HELLO` (from the token it
//! presented, or the node's anonymous scopes when it presented none) and
//! says which in `WELCOME`. A request outside them is answered
//! `ERROR UNAUTHORIZED` naming the scope it needed; the connection stays.

use std::fmt;

use super::frame::Frame;

/// One thing a credential may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `CALL` and `SEND`: talking to agents.
    Message,
    /// `LIST_AGENTS`, `AGENT_INFO`, `LIST_PATTERNS`, `STATS`, `CLUSTER`,
    /// `WHERE`: looking,
    /// not touching.
    Read,
    /// `DEPLOY`, `DEPLOY_MANY`, `UNDEPLOY`, `RELOAD`, `STOP`, `START`:
    /// changing what runs.
    Admin,
}

impl Scope {
    /// Every scope, in the order a [`ScopeSet`] lists them.
    pub const ALL: [Scope; 3] = [Scope::Message, Scope::Read, Scope::Admin];

    /// Its stable lower-case name, as `WELCOME` and the config spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Message => "message",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// The scope of that name; `None` for a name this build does not know.
    ///
    /// ```
    /// use quire_client::protocol::Scope;
    /// assert_eq!(Scope::from_name("read"), Some(Scope::Read));
    /// assert_eq!(Scope::from_name("root"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The scope a client frame needs; `None` for frames every connection
    /// may send (`PING`) and for frames that are not client requests.
    /// Matched without a wildcard, so a new request frame cannot be left
    /// open to every credential by being forgotten here.
    pub fn needed_by(frame: &Frame) -> Option<Scope> {
        match frame {
            Frame::Send { .. } | Frame::Call { .. } => Some(Scope::Message),
            Frame::ListAgents { .. }
            | Frame::Stats { .. }
            | Frame::Cluster { .. }
            | Frame::Where { .. }
            | Frame::AgentInfo { .. }
            | Frame::ListPatterns { .. } => Some(Scope::Read),
            Frame::Deploy { .. }
            | Frame::DeployMany { .. }
            | Frame::Undeploy { .. }
            | Frame::Reload { .. }
            | Frame::Stop { .. }
            | Frame::Start { .. } => Some(Scope::Admin),
            Frame::Ping { .. } => None,
            Frame::Hello { .. }
            | Frame::Welcome { .. }
            | Frame::Reply { .. }
            | Frame::Ok { .. }
            | Frame::Deployed { .. }
            | Frame::Agents { .. }
            | Frame::StatsReply { .. }
            | Frame::Members { .. }
            | Frame::Location { .. }
            | Frame::Patterns { .. }
            | Frame::Pong { .. }
            | Frame::Error { .. } => None,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
///
/// ```
/// use quire_client::protocol::{Scope, ScopeSet};
/// let granted: ScopeSet = [Scope::Message, Scope::Read].into_iter().collect();
/// assert!(granted.contains(Scope::Read));
/// assert!(!granted.contains(Scope::Admin));
/// assert_eq!(granted.to_string(), "message,read");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// No scope at all: such a connection may only `PING`.
    pub const NONE: ScopeSet = ScopeSet(0);

    /// Every scope (the node's admin token).
    pub fn all() -> ScopeSet {
        Scope::ALL.into_iter().collect()
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The set with `scope` added.
    pub fn with(self, scope: Scope) -> ScopeSet {
        ScopeSet(self.0 | scope.bit())
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Its scopes, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        iter.into_iter().fold(ScopeSet::NONE, ScopeSet::with)
    }
}

impl fmt::Display for ScopeSet {
    /// The names joined by commas; `none` for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

/// What `WELCOME` says a connection's credential allowed (protocol 1.3;
/// older nodes send none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The name of the credential the node took: a configured token's
    /// name, `admin` for the node's admin token, `anonymous` for none.
    pub credential: String,
    /// The scopes it grants on this connection.
    pub scopes: ScopeSet,
}
