//! Cost of the shard state machine alone, with no executor: a driver agent
//! calls an echo agent on the same `ShardCore` in a loop, and one producer
//! sends one-way messages to a consumer. `cargo run --release -p quire-shards
//! --example core_loop` prints nanoseconds per round trip and per message.

use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use bytes::Bytes;
use quire_shards::{
    Agent, CallError, Context, Envelope, MessageId, SendOptions, ShardConfig, ShardCore,
};

struct Echo;
impl Agent for Echo {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        let _ = ctx.reply(msg.payload);
    }
}

struct Driver {
    left: u64,
    echo: quire_shards::AgentId,
}
impl Agent for Driver {
    fn handle(&mut self, ctx: &mut Context<'_>, _msg: Envelope) {
        let _ = ctx.call(&self.echo, Bytes::from_static(b"x"), Duration::from_secs(5));
    }
    fn on_reply(
        &mut self,
        ctx: &mut Context<'_>,
        _call: MessageId,
        _r: Result<Envelope, CallError>,
    ) {
        self.left -= 1;
        if self.left > 0 {
            let _ = ctx.call(&self.echo, Bytes::from_static(b"x"), Duration::from_secs(5));
        }
    }
}

struct Sink;
impl Agent for Sink {
    fn handle(&mut self, _ctx: &mut Context<'_>, _msg: Envelope) {}
}

struct Source {
    left: u64,
    sink: quire_shards::AgentId,
}
impl Agent for Source {
    fn handle(&mut self, ctx: &mut Context<'_>, _msg: Envelope) {
        for _ in 0..32 {
            if self.left == 0 {
                return;
            }
            self.left -= 1;
            let _ = ctx.send(&self.sink, Bytes::from_static(b"x"));
        }
        let me = ctx.id().clone();
        let _ = ctx.send(me, Bytes::new());
    }
}

fn main() {
    eprintln!(
        "Envelope {} bytes, Address {}, Kind {}",
        std::mem::size_of::<Envelope>(),
        std::mem::size_of::<quire_shards::Address>(),
        std::mem::size_of::<quire_shards::Kind>()
    );
    let n = 10_000_000;
    let mut core = ShardCore::new(ShardConfig {
        mailbox_capacity: 1 << 20,
        ..ShardConfig::new(0, 1)
    });
    core.register("echo".into(), Box::new(Echo)).unwrap();
    core.register(
        "driver".into(),
        Box::new(Driver {
            left: n,
            echo: "echo".into(),
        }),
    )
    .unwrap();
    core.register("sink".into(), Box::new(Sink)).unwrap();
    core.register(
        "source".into(),
        Box::new(Source {
            left: n,
            sink: "sink".into(),
        }),
    )
    .unwrap();

    let only_one_way = std::env::args().any(|a| a == "--one-way");
    if !only_one_way {
        core.admit_client("driver".into(), Bytes::new(), SendOptions::default())
            .unwrap();
        let t = Instant::now();
        while core.run(512) > 0 {}
        println!(
            "same-shard call round trip: {:.1} ns",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }

    if std::env::args().any(|a| a == "--rtt") {
        return;
    }
    core.admit_client("source".into(), Bytes::new(), SendOptions::default())
        .unwrap();
    let t = Instant::now();
    while core.run(512) > 0 {}
    println!(
        "one-way send + handle: {:.1} ns",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}
