//! WebAssembly agents on a running node: deploy, call, refusal of bad
//! modules, stop/start, list with status, hot reload under load, and a
//! durable restart that brings agents back (with their state) from the
//! module cache without compiling again.

use std::time::Duration;

use quire_runtime::{DeployError, Node, WasmOptions};
use quire_shards::wasm::{AgentLimits, WasmError};
use quire_shards::{AgentState, CallError, Rejection};
use quire_storage::Durability;

fn module(body: &str) -> Vec<u8> {
    quire_shards::testing::wat_agent(body)
}

fn echo() -> Vec<u8> {
    quire_shards::testing::wat_echo()
}

fn tagged_echo(tag: &str) -> Vec<u8> {
    module(&format!(
        r#"(data (i32.const 16) "{tag}")
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (drop (call $reply (i32.const 16) (i32.const {}))) i32.const 0)"#,
        tag.len()
    ))
}

fn counter() -> Vec<u8> {
    quire_shards::testing::wat_counter()
}

const T: Duration = Duration::from_secs(5);

/// A node keeping its data in `dir` (batched durability).
fn durable_node(dir: &std::path::Path) -> quire_runtime::NodeBuilder {
    Node::builder()
        .shards(shards())
        .durability(Durability::Batched)
        .data_dir(dir)
}

/// Two shards where the machine has two CPUs, one on a single core.
fn shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2)
}

#[test]
fn deploy_call_list_stop_start_undeploy() {
    let node = Node::builder().shards(shards()).start().unwrap();
    let client = node.client();
    for i in 0..8 {
        client
            .deploy_wasm_blocking(format!("echo-{i}"), echo(), WasmOptions::default())
            .unwrap();
    }
    // One compile for eight deploys of the same bytes.
    assert_eq!(client.wasm_engine().stats().compiled, 1);
    let agents = client.agents_blocking();
    assert_eq!(agents.len(), 8);
    assert!(agents
        .iter()
        .all(|a| a.deployed && a.status.state == AgentState::Idle));
    for i in 0..8 {
        let r = client
            .call_blocking(format!("echo-{i}"), format!("m{i}"), T)
            .unwrap();
        assert_eq!(r.payload, format!("m{i}").as_bytes());
    }
    let running = client
        .agents_blocking()
        .iter()
        .filter(|a| a.status.state == AgentState::Running)
        .count();
    assert_eq!(running, 8);

    client.stop_agent_blocking("echo-0").unwrap();
    assert_eq!(
        client.call_blocking("echo-0", "x", T).unwrap_err(),
        CallError::Rejected(Rejection::AgentStopped)
    );
    let listed = client.agents_blocking();
    assert_eq!(listed[0].status.state, AgentState::Stopped);
    client.start_agent_blocking("echo-0").unwrap();
    assert!(client.call_blocking("echo-0", "x", T).is_ok());

    client.undeploy_blocking("echo-0").unwrap();
    assert_eq!(
        client.call_blocking("echo-0", "x", T).unwrap_err(),
        CallError::Rejected(Rejection::NoSuchAgent)
    );
    let stats: u64 = client
        .wasm_stats_blocking()
        .iter()
        .map(|s| s.activations)
        .sum();
    assert!(stats >= 8);
    node.shutdown();
}

#[test]
fn bad_modules_are_refused_with_clear_errors() {
    let node = Node::builder().shards(1).start().unwrap();
    let client = node.client();
    let err = client
        .deploy_wasm_blocking(
            "junk",
            b"definitely not wasm".to_vec(),
            WasmOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeployError::Module {
                source: WasmError::Compile(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("junk"), "{err}");

    let wasi = wasmer::wat2wasm(
        br#"(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
            (memory (export "memory") 1)
            (func (export "quire_abi_version") (result i32) i32.const 1)
            (func (export "quire_alloc") (param i32) (result i32) i32.const 0)
            (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let err = client
        .deploy_wasm_blocking("wasi", wasi.into_owned(), WasmOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("no WASI"), "{err}");

    let bad_limits = WasmOptions::default().limits(AgentLimits {
        max_memory_bytes: 10,
        ..AgentLimits::default()
    });
    let err = client
        .deploy_wasm_blocking("tiny", echo(), bad_limits)
        .unwrap_err();
    assert!(err.to_string().contains("max_memory_bytes"), "{err}");
    assert!(client.agents_blocking().is_empty());
    node.shutdown();
}

#[test]
fn hot_reload_under_load_loses_nothing() {
    let node = Node::builder().shards(shards()).start().unwrap();
    let client = node.client();
    client
        .deploy_wasm_blocking("svc", tagged_echo("v1"), WasmOptions::default())
        .unwrap();
    let caller = {
        let client = client.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..2_000 {
                let r = client
                    .call_blocking("svc", "x", T)
                    .expect("every call answered");
                seen.push(String::from_utf8(r.payload.to_vec()).unwrap());
            }
            seen
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    client
        .reload_wasm_blocking("svc", tagged_echo("v2"), WasmOptions::default())
        .unwrap();
    let seen = caller.join().unwrap();
    assert_eq!(seen.len(), 2_000);
    let first_v2 = seen.iter().position(|s| s == "v2").expect("v2 answered");
    assert!(seen[..first_v2].iter().all(|s| s == "v1"));
    assert!(
        seen[first_v2..].iter().all(|s| s == "v2"),
        "no v1 after the reload"
    );
    node.shutdown();
}

#[test]
fn a_durable_restart_brings_wasm_agents_back_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = durable_node(dir.path()).start().unwrap();
        let client = node.client();
        client
            .deploy_wasm_blocking("count", counter(), WasmOptions::default())
            .unwrap();
        for _ in 0..3 {
            client.call_blocking("count", "x", T).unwrap();
        }
        // A clean shutdown commits everything journaled.
        node.shutdown();
    }
    let node = durable_node(dir.path()).start().unwrap();
    let client = node.client();
    let r = client.call_blocking("count", "x", T).unwrap();
    assert_eq!(r.payload[..], 4u32.to_le_bytes());
    let engine = client.wasm_engine().stats();
    assert_eq!((engine.compiled, engine.loaded), (0, 1), "{engine:?}");
    node.shutdown();
}

#[test]
fn a_name_pattern_makes_agents_on_first_message_and_a_restart_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let start = || durable_node(dir.path()).start().unwrap();
    {
        let node = start();
        let client = node.client();
        let err = client
            .deploy_wasm_pattern_blocking("sensor", counter(), WasmOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("not a name pattern"), "{err}");
        client
            .deploy_wasm_pattern_blocking("sensor-*", counter(), WasmOptions::default())
            .unwrap();
        assert!(client.agents_blocking().is_empty());
        for i in 0..20 {
            for expected in 1..=2u32 {
                let r = client.call_blocking(format!("sensor-{i}"), "x", T).unwrap();
                assert_eq!(r.payload[..], expected.to_le_bytes());
            }
        }
        assert_eq!(client.agents_blocking().len(), 20);
        assert_eq!(
            client.call_blocking("other-1", "x", T).unwrap_err(),
            CallError::Rejected(Rejection::NoSuchAgent)
        );
        node.shutdown();
    }
    let node = start();
    let client = node.client();
    // The agents came back with their state; the pattern still makes new ones.
    let r = client.call_blocking("sensor-3", "x", T).unwrap();
    assert_eq!(r.payload[..], 3u32.to_le_bytes());
    let r = client.call_blocking("sensor-new", "x", T).unwrap();
    assert_eq!(r.payload[..], 1u32.to_le_bytes());
    assert!(client.undeploy_wasm_pattern_blocking("sensor-*").unwrap());
    assert_eq!(
        client.call_blocking("sensor-newer", "x", T).unwrap_err(),
        CallError::Rejected(Rejection::NoSuchAgent)
    );
    assert!(client.call_blocking("sensor-3", "x", T).is_ok());
    node.shutdown();
}

#[test]
fn a_deployed_agent_whose_module_is_gone_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let start = || durable_node(dir.path()).start();
    let node = start().unwrap();
    let hash = node
        .client()
        .deploy_wasm_blocking("keeper", echo(), WasmOptions::default())
        .unwrap();
    node.shutdown();
    // The module cache is lost (source and artifact).
    std::fs::remove_dir_all(dir.path().join("modules")).unwrap();
    let err = start().err().expect("the start is refused");
    let text = err.to_string();
    assert!(
        text.contains("keeper") && text.contains(hash.as_str()),
        "{text}"
    );
}
