//! The client protocol's codec on its own: every frame round-trips, bad
//! bytes are errors (never panics, never large allocations), and a
//! property-based fuzz run drives the decoder with arbitrary and mutated
//! input. (Node links' `ENVELOPE` frames: runtime/tests/protocol.rs.)

use bytes::Bytes;
use proptest::prelude::*;
use quire_client::protocol::{
    decode, decode_body, encode, Access, AgentLocation, AgentRow, DecodeError, DeployOptions,
    ErrorCode, Frame, Limits, MemberRow, Role, Scope, DEFAULT_MAX_FRAME_BYTES,
};
use quire_client::Priority;

/// One of each frame (and both roles of HELLO).
fn every_frame() -> Vec<Frame> {
    vec![
        Frame::Hello {
            version: 1,
            role: Role::Client,
            credential: Some("token".into()),
            node: None,
        },
        Frame::Hello {
            version: 1,
            role: Role::Peer,
            credential: None,
            node: Some("n1".into()),
        },
        Frame::Welcome {
            version: 1,
            node: "n1".into(),
            shard: 1,
            shards: 2,
            limits: None,
            access: None,
        },
        Frame::Welcome {
            version: 1,
            node: "n1".into(),
            shard: 1,
            shards: 2,
            limits: Some(Limits {
                max_frame_bytes: 1 << 20,
                max_unsent_bytes: 16 << 20,
                max_requests_in_flight: None,
            }),
            access: None,
        },
        Frame::Welcome {
            version: 1,
            node: "n1".into(),
            shard: 0,
            shards: 2,
            limits: Some(Limits {
                max_frame_bytes: 1 << 20,
                max_unsent_bytes: 16 << 20,
                max_requests_in_flight: Some(4096),
            }),
            access: Some(Access {
                credential: "ingest".into(),
                scopes: [Scope::Message, Scope::Read].into_iter().collect(),
            }),
        },
        Frame::Send {
            req: 0,
            to: "echo".into(),
            payload: Bytes::from_static(b"hi"),
            priority: Priority::Low,
            ttl_ms: Some(5),
            durable_key: None,
        },
        Frame::Send {
            req: 9,
            to: "counter".into(),
            payload: Bytes::from_static(b"+1"),
            priority: Priority::Normal,
            ttl_ms: None,
            durable_key: Some("order-17".into()),
        },
        Frame::Call {
            req: u64::MAX,
            to: "echo".into(),
            payload: Bytes::from(vec![7; 70_000]),
            priority: Priority::Critical,
            timeout_ms: 1000,
        },
        Frame::Reply {
            req: 5,
            payload: Bytes::new(),
        },
        Frame::Ok {
            req: 6,
            value: Some("1:2".into()),
        },
        Frame::Deploy {
            req: 7,
            name: "sensor-*".into(),
            module: Bytes::from_static(b"\0asm\x01\0\0\0"),
            options: DeployOptions::default()
                .set("fuel_per_message", 1_000)
                .set("policy", "stop")
                .set("quarantine_on_cost", false),
        },
        Frame::Undeploy {
            req: 8,
            name: "x".into(),
        },
        Frame::DeployMany {
            req: 8,
            names: vec!["a".into(), "b".into()],
            module: Bytes::from_static(b"\0asm\x01\0\0\0"),
        },
        Frame::Deployed {
            req: 8,
            hash: "abc".into(),
            failed: vec![("b".into(), "taken".into())],
        },
        Frame::ListAgents { req: 9 },
        Frame::Agents {
            req: 9,
            agents: vec![AgentRow {
                name: "echo".into(),
                shard: 1,
                state: "running".into(),
                version: Some("abc".into()),
                queued: 2,
                failures: 3,
                restarts: 4,
                activations: 5,
                memory_bytes: 65536,
                busy_ns: 7,
                state_bytes: 8,
                calls_waiting: 9,
                last_error: None,
            }],
        },
        Frame::Agents {
            req: 25,
            agents: vec![AgentRow {
                name: "tally".into(),
                shard: 0,
                state: "idle".into(),
                version: None,
                queued: 0,
                failures: 1,
                restarts: 1,
                activations: 1,
                memory_bytes: 0,
                busy_ns: 0,
                state_bytes: 0,
                calls_waiting: 0,
                last_error: Some("fuel_exhausted: out of fuel".into()),
            }],
        },
        Frame::Stats { req: 10 },
        Frame::StatsReply {
            req: 10,
            shards: vec![vec![("shard".into(), 0), ("handled".into(), 12)]],
        },
        Frame::Cluster { req: 11 },
        Frame::Members {
            req: 11,
            members: vec![MemberRow {
                name: "n2".into(),
                addr: "127.0.0.1:7400".into(),
                state: "down".into(),
                shards: 2,
            }],
        },
        Frame::Reload {
            req: 22,
            name: "echo".into(),
            module: Bytes::from_static(b"\0asm\x01\0\0\0"),
            options: DeployOptions::default().set("max_time_us", 500),
        },
        Frame::Deploy {
            req: 27,
            name: "plain".into(),
            module: Bytes::from_static(b"\0asm\x01\0\0\0"),
            options: DeployOptions::default(),
        },
        Frame::Stop {
            req: 23,
            name: "echo".into(),
        },
        Frame::Start {
            req: 24,
            name: "echo".into(),
        },
        Frame::AgentInfo {
            req: 25,
            name: "echo".into(),
        },
        Frame::Where {
            req: 14,
            name: "counter-7".into(),
        },
        Frame::Location {
            req: 14,
            location: AgentLocation {
                node: "n2".into(),
                addr: "127.0.0.1:7410".into(),
                state: "alive".into(),
                shard: 1,
                deployed: None,
            },
        },
        Frame::Location {
            req: 15,
            location: AgentLocation {
                node: "n1".into(),
                addr: "127.0.0.1:7400".into(),
                state: "alive".into(),
                shard: 0,
                deployed: Some(false),
            },
        },
        Frame::ListPatterns { req: 28 },
        Frame::Patterns {
            req: 28,
            patterns: vec![("sensor-*".into(), "fc9bf1ea12f2".into())],
        },
        Frame::Ping { req: 12 },
        Frame::Pong { req: 12 },
        Frame::Error {
            req: 13,
            code: ErrorCode::Rejected,
            message: "no such agent".into(),
            detail: Some("no_such_agent".into()),
        },
    ]
}

#[test]
fn every_frame_round_trips_alone_and_back_to_back() {
    let mut stream = Vec::new();
    for frame in every_frame() {
        let mut buf = Vec::new();
        encode(&frame, &mut buf);
        let (back, used) = decode(&buf, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(back, frame, "{frame:?}");
        stream.extend_from_slice(&buf);
    }
    let mut at = 0;
    let mut count = 0;
    while let Some((_, used)) = decode(&stream[at..], DEFAULT_MAX_FRAME_BYTES).unwrap() {
        at += used;
        count += 1;
    }
    assert_eq!((count, at), (every_frame().len(), stream.len()));
}

/// Node answers carry the request they answer; requests and the
/// handshake carry none (a client waiting on `answer_to` sees every
/// answer frame, the reason it is matched without a wildcard).
#[test]
fn every_answer_names_its_request_and_nothing_else_does() {
    let answers = [
        "REPLY",
        "OK",
        "DEPLOYED",
        "AGENTS",
        "STATS_REPLY",
        "MEMBERS",
        "LOCATION",
        "PATTERNS",
        "PONG",
        "ERROR",
    ];
    for frame in every_frame() {
        assert_eq!(
            frame.answer_to().is_some(),
            answers.contains(&frame.name()),
            "{frame:?}"
        );
    }
}

#[test]
fn a_partial_frame_asks_for_more_bytes() {
    let mut buf = Vec::new();
    encode(&every_frame()[4], &mut buf);
    for cut in 0..buf.len() {
        assert_eq!(
            decode(&buf[..cut], DEFAULT_MAX_FRAME_BYTES),
            Ok(None),
            "cut at {cut}"
        );
    }
}

#[test]
fn an_oversized_frame_is_refused_from_its_prefix_alone() {
    // Only the 4-byte prefix is there: the refusal needs nothing more.
    let prefix = (DEFAULT_MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
    assert_eq!(
        decode(&prefix, DEFAULT_MAX_FRAME_BYTES),
        Err(DecodeError::TooLarge {
            len: DEFAULT_MAX_FRAME_BYTES + 1,
            max: DEFAULT_MAX_FRAME_BYTES
        })
    );
}

#[test]
fn truncated_bodies_garbage_and_unknown_types_are_errors() {
    for frame in every_frame() {
        let mut buf = Vec::new();
        encode(&frame, &mut buf);
        let body = &buf[4..];
        for cut in 0..body.len() {
            assert!(decode_body(&body[..cut]).is_err(), "{frame:?} cut {cut}");
        }
    }
    assert!(matches!(
        decode_body(b"\xc1\xc1\xc1"),
        Err(DecodeError::Malformed(_))
    ));
    // [99, 1]: a frame type nobody knows.
    assert_eq!(
        decode_body(&[0x92, 99, 1]),
        Err(DecodeError::UnknownType(99))
    );
    assert_eq!(
        decode_body(&[0x92, 99, 1]).unwrap_err().code(),
        ErrorCode::UnknownFrame
    );
    // A HELLO with the wrong magic.
    let mut buf = Vec::new();
    encode(
        &Frame::Hello {
            version: 1,
            role: Role::Client,
            credential: None,
            node: None,
        },
        &mut buf,
    );
    let pos = buf.windows(5).position(|w| w == b"QUIRE").unwrap();
    buf[pos] = b'X';
    assert!(decode(&buf, DEFAULT_MAX_FRAME_BYTES).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The fuzz target: any bytes at all decode to a frame, an error or
    /// "need more", and never panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, DEFAULT_MAX_FRAME_BYTES);
        let _ = decode_body(&bytes);
    }

    /// Valid frames with bytes flipped, cut or appended: still no panic,
    /// and an untouched frame still decodes to itself.
    #[test]
    fn mutated_frames_never_panic(
        which in 0usize..20,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
    ) {
        let frames = every_frame();
        let frame = &frames[which % frames.len()];
        let mut buf = Vec::new();
        encode(frame, &mut buf);
        if flips.is_empty() {
            let (back, _) = decode(&buf, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
            prop_assert_eq!(&back, frame);
        }
        for (at, byte) in flips {
            let n = buf.len();
            buf[at % n] = byte;
        }
        buf.truncate(cut % (buf.len() + 1));
        let _ = decode(&buf, DEFAULT_MAX_FRAME_BYTES);
        if buf.len() > 4 {
            let _ = decode_body(&buf[4..]);
        }
    }

    /// Sends of any name, payload and priority round-trip.
    #[test]
    fn sends_round_trip(
        to in "[a-z0-9/_-]{1,40}",
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        prio in 0usize..4,
        req in any::<u64>(),
        ttl in proptest::option::of(any::<u64>()),
    ) {
        let frame = Frame::Send { req, to, payload: payload.into(), priority: Priority::ALL[prio], ttl_ms: ttl, durable_key: None };
        let mut buf = Vec::new();
        encode(&frame, &mut buf);
        let (back, used) = decode(&buf, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
        prop_assert_eq!(used, buf.len());
        prop_assert_eq!(back, frame);
    }
}

#[test]
fn the_example_in_docs_protocol_md_is_exact() {
    let mut buf = Vec::new();
    encode(
        &Frame::Call {
            req: 1,
            to: "echo".into(),
            payload: Bytes::from_static(b"\xa2hi"),
            priority: Priority::Normal,
            timeout_ms: 1000,
        },
        &mut buf,
    );
    let expected: &[u8] = &[
        0x00, 0x00, 0x00, 0x11, 0x96, 0x04, 0x01, 0xa4, b'e', b'c', b'h', b'o', 0xc4, 0x03, 0xa2,
        b'h', b'i', 0x02, 0xcd, 0x03, 0xe8,
    ];
    assert_eq!(buf, expected);
}

#[test]
fn a_welcome_from_a_newer_node_keeps_the_scopes_this_build_knows() {
    use quire_client::protocol::msgpack::Writer;
    use quire_client::protocol::{code, ScopeSet};
    // WELCOME 1.3 as a later node might send it: a scope this build does
    // not know, window 0 (none stated), and a field appended after that.
    let mut body = Vec::new();
    let mut w = Writer(&mut body);
    w.array(11);
    w.uint(code::WELCOME);
    w.uint(1);
    w.str("n1");
    w.uint(0);
    w.uint(2);
    w.uint(1 << 20);
    w.uint(16 << 20);
    w.str("ops");
    w.array(3);
    w.str("read");
    w.str("teleport");
    w.str("admin");
    w.uint(0);
    w.str("a later field");
    let Frame::Welcome { limits, access, .. } = decode_body(&body).unwrap() else {
        panic!("not a WELCOME");
    };
    assert_eq!(limits.unwrap().max_requests_in_flight, None);
    let access = access.unwrap();
    assert_eq!(access.credential, "ops");
    assert_eq!(
        access.scopes,
        ScopeSet::NONE.with(Scope::Read).with(Scope::Admin)
    );
}

#[test]
fn every_client_request_needs_a_scope_but_ping() {
    for frame in every_frame() {
        let needed = Scope::needed_by(&frame);
        match frame {
            Frame::Hello { .. } | Frame::Welcome { .. } | Frame::Ping { .. } => {
                assert_eq!(needed, None)
            }
            Frame::Send { .. } | Frame::Call { .. } => assert_eq!(needed, Some(Scope::Message)),
            Frame::Deploy { .. }
            | Frame::DeployMany { .. }
            | Frame::Undeploy { .. }
            | Frame::Reload { .. }
            | Frame::Stop { .. }
            | Frame::Start { .. } => assert_eq!(needed, Some(Scope::Admin)),
            _ if frame.answer_to().is_some() => {
                assert_eq!(needed, None, "{} is an answer", frame.name())
            }
            _ => assert_eq!(needed, Some(Scope::Read), "{}", frame.name()),
        }
    }
}

#[test]
fn agent_rows_of_a_later_revision_keep_the_fields_this_build_knows() {
    use quire_client::protocol::code;
    use quire_client::protocol::msgpack::Writer;
    // Two rows of 14 fields: one appended after last_error, itself nested.
    let mut body = Vec::new();
    let mut w = Writer(&mut body);
    w.array(3);
    w.uint(code::AGENTS);
    w.uint(4);
    w.array(2);
    for name in ["a", "b"] {
        w.array(14);
        w.str(name);
        w.uint(1);
        w.str("running");
        w.opt_str(None);
        for n in 0..8 {
            w.uint(n);
        }
        w.opt_str(Some("agent_trapped: unreachable"));
        w.map(1);
        w.str("later");
        w.array(2);
        w.uint(1);
        w.bin(b"xy");
    }
    let Frame::Agents { agents, .. } = decode_body(&body).unwrap() else {
        panic!("not AGENTS");
    };
    assert_eq!(agents.len(), 2);
    assert_eq!(agents[1].name, "b");
    assert_eq!(
        agents[1].last_error.as_deref(),
        Some("agent_trapped: unreachable")
    );
}
