//! Storage faults on a running node, injected through the partitions'
//! backend (deterministic): a commit that fails makes the shard refuse
//! what it can no longer save, says so on `/health`, resumes by itself
//! when the disk works again, and loses nothing it acknowledged. Also the
//! start-up integrity checks of a data directory.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use quire_runtime::builtin_kinds::{builtin_kinds, decode_count};
use quire_runtime::config::NodeConfig;
use quire_runtime::{DurableError, Node, StartError};
use quire_shards::{CallError, Rejection};
use quire_storage::faults::FaultSwitch;
use quire_storage::manifest::MANIFEST_FILE;
use quire_storage::{partition_path, Durability};

fn shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2)
}

fn config(dir: &Path, mode: Durability) -> NodeConfig {
    let mut config = NodeConfig::default();
    config.node.shards = Some(shards());
    config.storage.durability = mode;
    config.storage.data_dir = dir.to_path_buf();
    config.metrics.listen = Some("127.0.0.1:0".into());
    config
}

fn start(dir: &Path, mode: Durability, faults: Option<FaultSwitch>) -> Node {
    let mut b = Node::builder()
        .config(config(dir, mode))
        .agent_kinds(builtin_kinds());
    if let Some(f) = faults {
        b = b.partition_faults(f);
    }
    b.start().unwrap()
}

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    common::http_get(addr, path)
}

fn count(reply: &quire_shards::Envelope) -> u64 {
    decode_count(&reply.payload)
}

fn a_failing_disk_is_refused_reported_and_survived(fail: impl Fn(&FaultSwitch, bool)) {
    let dir = tempfile::tempdir().unwrap();
    let switch = FaultSwitch::default();
    let node = start(dir.path(), Durability::Batched, Some(switch.clone()));
    let metrics = node.metrics_addr().unwrap();
    let client = node.client();
    client.deploy_blocking("c", "counter", Vec::new()).unwrap();
    let t = Duration::from_secs(5);
    let mut acked = 0;
    for _ in 0..20 {
        acked = count(&client.call_blocking("c", "", t).unwrap());
    }
    assert_eq!(acked, 20);
    assert_eq!(get(metrics, "/health").0, 200);

    fail(&switch, true);
    // The state change is made in memory but cannot be saved: the caller
    // is told, never answered as if it were kept.
    let err = client.call_blocking("c", "", t).unwrap_err();
    assert_eq!(err, CallError::Rejected(Rejection::StorageUnavailable));
    for _ in 0..5 {
        assert_eq!(
            client.call_blocking("c", "", t).unwrap_err(),
            CallError::Rejected(Rejection::StorageUnavailable)
        );
    }
    match client.send_durable_blocking("c", "x").unwrap_err() {
        DurableError::Storage(reason) => assert!(reason.contains("shard-"), "{reason}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    let (status, body) = get(metrics, "/health");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("storage unavailable") && body.contains("shard-"),
        "{body}"
    );
    let (_, text) = get(metrics, "/metrics");
    assert!(text.contains("quire_storage_available{shard="), "{text}");
    assert!(switch.injected() > 0);

    fail(&switch, false);
    // The shard retries by itself: calls are answered again, no restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    let resumed = loop {
        match client.call_blocking("c", "", t) {
            Ok(reply) => break count(&reply),
            Err(CallError::Rejected(Rejection::StorageUnavailable)) => {
                assert!(Instant::now() < deadline, "the shard never resumed");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(resumed > acked, "{resumed} after {acked}");
    assert_eq!(get(metrics, "/health").0, 200);
    client.send_durable_blocking("c", "after").unwrap();
    let report = node.shutdown();
    assert!(report.drained, "{report}");

    // Nothing acknowledged is lost across a restart.
    let node = start(dir.path(), Durability::Batched, None);
    let after = count(&node.client().call_blocking("c", "", t).unwrap());
    assert!(after > resumed, "{after} after {resumed}");
    node.shutdown();
}

#[test]
fn a_full_disk_is_refused_reported_and_survived() {
    a_failing_disk_is_refused_reported_and_survived(|s, on| s.fail_writes(on));
}

#[test]
fn a_failing_fsync_is_refused_reported_and_survived() {
    a_failing_disk_is_refused_reported_and_survived(|s, on| s.fail_syncs(on));
}

#[test]
fn stateless_agents_keep_answering_while_the_disk_fails() {
    let dir = tempfile::tempdir().unwrap();
    let switch = FaultSwitch::default();
    let node = start(dir.path(), Durability::Batched, Some(switch.clone()));
    let client = node.client();
    client.deploy_blocking("c", "counter", Vec::new()).unwrap();
    client
        .register_blocking("echo", || quire_runtime::builtin_kinds::Echo)
        .unwrap();
    switch.fail_syncs(true);
    let t = Duration::from_secs(5);
    assert!(client.call_blocking("c", "", t).is_err());
    // An agent that keeps nothing on disk reports nothing that could be lost.
    let reply = client.call_blocking("echo", "hi", t).unwrap();
    assert_eq!(&reply.payload[..], b"hi");
    switch.fail_syncs(false);
    node.shutdown();
}

fn start_error(dir: &Path) -> String {
    let err = Node::builder()
        .config(config(dir, Durability::Batched))
        .agent_kinds(builtin_kinds())
        .start()
        .err()
        .expect("the start is refused");
    assert!(matches!(err, StartError::Storage(_)), "{err}");
    err.to_string()
}

fn storage_check(dir: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quire"))
        .args(["storage", "check", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A data directory a node used: counters deployed on every shard.
fn used_data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), Durability::Batched, None);
    let client = node.client();
    for i in 0..shards() * 4 {
        client
            .deploy_blocking(format!("c{i}"), "counter", Vec::new())
            .unwrap();
    }
    node.shutdown();
    assert!(storage_check(dir.path()).0);
    dir
}

#[test]
fn a_missing_partition_stops_the_start_and_is_never_recreated() {
    let dir = used_data_dir();
    let lost = partition_path(dir.path(), shards() - 1);
    std::fs::remove_file(&lost).unwrap();
    let text = start_error(dir.path());
    assert!(text.contains(&lost.display().to_string()), "{text}");
    assert!(text.contains("backup"), "names the fix: {text}");
    assert!(!lost.exists(), "the node recreated the partition");
    let (ok, out) = storage_check(dir.path());
    assert!(!ok && out.contains(&lost.display().to_string()), "{out}");
    assert!(!lost.exists(), "storage check recreated the partition");
}

#[test]
fn a_truncated_partition_stops_the_start() {
    let dir = used_data_dir();
    let cut = partition_path(dir.path(), 0);
    std::fs::File::create(&cut).unwrap(); // truncated to nothing
    let text = start_error(dir.path());
    assert!(
        text.contains("shard-0.redb") && text.contains("empty"),
        "{text}"
    );
    assert!(!storage_check(dir.path()).0);
}

#[test]
fn a_missing_manifest_stops_the_start() {
    let dir = used_data_dir();
    std::fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
    let text = start_error(dir.path());
    assert!(
        text.contains(MANIFEST_FILE) && text.contains("partition"),
        "{text}"
    );
    assert!(!dir.path().join(MANIFEST_FILE).exists());
    let (ok, out) = storage_check(dir.path());
    assert!(!ok && out.contains(MANIFEST_FILE), "{out}");
}

#[test]
fn random_bytes_in_a_partition_stop_the_start_naming_the_file() {
    let dir = used_data_dir();
    let file = partition_path(dir.path(), 0);
    let mut bytes = std::fs::read(&file).unwrap();
    // Overwrite pages past the header with noise (a fixed pattern, so the
    // test is the same every run).
    let mut x: u32 = 0x9e37_79b9;
    for b in bytes.iter_mut().skip(4096) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(&file, &bytes).unwrap();
    let text = start_error(dir.path());
    assert!(text.contains("shard-0.redb"), "{text}");
    let (ok, out) = storage_check(dir.path());
    assert!(!ok && out.contains("shard-0.redb"), "{out}");
}
