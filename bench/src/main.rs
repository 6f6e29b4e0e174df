//! `quire-bench`: Quire's benchmarks, each next to its peer in the same run.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use quire_bench::crash::{self, CrashOptions, WorkerOptions};
use quire_bench::net_suite::{self, NetOptions};
use quire_bench::profile_suite::{self, ProfileOptions};
use quire_bench::routing_suite::{self, RoutingOptions};
use quire_bench::storage_suite::{self, StorageOptions};
use quire_bench::suite::{self, CompareOptions, CustomOptions, RunOptions, StressOptions};
use quire_bench::wasm_suite::{self, WasmBenchOptions};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "quire-bench",
    version,
    about = "Quire benchmarks, side by side with their peers"
)]
struct Cli {
    #[command(subcommand)]
    command: Benchmark,
}

#[derive(Subcommand)]
enum Benchmark {
    /// The standard suite: latency, throughput, scalability, spawn, memory
    /// per agent, WebAssembly overhead, peak load, sustained, burst; each
    /// next to its peers, into a JSON summary and a markdown report.
    Run(RunOptions),
    /// One open-loop run of your choosing, next to the tokio design:
    /// .hgrm, .hlog, JSON, markdown and a PNG percentile plot.
    Custom(CustomOptions),
    /// Raise the request rate until p99 or losses break an objective.
    Stress(StressOptions),
    /// Latency against load: each system's rate climbs from ~1% of
    /// capacity to past its breaking point; a table, JSON and one PNG of
    /// p50/p99/p99.9/p99.99 against achieved rate for every system.
    Sweep(quire_bench::suite::SweepOptions),
    /// Exit non-zero when a summary regressed from a baseline.
    Compare(CompareOptions),
    /// Request/reply latency and one-way throughput between native agents,
    /// next to a tokio + mpsc + DashMap design.
    Routing(RoutingOptions),
    /// Durable messages per mode next to SQLite, routing during a commit
    /// storm, recovery of a big data directory.
    Storage(StorageOptions),
    /// WebAssembly agents next to native ones: echo overhead, throughput per
    /// shard, activation, memory per agent, a looping neighbour.
    Wasm(WasmBenchOptions),
    /// Node-to-node request/reply and one-way throughput over loopback next
    /// to a tokio design, and membership convergence of a 10-member cluster.
    Net(NetOptions),
    /// The same load under each profile of deploy/profiles/: latency,
    /// throughput and resident memory side by side.
    Profiles(ProfileOptions),
    /// Kill a durable node with SIGKILL at random moments under load,
    /// restart it, and check that nothing acknowledged was lost or handled
    /// twice.
    Crash(CrashOptions),
    /// What output commit costs: calls to stateful agents per durability
    /// mode, replies held for their commit and not.
    OutputCommit(quire_bench::output_commit::OutputCommitOptions),
    /// Sizing figures per shard: spawn rates (one by one, batched, tokio),
    /// memory per idle agent and per connection, messages per shard; the
    /// table docs/capacity.md is written from.
    Capacity(quire_bench::capacity::CapacityOptions),
    /// What a hostile agent costs the good agent on its shard: open-loop
    /// latency quiet and with each attacker of the hostile suite hammered.
    Sandbox(quire_bench::sandbox_suite::SandboxOptions),
    /// The crash test's worker process (started by `crash`).
    #[command(hide = true)]
    CrashWorker(WorkerOptions),
}

fn main() -> ExitCode {
    // Warnings (reactor stall reports among them) go to stderr; QUIRE_LOG
    // sets another filter.
    let _log = quire_runtime::logging::init("warn");
    let cli = Cli::parse();
    let result = match &cli.command {
        Benchmark::Run(opts) => suite::run_suite(opts).map(|_| ()),
        Benchmark::Custom(opts) => suite::custom(opts).map(|_| ()),
        Benchmark::Stress(opts) => suite::stress(opts).map(|_| ()),
        Benchmark::Sweep(opts) => suite::sweep(opts).map(|_| ()),
        Benchmark::Compare(opts) => suite::compare(opts),
        Benchmark::Routing(opts) => routing_suite::run(opts).map(|_| ()),
        Benchmark::Crash(opts) => crash::run(opts).map(|_| ()),
        Benchmark::Storage(opts) => storage_suite::run(opts).map(|_| ()),
        Benchmark::Wasm(opts) => wasm_suite::run(opts).map(|_| ()),
        Benchmark::Net(opts) => net_suite::run(opts).map(|_| ()),
        Benchmark::Profiles(opts) => profile_suite::run(opts).map(|_| ()),
        Benchmark::OutputCommit(opts) => quire_bench::output_commit::run(opts).map(|_| ()),
        Benchmark::Capacity(opts) => quire_bench::capacity::run(opts).map(|figures| {
            print!("{}", quire_bench::capacity::markdown(&figures));
        }),
        Benchmark::Sandbox(opts) => quire_bench::sandbox_suite::run(opts).map(|_| ()),
        Benchmark::CrashWorker(opts) => crash::worker(opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quire-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
