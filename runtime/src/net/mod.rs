//! A shard's sockets: the client listener every shard shares, the shard's
//! own node-to-node listener, its links to other nodes' shards, and (on
//! shard 0) the membership gossip.
//!
//! Sockets are bound by the node before the shards start (so that a port in
//! use fails the start with a clear error) and handed to each shard, which
//! serves them with glommio (io_uring) from then on.

mod access;
mod client_conn;
mod client_frames;
mod client_lifecycle;
mod deploy_settings;
mod io;
mod peer;
mod tls;
mod tls_session;
mod unanswered;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use access::Credentials;
use quire_shards::{RemoteRoute, RemoteRoutes};
pub(crate) use tls::TlsSetup;

use crate::client::Client;
use crate::cluster::{ClusterView, MemberInfo, Membership, MembershipStop, NodeIdentity};
use crate::command::Command;
use crate::config::{ClusterSection, ConfigError, NetworkSection};
use crate::protocol;
use crate::shard_cell::ShardCell;

/// Network settings every shard of a node shares.
#[derive(Clone)]
pub(crate) struct NetSettings {
    pub listen: SocketAddr,
    pub node_name: String,
    pub shards: u16,
    pub network: NetworkSection,
    pub cluster: ClusterSection,
    /// Largest deploy frame on a connection with the admin scope.
    pub max_admin_frame: usize,
    /// The tokens client connections may present.
    pub credentials: access::Credentials,
    /// TLS for the client port and node links (none: clear text).
    pub tls: TlsSetup,
    pub seeds: Vec<SocketAddr>,
}

impl NetSettings {
    /// True when the node takes part in a cluster (it has a secret).
    pub fn clustered(&self) -> bool {
        self.cluster
            .secret
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    }

    fn coalesce(&self) -> Option<Duration> {
        (self.network.coalesce_delay_us > 0)
            .then(|| Duration::from_micros(self.network.coalesce_delay_us))
    }

    fn frame_timeout(&self) -> Duration {
        Duration::from_millis(self.network.frame_timeout_ms)
    }

    fn hello_timeout(&self) -> Duration {
        Duration::from_millis(self.network.hello_timeout_ms)
    }
}

/// What one shard's thread receives: its sockets, bound by the node.
pub(crate) struct NetWiring {
    pub settings: NetSettings,
    pub clients: std::net::TcpListener,
    pub links: std::net::TcpListener,
    /// Gossip socket: shard 0 of a clustered node only.
    pub gossip: Option<std::net::UdpSocket>,
    pub client: Client,
}

/// One shard's sockets: clients (shared port), node links, gossip.
pub(crate) type ShardSockets = (
    std::net::TcpListener,
    std::net::TcpListener,
    Option<std::net::UdpSocket>,
);

/// Binds every socket of a node of `shards` shards before they start, so
/// that a port in use fails the start naming it.
pub(crate) fn bind(
    network: &NetworkSection,
    cluster: &ClusterSection,
    shards: usize,
) -> Result<Option<Vec<ShardSockets>>, ConfigError> {
    let Some(listen) = network.listen_addr()? else {
        return Ok(None);
    };
    let invalid = |problem: String| ConfigError::Invalid {
        key: "network.listen",
        problem,
    };
    let clustered = cluster.secret.as_deref().is_some_and(|s| !s.is_empty());
    let mut out = Vec::with_capacity(shards);
    for shard in 0..shards {
        let clients = reuseport_listener(listen)
            .map_err(|e| invalid(format!("cannot listen on {listen}: {e}")))?;
        let mut link_addr = listen;
        link_addr.set_port(listen.port().wrapping_add(1 + shard as u16));
        let links = std::net::TcpListener::bind(link_addr).map_err(|e| {
            invalid(format!(
                "cannot listen for node links of shard {shard} on {link_addr} (port + 1 + shard): {e}"
            ))
        })?;
        let gossip = if shard == 0 && clustered {
            Some(
                std::net::UdpSocket::bind(listen)
                    .map_err(|e| invalid(format!("cannot bind gossip (UDP) on {listen}: {e}")))?,
            )
        } else {
            None
        };
        out.push((clients, links, gossip));
    }
    Ok(Some(out))
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sk = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    sk.set_reuse_port(true)?;
    sk.set_reuse_address(true)?;
    sk.bind(&addr.into())?;
    sk.listen(1024)?;
    Ok(sk.into())
}

/// The seeds' addresses.
pub(crate) fn resolve_seeds(cluster: &ClusterSection) -> Result<Vec<SocketAddr>, ConfigError> {
    use std::net::ToSocketAddrs;
    cluster
        .seeds
        .iter()
        .map(|s| {
            s.to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| ConfigError::Invalid {
                    key: "cluster.seeds",
                    problem: format!("{s:?} is not a reachable host:port"),
                })
        })
        .collect()
}

/// One shard's network state.
pub(crate) struct NetShard {
    pub shard: u16,
    pub settings: NetSettings,
    pub view: Rc<RefCell<ClusterView>>,
    links: RefCell<Vec<Rc<peer::Link>>>,
    pub client: Client,
    pub stopped: Rc<Cell<bool>>,
    /// Gossip convergence for joins, when this shard runs the membership:
    /// how long after a member started this node saw it up (ns).
    pub gossip_joins: RefCell<Option<Rc<RefCell<hdrhistogram::Histogram<u64>>>>>,
    /// The membership this shard runs (shard 0 of a clustered node): what
    /// stops it and its task, awaited on stop so the leave goes out.
    gossip: RefCell<Option<(Rc<MembershipStop>, glommio::Task<()>)>>,
}

/// How long a stopping node waits for its leave to be sent: a datagram to
/// a few members, normally well under a millisecond.
const LEAVE_WITHIN: Duration = Duration::from_millis(500);

struct ViewRoutes(Rc<RefCell<ClusterView>>);

impl RemoteRoutes for ViewRoutes {
    fn route(&mut self, to: &quire_shards::AgentId) -> RemoteRoute {
        self.0.borrow_mut().route(to)
    }
}

impl NetShard {
    /// The network state of shard `shard`.
    pub fn new(shard: u16, settings: NetSettings, client: Client) -> Rc<Self> {
        Rc::new(Self {
            shard,
            view: Rc::new(RefCell::new(ClusterView::new(&settings.node_name))),
            settings,
            links: RefCell::new(Vec::new()),
            client,
            stopped: Rc::new(Cell::new(false)),
            gossip_joins: RefCell::new(None),
            gossip: RefCell::new(None),
        })
    }

    /// What the shard core consults for placement, when clustered.
    pub fn routes(&self) -> Option<Box<dyn RemoteRoutes>> {
        self.settings
            .clustered()
            .then(|| Box::new(ViewRoutes(self.view.clone())) as Box<dyn RemoteRoutes>)
    }

    /// Starts the links the core asked for and wakes every link with
    /// envelopes waiting. Called by the dispatcher after each turn; returns
    /// how many links it woke.
    pub fn flush_links(self: &Rc<Self>, shared: &Rc<ShardCell>) -> usize {
        let new = self.view.borrow_mut().take_new_links();
        for index in new {
            let link = Rc::new(peer::Link::new(index));
            {
                let mut links = self.links.borrow_mut();
                if links.len() <= index {
                    links.resize_with(index + 1, || Rc::new(peer::Link::new(usize::MAX)));
                }
                links[index] = link.clone();
            }
            glommio::spawn_local(peer::run_link(shared.clone(), self.clone(), link)).detach();
        }
        let links = self.links.borrow();
        let core = shared.core.borrow();
        let mut woke = 0;
        for (i, link) in links.iter().enumerate() {
            if core.link_outbox_len(i) > 0 {
                link.wake();
                woke += 1;
            }
        }
        if woke > 0 {
            shared.io_pending.set(true);
        }
        woke
    }

    /// Takes a new member list (from the membership on shard 0): links to
    /// nodes now down fail what waits on them with `NodeDown`.
    pub fn apply_members(&self, shared: &ShardCell, members: Vec<MemberInfo>) {
        let down = self.view.borrow_mut().apply(members);
        for index in down {
            let link = self.links.borrow().get(index).cloned();
            if let Some(link) = link {
                link.fail_all(shared, quire_shards::Rejection::NodeDown);
                link.wake();
            }
        }
        shared.work.notify();
    }

    /// Stops accepting and linking; open connections end with the shard.
    pub fn stop(&self) {
        self.stopped.set(true);
        if let Some((stop, _)) = self.gossip.borrow().as_ref() {
            stop.stop();
        }
        for link in self.links.borrow().iter() {
            link.wake();
        }
    }

    /// After [`Self::stop`]: waits (at most [`LEAVE_WITHIN`]) until the
    /// membership has told the cluster this node leaves, so the members
    /// mark it down at once instead of after their probes and suspicion.
    pub async fn leave_cluster(&self) {
        let Some((_, task)) = self.gossip.borrow_mut().take() else {
            return;
        };
        let left = futures_lite::future::or(
            async {
                task.await;
                true
            },
            async {
                glommio::timer::sleep(LEAVE_WITHIN).await;
                false
            },
        )
        .await;
        if !left {
            tracing::warn!("the cluster was not told this node leaves within {LEAVE_WITHIN:?}");
        }
    }
}

/// A connection just accepted: its frames, its outgoing buffer and the
/// task writing that buffer.
pub(crate) struct Accepted {
    pub frames: io::FrameReader,
    pub out: Rc<io::Outgoing>,
    pub writer: glommio::Task<()>,
    /// Its TLS session, on a TLS port.
    pub tls: Option<Rc<tls_session::TlsSession>>,
}

/// Accepts on `listener` until the shard stops, serving each connection
/// with `serve` in a task of its own (after its TLS handshake, when `tls`
/// is set).
async fn accept_loop<F, Fut>(
    shared: Rc<ShardCell>,
    net: Rc<NetShard>,
    listener: glommio::net::TcpListener,
    what: &'static str,
    tls: Option<Arc<rustls::ServerConfig>>,
    serve: F,
) where
    F: Fn(Rc<ShardCell>, Rc<NetShard>, Accepted) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    while !net.stopped.get() {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!("{what} accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (shared, net, tls, serve) = (shared.clone(), net.clone(), tls.clone(), serve.clone());
        glommio::spawn_local(async move {
            if let Some(accepted) = open(&shared, &net, stream, tls, what).await {
                serve(shared, net, accepted).await;
            }
        })
        .detach();
    }
}

/// A connection's handshake (TLS, when its port speaks it) and its two
/// tasks' halves; `None` when it failed (logged, and answered when the
/// client spoke clear text to a TLS port).
async fn open(
    shared: &Rc<ShardCell>,
    net: &Rc<NetShard>,
    mut stream: glommio::net::TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    what: &'static str,
) -> Option<Accepted> {
    let session = match tls {
        None => None,
        Some(config) => {
            let conn = match rustls::ServerConnection::new(config) {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("{what} connection dropped: no TLS session: {e}");
                    return None;
                }
            };
            match tls_session::handshake(&mut stream, conn, net.settings.hello_timeout()).await {
                Ok(session) => Some(session),
                Err(tls_session::HandshakeError::ClearText) => {
                    let mut refusal = Vec::new();
                    protocol::encode(
                        &io::closing_error(
                            protocol::ErrorCode::HandshakeRequired,
                            format!("this {what} port speaks TLS only: connect with TLS (the CLI: --tls-ca FILE)"),
                        ),
                        &mut refusal,
                    );
                    use futures_lite::AsyncWriteExt;
                    let _ = stream.write_all(&refusal).await;
                    let _ = stream.shutdown(std::net::Shutdown::Both).await;
                    return None;
                }
                Err(e) => {
                    tracing::info!("{what} connection refused: {e}");
                    return None;
                }
            }
        }
    };
    let (reader, writer) = io::split(stream).ok()?;
    let out = io::Outgoing::new(
        net.settings.network.max_unsent_bytes,
        shared.io_pending.clone(),
    );
    let read_side = match &session {
        Some(session) => {
            let wake = Rc::downgrade(&out);
            session.on_records(move || {
                if let Some(out) = wake.upgrade() {
                    out.wake();
                }
            });
            tls_session::ReadSide::tls(reader, session.clone())
        }
        None => tls_session::ReadSide::Plain(reader),
    };
    let write_side = tls_session::WriteSide::new(writer, session.clone());
    let writer = glommio::spawn_local(out.clone().write_loop(write_side, net.settings.coalesce()));
    let frames = io::FrameReader::new(
        read_side,
        net.settings.network.max_frame_bytes,
        net.settings.frame_timeout(),
    );
    Some(Accepted {
        frames,
        out,
        writer,
        tls: session,
    })
}

/// Starts the shard's listeners (and membership on shard 0).
pub(crate) fn start(shared: &Rc<ShardCell>, net: &Rc<NetShard>, wiring: NetWiring) {
    // SAFETY: the descriptors come from listeners bound for this shard and
    // are owned by the glommio sockets from here on.
    let clients = unsafe { glommio::net::TcpListener::from_raw_fd(wiring.clients.into_raw_fd()) };
    let links = unsafe { glommio::net::TcpListener::from_raw_fd(wiring.links.into_raw_fd()) };
    glommio::spawn_local(accept_loop(
        shared.clone(),
        net.clone(),
        clients,
        "client",
        net.settings.tls.clients.clone(),
        client_conn::serve_client,
    ))
    .detach();
    glommio::spawn_local(accept_loop(
        shared.clone(),
        net.clone(),
        links,
        "link",
        net.settings.tls.links.as_ref().map(|l| l.accept.clone()),
        peer::serve_inbound,
    ))
    .detach();
    if let (Some(udp), Some(secret)) = (wiring.gossip, net.settings.cluster.secret.clone()) {
        let socket = unsafe { glommio::net::UdpSocket::from_raw_fd(udp.into_raw_fd()) };
        let me = NodeIdentity::new(
            &net.settings.node_name,
            net.settings.listen,
            net.settings.shards,
        );
        let membership = Membership::new(
            me,
            &net.settings.cluster,
            net.settings.seeds.clone(),
            &secret,
        );
        *net.gossip_joins.borrow_mut() = Some(membership.join_latency());
        let stop = membership.stopper();
        let (shared, net2) = (shared.clone(), net.clone());
        let task = glommio::spawn_local(async move {
            let net = net2;
            membership
                .run(socket, |members| {
                    for shard in 0..usize::from(net.settings.shards) {
                        if shard == usize::from(net.shard) {
                            net.apply_members(&shared, members.clone());
                        } else if !net.client.try_command(
                            shard,
                            Command::Members {
                                members: members.clone(),
                            },
                        ) {
                            tracing::warn!(shard, "membership change not delivered: queue full");
                        }
                    }
                })
                .await;
        });
        *net.gossip.borrow_mut() = Some((stop, task));
    }
}

/// A port `p` such that TCP `p..=p + links` and UDP `p` on 127.0.0.1 were
/// free a moment ago: what a test or a benchmark gives `network.listen`
/// for a node of `links` shards.
///
/// ```
/// let port = quire_runtime::net::free_port_block(2);
/// assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
/// ```
pub fn free_port_block(links: u16) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread processes apart, then walk: tests in one process never reuse
    // a block.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = 20_000 + (std::process::id() % 2_000) as u16 * 16;
    loop {
        let offset = NEXT.fetch_add(links + 2, Ordering::Relaxed);
        let port = 20_000 + (start - 20_000 + offset) % 40_000;
        let all_free = (0..=links)
            .all(|i| std::net::TcpListener::bind(("127.0.0.1", port + i)).is_ok())
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if all_free {
            return port;
        }
    }
}
