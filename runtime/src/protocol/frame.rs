//! Frames of the Quire wire protocol and their codec: a pure function from
//! frames to bytes and back, with no sockets (docs/protocol.md is the
//! normative description; keep the two in step).
//!
//! On the wire a frame is a 4-byte big-endian body length followed by the
//! body, a MessagePack array whose first element is the frame type.

use std::time::{Duration, Instant};

use bytes::Bytes;
use quire_shards::{Address, ClientTicket, Envelope, Kind, MessageId, Priority, Rejection};

use super::msgpack::{ReadError, Reader, Writer};

/// First element of every `HELLO`.
pub const MAGIC: &str = "QUIRE";
/// The protocol version this build speaks.
pub const VERSION: u64 = 1;
/// Bytes of the length prefix.
pub const PREFIX_BYTES: usize = 4;
/// Default largest frame body a node takes (deploys on an admin connection
/// may be larger: see `network.max_frame_bytes`).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1 << 20;

/// Frame type codes (the first element of a body).
pub mod code {
    pub const HELLO: u64 = 1;
    pub const WELCOME: u64 = 2;
    pub const SEND: u64 = 3;
    pub const CALL: u64 = 4;
    pub const REPLY: u64 = 5;
    pub const OK: u64 = 6;
    pub const DEPLOY: u64 = 7;
    pub const UNDEPLOY: u64 = 8;
    pub const LIST_AGENTS: u64 = 9;
    pub const AGENTS: u64 = 10;
    pub const STATS: u64 = 11;
    pub const STATS_REPLY: u64 = 12;
    pub const CLUSTER: u64 = 13;
    pub const MEMBERS: u64 = 14;
    pub const PING: u64 = 15;
    pub const PONG: u64 = 16;
    pub const ERROR: u64 = 17;
    pub const DEPLOY_MANY: u64 = 18;
    pub const DEPLOYED: u64 = 19;
    pub const ENVELOPE: u64 = 32;
}

/// Who opens a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An application or the CLI.
    Client,
    /// Another node's shard, for node-to-node envelopes.
    Peer,
}

/// Error codes of `ERROR` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// Not a well-formed frame body; the connection closes.
    BadFrame = 1,
    /// The length prefix is over the maximum; the connection closes.
    FrameTooLarge = 2,
    /// Wrong magic or a version this node does not speak; closes.
    UnsupportedVersion = 3,
    /// Missing or wrong credentials; closes.
    Unauthorized = 4,
    /// A frame type this node does not know (or not valid here); closes.
    UnknownFrame = 5,
    /// The message was refused; `detail` is the reason (`queue_full`, ...).
    Rejected = 6,
    /// The call got no reply within its timeout.
    Timeout = 7,
    /// The module or the deploy request was refused; `message` says why.
    DeployFailed = 8,
    /// Another node owns that agent name; `detail` is its client address.
    NotOwner = 9,
    /// No such agent (undeploy).
    NotFound = 10,
    /// The client sent a partial frame and then nothing for too long, or
    /// does not read its replies; closes.
    SlowClient = 11,
    /// The node failed; `message` says how.
    Internal = 12,
    /// The first frame was not `HELLO`; closes.
    HandshakeRequired = 13,
}

impl ErrorCode {
    /// From its number; `None` for codes this build does not know.
    pub fn from_u64(v: u64) -> Option<Self> {
        use ErrorCode::*;
        Some(match v {
            1 => BadFrame,
            2 => FrameTooLarge,
            3 => UnsupportedVersion,
            4 => Unauthorized,
            5 => UnknownFrame,
            6 => Rejected,
            7 => Timeout,
            8 => DeployFailed,
            9 => NotOwner,
            10 => NotFound,
            11 => SlowClient,
            12 => Internal,
            13 => HandshakeRequired,
            _ => return None,
        })
    }

    /// Its stable lower-case name.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadFrame => "bad_frame",
            FrameTooLarge => "frame_too_large",
            UnsupportedVersion => "unsupported_version",
            Unauthorized => "unauthorized",
            UnknownFrame => "unknown_frame",
            Rejected => "rejected",
            Timeout => "timeout",
            DeployFailed => "deploy_failed",
            NotOwner => "not_owner",
            NotFound => "not_found",
            SlowClient => "slow_client",
            Internal => "internal",
            HandshakeRequired => "handshake_required",
        }
    }
}

/// One agent in an `AGENTS` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub name: String,
    pub shard: u64,
    /// running | idle | quarantined | stopped
    pub state: String,
    /// A WebAssembly module's content hash.
    pub version: Option<String>,
    pub queued: u64,
    pub failures: u64,
    pub restarts: u64,
    pub activations: u64,
    pub memory_bytes: u64,
    /// Time its handlers ran, ns (absent from older nodes: 0).
    pub busy_ns: u64,
    /// Bytes of its state (absent from older nodes: 0).
    pub state_bytes: u64,
    /// Calls it made that wait for answers (absent from older nodes: 0).
    pub calls_waiting: u64,
}

/// One cluster member in a `MEMBERS` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub name: String,
    /// Its client address (`host:port`).
    pub addr: String,
    /// alive | suspect | down
    pub state: String,
    pub shards: u64,
}

/// Named counters of one shard in a `STATS_REPLY` frame.
pub type StatsRow = Vec<(String, u64)>;

/// Every frame of protocol version 1.
#[derive(Debug, Clone)]
pub enum Frame {
    /// Opens every connection.
    Hello {
        version: u64,
        role: Role,
        /// The admin token (clients) or the cluster secret (peers).
        credential: Option<String>,
        /// The connecting node's name (peers).
        node: Option<String>,
    },
    /// The node's answer to a good `HELLO`.
    Welcome {
        version: u64,
        node: String,
        shard: u64,
        shards: u64,
    },
    /// A one-way message; `req` 0 asks for no acknowledgement.
    Send {
        req: u64,
        to: String,
        payload: Bytes,
        priority: Priority,
        ttl_ms: Option<u64>,
        /// Makes the send durable: acknowledged (`OK`) only once it is
        /// committed on the agent's shard, and handled once however often
        /// it is retried with the same key (the sender's idempotency key).
        /// Needs `req` > 0 and a node with persistent durability.
        durable_key: Option<String>,
    },
    /// A request; answered by `REPLY` or `ERROR` with the same `req`.
    Call {
        req: u64,
        to: String,
        payload: Bytes,
        priority: Priority,
        timeout_ms: u64,
    },
    /// The answer to a `CALL`.
    Reply { req: u64, payload: Bytes },
    /// Success of a `SEND` (value: the message id), `DEPLOY` (the module
    /// hash), `UNDEPLOY`.
    Ok { req: u64, value: Option<String> },
    /// Deploys a WebAssembly module under a name (or a `prefix-*` pattern).
    Deploy {
        req: u64,
        name: String,
        module: Bytes,
    },
    /// Deploys one WebAssembly module under many names (compiled once,
    /// one commit per shard).
    DeployMany {
        req: u64,
        names: Vec<String>,
        module: Bytes,
    },
    /// The answer to a `DEPLOY_MANY`: the module hash and the names that
    /// failed, each with its reason (every other name is deployed).
    Deployed {
        req: u64,
        hash: String,
        failed: Vec<(String, String)>,
    },
    /// Removes an agent or a pattern.
    Undeploy { req: u64, name: String },
    /// Asks for the agents of the node.
    ListAgents { req: u64 },
    /// The agents of the node.
    Agents { req: u64, agents: Vec<AgentRow> },
    /// Asks for per-shard counters.
    Stats { req: u64 },
    /// Per-shard counters.
    StatsReply { req: u64, shards: Vec<StatsRow> },
    /// Asks for the cluster's members as this node sees them.
    Cluster { req: u64 },
    /// The members.
    Members { req: u64, members: Vec<MemberRow> },
    /// Liveness check.
    Ping { req: u64 },
    /// Its answer.
    Pong { req: u64 },
    /// A request failed (or the connection is about to close, `req` 0).
    Error {
        req: u64,
        code: ErrorCode,
        message: String,
        detail: Option<String>,
    },
    /// Node to node: one envelope (peer connections only).
    Envelope(Envelope),
}

impl Frame {
    /// The frame type's name, as docs/protocol.md writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "HELLO",
            Frame::Welcome { .. } => "WELCOME",
            Frame::Send { .. } => "SEND",
            Frame::Call { .. } => "CALL",
            Frame::Reply { .. } => "REPLY",
            Frame::Ok { .. } => "OK",
            Frame::Deploy { .. } => "DEPLOY",
            Frame::DeployMany { .. } => "DEPLOY_MANY",
            Frame::Deployed { .. } => "DEPLOYED",
            Frame::Undeploy { .. } => "UNDEPLOY",
            Frame::ListAgents { .. } => "LIST_AGENTS",
            Frame::Agents { .. } => "AGENTS",
            Frame::Stats { .. } => "STATS",
            Frame::StatsReply { .. } => "STATS_REPLY",
            Frame::Cluster { .. } => "CLUSTER",
            Frame::Members { .. } => "MEMBERS",
            Frame::Ping { .. } => "PING",
            Frame::Pong { .. } => "PONG",
            Frame::Error { .. } => "ERROR",
            Frame::Envelope(_) => "ENVELOPE",
        }
    }
}

impl PartialEq for Frame {
    /// Envelopes compare every field but the deadline (an instant that
    /// travels as time left); other frames compare by their encoding.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Frame::Envelope(a), Frame::Envelope(b)) => {
                a.id == b.id
                    && a.from == b.from
                    && a.to == b.to
                    && a.kind == b.kind
                    && a.conversation == b.conversation
                    && a.in_reply_to == b.in_reply_to
                    && a.priority == b.priority
                    && a.deadline.is_some() == b.deadline.is_some()
                    && a.payload == b.payload
            }
            (Frame::Envelope(_), _) | (_, Frame::Envelope(_)) => false,
            (a, b) => {
                let (mut x, mut y) = (Vec::new(), Vec::new());
                encode(a, &mut x);
                encode(b, &mut y);
                x == y
            }
        }
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix announces more than the allowed maximum; nothing
    /// of the body was read.
    #[error("frame of {len} bytes is over the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    /// The body is not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(#[from] ReadError),
    /// The frame type is not one this build knows.
    #[error("unknown frame type {0}")]
    UnknownType(u64),
    /// A HELLO whose magic is not `QUIRE`: another protocol, or another
    /// program altogether.
    #[error("HELLO magic {found:?} is not {MAGIC:?}: not the Quire protocol")]
    WrongMagic {
        /// What came instead (at most 32 characters of it).
        found: String,
    },
}

impl DecodeError {
    /// The error code a node answers this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::Malformed(_) => ErrorCode::BadFrame,
            DecodeError::UnknownType(_) => ErrorCode::UnknownFrame,
            DecodeError::WrongMagic { .. } => ErrorCode::UnsupportedVersion,
        }
    }
}

/// Body length announced by the prefix at the start of `buf`, checked
/// against `max`; `None` while fewer than 4 bytes are there.
pub fn body_len(buf: &[u8], max: usize) -> Result<Option<usize>, DecodeError> {
    let Some(prefix) = buf.get(..PREFIX_BYTES) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > max {
        return Err(DecodeError::TooLarge { len, max });
    }
    Ok(Some(len))
}

/// Decodes the first frame of `buf`: `Ok(None)` while it is incomplete,
/// else the frame and how many bytes it took. `now` turns an envelope's
/// time to live into a deadline.
///
/// ```
/// use quire_runtime::protocol::{decode, encode, Frame, DEFAULT_MAX_FRAME_BYTES};
/// let mut buf = Vec::new();
/// encode(&Frame::Ping { req: 7 }, &mut buf);
/// let now = std::time::Instant::now();
/// assert_eq!(decode(&buf[..3], DEFAULT_MAX_FRAME_BYTES, now), Ok(None));
/// let (frame, used) = decode(&buf, DEFAULT_MAX_FRAME_BYTES, now).unwrap().unwrap();
/// assert_eq!((frame, used), (Frame::Ping { req: 7 }, buf.len()));
/// ```
pub fn decode(buf: &[u8], max: usize, now: Instant) -> Result<Option<(Frame, usize)>, DecodeError> {
    let Some(len) = body_len(buf, max)? else {
        return Ok(None);
    };
    let Some(body) = buf.get(PREFIX_BYTES..PREFIX_BYTES + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body, now)?, PREFIX_BYTES + len)))
}

/// Decodes one frame body (without its prefix).
pub fn decode_body(body: &[u8], now: Instant) -> Result<Frame, DecodeError> {
    let mut r = Reader::new(body);
    let fields = r.array("frame")?;
    if fields == 0 {
        return Err(ReadError {
            field: "frame",
            problem: "empty array",
        }
        .into());
    }
    let ty = r.uint("frame type")?;
    let want = |n: usize| -> Result<(), DecodeError> {
        // Later versions may append fields: more is fine, fewer is not.
        if fields < n {
            return Err(ReadError {
                field: "frame",
                problem: "too few fields",
            }
            .into());
        }
        Ok(())
    };
    let frame = match ty {
        code::HELLO => {
            want(6)?;
            let magic = r.str("magic")?;
            if magic != MAGIC {
                return Err(DecodeError::WrongMagic {
                    found: magic.chars().take(32).collect(),
                });
            }
            let version = r.uint("version")?;
            let role = match r.str("role")? {
                "client" => Role::Client,
                "peer" => Role::Peer,
                _ => {
                    return Err(ReadError {
                        field: "role",
                        problem: "neither client nor peer",
                    }
                    .into())
                }
            };
            Frame::Hello {
                version,
                role,
                credential: r.opt_str("credential")?.map(str::to_owned),
                node: r.opt_str("node")?.map(str::to_owned),
            }
        }
        code::WELCOME => {
            want(5)?;
            Frame::Welcome {
                version: r.uint("version")?,
                node: r.str("node")?.to_owned(),
                shard: r.uint("shard")?,
                shards: r.uint("shards")?,
            }
        }
        code::SEND => {
            want(6)?;
            Frame::Send {
                req: r.uint("req")?,
                to: agent_name(&mut r, "to")?,
                payload: Bytes::copy_from_slice(r.bin("payload")?),
                priority: priority(&mut r)?,
                ttl_ms: r.opt_uint("ttl_ms")?,
                // Appended in protocol 1.1: older clients send six fields.
                durable_key: if fields > 6 {
                    r.opt_str("durable_key")?.map(str::to_owned)
                } else {
                    None
                },
            }
        }
        code::CALL => {
            want(6)?;
            Frame::Call {
                req: r.uint("req")?,
                to: agent_name(&mut r, "to")?,
                payload: Bytes::copy_from_slice(r.bin("payload")?),
                priority: priority(&mut r)?,
                timeout_ms: r.uint("timeout_ms")?,
            }
        }
        code::REPLY => {
            want(3)?;
            Frame::Reply {
                req: r.uint("req")?,
                payload: Bytes::copy_from_slice(r.bin("payload")?),
            }
        }
        code::OK => {
            want(3)?;
            Frame::Ok {
                req: r.uint("req")?,
                value: r.opt_str("value")?.map(str::to_owned),
            }
        }
        code::DEPLOY => {
            want(4)?;
            Frame::Deploy {
                req: r.uint("req")?,
                name: r.str("name")?.to_owned(),
                module: Bytes::copy_from_slice(r.bin("module")?),
            }
        }
        code::DEPLOY_MANY => {
            want(4)?;
            let req = r.uint("req")?;
            let n = r.array("names")?;
            let n = r.bounded(n, "names")?;
            let mut names = Vec::with_capacity(n);
            for _ in 0..n {
                names.push(r.str("name")?.to_owned());
            }
            Frame::DeployMany {
                req,
                names,
                module: Bytes::copy_from_slice(r.bin("module")?),
            }
        }
        code::DEPLOYED => {
            want(4)?;
            let req = r.uint("req")?;
            let hash = r.str("hash")?.to_owned();
            let n = r.array("failed")?;
            let n = r.bounded(n, "failed")?;
            let mut failed = Vec::with_capacity(n);
            for _ in 0..n {
                if r.array("failure")? < 2 {
                    return Err(ReadError {
                        field: "failure",
                        problem: "not 9 to 12 fields",
                    }
                    .into());
                }
                failed.push((
                    r.str("failure.name")?.to_owned(),
                    r.str("failure.reason")?.to_owned(),
                ));
            }
            Frame::Deployed { req, hash, failed }
        }
        code::UNDEPLOY => {
            want(3)?;
            Frame::Undeploy {
                req: r.uint("req")?,
                name: r.str("name")?.to_owned(),
            }
        }
        code::LIST_AGENTS => {
            want(2)?;
            Frame::ListAgents {
                req: r.uint("req")?,
            }
        }
        code::AGENTS => {
            want(3)?;
            let req = r.uint("req")?;
            let n = r.array("agents")?;
            let n = r.bounded(n, "agents")?;
            let mut agents = Vec::with_capacity(n);
            for _ in 0..n {
                let fields = r.array("agent")?;
                if !(9..=12).contains(&fields) {
                    return Err(ReadError {
                        field: "agent",
                        problem: "too few fields",
                    }
                    .into());
                }
                agents.push(AgentRow {
                    name: r.str("agent.name")?.to_owned(),
                    shard: r.uint("agent.shard")?,
                    state: r.str("agent.state")?.to_owned(),
                    version: r.opt_str("agent.version")?.map(str::to_owned),
                    queued: r.uint("agent.queued")?,
                    failures: r.uint("agent.failures")?,
                    restarts: r.uint("agent.restarts")?,
                    activations: r.uint("agent.activations")?,
                    memory_bytes: r.uint("agent.memory_bytes")?,
                    busy_ns: if fields > 9 {
                        r.uint("agent.busy_ns")?
                    } else {
                        0
                    },
                    state_bytes: if fields > 10 {
                        r.uint("agent.state_bytes")?
                    } else {
                        0
                    },
                    calls_waiting: if fields > 11 {
                        r.uint("agent.calls_waiting")?
                    } else {
                        0
                    },
                });
            }
            Frame::Agents { req, agents }
        }
        code::STATS => {
            want(2)?;
            Frame::Stats {
                req: r.uint("req")?,
            }
        }
        code::STATS_REPLY => {
            want(3)?;
            let req = r.uint("req")?;
            let n = r.array("shards")?;
            let n = r.bounded(n, "shards")?;
            let mut shards = Vec::with_capacity(n);
            for _ in 0..n {
                let m = r.map("shard")?;
                let m = r.bounded(m, "shard")?;
                let mut row = Vec::with_capacity(m);
                for _ in 0..m {
                    let key = r.str("stat name")?.to_owned();
                    row.push((key, r.uint("stat value")?));
                }
                shards.push(row);
            }
            Frame::StatsReply { req, shards }
        }
        code::CLUSTER => {
            want(2)?;
            Frame::Cluster {
                req: r.uint("req")?,
            }
        }
        code::MEMBERS => {
            want(3)?;
            let req = r.uint("req")?;
            let n = r.array("members")?;
            let n = r.bounded(n, "members")?;
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                if r.array("member")? < 4 {
                    return Err(ReadError {
                        field: "member",
                        problem: "too few fields",
                    }
                    .into());
                }
                members.push(MemberRow {
                    name: r.str("member.name")?.to_owned(),
                    addr: r.str("member.addr")?.to_owned(),
                    state: r.str("member.state")?.to_owned(),
                    shards: r.uint("member.shards")?,
                });
            }
            Frame::Members { req, members }
        }
        code::PING => {
            want(2)?;
            Frame::Ping {
                req: r.uint("req")?,
            }
        }
        code::PONG => {
            want(2)?;
            Frame::Pong {
                req: r.uint("req")?,
            }
        }
        code::ERROR => {
            want(5)?;
            let req = r.uint("req")?;
            let code = r.uint("code")?;
            Frame::Error {
                req,
                // An unknown code from a newer node still reads as an error.
                code: ErrorCode::from_u64(code).unwrap_or(ErrorCode::Internal),
                message: r.str("message")?.to_owned(),
                detail: r.opt_str("detail")?.map(str::to_owned),
            }
        }
        code::ENVELOPE => {
            want(11)?;
            Frame::Envelope(read_envelope(&mut r, now)?)
        }
        other => return Err(DecodeError::UnknownType(other)),
    };
    Ok(frame)
}

fn agent_name(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let name = r.str(field)?;
    if name.is_empty() || name.len() > quire_shards::AgentId::MAX_LEN {
        return Err(ReadError {
            field,
            problem: "agent names are 1 to 255 bytes",
        }
        .into());
    }
    Ok(name.to_owned())
}

fn priority(r: &mut Reader<'_>) -> Result<Priority, DecodeError> {
    Ok(Priority::ALL[r.uint_max("priority", 3)? as usize])
}

fn priority_code(p: Priority) -> u64 {
    p.index() as u64
}

fn read_address(r: &mut Reader<'_>, field: &'static str) -> Result<Address, DecodeError> {
    if r.nil() {
        return Ok(Address::Nobody);
    }
    // An agent's name, or a client ticket (an integer).
    if let Ok(ticket) = Reader::new(r.remaining()).uint(field) {
        r.uint(field)?;
        return Ok(Address::Client(ClientTicket::from_raw(ticket)));
    }
    let name = agent_name(r, field)?;
    Ok(Address::Agent(quire_shards::AgentId::new(&name).map_err(
        |_| ReadError {
            field,
            problem: "bad agent name",
        },
    )?))
}

fn write_address(w: &mut Writer<'_>, a: &Address) {
    match a {
        Address::Agent(id) => w.str(id.as_str()),
        Address::Client(t) => w.uint(t.get()),
        Address::Nobody => w.nil(),
    }
}

fn read_envelope(r: &mut Reader<'_>, now: Instant) -> Result<Envelope, DecodeError> {
    let bad = |field, problem| DecodeError::Malformed(ReadError { field, problem });
    let id = MessageId::from_raw(r.uint("id")?).ok_or(bad("id", "zero"))?;
    let from = read_address(r, "from")?;
    let to = read_address(r, "to")?;
    let kind_code = r.uint("kind")?;
    let reason = match r.opt_uint("reason")? {
        Some(i) => Some(Rejection::from_wire_code(i).ok_or(bad("reason", "unknown rejection"))?),
        None => None,
    };
    let kind = match (kind_code, reason) {
        (0, _) => Kind::Send,
        (1, _) => Kind::Call,
        (2, _) => Kind::Reply,
        (3, Some(r)) => Kind::Bounce(r),
        (4, Some(r)) => Kind::CallRejected(r),
        (5, Some(r)) => Kind::HandlerFailed(r),
        (3..=5, None) => return Err(bad("reason", "missing for a bounce")),
        _ => return Err(bad("kind", "unknown envelope kind")),
    };
    let conversation = r.opt_uint("conversation")?.and_then(MessageId::from_raw);
    let in_reply_to = r.opt_uint("in_reply_to")?.and_then(MessageId::from_raw);
    let priority = priority(r)?;
    let deadline = r
        .opt_uint("ttl_us")?
        .map(|us| now + Duration::from_micros(us.min(u64::from(u32::MAX) * 1000)));
    let payload = Bytes::copy_from_slice(r.bin("payload")?);
    Ok(Envelope {
        id,
        from,
        to,
        conversation,
        in_reply_to,
        priority,
        deadline,
        kind,
        payload,
    })
}

/// Appends an `ENVELOPE` frame for `env` (its deadline as time left from
/// `now`). Local-only kinds (`CallFailed`) are never put on a link.
pub fn encode_envelope(env: &Envelope, now: Instant, out: &mut Vec<u8>) {
    let start = begin(out);
    let mut w = Writer(out);
    w.array(11);
    w.uint(code::ENVELOPE);
    w.uint(env.id.get());
    write_address(&mut w, &env.from);
    write_address(&mut w, &env.to);
    let (kind, reason) = match env.kind {
        Kind::Send => (0, None),
        Kind::Call => (1, None),
        Kind::Reply => (2, None),
        Kind::Bounce(r) => (3, Some(r)),
        Kind::CallRejected(r) => (4, Some(r)),
        Kind::HandlerFailed(r) => (5, Some(r)),
        Kind::CallFailed(_) => (4, Some(Rejection::Invalid)),
    };
    w.uint(kind);
    w.opt_uint(reason.map(Rejection::wire_code));
    w.opt_uint(env.conversation.map(MessageId::get));
    w.opt_uint(env.in_reply_to.map(MessageId::get));
    w.uint(priority_code(env.priority));
    w.opt_uint(env.deadline.map(|d| {
        d.saturating_duration_since(now)
            .as_micros()
            .min(u128::from(u64::MAX)) as u64
    }));
    w.bin(&env.payload);
    finish(out, start);
}

fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX_BYTES]);
    start
}

fn finish(out: &mut [u8], start: usize) {
    let len = (out.len() - start - PREFIX_BYTES) as u32;
    out[start..start + PREFIX_BYTES].copy_from_slice(&len.to_be_bytes());
}

/// Appends `frame`, length prefix included, to `out`.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    if let Frame::Envelope(env) = frame {
        encode_envelope(env, Instant::now(), out);
        return;
    }
    let start = begin(out);
    let mut w = Writer(out);
    match frame {
        Frame::Hello {
            version,
            role,
            credential,
            node,
        } => {
            w.array(6);
            w.uint(code::HELLO);
            w.str(MAGIC);
            w.uint(*version);
            w.str(match role {
                Role::Client => "client",
                Role::Peer => "peer",
            });
            w.opt_str(credential.as_deref());
            w.opt_str(node.as_deref());
        }
        Frame::Welcome {
            version,
            node,
            shard,
            shards,
        } => {
            w.array(5);
            w.uint(code::WELCOME);
            w.uint(*version);
            w.str(node);
            w.uint(*shard);
            w.uint(*shards);
        }
        Frame::Send {
            req,
            to,
            payload,
            priority,
            ttl_ms,
            durable_key,
        } => {
            w.array(if durable_key.is_some() { 7 } else { 6 });
            w.uint(code::SEND);
            w.uint(*req);
            w.str(to);
            w.bin(payload);
            w.uint(priority_code(*priority));
            w.opt_uint(*ttl_ms);
            if let Some(key) = durable_key {
                w.str(key);
            }
        }
        Frame::Call {
            req,
            to,
            payload,
            priority,
            timeout_ms,
        } => {
            w.array(6);
            w.uint(code::CALL);
            w.uint(*req);
            w.str(to);
            w.bin(payload);
            w.uint(priority_code(*priority));
            w.uint(*timeout_ms);
        }
        Frame::Reply { req, payload } => {
            w.array(3);
            w.uint(code::REPLY);
            w.uint(*req);
            w.bin(payload);
        }
        Frame::Ok { req, value } => {
            w.array(3);
            w.uint(code::OK);
            w.uint(*req);
            w.opt_str(value.as_deref());
        }
        Frame::Deploy { req, name, module } => {
            w.array(4);
            w.uint(code::DEPLOY);
            w.uint(*req);
            w.str(name);
            w.bin(module);
        }
        Frame::DeployMany { req, names, module } => {
            w.array(4);
            w.uint(code::DEPLOY_MANY);
            w.uint(*req);
            w.array(names.len());
            for name in names {
                w.str(name);
            }
            w.bin(module);
        }
        Frame::Deployed { req, hash, failed } => {
            w.array(4);
            w.uint(code::DEPLOYED);
            w.uint(*req);
            w.str(hash);
            w.array(failed.len());
            for (name, reason) in failed {
                w.array(2);
                w.str(name);
                w.str(reason);
            }
        }
        Frame::Undeploy { req, name } => {
            w.array(3);
            w.uint(code::UNDEPLOY);
            w.uint(*req);
            w.str(name);
        }
        Frame::ListAgents { req } => request(&mut w, code::LIST_AGENTS, *req),
        Frame::Agents { req, agents } => {
            w.array(3);
            w.uint(code::AGENTS);
            w.uint(*req);
            w.array(agents.len());
            for a in agents {
                w.array(12);
                w.str(&a.name);
                w.uint(a.shard);
                w.str(&a.state);
                w.opt_str(a.version.as_deref());
                w.uint(a.queued);
                w.uint(a.failures);
                w.uint(a.restarts);
                w.uint(a.activations);
                w.uint(a.memory_bytes);
                w.uint(a.busy_ns);
                w.uint(a.state_bytes);
                w.uint(a.calls_waiting);
            }
        }
        Frame::Stats { req } => request(&mut w, code::STATS, *req),
        Frame::StatsReply { req, shards } => {
            w.array(3);
            w.uint(code::STATS_REPLY);
            w.uint(*req);
            w.array(shards.len());
            for row in shards {
                w.map(row.len());
                for (k, v) in row {
                    w.str(k);
                    w.uint(*v);
                }
            }
        }
        Frame::Cluster { req } => request(&mut w, code::CLUSTER, *req),
        Frame::Members { req, members } => {
            w.array(3);
            w.uint(code::MEMBERS);
            w.uint(*req);
            w.array(members.len());
            for m in members {
                w.array(4);
                w.str(&m.name);
                w.str(&m.addr);
                w.str(&m.state);
                w.uint(m.shards);
            }
        }
        Frame::Ping { req } => request(&mut w, code::PING, *req),
        Frame::Pong { req } => request(&mut w, code::PONG, *req),
        Frame::Error {
            req,
            code: c,
            message,
            detail,
        } => {
            w.array(5);
            w.uint(code::ERROR);
            w.uint(*req);
            w.uint(*c as u64);
            w.str(message);
            w.opt_str(detail.as_deref());
        }
        Frame::Envelope(_) => unreachable!("handled above"),
    }
    finish(out, start);
}

fn request(w: &mut Writer<'_>, code: u64, req: u64) {
    w.array(2);
    w.uint(code);
    w.uint(req);
}
