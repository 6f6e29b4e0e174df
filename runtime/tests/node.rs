//! A real node: pinned glommio shards, the SPSC mesh, client handles from
//! plain threads. These tests check behaviour and accounting, never timing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use quire_runtime::demo::names_on_shard;
use quire_runtime::{Node, NodeBuilder};
use quire_shards::{
    Agent, AgentId, CallError, Context, Envelope, Priority, Rejection, SendOptions,
};

/// Two shards when the machine has two CPUs, else one (tests pass on 1 or 2 cores).
fn shards() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(2)
}

fn node() -> NodeBuilder {
    Node::builder().shards(shards())
}

struct Echo;
impl Agent for Echo {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        let _ = ctx.reply(msg.payload);
    }
}

/// Ignores everything: calls to it time out.
struct Silent;
impl Agent for Silent {
    fn handle(&mut self, _ctx: &mut Context<'_>, _msg: Envelope) {}
}

type Seen = Arc<Mutex<Vec<(Priority, u32)>>>;

/// Records (priority, sequence number) of every message.
struct Recorder(Seen);
impl Agent for Recorder {
    fn handle(&mut self, _ctx: &mut Context<'_>, msg: Envelope) {
        let n = u32::from_le_bytes(msg.payload[..4].try_into().unwrap());
        self.0.lock().unwrap().push((msg.priority, n));
    }
}

/// On any message, sends `count` numbered messages of cycling priorities to `to`.
struct Burst {
    to: AgentId,
    count: u32,
    bounced: Arc<Mutex<u64>>,
}
impl Agent for Burst {
    fn handle(&mut self, ctx: &mut Context<'_>, _msg: Envelope) {
        for i in 0..self.count {
            let p = Priority::ALL[(i % 4) as usize];
            if ctx
                .send_with(
                    self.to.clone(),
                    Bytes::copy_from_slice(&i.to_le_bytes()),
                    SendOptions::default().priority(p),
                )
                .is_err()
            {
                *self.bounced.lock().unwrap() += 1;
            }
        }
    }
    fn on_undelivered(&mut self, _ctx: &mut Context<'_>, _msg: Envelope, reason: Rejection) {
        assert_eq!(reason, Rejection::QueueFull);
        *self.bounced.lock().unwrap() += 1;
    }
}

fn last_shard() -> usize {
    shards() - 1
}

#[test]
fn client_calls_reach_agents_on_every_shard() {
    let node = node().start().unwrap();
    let client = node.client();
    for s in 0..shards() {
        for name in names_on_shard("echo", s, shards(), 3) {
            client.register_blocking(name.clone(), || Echo).unwrap();
            let reply = client
                .call_blocking(name, "ping", Duration::from_secs(5))
                .unwrap();
            assert_eq!(&reply.payload[..], b"ping");
        }
    }
    let report = node.shutdown();
    assert!(report.drained);
    assert_eq!(report.totals().replies, 3 * shards() as u64);
}

/// Runs a node whose agent on the first shard sends `count` messages of
/// cycling priorities to a recorder on the last shard, then shuts it down.
/// Returns the report, what the recorder saw, and how many came back.
fn burst_from_first_to_last_shard(
    mailbox: usize,
    count: u32,
) -> (quire_runtime::ShutdownReport, Seen, Arc<Mutex<u64>>) {
    let node = node().mailbox_capacity(mailbox).start().unwrap();
    let client = node.client();
    let seen: Seen = Arc::default();
    let receiver = names_on_shard("recv", last_shard(), shards(), 1).remove(0);
    let sender = names_on_shard("send", 0, shards(), 1).remove(0);
    let s = seen.clone();
    client
        .register_blocking(receiver.clone(), move || Recorder(s))
        .unwrap();
    let bounced = Arc::new(Mutex::new(0u64));
    let b = bounced.clone();
    client
        .register_blocking(sender.clone(), move || Burst {
            to: receiver,
            count,
            bounced: b,
        })
        .unwrap();
    client.send_blocking(sender, Bytes::new()).unwrap();
    let report = node.shutdown_with_grace(Duration::from_secs(30));
    (report, seen, bounced)
}

#[test]
fn order_holds_per_sender_receiver_and_priority_across_shards() {
    let (report, seen, bounced) = burst_from_first_to_last_shard(100_000, 12_000);
    assert!(report.drained, "{report}");
    assert_eq!(*bounced.lock().unwrap(), 0);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 12_000);
    for p in Priority::ALL {
        let nums: Vec<u32> = seen
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(nums.len(), 3_000);
        assert!(nums.windows(2).all(|w| w[0] < w[1]), "{p:?} out of order");
    }
}

#[test]
fn queue_full_at_the_bound_and_every_message_accounted_for() {
    let (report, seen, bounced) = burst_from_first_to_last_shard(16, 5_000);
    assert!(report.drained, "{report}");
    let t = report.totals();
    let delivered = seen.lock().unwrap().len() as u64;
    let bounced = *bounced.lock().unwrap();
    assert!(
        bounced > 0,
        "a 16-slot mailbox must overflow under a 5000-message burst"
    );
    assert_eq!(
        delivered + bounced,
        5_000,
        "every message is delivered or comes back"
    );
    // Node-wide: the kick-off message plus the burst.
    assert_eq!(t.sent, 5_001);
    assert_eq!(t.handled + t.rejected_total(), t.sent);
    assert_eq!(t.rejected_for(Rejection::QueueFull), bounced);
}

#[test]
fn client_call_times_out_and_unknown_agents_are_refused() {
    let node = node().start().unwrap();
    let client = node.client();
    client.register_blocking("silent", || Silent).unwrap();
    let err = client
        .call_blocking("silent", "anyone?", Duration::from_millis(50))
        .unwrap_err();
    assert_eq!(err, CallError::Timeout);
    let err = client
        .call_blocking("nobody", "x", Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(err, CallError::Rejected(Rejection::NoSuchAgent));
    assert_eq!(
        client.send_blocking("nobody", "x"),
        Err(Rejection::NoSuchAgent)
    );
    let report = node.shutdown();
    assert_eq!(report.totals().call_timeouts, 1);
}

/// Calls `target` with a short timeout and reports how the call ended.
struct TimedCaller {
    target: AgentId,
    outcome: Arc<Mutex<Option<Result<(), CallError>>>>,
}
impl Agent for TimedCaller {
    fn handle(&mut self, ctx: &mut Context<'_>, _msg: Envelope) {
        ctx.call(self.target.clone(), "hello?", Duration::from_millis(30))
            .unwrap();
    }
    fn on_reply(
        &mut self,
        _ctx: &mut Context<'_>,
        _call: quire_shards::MessageId,
        reply: Result<Envelope, CallError>,
    ) {
        *self.outcome.lock().unwrap() = Some(reply.map(|_| ()));
    }
}

#[test]
fn agent_call_times_out_across_shards() {
    let node = node().start().unwrap();
    let client = node.client();
    let silent = names_on_shard("quiet", last_shard(), shards(), 1).remove(0);
    let caller = names_on_shard("asker", 0, shards(), 1).remove(0);
    client.register_blocking(silent.clone(), || Silent).unwrap();
    let outcome = Arc::new(Mutex::new(None));
    let o = outcome.clone();
    client
        .register_blocking(caller.clone(), move || TimedCaller {
            target: silent,
            outcome: o,
        })
        .unwrap();
    client.send_blocking(caller, Bytes::new()).unwrap();
    for _ in 0..500 {
        if outcome.lock().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*outcome.lock().unwrap(), Some(Err(CallError::Timeout)));
    node.shutdown();
}

/// Keeps calling the echo forever: shutdown must cut it off cleanly.
struct Chatter {
    echo: AgentId,
}
impl Agent for Chatter {
    fn handle(&mut self, ctx: &mut Context<'_>, _msg: Envelope) {
        let _ = ctx.call(self.echo.clone(), "x", Duration::from_secs(5));
    }
    fn on_reply(
        &mut self,
        ctx: &mut Context<'_>,
        _call: quire_shards::MessageId,
        _r: Result<Envelope, CallError>,
    ) {
        let _ = ctx.call(self.echo.clone(), "x", Duration::from_secs(5));
    }
}

#[test]
fn shutdown_under_load_accounts_for_everything_and_refuses_clients() {
    let node = node().start().unwrap();
    let client = node.client();
    let echo = names_on_shard("busy-echo", last_shard(), shards(), 1).remove(0);
    client.register_blocking(echo.clone(), || Echo).unwrap();
    for name in names_on_shard("chatter", 0, shards(), 4) {
        let e = echo.clone();
        client
            .register_blocking(name.clone(), move || Chatter { echo: e })
            .unwrap();
        client.send_blocking(name, Bytes::new()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let report = node.shutdown_with_grace(Duration::from_millis(100));
    let t = report.totals();
    assert!(t.handled > 100, "{report}");
    assert_eq!(t.sent, t.handled + t.rejected_total(), "{report}");
    // The node is gone: clients get a clear refusal, not a hang.
    assert_eq!(
        client.send_blocking(echo.clone(), "late"),
        Err(Rejection::ShuttingDown)
    );
    assert_eq!(
        client
            .call_blocking(echo, "late", Duration::from_secs(1))
            .unwrap_err(),
        CallError::Rejected(Rejection::ShuttingDown)
    );
}

#[test]
fn clients_on_many_threads() {
    let node = node().start().unwrap();
    let client = node.client();
    for s in 0..shards() {
        for name in names_on_shard("mt-echo", s, shards(), 2) {
            client.register_blocking(name, || Echo).unwrap();
        }
    }
    let names: Vec<AgentId> = (0..shards())
        .flat_map(|s| names_on_shard("mt-echo", s, shards(), 2))
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let client = client.clone();
            let names = names.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let name = names[(t + i) % names.len()].clone();
                    let payload = format!("{t}-{i}");
                    let reply = client
                        .call_blocking(name, payload.clone(), Duration::from_secs(5))
                        .unwrap();
                    assert_eq!(reply.payload, payload.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = node.shutdown();
    assert_eq!(report.totals().replies, 800);
}

#[test]
fn registration_errors_are_clear() {
    let node = node().start().unwrap();
    let client = node.client();
    client.register_blocking("dup", || Echo).unwrap();
    let err = client.register_blocking("dup", || Echo).unwrap_err();
    assert!(err.to_string().contains("already registered"), "{err}");
    assert_eq!(client.unregister_blocking("dup"), Ok(0));
    assert!(client.unregister_blocking("dup").is_err());
    node.shutdown();
}

#[test]
fn spinning_shards_serve_clients_and_drain() {
    // The low-latency setting: idle dispatchers poll instead of parking.
    let node = node()
        .spin_before_park(Duration::from_micros(300))
        .start()
        .unwrap();
    let client = node.client();
    let echo = names_on_shard("spin-echo", last_shard(), shards(), 1).remove(0);
    client.register_blocking(echo.clone(), || Echo).unwrap();
    for name in names_on_shard("spin-chatter", 0, shards(), 2) {
        let e = echo.clone();
        client
            .register_blocking(name.clone(), move || Chatter { echo: e })
            .unwrap();
        client.send_blocking(name, Bytes::new()).unwrap();
    }
    for i in 0..50 {
        let reply = client
            .call_blocking(echo.clone(), format!("{i}"), Duration::from_secs(5))
            .unwrap();
        assert_eq!(reply.payload, format!("{i}").as_bytes());
    }
    let report = node.shutdown_with_grace(Duration::from_millis(200));
    let t = report.totals();
    assert_eq!(t.sent, t.handled + t.rejected_total(), "{report}");
    assert!(t.replies > 50, "{report}");
}
