//! What a node reads: a frame of the client protocol, or on a node link an
//! envelope; and the one mapping between the wire's priority classes and
//! the shard's.

use std::time::Instant;

use quire_client::protocol::msgpack::{ReadError, Reader};
use quire_client::protocol::{code, decode_body, frame_type, split_frame, DecodeError, Frame};
use quire_client::Priority as WirePriority;
use quire_shards::{Envelope, Priority};

use super::envelope::{read_envelope, FIELDS};

/// A frame as a node reads it off a connection.
#[derive(Debug, Clone)]
pub enum LinkFrame {
    /// A frame of the client protocol (handshake, liveness, requests).
    Frame(Frame),
    /// Node to node: one envelope (peer connections only).
    Envelope(Envelope),
}

/// Decodes the first frame of `buf` as [`quire_client::protocol::decode`]
/// does, `ENVELOPE` frames included: `now` turns an envelope's time to live
/// into a deadline.
///
/// ```
/// use quire_runtime::protocol::{decode_link, encode, Frame, LinkFrame, DEFAULT_MAX_FRAME_BYTES};
/// let mut buf = Vec::new();
/// encode(&Frame::Ping { req: 7 }, &mut buf);
/// let now = std::time::Instant::now();
/// let (frame, used) = decode_link(&buf, DEFAULT_MAX_FRAME_BYTES, now).unwrap().unwrap();
/// assert!(matches!(frame, LinkFrame::Frame(Frame::Ping { req: 7 })));
/// assert_eq!(used, buf.len());
/// ```
pub fn decode_link(
    buf: &[u8],
    max: usize,
    now: Instant,
) -> Result<Option<(LinkFrame, usize)>, DecodeError> {
    let Some((body, used)) = split_frame(buf, max)? else {
        return Ok(None);
    };
    if frame_type(body)? != code::ENVELOPE {
        return Ok(Some((LinkFrame::Frame(decode_body(body)?), used)));
    }
    let mut r = Reader::new(body);
    if r.array("frame")? < FIELDS {
        return Err(ReadError {
            field: "frame",
            problem: "too few fields",
        }
        .into());
    }
    r.uint("frame type")?;
    Ok(Some((
        LinkFrame::Envelope(read_envelope(&mut r, now)?),
        used,
    )))
}

/// The shard's class for a wire priority.
pub fn core_priority(p: WirePriority) -> Priority {
    Priority::ALL[p.code() as usize]
}

/// The wire's class for a shard priority.
pub fn wire_priority(p: Priority) -> WirePriority {
    WirePriority::ALL[p.index()]
}

// The wire's name limit is the shard's.
const _: () =
    assert!(quire_client::protocol::MAX_AGENT_NAME_BYTES == quire_shards::AgentId::MAX_LEN);
