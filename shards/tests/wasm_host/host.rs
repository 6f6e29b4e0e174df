//! The harness: a `ShardCore` with a wasm host on a manual clock, and the
//! WAT agents the tests deploy.

use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use quire_shards::wasm::{
    AgentLimits, Supervision, WasmAgent, WasmEngine, WasmShard, WasmShardConfig,
};
use quire_shards::{
    AgentId, CallError, CallFailure, Envelope, ManualClock, Rejection, SendOptions, ShardConfig,
    ShardCore,
};

pub fn module(body: &str) -> Vec<u8> {
    quire_shards::testing::wat_agent(body)
}

pub fn echo() -> Vec<u8> {
    quire_shards::testing::wat_echo()
}

/// Replies with "v2" (for reloads).
pub fn echo_v2() -> Vec<u8> {
    module(
        r#"(data (i32.const 16) "v2")
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (drop (call $reply (i32.const 16) (i32.const 2))) i32.const 0)"#,
    )
}

pub fn counter() -> Vec<u8> {
    quire_shards::testing::wat_counter()
}

/// Loops forever on a message whose payload starts with "loop"; echoes otherwise.
pub fn looper() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (if (i32.eq (i32.load8_u (local.get 3)) (i32.const 108))
               (then (loop $forever (br $forever))))
             (drop (call $reply (local.get 3) (local.get 4))) i32.const 0)"#,
    )
}

/// Grows its memory until refused, then traps (as a Rust guest's allocator would).
pub fn memory_bomb() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (loop $grow
               (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
             unreachable)"#,
    )
}

/// Traps at once.
pub fn trapper() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             unreachable)"#,
    )
}

/// Replies with 2 MiB of its memory.
pub fn huge_reply() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (drop (memory.grow (i32.const 40)))
             (drop (call $reply (i32.const 0) (i32.const 2097152))) i32.const 0)"#,
    )
}

/// Sends 100 000 messages to "sink" per message it handles, then replies.
pub fn flooder() -> Vec<u8> {
    module(
        r#"(data (i32.const 0) "sink")
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) (local $i i32)
             (loop $more
               (drop (call $send (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 0)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $more (i32.lt_u (local.get $i) (i32.const 100000))))
             (drop (call $reply (i32.const 0) (i32.const 0))) i32.const 0)"#,
    )
}

/// A shard with a wasm host, on a manual clock: quarantine windows and
/// idle sweeps move when a test advances it, never by sleeping.
pub struct Host {
    pub shard: ShardCore,
    pub wasm: Rc<WasmShard>,
    pub clock: ManualClock,
}

impl Host {
    pub fn new() -> Self {
        Self::with(WasmShardConfig::default())
    }

    pub fn with(config: WasmShardConfig) -> Self {
        Self::with_shard(config, |_| {})
    }

    pub fn with_shard(config: WasmShardConfig, tweak: impl FnOnce(&mut ShardConfig)) -> Self {
        let mut cfg = ShardConfig {
            mailbox_capacity: 64,
            ..ShardConfig::new(0, 1)
        };
        tweak(&mut cfg);
        let clock = ManualClock::new();
        Self {
            shard: ShardCore::with_clock(cfg, clock.clone().into()),
            wasm: WasmShard::new(WasmEngine::new(None), config),
            clock,
        }
    }

    pub fn deploy(
        &mut self,
        name: &str,
        bytes: &[u8],
        limits: AgentLimits,
        supervision: Supervision,
    ) {
        let module = self.wasm.engine().compile(bytes).expect("module compiles");
        let agent = WasmAgent::new(&self.wasm, module, limits, supervision);
        self.shard
            .register(AgentId::from(name), Box::new(agent))
            .expect("registers");
    }

    pub fn deploy_default(&mut self, name: &str, bytes: &[u8]) {
        self.deploy(name, bytes, AgentLimits::default(), Supervision::default());
    }

    pub fn call(&mut self, to: &str, payload: &[u8]) -> Result<Envelope, CallFailure> {
        let (tx, rx) = mpsc::channel();
        let waiter = Box::new(move |r| tx.send(r).expect("receiver waits"));
        // Let what is queued finish first.
        self.shard.run_until_idle();
        let _ = self.shard.admit_client_call(
            to.into(),
            bytes::Bytes::copy_from_slice(payload),
            SendOptions::default(),
            Duration::from_secs(5),
            waiter,
        );
        for _ in 0..10_000 {
            self.shard.run(usize::MAX);
            if let Ok(r) = rx.try_recv() {
                return r;
            }
        }
        panic!("no answer to a call to {to}");
    }
}

pub fn rejected(r: Result<Envelope, CallFailure>) -> Rejection {
    match r {
        Err(CallFailure {
            error: CallError::Rejected(reason),
            ..
        }) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Spins three million times and returns (no reply: a reply sent before
/// the limit is found stands, since the time is measured when the handler
/// returns).
pub fn spinner() -> Vec<u8> {
    spinner_of(3_000_000)
}

/// Counts to `n` and returns.
pub fn spinner_of(n: u32) -> Vec<u8> {
    module(&format!(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) (local $i i32)
             (loop $more
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $more (i32.lt_u (local.get $i) (i32.const {n}))))
             i32.const 0)"#
    ))
}
