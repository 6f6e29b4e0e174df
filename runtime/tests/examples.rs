//! The embedded API's examples (`runtime/examples/`) run and say what they
//! promise: `cargo test` builds them with the suite, and this runs each one
//! as a process of its own.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/<name>`, beside this test's own binary
/// (`target/<profile>/deps/`).
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile = deps.parent().and_then(|d| d.parent()).unwrap();
    profile.join("examples").join(name)
}

fn run(name: &str) -> String {
    let path = example(name);
    assert!(
        path.exists(),
        "{} is not built: `cargo test` builds the examples with the whole suite; alone, run `cargo build -p quire-runtime --examples` first",
        path.display()
    );
    let out = Command::new(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn echo_answers() {
    let out = run("echo");
    assert!(out.contains("echo answered \"hello\""), "{out}");
    assert!(out.contains("handled 1, rejected 0"), "{out}");
}

#[test]
fn the_durable_counter_counts_on_after_a_restart() {
    let out = run("durable_counter");
    assert!(out.contains("before the restart: count 4"), "{out}");
    assert!(out.contains("recovered 1 agents"), "{out}");
    assert!(out.contains("after the restart: count 5"), "{out}");
}

#[test]
fn the_wasm_agent_counts_under_its_limits() {
    let out = run("wasm_agent");
    for n in 1..=3 {
        assert!(out.contains(&format!("counter answered {n}")), "{out}");
    }
    assert!(out.contains("counter on shard 0: Running"), "{out}");
}

#[test]
fn the_two_nodes_meet_and_a_call_crosses_between_them() {
    let out = run("two_node_cluster");
    assert!(
        out.contains("members: [\"node-a\", \"node-b\"]")
            || out.contains("members: [\"node-b\", \"node-a\"]"),
        "{out}"
    );
    assert!(
        out.contains("called on node-a, answered from node-b"),
        "{out}"
    );
}
