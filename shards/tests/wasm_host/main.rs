//! The WebAssembly host inside one shard: ABI checks at deploy, every hard
//! limit (fuel, memory, time, message size), traps, supervision and
//! quarantine, hot reload, activation and deactivation. Driven through
//! `ShardCore` alone (no executors): deterministic and fast.

mod host;
mod supervision;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use quire_shards::wasm::{
    AgentLimits, Supervision, WasmEngine, WasmError, WasmShardConfig, WasmSpec,
};
use quire_shards::{AgentState, CallError, Rejection, SendOptions};

use host::*;

#[test]
fn echo_round_trip() {
    let mut h = Host::new();
    h.deploy_default("echo", &echo());
    assert_eq!(&h.call("echo", b"hello").unwrap().payload[..], b"hello");
    assert_eq!(&h.call("echo", b"").unwrap().payload[..], b"");
}

#[test]
fn state_survives_restarts_of_the_instance() {
    let mut h = Host::new();
    h.deploy_default("counter", &counter());
    for expected in 1u32..=3 {
        let r = h.call("counter", b"x").unwrap();
        assert_eq!(r.payload[..], expected.to_le_bytes());
    }
}

#[test]
fn refuses_garbage_and_foreign_imports_and_wrong_versions() {
    let engine = WasmEngine::new(None);
    let err = engine.compile(b"\0asm garbage").unwrap_err();
    assert!(matches!(err, WasmError::Compile(_)), "{err}");

    let wasi = wasmer::wat2wasm(
        br#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "quire_abi_version") (result i32) i32.const 1)
            (func (export "quire_alloc") (param i32) (result i32) i32.const 0)
            (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let err = engine.compile(&wasi).unwrap_err().to_string();
    assert!(
        err.contains("wasi_snapshot_preview1::fd_write") && err.contains("no WASI"),
        "{err}"
    );

    let bad_sig = wasmer::wat2wasm(
        br#"(module (import "quire" "send" (func (param i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "quire_abi_version") (result i32) i32.const 1)
            (func (export "quire_alloc") (param i32) (result i32) i32.const 0)
            (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let err = engine.compile(&bad_sig).unwrap_err().to_string();
    assert!(err.contains("quire::send"), "{err}");

    let v2 = wasmer::wat2wasm(
        br#"(module (memory (export "memory") 1)
            (func (export "quire_abi_version") (result i32) i32.const 2)
            (func (export "quire_alloc") (param i32) (result i32) i32.const 0)
            (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let err = engine.compile(&v2).unwrap_err().to_string();
    assert!(
        err.contains("version 2") && err.contains("speaks version 1"),
        "{err}"
    );

    let no_handle = wasmer::wat2wasm(
        br#"(module (memory (export "memory") 1)
            (func (export "quire_abi_version") (result i32) i32.const 1)
            (func (export "quire_alloc") (param i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let err = engine.compile(&no_handle).unwrap_err().to_string();
    assert!(err.contains("quire_handle"), "{err}");
}

#[test]
fn an_infinite_loop_runs_out_of_fuel_and_the_agent_goes_on() {
    let mut h = Host::new();
    let limits = AgentLimits {
        fuel_per_message: 200_000,
        ..AgentLimits::default()
    };
    h.deploy("loop", &looper(), limits, Supervision::default());
    let started = Instant::now();
    assert_eq!(rejected(h.call("loop", b"loop")), Rejection::FuelExhausted);
    assert!(started.elapsed() < Duration::from_secs(2));
    // A fresh instance takes the next message.
    assert_eq!(&h.call("loop", b"ok").unwrap().payload[..], b"ok");
    let stats = h.shard.stats();
    assert_eq!(stats.rejected_for(Rejection::FuelExhausted), 1);
    let status = &h.shard.list_agents()[0].status;
    assert_eq!((status.failures, status.restarts), (1, 1));
}

#[test]
fn a_time_limit_fails_a_slow_message() {
    let mut h = Host::new();
    // Fuel enough for the spin; time not (it takes seconds, and is stopped
    // while it runs, a few ms in).
    let limits = AgentLimits {
        fuel_per_message: 100_000_000_000,
        max_time_us: 100,
        ..AgentLimits::default()
    };
    h.deploy(
        "slow",
        &spinner_of(2_000_000_000),
        limits,
        Supervision::default(),
    );
    assert_eq!(rejected(h.call("slow", b"x")), Rejection::TimeLimit);
    let generous = AgentLimits {
        max_time_us: 10_000_000,
        ..limits
    };
    h.deploy("patient", &spinner(), generous, Supervision::default());
    h.shard
        .admit_client("patient".into(), "x".into(), SendOptions::default())
        .unwrap();
    h.shard.run_until_idle();
    let stats = h.shard.stats();
    assert_eq!(
        (stats.handled, stats.rejected_for(Rejection::TimeLimit)),
        (1, 1)
    );
}

#[test]
fn a_memory_bomb_stops_at_its_limit() {
    let mut h = Host::new();
    let limits = AgentLimits {
        max_memory_bytes: 4 << 20,
        ..AgentLimits::default()
    };
    h.deploy("bomb", &memory_bomb(), limits, Supervision::default());
    assert_eq!(rejected(h.call("bomb", b"x")), Rejection::MemoryLimit);
}

#[test]
fn a_trap_fails_the_message_not_the_shard() {
    let mut h = Host::new();
    h.deploy_default("trap", &trapper());
    h.deploy_default("echo", &echo());
    let failure = h.call("trap", b"x").unwrap_err();
    assert_eq!(failure.error, CallError::Rejected(Rejection::AgentTrapped));
    // The caller reads what the runtime saw: wasmer's trap message.
    let detail = failure.detail.expect("a failed handler says why");
    assert!(detail.contains("unreachable"), "{detail}");
    assert_eq!(
        &h.call("echo", b"still here").unwrap().payload[..],
        b"still here"
    );
}

#[test]
fn a_huge_reply_is_refused_with_a_clear_error() {
    let mut h = Host::new();
    h.deploy_default("huge", &huge_reply());
    assert_eq!(rejected(h.call("huge", b"x")), Rejection::TooLarge);
}

#[test]
fn a_flood_is_bounded_by_queues_and_fuel() {
    let mut h = Host::new();
    let patient = AgentLimits {
        max_time_us: 10_000_000,
        ..AgentLimits::default()
    };
    h.deploy("flood", &flooder(), patient, Supervision::default());
    h.deploy_default("sink", &echo());
    // The flood's sends beyond the sink's mailbox are refused at once.
    let r = h.call("flood", b"go");
    assert!(r.is_ok(), "{r:?}");
    let stats = h.shard.stats();
    assert!(
        stats.rejected_for(Rejection::QueueFull) > 90_000,
        "{stats:?}"
    );
    assert_eq!(&h.call("sink", b"ok").unwrap().payload[..], b"ok");
}

#[test]
fn hot_reload_loses_no_queued_message() {
    let mut h = Host::new();
    h.deploy_default("svc", &echo());
    let v2 = h.wasm.engine().compile(&echo_v2()).unwrap();
    // Queue calls, reload between two runs, then let them all finish.
    let (tx, rx) = mpsc::channel();
    for i in 0..40u32 {
        let tx = tx.clone();
        h.shard
            .admit_client_call(
                "svc".into(),
                bytes::Bytes::copy_from_slice(&i.to_le_bytes()),
                SendOptions::default(),
                Duration::from_secs(5),
                Box::new(move |r| tx.send(r).unwrap()),
            )
            .unwrap();
    }
    // Some handled by v1: a run can end after one slow turn (a loaded
    // machine, the turn quota), so run until ten are.
    let mut handled = 0;
    while handled < 10 {
        handled += h.shard.run(10);
    }
    let record = WasmSpec::new(
        v2.hash().clone(),
        AgentLimits::default(),
        Supervision::default(),
    )
    .record("svc");
    h.shard.redeploy(record).unwrap();
    h.shard.run_until_idle();
    drop(tx);
    let replies: Vec<_> = rx.iter().map(|r| r.expect("every call answered")).collect();
    assert_eq!(replies.len(), 40);
    let v1 = replies.iter().filter(|r| r.payload.len() == 4).count();
    let v2n = replies.iter().filter(|r| &r.payload[..] == b"v2").count();
    assert!(v1 >= 10 && v1 + v2n == 40 && v2n > 0, "v1 {v1}, v2 {v2n}");
}

#[test]
fn agents_activate_on_demand_and_deactivate_when_idle() {
    let mut h = Host::with(WasmShardConfig {
        pool_size: 4,
        idle_after: Duration::from_millis(40),
        refill_per_sweep: 16,
    });
    for i in 0..20 {
        h.deploy_default(&format!("c{i}"), &counter());
    }
    // Addressable, not active.
    assert!(h
        .shard
        .list_agents()
        .iter()
        .all(|a| a.status.state == AgentState::Idle));
    assert_eq!(h.wasm.refill(), 4);
    for _ in 0..2 {
        h.call("c3", b"x").unwrap();
    }
    let info = h.shard.list_agents();
    let c3 = info.iter().find(|a| a.name == "c3").unwrap();
    assert_eq!(c3.status.state, AgentState::Running);
    assert_eq!(
        info.iter()
            .filter(|a| a.status.state == AgentState::Running)
            .count(),
        1
    );
    assert_eq!(h.wasm.stats().pool_hits, 1);
    // Idle long enough: deactivated, state kept.
    // Four sweep ticks untouched deactivate an agent; the first sweep
    // starts the ticks.
    let tick = h.wasm.sweep_interval();
    assert_eq!(h.wasm.sweep(h.clock.now()), 0);
    for _ in 0..3 {
        h.clock.advance(tick);
        assert_eq!(h.wasm.sweep(h.clock.now()), 0);
    }
    h.clock.advance(tick);
    assert_eq!(h.wasm.sweep(h.clock.now()), 1);
    let c3 = h
        .shard
        .list_agents()
        .into_iter()
        .find(|a| a.name == "c3")
        .unwrap();
    assert_eq!(c3.status.state, AgentState::Idle);
    assert_eq!(h.call("c3", b"x").unwrap().payload[..], 3u32.to_le_bytes());
    assert_eq!(c3.status.activations, 1);
}

#[test]
fn a_module_whose_memory_starts_over_the_limit_fails_clearly() {
    let mut h = Host::new();
    let big = wasmer::wat2wasm(
        br#"(module (memory (export "memory") 100)
            (func (export "quire_abi_version") (result i32) i32.const 1)
            (func (export "quire_alloc") (param i32) (result i32) i32.const 0)
            (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let limits = AgentLimits {
        max_memory_bytes: 1 << 20,
        ..AgentLimits::default()
    };
    h.deploy("big", &big, limits, Supervision::default());
    assert_eq!(rejected(h.call("big", b"x")), Rejection::AgentTrapped);
}

#[test]
fn compiled_modules_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let first = WasmEngine::new(Some(dir.path().to_path_buf()));
    let m = first.compile(&echo()).unwrap();
    assert_eq!(first.stats().compiled, 1);
    // A new engine (a restarted node) loads the artifact instead of compiling.
    let second = WasmEngine::new(Some(dir.path().to_path_buf()));
    let again = second.module(m.hash()).unwrap();
    assert_eq!(again.hash(), m.hash());
    assert_eq!((second.stats().compiled, second.stats().loaded), (0, 1));
}

#[test]
fn reads_past_the_memory_trap_even_inside_its_reservation() {
    let mut h = Host::new();
    // One page, 16 MiB reserved behind it: a load at 64 KiB, or at 1 MiB,
    // is out of bounds and must trap, not read the reservation.
    for offset in [65_536u32, 1 << 20, (16 << 20) - 4] {
        let body = format!(
            r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
                 (drop (i32.load (i32.const {offset}))) i32.const 0)"#
        );
        let name = format!("oob-{offset}");
        h.deploy_default(&name, &module(&body));
        assert_eq!(rejected(h.call(&name, b"x")), Rejection::AgentTrapped);
    }
    // After a grow, the new page is there and the one after is not.
    let grow = module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (drop (memory.grow (i32.const 1)))
             (i32.store (i32.const 65536) (i32.const 7))
             (drop (i32.load (i32.const 131072))) i32.const 0)"#,
    );
    h.deploy_default("grown", &grow);
    assert_eq!(rejected(h.call("grown", b"x")), Rejection::AgentTrapped);
}

/// Fills 60 000 bytes 10 000 times (600 MB moved) and replies: a few
/// operators a fill, so only fuel charged by length stops it.
fn bulk_filler() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (local $i i32)
             (loop $again
               (memory.fill (i32.const 0) (i32.const 7) (i32.const 60000))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $again (i32.lt_u (local.get $i) (i32.const 10000))))
             (drop (call $reply (i32.const 0) (i32.const 4)))
             i32.const 0)"#,
    )
}

#[test]
fn bulk_memory_instructions_pay_fuel_by_the_bytes_they_move() {
    let mut h = Host::new();
    let patient = AgentLimits {
        fuel_per_message: 1_000_000,
        max_time_us: 60_000_000,
        ..AgentLimits::default()
    };
    h.deploy("filler", &bulk_filler(), patient, Supervision::default());
    // ~60 K operators, but 600 MB moved: 9.4 M units at 64 bytes a unit.
    assert_eq!(rejected(h.call("filler", b"x")), Rejection::FuelExhausted);
    let roomy = AgentLimits {
        fuel_per_message: 20_000_000,
        ..patient
    };
    h.deploy("roomy", &bulk_filler(), roomy, Supervision::default());
    assert!(h.call("roomy", b"x").is_ok(), "enough fuel for the bytes");
}
