//! `quire-bench net`: node-to-node figures over loopback, next to the
//! conventional tokio design measured in the same run.
//!
//! - **remote request/reply**: two nodes of one shard each (pinned to
//!   different CPUs when there are two), a native driver on node A calling
//!   an echo on node B one call at a time: the envelope crosses A's link to
//!   B's shard and the reply comes back on the same connection. Peer: a
//!   tokio client calling a tokio actor behind a connection task;
//! - **client request/reply**: the Rust client (blocking socket) calling an
//!   echo on the node it is connected to;
//! - **one-way throughput over one link**: one producer on A sending to one
//!   consumer on B, with a credit window (the consumer grants credit back
//!   every 256 messages, over B's own link to A). Peer: a tokio client
//!   writing batches to a connection task that feeds an actor;
//! - **membership convergence**: N foca members (this crate's membership,
//!   UDP on loopback) on one reactor: time until every member sees every
//!   other alive after N-1 join through one seed, and until every survivor
//!   sees a silently stopped member down.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use quire_client::RemoteClient;
use quire_runtime::cluster::rendezvous;
use quire_runtime::cluster::{MemberState, Membership, NodeIdentity};
use quire_runtime::config::{ClusterSection, NodeConfig};
use quire_runtime::net::free_port_block;
use quire_runtime::Node;
use quire_shards::fnv1a64;
use serde::Serialize;

use crate::report::{human_ns, latency_ratio, median, MachineInfo, Percentiles};
use crate::routing::{Consumer, Driver, Echo, Producer, PAYLOAD};

const SECRET: &str = "bench-secret";

/// Options of `quire-bench net`.
#[derive(Debug, Clone, Args)]
pub struct NetOptions {
    /// Runs per figure (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Measured calls per request/reply run.
    #[arg(long, default_value_t = 50_000)]
    pub samples: u64,
    /// Calls before measuring.
    #[arg(long, default_value_t = 5_000)]
    pub warmup: u64,
    /// Messages per one-way run.
    #[arg(long, default_value_t = 2_000_000)]
    pub messages: u64,
    /// Members of the convergence figure.
    #[arg(long, default_value_t = 10)]
    pub members: usize,
    /// Reactors poll this long before they sleep (µs; the low-latency
    /// setting; 0 parks at once).
    #[arg(long, default_value_t = 200)]
    pub spin_us: u64,
    /// Write coalescing delay of the nodes (µs; 0: end of reactor turn).
    #[arg(long, default_value_t = 0)]
    pub coalesce_us: u64,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Latency next to the tokio peer.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteLatency {
    /// Quire: agent on node A calling an agent on node B.
    pub quire: Percentiles,
    /// tokio: client calling an actor behind a connection task.
    pub tokio: Percentiles,
    /// tokio p50 / Quire p50.
    pub p50_ratio: f64,
    /// tokio p99 / Quire p99.
    pub p99_ratio: f64,
}

/// One-way messages per second over one connection.
#[derive(Debug, Clone, Serialize)]
pub struct LinkThroughput {
    /// Quire, per run.
    pub quire_runs: Vec<u64>,
    /// tokio, per run.
    pub tokio_runs: Vec<u64>,
    /// Medians.
    pub quire_msgs_per_s: u64,
    /// Medians.
    pub tokio_msgs_per_s: u64,
    /// Quire / tokio.
    pub ratio: f64,
}

/// Membership agreement times.
#[derive(Debug, Clone, Serialize)]
pub struct Convergence {
    /// Members.
    pub members: usize,
    /// SWIM settings used.
    pub probe_period_ms: u64,
    /// ...
    pub probe_rtt_ms: u64,
    /// ...
    pub suspect_to_down_ms: u64,
    /// Every member sees every other alive, per run (ms).
    pub join_ms: Vec<u64>,
    /// Every survivor sees the stopped member down, per run (ms).
    pub death_ms: Vec<u64>,
    /// Medians.
    pub join_median_ms: u64,
    /// Medians.
    pub death_median_ms: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct NetReport {
    /// Where it ran.
    pub machine: MachineInfo,
    /// Agent-to-agent across nodes.
    pub remote_request_reply: RemoteLatency,
    /// Rust client to an agent of the node it is connected to.
    pub client_request_reply: Percentiles,
    /// One link, one way.
    pub link_throughput: LinkThroughput,
    /// Membership.
    pub convergence: Convergence,
}

/// Fast LAN settings for the figures (and what the cluster tests use).
fn fast_swim() -> ClusterSection {
    ClusterSection {
        probe_period_ms: 200,
        probe_rtt_ms: 80,
        suspect_to_down_ms: 600,
        gossip_period_ms: 100,
        expected_members: 16,
        ..ClusterSection::default()
    }
}

struct Pair {
    a: Node,
    b: Node,
    a_addr: String,
    names: [String; 2],
}

fn start_pair(opts: &NetOptions) -> Result<Pair, String> {
    let cpus = crate::report::cpus();
    let pa = free_port_block(1);
    let pb = free_port_block(1);
    let names = ["bench-a".to_string(), "bench-b".to_string()];
    let make = |name: &str, port: u16, seed: Option<u16>, cpu: usize| {
        let mut config = NodeConfig::default();
        config.node.shards = Some(1);
        config.node.cpuset = Some(cpu.to_string());
        config.node.spin_before_park_us = opts.spin_us;
        // As in the routing benchmark: the producer's credit window, not
        // the mailbox bound, limits what is in flight.
        config.queues.mailbox_capacity = 65_536;
        config.network.listen = Some(format!("127.0.0.1:{port}"));
        config.network.coalesce_delay_us = opts.coalesce_us;
        config.cluster = ClusterSection {
            node_name: Some(name.into()),
            secret: Some(SECRET.into()),
            seeds: seed
                .map(|p| vec![format!("127.0.0.1:{p}")])
                .unwrap_or_default(),
            ..fast_swim()
        };
        Node::builder()
            .config(config)
            .start()
            .map_err(|e| e.to_string())
    };
    let a = make(&names[0], pa, None, 0)?;
    let b = make(&names[1], pb, Some(pa), 1 % cpus)?;
    let a_addr = format!("127.0.0.1:{pa}");
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in [pa, pb] {
        let mut c = RemoteClient::connect(format!("127.0.0.1:{port}").as_str(), None)
            .map_err(|e| e.to_string())?;
        while c.cluster().map_err(|e| e.to_string())?.len() < 2 {
            if Instant::now() > deadline {
                return Err("the two bench nodes did not meet within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(Pair {
        a,
        b,
        a_addr,
        names,
    })
}

/// `count` agent names starting with `prefix` that node `owner` (index
/// into `names`) owns.
fn names_owned_by(names: &[String; 2], owner: usize, prefix: &str, count: usize) -> Vec<String> {
    let members: Vec<(u64, &str)> = names
        .iter()
        .map(|n| (fnv1a64(n.as_bytes()), n.as_str()))
        .collect();
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|n| rendezvous::owner(n, &members) == Some(owner))
        .take(count)
        .collect()
}

fn remote_rr(pair: &Pair, tag: &str, warmup: u64, samples: u64) -> Result<Percentiles, String> {
    let echo = names_owned_by(&pair.names, 1, &format!("{tag}/echo"), 1).remove(0);
    let driver = names_owned_by(&pair.names, 0, &format!("{tag}/driver"), 1).remove(0);
    pair.b
        .client()
        .register_blocking(echo.as_str(), || Echo)
        .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel();
    let target = echo.as_str().into();
    let a = pair.a.client();
    a.register_blocking(driver.as_str(), move || {
        Driver::new(target, warmup, samples, tx)
    })
    .map_err(|e| e.to_string())?;
    a.send_blocking(driver.as_str(), Bytes::new())
        .map_err(|e| e.to_string())?;
    let h = rx
        .recv_timeout(Duration::from_secs(120))
        .map_err(|_| "remote request/reply did not finish in 120 s".to_string())?;
    let _ = a.unregister_blocking(driver.as_str());
    let _ = pair.b.client().unregister_blocking(echo.as_str());
    if h.len() < samples {
        return Err(format!(
            "only {} of {samples} remote calls completed",
            h.len()
        ));
    }
    Ok(Percentiles::of(&h))
}

fn client_rr(pair: &Pair, tag: &str, warmup: u64, samples: u64) -> Result<Percentiles, String> {
    let echo = names_owned_by(&pair.names, 0, &format!("{tag}/cecho"), 1).remove(0);
    pair.a
        .client()
        .register_blocking(echo.as_str(), || Echo)
        .map_err(|e| e.to_string())?;
    let mut c = RemoteClient::connect(pair.a_addr.as_str(), None).map_err(|e| e.to_string())?;
    let mut h = quire_shards::new_latency_histogram();
    for i in 0..warmup + samples {
        let started = Instant::now();
        c.call(&echo, &PAYLOAD, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        if i >= warmup {
            h.saturating_record(started.elapsed().as_nanos() as u64);
        }
    }
    let _ = pair.a.client().unregister_blocking(echo.as_str());
    Ok(Percentiles::of(&h))
}

fn link_one_way(pair: &Pair, tag: &str, messages: u64) -> Result<u64, String> {
    let consumer = names_owned_by(&pair.names, 1, &format!("{tag}/cons"), 1).remove(0);
    let producer = names_owned_by(&pair.names, 0, &format!("{tag}/prod"), 1).remove(0);
    let (tx, rx) = mpsc::channel();
    pair.b
        .client()
        .register_blocking(consumer.as_str(), move || Consumer::new(messages, tx))
        .map_err(|e| e.to_string())?;
    let target = vec![consumer.as_str().into()];
    let a = pair.a.client();
    a.register_blocking(producer.as_str(), move || {
        Producer::new(target, messages, 256)
    })
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    a.send_blocking(producer.as_str(), Bytes::new())
        .map_err(|e| e.to_string())?;
    let finished = rx
        .recv_timeout(Duration::from_secs(120))
        .map_err(|_| "one-way run did not finish in 120 s".to_string())?;
    let _ = a.unregister_blocking(producer.as_str());
    let _ = pair.b.client().unregister_blocking(consumer.as_str());
    Ok((messages as f64 / finished.duration_since(started).as_secs_f64()) as u64)
}

/// What one member last reported: (name, state) of the others.
type View = Vec<(String, MemberState)>;

/// Join and death agreement of `n` members on one reactor.
fn convergence_run(n: usize, cfg: &ClusterSection) -> Result<(u64, u64), String> {
    let cfg = cfg.clone();
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("bench-gossip")
        .spawn(move || async move {
            let ports: Vec<u16> = (0..n).map(|_| free_port_block(0)).collect();
            let addrs: Vec<SocketAddr> = ports
                .iter()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
                .collect();
            // views[i] = what member i last reported: (name, state).
            let views: Rc<RefCell<Vec<View>>> = Rc::new(RefCell::new(vec![Vec::new(); n]));
            let mut stops = Vec::new();
            let started = Instant::now();
            for (i, addr) in addrs.iter().enumerate() {
                let socket = glommio::net::UdpSocket::bind(addr).expect("udp");
                let me = NodeIdentity::new(&format!("m{i}"), *addr, 1);
                let seeds = if i == 0 { vec![] } else { vec![addrs[0]] };
                let membership = Membership::new(me, &cfg, seeds, SECRET).without_leave();
                stops.push(membership.stopper());
                let views = views.clone();
                glommio::spawn_local(async move {
                    membership
                        .run(socket, move |members| {
                            views.borrow_mut()[i] =
                                members.into_iter().map(|m| (m.name, m.state)).collect();
                        })
                        .await;
                })
                .detach();
            }
            let all_alive = |views: &[View], upto: usize| {
                views[..upto]
                    .iter()
                    .all(|v| v.iter().filter(|(_, s)| *s != MemberState::Down).count() >= upto - 1)
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while !all_alive(&views.borrow(), n) {
                if Instant::now() > deadline {
                    return Err("members did not agree on the join within 30 s".to_string());
                }
                glommio::timer::sleep(Duration::from_millis(2)).await;
            }
            let join = started.elapsed();
            // Let the join settle, then stop the last member silently.
            glommio::timer::sleep(Duration::from_millis(500)).await;
            let victim = format!("m{}", n - 1);
            stops[n - 1].stop();
            let killed = Instant::now();
            let deadline = killed + Duration::from_secs(30);
            loop {
                let agreed = views.borrow()[..n - 1].iter().all(|v| {
                    v.iter()
                        .any(|(name, s)| *name == victim && *s == MemberState::Down)
                });
                if agreed {
                    break;
                }
                if Instant::now() > deadline {
                    return Err("survivors did not agree on the death within 30 s".to_string());
                }
                glommio::timer::sleep(Duration::from_millis(2)).await;
            }
            let death = killed.elapsed();
            for s in &stops {
                s.stop();
            }
            Ok((join.as_millis() as u64, death.as_millis() as u64))
        })
        .map_err(|e| e.to_string())?;
    handle
        .join()
        .map_err(|_| "gossip executor panicked".to_string())?
}

/// Runs every figure; prints the report and returns it.
pub fn run(opts: &NetOptions) -> Result<NetReport, String> {
    let machine = MachineInfo::current();
    println!(
        "quire-bench net: {} ({} CPUs, kernel {}), {} run(s) per figure",
        machine.cpu_model, machine.cpus, machine.kernel, opts.runs
    );
    let pair = start_pair(opts)?;
    let mut quire_rr = Vec::new();
    let mut tokio_rr = Vec::new();
    let mut client = Vec::new();
    let mut quire_tp = Vec::new();
    let mut tokio_tp = Vec::new();
    for run in 0..opts.runs {
        let q = remote_rr(&pair, &format!("rr{run}"), opts.warmup, opts.samples)?;
        let t = Percentiles::of(&crate::peer_tokio_net::remote_request_reply(
            opts.warmup,
            opts.samples,
        ));
        println!(
            "run {run}: remote request/reply p50 {} p99 {} (tokio {} / {})",
            human_ns(q.p50_ns),
            human_ns(q.p99_ns),
            human_ns(t.p50_ns),
            human_ns(t.p99_ns)
        );
        quire_rr.push(q);
        tokio_rr.push(t);
        let c = client_rr(&pair, &format!("c{run}"), opts.warmup, opts.samples)?;
        println!(
            "run {run}: client request/reply p50 {} p99 {}",
            human_ns(c.p50_ns),
            human_ns(c.p99_ns)
        );
        client.push(c);
        let q = link_one_way(&pair, &format!("ow{run}"), opts.messages)?;
        let t = crate::peer_tokio_net::one_way(opts.messages, 256);
        println!("run {run}: one-way over one link {q} msg/s (tokio {t} msg/s)");
        quire_tp.push(q);
        tokio_tp.push(t);
    }
    drop(pair);
    let cfg = fast_swim();
    let mut join = Vec::new();
    let mut death = Vec::new();
    for run in 0..opts.runs {
        let (j, d) = convergence_run(opts.members, &cfg)?;
        println!(
            "run {run}: {} members agree on the join in {j} ms, on a death in {d} ms",
            opts.members
        );
        join.push(j);
        death.push(d);
    }
    let quire = Percentiles::median_of(&quire_rr);
    let tokio = Percentiles::median_of(&tokio_rr);
    let report = NetReport {
        machine,
        remote_request_reply: RemoteLatency {
            p50_ratio: latency_ratio(tokio.p50_ns, quire.p50_ns),
            p99_ratio: latency_ratio(tokio.p99_ns, quire.p99_ns),
            quire,
            tokio,
        },
        client_request_reply: Percentiles::median_of(&client),
        link_throughput: LinkThroughput {
            quire_msgs_per_s: median(quire_tp.clone()),
            tokio_msgs_per_s: median(tokio_tp.clone()),
            ratio: median(quire_tp.clone()) as f64 / median(tokio_tp.clone()).max(1) as f64,
            quire_runs: quire_tp,
            tokio_runs: tokio_tp,
        },
        convergence: Convergence {
            members: opts.members,
            probe_period_ms: cfg.probe_period_ms,
            probe_rtt_ms: cfg.probe_rtt_ms,
            suspect_to_down_ms: cfg.suspect_to_down_ms,
            join_median_ms: median(join.clone()),
            death_median_ms: median(death.clone()),
            join_ms: join,
            death_ms: death,
        },
    };
    print_report(&report);
    if let Some(path) = &opts.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(report)
}

fn print_report(r: &NetReport) {
    let rr = &r.remote_request_reply;
    println!("\nmedians of the runs:");
    println!("| figure | Quire | tokio peer | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| remote request/reply p50 (agent on A -> agent on B) | {} | {} | {:.1}x |",
        human_ns(rr.quire.p50_ns),
        human_ns(rr.tokio.p50_ns),
        rr.p50_ratio
    );
    println!(
        "| remote request/reply p99 | {} | {} | {:.1}x |",
        human_ns(rr.quire.p99_ns),
        human_ns(rr.tokio.p99_ns),
        rr.p99_ratio
    );
    println!(
        "| remote request/reply p99.9 / max | {} / {} | {} / {} | |",
        human_ns(rr.quire.p999_ns),
        human_ns(rr.quire.max_ns),
        human_ns(rr.tokio.p999_ns),
        human_ns(rr.tokio.max_ns)
    );
    println!(
        "| client request/reply p50 / p99 (Rust client -> node) | {} / {} | | |",
        human_ns(r.client_request_reply.p50_ns),
        human_ns(r.client_request_reply.p99_ns)
    );
    let tp = &r.link_throughput;
    println!(
        "| one-way msgs/s over one connection | {:.2} M | {:.2} M | {:.1}x |",
        tp.quire_msgs_per_s as f64 / 1e6,
        tp.tokio_msgs_per_s as f64 / 1e6,
        tp.ratio
    );
    let c = &r.convergence;
    println!(
        "| {} members agree on a join / a death (probe {} ms, rtt {} ms, suspect {} ms) | {} ms / {} ms | | |",
        c.members,
        c.probe_period_ms,
        c.probe_rtt_ms,
        c.suspect_to_down_ms,
        c.join_median_ms,
        c.death_median_ms
    );
}
