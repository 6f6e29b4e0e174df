//! One shard's view of the cluster: the members as membership last
//! reported them, which node owns an agent, and the shard's links to other
//! nodes' shards.
//!
//! Every shard keeps its own copy (membership runs on shard 0 and sends
//! each change to every shard), so routing never reads another core's
//! memory. Members declared down stay in the placement table, so that
//! their agents fail fast with `NodeDown` rather than move to a node that
//! does not have them; foca forgets them after its `remove_down_after`.

use std::collections::HashMap;
use std::net::SocketAddr;

use quire_shards::{owning_shard, AgentId, RemoteRoute};

use super::rendezvous;

/// A member's liveness as SWIM sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; still routed to until declared down.
    Suspect,
    /// Declared down: sends to its agents fail with `NodeDown`.
    Down,
}

impl MemberState {
    /// Lower-case name, as `quire cluster` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
        }
    }
}

/// Another node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Its name (what placement hashes).
    pub name: String,
    /// Its client address (`network.listen`).
    pub addr: SocketAddr,
    /// Its shard count.
    pub shards: u16,
    /// Its liveness.
    pub state: MemberState,
}

impl MemberInfo {
    /// Where shard `shard` of this member takes node-to-node links.
    pub fn link_addr(&self, shard: u16) -> SocketAddr {
        let mut addr = self.addr;
        addr.set_port(self.addr.port().wrapping_add(1 + shard));
        addr
    }
}

/// Where one link goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    /// The node.
    pub node: String,
    /// Its shard.
    pub shard: u16,
    /// That shard's link address.
    pub addr: SocketAddr,
    /// False while the node is declared down.
    pub up: bool,
}

/// A shard's copy of the cluster.
pub struct ClusterView {
    me: String,
    /// Placement table: (name hash, name, index into `members` or `None`
    /// for this node), this node first.
    table: Vec<(u64, String, Option<usize>)>,
    members: Vec<MemberInfo>,
    links: HashMap<(String, u16), usize>,
    targets: Vec<LinkTarget>,
    new_links: Vec<usize>,
}

impl ClusterView {
    /// A cluster of this node alone.
    pub fn new(me: &str) -> Self {
        let mut view = Self {
            me: me.to_string(),
            table: Vec::new(),
            members: Vec::new(),
            links: HashMap::new(),
            targets: Vec::new(),
            new_links: Vec::new(),
        };
        view.rebuild();
        view
    }

    fn rebuild(&mut self) {
        self.table.clear();
        self.table.push((
            quire_shards::fnv1a64(self.me.as_bytes()),
            self.me.clone(),
            None,
        ));
        for (i, m) in self.members.iter().enumerate() {
            self.table.push((
                quire_shards::fnv1a64(m.name.as_bytes()),
                m.name.clone(),
                Some(i),
            ));
        }
    }

    /// This node's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The other members.
    pub fn members(&self) -> &[MemberInfo] {
        &self.members
    }

    /// Takes the membership's latest list of other members; returns the
    /// links whose node went down (or left) since the last list, whose
    /// waiting messages and calls must now fail.
    pub fn apply(&mut self, members: Vec<MemberInfo>) -> Vec<usize> {
        self.members = members.into_iter().filter(|m| m.name != self.me).collect();
        self.rebuild();
        let mut went_down = Vec::new();
        for (i, target) in self.targets.iter_mut().enumerate() {
            let member = self.members.iter().find(|m| m.name == target.node);
            let up = member.is_some_and(|m| m.state != MemberState::Down);
            if let Some(m) = member {
                // A node that came back may listen elsewhere now.
                target.addr = m.link_addr(target.shard);
            }
            if target.up && !up {
                went_down.push(i);
            }
            target.up = up;
        }
        went_down
    }

    /// The member that owns `agent` (`None`: this node).
    pub fn owner_of(&self, agent: &str) -> Option<&MemberInfo> {
        let table: Vec<(u64, &str)> = self
            .table
            .iter()
            .map(|(h, n, _)| (*h, n.as_str()))
            .collect();
        let winner = rendezvous::owner(agent, &table)?;
        self.table[winner].2.map(|i| &self.members[i])
    }

    /// Where `to` goes from this shard; allocates a link the first time a
    /// node's shard is needed.
    pub fn route(&mut self, to: &AgentId) -> RemoteRoute {
        if self.table.len() == 1 {
            return RemoteRoute::Here;
        }
        let agent_hash = quire_shards::fnv1a64(to.as_str().as_bytes());
        let mut best = (0u64, "", None);
        for (i, (hash, name, member)) in self.table.iter().enumerate() {
            let s = rendezvous::score(agent_hash, *hash);
            if i == 0 || s > best.0 || (s == best.0 && name.as_str() < best.1) {
                best = (s, name.as_str(), *member);
            }
        }
        let Some(member) = best.2 else {
            return RemoteRoute::Here;
        };
        let m = &self.members[member];
        if m.state == MemberState::Down {
            return RemoteRoute::Down;
        }
        let shard = owning_shard(to.as_str(), usize::from(m.shards.max(1)));
        let key = (m.name.clone(), shard);
        if let Some(&link) = self.links.get(&key) {
            return RemoteRoute::Link(link);
        }
        let link = self.targets.len();
        self.targets.push(LinkTarget {
            node: m.name.clone(),
            shard,
            addr: m.link_addr(shard),
            up: true,
        });
        self.links.insert(key, link);
        self.new_links.push(link);
        RemoteRoute::Link(link)
    }

    /// Links allocated since the last call (their tasks must start).
    pub fn take_new_links(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.new_links)
    }

    /// Where link `link` goes now.
    pub fn target(&self, link: usize) -> Option<&LinkTarget> {
        self.targets.get(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, port: u16, state: MemberState) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            shards: 2,
            state,
        }
    }

    #[test]
    fn alone_everything_is_here() {
        let mut v = ClusterView::new("a");
        assert_eq!(v.route(&"x".into()), RemoteRoute::Here);
    }

    #[test]
    fn routes_by_rendezvous_and_fails_fast_when_down() {
        let mut v = ClusterView::new("a");
        v.apply(vec![member("b", 7500, MemberState::Alive)]);
        let mut remote = None;
        for i in 0..100 {
            let id = AgentId::from(format!("agent-{i}").as_str());
            match v.route(&id) {
                RemoteRoute::Link(l) => remote = Some((id, l)),
                RemoteRoute::Here => assert!(v.owner_of(id.as_str()).is_none()),
                RemoteRoute::Down => panic!("nobody is down"),
            }
        }
        let (id, link) = remote.expect("some agent lives on b");
        let t = v.target(link).unwrap().clone();
        assert_eq!(t.node, "b");
        assert_eq!(t.addr.port(), 7500 + 1 + t.shard);
        assert_eq!(v.take_new_links().len(), v.targets.len());
        assert_eq!(v.route(&id), RemoteRoute::Link(link));
        assert!(v.take_new_links().is_empty());
        let down = v.apply(vec![member("b", 7500, MemberState::Down)]);
        assert!(down.contains(&link));
        assert_eq!(v.route(&id), RemoteRoute::Down);
        v.apply(vec![member("b", 7500, MemberState::Alive)]);
        assert_eq!(v.route(&id), RemoteRoute::Link(link));
        assert!(v.target(link).unwrap().up);
    }
}
