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
    let listen = format!("127.0.0.1:{}", quire_runtime::net::free_port_block(2));
    let out = quire()
        .args(["node", "--demo", "--duration", "1.5", "--listen", &listen])
        .args(["--metrics", "127.0.0.1:0"])
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
fn the_demo_is_refused_in_a_cluster_with_the_reason() {
    let out = quire()
        .args([
            "node",
            "--demo",
            "--secret",
            "s",
            "--no-listen",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--demo runs on a node outside a cluster"),
        "{err}"
    );
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
        part.commit(&batch, true).unwrap();
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

/// Runs `quire ARGS` against the node at `addr`; (success, stdout, stderr).
fn client_cmd(addr: &str, args: &[&str]) -> (bool, String, String) {
    let out = quire()
        .args(args)
        .args(["--node", addr, "--token", "cli-token"])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn client_commands_against_a_running_node() {
    let port = quire_runtime::net::free_port_block(2);
    let addr = format!("127.0.0.1:{port}");
    let mut node = quire()
        .args([
            "node",
            "--admin-token",
            "cli-token",
            "--listen",
            &addr,
            "--metrics",
            "127.0.0.1:0",
        ])
        .args(["--duration", "60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !client_cmd(&addr, &["cluster"]).0 {
        assert!(std::time::Instant::now() < deadline, "node never answered");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Without --demo a node carries no agents and no load of its own.
    let (ok, out, err) = client_cmd(&addr, &["agents"]);
    assert!(ok && out.contains("0 agent(s)"), "{out}{err}");
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("echo.wasm");
    std::fs::write(&wasm, quire_shards::testing::wat_echo()).unwrap();
    let wasm = wasm.to_str().unwrap();

    let (ok, out, err) = client_cmd(&addr, &["deploy", wasm, "--name", "echo"]);
    assert!(ok && out.starts_with("deployed echo ("), "{out}{err}");
    // JSON goes out as MessagePack and comes back as JSON.
    let (ok, out, err) = client_cmd(&addr, &["call", "echo", r#"{"n":[1,2]}"#]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), r#"{"n":[1,2]}"#);
    let (ok, out, _) = client_cmd(&addr, &["send", "echo", "hello"]);
    assert!(ok && out.starts_with("queued "), "{out}");
    let (ok, out, _) = client_cmd(&addr, &["agents"]);
    assert!(
        ok && out.contains("echo") && out.contains("1 agent(s)"),
        "{out}"
    );
    let (ok, out, _) = client_cmd(&addr, &["stats"]);
    assert!(ok && out.contains("handled="), "{out}");
    let (ok, out, _) = client_cmd(&addr, &["cluster"]);
    assert!(ok && out.contains("alive"), "{out}");

    // Errors: plain words, non-zero exit.
    let (ok, _, err) = client_cmd(&addr, &["call", "nobody", "x"]);
    assert!(!ok && err.contains("no such agent"), "{err}");
    let (ok, _, err) = client_cmd(&addr, &["deploy", "/nonexistent.wasm", "--name", "x"]);
    assert!(
        !ok && err.contains("cannot read /nonexistent.wasm"),
        "{err}"
    );
    let out = quire()
        .args(["deploy", wasm, "--name", "x", "--node", &addr])
        .env_remove("QUIRE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DEPLOY needs the admin scope") && err.contains("--token"),
        "{err}"
    );
    let (ok, _, err) = client_cmd("127.0.0.1:1", &["agents"]);
    assert!(!ok && err.contains("cannot talk to 127.0.0.1:1"), "{err}");
    let (ok, out, _) = client_cmd(&addr, &["undeploy", "echo"]);
    assert!(ok && out.contains("undeployed echo"), "{out}");

    let _ = node.kill();
    let _ = node.wait();
}

#[test]
fn config_precedence_is_file_then_environment_then_flags() {
    let cpus = quire_runtime::placement::inherited_affinity();
    if cpus.len() < 2 {
        eprintln!("one CPU: precedence is covered by the config unit tests");
        return;
    }
    let (a, b) = (cpus[0].to_string(), cpus[1].to_string());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.toml");
    std::fs::write(&file, format!("[node]\ncpuset = \"{a}\"\n")).unwrap();
    let cpu_of = |env: Option<&str>, flag: Option<&str>| {
        let mut cmd = quire();
        cmd.args(["placement", "--config"]).arg(&file);
        if let Some(list) = flag {
            cmd.args(["--cpuset", list]);
        }
        match env {
            Some(list) => cmd.env("QUIRE_NODE_CPUSET", list),
            None => cmd.env_remove("QUIRE_NODE_CPUSET"),
        };
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let table = String::from_utf8(out.stdout).unwrap();
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(cpu_of(None, None), a, "the file");
    assert_eq!(cpu_of(Some(&b), None), b, "the environment over the file");
    assert_eq!(cpu_of(Some(&b), Some(&a)), a, "a flag over both");
    // A misspelt variable is an error naming it.
    let out = quire()
        .args(["placement"])
        .env("QUIRE_NODE_SHARTS", "2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sharts"));
}
