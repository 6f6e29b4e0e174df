//! Agent names and the stable hash that decides which shard owns each name.
//!
//! Ownership is a pure function of the name and the shard count, so every node
//! started with the same shard count agrees on it without asking anybody, and a
//! shard never needs a global registry to route.
//!
//! The hash is specified here so that other implementations (clients, tools,
//! the offline reshard command) can reproduce it exactly:
//!
//! 1. `h = FNV-1a-64(utf8 bytes of the name)` (offset basis `0xcbf29ce484222325`,
//!    prime `0x100000001b3`);
//! 2. `shard = jump_consistent_hash(h, shard_count)` (Lamping & Veach, 2014).
//!
//! Jump hashing moves only `1/n` of the names when a node grows from `n-1` to
//! `n` shards, which keeps a reshard small.

use std::fmt;
use std::sync::Arc;

/// Index of a shard inside one node: `0..shard_count`.
pub type ShardId = u16;

/// The name of an agent, with its routing hash computed once.
///
/// Names of up to 22 bytes (most of them) are stored inline: cloning
/// one copies bytes and touches no shared counter, so envelopes crossing
/// shards never make two cores fight over a reference count's cache line.
/// Longer names share one allocation.
///
/// ```
/// use quire_shards::AgentId;
/// let id = AgentId::from("orders/42");
/// assert_eq!(id.as_str(), "orders/42");
/// assert!(id.owning_shard(4) < 4);
/// ```
#[derive(Clone)]
pub struct AgentId {
    /// `fnv1a64(name)`: the routing hash of the module docs.
    hash: u64,
    name: Name,
}

const INLINE: usize = 22;

#[derive(Clone)]
enum Name {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

impl AgentId {
    /// Longest name accepted, in bytes; longer names are refused at the edge.
    pub const MAX_LEN: usize = 255;

    /// Creates an id, refusing empty names and names over [`Self::MAX_LEN`] bytes.
    ///
    /// ```
    /// use quire_shards::AgentId;
    /// assert!(AgentId::new("").is_err());
    /// assert!(AgentId::new("counter").is_ok());
    /// ```
    pub fn new(name: &str) -> Result<Self, InvalidAgentId> {
        if name.is_empty() {
            return Err(InvalidAgentId::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(InvalidAgentId::TooLong(name.len()));
        }
        let stored = if name.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            Name::Inline {
                len: name.len() as u8,
                bytes,
            }
        } else {
            Name::Shared(Arc::from(name))
        };
        Ok(Self {
            hash: fnv1a64(name.as_bytes()),
            name: stored,
        })
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.name {
            Name::Inline { len, bytes } => {
                // SAFETY: the bytes were copied from a `&str` in `new`, up to
                // `len`, and are never changed afterwards.
                unsafe { std::str::from_utf8_unchecked(&bytes[..*len as usize]) }
            }
            Name::Shared(s) => s,
        }
    }

    /// The routing hash, `fnv1a64` of the name.
    pub fn routing_hash(&self) -> u64 {
        self.hash
    }

    /// The shard (of `shard_count`) that owns this agent. See the module docs
    /// for the exact function.
    pub fn owning_shard(&self, shard_count: usize) -> ShardId {
        if shard_count == 1 {
            return 0;
        }
        jump_consistent_hash(self.hash, shard_count) as ShardId
    }
}

impl PartialEq for AgentId {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.as_str() == other.as_str()
    }
}

impl Eq for AgentId {}

impl std::hash::Hash for AgentId {
    /// Feeds only the cached hash: equal names have equal hashes, and the
    /// string is not walked again on every lookup.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialOrd for AgentId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AgentId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// Why a string is not a valid agent name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAgentId {
    /// The empty string names nobody.
    #[error("an agent name must not be empty")]
    Empty,
    /// Names are capped so that frames and keys stay small.
    #[error("an agent name is at most 255 bytes, this one has {0}")]
    TooLong(usize),
}

impl From<&str> for AgentId {
    /// Converts a name known to be valid (a literal, a generated name).
    ///
    /// # Panics
    /// On an empty name or one over [`AgentId::MAX_LEN`] bytes; use
    /// [`AgentId::new`] for untrusted input.
    fn from(name: &str) -> Self {
        Self::new(name).unwrap_or_else(|e| panic!("invalid agent name {name:?}: {e}"))
    }
}

impl From<String> for AgentId {
    /// As `From<&str>`: panics on an invalid name.
    fn from(name: String) -> Self {
        Self::from(name.as_str())
    }
}

impl From<&AgentId> for AgentId {
    fn from(id: &AgentId) -> Self {
        id.clone()
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// FNV-1a, 64-bit: tiny, fast on short names, and trivially portable.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Jump consistent hash (Lamping & Veach): maps `key` to `0..buckets`.
pub fn jump_consistent_hash(mut key: u64, buckets: usize) -> usize {
    assert!(buckets > 0, "jump hash needs at least one bucket");
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = (((b + 1) as f64) * ((1u64 << 31) as f64 / (((key >> 33) + 1) as f64))) as i64;
    }
    b as usize
}

/// The shard that owns the agent called `name` on a node of `shard_count` shards.
///
/// ```
/// use quire_shards::owning_shard;
/// // Stable across runs and machines: these values are part of the contract.
/// assert_eq!(owning_shard("a", 1), 0);
/// assert_eq!(owning_shard("counter", 2), owning_shard("counter", 2));
/// ```
pub fn owning_shard(name: &str, shard_count: usize) -> ShardId {
    if shard_count == 1 {
        return 0;
    }
    jump_consistent_hash(fnv1a64(name.as_bytes()), shard_count) as ShardId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn jump_hash_matches_reference_vectors() {
        // Values from the reference implementation in the paper's C++ code.
        assert_eq!(jump_consistent_hash(1, 1), 0);
        assert_eq!(jump_consistent_hash(0xdead_beef, 1), 0);
        assert_eq!(jump_consistent_hash(0, 10), 0);
        for key in 0..1000u64 {
            assert!(jump_consistent_hash(key, 7) < 7);
        }
    }

    #[test]
    fn growing_by_one_shard_moves_about_one_nth_of_names() {
        let names: Vec<String> = (0..10_000).map(|i| format!("agent-{i}")).collect();
        let moved = names
            .iter()
            .filter(|n| owning_shard(n, 4) != owning_shard(n, 5))
            .count();
        // Expected 1/5 = 2000; every moved name must move to the new shard.
        assert!((1500..2500).contains(&moved), "moved {moved}");
        for n in &names {
            let (a, b) = (owning_shard(n, 4), owning_shard(n, 5));
            assert!(a == b || b == 4);
        }
    }

    #[test]
    fn spreads_names_evenly() {
        let mut counts = [0usize; 8];
        for i in 0..80_000 {
            counts[owning_shard(&format!("user-{i}"), 8) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn cached_hash_agrees_with_the_free_function() {
        for name in ["a", "counter", "orders/42", "ünïcode"] {
            let id = AgentId::from(name);
            assert_eq!(id.routing_hash(), fnv1a64(name.as_bytes()));
            for n in 1..9 {
                assert_eq!(id.owning_shard(n), owning_shard(name, n));
            }
        }
        assert_eq!(AgentId::from("x"), AgentId::from("x"));
        assert_ne!(AgentId::from("x"), AgentId::from("y"));
        let long = "a-name-well-over-thirty-bytes-long/with/parts";
        assert_eq!(AgentId::from(long).as_str(), long);
        assert_eq!(AgentId::from(long), AgentId::from(long).clone());
        assert_eq!(AgentId::from("exactly-22-bytes-long-").as_str().len(), 22);
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(AgentId::new(""), Err(InvalidAgentId::Empty));
        let long = "x".repeat(256);
        assert_eq!(AgentId::new(&long), Err(InvalidAgentId::TooLong(256)));
    }
}
