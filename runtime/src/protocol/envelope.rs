//! The `ENVELOPE` frame both ways: one message between two nodes (addresses,
//! kind and reason codes, time to live as time left).

use std::time::{Duration, Instant};

use bytes::Bytes;
use quire_client::protocol::msgpack::{ReadError, Reader, Writer};
use quire_client::protocol::{agent_name, begin, code, finish, DecodeError};
use quire_shards::{Address, ClientTicket, Envelope, Kind, MessageId, Rejection};

use super::link::{core_priority, wire_priority};

/// Elements of an `ENVELOPE` body, its type code included.
pub(super) const FIELDS: usize = 11;

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

/// Reads the fields of an `ENVELOPE` after its type; `now` turns its time
/// to live into a deadline.
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
    let priority = core_priority(quire_client::protocol::priority(r)?);
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
    w.array(FIELDS);
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
    w.uint(wire_priority(env.priority).code());
    w.opt_uint(env.deadline.map(|d| {
        d.saturating_duration_since(now)
            .as_micros()
            .min(u128::from(u64::MAX)) as u64
    }));
    w.bin(&env.payload);
    finish(out, start);
}
