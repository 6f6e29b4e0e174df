//! The shard state machine driven by hand: several `ShardCore`s whose outboxes
//! a test pumps into each other, with no threads and no executor.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quire_shards::*;

/// Shards of one simulated node, connected by moving outboxes by hand.
struct Sim {
    shards: Vec<ShardCore>,
}

impl Sim {
    fn new(n: usize, mailbox: usize) -> Self {
        Self::with(n, |cfg| cfg.mailbox_capacity = mailbox)
    }

    fn with(n: usize, tweak: impl Fn(&mut ShardConfig)) -> Self {
        let shards = (0..n)
            .map(|i| {
                let mut cfg = ShardConfig::new(i as u16, n);
                tweak(&mut cfg);
                ShardCore::new(cfg)
            })
            .collect();
        Self { shards }
    }

    fn owner(&self, name: &str) -> usize {
        owning_shard(name, self.shards.len()) as usize
    }

    fn register(&mut self, name: &str, agent: impl Agent) {
        let owner = self.owner(name);
        self.shards[owner]
            .register(name.into(), Box::new(agent))
            .unwrap();
    }

    /// Moves mesh traffic and runs agents until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = 0;
            for i in 0..self.shards.len() {
                moved += self.shards[i].run(usize::MAX);
                for peer in 0..self.shards.len() {
                    for env in self.shards[i].take_outbox(peer as u16) {
                        moved += 1;
                        self.shards[peer].deliver_from_peer(env);
                    }
                }
            }
            if moved == 0 {
                break;
            }
        }
    }

    fn totals(&self) -> ShardStats {
        let each: Vec<ShardStats> = self.shards.iter().map(ShardCore::stats).collect();
        ShardStats::total(&each)
    }

    fn client_call(&mut self, to: &str, payload: &'static [u8], timeout: Duration) -> CallSlot {
        let slot: CallSlot = Rc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let owner = self.owner(to);
        let _ = self.shards[owner].admit_client_call(
            to.into(),
            Bytes::from_static(payload),
            SendOptions::default(),
            timeout,
            Box::new(move |r| tx.send(r).unwrap()),
        );
        self.settle();
        if let Ok(r) = rx.try_recv() {
            *slot.borrow_mut() = Some(r.map_err(|f| f.error));
        }
        slot
    }
}

type Log = Rc<RefCell<Vec<String>>>;

/// Records every event it sees as a line of text.
struct Recorder(Log);

impl Agent for Recorder {
    fn handle(&mut self, _ctx: &mut Context<'_>, msg: Envelope) {
        self.0.borrow_mut().push(format!(
            "{:?} {}",
            msg.priority,
            String::from_utf8_lossy(&msg.payload)
        ));
    }
    fn on_reply(
        &mut self,
        _ctx: &mut Context<'_>,
        _call: MessageId,
        reply: Result<Envelope, CallError>,
    ) {
        let line = match reply {
            Ok(env) => format!("reply {}", String::from_utf8_lossy(&env.payload)),
            Err(e) => format!("failed {e:?}"),
        };
        self.0.borrow_mut().push(line);
    }
    fn on_undelivered(&mut self, _ctx: &mut Context<'_>, msg: Envelope, reason: Rejection) {
        self.0.borrow_mut().push(format!(
            "undelivered {} {reason:?}",
            String::from_utf8_lossy(&msg.payload)
        ));
        assert_ne!(
            msg.to_agent(),
            Some(_ctx.id()),
            "a returned message names its original receiver"
        );
        assert_eq!(msg.from.agent(), Some(_ctx.id()));
    }
}

struct Echo;
impl Agent for Echo {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        ctx.reply(msg.payload).unwrap();
    }
}

type Script = Box<dyn FnMut(&mut Context<'_>, &Envelope, &Log)>;
type CallSlot = Rc<RefCell<Option<Result<Envelope, CallError>>>>;

/// On every message, does what the payload says, then records results.
struct Scripted {
    log: Log,
    script: Script,
}
impl Agent for Scripted {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        (self.script)(ctx, &msg, &self.log);
    }
    fn on_reply(
        &mut self,
        ctx: &mut Context<'_>,
        call: MessageId,
        reply: Result<Envelope, CallError>,
    ) {
        Recorder(self.log.clone()).on_reply(ctx, call, reply);
    }
    fn on_undelivered(&mut self, ctx: &mut Context<'_>, msg: Envelope, reason: Rejection) {
        Recorder(self.log.clone()).on_undelivered(ctx, msg, reason);
    }
}

fn scripted(log: &Log, f: impl FnMut(&mut Context<'_>, &Envelope, &Log) + 'static) -> Scripted {
    Scripted {
        log: log.clone(),
        script: Box::new(f),
    }
}

/// Two names, one owned by each of two shards.
fn names_on_two_shards() -> (String, String) {
    let a = (0..)
        .map(|i| format!("a{i}"))
        .find(|n| owning_shard(n, 2) == 0)
        .unwrap();
    let b = (0..)
        .map(|i| format!("b{i}"))
        .find(|n| owning_shard(n, 2) == 1)
        .unwrap();
    (a, b)
}

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

/// Records into a log shared by several agents, prefixed with its name.
struct Named(&'static str, Log);

impl Agent for Named {
    fn handle(&mut self, _ctx: &mut Context<'_>, msg: Envelope) {
        self.1.borrow_mut().push(format!(
            "{} {}",
            self.0,
            String::from_utf8_lossy(&msg.payload)
        ));
    }
}

fn admit(shard: &mut ShardCore, to: &str, text: &'static str, p: Priority) {
    shard
        .admit_client(
            to.into(),
            Bytes::from_static(text.as_bytes()),
            SendOptions::default().priority(p),
        )
        .unwrap();
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
    let due = sim.shards[0]
        .next_timer()
        .expect("the call's timeout is armed");
    assert_eq!(sim.shards[0].fire_timers(due - Duration::from_millis(1)), 0);
    assert_eq!(sim.shards[0].fire_timers(due), 1);
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
    assert!(rx.try_recv().is_err());
    sim.shards[0].fire_timers(Instant::now() + Duration::from_secs(1));
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
    sim.shards[0].fire_timers(Instant::now() + Duration::from_secs(1));
    sim.settle();
    assert_eq!(*log.borrow(), ["failed Timeout"]);
    assert_eq!(sim.totals().late_replies, 1);
}

#[test]
fn expired_messages_are_dead_letters_returned_to_their_sender() {
    let mut sim = Sim::new(1, 4);
    let log: Log = Rc::default();
    sim.register("slow", Recorder(Rc::default()));
    sim.register(
        "sender",
        scripted(&log, |ctx, _, _| {
            ctx.send_with("slow", "stale", SendOptions::default().ttl(Duration::ZERO))
                .unwrap();
        }),
    );
    sim.shards[0]
        .admit_client("sender".into(), Bytes::new(), SendOptions::default())
        .unwrap();
    sim.settle();
    let t = sim.totals();
    assert_eq!(t.dead_letters(), 1);
    assert_eq!(*log.borrow(), ["undelivered stale Expired"]);
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
    sim.shards[0].fire_timers(Instant::now() + Duration::from_secs(1));
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
