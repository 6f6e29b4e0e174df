//! The `quire` binary as an operator uses it.

use std::process::Command;

fn quire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quire"))
}

#[test]
fn placement_follows_taskset() {
    if Command::new("taskset").arg("--version").output().is_err() {
        eprintln!("taskset not installed; skipping");
        return;
    }
    let cpus = quire_runtime::placement::inherited_affinity();
    let cpu = cpus.last().unwrap().to_string();
    let out = Command::new("taskset")
        .args(["-c", &cpu, env!("CARGO_BIN_EXE_quire"), "placement"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert_eq!(
        rows[0].split_whitespace().nth(1),
        Some(cpu.as_str()),
        "{table}"
    );
}

#[test]
fn bad_cpuset_exits_non_zero_with_a_clear_message() {
    let out = quire()
        .args(["node", "--cpuset", "9999", "--duration", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CPU(s) 9999 that are not online"), "{err}");
}

#[test]
fn node_runs_the_demo_and_shuts_down_cleanly() {
    let out = quire()
        .args(["node", "--duration", "1.5"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("shard  cpu  core  package  numa"),
        "{stdout}"
    );
    assert!(stdout.contains("calls/s"), "{stdout}");
    assert!(stdout.contains("shutdown drained"), "{stdout}");
}

#[test]
fn config_default_round_trips_through_check() {
    let out = quire().args(["config", "default"]).output().unwrap();
    assert!(out.status.success());
    let dir = std::env::temp_dir().join(format!("quire-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("quire.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    let check = quire()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    std::fs::write(&file, "[queues]\nmailbox_capacity = 0\n").unwrap();
    let check = quire()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("queues.mailbox_capacity"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn storage_reshard_and_check_move_agents_to_their_new_owners() {
    use quire_shards::owning_shard;
    use quire_storage::{partition_path, AgentRecord, Mutation, NodeManifest, Partition};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    NodeManifest::open_or_create(data, 1, "cli").unwrap();
    {
        let part = Partition::open(partition_path(data, 0)).unwrap();
        let batch = (0..20)
            .map(|i| Mutation::PutAgent(AgentRecord::new(format!("a{i}"), "counter", vec![])))
            .collect();
        part.commit(batch, true).unwrap();
    }
    let data_arg = data.to_str().unwrap();
    let out = quire()
        .args([
            "storage",
            "reshard",
            "--data-dir",
            data_arg,
            "--shards",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("20 agents"));
    for shard in 0..3 {
        let rec = Partition::open(partition_path(data, shard))
            .unwrap()
            .recover()
            .unwrap();
        assert!(rec
            .agents
            .iter()
            .all(|a| owning_shard(&a.name, 3) as usize == shard));
    }
    let out = quire()
        .args(["storage", "check", "--data-dir", data_arg])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(": ok,").count(), 3, "{text}");

    // A damaged partition fails the check with its name.
    std::fs::write(partition_path(data, 2), b"garbage").unwrap();
    let out = quire()
        .args(["storage", "check", "--data-dir", data_arg])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard-2.redb"));
}
