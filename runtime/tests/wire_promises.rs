//! What a node owes a client over the wire, checked where clients meet it:
//! every SEND with `req` > 0 is answered the same way wherever its agent
//! lives, a slow reader is told `SLOW_CLIENT` the moment it falls behind
//! (never silently short of answers), HELLO errors are as documented, a
//! `quire node` closes a connection that never says HELLO and tells the
//! ones that do their limits, and concurrent deploys of one new module all
//! succeed.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

mod common;

use quire_client::protocol::{self, ErrorCode, Frame, Role};
use quire_client::Priority;
use quire_client::{ClientError, RemoteClient};
use quire_runtime::config::NodeConfig;
use quire_runtime::net::free_port_block;
use quire_runtime::Node;
use quire_shards::owning_shard;

use common::NodeProcess;

const TOKEN: &str = "wire-token";

fn shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2)
}

fn node(tune: impl FnOnce(&mut NodeConfig)) -> (Node, String, tempfile::TempDir) {
    let port = free_port_block(shards() as u16);
    let cache = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::default();
    config.node.shards = Some(shards());
    config.network.listen = Some(format!("127.0.0.1:{port}"));
    config.network.admin_token = Some(TOKEN.into());
    config.wasm.cache_dir = Some(cache.path().to_path_buf());
    tune(&mut config);
    let node = Node::builder().config(config).start().unwrap();
    (node, format!("127.0.0.1:{port}"), cache)
}

fn rejection(e: ClientError) -> String {
    match e {
        ClientError::Node { detail, .. } => detail.unwrap_or_default(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_send_is_answered_alike_wherever_its_agent_would_live() {
    let (node, addr, _cache) = node(|_| {});
    let mut c = RemoteClient::connect(&addr, Some(TOKEN)).unwrap();
    let here = c.shard();
    // Unknown agents that would live on this connection's shard and on
    // every other: the same answer, naming the reason.
    let mut seen = std::collections::HashSet::new();
    for i in 0..64 {
        let name = format!("ghost-{i}");
        seen.insert(owning_shard(&name, shards()) as u64);
        assert_eq!(
            rejection(c.send(&name, b"x").unwrap_err()),
            "no_such_agent",
            "{name}"
        );
    }
    assert_eq!(seen.len(), shards(), "names on every shard were tried");
    // Known agents on every shard: OK once queued.
    let echo = quire_shards::testing::wat_echo();
    for i in 0..8 {
        let name = format!("echo-{i}");
        c.deploy(&name, &echo).unwrap();
        let id = c.send(&name, b"hi").unwrap();
        assert!(id.contains(':'), "a message id: {id}");
    }
    assert!(here < shards() as u64);
    // A durable send on a node that keeps nothing says so.
    let err = c.send_durable("echo-0", b"x", "k1").unwrap_err();
    assert!(format!("{err}").contains("durab"), "{err}");
    node.shutdown();
}

fn hello_bytes() -> Vec<u8> {
    let mut buf = Vec::new();
    protocol::encode(
        &Frame::Hello {
            version: protocol::VERSION,
            role: Role::Client,
            credential: None,
            node: None,
        },
        &mut buf,
    );
    buf
}

#[test]
fn a_slow_reader_is_closed_with_slow_client_at_the_limit() {
    let (node, addr, _cache) = node(|c| c.network.max_unsent_bytes = 16 * 1024);
    RemoteClient::connect(&addr, Some(TOKEN))
        .unwrap()
        .deploy("echo", &quire_shards::testing::wat_echo())
        .unwrap();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&hello_bytes()).unwrap();
    // Asks for far more answers than the socket buffers and the node's
    // limit hold, reading none of them meanwhile.
    let calls = 20_000u64;
    let mut writer = s.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let sender = std::thread::spawn(move || {
        let payload = vec![7u8; 1024];
        let mut buf = Vec::new();
        for req in 1..=calls {
            buf.clear();
            protocol::encode(
                &Frame::Call {
                    req,
                    to: "echo".into(),
                    payload: payload.clone().into(),
                    priority: Priority::Normal,
                    timeout_ms: 10_000,
                },
                &mut buf,
            );
            if writer.write_all(&buf).is_err() {
                return req; // the node closed the connection
            }
        }
        calls + 1
    });
    std::thread::sleep(Duration::from_millis(1500));
    let frames = common::frames_until_closed(&mut s);
    let stopped_at = sender.join().unwrap();
    let replies = frames
        .iter()
        .filter(|f| matches!(f, Frame::Reply { .. }))
        .count() as u64;
    match frames.last() {
        Some(Frame::Error {
            req: 0,
            code,
            message,
            ..
        }) => {
            assert_eq!(*code, ErrorCode::SlowClient, "{message}");
        }
        other => panic!("expected SLOW_CLIENT last, got {other:?} after {replies} replies"),
    }
    assert!(replies < calls, "{replies} replies: the limit never bit");
    // The sender may have finished before the limit bit (socket buffers
    // took its calls); either way it saw no answer go missing unannounced.
    assert!(stopped_at >= 1);
    // Nothing else is wrong with the node.
    let mut c = RemoteClient::connect(&addr, None).unwrap();
    assert_eq!(
        &c.call("echo", b"ok", Duration::from_secs(5)).unwrap()[..],
        b"ok"
    );
    node.shutdown();
}

#[test]
fn a_wrong_magic_is_answered_unsupported_version() {
    let (node, addr, _cache) = node(|_| {});
    let mut bytes = hello_bytes();
    let at = bytes
        .windows(5)
        .position(|w| w == b"QUIRE")
        .expect("the magic is in the frame");
    bytes[at + 4] = b'X';
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&bytes).unwrap();
    match common::frames_until_closed(&mut s).last() {
        Some(Frame::Error {
            req: 0,
            code,
            message,
            ..
        }) => {
            assert_eq!(*code, ErrorCode::UnsupportedVersion, "{message}");
            assert!(message.contains("QUIRX"), "{message}");
        }
        other => panic!("expected UNSUPPORTED_VERSION, got {other:?}"),
    }
    node.shutdown();
}

#[test]
fn concurrent_deploys_of_one_new_module_all_succeed() {
    let (node, addr, cache) = node(|_| {});
    // A module no test deployed before: its cache files are written now.
    let module = quire_shards::testing::wat_agent(&format!(
        r#"(data (i32.const 512) "unique {}")
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (drop (call $reply (local.get 3) (local.get 4))) i32.const 0)"#,
        std::process::id()
    ));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (addr, module) = (addr.clone(), module.clone());
            std::thread::spawn(move || {
                let mut c = RemoteClient::connect(&addr, Some(TOKEN)).unwrap();
                c.deploy(&format!("same-{i}"), &module)
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().expect("every deploy succeeds");
    }
    let leftovers: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".wasm") && !n.ends_with(".bin"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    node.shutdown();
}

#[test]
fn module_cache_writes_cut_short_by_a_crash_are_removed_at_start() {
    let cache = tempfile::tempdir().unwrap();
    // What a node killed mid-write leaves: its pid is long gone.
    let leftover = cache.path().join("abc.wasm.4000000000.0.partial");
    std::fs::write(&leftover, b"half a module").unwrap();
    let port = free_port_block(shards() as u16);
    let mut config = NodeConfig::default();
    config.node.shards = Some(shards());
    config.network.listen = Some(format!("127.0.0.1:{port}"));
    config.wasm.cache_dir = Some(cache.path().to_path_buf());
    let node = Node::builder().config(config).start().unwrap();
    assert!(
        !leftover.exists(),
        "the leftover temporary file is still there"
    );
    node.shutdown();
}

/// The last frame before a close, which must be an `ERROR`: (code, message).
fn closing_error(frames: &[Frame]) -> (ErrorCode, String) {
    match frames.last() {
        Some(Frame::Error { code, message, .. }) => (*code, message.clone()),
        other => panic!("expected an ERROR before the close, got {other:?}"),
    }
}

#[test]
fn a_quire_node_closes_connections_that_never_say_hello_and_states_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start_with_env(
        &dir.path().join("data"),
        "none",
        &[
            ("QUIRE_NETWORK_HELLO_TIMEOUT_MS", "300"),
            ("QUIRE_NETWORK_MAX_UNSENT_BYTES", "1000000"),
        ],
    );
    // WELCOME says what this connection may send and leave unread; the
    // admin connection may send deploys, larger than the plain limit.
    let plain = RemoteClient::connect(&node.addr, None).unwrap();
    let limits = plain.limits().expect("WELCOME carries the limits");
    assert_eq!(
        limits.max_frame_bytes,
        protocol::DEFAULT_MAX_FRAME_BYTES as u64
    );
    assert_eq!(limits.max_unsent_bytes, 1_000_000);
    let admin = node.client().limits().unwrap();
    assert!(admin.max_frame_bytes > limits.max_frame_bytes, "{admin:?}");
    // Connected, then silent: on the client port and on a node-link port
    // (shard 0's, port + 1), each told why and closed.
    let port: u16 = node.addr.rsplit(':').next().unwrap().parse().unwrap();
    let mut idle = Vec::new();
    for addr in [node.addr.clone(), format!("127.0.0.1:{}", port + 1)] {
        for _ in 0..20 {
            idle.push(TcpStream::connect(&addr).unwrap());
        }
    }
    // Half a HELLO and then nothing is a stalled handshake too.
    let mut half = TcpStream::connect(&node.addr).unwrap();
    half.write_all(&[0, 0, 0, 40, 0x96]).unwrap();
    idle.push(half);
    for mut s in idle {
        let (code, message) = closing_error(&common::frames_until_closed(&mut s));
        assert_eq!(code, ErrorCode::SlowClient);
        assert!(message.contains("no HELLO within 300 ms"), "{message}");
    }
    // A client that says HELLO in time is served as before, idle or not.
    let mut c = node.client();
    std::thread::sleep(Duration::from_millis(600));
    c.ping().unwrap();
    drop(plain);
}
