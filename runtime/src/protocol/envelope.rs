//! The `ENVELOPE` frame both ways: one message between two nodes (addresses,
//! kind and reason codes, time to live as time left), and the priority code
//! the client frames share.

use std::time::{Duration, Instant};

use bytes::Bytes;
use quire_shards::{Address, ClientTicket, Envelope, Kind, MessageId, Priority, Rejection};

use super::frame::{begin, code, finish, DecodeError};
use super::msgpack::{ReadError, Reader, Writer};

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

pub(super) fn read_envelope(r: &mut Reader<'_>, now: Instant) -> Result<Envelope, DecodeError> {
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

pub(super) fn priority_code(p: Priority) -> u64 {
    p.index() as u64
}

pub(super) fn agent_name(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
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

pub(super) fn priority(r: &mut Reader<'_>) -> Result<Priority, DecodeError> {
    Ok(Priority::ALL[r.uint_max("priority", 3)? as usize])
}
