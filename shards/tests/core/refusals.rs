//! Messages that cannot be delivered (bounds, unknown agents, timeouts,
//! expiry), replies out of turn, panics and the lifecycle of agents.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use quire_shards::*;

use super::sim::*;

#[test]
fn remote_full_mailbox_bounces_back_to_the_sending_agent() {
    let (a, b) = names_on_two_shards();
    let mut sim = Sim::new(2, 4);
    let log: Log = Rc::default();
    let target = b.clone();
    sim.register(
        &a,
        scripted(&log, move |ctx, _, _| {
            for i in 0..10 {
                // Refusals are remote, so every local send is accepted.
                ctx.send(target.as_str(), format!("m{i}")).unwrap();
            }
            ctx.call(target.as_str(), "call", Duration::from_secs(1))
                .unwrap();
        }),
    );
    let seen: Log = Rc::default();
    sim.register(&b, Recorder(seen.clone()));
    sim.shards[0]
        .admit_client(a.as_str().into(), Bytes::new(), SendOptions::default())
        .unwrap();
    sim.settle();
    assert_eq!(seen.borrow().len(), 4);
    let log = log.borrow();
    let bounced: Vec<_> = log
        .iter()
        .filter(|l| l.starts_with("undelivered"))
        .collect();
    assert_eq!(bounced.len(), 6);
    assert_eq!(bounced[0], "undelivered m4 QueueFull");
    assert!(log.contains(&"failed Rejected(QueueFull)".to_string()));
    let t = sim.totals();
    assert_eq!(t.sent, 12);
    assert_eq!(t.handled + t.rejected_total(), t.sent);
}

#[test]
fn outbox_bound_refuses_at_once() {
    let (a, b) = names_on_two_shards();
    let mut sim = Sim::with(2, |c| {
        c.outbox_capacity = 3;
        c.mailbox_capacity = 100;
    });
    let log: Log = Rc::default();
    let target = b.clone();
    sim.register(
        &a,
        scripted(&log, move |ctx, _, log| {
            for i in 0..5 {
                let r = ctx.send(target.as_str(), format!("{i}"));
                log.borrow_mut()
                    .push(format!("{r:?}").split('(').next().unwrap().to_string());
            }
        }),
    );
    sim.register(&b, Recorder(Rc::default()));
    sim.shards[0]
        .admit_client(a.as_str().into(), Bytes::new(), SendOptions::default())
        .unwrap();
    sim.shards[0].run(usize::MAX);
    assert_eq!(*log.borrow(), ["Ok", "Ok", "Ok", "Err", "Err"]);
    assert_eq!(sim.shards[0].stats().rejected_for(Rejection::QueueFull), 2);
}

#[test]
fn unknown_agent_is_refused() {
    let (a, b) = names_on_two_shards();
    let mut sim = Sim::new(2, 4);
    let log: Log = Rc::default();
    let missing = (0..)
        .map(|i| format!("ghost{i}"))
        .find(|n| owning_shard(n, 2) == 0)
        .unwrap();
    sim.register(
        &a,
        scripted(&log, move |ctx, _, log| {
            let local = ctx.send(missing.as_str(), "x");
            log.borrow_mut().push(format!("{local:?}"));
            ctx.call(b.as_str(), "x", Duration::from_secs(1)).unwrap();
        }),
    );
    let ghost1 = (0..)
        .map(|i| format!("ghost{i}"))
        .find(|n| owning_shard(n, 2) == 1)
        .unwrap();
    let err =
        sim.shards[1].admit_client(ghost1.as_str().into(), Bytes::new(), SendOptions::default());
    assert_eq!(err, Err(Rejection::NoSuchAgent));
    sim.shards[0]
        .admit_client(a.as_str().into(), Bytes::new(), SendOptions::default())
        .unwrap();
    sim.settle();
    let log = log.borrow();
    assert_eq!(log[0], "Err(NoSuchAgent)");
    assert_eq!(log[1], "failed Rejected(NoSuchAgent)");
}

#[test]
fn call_times_out_when_nobody_answers() {
    let mut sim = Sim::new(1, 4);
    let log: Log = Rc::default();
    sim.register("silent", Recorder(Rc::default()));
    sim.register(
        "caller",
        scripted(&log, |ctx, _, _| {
            ctx.call("silent", "anyone?", Duration::from_millis(50))
                .unwrap();
        }),
    );
    sim.shards[0]
        .admit_client("caller".into(), Bytes::new(), SendOptions::default())
        .unwrap();
    sim.settle();
    assert!(log.borrow().is_empty());
    // The timeout runs from the caller's turn, on the shard's clock.
    assert_eq!(
        sim.shards[0].next_timer(),
        Some(sim.clock.now() + Duration::from_millis(50))
    );
    assert_eq!(sim.advance(Duration::from_micros(49_999)), 0);
    sim.settle();
    assert!(log.borrow().is_empty(), "not a microsecond early");
    assert_eq!(sim.advance(Duration::from_micros(1)), 1);
    sim.settle();
    assert_eq!(*log.borrow(), ["failed Timeout"]);
    assert_eq!(sim.totals().call_timeouts, 1);
    assert_eq!(sim.shards[0].pending_calls(), 0);
}

#[test]
fn client_call_times_out() {
    let mut sim = Sim::new(1, 4);
    sim.register("silent", Recorder(Rc::default()));
    let (tx, rx) = std::sync::mpsc::channel();
    sim.shards[0]
        .admit_client_call(
            "silent".into(),
            Bytes::new(),
            SendOptions::default(),
            Duration::from_millis(10),
            Box::new(move |r| tx.send(r).unwrap()),
        )
        .unwrap();
    sim.settle();
    assert_eq!(sim.advance(Duration::from_millis(9)), 0);
    assert!(rx.try_recv().is_err());
    assert_eq!(sim.advance(Duration::from_millis(1)), 1);
    assert!(matches!(
        rx.try_recv().unwrap(),
        Err(CallFailure {
            error: CallError::Timeout,
            ..
        })
    ));
}

#[test]
fn a_reply_after_the_timeout_is_counted_not_delivered() {
    let (a, b) = names_on_two_shards();
    let mut sim = Sim::new(2, 4);
    let log: Log = Rc::default();
    let target = b.clone();
    sim.register(
        &a,
        scripted(&log, move |ctx, _, _| {
            ctx.call(target.as_str(), "x", Duration::from_millis(1))
                .unwrap();
        }),
    );
    sim.register(&b, Echo);
    sim.shards[0]
        .admit_client(a.as_str().into(), Bytes::new(), SendOptions::default())
        .unwrap();
    sim.shards[0].run(usize::MAX);
    // The call is on its way; its timeout fires before the reply comes back.
    assert_eq!(sim.advance(Duration::from_millis(1)), 1);
    sim.settle();
    assert_eq!(*log.borrow(), ["failed Timeout"]);
    assert_eq!(sim.totals().late_replies, 1);
}

#[test]
fn expired_messages_are_dead_letters_returned_to_their_sender() {
    let mut sim = Sim::new(1, 4);
    let log: Log = Rc::default();
    let seen: Log = Rc::default();
    sim.register("slow", Recorder(seen.clone()));
    sim.register(
        "sender",
        scripted(&log, |ctx, _, _| {
            let ttl = |ms| SendOptions::default().ttl(Duration::from_millis(ms));
            ctx.send_with("slow", "stale", ttl(5)).unwrap();
            ctx.send_with("slow", "fresh", ttl(6)).unwrap();
        }),
    );
    sim.shards[0]
        .admit_client("sender".into(), Bytes::new(), SendOptions::default())
        .unwrap();
    // The sender's turn only; then 5 ms pass before "slow" gets its turn:
    // a message is not handled once its deadline has come.
    assert_eq!(sim.shards[0].run(1), 1);
    sim.advance(Duration::from_millis(5));
    sim.settle();
    let t = sim.totals();
    assert_eq!(t.dead_letters(), 1);
    assert_eq!(*log.borrow(), ["undelivered stale Expired"]);
    assert_eq!(*seen.borrow(), ["Normal fresh"]);
    assert_eq!(t.handled + t.rejected_total(), t.sent);
}

#[test]
fn reply_is_only_for_calls_and_only_once() {
    let mut sim = Sim::new(1, 4);
    let log: Log = Rc::default();
    sim.register(
        "r",
        scripted(&log, |ctx, _, log| {
            let first = ctx.reply("a");
            let second = ctx.reply("b");
            log.borrow_mut().push(format!("{first:?} {second:?}"));
        }),
    );
    sim.shards[0]
        .admit_client("r".into(), Bytes::new(), SendOptions::default())
        .unwrap();
    let got = sim.client_call("r", b"", Duration::from_secs(1));
    assert_eq!(
        *log.borrow(),
        ["Err(Invalid) Err(Invalid)", "Ok(()) Err(Invalid)"]
    );
    assert_eq!(&got.borrow_mut().take().unwrap().unwrap().payload[..], b"a");
}

#[test]
fn a_panicking_handler_fails_the_message_not_the_shard() {
    let mut sim = Sim::new(1, 4);
    let log: Log = Rc::default();
    sim.register(
        "boom",
        scripted(&log, |_, msg, _| {
            if &msg.payload[..] == b"boom" {
                panic!("agent bug");
            }
        }),
    );
    sim.register("echo", Echo);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let got = sim.client_call("boom", b"boom", Duration::from_secs(1));
    std::panic::set_hook(prev);
    assert!(matches!(
        got.borrow_mut().take(),
        Some(Err(CallError::Rejected(Rejection::AgentFailed)))
    ));
    let ok = sim.client_call("echo", b"still here", Duration::from_secs(1));
    assert!(ok.borrow_mut().take().unwrap().is_ok());
    let t = sim.totals();
    assert_eq!(t.agent_panics, 1);
    assert_eq!(t.handled + t.rejected_total(), t.sent);
}

#[test]
fn unregister_returns_waiting_messages() {
    let mut sim = Sim::new(1, 8);
    sim.register("r", Recorder(Rc::default()));
    for _ in 0..3 {
        sim.shards[0]
            .admit_client("r".into(), Bytes::new(), SendOptions::default())
            .unwrap();
    }
    assert_eq!(sim.shards[0].unregister(&"r".into()).unwrap(), 3);
    sim.settle();
    let t = sim.totals();
    assert_eq!(t.rejected_for(Rejection::NoSuchAgent), 3);
    assert_eq!(t.agents, 0);
    // The slot is reused cleanly.
    sim.register("r2", Echo);
    assert!(sim
        .client_call("r2", b"x", Duration::from_secs(1))
        .borrow()
        .is_some());
}

#[test]
fn registration_checks_ownership_and_duplicates() {
    let (a, b) = names_on_two_shards();
    let mut sim = Sim::new(2, 4);
    let err = sim.shards[0]
        .register(b.as_str().into(), Box::new(Echo))
        .unwrap_err();
    assert!(matches!(
        err,
        RegisterError::WrongShard {
            owner: 1,
            this: 0,
            ..
        }
    ));
    sim.register(&a, Echo);
    let err = sim.shards[0]
        .register(a.as_str().into(), Box::new(Echo))
        .unwrap_err();
    assert!(matches!(err, RegisterError::AlreadyRegistered(_)));
}

#[test]
fn abort_rejects_everything_left_and_tells_waiting_clients() {
    let mut sim = Sim::new(1, 8);
    sim.register("r", Recorder(Rc::default()));
    for _ in 0..5 {
        sim.shards[0]
            .admit_client("r".into(), Bytes::new(), SendOptions::default())
            .unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    sim.shards[0]
        .admit_client_call(
            "r".into(),
            Bytes::new(),
            SendOptions::default(),
            Duration::from_secs(9),
            Box::new(move |r| tx.send(r).unwrap()),
        )
        .unwrap();
    assert_eq!(sim.shards[0].abort_all(), 6);
    assert!(matches!(
        rx.try_recv().unwrap(),
        Err(CallFailure {
            error: CallError::Rejected(Rejection::ShuttingDown),
            ..
        })
    ));
    assert_eq!(
        sim.shards[0].admit_client("r".into(), Bytes::new(), SendOptions::default()),
        Err(Rejection::ShuttingDown)
    );
    let t = sim.totals();
    assert_eq!(t.handled + t.rejected_total(), t.sent);
}

#[test]
fn pending_calls_are_bounded() {
    let mut sim = Sim::with(1, |c| c.max_pending_calls = 2);
    sim.register("silent", Recorder(Rc::default()));
    let log: Log = Rc::default();
    sim.register(
        "caller",
        scripted(&log, |ctx, _, log| {
            for _ in 0..3 {
                let r = ctx.call("silent", "", Duration::from_secs(1)).map(|_| ());
                log.borrow_mut().push(format!("{r:?}"));
            }
        }),
    );
    sim.shards[0]
        .admit_client("caller".into(), Bytes::new(), SendOptions::default())
        .unwrap();
    sim.settle();
    assert_eq!(
        *log.borrow(),
        ["Ok(())", "Ok(())", "Err(TooManyPendingCalls)"]
    );
}

#[test]
fn send_after_delivers_when_the_timer_fires() {
    let mut sim = Sim::new(1, 8);
    let log: Log = Rc::default();
    sim.register(
        "t",
        scripted(&log, |ctx, msg, log| {
            log.borrow_mut()
                .push(String::from_utf8_lossy(&msg.payload).into_owned());
            if &msg.payload[..] == b"start" {
                ctx.send_after(Duration::from_millis(5), "tick");
            }
        }),
    );
    sim.shards[0]
        .admit_client(
            "t".into(),
            Bytes::from_static(b"start"),
            SendOptions::default(),
        )
        .unwrap();
    sim.settle();
    assert_eq!(*log.borrow(), ["start"]);
    assert_eq!(sim.advance(Duration::from_micros(4_999)), 0);
    assert_eq!(sim.advance(Duration::from_micros(1)), 1);
    sim.settle();
    assert_eq!(*log.borrow(), ["start", "tick"]);
}

#[test]
fn busy_agents_share_the_shard_fairly() {
    let mut sim = Sim::with(1, |c| {
        c.agent_batch = 4;
        c.mailbox_capacity = 100;
    });
    let seen: Log = Rc::default();
    sim.register("x", Recorder(seen.clone()));
    sim.register("y", Recorder(seen.clone()));
    for name in ["x", "y"] {
        for i in 0..8 {
            sim.shards[0]
                .admit_client(
                    name.into(),
                    Bytes::from(format!("{name}{i}")),
                    SendOptions::default(),
                )
                .unwrap();
        }
    }
    sim.shards[0].run(usize::MAX);
    let order: String = seen
        .borrow()
        .iter()
        .map(|l| l.chars().nth(7).unwrap())
        .collect();
    assert_eq!(order, "xxxxyyyyxxxxyyyy");
}
