//! `quire node`, `quire placement` and `quire doctor`: the commands that
//! plan or run a node on this machine.

use std::time::{Duration, Instant};

use quire_runtime::builtin_kinds::builtin_kinds;
use quire_runtime::config::NodeConfig;
use quire_runtime::{demo, Node, NodeBuilder};
use quire_shards::ShardStats;

use crate::args::{NetArgs, PlacementArgs};

pub fn builder(args: &PlacementArgs) -> Result<(NodeBuilder, NodeConfig), String> {
    // The file (or the embedded default), then QUIRE_* variables, then flags.
    let mut config =
        NodeConfig::load(args.config.as_deref(), std::env::vars()).map_err(|e| e.to_string())?;
    if let Some(n) = args.shards {
        config.node.shards = Some(n);
    }
    if let Some(list) = &args.cpuset {
        config.node.cpuset = Some(list.clone());
    }
    if let Some(mode) = args.durability {
        config.storage.durability = mode;
    }
    if let Some(dir) = &args.data_dir {
        config.storage.data_dir = dir.clone();
    }
    config.validate().map_err(|e| e.to_string())?;
    let builder = Node::builder()
        .config(config.clone())
        .agent_kinds(builtin_kinds());
    Ok((builder, config))
}

pub fn run_node(
    args: &PlacementArgs,
    spin_us: Option<u64>,
    duration: Option<f64>,
    net: &NetArgs,
) -> Result<(), String> {
    let (_, mut config) = builder(args)?;
    if net.no_listen {
        config.network.listen = None;
    } else if let Some(listen) = &net.listen {
        config.network.listen = Some(listen.clone());
    } else if config.network.listen.is_none() {
        config.network.listen = Some("127.0.0.1:7400".into());
    }
    if net.no_metrics {
        config.metrics.listen = None;
    } else if let Some(metrics) = &net.metrics {
        config.metrics.listen = Some(metrics.clone());
    } else if config.metrics.listen.is_none() && !net.no_listen {
        config.metrics.listen = Some("127.0.0.1:9400".into());
    }
    if !net.seeds.is_empty() {
        config.cluster.seeds = net.seeds.clone();
    }
    if net.secret.is_some() {
        config.cluster.secret = net.secret.clone();
    }
    if net.admin_token.is_some() {
        config.network.admin_token = net.admin_token.clone();
    }
    if net.node_name.is_some() {
        config.cluster.node_name = net.node_name.clone();
    }
    let clustered = config
        .cluster
        .secret
        .as_deref()
        .is_some_and(|s| !s.is_empty());
    if net.demo && clustered {
        return Err("--demo runs on a node outside a cluster only: demo agents are placed per node, not by the cluster (drop --demo or --secret)".into());
    }
    config.validate().map_err(|e| e.to_string())?;
    let mut builder = Node::builder()
        .config(config.clone())
        .agent_kinds(builtin_kinds());
    // New modules compile in a child of this binary, under the compile
    // limits (see quire_shards::wasm::CompilerProcess).
    if let Ok(me) = std::env::current_exe() {
        builder = builder.compile_in_child(me);
    }
    if let Some(us) = spin_us {
        builder = builder.spin_before_park(Duration::from_micros(us));
    }
    let node = builder.start().map_err(|e| e.to_string())?;
    println!("quire node: {} shard(s)", node.placement().len());
    match &config.network.listen {
        Some(listen) => println!(
            "listening for clients on {listen} (quire call/send/agents/stats/cluster --node {listen}){}",
            if clustered { "; cluster gossip on the same port (UDP)" } else { "" }
        ),
        None => println!("no sockets (--no-listen)"),
    }
    if let Some(addr) = node.metrics_addr() {
        println!("metrics: curl http://{addr}/metrics (Prometheus text), /health");
    }
    print!("{}", node.placement());
    for report in node.recovery() {
        println!("{report}");
    }

    let (stop_tx, stop_rx) = flume::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    })
    .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    let until = duration.map(|s| Instant::now() + Duration::from_secs_f64(s));
    if net.demo {
        run_demo(&node, &config, &stop_rx, until)?;
    } else {
        println!("no demo agents (--demo runs them); serving until Ctrl-C");
        // A node of its own does nothing until clients come: no timer, no
        // poll, this thread just waits for the signal or the duration.
        match until {
            Some(u) => {
                let _ = stop_rx.recv_timeout(u.saturating_duration_since(Instant::now()));
            }
            None => {
                let _ = stop_rx.recv();
            }
        }
    }
    println!("{}", node.shutdown());
    Ok(())
}

/// `--demo`: deploys the demo agents, drives the durable counters from
/// this thread on a durable node, and prints a summary every
/// `demo.report_interval_ms` until Ctrl-C or `until`.
fn run_demo(
    node: &Node,
    config: &NodeConfig,
    stop_rx: &flume::Receiver<()>,
    until: Option<Instant>,
) -> Result<(), String> {
    let client = node.client();
    let pingers = demo::start(&client, &config.demo)?;
    println!(
        "demo: {pingers} pinger(s) each calling a ponger every {} µs, pongers on every shard; Ctrl-C to stop",
        config.demo.call_interval_us
    );
    let durable = config.storage.durability.is_persistent();
    let counters = if durable {
        let counters = demo::deploy_counters(&client)?;
        println!(
            "storage: {} in {}; durable messages go to {} counter agent(s)",
            config.storage.durability,
            config.storage.data_dir.display(),
            counters.len()
        );
        counters
    } else {
        Vec::new()
    };
    let every = Duration::from_millis(config.demo.report_interval_ms);
    let mut previous = ShardStats::total(&client.stats_blocking());
    let mut last = Instant::now();
    loop {
        let wait = match until {
            Some(u) => every.min(u.saturating_duration_since(Instant::now())),
            None => every,
        };
        let stop = if counters.is_empty() {
            stop_rx.recv_timeout(wait).is_ok()
        } else {
            // Durable traffic through the interval, from this thread.
            let until = Instant::now() + wait;
            let mut stop = false;
            while Instant::now() < until && !stop {
                let line = demo::durable_round(&client, &counters, 64);
                if let Err(e) = line {
                    // Never a panic: stderr may be a file on the full disk.
                    let _ = std::io::Write::write_fmt(
                        &mut std::io::stderr(),
                        format_args!("durable send failed: {e}\n"),
                    );
                }
                stop = stop_rx.try_recv().is_ok();
            }
            stop
        };
        let now = ShardStats::total(&client.stats_blocking());
        let seconds = last.elapsed().as_secs_f64();
        last = Instant::now();
        println!(
            "{}",
            demo::summary_line(&demo::interval(&now, &previous), seconds)
        );
        if durable {
            println!("{}", demo::storage_line(&now, &previous, seconds));
        }
        previous = now;
        if stop || until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
    }
    let all = &previous.call_latency_ns;
    println!(
        "whole run: {} calls ({} timed), round trip p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        previous.replies,
        all.len(),
        all.value_at_quantile(0.5) as f64 / 1e3,
        all.value_at_quantile(0.99) as f64 / 1e3,
        all.value_at_quantile(0.999) as f64 / 1e3,
        all.max() as f64 / 1e3
    );
    Ok(())
}

pub fn doctor(
    args: &PlacementArgs,
    root: Option<&std::path::Path>,
    limits: &[u64],
) -> Result<(), String> {
    use quire_runtime::doctor::{self, Host, Verdict};
    let mut cpus = match &args.cpuset {
        Some(list) => quire_runtime::cpuset::parse_cpu_list(list).map_err(|e| e.to_string())?,
        None => quire_runtime::placement::inherited_affinity(),
    };
    if let Some(n) = args.shards {
        cpus.truncate(n);
    }
    let mut host = Host::current(cpus);
    if let Some(root) = root {
        host.root = root.to_path_buf();
        host.probe_io_uring = false;
    }
    if let [memlock, nofile] = limits {
        host.memlock = *memlock;
        host.nofile = *nofile;
    }
    let checks = doctor::run(&host);
    for c in &checks {
        println!("{c}");
    }
    match doctor::worst(&checks) {
        Verdict::Fail => Err("some checks failed: a node will not run as planned".into()),
        Verdict::Warn => {
            println!("a node runs here; the warnings cost speed or capacity");
            Ok(())
        }
        Verdict::Ok => {
            println!("all good");
            Ok(())
        }
    }
}
