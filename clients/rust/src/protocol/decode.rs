//! Bytes to frames: a pure function, total over any input (errors, never
//! panics or large allocations; fuzzed in runtime/tests/protocol.rs).

use bytes::Bytes;

use super::deploy_options::DeployOptions;
use super::frame::*;
use super::msgpack::{ReadError, Reader};
use super::priority::Priority;
use super::scope::{Access, Scope, ScopeSet};

/// Longest agent name, in bytes (a node refuses longer ones).
pub const MAX_AGENT_NAME_BYTES: usize = 255;

/// Decodes the first frame of `buf`: `Ok(None)` while it is incomplete,
/// else the frame and how many bytes it took.
///
/// ```
/// use quire_client::protocol::{decode, encode, Frame, DEFAULT_MAX_FRAME_BYTES};
/// let mut buf = Vec::new();
/// encode(&Frame::Ping { req: 7 }, &mut buf);
/// assert_eq!(decode(&buf[..3], DEFAULT_MAX_FRAME_BYTES), Ok(None));
/// let (frame, used) = decode(&buf, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
/// assert_eq!((frame, used), (Frame::Ping { req: 7 }, buf.len()));
/// ```
pub fn decode(buf: &[u8], max: usize) -> Result<Option<(Frame, usize)>, DecodeError> {
    let Some((body, used)) = split_frame(buf, max)? else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, used)))
}

/// The body of the first frame of `buf` and the bytes the whole frame takes;
/// `Ok(None)` while it is incomplete.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let Some(len) = body_len(buf, max)? else {
        return Ok(None);
    };
    Ok(buf
        .get(PREFIX_BYTES..PREFIX_BYTES + len)
        .map(|body| (body, PREFIX_BYTES + len)))
}

/// The frame type of a body, without reading the rest of it.
pub fn frame_type(body: &[u8]) -> Result<u64, DecodeError> {
    let mut r = Reader::new(body);
    if r.array("frame")? == 0 {
        return Err(ReadError {
            field: "frame",
            problem: "empty array",
        }
        .into());
    }
    Ok(r.uint("frame type")?)
}

/// Reads an agent name (1 to [`MAX_AGENT_NAME_BYTES`] bytes).
pub fn agent_name(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let name = r.str(field)?;
    if name.is_empty() || name.len() > MAX_AGENT_NAME_BYTES {
        return Err(ReadError {
            field,
            problem: "agent names are 1 to 255 bytes",
        }
        .into());
    }
    Ok(name.to_owned())
}

/// Reads a priority code (0 to 3).
pub fn priority(r: &mut Reader<'_>) -> Result<Priority, DecodeError> {
    Ok(Priority::ALL[r.uint_max("priority", 3)? as usize])
}

/// Decodes one frame body (without its prefix). An `ENVELOPE` is
/// [`DecodeError::UnknownType`] here: node links read it with the node's
/// own decoder.
pub fn decode_body(body: &[u8]) -> Result<Frame, DecodeError> {
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
            let mut welcome = Frame::Welcome {
                version: r.uint("version")?,
                node: r.str("node")?.to_owned(),
                shard: r.uint("shard")?,
                shards: r.uint("shards")?,
                // Appended in protocol 1.2: older nodes send five fields.
                limits: if fields > 6 {
                    Some(Limits {
                        max_frame_bytes: r.uint("max_frame_bytes")?,
                        max_unsent_bytes: r.uint("max_unsent_bytes")?,
                        max_requests_in_flight: None,
                    })
                } else {
                    None
                },
                // Appended in protocol 1.3: the credential, its scopes and
                // the window of requests in flight.
                access: if fields > 9 {
                    Some(access(&mut r)?)
                } else {
                    None
                },
            };
            if let Frame::Welcome {
                limits: Some(limits),
                access: Some(_),
                ..
            } = &mut welcome
            {
                // 0 states no window.
                let window = r.uint("max_requests_in_flight")?;
                limits.max_requests_in_flight = (window > 0).then_some(window);
            }
            welcome
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
                options: deploy_options(&mut r, fields)?,
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
                        problem: "not a [name, reason] pair",
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
        code::LIST_PATTERNS => {
            want(2)?;
            Frame::ListPatterns {
                req: r.uint("req")?,
            }
        }
        code::PATTERNS => {
            want(3)?;
            let req = r.uint("req")?;
            let n = r.array("patterns")?;
            let n = r.bounded(n, "patterns")?;
            let mut patterns = Vec::with_capacity(n);
            for _ in 0..n {
                let fields = r.array("pattern")?;
                if fields < 2 {
                    return Err(ReadError {
                        field: "pattern",
                        problem: "not a [pattern, version] pair",
                    }
                    .into());
                }
                patterns.push((
                    r.str("pattern.name")?.to_owned(),
                    r.str("pattern.version")?.to_owned(),
                ));
                for _ in 2..fields {
                    r.skip("pattern")?;
                }
            }
            Frame::Patterns { req, patterns }
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
                if fields < 9 {
                    return Err(ReadError {
                        field: "agent",
                        problem: "fewer than 9 fields",
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
                    last_error: if fields > 12 {
                        r.opt_str("agent.last_error")?.map(str::to_owned)
                    } else {
                        None
                    },
                });
                // Fields a later revision appended.
                for _ in 13..fields {
                    r.skip("agent")?;
                }
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
        code::WHERE => {
            want(3)?;
            Frame::Where {
                req: r.uint("req")?,
                name: agent_name(&mut r, "name")?,
            }
        }
        code::STOP | code::START | code::AGENT_INFO => {
            want(3)?;
            let (req, name) = (r.uint("req")?, agent_name(&mut r, "name")?);
            match ty {
                code::STOP => Frame::Stop { req, name },
                code::START => Frame::Start { req, name },
                _ => Frame::AgentInfo { req, name },
            }
        }
        code::RELOAD => {
            want(4)?;
            Frame::Reload {
                req: r.uint("req")?,
                name: agent_name(&mut r, "name")?,
                module: Bytes::copy_from_slice(r.bin("module")?),
                options: deploy_options(&mut r, fields)?,
            }
        }
        code::LOCATION => {
            want(7)?;
            Frame::Location {
                req: r.uint("req")?,
                location: AgentLocation {
                    node: r.str("node")?.to_owned(),
                    addr: r.str("addr")?.to_owned(),
                    state: r.str("state")?.to_owned(),
                    shard: r.uint("shard")?,
                    deployed: if r.nil() {
                        None
                    } else {
                        Some(r.bool("deployed")?)
                    },
                },
            }
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
        other => return Err(DecodeError::UnknownType(other)),
    };
    Ok(frame)
}

/// A `WELCOME`'s credential name and scope names (scopes this build does
/// not know are left out: it cannot send what they would allow anyway).
fn access(r: &mut Reader<'_>) -> Result<Access, DecodeError> {
    let credential = r.str("credential")?.to_owned();
    let n = r.array("scopes")?;
    let n = r.bounded(n, "scopes")?;
    let mut scopes = ScopeSet::NONE;
    for _ in 0..n {
        if let Some(scope) = Scope::from_name(r.str("scope")?) {
            scopes = scopes.with(scope);
        }
    }
    Ok(Access { credential, scopes })
}

/// The 5th field of `DEPLOY` / `RELOAD` (revision 1.3), when there is one:
/// a map of setting names to numbers, words or flags.
fn deploy_options(r: &mut Reader<'_>, fields: usize) -> Result<DeployOptions, DecodeError> {
    let mut options = DeployOptions::default();
    if fields < 5 || r.nil() {
        return Ok(options);
    }
    let n = r.map("options")?;
    let n = r.bounded(n, "options")?;
    for _ in 0..n {
        let key = r.str("option name")?.to_owned();
        options = match r.peek() {
            Some(0xc2 | 0xc3) => options.set(&key, r.bool("option value")?),
            Some(0xa0..=0xbf | 0xd9..=0xdb) => options.set(&key, r.str("option value")?),
            _ => options.set(&key, r.uint("option value")?),
        };
    }
    Ok(options)
}
