//! The routing benchmark runs end to end on small counts and writes its JSON.
//! It checks that figures exist and add up, never what they are.

use std::process::Command;

#[test]
fn routing_benchmark_writes_every_figure() {
    let dir = std::env::temp_dir().join(format!("quire-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("routing.json");
    let shards = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(2);
    let out = Command::new(env!("CARGO_BIN_EXE_quire-bench"))
        .args([
            "routing",
            "--runs",
            "1",
            "--samples",
            "2000",
            "--warmup",
            "200",
            "--per-target",
            "2000",
        ])
        .args(["--shards", &shards.to_string(), "--spin-us", "0", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tokio/quire"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let same = &report["same_shard_request_reply"];
    assert_eq!(same["quire"]["samples"], 2000);
    assert_eq!(same["peer"]["samples"], 2000);
    for key in [
        "p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns",
    ] {
        assert!(same["quire"][key].as_u64().unwrap() > 0, "{key}");
    }
    assert!(
        report["one_way_throughput"]["quire_msgs_per_s"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        report["one_way_throughput"]["peer_msgs_per_s"]
            .as_u64()
            .unwrap()
            > 0
    );
    if shards > 1 {
        assert_eq!(
            report["cross_shard_request_reply"]["quire"]["samples"],
            2000
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
