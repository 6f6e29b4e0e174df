//! TLS where users meet it, against real `quire node` processes with
//! certificates from `quire certs`: clients over TLS (calls pipelined and
//! large), a clear-text client on a TLS port told so in words, a node whose
//! certificate the client's authority did not sign or that does not carry
//! the name asked for refused; node links in mutual TLS carrying calls
//! between two nodes, and a link whose certificate names another node than
//! its HELLO refused.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quire_client::protocol::{self as wire, Frame, Role};
use quire_client::{ClientError, RemoteClient, TlsOptions};
use quire_runtime::net::free_port_block;
use quire_runtime::protocol::ErrorCode;

const TOKEN: &str = "tls-test-token";
const SECRET: &str = "tls-test-secret";

struct Node {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn make_certs(dir: &Path, nodes: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_quire"))
        .arg("certs")
        .arg("--out")
        .arg(dir)
        .args(["--nodes", &nodes.join(",")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts node `name` (one shard) with `config`, `seeds` its join ports.
fn start(dir: &Path, name: &str, config: &str, seeds: &[u16]) -> Node {
    let port = free_port_block(1);
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, config).unwrap();
    let log = dir.join(format!("{name}.log"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quire"));
    cmd.args(["node", "--shards", "1", "--durability", "none"])
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.join(name))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics", &format!("127.0.0.1:{}", free_port_block(0))])
        .args([
            "--node-name",
            name,
            "--admin-token",
            TOKEN,
            "--secret",
            SECRET,
        ]);
    if !seeds.is_empty() {
        let list: Vec<String> = seeds.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        cmd.args(["--seeds", &list.join(",")]);
    }
    let child = cmd
        .env("QUIRE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Node { child, port, log }
}

/// A TLS client of `node`, retried while the node starts.
fn tls_client(node: &mut Node, tls: &TlsOptions) -> RemoteClient {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match RemoteClient::connect_tls(node.addr().as_str(), Some(TOKEN), tls) {
            Ok(client) => return client,
            Err(e) => {
                if let Some(status) = node.child.try_wait().unwrap() {
                    panic!(
                        "node exited with {status}: {}",
                        std::fs::read_to_string(&node.log).unwrap()
                    );
                }
                assert!(Instant::now() < deadline, "no TLS connection: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn client_port_config(certs: &Path, node: &str) -> String {
    format!(
        "[network.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        certs.join(format!("{node}.pem")),
        certs.join(format!("{node}.key"))
    )
}

#[test]
fn clients_speak_tls_and_wrong_certificates_or_clear_text_are_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_certs(&certs, &["node-a"]);
    let mut node = start(
        dir.path(),
        "node-a",
        &client_port_config(&certs, "node-a"),
        &[],
    );
    let tls = TlsOptions::from_ca_file(certs.join("ca.pem")).unwrap();
    let mut client = tls_client(&mut node, &tls);
    client
        .deploy("echo", &quire_shards::testing::wat_echo())
        .unwrap();
    let reply = client
        .call("echo", b"over tls", Duration::from_secs(5))
        .unwrap();
    assert_eq!(&reply[..], b"over tls");

    // Pipelined: 500 calls written at once, every answer read back.
    let mut reqs = Vec::new();
    for i in 0..500u32 {
        let req = client.next_req();
        reqs.push(req);
        client.queue_frame(&Frame::Call {
            req,
            to: "echo".into(),
            payload: bytes::Bytes::from(i.to_be_bytes().to_vec()),
            timeout_ms: 5_000,
            priority: quire_client::Priority::Normal,
        });
    }
    client.flush().unwrap();
    let mut answered = 0;
    while answered < reqs.len() {
        match client.read_frame().unwrap() {
            Frame::Reply { .. } => answered += 1,
            other => panic!("answered {other:?}"),
        }
    }
    // Larger than a TLS record (16 KiB) and than our read buffer (32 KiB).
    let big = vec![7u8; 40 * 1024];
    let reply = client.call("echo", &big, Duration::from_secs(5)).unwrap();
    assert_eq!(reply.len(), big.len());

    // Clear text on the TLS port: a clear-text error frame saying so.
    match RemoteClient::connect(node.addr().as_str(), None) {
        Err(ClientError::Node { code, message, .. }) => {
            assert_eq!(code, ErrorCode::HandshakeRequired);
            assert!(message.contains("speaks TLS only"), "{message}");
        }
        other => panic!("a clear-text client got {other:?}"),
    }
    // Another authority: the node's certificate is not trusted.
    let other = dir.path().join("other");
    make_certs(&other, &["node-a"]);
    let stranger = TlsOptions::from_ca_file(other.join("ca.pem")).unwrap();
    match RemoteClient::connect_tls(node.addr().as_str(), None, &stranger) {
        Err(ClientError::Tls(message)) => assert!(message.contains("certificate"), "{message}"),
        other => panic!("an untrusted node was accepted: {other:?}"),
    }
    // The right authority, but the certificate does not carry the name.
    let misnamed = tls.clone().server_name("node-b");
    match RemoteClient::connect_tls(node.addr().as_str(), None, &misnamed) {
        Err(ClientError::Tls(message)) => assert!(message.contains("node-b"), "{message}"),
        other => panic!("a node under another name was accepted: {other:?}"),
    }
    // The node kept serving through the refusals.
    let reply = client
        .call("echo", b"still", Duration::from_secs(5))
        .unwrap();
    assert_eq!(&reply[..], b"still");
    // The CLI connects with --tls-ca.
    let out = Command::new(env!("CARGO_BIN_EXE_quire"))
        .args(["call", "--node", &node.addr(), "echo", "\"cli\""])
        .arg("--tls-ca")
        .arg(certs.join("ca.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn link_config(certs: &Path, node: &str) -> String {
    format!(
        "[cluster]\nprobe_period_ms = 200\nprobe_rtt_ms = 80\nsuspect_to_down_ms = 1000\ngossip_period_ms = 100\n\
         [cluster.tls]\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
        certs.join("ca.pem"),
        certs.join(format!("{node}.pem")),
        certs.join(format!("{node}.key"))
    )
}

fn plain_client(node: &Node) -> RemoteClient {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match RemoteClient::connect(node.addr().as_str(), Some(TOKEN)) {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("node never answered: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Opens node `to`'s link port with mutual TLS as `cert` of `certs`, says
/// HELLO as node `claimed`, and returns the node's first answer.
fn link_hello(to: &Node, certs: &Path, cert: &str, claimed: &str) -> Result<Frame, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(certs.join("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(certs.join(format!("{cert}.pem")))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(certs.join(format!("{cert}.key"))).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("node-a").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", to.port + 1)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut hello = Vec::new();
    wire::encode(
        &Frame::Hello {
            version: wire::VERSION,
            role: Role::Peer,
            credential: Some(SECRET.into()),
            node: Some(claimed.into()),
        },
        &mut hello,
    );
    stream.write_all(&hello).map_err(|e| e.to_string())?;
    stream.flush().map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(Some((frame, _))) = wire::decode(&got, 1 << 20) {
            return Ok(frame);
        }
        match stream.read(&mut buf) {
            Ok(0) => return Err("closed without an answer".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[test]
fn node_links_speak_mutual_tls_and_a_certificate_must_name_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_certs(&certs, &["node-a", "node-b"]);
    let a = start(dir.path(), "node-a", &link_config(&certs, "node-a"), &[]);
    let mut a_client = plain_client(&a);
    let b = start(
        dir.path(),
        "node-b",
        &link_config(&certs, "node-b"),
        &[a.port],
    );
    let mut b_client = plain_client(&b);
    let deadline = Instant::now() + Duration::from_secs(20);
    while a_client
        .cluster()
        .unwrap()
        .iter()
        .filter(|m| m.state == "alive")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the nodes never saw each other");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Agents placed on both nodes; every call through A answers, those
    // owned by B over the TLS link.
    let echo = quire_shards::testing::wat_echo();
    let names: Vec<String> = (0..16).map(|i| format!("echo-{i}")).collect();
    for name in &names {
        a_client.deploy(name, &echo).unwrap();
    }
    let on_b = b_client.agents().unwrap().len();
    assert!(
        on_b > 0 && on_b < names.len(),
        "{on_b} of 16 agents on node-b"
    );
    for name in &names {
        let reply = a_client
            .call(name, name.as_bytes(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(&reply[..], name.as_bytes());
    }

    // node-b's own certificate, claiming node-b: welcomed.
    match link_hello(&a, &certs, "node-b", "node-b") {
        Ok(Frame::Welcome { node, .. }) => assert_eq!(node, "node-a"),
        other => panic!("a true node-b got {other:?}"),
    }
    // node-b's certificate, claiming to be node-c: refused in words.
    match link_hello(&a, &certs, "node-b", "node-c") {
        Ok(Frame::Error { code, message, .. }) => {
            assert_eq!(code, ErrorCode::Unauthorized);
            assert!(
                message.contains("node-c") && message.contains("does not name"),
                "{message}"
            );
        }
        other => panic!("a node passing for another got {other:?}"),
    }
    // A certificate of another authority: no link at all.
    let other = dir.path().join("other");
    make_certs(&other, &["node-b"]);
    std::fs::copy(certs.join("ca.pem"), other.join("ca.pem")).unwrap();
    assert!(
        link_hello(&a, &other, "node-b", "node-b").is_err(),
        "a certificate of another authority was taken"
    );
    // The cluster still works after the refusals.
    for name in &names {
        let reply = a_client
            .call(name, b"after", Duration::from_secs(5))
            .unwrap();
        assert_eq!(&reply[..], b"after");
    }
    drop(b);
}
