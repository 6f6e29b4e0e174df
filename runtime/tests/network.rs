//! One node over the wire: the Rust client against every frame type,
//! credentials refused, and each kind of bad input (oversized, garbage,
//! truncated, unknown type, no handshake, slow and half-closed clients)
//! answered with an error frame and a closed connection while another
//! client's traffic goes on unaffected.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use quire_client::protocol::{self, ErrorCode, Frame, Role, DEFAULT_MAX_FRAME_BYTES};
use quire_client::Priority;
use quire_client::{ClientError, RemoteClient};
use quire_runtime::config::NodeConfig;
use quire_runtime::net::free_port_block;
use quire_runtime::Node;

const TOKEN: &str = "test-admin-token";

fn shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2)
}

/// A listening node with an admin token and a short frame timeout.
fn node() -> (Node, String) {
    let port = free_port_block(shards() as u16);
    let mut config = NodeConfig::default();
    config.node.shards = Some(shards());
    config.network.listen = Some(format!("127.0.0.1:{port}"));
    config.network.admin_token = Some(TOKEN.into());
    config.network.frame_timeout_ms = 300;
    let node = Node::builder().config(config).start().unwrap();
    (node, format!("127.0.0.1:{port}"))
}

fn admin(addr: &str) -> RemoteClient {
    RemoteClient::connect(addr, Some(TOKEN)).unwrap()
}

fn hello(role: Role, credential: Option<&str>) -> Vec<u8> {
    let mut buf = Vec::new();
    protocol::encode(
        &Frame::Hello {
            version: protocol::VERSION,
            role,
            credential: credential.map(str::to_string),
            node: None,
        },
        &mut buf,
    );
    buf
}

/// A raw connection past the handshake.
fn greeted(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&hello(Role::Client, None)).unwrap();
    let mut prefix = [0u8; 4];
    s.read_exact(&mut prefix).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    s.read_exact(&mut body).unwrap();
    assert!(matches!(
        protocol::decode_body(&body).unwrap(),
        Frame::Welcome { .. }
    ));
    s
}

fn closing_code(frames: &[Frame]) -> ErrorCode {
    match frames.last() {
        Some(Frame::Error { req: 0, code, .. }) => *code,
        other => panic!("expected a closing error frame, got {other:?}"),
    }
}

#[test]
fn every_client_request_over_the_wire() {
    let (node, addr) = node();
    let mut c = admin(&addr);
    assert!(c.shard() < shards() as u64);
    let echo = quire_shards::testing::wat_echo();
    for i in 0..6 {
        let hash = c.deploy(&format!("echo-{i}"), &echo).unwrap();
        assert_eq!(hash.len(), 64, "{hash}");
    }
    // Agents on every shard answer, whichever shard took the connection.
    for i in 0..6 {
        let reply = c
            .call(&format!("echo-{i}"), b"ping", Duration::from_secs(5))
            .unwrap();
        assert_eq!(&reply[..], b"ping");
    }
    assert!(c.send("echo-1", b"one-way").unwrap().contains(':'));
    let agents = c.agents().unwrap();
    assert_eq!(
        agents
            .iter()
            .filter(|a| a.name.starts_with("echo-"))
            .count(),
        6
    );
    assert!(agents.iter().all(|a| a.version.is_some()));
    let stats = c.stats().unwrap();
    assert_eq!(stats.len(), shards());
    let handled: u64 = stats
        .iter()
        .flat_map(|row| row.iter().filter(|(k, _)| k == "handled").map(|(_, v)| *v))
        .sum();
    assert!(handled >= 7, "{stats:?}");
    let members = c.cluster().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].state, "alive");
    assert!(c.ping().unwrap() < Duration::from_secs(1));

    // Refusals come back as errors on a connection that stays open.
    let err = c.call("nobody", b"x", Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Rejected));
    assert!(matches!(&err, ClientError::Node { detail: Some(d), .. } if d == "no_such_agent"));
    let err = c.deploy("broken", b"not wasm").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DeployFailed));
    c.undeploy("echo-5").unwrap();
    let err = c.call("echo-5", b"x", Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Rejected));
    assert!(c.ping().is_ok());

    // Pipelined calls: all answered, each under its own request number.
    for req in 1000..1200u64 {
        c.queue_frame(&Frame::Call {
            req,
            to: format!("echo-{}", req % 5),
            payload: req.to_be_bytes().to_vec().into(),
            priority: Priority::Normal,
            timeout_ms: 5000,
        });
    }
    c.flush().unwrap();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 200 {
        match c.read_frame().unwrap() {
            Frame::Reply { req, payload } => {
                assert_eq!(&payload[..], &req.to_be_bytes());
                seen.insert(req);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // A half-closed client still gets the answers it asked for.
    let mut s = greeted(&addr);
    let mut buf = Vec::new();
    protocol::encode(
        &Frame::Call {
            req: 9,
            to: "echo-0".into(),
            payload: b"late".to_vec().into(),
            priority: Priority::Normal,
            timeout_ms: 5000,
        },
        &mut buf,
    );
    s.write_all(&buf).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let frames = common::frames_until_closed(&mut s);
    assert!(
        matches!(&frames[..], [Frame::Reply { req: 9, payload }] if &payload[..] == b"late"),
        "{frames:?}"
    );
    drop(node);
}

#[test]
fn credentials_are_checked() {
    let (node, addr) = node();
    // A wrong admin token: error frame, then closed.
    let err = RemoteClient::connect(addr.as_str(), Some("wrong")).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
    // No token: ordinary requests work, deploy and undeploy are refused.
    let mut plain = RemoteClient::connect(addr.as_str(), None).unwrap();
    let err = plain
        .deploy("echo", &quire_shards::testing::wat_echo())
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
    assert_eq!(
        plain.undeploy("echo").unwrap_err().code(),
        Some(ErrorCode::Unauthorized)
    );
    assert!(plain.ping().is_ok());
    // A peer HELLO on the client port is refused.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&hello(Role::Peer, Some("secret"))).unwrap();
    assert_eq!(
        closing_code(&common::frames_until_closed(&mut s)),
        ErrorCode::Unauthorized
    );
    // This node has no cluster secret: its link port refuses every peer.
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port + 1)).unwrap();
    s.write_all(&hello(Role::Peer, Some("guess"))).unwrap();
    assert_eq!(
        closing_code(&common::frames_until_closed(&mut s)),
        ErrorCode::Unauthorized
    );
    drop(node);
}

#[test]
fn bad_input_closes_only_the_offending_connection() {
    let (node, addr) = node();
    let mut c = admin(&addr);
    c.deploy("echo", &quire_shards::testing::wat_echo())
        .unwrap();

    // A well-behaved client calls all along.
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let good = {
        let (addr, stop, calls) = (addr.clone(), stop.clone(), calls.clone());
        std::thread::spawn(move || {
            let mut c = RemoteClient::connect(addr.as_str(), None).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let reply = c.call("echo", b"steady", Duration::from_secs(5)).unwrap();
                assert_eq!(&reply[..], b"steady");
                calls.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // Over the maximum: refused from the prefix, before any body arrives.
    let mut s = greeted(&addr);
    s.write_all(&((DEFAULT_MAX_FRAME_BYTES as u32) + 1).to_be_bytes())
        .unwrap();
    assert_eq!(
        closing_code(&common::frames_until_closed(&mut s)),
        ErrorCode::FrameTooLarge
    );
    // Garbage in a well-sized frame.
    let mut s = greeted(&addr);
    s.write_all(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]).unwrap();
    assert_eq!(
        closing_code(&common::frames_until_closed(&mut s)),
        ErrorCode::BadFrame
    );
    // An unknown frame type.
    let mut s = greeted(&addr);
    s.write_all(&[0, 0, 0, 3, 0x92, 99, 1]).unwrap();
    assert_eq!(
        closing_code(&common::frames_until_closed(&mut s)),
        ErrorCode::UnknownFrame
    );
    // A frame type a client may not send.
    let mut s = greeted(&addr);
    let mut buf = Vec::new();
    protocol::encode(&Frame::Pong { req: 1 }, &mut buf);
    s.write_all(&buf).unwrap();
    assert_eq!(
        closing_code(&common::frames_until_closed(&mut s)),
        ErrorCode::UnknownFrame
    );
    // Truncated: half a frame, then the client closes its side.
    let mut s = greeted(&addr);
    s.write_all(&[0, 0, 0, 50, 0x96, 3]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(
        closing_code(&common::frames_until_closed(&mut s)),
        ErrorCode::BadFrame
    );
    // Slow: half a frame, then silence past frame_timeout_ms.
    let mut s = greeted(&addr);
    let started = Instant::now();
    s.write_all(&[0, 0, 0, 50, 0x96]).unwrap();
    assert_eq!(
        closing_code(&common::frames_until_closed(&mut s)),
        ErrorCode::SlowClient
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    // No handshake at all.
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut buf = Vec::new();
    protocol::encode(&Frame::Ping { req: 1 }, &mut buf);
    s.write_all(&buf).unwrap();
    assert_eq!(
        closing_code(&common::frames_until_closed(&mut s)),
        ErrorCode::HandshakeRequired
    );
    // A version this node does not speak.
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut buf = Vec::new();
    protocol::encode(
        &Frame::Hello {
            version: 99,
            role: Role::Client,
            credential: None,
            node: None,
        },
        &mut buf,
    );
    s.write_all(&buf).unwrap();
    assert_eq!(
        closing_code(&common::frames_until_closed(&mut s)),
        ErrorCode::UnsupportedVersion
    );
    // A client that vanishes mid-call.
    let mut s = greeted(&addr);
    let mut buf = Vec::new();
    protocol::encode(
        &Frame::Call {
            req: 1,
            to: "echo".into(),
            payload: vec![0; 1000].into(),
            priority: Priority::Normal,
            timeout_ms: 1000,
        },
        &mut buf,
    );
    s.write_all(&buf).unwrap();
    drop(s);

    let before = calls.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    good.join().expect("the good client saw an error");
    assert!(
        calls.load(Ordering::Relaxed) > before,
        "the good client stalled"
    );
    assert!(c.ping().is_ok());
    drop(node);
}

/// What the probe agent saw.
#[derive(Debug, PartialEq)]
enum Seen {
    Reply(Vec<u8>),
    CallFailed(quire_shards::CallError),
    Bounced(quire_shards::Rejection),
}

/// On each message `[kind, target...]`: kind 1 calls the target, kind 2
/// sends to it; reports what comes back.
struct Probe(std::sync::mpsc::Sender<Seen>);

impl quire_shards::Agent for Probe {
    fn handle(&mut self, ctx: &mut quire_shards::Context<'_>, msg: quire_shards::Envelope) {
        let target = std::str::from_utf8(&msg.payload[1..]).unwrap().to_string();
        // A refusal at once (e.g. NodeDown) is reported like a late one.
        let refused = if msg.payload[0] == 1 {
            ctx.call(
                quire_shards::AgentId::from(target.as_str()),
                bytes::Bytes::from_static(b"across"),
                Duration::from_secs(5),
            )
            .err()
            .map(|r| Seen::CallFailed(quire_shards::CallError::Rejected(r)))
        } else {
            ctx.send(
                quire_shards::AgentId::from(target.as_str()),
                bytes::Bytes::from_static(b"one-way"),
            )
            .err()
            .map(Seen::Bounced)
        };
        if let Some(seen) = refused {
            let _ = self.0.send(seen);
        }
    }

    fn on_reply(
        &mut self,
        _ctx: &mut quire_shards::Context<'_>,
        _call: quire_shards::MessageId,
        reply: Result<quire_shards::Envelope, quire_shards::CallError>,
    ) {
        let _ = self.0.send(match reply {
            Ok(env) => Seen::Reply(env.payload.to_vec()),
            Err(e) => Seen::CallFailed(e),
        });
    }

    fn on_undelivered(
        &mut self,
        _ctx: &mut quire_shards::Context<'_>,
        _msg: quire_shards::Envelope,
        reason: quire_shards::Rejection,
    ) {
        let _ = self.0.send(Seen::Bounced(reason));
    }
}

struct NativeEcho;

impl quire_shards::Agent for NativeEcho {
    fn handle(&mut self, ctx: &mut quire_shards::Context<'_>, msg: quire_shards::Envelope) {
        let _ = ctx.reply(msg.payload);
    }
}

#[test]
fn agents_call_and_send_across_nodes_and_see_node_down() {
    use quire_runtime::cluster::rendezvous::owner;
    use quire_shards::{fnv1a64, CallError, Rejection};
    let node = |name: &str, port: u16, seed: Option<u16>| {
        let mut config = NodeConfig::default();
        config.node.shards = Some(1);
        config.network.listen = Some(format!("127.0.0.1:{port}"));
        config.cluster.node_name = Some(name.into());
        config.cluster.secret = Some("s".into());
        config.cluster.seeds = seed
            .map(|p| vec![format!("127.0.0.1:{p}")])
            .unwrap_or_default();
        config.cluster.probe_period_ms = 200;
        config.cluster.probe_rtt_ms = 80;
        config.cluster.suspect_to_down_ms = 600;
        Node::builder().config(config).start().unwrap()
    };
    let (pa, pb) = (free_port_block(1), free_port_block(1));
    let a = node("x-a", pa, None);
    let b = node("x-b", pb, Some(pa));
    let members = [(fnv1a64(b"x-a"), "x-a"), (fnv1a64(b"x-b"), "x-b")];
    let on = |node: usize, prefix: &str| {
        (0..)
            .map(|i| format!("{prefix}-{i}"))
            .find(|n| owner(n, &members) == Some(node))
            .unwrap()
    };
    let mut c = RemoteClient::connect(format!("127.0.0.1:{pa}").as_str(), None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.cluster().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the nodes never met");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (probe, echo, missing) = (on(0, "probe"), on(1, "echo"), on(1, "missing"));
    let (tx, rx) = std::sync::mpsc::channel();
    a.client()
        .register_blocking(probe.as_str(), move || Probe(tx))
        .unwrap();
    b.client()
        .register_blocking(echo.as_str(), || NativeEcho)
        .unwrap();
    let poke = |kind: u8, target: &str| {
        let mut msg = vec![kind];
        msg.extend_from_slice(target.as_bytes());
        a.client()
            .send_blocking(probe.as_str(), bytes::Bytes::from(msg))
            .unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    };
    // An agent's call crosses to node B and its reply comes back.
    assert_eq!(poke(1, &echo), Seen::Reply(b"across".to_vec()));
    // A send to nobody on B bounces back across to its sender.
    assert_eq!(poke(2, &missing), Seen::Bounced(Rejection::NoSuchAgent));
    assert_eq!(
        poke(1, &missing),
        Seen::CallFailed(CallError::Rejected(Rejection::NoSuchAgent))
    );
    // B leaves: A marks it down and the agent's calls fail with NodeDown.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c
        .cluster()
        .unwrap()
        .iter()
        .any(|m| m.name == "x-b" && m.state == "down")
    {
        assert!(Instant::now() < deadline, "x-b never declared down");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        poke(1, &echo),
        Seen::CallFailed(CallError::Rejected(Rejection::NodeDown))
    );
    assert_eq!(poke(2, &echo), Seen::Bounced(Rejection::NodeDown));
    drop(a);
}
