//! Bytes to frames: a pure function, total over any input (errors, never
//! panics or large allocations; fuzzed in runtime/tests/protocol.rs).

use std::time::Instant;

use bytes::Bytes;

use super::envelope::{agent_name, priority, read_envelope};
use super::frame::*;
use super::msgpack::{ReadError, Reader};

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
