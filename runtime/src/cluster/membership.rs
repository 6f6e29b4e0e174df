//! SWIM membership with foca, over UDP, driven from one shard's reactor.
//!
//! foca is sans-I/O: this module owns its socket, its timers and its
//! randomness, feeds it packets and timer events, and turns its
//! notifications into member lists for every shard's [`super::ClusterView`].
//! Every packet carries a 16-byte keyed BLAKE3 tag of the cluster secret;
//! packets without the right tag are dropped before foca sees them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foca::{
    AccumulatingRuntime, Config, Foca, Identity, OwnedNotification, PostcardCodec, State, Timer,
};
use futures_lite::future;
use glommio::net::UdpSocket;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::view::{MemberInfo, MemberState};
use crate::config::ClusterSection;
use crate::signal::Signal;

const TAG_BYTES: usize = 16;

/// How a node is known to foca.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// The node's name (placement hashes it).
    pub name: String,
    /// Its client address; gossip is UDP on the same port.
    pub addr: SocketAddr,
    /// Its shard count.
    pub shards: u16,
    /// Grows with each start (and each rejoin), so that a restarted node
    /// replaces its old, down identity.
    pub bump: u64,
}

impl NodeIdentity {
    /// The identity of a node starting now.
    pub fn new(name: &str, addr: SocketAddr, shards: u16) -> Self {
        let bump = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            name: name.into(),
            addr,
            shards,
            bump,
        }
    }

    /// A placeholder for a seed: only its address is used.
    fn seed(addr: SocketAddr) -> Self {
        Self {
            name: String::new(),
            addr,
            shards: 0,
            bump: 0,
        }
    }
}

impl Identity for NodeIdentity {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// Signs and checks gossip packets with the cluster secret.
#[derive(Clone)]
pub struct PacketTag {
    key: [u8; 32],
}

impl PacketTag {
    /// The tagger of the cluster sharing `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            key: blake3::derive_key("quire cluster gossip v1", secret.as_bytes()),
        }
    }

    /// `packet` followed by its tag.
    pub fn seal(&self, packet: &[u8]) -> Vec<u8> {
        let tag = blake3::keyed_hash(&self.key, packet);
        let mut out = Vec::with_capacity(packet.len() + TAG_BYTES);
        out.extend_from_slice(packet);
        out.extend_from_slice(&tag.as_bytes()[..TAG_BYTES]);
        out
    }

    /// The packet inside `sealed`, if its tag is right.
    pub fn open<'a>(&self, sealed: &'a [u8]) -> Option<&'a [u8]> {
        let split = sealed.len().checked_sub(TAG_BYTES)?;
        let (packet, tag) = sealed.split_at(split);
        let want = blake3::keyed_hash(&self.key, packet);
        // Constant time: fold every byte's difference.
        let diff = want.as_bytes()[..TAG_BYTES]
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (diff == 0).then_some(packet)
    }
}

/// foca's settings from `[cluster]`.
pub fn foca_config(cfg: &ClusterSection) -> Config {
    let mut config = Config::new_lan(NonZeroU32::new(cfg.expected_members.max(1)).unwrap());
    config.probe_period = Duration::from_millis(cfg.probe_period_ms);
    config.probe_rtt = Duration::from_millis(cfg.probe_rtt_ms);
    config.suspect_to_down_after = Duration::from_millis(cfg.suspect_to_down_ms);
    if let Some(gossip) = config.periodic_gossip.as_mut() {
        gossip.frequency = Duration::from_millis(cfg.gossip_period_ms);
    }
    config
}

/// The membership of one node, run by [`Membership::run`] on one shard.
pub struct Membership {
    me: NodeIdentity,
    config: Config,
    seeds: Vec<SocketAddr>,
    tag: PacketTag,
    stop: Rc<MembershipStop>,
    leave_on_stop: bool,
    /// How long after a member started (its identity's `bump`, wall clock)
    /// this node saw it up, ns: gossip convergence for joins.
    joins: Rc<std::cell::RefCell<hdrhistogram::Histogram<u64>>>,
}

/// Snapshot of the members, this node excluded.
pub type Members = Vec<MemberInfo>;

/// Stops a running [`Membership`] at once: its `run` tells the cluster it
/// leaves (unless [`Membership::without_leave`]) and returns, without
/// waiting for its next timer.
#[derive(Default)]
pub struct MembershipStop {
    stopped: Cell<bool>,
    signal: Signal,
}

impl MembershipStop {
    /// Asks the membership to stop.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.signal.notify();
    }

    /// True once [`Self::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }
}

impl Membership {
    /// Membership for `me`, joining through `seeds` (addresses of other
    /// nodes' `network.listen`) with the cluster `secret`; it runs until
    /// its [`Self::stopper`] is told to stop.
    pub fn new(
        me: NodeIdentity,
        cfg: &ClusterSection,
        seeds: Vec<SocketAddr>,
        secret: &str,
    ) -> Self {
        Self {
            me,
            config: foca_config(cfg),
            seeds,
            tag: PacketTag::new(secret),
            stop: Rc::default(),
            leave_on_stop: true,
            joins: Rc::new(std::cell::RefCell::new(
                quire_shards::new_latency_histogram(),
            )),
        }
    }

    /// What stops [`Self::run`].
    pub fn stopper(&self) -> Rc<MembershipStop> {
        self.stop.clone()
    }

    /// Join convergence times recorded while it runs (ns from a member's
    /// start to this node seeing it up).
    pub fn join_latency(&self) -> Rc<std::cell::RefCell<hdrhistogram::Histogram<u64>>> {
        self.joins.clone()
    }

    /// On stop, go silent instead of telling the cluster: what a crash
    /// looks like to the others (benchmarks of failure detection use it).
    pub fn without_leave(mut self) -> Self {
        self.leave_on_stop = false;
        self
    }

    /// Gossips until stopped; calls `changed` with the new member list
    /// after every change. Leaves the cluster (telling the others) on stop.
    pub async fn run(self, socket: UdpSocket, changed: impl Fn(Members)) {
        let socket = Rc::new(socket);
        let seed = self.me.bump ^ u64::from(self.me.addr.port());
        let mut foca = Foca::new(
            self.me.clone(),
            self.config.clone(),
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
        );
        let mut rt = AccumulatingRuntime::new();
        let inbox: Rc<RefCell<VecDeque<Vec<u8>>>> = Rc::default();
        let arrived = Rc::new(Signal::default());
        let receiver = {
            let (socket, inbox, arrived, stop) = (
                socket.clone(),
                inbox.clone(),
                arrived.clone(),
                self.stop.clone(),
            );
            glommio::spawn_local(async move {
                let mut buf = vec![0u8; 65_536];
                while !stop.is_stopped() {
                    if let Ok((n, _)) = socket.recv_from(&mut buf).await {
                        inbox.borrow_mut().push_back(buf[..n].to_vec());
                        arrived.notify();
                    }
                }
            })
        };
        let mut timers: BTreeMap<(Instant, u64), Timer<NodeIdentity>> = BTreeMap::new();
        let mut timer_seq = 0u64;
        let mut last_announce: Option<Instant> = None;
        loop {
            let now = Instant::now();
            // Until someone answers, keep knocking at the seeds (they may
            // start after us).
            if foca.iter_members().next().is_none()
                && !self.seeds.is_empty()
                && last_announce.is_none_or(|t| now - t >= Duration::from_millis(500))
            {
                last_announce = Some(now);
                for seed in &self.seeds {
                    let _ = foca.announce(NodeIdentity::seed(*seed), &mut rt);
                }
            }
            while let Some(packet) = inbox.borrow_mut().pop_front() {
                match self.tag.open(&packet) {
                    Some(data) => {
                        if let Err(e) = foca.handle_data(data, &mut rt) {
                            tracing::debug!("gossip packet refused: {e}");
                        }
                    }
                    None => tracing::debug!("gossip packet with a bad tag dropped"),
                }
            }
            while let Some(entry) = timers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let timer = entry.remove();
                let _ = foca.handle_timer(timer, &mut rt);
            }
            let mut membership_changed = false;
            while let Some(n) = rt.to_notify() {
                match n {
                    OwnedNotification::MemberUp(id) => {
                        membership_changed = true;
                        if id.name != self.me.name {
                            let now = SystemTime::now()
                                .duration_since(UNIX_EPOCH)
                                .map_or(0, |d| d.as_nanos() as u64);
                            self.joins
                                .borrow_mut()
                                .saturating_record(now.saturating_sub(id.bump).max(1));
                        }
                    }
                    OwnedNotification::MemberDown(_) | OwnedNotification::Rename(_, _) => {
                        membership_changed = true
                    }
                    OwnedNotification::Defunct => {
                        tracing::warn!("this node was declared down; rejoining");
                    }
                    _ => {}
                }
            }
            while let Some((to, data)) = rt.to_send() {
                let sealed = self.tag.seal(&data);
                let _ = socket.send_to(&sealed, to.addr).await;
            }
            while let Some((after, timer)) = rt.to_schedule() {
                timer_seq += 1;
                timers.insert((Instant::now() + after, timer_seq), timer);
            }
            if membership_changed {
                changed(members_of(&foca));
            }
            if self.stop.is_stopped() && !self.leave_on_stop {
                break;
            }
            if self.stop.is_stopped() {
                let _ = foca.leave_cluster(&mut rt);
                while let Some((to, data)) = rt.to_send() {
                    let _ = socket.send_to(&self.tag.seal(&data), to.addr).await;
                }
                break;
            }
            let next = timers
                .first_key_value()
                .map(|((at, _), _)| *at)
                .unwrap_or_else(|| Instant::now() + Duration::from_millis(100))
                .min(Instant::now() + Duration::from_millis(100));
            let wait = next.saturating_duration_since(Instant::now());
            if !wait.is_zero() && inbox.borrow().is_empty() {
                future::or(
                    glommio::timer::sleep(wait),
                    future::or(arrived.wait(), self.stop.signal.wait()),
                )
                .await;
            }
        }
        drop(receiver);
    }
}

/// The members foca knows (down ones included), as shards see them.
fn members_of(
    foca: &Foca<NodeIdentity, PostcardCodec, SmallRng, foca::NoCustomBroadcast>,
) -> Members {
    let mut latest: BTreeMap<String, MemberInfo> = BTreeMap::new();
    for m in foca.iter_membership_state() {
        let id = m.id();
        if id.name.is_empty() {
            continue;
        }
        let state = match m.state() {
            State::Alive => MemberState::Alive,
            State::Suspect => MemberState::Suspect,
            State::Down => MemberState::Down,
        };
        let info = MemberInfo {
            name: id.name.clone(),
            addr: id.addr,
            shards: id.shards,
            state,
        };
        // Of two identities of one node, a live one wins.
        match latest.get(&id.name) {
            Some(prev) if prev.state != MemberState::Down && state == MemberState::Down => {}
            _ => {
                latest.insert(id.name.clone(), info);
            }
        }
    }
    latest.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_refuse_other_secrets_and_tampering() {
        let a = PacketTag::new("s3cret");
        let sealed = a.seal(b"hello");
        assert_eq!(a.open(&sealed), Some(&b"hello"[..]));
        assert_eq!(PacketTag::new("other").open(&sealed), None);
        let mut bad = sealed.clone();
        bad[0] ^= 1;
        assert_eq!(a.open(&bad), None);
        assert_eq!(a.open(b"short"), None);
    }

    #[test]
    fn a_renewed_identity_wins_its_address() {
        let id = NodeIdentity::new("n", "127.0.0.1:1".parse().unwrap(), 2);
        let renewed = id.renew().unwrap();
        assert!(renewed.win_addr_conflict(&id));
        assert!(!id.win_addr_conflict(&renewed));
    }
}
