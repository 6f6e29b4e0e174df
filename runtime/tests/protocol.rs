//! The node links' codec: `ENVELOPE` frames round-trip with their time left,
//! sit back to back with client-protocol frames on one link, and bad or cut
//! envelopes are errors, never panics. (Every other frame:
//! clients/rust/tests/protocol.rs.)

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use quire_runtime::protocol::{
    decode, decode_link, encode, encode_envelope, DecodeError, Frame, LinkFrame,
    DEFAULT_MAX_FRAME_BYTES,
};
use quire_shards::{Address, ClientTicket, Envelope, Kind, MessageId, Priority, Rejection};

fn envelope() -> Envelope {
    Envelope {
        id: MessageId::new(3, 41).unwrap(),
        from: Address::Client(ClientTicket::new(1, 9)),
        to: Address::Agent("orders/7".into()),
        conversation: MessageId::from_raw(77),
        in_reply_to: None,
        priority: Priority::High,
        deadline: Some(Instant::now() + Duration::from_millis(500)),
        kind: Kind::Call,
        payload: Bytes::from_static(b"\x92\x01\x02"),
    }
}

fn every_envelope() -> Vec<Envelope> {
    let mut bounce = envelope();
    bounce.kind = Kind::CallRejected(Rejection::NodeDown);
    bounce.from = Address::Agent("a".into());
    bounce.to = Address::Nobody;
    bounce.deadline = None;
    let mut handler_failed = bounce.clone();
    handler_failed.kind = Kind::HandlerFailed(Rejection::AgentTrapped);
    handler_failed.payload = Bytes::from_static(b"RuntimeError: unreachable");
    let mut reply = envelope();
    reply.kind = Kind::Reply;
    reply.in_reply_to = MessageId::new(1, 2);
    reply.priority = Priority::Low;
    vec![envelope(), bounce, handler_failed, reply]
}

/// Every field but the deadline, an instant that travels as time left.
fn assert_same(a: &Envelope, b: &Envelope) {
    assert_eq!(
        (a.id, &a.from, &a.to, a.kind, a.conversation, a.in_reply_to),
        (b.id, &b.from, &b.to, b.kind, b.conversation, b.in_reply_to)
    );
    assert_eq!((a.priority, &a.payload), (b.priority, &b.payload));
    assert_eq!(a.deadline.is_some(), b.deadline.is_some());
}

#[test]
fn envelopes_and_client_frames_round_trip_back_to_back_on_a_link() {
    let now = Instant::now();
    let mut stream = Vec::new();
    for env in every_envelope() {
        encode_envelope(&env, now, &mut stream);
        encode(&Frame::Ping { req: 1 }, &mut stream);
    }
    let mut at = 0;
    let mut sent = every_envelope().into_iter();
    while let Some((frame, used)) =
        decode_link(&stream[at..], DEFAULT_MAX_FRAME_BYTES, now).unwrap()
    {
        at += used;
        match frame {
            LinkFrame::Envelope(back) => assert_same(&back, &sent.next().unwrap()),
            LinkFrame::Frame(f) => assert_eq!(f, Frame::Ping { req: 1 }),
        }
    }
    assert_eq!((sent.next().map(|e| e.id), at), (None, stream.len()));
}

#[test]
fn envelope_time_left_survives_the_trip() {
    let env = envelope();
    let now = Instant::now();
    let mut buf = Vec::new();
    encode_envelope(&env, now, &mut buf);
    let (frame, _) = decode_link(&buf, DEFAULT_MAX_FRAME_BYTES, now)
        .unwrap()
        .unwrap();
    let LinkFrame::Envelope(back) = frame else {
        panic!("not an envelope")
    };
    let left = back.deadline.unwrap() - now;
    assert!(left <= Duration::from_millis(500) && left > Duration::from_millis(400));
}

#[test]
fn a_client_connection_does_not_take_envelopes() {
    let mut buf = Vec::new();
    encode_envelope(&envelope(), Instant::now(), &mut buf);
    assert_eq!(
        decode(&buf, DEFAULT_MAX_FRAME_BYTES),
        Err(DecodeError::UnknownType(32))
    );
}

#[test]
fn cut_envelopes_are_errors_or_need_more() {
    let now = Instant::now();
    for env in every_envelope() {
        let mut buf = Vec::new();
        encode_envelope(&env, now, &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(
                decode_link(&buf[..cut], DEFAULT_MAX_FRAME_BYTES, now).map(|f| f.is_some()),
                Ok(false),
                "cut at {cut}"
            );
        }
        // The prefix says the whole length, the body is cut short inside.
        for cut in 5..buf.len() {
            let mut short = buf[..cut].to_vec();
            let len = (cut - 4) as u32;
            short[..4].copy_from_slice(&len.to_be_bytes());
            assert!(
                decode_link(&short, DEFAULT_MAX_FRAME_BYTES, now).is_err(),
                "body cut at {cut}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Envelopes with bytes flipped or cut: an error, "need more" or a
    /// frame, never a panic.
    #[test]
    fn mutated_envelopes_never_panic(
        which in 0usize..4,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
    ) {
        let mut buf = Vec::new();
        encode_envelope(&every_envelope()[which], Instant::now(), &mut buf);
        for (at, byte) in flips {
            let n = buf.len();
            buf[at % n] = byte;
        }
        buf.truncate(cut % (buf.len() + 1));
        let _ = decode_link(&buf, DEFAULT_MAX_FRAME_BYTES, Instant::now());
    }
}
