//! `quire-bench wasm` on a tiny budget: every scenario runs and reports
//! figures that make sense (the real figures come from release runs).

use quire_bench::wasm_suite::{run, WasmBenchOptions};

#[test]
fn every_wasm_scenario_runs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("wasm.json");
    let report = run(&WasmBenchOptions {
        runs: 1,
        samples: 2_000,
        warmup: 200,
        messages: 50_000,
        agents: 2_000,
        active: 200,
        neighbour_secs: 1,
        neighbour_rate: 2_000,
        neighbour_fuel: 250_000,
        spin_us: 0,
        json: Some(json.clone()),
    })
    .unwrap();
    assert_eq!(report.echo.wasm.samples, 2_000);
    assert!(report.echo.native.p50_ns > 0 && report.echo.wasm.p50_ns > 0);
    assert!(report.throughput.wasm_msgs_per_s > 0 && report.throughput.native_msgs_per_s > 0);
    assert_eq!(report.activation_pooled.samples, 10_000);
    assert!(report.activation_cold.p50_ns > 0);
    assert_eq!(report.memory.addressable.last().unwrap().0, 2_000);
    assert_eq!(report.memory.active.0, 200);
    // The looping agent failed and was quarantined; well-behaved calls all completed.
    assert!(report.neighbour.looper_failures >= 1);
    assert!(report.neighbour.looper_quarantined > 0);
    assert_eq!(report.neighbour.hammered.samples, 2_000);
    let text = std::fs::read_to_string(json).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(parsed["echo"]["p50_ratio"].as_f64().unwrap() > 0.0);
}
