//! The benchmark tool's outputs and judgements: .hgrm and .hlog files read
//! back, coordinated-omission correction on a synthetic stall, `custom`
//! end to end, and `compare` failing on a doctored baseline.

use std::process::Command;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use quire_bench::load::{self, LoadSpec, Pattern};
use quire_bench::suite::{regressions, Better, Figure, Summary};
use quire_runtime::Node;
use quire_shards::{Agent, Context, Envelope};

fn histogram() -> hdrhistogram::Histogram<u64> {
    let mut h = quire_shards::new_latency_histogram();
    for i in 1..=10_000u64 {
        h.record(i * 1_000 + (i % 7) * 13).unwrap();
    }
    h.record(250_000_000).unwrap();
    h
}

#[test]
fn hgrm_reads_back_with_the_histogram_s_percentiles() {
    let h = histogram();
    let text = load::hgrm::write(&h);
    assert!(text.contains("Value") && text.contains("#[Max"));
    let rows = load::hgrm::parse(&text).unwrap();
    let (max_ms, last_q, total) = *rows.last().unwrap();
    assert_eq!(total, h.len());
    assert_eq!(last_q, 1.0);
    assert!((max_ms - h.max() as f64 / 1e6).abs() < 0.01 * max_ms);
    // The first row at or past the median holds the histogram's median.
    let median = rows.iter().find(|r| r.1 >= 0.5).unwrap().0;
    let expected = h.value_at_quantile(0.5) as f64 / 1e6;
    assert!(
        (median - expected).abs() <= 0.002 * expected + 0.001,
        "{median} vs {expected}"
    );
    // Counts only grow, percentiles only grow.
    assert!(rows
        .windows(2)
        .all(|w| w[0].1 <= w[1].1 && w[0].2 <= w[1].2));
}

#[test]
fn hlog_reads_back_interval_by_interval() {
    let a = histogram();
    let mut b = quire_shards::new_latency_histogram();
    b.record(42_000).unwrap();
    let log = load::hlog::write(
        &[a.clone(), b.clone()],
        Duration::from_secs(1),
        SystemTime::now(),
        "quire",
    )
    .unwrap();
    let mut read = Vec::new();
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(i) = entry.unwrap() {
            assert_eq!(i.tag().unwrap().as_str(), "quire");
            let bytes = base64_decode(i.encoded_histogram());
            let h: hdrhistogram::Histogram<u64> =
                Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
            read.push((i.start_timestamp(), h));
        }
    }
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].1.len(), a.len());
    assert_eq!(read[0].1.max(), a.max());
    assert_eq!(read[0].1.value_at_quantile(0.99), a.value_at_quantile(0.99));
    assert_eq!(read[1].0, Duration::from_secs(1));
    assert_eq!(read[1].1.len(), 1);
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Spins its shard for 250 ms when told: every agent there (the load's
/// generator too) waits.
struct Pauser;

impl Agent for Pauser {
    fn handle(&mut self, _ctx: &mut Context<'_>, _msg: Envelope) {
        let until = std::time::Instant::now() + Duration::from_millis(250);
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

#[test]
fn a_stall_inflates_the_corrected_high_percentiles_and_not_the_uncorrected() {
    // One shard: the generator, the targets and the pauser share a reactor.
    let node = Node::builder().shards(1).start().unwrap();
    let client = node.client();
    client.register_blocking("pauser", || Pauser).unwrap();
    let mut spec = LoadSpec::new(Pattern::RequestReply, 10, 2_000, Duration::from_secs(2));
    spec.warmup = Duration::from_millis(500);
    let pause = {
        let client = client.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1_200));
            client.send_blocking("pauser", Bytes::new()).unwrap();
        })
    };
    let r = load::quire::run(&client, "co", &spec, |_| {}).unwrap();
    pause.join().unwrap();
    node.shutdown();
    let corrected = r.corrected.value_at_quantile(0.99);
    let uncorrected = r.uncorrected.value_at_quantile(0.99);
    // ~500 of ~4 000 measured messages were due during the 250 ms stall:
    // measured from their intended times they waited up to 250 ms.
    assert!(corrected >= 100_000_000, "corrected p99 {corrected} ns");
    assert!(
        uncorrected * 4 < corrected,
        "uncorrected p99 {uncorrected} ns hides the stall, corrected {corrected} ns"
    );
    assert!(r.corrected.max() >= 200_000_000);
    assert_eq!(r.corrected.len(), r.uncorrected.len());
    assert!(r.corrected.len() >= 3_000, "measured {}", r.corrected.len());
    assert_eq!(r.missing(), 0);
}

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quire-bench"))
}

/// Runs `cmd`; fails the test with its stderr unless it succeeded.
fn succeed(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn custom_writes_every_output() {
    let dir = tempfile::tempdir().unwrap();
    succeed(
        bench()
            .args([
                "custom",
                "--agents",
                "4",
                "--rate",
                "500",
                "--duration",
                "0.5",
                "--warmup",
                "0.2",
            ])
            .args(["--pattern", "fan-out", "--shards", "1", "--out"])
            .arg(dir.path()),
    );
    for file in [
        "custom.quire.hgrm",
        "custom.quire.uncorrected.hgrm",
        "custom.quire.hlog",
        "custom.tokio.hgrm",
        "custom.tokio.hlog",
        "custom.png",
        "summary.json",
        "report.md",
    ] {
        assert!(dir.path().join(file).exists(), "no {file}");
    }
    let rows =
        load::hgrm::parse(&std::fs::read_to_string(dir.path().join("custom.quire.hgrm")).unwrap())
            .unwrap();
    // 0.5 s at 500 msg/s, each to 4 agents: about 1 000 deliveries.
    let total = rows.last().unwrap().2;
    assert!((800..=1_200).contains(&total), "{total} deliveries");
    let summary: Summary =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert!(summary
        .figures
        .iter()
        .any(|f| f.metric == "p99" && f.peer.is_some()));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains("| metric | baseline | current | change |"),
        "{md}"
    );
}

fn figure(metric: &str, quire: f64, peer: f64) -> Figure {
    Figure {
        scenario: "latency".into(),
        metric: metric.into(),
        unit: "ns".into(),
        better: Better::Lower,
        quire,
        peer_name: Some("tokio".into()),
        peer: Some(peer),
    }
}

fn summary(figures: Vec<Figure>) -> Summary {
    Summary {
        suite: "standard".into(),
        machine: quire_bench::report::MachineInfo::current(),
        figures,
    }
}

#[test]
fn regressions_are_judged_on_the_ratio_to_the_peer() {
    let base = summary(vec![figure("p99", 100.0, 400.0)]);
    // Both slower by half (a slower machine): the ratio held, no regression.
    assert!(regressions(
        &summary(vec![figure("p99", 150.0, 600.0)]),
        &base,
        0.1,
        false
    )
    .is_empty());
    // Quire slower, the peer not: a regression.
    let found = regressions(
        &summary(vec![figure("p99", 150.0, 400.0)]),
        &base,
        0.1,
        false,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("4.00x -> 2.67x"), "{found:?}");
}

fn compare(baseline: &std::path::Path, current: &std::path::Path) -> std::process::Output {
    bench()
        .args(["compare", "--baseline"])
        .arg(baseline)
        .arg("--current")
        .arg(current)
        .output()
        .unwrap()
}

#[test]
fn compare_exits_non_zero_on_a_doctored_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join("current.json");
    let baseline = dir.path().join("baseline.json");
    let now = summary(vec![
        figure("p50", 50.0, 100.0),
        figure("p99", 100.0, 400.0),
    ]);
    std::fs::write(&current, serde_json::to_string(&now).unwrap()).unwrap();
    std::fs::write(&baseline, serde_json::to_string(&now).unwrap()).unwrap();
    let same = compare(&baseline, &current);
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    // The baseline claims a p99 twice as good against the same peer.
    let doctored = summary(vec![figure("p50", 50.0, 100.0), figure("p99", 50.0, 400.0)]);
    std::fs::write(&baseline, serde_json::to_string(&doctored).unwrap()).unwrap();
    let out = compare(&baseline, &current);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 regression(s) beyond 10%") && err.contains("latency p99"),
        "{err}"
    );
}

#[test]
fn custom_drives_a_running_node_over_the_wire() {
    let mut config = quire_runtime::config::NodeConfig::default();
    config.node.shards = Some(1);
    let port = quire_runtime::net::free_port_block(2);
    config.network.listen = Some(format!("127.0.0.1:{port}"));
    config.network.admin_token = Some("bench-token".into());
    let node = Node::builder().config(config).start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    succeed(
        bench()
            .args([
                "custom",
                "--agents",
                "3",
                "--rate",
                "1000",
                "--duration",
                "0.5",
                "--warmup",
                "0.2",
            ])
            .args([
                "--node",
                &format!("127.0.0.1:{port}"),
                "--token",
                "bench-token",
                "--out",
            ])
            .arg(dir.path()),
    );
    let rows =
        load::hgrm::parse(&std::fs::read_to_string(dir.path().join("custom.quire.hgrm")).unwrap())
            .unwrap();
    // 0.5 s at 1 000 calls/s: about 500 measured replies.
    let total = rows.last().unwrap().2;
    assert!((400..=600).contains(&total), "{total} replies");
    // The targets were undeployed afterwards.
    assert!(node
        .client()
        .agents_blocking()
        .iter()
        .all(|a| !a.name.as_str().starts_with("quire-bench/")));
    node.shutdown();
}
