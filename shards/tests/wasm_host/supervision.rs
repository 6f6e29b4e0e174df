//! Supervision: quarantine after repeated failures, throttling over a cost
//! budget, the stop policy, and a failing agent's turn. Windows move with
//! the harness's manual clock, never by sleeping.

use std::sync::mpsc;
use std::time::Duration;

use quire_shards::wasm::{AgentLimits, OnRepeatedFailure, Supervision, WasmShardConfig, WasmSpec};
use quire_shards::{AgentState, Rejection, SendOptions};

use crate::host::*;

#[test]
fn repeated_failures_quarantine_then_restart() {
    let mut h = Host::new();
    let supervision = Supervision {
        max_failures: 3,
        window_ms: 60_000,
        policy: OnRepeatedFailure::Restart,
        quarantine_ms: 200,
        ..Supervision::default()
    };
    h.deploy("trap", &trapper(), AgentLimits::default(), supervision);
    for _ in 0..3 {
        assert_eq!(rejected(h.call("trap", b"x")), Rejection::AgentTrapped);
    }
    assert_eq!(rejected(h.call("trap", b"x")), Rejection::Quarantined);
    assert_eq!(
        h.shard.list_agents()[0].status.state,
        AgentState::Quarantined
    );
    h.clock.advance(Duration::from_micros(199_999));
    assert_eq!(rejected(h.call("trap", b"x")), Rejection::Quarantined);
    h.clock.advance(Duration::from_micros(1));
    // Out of quarantine: it runs (and traps) again.
    assert_eq!(h.shard.list_agents()[0].status.state, AgentState::Idle);
    assert_eq!(rejected(h.call("trap", b"x")), Rejection::AgentTrapped);
    assert_eq!(h.wasm.stats().quarantines, 1);
}

#[test]
fn an_agent_over_its_cost_budget_is_throttled_until_its_window_ends() {
    // No turn quota and a budget of 0%: any time a handler takes is over it.
    let mut h = Host::with_shard(WasmShardConfig::default(), |c| {
        c.turn_quota = Duration::ZERO;
    });
    let supervision = Supervision {
        quarantine_on_cost: false,
        cost_window_ms: 100,
        max_busy_percent: 0,
        max_failures: 100,
        ..Supervision::default()
    };
    h.deploy("busy", &echo(), AgentLimits::default(), supervision);
    // Its answer stands; then it is throttled for the rest of its window.
    assert_eq!(&h.call("busy", b"a").unwrap().payload[..], b"a");
    assert_eq!(rejected(h.call("busy", b"b")), Rejection::Throttled);
    assert_eq!(h.shard.list_agents()[0].status.state, AgentState::Throttled);
    h.clock.advance(Duration::from_micros(99_999));
    assert_eq!(rejected(h.call("busy", b"c")), Rejection::Throttled);
    h.clock.advance(Duration::from_micros(1));
    assert_ne!(h.shard.list_agents()[0].status.state, AgentState::Throttled);
    assert_eq!(&h.call("busy", b"d").unwrap().payload[..], b"d");
    let stats = h.wasm.stats();
    assert_eq!((stats.throttles, stats.quarantines), (2, 0));
    let status = &h.shard.list_agents()[0].status;
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("throttled")),
        "{status:?}"
    );
}

#[test]
fn stop_policy_quarantines_until_a_reload() {
    let mut h = Host::new();
    let supervision = Supervision {
        max_failures: 2,
        policy: OnRepeatedFailure::Stop,
        ..Supervision::default()
    };
    h.deploy("a", &trapper(), AgentLimits::default(), supervision);
    for _ in 0..2 {
        assert_eq!(rejected(h.call("a", b"x")), Rejection::AgentTrapped);
    }
    assert_eq!(rejected(h.call("a", b"x")), Rejection::Quarantined);
    let fixed = h.wasm.engine().compile(&echo()).unwrap();
    let record =
        WasmSpec::new(fixed.hash().clone(), AgentLimits::default(), supervision).record("a");
    h.shard.redeploy(record).expect("reload");
    assert_eq!(&h.call("a", b"fixed").unwrap().payload[..], b"fixed");
}

#[test]
fn a_failing_agent_ends_its_turn_so_neighbours_run_between_its_failures() {
    let mut h = Host::new();
    let limits = AgentLimits {
        fuel_per_message: 100_000,
        ..AgentLimits::default()
    };
    h.deploy("loop", &looper(), limits, Supervision::default());
    h.deploy_default("echo", &echo());
    for _ in 0..3 {
        h.shard
            .admit_client("loop".into(), "loop".into(), SendOptions::default())
            .unwrap();
    }
    let (tx, rx) = mpsc::channel();
    h.shard
        .admit_client_call(
            "echo".into(),
            "hi".into(),
            SendOptions::default(),
            Duration::from_secs(5),
            Box::new(move |r| tx.send(r).unwrap()),
        )
        .unwrap();
    // Two messages' worth of turns: one failure, then the echo (in as many
    // runs as it takes: a slow turn on a loaded machine ends a run).
    let mut handled = 0;
    while handled < 2 {
        handled += h.shard.run(2 - handled);
    }
    assert_eq!(&rx.try_recv().unwrap().unwrap().payload[..], b"hi");
    assert_eq!(h.shard.stats().rejected_for(Rejection::FuelExhausted), 1);
    h.shard.run_until_idle();
    assert_eq!(h.shard.stats().rejected_for(Rejection::FuelExhausted), 3);
}
