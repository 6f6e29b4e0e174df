//! Calls and replies within and across shards, the order and priority
//! messages keep, and what full mailboxes do to them.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use quire_shards::*;

use super::sim::*;

#[test]
fn client_call_same_shard_gets_the_reply() {
    let mut sim = Sim::new(1, 16);
    sim.register("echo", Echo);
    let got = sim.client_call("echo", b"ping", Duration::from_secs(1));
    let reply = got.borrow_mut().take().unwrap().unwrap();
    assert_eq!(&reply.payload[..], b"ping");
    assert_eq!(reply.kind, Kind::Reply);
    let t = sim.totals();
    assert_eq!((t.sent, t.handled, t.replies), (1, 1, 1));
    assert_eq!(t.call_latency_ns.len(), 1);
}

#[test]
fn agent_call_across_shards_round_trips() {
    let (a, b) = names_on_two_shards();
    let mut sim = Sim::new(2, 16);
    let log: Log = Rc::default();
    let target = b.clone();
    sim.register(
        &a,
        scripted(&log, move |ctx, _msg, _| {
            ctx.call(target.as_str(), "hello", Duration::from_secs(5))
                .unwrap();
        }),
    );
    sim.register(&b, Echo);
    sim.shards[0]
        .admit_client(a.as_str().into(), Bytes::new(), SendOptions::default())
        .unwrap();
    sim.settle();
    assert_eq!(*log.borrow(), vec!["reply hello".to_string()]);
    let t = sim.totals();
    assert_eq!(t.sent, 2);
    assert_eq!(t.handled, 2);
    assert_eq!(t.cross_shard_out, 2);
    assert_eq!(t.cross_shard_in, 2);
}

#[test]
fn order_holds_per_sender_receiver_and_priority_across_shards() {
    let (a, b) = names_on_two_shards();
    let mut sim = Sim::new(2, 10_000);
    let log: Log = Rc::default();
    let target = b.clone();
    // One burst of interleaved priorities from a (shard 0) to b (shard 1).
    sim.register(
        &a,
        scripted(&log, move |ctx, _, _| {
            for i in 0..300 {
                let p = Priority::ALL[i % 4];
                ctx.send_with(
                    target.as_str(),
                    format!("{i}"),
                    SendOptions::default().priority(p),
                )
                .unwrap();
            }
        }),
    );
    let seen: Log = Rc::default();
    sim.register(&b, Recorder(seen.clone()));
    sim.shards[0]
        .admit_client(a.as_str().into(), Bytes::new(), SendOptions::default())
        .unwrap();
    sim.settle();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 300);
    for p in Priority::ALL {
        let nums: Vec<usize> = seen
            .iter()
            .filter(|l| l.starts_with(&format!("{p:?} ")))
            .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(nums.len(), 75);
        assert!(
            nums.windows(2).all(|w| w[0] < w[1]),
            "{p:?} out of order: {nums:?}"
        );
    }
    // The whole burst arrived in one batch, so strict priority applies to it.
    let first_low = seen.iter().position(|l| l.starts_with("Low")).unwrap();
    assert!(seen[..first_low].iter().all(|l| !l.starts_with("Low")));
    assert!(seen[..75].iter().all(|l| l.starts_with("Critical")));
}

#[test]
fn queued_messages_come_out_in_strict_priority() {
    let mut sim = Sim::new(1, 100);
    let seen: Log = Rc::default();
    sim.register("r", Recorder(seen.clone()));
    for (p, text) in [
        (Priority::Low, "l1"),
        (Priority::Normal, "n1"),
        (Priority::High, "h1"),
        (Priority::Critical, "c1"),
        (Priority::Low, "l2"),
        (Priority::Critical, "c2"),
    ] {
        sim.shards[0]
            .admit_client(
                "r".into(),
                Bytes::from_static(text.as_bytes()),
                SendOptions::default().priority(p),
            )
            .unwrap();
    }
    sim.settle();
    assert_eq!(
        *seen.borrow(),
        [
            "Critical c1",
            "Critical c2",
            "High h1",
            "Normal n1",
            "Low l1",
            "Low l2"
        ]
    );
}

#[test]
fn express_scheduling_runs_an_agent_with_urgent_mail_before_busy_ones() {
    for express in [true, false] {
        let mut sim = Sim::with(1, |cfg| {
            cfg.agent_batch = 2;
            cfg.express_scheduling = express;
        });
        let log: Log = Rc::default();
        sim.register("busy", Named("busy", log.clone()));
        sim.register("other", Named("other", log.clone()));
        sim.register("urgent", Named("urgent", log.clone()));
        for text in ["1", "2", "3", "4"] {
            admit(&mut sim.shards[0], "busy", text, Priority::Normal);
        }
        admit(&mut sim.shards[0], "other", "1", Priority::Normal);
        admit(&mut sim.shards[0], "urgent", "now", Priority::Critical);
        sim.settle();
        let order = log.borrow().clone();
        let expected: &[&str] = if express {
            // The critical message overtakes agents that were ready first.
            &[
                "urgent now",
                "busy 1",
                "busy 2",
                "other 1",
                "busy 3",
                "busy 4",
            ]
        } else {
            &[
                "busy 1",
                "busy 2",
                "other 1",
                "urgent now",
                "busy 3",
                "busy 4",
            ]
        };
        assert_eq!(order, expected, "express_scheduling = {express}");
    }
}

#[test]
fn urgent_headroom_takes_high_and_critical_mail_into_a_full_mailbox() {
    let mut sim = Sim::with(1, |cfg| {
        cfg.mailbox_capacity = 2;
        cfg.urgent_headroom = 2;
    });
    let log: Log = Rc::default();
    sim.register("r", Named("r", log.clone()));
    let shard = &mut sim.shards[0];
    admit(shard, "r", "n1", Priority::Normal);
    admit(shard, "r", "n2", Priority::Normal);
    let refused = shard.admit_client(
        "r".into(),
        Bytes::from_static(b"n3"),
        SendOptions::default(),
    );
    assert_eq!(refused.unwrap_err(), Rejection::QueueFull);
    let low = SendOptions::default().priority(Priority::Low);
    assert_eq!(
        shard
            .admit_client("r".into(), Bytes::from_static(b"l1"), low)
            .unwrap_err(),
        Rejection::QueueFull
    );
    admit(shard, "r", "h1", Priority::High);
    admit(shard, "r", "c1", Priority::Critical);
    let critical = SendOptions::default().priority(Priority::Critical);
    assert_eq!(
        shard
            .admit_client("r".into(), Bytes::from_static(b"c2"), critical)
            .unwrap_err(),
        Rejection::QueueFull,
        "the headroom is bounded too"
    );
    sim.settle();
    assert_eq!(*log.borrow(), ["r c1", "r h1", "r n1", "r n2"]);
    let stats = sim.totals();
    assert_eq!(stats.rejected_for(Rejection::QueueFull), 3);
    assert_eq!(stats.handled, 4);
}

#[test]
fn full_mailbox_refuses_at_once_and_every_message_is_accounted_for() {
    let mut sim = Sim::new(1, 8);
    let seen: Log = Rc::default();
    sim.register("r", Recorder(seen.clone()));
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..20 {
        match sim.shards[0].admit_client(
            "r".into(),
            Bytes::from(format!("{i}")),
            SendOptions::default(),
        ) {
            Ok(_) => accepted += 1,
            Err(Rejection::QueueFull) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((accepted, refused), (8, 12));
    sim.settle();
    let t = sim.totals();
    assert_eq!(seen.borrow().len(), 8);
    assert_eq!(t.sent, 20);
    assert_eq!(t.rejected_for(Rejection::QueueFull), 12);
    assert_eq!(t.handled + t.rejected_total(), t.sent);
}
