//! Turns cut by time: handler time charged with `Context::charge_time`
//! ends a run of agents once it reaches the shard's turn quota, so the
//! shard's other tasks run between slices of a storm of messages.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use quire_shards::*;

type Log = Rc<RefCell<Vec<String>>>;

/// Logs each message and reports that it took `ran` (a native agent has
/// nothing to time; the WebAssembly host charges what it measured).
struct Slow {
    name: &'static str,
    ran: Duration,
    log: Log,
}

impl Agent for Slow {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        let text = String::from_utf8_lossy(&msg.payload).into_owned();
        self.log.borrow_mut().push(format!("{} {text}", self.name));
        ctx.charge_time(self.ran);
    }
}

fn shard_with(agents: &[(&'static str, Duration)], log: &Log) -> ShardCore {
    let mut cfg = ShardConfig::new(0, 1);
    cfg.turn_quota = Duration::from_micros(500);
    let mut shard = ShardCore::new(cfg);
    for &(name, ran) in agents {
        let agent = Slow {
            name,
            ran,
            log: log.clone(),
        };
        shard.register(name.into(), Box::new(agent)).unwrap();
    }
    for text in ["1", "2", "3", "4"] {
        for &(name, _) in agents {
            shard
                .admit_client(
                    name.into(),
                    Bytes::from_static(text.as_bytes()),
                    SendOptions::default(),
                )
                .unwrap();
        }
    }
    shard
}

#[test]
fn a_run_returns_once_its_handlers_took_the_quota_and_turns_rotate() {
    let log: Log = Rc::default();
    let quarter = Duration::from_micros(300);
    let mut shard = shard_with(&[("a", quarter), ("b", quarter)], &log);
    let mut runs = Vec::new();
    while shard.has_ready() {
        let handled = shard.run(usize::MAX);
        runs.push((handled, shard.take_yield_request()));
    }
    // 300 µs + 300 µs passes 500 µs: two messages a run, the agent that
    // ran goes to the back of the queue.
    assert_eq!(runs, [(2, true); 4]);
    let order = log.borrow().clone();
    assert_eq!(
        order,
        ["a 1", "a 2", "b 1", "b 2", "a 3", "a 4", "b 3", "b 4"]
    );
}

#[test]
fn uncharged_handlers_keep_the_message_batches() {
    let log: Log = Rc::default();
    let mut shard = shard_with(&[("a", Duration::ZERO), ("b", Duration::ZERO)], &log);
    assert_eq!(shard.run(usize::MAX), 8);
    assert!(!shard.take_yield_request());
    assert!(!shard.has_ready());
}
