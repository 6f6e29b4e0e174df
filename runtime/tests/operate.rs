//! What an operator runs against a real `quire node` process: `quire
//! profile` and `quire diagnose` under load must name a deliberately slow
//! agent; a socket layout that collides with itself is refused by `quire
//! config check` and by the node, naming both uses.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::NodeProcess;

/// An agent whose every message costs ~a millisecond of CPU (a counted
/// loop well inside the default fuel), then echoes.
const SLOW_WAT: &str = r#"(module
  (import "quire" "reply" (func $reply (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "quire_abi_version") (result i32) i32.const 1)
  (func (export "quire_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
    (local $i i32)
    (local.set $i (i32.const 400000))
    (block $done (loop $spin
      (br_if $done (i32.eqz (local.get $i)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br $spin)))
    (drop (call $reply (local.get 3) (local.get 4)))
    i32.const 0))"#;

const ECHO_WAT: &str = r#"(module
  (import "quire" "reply" (func $reply (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "quire_abi_version") (result i32) i32.const 1)
  (func (export "quire_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
    (drop (call $reply (local.get 3) (local.get 4)))
    i32.const 0))"#;

fn quire(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_quire"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Keeps calling `agent` from a thread of its own until `stop`.
fn drive(
    node: &NodeProcess,
    agent: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let mut client = node.client();
    std::thread::spawn(move || {
        let mut calls = 0;
        while !stop.load(Ordering::Relaxed) {
            if client.call(agent, b"x", Duration::from_secs(5)).is_ok() {
                calls += 1;
            }
        }
        calls
    })
}

#[test]
fn profile_and_diagnose_name_the_slow_agent() {
    let dir = tempfile::tempdir().unwrap();
    // A slow agent an operator wants to find, not one to quarantine: its
    // ~1 ms handlers pass the turn quota, so the cost budget (25% of its
    // shard by default) is lifted; and on a CI host whose hypervisor steals
    // tens of milliseconds at a time one such handler can outlast the 10 ms
    // time limit, which would quarantine it at once and leave nothing
    // slow to find, so the time limit is a second here.
    let node = NodeProcess::start_with_env(
        &dir.path().join("data"),
        "none",
        &[
            ("QUIRE_WASM_SUPERVISION_MAX_BUSY_PERCENT", "100"),
            ("QUIRE_WASM_LIMITS_MAX_TIME_US", "1000000"),
        ],
    );
    let mut admin = node.client();
    admin.deploy("slow", SLOW_WAT.as_bytes()).unwrap();
    admin.deploy("quick", ECHO_WAT.as_bytes()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let drivers: Vec<_> = [("slow"), ("slow"), ("quick")]
        .into_iter()
        .map(|agent| drive(&node, agent, stop.clone()))
        .collect();

    let out = dir.path().join("cpu.json");
    let (ok, text) = quire(&[
        "profile",
        "cpu",
        "--metrics",
        &node.metrics,
        "--duration",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let profile: quire_runtime::profile::CpuProfile =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let top = profile.top_agents();
    assert_eq!(top.first().map(|t| t.0), Some("slow"), "{text}");
    assert!(text.contains("agent slow"), "{text}");

    let (ok, text) = quire(&["diagnose", "--metrics", &node.metrics, "--duration", "2"]);
    eprintln!("quire diagnose said:\n{text}");
    assert!(ok, "{text}");
    assert!(
        text.lines().any(|l| l.contains("agent slow: takes")),
        "diagnose did not name the slow agent:\n{text}"
    );
    assert!(
        !text.contains("agent quick: takes"),
        "diagnose blamed the quick agent:\n{text}"
    );

    let heap = dir.path().join("heap");
    let (ok, text) = quire(&[
        "profile",
        "memory",
        "--metrics",
        &node.metrics,
        "--duration",
        "0.5",
        "--out",
        heap.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("allocated") && text.contains("agents"),
        "{text}"
    );
    let dump = std::fs::read_to_string(&heap).unwrap();
    assert!(
        dump.starts_with("heap_v2/"),
        "not a jemalloc heap profile: {dump:.200}"
    );

    stop.store(true, Ordering::Relaxed);
    let calls: u64 = drivers.into_iter().map(|d| d.join().unwrap()).sum();
    assert!(calls > 0);
    node.kill();
}

#[test]
fn a_colliding_port_layout_is_refused_naming_both_uses() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(
        &file,
        "[network]\nlisten = \"127.0.0.1:7400\"\n[metrics]\nlisten = \"127.0.0.1:7401\"\n",
    )
    .unwrap();
    let (ok, text) = quire(&["config", "check", file.to_str().unwrap(), "--shards", "2"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("metrics endpoint (metrics.listen)")
            && text.contains("node links of shard 0"),
        "{text}"
    );
    // The node refuses it too, before binding anything.
    let (ok, text) = quire(&[
        "node",
        "--shards",
        "1",
        "--listen",
        "127.0.0.1:7400",
        "--metrics",
        "127.0.0.1:7401",
        "--duration",
        "1",
    ]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("collides with the node's own sockets"),
        "{text}"
    );
    // A layout that fits is printed.
    std::fs::write(
        &file,
        "[network]\nlisten = \"127.0.0.1:7400\"\n[metrics]\nlisten = \"127.0.0.1:9400\"\n",
    )
    .unwrap();
    let (ok, text) = quire(&["config", "check", file.to_str().unwrap(), "--shards", "2"]);
    assert!(ok, "{text}");
    assert!(text.contains("tcp 127.0.0.1:7402"), "{text}");
}
