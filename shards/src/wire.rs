//! The MessagePack form of an [`Envelope`], for crossing a node's edge.
//!
//! Inside a node envelopes move by value; only here, at the edge, are they
//! encoded (with rmp-serde, struct-as-map so that fields can be added
//! compatibly). A deadline is an `Instant`, meaningless on another machine, so
//! it travels as the time left (`ttl_us`) and becomes a new deadline on arrival.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::envelope::{Address, ClientTicket, Envelope, Kind, MessageId, Priority};
use crate::error::Rejection;
use crate::AgentId;

/// Why bytes could not be turned into an envelope or back.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not valid MessagePack for an envelope.
    #[error("malformed envelope: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// Could not encode (should not happen for well-formed envelopes).
    #[error("cannot encode envelope: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// An agent name in the envelope is empty or too long.
    #[error("bad agent name in envelope: {0}")]
    BadName(#[from] crate::InvalidAgentId),
    /// Message ids are never zero.
    #[error("message id 0 is invalid")]
    ZeroId,
    /// The envelope kind exists only inside a node.
    #[error("envelope kind {0} never crosses a node edge")]
    LocalOnly(&'static str),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "t", rename_all = "snake_case")]
enum WireAddress {
    Agent { name: String },
    Client { ticket: u64 },
    Nobody,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "t", content = "reason", rename_all = "snake_case")]
enum WireKind {
    Send,
    Call,
    Reply,
    Bounce(Rejection),
    CallRejected(Rejection),
}

#[derive(Serialize, Deserialize, Debug)]
struct WireEnvelope {
    id: u64,
    from: WireAddress,
    to: WireAddress,
    #[serde(default)]
    conversation: Option<u64>,
    #[serde(default)]
    in_reply_to: Option<u64>,
    #[serde(default)]
    priority: Priority,
    /// Microseconds left to live; absent means no deadline.
    #[serde(default)]
    ttl_us: Option<u64>,
    kind: WireKind,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
}

fn to_wire_address(a: &Address) -> WireAddress {
    match a {
        Address::Agent(id) => WireAddress::Agent {
            name: id.as_str().to_owned(),
        },
        Address::Client(t) => WireAddress::Client { ticket: t.get() },
        Address::Nobody => WireAddress::Nobody,
    }
}

fn from_wire_address(a: WireAddress) -> Result<Address, WireError> {
    Ok(match a {
        WireAddress::Agent { name } => Address::Agent(AgentId::new(&name)?),
        WireAddress::Client { ticket } => Address::Client(ClientTicket::from_raw(ticket)),
        WireAddress::Nobody => Address::Nobody,
    })
}

/// Encodes `env` as MessagePack, measuring its time left from `now`.
///
/// ```
/// use std::time::Instant;
/// use quire_shards::{testing::envelope_to, wire, Priority};
/// let env = envelope_to("echo", Priority::High);
/// let bytes = wire::encode(&env, Instant::now()).unwrap();
/// let back = wire::decode(&bytes, Instant::now()).unwrap();
/// assert_eq!(back.priority, Priority::High);
/// assert_eq!(back.to, env.to);
/// ```
pub fn encode(env: &Envelope, now: Instant) -> Result<Vec<u8>, WireError> {
    let kind = match &env.kind {
        Kind::Send => WireKind::Send,
        Kind::Call => WireKind::Call,
        Kind::Reply => WireKind::Reply,
        Kind::Bounce(r) => WireKind::Bounce(*r),
        Kind::CallRejected(r) => WireKind::CallRejected(*r),
        Kind::CallFailed(_) => return Err(WireError::LocalOnly("call_failed")),
    };
    let wire = WireEnvelope {
        id: env.id.get(),
        from: to_wire_address(&env.from),
        to: to_wire_address(&env.to),
        conversation: env.conversation.map(MessageId::get),
        in_reply_to: env.in_reply_to.map(MessageId::get),
        priority: env.priority,
        ttl_us: env.deadline.map(|d| {
            d.saturating_duration_since(now)
                .as_micros()
                .min(u128::from(u64::MAX)) as u64
        }),
        kind,
        payload: env.payload.to_vec(),
    };
    Ok(rmp_serde::to_vec_named(&wire)?)
}

/// Decodes an envelope, turning its time left into a deadline from `now`.
pub fn decode(bytes: &[u8], now: Instant) -> Result<Envelope, WireError> {
    let w: WireEnvelope = rmp_serde::from_slice(bytes)?;
    Ok(Envelope {
        id: MessageId::from_raw(w.id).ok_or(WireError::ZeroId)?,
        from: from_wire_address(w.from)?,
        to: from_wire_address(w.to)?,
        conversation: w.conversation.and_then(MessageId::from_raw),
        in_reply_to: w.in_reply_to.and_then(MessageId::from_raw),
        priority: w.priority,
        deadline: w.ttl_us.map(|us| now + Duration::from_micros(us)),
        kind: match w.kind {
            WireKind::Send => Kind::Send,
            WireKind::Call => Kind::Call,
            WireKind::Reply => Kind::Reply,
            WireKind::Bounce(r) => Kind::Bounce(r),
            WireKind::CallRejected(r) => Kind::CallRejected(r),
        },
        payload: Bytes::from(w.payload),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CallError;

    fn sample() -> Envelope {
        Envelope {
            id: MessageId::new(7, 99).unwrap(),
            from: Address::Client(ClientTicket::new(3, 12)),
            to: Address::Agent("orders/1".into()),
            conversation: MessageId::from_raw(5),
            in_reply_to: None,
            priority: Priority::Critical,
            deadline: None,
            kind: Kind::Call,
            payload: Bytes::from_static(b"\x92\x01\x02"),
        }
    }

    #[test]
    fn round_trips_every_field() {
        let now = Instant::now();
        let mut env = sample();
        env.deadline = Some(now + Duration::from_millis(250));
        let back = decode(&encode(&env, now).unwrap(), now).unwrap();
        assert_eq!(back.id, env.id);
        assert_eq!(back.from, env.from);
        assert_eq!(back.to, env.to);
        assert_eq!(back.conversation, MessageId::from_raw(5));
        assert_eq!(back.priority, Priority::Critical);
        assert_eq!(back.kind, Kind::Call);
        assert_eq!(back.payload, env.payload);
        assert_eq!(back.deadline, Some(now + Duration::from_millis(250)));
    }

    #[test]
    fn bounces_keep_their_reason() {
        let mut env = sample();
        env.kind = Kind::CallRejected(Rejection::QueueFull);
        let back = decode(&encode(&env, Instant::now()).unwrap(), Instant::now()).unwrap();
        assert_eq!(back.kind, Kind::CallRejected(Rejection::QueueFull));
    }

    #[test]
    fn refuses_garbage_and_bad_names() {
        assert!(matches!(
            decode(b"\xc1garbage", Instant::now()),
            Err(WireError::Decode(_))
        ));
        assert!(matches!(
            decode(&[], Instant::now()),
            Err(WireError::Decode(_))
        ));
        let mut env = sample();
        env.kind = Kind::Send;
        let mut bytes = encode(&env, Instant::now()).unwrap();
        // Truncation anywhere is an error, never a panic.
        while bytes.pop().is_some() {
            assert!(decode(&bytes, Instant::now()).is_err());
        }
        let wire = WireEnvelope {
            id: 1,
            from: WireAddress::Nobody,
            to: WireAddress::Agent {
                name: String::new(),
            },
            conversation: None,
            in_reply_to: None,
            priority: Priority::Normal,
            ttl_us: None,
            kind: WireKind::Send,
            payload: vec![],
        };
        let bytes = rmp_serde::to_vec_named(&wire).unwrap();
        assert!(matches!(
            decode(&bytes, Instant::now()),
            Err(WireError::BadName(_))
        ));
    }

    #[test]
    fn local_only_kinds_do_not_encode() {
        let mut env = sample();
        env.kind = Kind::CallFailed(CallError::Timeout);
        assert!(matches!(
            encode(&env, Instant::now()),
            Err(WireError::LocalOnly(_))
        ));
    }
}
