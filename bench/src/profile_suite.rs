//! `quire-bench profiles`: the same load under each profile of
//! deploy/profiles/, to show that each does what its name says: the
//! low-latency profile has the lowest request/reply p99, the
//! high-throughput profile the most one-way messages per second, the
//! memory-optimized profile the least resident memory for the same agents.
//!
//! Per profile, on a node started from that file (plus `--shards`):
//! - cross-shard request/reply between native agents, one call at a time;
//! - one-way throughput, two producers and two consumers per shard;
//! - resident memory added by deploying `--agents` WebAssembly counter
//!   agents, calling each once, then leaving them idle for 1.5 s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use quire_runtime::config::NodeConfig;
use quire_runtime::{Node, WasmOptions};
use serde::Serialize;

use crate::report::{human_ns, resident_bytes, MachineInfo, Percentiles};
use crate::routing::{one_way_throughput, request_reply};
use crate::wasm_suite::COUNTER_WASM;

/// Options of `quire-bench profiles`.
#[derive(Debug, Clone, Args)]
pub struct ProfileOptions {
    /// Directory holding low-latency.toml, high-throughput.toml and
    /// memory-optimized.toml.
    #[arg(long, default_value = "deploy/profiles")]
    pub dir: PathBuf,
    /// Shards per node.
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// Measured calls per latency figure.
    #[arg(long, default_value_t = 50_000)]
    pub samples: u64,
    /// Messages each producer sends each consumer.
    #[arg(long, default_value_t = 100_000)]
    pub per_target: u64,
    /// WebAssembly agents in the memory figure.
    #[arg(long, default_value_t = 2_000)]
    pub agents: usize,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Measure this one profile and print its figures as JSON (each
    /// profile runs in a process of its own, so that resident memory is
    /// its alone).
    #[arg(long, hide = true)]
    pub one: Option<String>,
}

/// One profile's figures.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ProfileFigures {
    /// Its name.
    pub profile: String,
    /// Cross-shard request/reply.
    pub latency: Percentiles,
    /// One-way messages per second.
    pub msgs_per_s: u64,
    /// Resident bytes the agents added, after idling.
    pub resident_bytes: u64,
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    /// Where it ran.
    pub machine: MachineInfo,
    /// Per profile.
    pub profiles: Vec<ProfileFigures>,
    /// low-latency has the lowest p99.
    pub lowest_p99_is_low_latency: bool,
    /// high-throughput has the most msg/s.
    pub highest_rate_is_high_throughput: bool,
    /// memory-optimized has the least resident memory.
    pub least_memory_is_memory_optimized: bool,
}

fn measure(name: &str, opts: &ProfileOptions) -> Result<ProfileFigures, String> {
    let path = opts.dir.join(format!("{name}.toml"));
    let mut config =
        NodeConfig::load(Some(&path), std::iter::empty()).map_err(|e| e.to_string())?;
    config.node.shards = Some(opts.shards);
    config
        .validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let node = Node::builder()
        .config(config)
        .start()
        .map_err(|e| e.to_string())?;
    let client = node.client();
    let n = client.shard_count();
    let h = request_reply(
        &client,
        &format!("{name}/rr"),
        0,
        1 % n,
        5_000,
        opts.samples,
    )?;
    let latency = Percentiles::of(&h);
    let msgs_per_s = one_way_throughput(&client, &format!("{name}/ow"), 2, opts.per_target, 64)?;
    let before = resident_bytes();
    for i in 0..opts.agents {
        client
            .deploy_wasm_blocking(
                format!("{name}/agent-{i}"),
                COUNTER_WASM,
                WasmOptions::default(),
            )
            .map_err(|e| e.to_string())?;
    }
    for i in 0..opts.agents {
        client
            .call_blocking(
                format!("{name}/agent-{i}"),
                bytes::Bytes::new(),
                Duration::from_secs(5),
            )
            .map_err(|e| format!("agent {i}: {e}"))?;
    }
    let idle_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < idle_until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let resident = resident_bytes().saturating_sub(before);
    node.shutdown();
    Ok(ProfileFigures {
        profile: name.to_string(),
        latency,
        msgs_per_s,
        resident_bytes: resident,
    })
}

/// Runs every profile; prints the comparison and returns it.
pub fn run(opts: &ProfileOptions) -> Result<ProfileReport, String> {
    let machine = MachineInfo::current();
    println!(
        "quire-bench profiles: {} ({} CPUs, kernel {}), {} shard(s)",
        machine.cpu_model, machine.cpus, machine.kernel, opts.shards
    );
    if let Some(name) = &opts.one {
        let f = measure(name, opts)?;
        println!("{}", serde_json::to_string(&f).map_err(|e| e.to_string())?);
        return Ok(ProfileReport {
            machine,
            profiles: vec![f],
            lowest_p99_is_low_latency: false,
            highest_rate_is_high_throughput: false,
            least_memory_is_memory_optimized: false,
        });
    }
    let mut profiles = Vec::new();
    for name in ["low-latency", "high-throughput", "memory-optimized"] {
        let out = std::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .arg("profiles")
            .arg("--one")
            .arg(name)
            .arg("--dir")
            .arg(&opts.dir)
            .args(["--shards", &opts.shards.to_string()])
            .args(["--samples", &opts.samples.to_string()])
            .args(["--per-target", &opts.per_target.to_string()])
            .args(["--agents", &opts.agents.to_string()])
            .output()
            .map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "profile {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let f: ProfileFigures = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| format!("profile {name} printed no figures: {stdout}"))?;
        println!(
            "{name}: request/reply p50 {} p99 {}, one-way {:.2} M msg/s, {} agents idle: +{:.1} MiB",
            human_ns(f.latency.p50_ns),
            human_ns(f.latency.p99_ns),
            f.msgs_per_s as f64 / 1e6,
            opts.agents,
            f.resident_bytes as f64 / (1 << 20) as f64
        );
        profiles.push(f);
    }
    let best = |key: &dyn Fn(&ProfileFigures) -> i128| {
        profiles
            .iter()
            .max_by_key(|f| key(f))
            .map(|f| f.profile.clone())
            .unwrap_or_default()
    };
    let report = ProfileReport {
        lowest_p99_is_low_latency: best(&|f| -(f.latency.p99_ns as i128)) == "low-latency",
        highest_rate_is_high_throughput: best(&|f| f.msgs_per_s as i128) == "high-throughput",
        least_memory_is_memory_optimized: best(&|f| -(f.resident_bytes as i128))
            == "memory-optimized",
        machine,
        profiles,
    };
    println!("\n| profile | request/reply p50 | p99 | one-way msg/s | resident for {} idle wasm agents |", opts.agents);
    println!("|---|---|---|---|---|");
    for f in &report.profiles {
        println!(
            "| {} | {} | {} | {:.2} M | {:.1} MiB |",
            f.profile,
            human_ns(f.latency.p50_ns),
            human_ns(f.latency.p99_ns),
            f.msgs_per_s as f64 / 1e6,
            f.resident_bytes as f64 / (1 << 20) as f64
        );
    }
    let mark = |ok: bool| if ok { "yes" } else { "NO" };
    println!(
        "lowest p99 is low-latency: {}; most msg/s is high-throughput: {}; least memory is memory-optimized: {}",
        mark(report.lowest_p99_is_low_latency),
        mark(report.highest_rate_is_high_throughput),
        mark(report.least_memory_is_memory_optimized)
    );
    if let Some(path) = &opts.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(report)
}
