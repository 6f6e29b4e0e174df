//! Scoped credentials and the request window, against a `quire node`
//! process the way a client meets them: WELCOME names the credential and
//! its scopes; a request outside them is refused `UNAUTHORIZED` naming the
//! scope and the connection goes on; an unknown token is refused at HELLO;
//! a request beyond the window is refused `WINDOW_FULL`, never dropped.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::{frames_until_closed, NodeProcess, TOKEN};
use quire_client::protocol::{self, ErrorCode, Frame, Role, Scope, ScopeSet};
use quire_client::{ClientError, Priority, RemoteClient};

const T: Duration = Duration::from_secs(5);

const CONFIG: &str = r#"
[network]
anonymous_scopes = []

[[network.tokens]]
name = "ingest"
secret = "ingest-secret-0123"
scopes = ["message"]

[[network.tokens]]
name = "dashboard"
secret_file = "SECRET_FILE"
scopes = ["read"]
"#;

/// The config with the dashboard's secret in a file of `dir` (as a
/// systemd credential or a mounted secret would be), newline-terminated.
fn config(dir: &std::path::Path) -> String {
    let file = dir.join("dashboard.secret");
    std::fs::write(&file, "dashboard-secret-4567\n").unwrap();
    CONFIG.replace("SECRET_FILE", &file.to_string_lossy())
}

fn echo_wasm() -> Vec<u8> {
    common::prebuilt("echo")
}

/// The code and the `detail` of a node's refusal.
fn refusal(result: Result<impl std::fmt::Debug, ClientError>) -> (ErrorCode, Option<String>) {
    match result {
        Err(ClientError::Node { code, detail, .. }) => (code, detail),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn each_token_gets_its_scopes_and_a_request_outside_them_is_refused_naming_the_scope() {
    let dir = tempfile::tempdir().unwrap();
    let node =
        NodeProcess::start_with_config(&dir.path().join("data"), "none", &config(dir.path()), &[]);

    let mut admin = node.client();
    let granted = admin.access().expect("WELCOME states the access").clone();
    assert_eq!(granted.credential, "admin");
    assert_eq!(granted.scopes, ScopeSet::all());
    admin.deploy("echo", &echo_wasm()).unwrap();

    let mut ingest = RemoteClient::connect(&node.addr, Some("ingest-secret-0123")).unwrap();
    let access = ingest.access().unwrap().clone();
    assert_eq!(access.credential, "ingest");
    assert_eq!(access.scopes, ScopeSet::NONE.with(Scope::Message));
    // Only the admin scope may send module-sized frames.
    assert!(
        ingest.limits().unwrap().max_frame_bytes < admin.limits().unwrap().max_frame_bytes,
        "{:?} vs {:?}",
        ingest.limits(),
        admin.limits()
    );
    assert_eq!(ingest.call("echo", b"hi", T).unwrap(), &b"hi"[..]);
    assert_eq!(
        refusal(ingest.agents()),
        (ErrorCode::Unauthorized, Some("read".into()))
    );
    assert_eq!(
        refusal(ingest.deploy("sneaky", &echo_wasm())),
        (ErrorCode::Unauthorized, Some("admin".into()))
    );
    for refused in [
        ingest.reload("echo", &echo_wasm()).map(|_| ()),
        ingest.stop("echo"),
        ingest.start("echo"),
    ] {
        assert_eq!(
            refusal(refused),
            (ErrorCode::Unauthorized, Some("admin".into()))
        );
    }
    // Refused, not closed: the connection goes on.
    assert_eq!(ingest.call("echo", b"still", T).unwrap(), &b"still"[..]);

    let mut dashboard = RemoteClient::connect(&node.addr, Some("dashboard-secret-4567")).unwrap();
    assert_eq!(dashboard.access().unwrap().credential, "dashboard");
    assert!(dashboard.agents().unwrap().iter().any(|a| a.name == "echo"));
    assert_eq!(dashboard.info("echo").unwrap().name, "echo");
    assert_eq!(dashboard.stats().unwrap().len(), common::shards());
    match dashboard.call("echo", b"x", T) {
        Err(ClientError::Node {
            code: ErrorCode::Unauthorized,
            message,
            detail,
        }) => {
            assert_eq!(detail.as_deref(), Some("message"));
            assert!(
                message.contains("CALL needs the message scope")
                    && message.contains("(dashboard) grants read"),
                "{message}"
            );
        }
        other => panic!("a read-only token called an agent: {other:?}"),
    }

    // anonymous_scopes = []: only PING.
    let mut anonymous = RemoteClient::connect(&node.addr, None).unwrap();
    let access = anonymous.access().unwrap().clone();
    assert_eq!(
        (access.credential.as_str(), access.scopes),
        ("anonymous", ScopeSet::NONE)
    );
    assert_eq!(
        refusal(anonymous.call("echo", b"x", T)),
        (ErrorCode::Unauthorized, Some("message".into()))
    );
    anonymous.ping().unwrap();
}

#[test]
fn an_unknown_token_is_refused_at_hello_and_an_unanswerable_refusal_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let node =
        NodeProcess::start_with_config(&dir.path().join("data"), "none", &config(dir.path()), &[]);
    for wrong in [
        "ingest-secret-012",
        "ingest-secret-01234",
        "",
        "process-token ",
    ] {
        assert_eq!(
            refusal(RemoteClient::connect(&node.addr, Some(wrong))).0,
            ErrorCode::Unauthorized,
            "{wrong:?}"
        );
    }
    // A fire-and-forget SEND without the message scope: no request to
    // answer, so the refusal comes as the connection's closing error.
    let mut s = TcpStream::connect(&node.addr).unwrap();
    let mut bytes = Vec::new();
    for frame in [
        Frame::Hello {
            version: protocol::VERSION,
            role: Role::Client,
            credential: Some("dashboard-secret-4567".into()),
            node: None,
        },
        Frame::Send {
            req: 0,
            to: "echo".into(),
            payload: Bytes::from_static(b"lost?"),
            priority: Priority::Normal,
            ttl_ms: None,
            durable_key: None,
        },
    ] {
        protocol::encode(&frame, &mut bytes);
    }
    s.write_all(&bytes).unwrap();
    let frames = frames_until_closed(&mut s);
    assert!(
        matches!(frames.first(), Some(Frame::Welcome { .. })),
        "{frames:?}"
    );
    match frames.last() {
        Some(Frame::Error {
            req: 0,
            code: ErrorCode::Unauthorized,
            message,
            detail,
        }) => {
            assert!(
                message.contains("SEND needs the message scope"),
                "{message}"
            );
            assert_eq!(detail.as_deref(), Some("message"));
        }
        other => panic!("expected the closing UNAUTHORIZED, got {other:?}"),
    }
    // Other connections are untouched.
    node.client().ping().unwrap();
}

#[test]
fn requests_beyond_the_window_are_refused_window_full_and_every_one_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    // Durable sends wait up to 1 s for their batch to commit: the first
    // four stay in flight while the rest arrive.
    let node = NodeProcess::start_with_env(
        &dir.path().join("data"),
        "batched",
        &[
            ("QUIRE_NETWORK_MAX_REQUESTS_IN_FLIGHT", "4"),
            ("QUIRE_STORAGE_BATCH_MAX_DELAY_US", "1000000"),
        ],
    );
    let mut client = node.client();
    assert_eq!(client.limits().unwrap().max_requests_in_flight, Some(4));
    client.deploy("echo", &echo_wasm()).unwrap();

    let mut s = TcpStream::connect(&node.addr).unwrap();
    let mut bytes = Vec::new();
    protocol::encode(
        &Frame::Hello {
            version: protocol::VERSION,
            role: Role::Client,
            credential: Some(TOKEN.into()),
            node: None,
        },
        &mut bytes,
    );
    let sent: u64 = 12;
    for req in 1..=sent {
        protocol::encode(
            &Frame::Send {
                req,
                to: "echo".into(),
                payload: Bytes::from_static(b"durable"),
                priority: Priority::Normal,
                ttl_ms: None,
                durable_key: Some(format!("key-{req}")),
            },
            &mut bytes,
        );
    }
    // A ping is answered whatever the window.
    protocol::encode(&Frame::Ping { req: 99 }, &mut bytes);
    s.write_all(&bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let frames = frames_until_closed(&mut s);
    let mut committed = Vec::new();
    let mut window_full = Vec::new();
    let mut pong = false;
    for frame in &frames[1..] {
        match frame {
            Frame::Ok { req, .. } => committed.push(*req),
            Frame::Error {
                req,
                code: ErrorCode::WindowFull,
                message,
                ..
            } => {
                assert!(message.contains("window"), "{message}");
                window_full.push(*req);
            }
            Frame::Pong { req: 99 } => pong = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pong, "{frames:?}");
    committed.sort_unstable();
    window_full.sort_unstable();
    assert_eq!(committed, vec![1, 2, 3, 4], "window full: {window_full:?}");
    assert_eq!(window_full, (5..=sent).collect::<Vec<_>>());
    // What was refused was not acted on: sent again, each is committed
    // for the first time (not a duplicate).
    let receipt = client
        .send_durable("echo", b"durable", "key-5")
        .expect("a refused request sent again is taken");
    assert_ne!(receipt, "duplicate");
}

#[test]
fn a_node_whose_secret_file_cannot_be_read_does_not_start_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("quire.toml");
    std::fs::write(
        &file,
        "[[network.tokens]]\nname = \"ops\"\nsecret_file = \"/nonexistent/ops.secret\"\nscopes = [\"admin\"]\n",
    )
    .unwrap();
    let port = quire_runtime::net::free_port_block(4);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quire"))
        .arg("node")
        .arg("--config")
        .arg(&file)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--no-metrics"])
        .args(["--shards", "1", "--durability", "none"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("token \"ops\"") && stderr.contains("/nonexistent/ops.secret"),
        "{stderr}"
    );
}
