//! Frames of the Quire wire protocol: the frame types, their error codes
//! and the length prefix (docs/protocol.md is the normative description;
//! keep the two in step). `decode` and `encode` turn them into bytes and
//! back. Node-to-node `ENVELOPE` frames carry a node's own message type and
//! are the node's to read and write (quire-runtime's `protocol`); their
//! type code and the prefix helpers are here so both sides agree.
//!
//! On the wire a frame is a 4-byte big-endian body length followed by the
//! body, a MessagePack array whose first element is the frame type.

use bytes::Bytes;

use super::deploy_options::DeployOptions;
use super::msgpack::ReadError;
use super::priority::Priority;
use super::scope::Access;

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
#[allow(missing_docs)] // each is the frame of the same name
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
    pub const WHERE: u64 = 20;
    pub const LOCATION: u64 = 21;
    pub const RELOAD: u64 = 22;
    pub const STOP: u64 = 23;
    pub const START: u64 = 24;
    pub const AGENT_INFO: u64 = 25;
    pub const LIST_PATTERNS: u64 = 26;
    pub const PATTERNS: u64 = 27;
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
    /// The connection already has `WELCOME`'s `max_requests_in_flight`
    /// requests unanswered: this one was not acted on; the connection
    /// stays, and the request may be sent again once answers come.
    WindowFull = 14,
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
            14 => WindowFull,
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
            WindowFull => "window_full",
        }
    }
}

/// One agent in an `AGENTS` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// Its name (or a `prefix-*` pattern).
    pub name: String,
    /// The shard that owns it.
    pub shard: u64,
    /// running | idle | quarantined | stopped
    pub state: String,
    /// A WebAssembly module's content hash.
    pub version: Option<String>,
    /// Messages in its mailbox.
    pub queued: u64,
    /// Handlers that failed.
    pub failures: u64,
    /// Times its supervisor restarted it.
    pub restarts: u64,
    /// Times it was activated.
    pub activations: u64,
    /// Bytes of its memory (a WebAssembly agent's linear memory and tables).
    pub memory_bytes: u64,
    /// Time its handlers ran, ns (absent from older nodes: 0).
    pub busy_ns: u64,
    /// Bytes of its state (absent from older nodes: 0).
    pub state_bytes: u64,
    /// Calls it made that wait for answers (absent from older nodes: 0).
    pub calls_waiting: u64,
    /// Its latest failure, reason and detail (revision 1.3, in
    /// `AGENT_INFO` answers only: `LIST_AGENTS` rows stay 12 fields for
    /// older readers).
    pub last_error: Option<String>,
}

/// One cluster member in a `MEMBERS` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// Its node name.
    pub name: String,
    /// Its client address (`host:port`).
    pub addr: String,
    /// alive | suspect | down
    pub state: String,
    /// Its shard count.
    pub shards: u64,
}

/// The limits a node holds one connection to, as its `WELCOME` says them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest frame body the node takes on this connection (larger:
    /// `ERROR FRAME_TOO_LARGE` and a close). Admin connections may be
    /// allowed larger frames than others, for deploys.
    pub max_frame_bytes: u64,
    /// Answer bytes the connection may leave unread before the node closes
    /// it with `ERROR SLOW_CLIENT`.
    pub max_unsent_bytes: u64,
    /// Requests the connection may have in flight (sent, not yet answered)
    /// at once; one more is answered `ERROR WINDOW_FULL` and not acted on
    /// (protocol 1.3; `None` from older nodes, which state no window).
    pub max_requests_in_flight: Option<u64>,
}

/// Where an agent lives, in a `LOCATION` frame: the member that owns its
/// name by placement (rendezvous hashing over the members the answering
/// node sees) and the shard of that member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLocation {
    /// The owning node's name.
    pub node: String,
    /// Its client address (`host:port`).
    pub addr: String,
    /// Its liveness as the answering node sees it: alive | suspect | down.
    pub state: String,
    /// The owning shard on that node.
    pub shard: u64,
    /// Whether the agent is there: deployed by its name, or instantiated
    /// from a pattern (a pattern that covers the name but has not yet
    /// made it counts as not deployed); `None` when another node owns
    /// it: ask that node.
    pub deployed: Option<bool>,
}

/// Named counters of one shard in a `STATS_REPLY` frame.
pub type StatsRow = Vec<(String, u64)>;

/// Every frame of protocol version 1 a client and a node exchange (and the
/// handshake and liveness frames of node links).
///
/// A request carries `req`, the sender's number for it (non-zero, unique
/// among its requests in flight); its answer carries the same `req`, so
/// requests may be pipelined and answers matched as they come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens every connection.
    Hello {
        /// The protocol version the sender speaks.
        version: u64,
        /// Client or node link.
        role: Role,
        /// The admin token (clients) or the cluster secret (peers).
        credential: Option<String>,
        /// The connecting node's name (peers).
        node: Option<String>,
    },
    /// The node's answer to a good `HELLO`.
    Welcome {
        /// The protocol version the node speaks on this connection.
        version: u64,
        /// The node's name.
        node: String,
        /// The shard that serves this connection.
        shard: u64,
        /// The node's shard count.
        shards: u64,
        /// What this connection may send and leave unread (protocol 1.2;
        /// `None` from older nodes).
        limits: Option<Limits>,
        /// The credential the node took and the scopes it grants
        /// (protocol 1.3; `None` from older nodes). Sent only with `limits`.
        access: Option<Access>,
    },
    /// A one-way message; `req` 0 asks for no acknowledgement.
    Send {
        /// The request number (0: no `OK` wanted).
        req: u64,
        /// The agent's name.
        to: String,
        /// The message (MessagePack by convention; opaque to the node).
        payload: Bytes,
        /// Its priority class.
        priority: Priority,
        /// Dropped (and counted expired) if not handled within this.
        ttl_ms: Option<u64>,
        /// Makes the send durable: acknowledged (`OK`) only once it is
        /// committed on the agent's shard, and handled once however often
        /// it is retried with the same key (the sender's idempotency key).
        /// Needs `req` > 0 and a node with persistent durability.
        durable_key: Option<String>,
    },
    /// A request; answered by `REPLY` or `ERROR` with the same `req`.
    Call {
        /// The request number.
        req: u64,
        /// The agent's name.
        to: String,
        /// The request (opaque to the node).
        payload: Bytes,
        /// Its priority class.
        priority: Priority,
        /// The node answers `ERROR` `timeout` past this.
        timeout_ms: u64,
    },
    /// The answer to a `CALL`.
    Reply {
        /// The call's request number.
        req: u64,
        /// The agent's answer.
        payload: Bytes,
    },
    /// Success of a `SEND` (value: the message id), `DEPLOY` (the module
    /// hash), `UNDEPLOY`.
    Ok {
        /// The request's number.
        req: u64,
        /// What the request produced, if anything.
        value: Option<String>,
    },
    /// Deploys a WebAssembly module under a name (or a `prefix-*` pattern).
    Deploy {
        /// The request number.
        req: u64,
        /// The agent's name or pattern.
        name: String,
        /// The module's bytes.
        module: Bytes,
        /// Limits and supervision of this agent that differ from the
        /// node's defaults (revision 1.3; empty: none, and not sent).
        options: DeployOptions,
    },
    /// Deploys one WebAssembly module under many names (compiled once,
    /// one commit per shard).
    DeployMany {
        /// The request number.
        req: u64,
        /// The agents' names.
        names: Vec<String>,
        /// The module's bytes.
        module: Bytes,
    },
    /// The answer to a `DEPLOY_MANY`: the module hash and the names that
    /// failed, each with its reason (every other name is deployed).
    Deployed {
        /// The request's number.
        req: u64,
        /// The module's content hash.
        hash: String,
        /// (name, reason) of each name not deployed.
        failed: Vec<(String, String)>,
    },
    /// Removes an agent or a pattern.
    Undeploy {
        /// The request number.
        req: u64,
        /// The agent's name or pattern.
        name: String,
    },
    /// Asks for the agents of the node.
    ListAgents {
        /// The request number.
        req: u64,
    },
    /// The agents of the node.
    Agents {
        /// The request's number.
        req: u64,
        /// One row per agent.
        agents: Vec<AgentRow>,
    },
    /// Asks for per-shard counters.
    Stats {
        /// The request number.
        req: u64,
    },
    /// Per-shard counters.
    StatsReply {
        /// The request's number.
        req: u64,
        /// One row per shard, in shard order.
        shards: Vec<StatsRow>,
    },
    /// Asks for the cluster's members as this node sees them.
    Cluster {
        /// The request number.
        req: u64,
    },
    /// The members.
    Members {
        /// The request's number.
        req: u64,
        /// This node first, then the others.
        members: Vec<MemberRow>,
    },
    /// Asks where an agent name lives.
    Where {
        /// The request number.
        req: u64,
        /// The agent's name.
        name: String,
    },
    /// The answer to a `WHERE`.
    Location {
        /// The request's number.
        req: u64,
        /// The owner and whether the agent is there.
        location: AgentLocation,
    },
    /// Replaces a deployed WebAssembly agent's module in place (hot: its
    /// state and queue are kept); answered `OK` with the new hash.
    Reload {
        /// The request number.
        req: u64,
        /// The agent's name.
        name: String,
        /// The new module.
        module: Bytes,
        /// Its limits and supervision where they differ from the node's
        /// defaults (empty: the defaults, not what the old version had).
        options: DeployOptions,
    },
    /// Stops an agent: it keeps state and queue; messages to it are
    /// refused `agent_stopped` until `START`. Answered `OK`.
    Stop {
        /// The request number.
        req: u64,
        /// The agent's name.
        name: String,
    },
    /// Starts a stopped (or quarantined) agent again. Answered `OK`.
    Start {
        /// The request number.
        req: u64,
        /// The agent's name.
        name: String,
    },
    /// Asks for one agent's row; answered `AGENTS` with that row, or
    /// `ERROR NOT_FOUND`.
    AgentInfo {
        /// The request number.
        req: u64,
        /// The agent's name.
        name: String,
    },
    /// Asks for the name patterns deployed on the node.
    ListPatterns {
        /// The request number.
        req: u64,
    },
    /// The node's name patterns.
    Patterns {
        /// The request's number.
        req: u64,
        /// (pattern, its module's short hash), sorted by pattern.
        patterns: Vec<(String, String)>,
    },
    /// Liveness check.
    Ping {
        /// The request number.
        req: u64,
    },
    /// Its answer.
    Pong {
        /// The ping's number.
        req: u64,
    },
    /// A request failed (or the connection is about to close, `req` 0).
    Error {
        /// The request's number; 0 when the connection closes.
        req: u64,
        /// What kind of failure.
        code: ErrorCode,
        /// What happened, for people.
        message: String,
        /// The rejection reason (`queue_full`, ...) or the owner's address.
        detail: Option<String>,
    },
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
            Frame::Where { .. } => "WHERE",
            Frame::Reload { .. } => "RELOAD",
            Frame::Stop { .. } => "STOP",
            Frame::Start { .. } => "START",
            Frame::AgentInfo { .. } => "AGENT_INFO",
            Frame::ListPatterns { .. } => "LIST_PATTERNS",
            Frame::Patterns { .. } => "PATTERNS",
            Frame::Location { .. } => "LOCATION",
            Frame::Ping { .. } => "PING",
            Frame::Pong { .. } => "PONG",
            Frame::Error { .. } => "ERROR",
        }
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix announces more than the allowed maximum; nothing
    /// of the body was read.
    #[error("frame of {len} bytes is over the maximum of {max}")]
    TooLarge {
        /// The announced body length.
        len: usize,
        /// The largest body taken.
        max: usize,
    },
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

/// Reserves the length prefix of a frame about to be written; returns
/// where it starts, for [`finish`].
pub fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX_BYTES]);
    start
}

/// Fills in the length prefix reserved at `start` by [`begin`].
pub fn finish(out: &mut [u8], start: usize) {
    let len = (out.len() - start - PREFIX_BYTES) as u32;
    out[start..start + PREFIX_BYTES].copy_from_slice(&len.to_be_bytes());
}
