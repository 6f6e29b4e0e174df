//! Cluster membership and placement: which nodes exist (SWIM via foca),
//! which node owns an agent (rendezvous hashing), and each shard's copy of
//! that view.

pub mod membership;
pub mod rendezvous;
mod view;

pub use membership::{Membership, MembershipStop, NodeIdentity, PacketTag};
pub use view::{ClusterView, LinkTarget, MemberInfo, MemberState};
