//! Three `quire node` processes on loopback ports: agents placed across
//! them by rendezvous hashing and reached from any node; one node killed
//! is declared down within the configured time and its agents fail fast
//! with `node_down`; restarted, it rejoins and its agents (durable) answer
//! again. `WHERE` names each agent's owner from every node. Also: a node with the wrong cluster secret never joins.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quire_client::{ClientError, RemoteClient};
use quire_runtime::net::free_port_block;
use quire_runtime::protocol::ErrorCode;

const SECRET: &str = "cluster-test-secret";
const TOKEN: &str = "cluster-test-token";
/// SWIM timings for the test: a dead node is suspected within a probe
/// period or two and declared down 600 ms later.
const CONFIG: &str = "[cluster]\nprobe_period_ms = 200\nprobe_rtt_ms = 80\nsuspect_to_down_ms = 600\ngossip_period_ms = 100\n";
/// What the test allows for "declared down": probe, indirect probes,
/// suspicion and gossip, with room for a loaded 2-core machine.
const DOWN_WITHIN: Duration = Duration::from_secs(6);

struct Proc {
    child: Child,
    /// Where its /metrics endpoint listens.
    metrics_port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(name: &str, port: u16, seeds: &[u16], dir: &Path, secret: &str) -> Proc {
    let config = dir.join("quire.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let metrics_port = free_port_block(1);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quire"));
    cmd.args(["node", "--shards", "1", "--durability", "batched"])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join(name))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .args([
            "--node-name",
            name,
            "--secret",
            secret,
            "--admin-token",
            TOKEN,
        ]);
    if !seeds.is_empty() {
        let list: Vec<String> = seeds.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        cmd.args(["--seeds", &list.join(",")]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("quire binary");
    Proc {
        child,
        metrics_port,
    }
}

fn client(port: u16) -> RemoteClient {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match RemoteClient::connect(format!("127.0.0.1:{port}").as_str(), Some(TOKEN)) {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("node on {port} never answered: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The text of `GET /metrics` on `port`.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: q\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// Waits until the node on `port` sees every name in `want` in `state`.
fn wait_for(port: u16, want: &[&str], state: &str, within: Duration) -> Duration {
    let started = Instant::now();
    let mut c = client(port);
    loop {
        let members = c.cluster().unwrap();
        let ok = want
            .iter()
            .all(|n| members.iter().any(|m| m.name == *n && m.state == state));
        if ok {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "node on {port} did not see {want:?} {state} within {within:?}: {members:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_nodes_route_detect_a_death_and_take_the_node_back() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port_block(1)).collect();
    let names = ["node-a", "node-b", "node-c"];
    let a = start(names[0], ports[0], &[], dir.path(), SECRET);
    let b = start(names[1], ports[1], &[ports[0]], dir.path(), SECRET);
    let mut c = start(names[2], ports[2], &[ports[0]], dir.path(), SECRET);
    for port in &ports {
        wait_for(*port, &names, "alive", Duration::from_secs(15));
    }
    // Node A's metrics tell how long after their start it saw B and C up.
    let text = metrics(a.metrics_port);
    let joins = text
        .lines()
        .find_map(|l| l.strip_prefix("quire_gossip_join_seconds_count{shard=\"0\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        joins.is_some_and(|n| n >= 2),
        "joins seen: {joins:?}\n{text}"
    );

    // Deploys through node A land on each agent's owner (NOT_OWNER
    // redirects), and calls through A reach every node.
    let mut via_a = client(ports[0]);
    let echo = quire_shards::testing::wat_echo();
    let agents: Vec<String> = (0..24).map(|i| format!("echo-{i}")).collect();
    for name in &agents {
        via_a.deploy(name, &echo).unwrap();
    }
    let mut owner = std::collections::HashMap::new();
    for (i, port) in ports.iter().enumerate() {
        for row in client(*port).agents().unwrap() {
            owner.insert(row.name, i);
        }
    }
    for (i, name) in names.iter().enumerate() {
        assert!(owner.values().any(|&o| o == i), "no agent placed on {name}");
    }
    // WHERE agrees with where the agents are, asked of any node: the owner
    // says whether the agent is there, the others name the owner.
    for name in agents.iter().chain([&"never-deployed".to_string()]) {
        for (i, port) in ports.iter().enumerate() {
            let at = client(*port).locate(name).unwrap();
            let asked_owner = at.node == names[i];
            if let Some(&o) = owner.get(name) {
                assert_eq!(at.node, names[o], "{name} asked of {}", names[i]);
            }
            assert_eq!(
                at.addr,
                format!(
                    "127.0.0.1:{}",
                    ports[names.iter().position(|n| *n == at.node).unwrap()]
                )
            );
            assert_eq!(at.state, "alive");
            assert_eq!(at.shard, 0, "one shard per node");
            let expect = asked_owner.then_some(owner.contains_key(name));
            assert_eq!(at.deployed, expect, "{name} asked of {}", names[i]);
        }
    }
    for name in &agents {
        let reply = via_a
            .call(name, name.as_bytes(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(&reply[..], name.as_bytes());
    }
    let mut via_b = client(ports[1]);
    for name in &agents {
        assert!(via_b.send(name, b"one-way").is_ok());
    }
    // A handler that traps on another node: the caller reads the trap's
    // message, carried back over the link (a `handler failed` envelope).
    let trap = quire_shards::hostile_agents::plain_trap();
    let remote_trap = (0..)
        .map(|i| format!("trap-{i}"))
        .find(|name| {
            via_a.deploy(name, &trap).unwrap();
            !client(ports[0])
                .agents()
                .unwrap()
                .iter()
                .any(|r| &r.name == name)
        })
        .unwrap();
    let err = via_a
        .call(&remote_trap, b"x", Duration::from_secs(5))
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Node { detail: Some(d), message, .. }
            if d == "agent_trapped" && message.contains("unreachable")),
        "{err:?}"
    );

    // Kill C: A declares it down within the configured time; then sends
    // and calls to C's agents fail at once with node_down.
    let on_c: Vec<&String> = agents.iter().filter(|n| owner[*n] == 2).collect();
    c.child.kill().unwrap();
    let _ = c.child.wait();
    let killed = Instant::now();
    wait_for(ports[0], &[names[2]], "down", DOWN_WITHIN);
    let detected = killed.elapsed();
    eprintln!("node-c declared down on node-a {detected:?} after the kill");
    let at = via_a.locate(on_c[0]).unwrap();
    assert_eq!(
        (at.node.as_str(), at.state.as_str(), at.deployed),
        (names[2], "down", None)
    );
    let started = Instant::now();
    let err = via_a
        .call(on_c[0], b"x", Duration::from_secs(5))
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Node { code: ErrorCode::Rejected, detail: Some(d), .. } if d == "node_down"),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "not fast: {:?}",
        started.elapsed()
    );
    let err = via_a.send(on_c[0], b"x").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Rejected));
    // Agents of live nodes still answer.
    for name in agents.iter().filter(|n| owner[*n] != 2) {
        assert!(via_a.call(name, b"still", Duration::from_secs(5)).is_ok());
    }

    // C comes back (same name, same data): it rejoins and its agents,
    // restored from its partition, answer again.
    c = start(names[2], ports[2], &[ports[0]], dir.path(), SECRET);
    wait_for(ports[0], &[names[2]], "alive", Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(10);
    for name in &on_c {
        loop {
            match via_a.call(name, b"back", Duration::from_secs(2)) {
                Ok(reply) => {
                    assert_eq!(&reply[..], b"back");
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "{name} did not come back: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
    drop((a, b, c));
}

#[test]
fn a_node_with_the_wrong_secret_never_joins() {
    let dir = tempfile::tempdir().unwrap();
    let pa = free_port_block(1);
    let pb = free_port_block(1);
    let _a = start("good", pa, &[], dir.path(), SECRET);
    let _b = start("intruder", pb, &[pa], dir.path(), "not-the-secret");
    // Give gossip ample time to (not) happen.
    std::thread::sleep(Duration::from_secs(2));
    let members = client(pa).cluster().unwrap();
    assert_eq!(members.len(), 1, "{members:?}");
    let members = client(pb).cluster().unwrap();
    assert_eq!(members.len(), 1, "{members:?}");
}

#[test]
fn a_restarted_first_node_rejoins_through_the_others_seeds() {
    // README's recipe: every node lists the others as seeds, the first one
    // too, so whichever node restarts alone finds the cluster again
    // instead of claiming every agent by itself.
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port_block(1)).collect();
    let names = ["first", "second", "third"];
    let others = |i: usize| -> Vec<u16> { (0..3).filter(|j| *j != i).map(|j| ports[j]).collect() };
    let mut first = start(names[0], ports[0], &others(0), dir.path(), SECRET);
    let _second = start(names[1], ports[1], &others(1), dir.path(), SECRET);
    let mut third = start(names[2], ports[2], &others(2), dir.path(), SECRET);
    for port in &ports {
        wait_for(*port, &names, "alive", Duration::from_secs(15));
    }
    first.child.kill().unwrap();
    let _ = first.child.wait();
    wait_for(ports[1], &[names[0]], "down", DOWN_WITHIN);
    let restarted = Instant::now();
    first = start(names[0], ports[0], &others(0), dir.path(), SECRET);
    wait_for(ports[0], &names[1..], "alive", Duration::from_secs(15));
    wait_for(ports[1], &[names[0]], "alive", Duration::from_secs(15));
    eprintln!(
        "the restarted first node and the others saw each other alive {:?} after its start",
        restarted.elapsed()
    );
    // SIGTERM: the node tells the others it leaves (foca's leave) before
    // it exits, and they mark it down without waiting for suspicion.
    let terminated = Instant::now();
    unsafe { libc::kill(third.child.id() as i32, libc::SIGTERM) };
    assert!(third.child.wait().unwrap().success());
    let exited = terminated.elapsed();
    wait_for(ports[0], &[names[2]], "down", DOWN_WITHIN);
    eprintln!(
        "a SIGTERM'd node exited {exited:?} and was down on the first {:?} after the signal",
        terminated.elapsed()
    );
    drop(first);
}
