//! The crash test of the storage issue, 20 cycles: a durable node process
//! under load is killed with SIGKILL at random moments and restarted; no
//! acknowledged message may be lost, none handled twice once committed,
//! and every partition must open cleanly (see `quire_bench::crash`).

use std::process::Command;

#[test]
fn twenty_kill_and_restart_cycles_lose_nothing_acknowledged() {
    let out = Command::new(env!("CARGO_BIN_EXE_quire-bench"))
        .args(["crash", "--cycles", "20"])
        .output()
        .expect("quire-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("crash test passed: 20 cycles"), "{stdout}");
}
