//! A `quire node` process for the tests that meet a node the way its users
//! do: started from the binary, driven over the wire, stopped by signals.

#![allow(dead_code)] // each test binary uses its own part of this

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quire_client::RemoteClient;
use quire_runtime::net::free_port_block;

pub const TOKEN: &str = "process-token";

pub fn shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2)
}

/// The SDK's counter agent: counts in its durable state, answers a call
/// with the count (u64, little-endian).
pub fn counter_wasm() -> Vec<u8> {
    prebuilt("counter")
}

/// One of the SDK's prebuilt agents (`echo`, `counter`, ...).
pub fn prebuilt(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../sdk/prebuilt/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn decode_count(reply: &[u8]) -> u64 {
    reply.try_into().map(u64::from_le_bytes).unwrap_or(0)
}

/// Where a node's stderr goes.
#[derive(Clone, Copy)]
enum Stderr {
    File,
    UnreadPipe,
}

/// A running `quire node` with storage in `data_dir`.
pub struct NodeProcess {
    pub child: Child,
    pub addr: String,
    pub metrics: String,
    stderr: PathBuf,
}

impl NodeProcess {
    /// Starts a node on fresh ports and waits until it answers on the wire.
    /// A port taken between the pick and the node's bind (an ephemeral port
    /// of some outgoing connection) is tried again with other ports.
    pub fn start(data_dir: &Path, durability: &str) -> Self {
        Self::start_with_env(data_dir, durability, &[])
    }

    /// The same, with `env` (e.g. `QUIRE_*` settings) in its environment.
    pub fn start_with_env(data_dir: &Path, durability: &str, env: &[(&str, &str)]) -> Self {
        Self::start_logging_to(data_dir, durability, env, Stderr::File, None)
    }

    /// The same, with its stderr a pipe no one reads (a log reader that
    /// stopped): `log()` is empty.
    pub fn start_with_stderr_unread(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_logging_to(data_dir, "none", env, Stderr::UnreadPipe, None)
    }

    /// The same, started with `--config` on a file holding `config` (TOML;
    /// what it leaves out keeps its default), `env` on top.
    pub fn start_with_config(
        data_dir: &Path,
        durability: &str,
        config: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let file = data_dir.with_extension("toml");
        std::fs::write(&file, config).unwrap();
        Self::start_logging_to(data_dir, durability, env, Stderr::File, Some(&file))
    }

    fn start_logging_to(
        data_dir: &Path,
        durability: &str,
        env: &[(&str, &str)],
        sink: Stderr,
        config: Option<&Path>,
    ) -> Self {
        for _ in 0..5 {
            match Self::try_start(data_dir, durability, env, sink, config) {
                Ok(node) => return node,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("the node did not start: {log}"),
            }
        }
        panic!("no free ports for a node after 5 tries")
    }

    fn try_start(
        data_dir: &Path,
        durability: &str,
        env: &[(&str, &str)],
        sink: Stderr,
        config: Option<&Path>,
    ) -> Result<Self, String> {
        let n = shards() as u16;
        let port = free_port_block(n + 1);
        let addr = format!("127.0.0.1:{port}");
        // Past the node-link ports (port + 1 + shard).
        let metrics = format!("127.0.0.1:{}", port + n + 1);
        let stderr = data_dir.with_extension(format!("{port}.stderr"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_quire"));
        command.arg("node");
        if let Some(file) = config {
            command.arg("--config").arg(file);
        }
        let child = command
            .args(["--admin-token", TOKEN])
            .args(["--listen", &addr, "--metrics", &metrics])
            .args(["--shards", &shards().to_string()])
            .args(["--durability", durability])
            .arg("--data-dir")
            .arg(data_dir)
            .env("QUIRE_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(match sink {
                Stderr::File => Stdio::from(std::fs::File::create(&stderr).unwrap()),
                Stderr::UnreadPipe => Stdio::piped(),
            })
            .spawn()
            .unwrap();
        let mut node = NodeProcess {
            child,
            addr,
            metrics,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while RemoteClient::connect(&node.addr, None).is_err() {
            if let Some(status) = node.child.try_wait().unwrap() {
                let mut log = node.log();
                if let Some(pipe) = node.child.stderr.as_mut() {
                    let _ = pipe.read_to_string(&mut log);
                }
                return Err(format!("exited with {status}: {log}"));
            }
            if Instant::now() >= deadline {
                return Err(format!("never answered: {}", node.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(node)
    }

    pub fn client(&self) -> RemoteClient {
        RemoteClient::connect(&self.addr, Some(TOKEN)).unwrap()
    }

    /// What the node wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGKILL: no drain, no last commit.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends `signal` and waits for the exit; returns the exit code.
    pub fn stop_with(mut self, signal: i32) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the node did not stop: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET `path` on the metrics endpoint: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.metrics, path)
    }
}

/// GET `path` from the HTTP endpoint at `addr`: (status, body).
pub fn http_get(addr: impl std::net::ToSocketAddrs, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// Reads frames until the node closes the connection; returns them.
pub fn frames_until_closed(s: &mut TcpStream) -> Vec<quire_runtime::protocol::Frame> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the node did not close the connection: {e}"),
        }
    }
    let mut frames = Vec::new();
    let mut at = 0;
    while let Ok(Some((frame, used))) = quire_client::protocol::decode(
        &bytes[at..],
        quire_client::protocol::DEFAULT_MAX_FRAME_BYTES,
    ) {
        frames.push(frame);
        at += used;
    }
    frames
}
