//! Node-to-node links: a shard's connections to other nodes' shards
//! (outbound, one per remote shard it sends to) and the connections other
//! nodes' shards open to it (inbound).
//!
//! Envelopes travel as `ENVELOPE` frames. A call that comes in over a link
//! is admitted on the receiving shard like a client's call; its answer goes
//! back over the same connection, so the calling node needs no route back
//! and can fail every call still waiting on a link that breaks or whose
//! node is declared down (`NodeDown`), instead of letting it hang.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::net::TcpStream;
use quire_shards::{
    Address, CallError, CallFailure, Envelope, Kind, MessageId, Rejection, SendOptions,
};

use super::io::{closing_error, split, FrameReader, Outgoing, ReadEnd};
use super::tls_session::{self, ReadSide, WriteSide};
use super::{Accepted, NetShard};
use crate::protocol::{self, ErrorCode, Frame, Limits, LinkFrame, Role, VERSION};
use crate::shard_cell::ShardCell;
use crate::signal::Signal;

/// One outbound link: this shard to one shard of another node.
pub(crate) struct Link {
    pub index: usize,
    wake: Signal,
    /// Calls sent on the current connection and not answered yet: their
    /// callers, to be told `NodeDown` if the connection breaks.
    inflight: RefCell<HashMap<MessageId, Address>>,
}

impl Link {
    pub fn new(index: usize) -> Self {
        Self {
            index,
            wake: Signal::default(),
            inflight: RefCell::new(HashMap::new()),
        }
    }

    pub fn wake(&self) {
        self.wake.notify();
    }

    /// Fails every envelope waiting for this link and every call waiting
    /// on an answer through it.
    pub fn fail_all(&self, shared: &ShardCell, reason: Rejection) {
        if self.index == usize::MAX {
            return;
        }
        let mut core = shared.core.borrow_mut();
        let waiting = core.take_link_outbox(self.index);
        core.bounce_undeliverable(waiting, reason);
        let calls: Vec<_> = self.inflight.borrow_mut().drain().collect();
        for (call, caller) in calls {
            core.accept_control(Envelope {
                id: call,
                from: Address::Nobody,
                to: caller,
                conversation: None,
                in_reply_to: Some(call),
                priority: quire_shards::Priority::Critical,
                deadline: None,
                kind: Kind::CallRejected(reason),
                payload: bytes::Bytes::new(),
            });
        }
        drop(core);
        shared.work.notify();
    }
}

/// Keeps link `link` connected while its node is up, and moves the
/// envelopes the core queues for it.
pub(crate) async fn run_link(shared: Rc<ShardCell>, net: Rc<NetShard>, link: Rc<Link>) {
    let mut backoff = Duration::from_millis(20);
    loop {
        if net.stopped.get() {
            link.fail_all(&shared, Rejection::ShuttingDown);
            return;
        }
        let Some(target) = net.view.borrow().target(link.index).cloned() else {
            return;
        };
        if !target.up {
            link.fail_all(&shared, Rejection::NodeDown);
            link.wake.wait().await;
            continue;
        }
        let (frames, writer) = match connect(&net, &link, &target.node, target.addr).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(node = %target.node, addr = %target.addr, "link connect failed: {e}");
                // Messages wait (bounded by the outbox) until the node
                // answers again or is declared down.
                future::or(glommio::timer::sleep(backoff), link.wake.wait()).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        backoff = Duration::from_millis(20);
        tracing::info!(node = %target.node, shard = target.shard, "link up");
        serve_link(&shared, &net, &link, frames, writer).await;
        tracing::info!(node = %target.node, shard = target.shard, "link down");
        link.fail_all(&shared, Rejection::NodeDown);
    }
}

/// Opens a link to node `node` at `addr` and does the handshakes (TLS when
/// links speak it: the other end's certificate must name `node`; then
/// HELLO): the link's reader (past the `WELCOME`) and its writer.
async fn connect(
    net: &NetShard,
    link: &Rc<Link>,
    node: &str,
    addr: std::net::SocketAddr,
) -> std::io::Result<(FrameReader, WriteSide)> {
    let glommio_error = |e: glommio::GlommioError<()>| std::io::Error::other(e.to_string());
    let mut stream = TcpStream::connect_timeout(addr, Duration::from_secs(1))
        .await
        .map_err(glommio_error)?;
    stream.set_nodelay(true).map_err(glommio_error)?;
    let session = match &net.settings.tls.links {
        None => None,
        Some(tls) => {
            let name = super::tls::link_name(node).map_err(std::io::Error::other)?;
            let conn = rustls::ClientConnection::new(tls.dial.clone(), name)
                .map_err(std::io::Error::other)?;
            let session = tls_session::handshake(&mut stream, conn, Duration::from_secs(2))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let wake = Rc::downgrade(link);
            session.on_records(move || {
                if let Some(link) = wake.upgrade() {
                    link.wake();
                }
            });
            Some(session)
        }
    };
    let (reader, writer) = split(stream)?;
    let read_side = match &session {
        Some(session) => ReadSide::tls(reader, session.clone()),
        None => ReadSide::Plain(reader),
    };
    let mut writer = WriteSide::new(writer, session);
    let mut hello = Vec::new();
    protocol::encode(
        &Frame::Hello {
            version: VERSION,
            role: Role::Peer,
            credential: net.settings.cluster.secret.clone(),
            node: Some(net.settings.node_name.clone()),
        },
        &mut hello,
    );
    writer.write_all(&hello).await?;
    let mut frames = FrameReader::new(
        read_side,
        net.settings.network.max_frame_bytes,
        net.settings.frame_timeout(),
    );
    let answer = future::or(async { Some(frames.next().await) }, async {
        glommio::timer::sleep(Duration::from_secs(2)).await;
        None
    })
    .await;
    match answer {
        Some(Ok(Frame::Welcome { .. })) => Ok((frames, writer)),
        Some(Ok(Frame::Error { message, .. })) => {
            Err(std::io::Error::other(format!("refused: {message}")))
        }
        Some(Ok(other)) => Err(std::io::Error::other(format!(
            "answered {} to HELLO",
            other.name()
        ))),
        Some(Err(e)) => Err(std::io::Error::other(format!("{e:?}"))),
        None => Err(std::io::Error::other("no WELCOME within 2 s")),
    }
}

/// Moves envelopes both ways on one connected link until it breaks, the
/// node is declared down or the shard stops.
async fn serve_link(
    shared: &Rc<ShardCell>,
    net: &Rc<NetShard>,
    link: &Rc<Link>,
    mut frames: FrameReader,
    mut writer: WriteSide,
) {
    let broken = Rc::new(Cell::new(false));
    let reader = {
        let (shared, link, broken) = (shared.clone(), link.clone(), broken.clone());
        glommio::spawn_local(async move {
            loop {
                match frames.next_link().await {
                    Ok(LinkFrame::Envelope(env)) => {
                        if let (Kind::Reply | Kind::CallRejected(_), Some(call)) =
                            (env.kind, env.in_reply_to)
                        {
                            link.inflight.borrow_mut().remove(&call);
                        }
                        shared.core.borrow_mut().admit_from_link(env);
                        if frames.drained() {
                            shared.work.notify();
                        }
                        shared.make_room().await;
                    }
                    Ok(LinkFrame::Frame(Frame::Pong { .. })) => {}
                    Ok(LinkFrame::Frame(other)) => {
                        tracing::warn!("link closed: peer sent {}", other.name());
                        break;
                    }
                    Err(e) => {
                        tracing::debug!("link read ended: {e:?}");
                        break;
                    }
                }
            }
            shared.work.notify();
            broken.set(true);
            link.wake();
        })
    };
    let coalesce = net.settings.coalesce();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        if net.stopped.get() || broken.get() {
            break;
        }
        if !net.view.borrow().target(link.index).is_some_and(|t| t.up) {
            break;
        }
        if shared.core.borrow().link_outbox_len(link.index) == 0 {
            if writer.has_records() {
                // The TLS session owes the other end a record of its own.
                if writer.write_all(&[]).await.is_err() {
                    break;
                }
            } else {
                link.wake.wait().await;
            }
            continue;
        }
        if let Some(delay) = coalesce {
            glommio::timer::sleep(delay).await;
        }
        let batch = shared.core.borrow_mut().take_link_outbox(link.index);
        let now = Instant::now();
        {
            let mut inflight = link.inflight.borrow_mut();
            for env in &batch {
                // Calls, and clients' confirmed sends, wait for an answer.
                if env.kind == Kind::Call || matches!(env.from, Address::Client(_)) {
                    inflight.insert(env.id, env.from.clone());
                }
                protocol::encode_envelope(env, now, &mut buf);
            }
        }
        if let Err(e) = writer.write_all(&buf).await {
            tracing::debug!("link write failed: {e}");
            // Calls among them are failed with the link; one-way messages
            // may or may not have arrived: they bounce as not delivered.
            let sends: Vec<Envelope> = batch.into_iter().filter(|e| e.kind == Kind::Send).collect();
            shared
                .core
                .borrow_mut()
                .bounce_undeliverable(sends, Rejection::NodeDown);
            break;
        }
        buf.clear();
    }
    writer.close().await;
    reader.await;
}

/// Serves a link another node's shard opened to this one.
pub(crate) async fn serve_inbound(shared: Rc<ShardCell>, net: Rc<NetShard>, conn: Accepted) {
    let Accepted {
        mut frames,
        out,
        writer,
        tls,
    } = conn;
    match frames.first(net.settings.hello_timeout()).await {
        Ok(Frame::Hello {
            version,
            role: Role::Peer,
            credential,
            node,
        }) => {
            if version != VERSION {
                out.close_with(Some(&closing_error(
                    ErrorCode::UnsupportedVersion,
                    format!("this node speaks version {VERSION}"),
                )));
            } else if !net.settings.clustered()
                || !same_secret(
                    credential.as_deref(),
                    net.settings.cluster.secret.as_deref(),
                )
            {
                tracing::warn!(node = ?node, "link refused: wrong cluster secret");
                out.close_with(Some(&closing_error(
                    ErrorCode::Unauthorized,
                    "wrong cluster secret",
                )));
            } else if let Err(problem) = certificate_fits(tls.as_deref(), node.as_deref()) {
                tracing::warn!(node = ?node, "link refused: {problem}");
                out.close_with(Some(&closing_error(ErrorCode::Unauthorized, problem)));
            } else {
                out.push(&Frame::Welcome {
                    version: VERSION,
                    node: net.settings.node_name.clone(),
                    shard: u64::from(net.shard),
                    shards: u64::from(net.settings.shards),
                    limits: Some(Limits {
                        max_frame_bytes: net.settings.network.max_frame_bytes as u64,
                        max_unsent_bytes: net.settings.network.max_unsent_bytes as u64,
                        max_requests_in_flight: None,
                    }),
                    access: None,
                });
                read_inbound(&shared, &net, &out, &mut frames).await;
            }
        }
        Ok(Frame::Hello { .. }) => out.close_with(Some(&closing_error(
            ErrorCode::Unauthorized,
            "this port takes node links; clients connect to network.listen",
        ))),
        Ok(_) => out.close_with(Some(&closing_error(
            ErrorCode::HandshakeRequired,
            "the first frame must be HELLO",
        ))),
        Err(ReadEnd::Refused(code, message)) => out.close_with(Some(&closing_error(code, message))),
        Err(_) => out.close_with(None),
    }
    writer.await;
}

async fn read_inbound(
    shared: &Rc<ShardCell>,
    net: &Rc<NetShard>,
    out: &Rc<Outgoing>,
    frames: &mut FrameReader,
) {
    let timeout = Duration::from_millis(net.settings.network.remote_call_timeout_ms);
    loop {
        let frame = match frames.next_link().await {
            Ok(f) => f,
            Err(ReadEnd::Refused(code, message)) => {
                tracing::debug!("inbound link refused: {message}");
                out.close_with(Some(&closing_error(code, message)));
                return;
            }
            Err(e) => {
                tracing::debug!("inbound link ended: {e:?}");
                out.close_with(None);
                return;
            }
        };
        match frame {
            LinkFrame::Envelope(env) => admit_inbound(shared, out, env, timeout),
            LinkFrame::Frame(Frame::Ping { req }) => {
                out.push(&Frame::Pong { req });
            }
            LinkFrame::Frame(other) => {
                out.close_with(Some(&closing_error(
                    ErrorCode::UnknownFrame,
                    format!("frame type {} is not valid on a node link", other.name()),
                )));
                return;
            }
        }
        if frames.drained() {
            shared.work.notify();
        }
        shared.make_room().await;
        if out.is_closed() {
            return;
        }
    }
}

/// An envelope from another node: a call is admitted like a client's call
/// and answered on this connection; anything else is routed here.
fn admit_inbound(shared: &Rc<ShardCell>, out: &Rc<Outgoing>, env: Envelope, timeout: Duration) {
    tracing::trace!(kind = ?env.kind, from = ?env.from, to = ?env.to, "envelope from a link");
    let mut core = shared.core.borrow_mut();
    // A call, or a client's confirmed send (answered once queued): both are
    // admitted here with a waiter that sends the answer back on this link.
    let confirmed_send = env.kind == Kind::Send && matches!(env.from, Address::Client(_));
    if env.kind != Kind::Call && !confirmed_send {
        core.admit_from_link(env);
        return;
    }
    let Address::Agent(to) = env.to.clone() else {
        core.admit_from_link(env);
        return;
    };
    let call = env.id;
    let caller = env.from.clone();
    let request = env.payload.clone();
    let priority = env.priority;
    let conversation = env.conversation;
    let now = Instant::now();
    let opts = SendOptions {
        priority,
        ttl: env.deadline.map(|d| d.saturating_duration_since(now)),
        conversation,
    };
    let answer_to = out.clone();
    let callee = to.clone();
    let waiter = Box::new(move |result: Result<Envelope, CallFailure>| {
        let (kind, payload) = match result {
            Ok(reply) => (Kind::Reply, reply.payload),
            Err(failure) => match (failure.error, failure.detail) {
                (CallError::Rejected(r), Some(detail)) => (Kind::HandlerFailed(r), detail.into()),
                (CallError::Rejected(r), None) => (Kind::CallRejected(r), request),
                (CallError::Timeout, _) => (Kind::CallRejected(Rejection::Expired), request),
            },
        };
        let answer = Envelope {
            id: call,
            from: Address::Agent(callee),
            to: caller,
            conversation,
            in_reply_to: Some(call),
            priority,
            deadline: None,
            kind,
            payload,
        };
        answer_to.push_with(|buf| protocol::encode_envelope(&answer, Instant::now(), buf));
    });
    let _ = if confirmed_send {
        core.admit_client_confirmed(to, env.payload, opts, timeout, waiter)
    } else {
        core.admit_client_call(to, env.payload, opts, timeout, waiter)
    };
}

/// With TLS on links: Ok when the peer's certificate names the node its
/// HELLO says it is (a node holding the secret cannot pass for another).
fn certificate_fits(
    session: Option<&tls_session::TlsSession>,
    claimed: Option<&str>,
) -> Result<(), String> {
    let Some(session) = session else {
        return Ok(());
    };
    let claimed = claimed.ok_or("a node link's HELLO must name its node")?;
    let name = super::tls::link_name(claimed)?;
    session
        .peer_named(&name)
        .map_err(|problem| format!("HELLO says node {claimed}, but {problem}"))
}

/// Whether a peer presented the cluster secret, compared as BLAKE3 hashes
/// (constant time, one length) so that timing says nothing of how close a
/// guess came.
fn same_secret(presented: Option<&str>, secret: Option<&str>) -> bool {
    match (presented, secret) {
        (Some(p), Some(s)) => blake3::hash(p.as_bytes()) == blake3::hash(s.as_bytes()),
        _ => false,
    }
}
