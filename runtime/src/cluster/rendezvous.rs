//! Which node owns an agent: rendezvous (highest random weight) hashing of
//! the agent's name over the members' names.
//!
//! Every member scores `mix(fnv1a64(agent) ^ fnv1a64(member))` and the
//! highest score owns the agent (ties, which need equal 64-bit scores, go
//! to the smaller name). A member joining takes over only the agents it now
//! wins (about 1/n of them); a member leaving hands its agents over evenly.
//! The function is written down in docs/protocol.md so that a client can
//! compute it too.

use quire_shards::fnv1a64;

/// The finaliser of SplitMix64: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The score of `member` for an agent whose name hashes to `agent_hash`.
pub fn score(agent_hash: u64, member_hash: u64) -> u64 {
    mix(agent_hash ^ member_hash)
}

/// Index into `members` (their names' fnv1a64 hashes and names) of the
/// owner of `agent`; `None` when there are no members.
///
/// ```
/// use quire_runtime::cluster::rendezvous::owner;
/// use quire_shards::fnv1a64;
/// let names = ["node-a", "node-b", "node-c"];
/// let members: Vec<(u64, &str)> = names.iter().map(|n| (fnv1a64(n.as_bytes()), *n)).collect();
/// let first = owner("orders/1", &members).unwrap();
/// // The same answer every time, on every node.
/// assert_eq!(owner("orders/1", &members), Some(first));
/// ```
pub fn owner(agent: &str, members: &[(u64, &str)]) -> Option<usize> {
    let agent_hash = fnv1a64(agent.as_bytes());
    let mut best: Option<(u64, &str, usize)> = None;
    for (i, (hash, name)) in members.iter().enumerate() {
        let s = score(agent_hash, *hash);
        let better = match best {
            None => true,
            Some((bs, bn, _)) => s > bs || (s == bs && *name < bn),
        };
        if better {
            best = Some((s, name, i));
        }
    }
    best.map(|(_, _, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&'static str]) -> Vec<(u64, &'static str)> {
        names.iter().map(|n| (fnv1a64(n.as_bytes()), *n)).collect()
    }

    #[test]
    fn spreads_agents_evenly() {
        let m = members(&["a", "b", "c", "d"]);
        let mut counts = [0usize; 4];
        for i in 0..40_000 {
            counts[owner(&format!("agent-{i}"), &m).unwrap()] += 1;
        }
        for c in counts {
            assert!((8_500..11_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn a_join_moves_only_what_the_newcomer_wins() {
        let before = members(&["a", "b", "c"]);
        let after = members(&["a", "b", "c", "d"]);
        let mut moved = 0;
        for i in 0..10_000 {
            let name = format!("agent-{i}");
            let was = before[owner(&name, &before).unwrap()].1;
            let now = after[owner(&name, &after).unwrap()].1;
            if was != now {
                assert_eq!(now, "d", "an agent moved between old members");
                moved += 1;
            }
        }
        assert!((2_000..3_000).contains(&moved), "{moved}");
    }

    #[test]
    fn member_order_does_not_matter() {
        let x = members(&["a", "b", "c"]);
        let y = members(&["c", "a", "b"]);
        for i in 0..1000 {
            let name = format!("agent-{i}");
            assert_eq!(
                x[owner(&name, &x).unwrap()].1,
                y[owner(&name, &y).unwrap()].1
            );
        }
        assert_eq!(owner("x", &[]), None);
    }
}
