//! A blocking connection to one node (what the `quire` CLI, the benchmarks,
//! the tests and outside programs use).
//!
//! Requests may be pipelined: [`RemoteClient::send_frame`] writes without
//! waiting and [`RemoteClient::read_frame`] takes answers in order of
//! arrival; the one-request helpers ([`RemoteClient::call`], ...) do both.
//!
//! ```no_run
//! use quire_client::RemoteClient;
//! use std::time::Duration;
//! let mut client = RemoteClient::connect("127.0.0.1:7400", None).unwrap();
//! let reply = client.call("echo", b"hi", Duration::from_secs(1)).unwrap();
//! assert_eq!(&reply[..], b"hi");
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::protocol::{
    self, Access, AgentLocation, AgentRow, DeployOptions, ErrorCode, Frame, Limits, MemberRow,
    Priority, Role, StatsRow, VERSION,
};
use crate::tls::{TlsOptions, Wire};

/// What went wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket failed (or the node is not there).
    #[error("cannot talk to {addr}: {source}")]
    Io {
        /// The node.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The node answered something that is not a valid frame.
    #[error("the node sent a malformed frame: {0}")]
    Protocol(String),
    /// The node refused the request.
    #[error("{message}")]
    Node {
        /// Its error code.
        code: ErrorCode,
        /// Its words.
        message: String,
        /// The rejection reason or the owner's address, when there is one.
        detail: Option<String>,
    },
    /// The node closed the connection.
    #[error("the node closed the connection")]
    Closed,
    /// TLS could not be set up: an unreadable authority file, a node
    /// whose certificate the authority did not sign or that does not
    /// carry the name asked for.
    #[error("TLS: {0}")]
    Tls(String),
}

impl ClientError {
    /// The node's error code, if the node refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Node { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A connection to one node.
#[derive(Debug)]
pub struct RemoteClient {
    stream: Wire,
    addr: String,
    token: Option<String>,
    tls: Option<TlsOptions>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    next_req: u64,
    node: String,
    shard: u64,
    limits: Option<Limits>,
    access: Option<Access>,
    max_frame: usize,
}

impl RemoteClient {
    /// Connects and says `HELLO` (with the admin token for deploys).
    pub fn connect(
        addr: impl ToSocketAddrs + ToString,
        token: Option<&str>,
    ) -> Result<Self, ClientError> {
        Self::open(addr, token, None)
    }

    /// Connects over TLS (to a node with `[network.tls]`), checks the
    /// node's certificate as `tls` says, and says `HELLO`.
    pub fn connect_tls(
        addr: impl ToSocketAddrs + ToString,
        token: Option<&str>,
        tls: &TlsOptions,
    ) -> Result<Self, ClientError> {
        Self::open(addr, token, Some(tls))
    }

    /// [`Self::connect`] or [`Self::connect_tls`], as `tls` says.
    pub fn open(
        addr: impl ToSocketAddrs + ToString,
        token: Option<&str>,
        tls: Option<&TlsOptions>,
    ) -> Result<Self, ClientError> {
        let name = addr.to_string();
        let io = |source| ClientError::Io {
            addr: name.clone(),
            source,
        };
        let target: SocketAddr = addr
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| io(io::Error::other("address resolves to nothing")))?;
        let stream = TcpStream::connect_timeout(&target, Duration::from_secs(5)).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let stream = match tls {
            Some(options) => Wire::tls(stream, &name, options)?,
            None => Wire::Plain(stream),
        };
        let mut client = Self {
            stream,
            addr: name,
            token: token.map(str::to_string),
            tls: tls.cloned(),
            buf: vec![0; 64 * 1024],
            start: 0,
            out: Vec::with_capacity(4096),
            next_req: 0,
            node: String::new(),
            shard: 0,
            limits: None,
            access: None,
            max_frame: 64 << 20,
            end: 0,
        };
        client.send_frame(&Frame::Hello {
            version: VERSION,
            role: Role::Client,
            credential: token.map(str::to_string),
            node: None,
        })?;
        match client.read_frame()? {
            Frame::Welcome {
                node,
                shard,
                limits,
                access,
                ..
            } => {
                client.node = node;
                client.shard = shard;
                client.limits = limits;
                client.access = access;
                Ok(client)
            }
            Frame::Error {
                code,
                message,
                detail,
                ..
            } => Err(ClientError::Node {
                code,
                message,
                detail,
            }),
            other => Err(ClientError::Protocol(format!(
                "expected WELCOME, got {other:?}"
            ))),
        }
    }

    /// The node's name, from its `WELCOME`.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The shard that accepted this connection.
    pub fn shard(&self) -> u64 {
        self.shard
    }

    /// The limits the node holds this connection to (the largest frame it
    /// takes, the answer bytes it may leave unread), from its `WELCOME`;
    /// `None` from a node older than protocol 1.2.
    pub fn limits(&self) -> Option<Limits> {
        self.limits
    }

    /// The credential the node took for this connection and the scopes it
    /// grants, from its `WELCOME`; `None` from a node older than protocol
    /// 1.3.
    pub fn access(&self) -> Option<&Access> {
        self.access.as_ref()
    }

    /// A fresh request number.
    pub fn next_req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    fn io(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    /// Queues `frame` (written by the next [`Self::flush`]).
    pub fn queue_frame(&mut self, frame: &Frame) {
        protocol::encode(frame, &mut self.out);
    }

    /// Writes whatever was queued.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        if !self.out.is_empty() {
            let result = self
                .stream
                .write_all(&self.out)
                .and_then(|()| self.stream.flush());
            self.out.clear();
            result.map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// Writes `frame` now.
    pub fn send_frame(&mut self, frame: &Frame) -> Result<(), ClientError> {
        self.queue_frame(frame);
        self.flush()
    }

    /// A second handle on the connection's socket, for a thread that only
    /// writes (frames encoded with [`crate::protocol::encode`]) while this
    /// client keeps reading: a load generator sends on schedule whatever
    /// the replies do.
    /// Not on a TLS connection, whose one session both directions share.
    pub fn writer(&self) -> Result<TcpStream, ClientError> {
        match &self.stream {
            Wire::Plain(tcp) => tcp.try_clone().map_err(|e| self.io(e)),
            Wire::Tls(_) => Err(ClientError::Tls(
                "a TLS connection has no second writer handle (one session serves both directions)"
                    .into(),
            )),
        }
    }

    /// How long [`Self::read_frame`] waits before it fails with a timeout
    /// (`None`: for ever); a read that timed out can simply be retried.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.stream
            .tcp()
            .set_read_timeout(timeout)
            .map_err(|e| self.io(e))
    }

    /// Waits up to `timeout` until [`Self::read_frame`] has bytes to read
    /// (already buffered, or on the socket); false if none came.
    ///
    /// For a client whose writes come from another thread (see
    /// [`Self::writer`]): a read that blocks waits inside the kernel's
    /// socket lock dance with that thread's sends, which on a VM spins
    /// for ms; a read after this finds its data there.
    pub fn wait_readable(&mut self, timeout: Duration) -> Result<bool, ClientError> {
        if self.end > self.start || self.stream.has_buffered() {
            return Ok(true);
        }
        let mut fd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(self.stream.tcp()),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one pollfd of ours, for a socket this client owns.
        match unsafe { libc::poll(&mut fd, 1, ms) } {
            n if n >= 0 => Ok(n > 0),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(self.io(e))
                }
            }
        }
    }

    /// Writes raw bytes (tests of bad input use it).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes).map_err(|e| self.io(e))
    }

    /// Reads the next frame from the node.
    pub fn read_frame(&mut self) -> Result<Frame, ClientError> {
        loop {
            match protocol::decode(&self.buf[self.start..self.end], self.max_frame) {
                Ok(Some((frame, used))) => {
                    self.start += used;
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            let pending = self.end - self.start;
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
            let need = protocol::body_len(&self.buf[..self.end], self.max_frame)
                .ok()
                .flatten()
                .map_or(0, |l| l + protocol::PREFIX_BYTES);
            if self.buf.len() < need.max(self.end + 1) {
                self.buf
                    .resize(need.max(self.end + 1).next_power_of_two(), 0);
            }
            let n = match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => n,
                // A signal landed on this thread (a node in the same
                // process preempts its handlers with signals): read again.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // A TLS peer that went away without saying it closes.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(ClientError::Closed)
                }
                Err(e) => return Err(self.io(e)),
            };
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.end += n;
        }
    }

    /// Waits for the answer to `req`; other answers are dropped (use the
    /// frame API to pipeline).
    fn answer(&mut self, req: u64) -> Result<Frame, ClientError> {
        loop {
            let frame = self.read_frame()?;
            match frame.answer_to() {
                Some(r) if r == req || r == 0 => {}
                _ => continue,
            }
            return match frame {
                Frame::Error {
                    code,
                    message,
                    detail,
                    ..
                } => Err(ClientError::Node {
                    code,
                    message,
                    detail,
                }),
                // Only an ERROR may answer for the whole connection.
                other if other.answer_to() == Some(0) && req != 0 => continue,
                other => Ok(other),
            };
        }
    }

    /// Sends a one-way message and waits until it is queued at its agent
    /// (on whichever shard or node owns it); returns its message id. A
    /// refusal (no such agent, full mailbox, ...) is an error with the
    /// reason.
    pub fn send(&mut self, to: &str, payload: &[u8]) -> Result<String, ClientError> {
        self.send_keyed(to, payload, None)
    }

    /// Sends a durable one-way message: returns once it is committed on its
    /// agent's shard (`"duplicate"` when a message with the same `key` was
    /// taken before, which is then not delivered again). Retry with the same
    /// key after any error or a lost connection: the message is handled
    /// once. Needs a node with persistent durability.
    pub fn send_durable(
        &mut self,
        to: &str,
        payload: &[u8],
        key: &str,
    ) -> Result<String, ClientError> {
        self.send_keyed(to, payload, Some(key))
    }

    fn send_keyed(
        &mut self,
        to: &str,
        payload: &[u8],
        key: Option<&str>,
    ) -> Result<String, ClientError> {
        match self.request(|req| Frame::Send {
            req,
            to: to.into(),
            payload: Bytes::copy_from_slice(payload),
            priority: Priority::Normal,
            ttl_ms: None,
            durable_key: key.map(str::to_owned),
        })? {
            Frame::Ok { value, .. } => Ok(value.unwrap_or_default()),
            other => Err(unexpected(other)),
        }
    }

    /// Calls `to` and waits for its reply.
    pub fn call(
        &mut self,
        to: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, ClientError> {
        match self.request(|req| Frame::Call {
            req,
            to: to.into(),
            payload: Bytes::copy_from_slice(payload),
            priority: Priority::Normal,
            timeout_ms: timeout.as_millis().max(1) as u64,
        })? {
            Frame::Reply { payload, .. } => Ok(payload),
            other => Err(unexpected(other)),
        }
    }

    /// Deploys a WebAssembly module as agent `name` (or pattern `prefix-*`);
    /// returns its content hash. A node that does not own the name answers
    /// with its owner, where the deploy is retried once.
    pub fn deploy(&mut self, name: &str, module: &[u8]) -> Result<String, ClientError> {
        self.deploy_with(name, module, &DeployOptions::default())
    }

    /// [`Self::deploy`] with limits and supervision of its own (any not
    /// given keep the node's defaults); a setting the node does not know,
    /// or a value it refuses, fails the deploy naming it.
    pub fn deploy_with(
        &mut self,
        name: &str,
        module: &[u8],
        options: &DeployOptions,
    ) -> Result<String, ClientError> {
        let frame = |req| Frame::Deploy {
            req,
            name: name.into(),
            module: Bytes::copy_from_slice(module),
            options: options.clone(),
        };
        self.admin_ok(frame)
    }

    /// Deploys one WebAssembly module under every name of `names` in one
    /// frame (compiled once, one commit per shard). Returns the module's
    /// hash and the names that failed with their reasons; every other name
    /// is deployed. In a cluster, names another member owns fail naming it.
    pub fn deploy_many(
        &mut self,
        names: &[String],
        module: &[u8],
    ) -> Result<(String, Vec<(String, String)>), ClientError> {
        let frame = |req| Frame::DeployMany {
            req,
            names: names.to_vec(),
            module: Bytes::copy_from_slice(module),
        };
        match self.admin(frame)? {
            Frame::Deployed { hash, failed, .. } => Ok((hash, failed)),
            other => Err(unexpected(other)),
        }
    }

    /// Removes agent (or pattern) `name`.
    pub fn undeploy(&mut self, name: &str) -> Result<(), ClientError> {
        self.admin(|req| Frame::Undeploy {
            req,
            name: name.into(),
        })
        .map(|_| ())
    }

    /// Replaces deployed WebAssembly agent `name`'s module in place: its
    /// state and queue are kept, and messages handled from now on run the
    /// new version. Returns the new module's hash.
    pub fn reload(&mut self, name: &str, module: &[u8]) -> Result<String, ClientError> {
        self.reload_with(name, module, &DeployOptions::default())
    }

    /// [`Self::reload`] with limits and supervision of its own, as for
    /// [`Self::deploy_with`].
    pub fn reload_with(
        &mut self,
        name: &str,
        module: &[u8],
        options: &DeployOptions,
    ) -> Result<String, ClientError> {
        let frame = |req| Frame::Reload {
            req,
            name: name.into(),
            module: Bytes::copy_from_slice(module),
            options: options.clone(),
        };
        self.admin_ok(frame)
    }

    /// Stops agent `name`: it keeps its state and queue; messages sent to
    /// it are refused `agent_stopped` until [`Self::start`].
    pub fn stop(&mut self, name: &str) -> Result<(), ClientError> {
        self.admin(|req| Frame::Stop {
            req,
            name: name.into(),
        })
        .map(|_| ())
    }

    /// Starts stopped (or quarantined) agent `name` again.
    pub fn start(&mut self, name: &str) -> Result<(), ClientError> {
        self.admin(|req| Frame::Start {
            req,
            name: name.into(),
        })
        .map(|_| ())
    }

    /// Agent `name`'s row: state, version, queue, failures, memory, ...
    pub fn info(&mut self, name: &str) -> Result<AgentRow, ClientError> {
        match self.request(|req| Frame::AgentInfo {
            req,
            name: name.into(),
        })? {
            Frame::Agents { mut agents, .. } if agents.len() == 1 => Ok(agents.remove(0)),
            other => Err(unexpected(other)),
        }
    }

    /// One request and its answer.
    fn request(&mut self, make: impl FnOnce(u64) -> Frame) -> Result<Frame, ClientError> {
        let req = self.next_req();
        self.send_frame(&make(req))?;
        self.answer(req)
    }

    /// An admin request answered `OK` with a value (a module hash).
    fn admin_ok(&mut self, make: impl Fn(u64) -> Frame) -> Result<String, ClientError> {
        match self.admin(make)? {
            Frame::Ok { value, .. } => Ok(value.unwrap_or_default()),
            other => Err(unexpected(other)),
        }
    }

    fn admin(&mut self, make: impl Fn(u64) -> Frame) -> Result<Frame, ClientError> {
        match self.request(&make) {
            Err(ClientError::Node {
                code: ErrorCode::NotOwner,
                detail: Some(owner),
                ..
            }) => RemoteClient::open(owner.as_str(), self.token.as_deref(), self.tls.as_ref())?
                .request(make),
            other => other,
        }
    }

    /// The node's agents.
    pub fn agents(&mut self) -> Result<Vec<AgentRow>, ClientError> {
        match self.request(|req| Frame::ListAgents { req })? {
            Frame::Agents { agents, .. } => Ok(agents),
            other => Err(unexpected(other)),
        }
    }

    /// The node's name patterns (`prefix*`) with their modules' short
    /// hashes.
    pub fn patterns(&mut self) -> Result<Vec<(String, String)>, ClientError> {
        match self.request(|req| Frame::ListPatterns { req })? {
            Frame::Patterns { patterns, .. } => Ok(patterns),
            other => Err(unexpected(other)),
        }
    }

    /// Where `name` lives as this node sees the cluster: the owning node
    /// and shard and, when this node owns it, whether it is deployed.
    pub fn locate(&mut self, name: &str) -> Result<AgentLocation, ClientError> {
        match self.request(|req| Frame::Where {
            req,
            name: name.to_string(),
        })? {
            Frame::Location { location, .. } => Ok(location),
            other => Err(unexpected(other)),
        }
    }

    /// Per-shard counters of the node.
    pub fn stats(&mut self) -> Result<Vec<StatsRow>, ClientError> {
        match self.request(|req| Frame::Stats { req })? {
            Frame::StatsReply { shards, .. } => Ok(shards),
            other => Err(unexpected(other)),
        }
    }

    /// The cluster's members as the node sees them (itself first).
    pub fn cluster(&mut self) -> Result<Vec<MemberRow>, ClientError> {
        match self.request(|req| Frame::Cluster { req })? {
            Frame::Members { members, .. } => Ok(members),
            other => Err(unexpected(other)),
        }
    }

    /// Round trip to the node.
    pub fn ping(&mut self) -> Result<Duration, ClientError> {
        let started = Instant::now();
        self.request(|req| Frame::Ping { req })?;
        Ok(started.elapsed())
    }

    /// Closes the sending side (the node answers what is pending, then closes).
    pub fn shutdown_write(&mut self) -> Result<(), ClientError> {
        self.stream.shutdown_write().map_err(|e| self.io(e))
    }
}

/// An answer of the wrong kind for its request.
fn unexpected(frame: Frame) -> ClientError {
    ClientError::Protocol(format!("unexpected {}: {frame:?}", frame.name()))
}
