//! The simulated node the core tests drive, and the agents they deploy.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use quire_shards::*;

/// Shards of one simulated node, connected by moving outboxes by hand,
/// on one manual clock: time moves only when a test calls [`Sim::advance`].
pub struct Sim {
    pub shards: Vec<ShardCore>,
    pub clock: ManualClock,
}

impl Sim {
    pub fn new(n: usize, mailbox: usize) -> Self {
        Self::with(n, |cfg| cfg.mailbox_capacity = mailbox)
    }

    pub fn with(n: usize, tweak: impl Fn(&mut ShardConfig)) -> Self {
        let clock = ManualClock::new();
        let shards = (0..n)
            .map(|i| {
                let mut cfg = ShardConfig::new(i as u16, n);
                tweak(&mut cfg);
                ShardCore::with_clock(cfg, clock.clone().into())
            })
            .collect();
        Self { shards, clock }
    }

    /// Moves the clock on by `by` and fires what fell due on every shard
    /// (without settling); returns how many timers fired.
    pub fn advance(&mut self, by: Duration) -> usize {
        self.clock.advance(by);
        let now = self.clock.now();
        self.shards.iter_mut().map(|s| s.fire_timers(now)).sum()
    }

    pub fn owner(&self, name: &str) -> usize {
        owning_shard(name, self.shards.len()) as usize
    }

    pub fn register(&mut self, name: &str, agent: impl Agent) {
        let owner = self.owner(name);
        self.shards[owner]
            .register(name.into(), Box::new(agent))
            .unwrap();
    }

    /// Moves mesh traffic and runs agents until nothing moves.
    pub fn settle(&mut self) {
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

    pub fn totals(&self) -> ShardStats {
        let each: Vec<ShardStats> = self.shards.iter().map(ShardCore::stats).collect();
        ShardStats::total(&each)
    }

    pub fn client_call(&mut self, to: &str, payload: &'static [u8], timeout: Duration) -> CallSlot {
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

pub type Log = Rc<RefCell<Vec<String>>>;

/// Records every event it sees as a line of text.
pub struct Recorder(pub Log);

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

pub struct Echo;
impl Agent for Echo {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        ctx.reply(msg.payload).unwrap();
    }
}

pub type Script = Box<dyn FnMut(&mut Context<'_>, &Envelope, &Log)>;
pub type CallSlot = Rc<RefCell<Option<Result<Envelope, CallError>>>>;

/// On every message, does what the payload says, then records results.
pub struct Scripted {
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

pub fn scripted(log: &Log, f: impl FnMut(&mut Context<'_>, &Envelope, &Log) + 'static) -> Scripted {
    Scripted {
        log: log.clone(),
        script: Box::new(f),
    }
}

/// Two names, one owned by each of two shards.
pub fn names_on_two_shards() -> (String, String) {
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

/// Records into a log shared by several agents, prefixed with its name.
pub struct Named(pub &'static str, pub Log);

impl Agent for Named {
    fn handle(&mut self, _ctx: &mut Context<'_>, msg: Envelope) {
        self.1.borrow_mut().push(format!(
            "{} {}",
            self.0,
            String::from_utf8_lossy(&msg.payload)
        ));
    }
}

pub fn admit(shard: &mut ShardCore, to: &str, text: &'static str, p: Priority) {
    shard
        .admit_client(
            to.into(),
            Bytes::from_static(text.as_bytes()),
            SendOptions::default().priority(p),
        )
        .unwrap();
}
