//! `quire doctor`: checks a host against what a Quire node needs and what
//! makes it fast, each as ok / warn / fail with the exact fix.
//!
//! Every check reads the host through a [`Host`] (a root directory for
//! `/proc` and `/sys`, and the process limits), so that tests run the same
//! checks against faked files and values.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::preflight::{self, MEMLOCK_PER_SHARD};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Works, but slower or smaller than it could be.
    Warn,
    /// A node will not run (or not as planned).
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        })
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Its verdict.
    pub verdict: Verdict,
    /// What was found.
    pub finding: String,
    /// The command or setting that fixes it (empty when ok).
    pub fix: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4} {:<16} {}",
            self.verdict.to_string(),
            self.name,
            self.finding
        )?;
        if !self.fix.is_empty() {
            write!(f, "\n     {:<16} fix: {}", "", self.fix)?;
        }
        Ok(())
    }
}

/// What the checks read.
#[derive(Debug, Clone)]
pub struct Host {
    /// Where `proc/` and `sys/` are (`/` on a real host).
    pub root: PathBuf,
    /// Soft RLIMIT_MEMLOCK, bytes (`u64::MAX`: unlimited).
    pub memlock: u64,
    /// Soft RLIMIT_NOFILE.
    pub nofile: u64,
    /// Probe io_uring with a real `io_uring_setup` (only on the real host).
    pub probe_io_uring: bool,
    /// CPUs the node would pin shards to.
    pub planned_cpus: Vec<usize>,
}

impl Host {
    /// This machine, for a node on `planned_cpus`.
    pub fn current(planned_cpus: Vec<usize>) -> Self {
        Self {
            root: PathBuf::from("/"),
            memlock: preflight::memlock_limit(),
            nofile: preflight::soft_limit(libc::RLIMIT_NOFILE),
            probe_io_uring: true,
            planned_cpus,
        }
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(path.trim_start_matches('/')))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn dir(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

/// Open files below which a node with many clients runs out.
pub const NOFILE_WANTED: u64 = 65_536;
/// `vm.max_map_count` that allows ~130 000 live WebAssembly instances.
pub const MAX_MAP_COUNT_WANTED: u64 = 262_144;

fn check(name: &'static str, verdict: Verdict, finding: String, fix: &str) -> Check {
    Check {
        name,
        verdict,
        finding,
        fix: if verdict == Verdict::Ok {
            String::new()
        } else {
            fix.to_string()
        },
    }
}

/// Runs every check.
pub fn run(host: &Host) -> Vec<Check> {
    vec![
        io_uring(host),
        memlock(host),
        max_map_count(host),
        open_files(host),
        governor(host),
        transparent_hugepages(host),
        numa(host),
    ]
}

/// The worst verdict (what the exit status follows).
pub fn worst(checks: &[Check]) -> Verdict {
    checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Ok)
}

fn io_uring(host: &Host) -> Check {
    let sysctl = host.read("/proc/sys/kernel/io_uring_disabled");
    if let Err(e) = preflight::check_io_uring_sysctl(sysctl.as_deref()) {
        return check(
            "io_uring",
            Verdict::Fail,
            e.to_string(),
            "sysctl -w kernel.io_uring_disabled=0",
        );
    }
    if host.probe_io_uring {
        if let Err(e) = preflight::probe_io_uring() {
            return check(
                "io_uring",
                Verdict::Fail,
                e.to_string(),
                "run on Linux 5.8 or later with io_uring enabled",
            );
        }
    }
    check("io_uring", Verdict::Ok, "available".into(), "")
}

fn memlock(host: &Host) -> Check {
    let shards = host.planned_cpus.len().max(1);
    let need = MEMLOCK_PER_SHARD * shards as u64;
    let have = if host.memlock == u64::MAX {
        "unlimited".to_string()
    } else {
        format!("{} KiB", host.memlock / 1024)
    };
    let verdict = if host.memlock >= need {
        Verdict::Ok
    } else {
        Verdict::Fail
    };
    check(
        "memlock",
        verdict,
        format!("{have}; {shards} shard(s) need {} KiB", need / 1024),
        &format!(
            "ulimit -l {} (LimitMEMLOCK=infinity in the systemd unit)",
            need / 1024
        ),
    )
}

fn max_map_count(host: &Host) -> Check {
    let fix = "sysctl -w vm.max_map_count=1048576 (persist: cp deploy/sysctl.d/90-quire.conf /etc/sysctl.d/)";
    match host
        .read("/proc/sys/vm/max_map_count")
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(v) if v >= MAX_MAP_COUNT_WANTED => check(
            "vm.max_map_count",
            Verdict::Ok,
            format!("{v} (~{} live wasm agents)", v / 2),
            "",
        ),
        Some(v) => check(
            "vm.max_map_count",
            Verdict::Warn,
            format!(
                "{v}: room for ~{} live WebAssembly agents per process (2 mappings each)",
                v / 2
            ),
            fix,
        ),
        None => check("vm.max_map_count", Verdict::Warn, "unreadable".into(), fix),
    }
}

fn open_files(host: &Host) -> Check {
    let verdict = if host.nofile >= NOFILE_WANTED {
        Verdict::Ok
    } else {
        Verdict::Warn
    };
    let have = if host.nofile == u64::MAX {
        "unlimited".to_string()
    } else {
        host.nofile.to_string()
    };
    check(
        "open files",
        verdict,
        format!("{have} (wanted: {NOFILE_WANTED} or more for many connections)"),
        "ulimit -n 1048576 (LimitNOFILE=1048576 in the systemd unit)",
    )
}

fn governor(host: &Host) -> Check {
    let mut slow = Vec::new();
    let mut seen = 0;
    for cpu in &host.planned_cpus {
        if let Some(g) = host.read(&format!(
            "/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"
        )) {
            seen += 1;
            if g != "performance" {
                slow.push(format!("cpu{cpu}={g}"));
            }
        }
    }
    if seen == 0 {
        return check(
            "cpu governor",
            Verdict::Ok,
            "no cpufreq control (a VM, or fixed frequency)".into(),
            "",
        );
    }
    if slow.is_empty() {
        check("cpu governor", Verdict::Ok, "performance".into(), "")
    } else {
        check(
            "cpu governor",
            Verdict::Warn,
            format!("not performance on the shards' CPUs: {}", slow.join(", ")),
            "cpupower frequency-set -g performance",
        )
    }
}

fn transparent_hugepages(host: &Host) -> Check {
    let fix = "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (boot: transparent_hugepage=madvise)";
    match host.read("/sys/kernel/mm/transparent_hugepage/enabled") {
        Some(v) if v.contains("[always]") => check(
            "huge pages",
            Verdict::Warn,
            "transparent huge pages: always (khugepaged and compaction stall shards)".into(),
            fix,
        ),
        Some(v) => {
            let mode = v
                .split_whitespace()
                .find(|w| w.starts_with('['))
                .unwrap_or(&v)
                .trim_matches(|c| c == '[' || c == ']')
                .to_string();
            check(
                "huge pages",
                Verdict::Ok,
                format!("transparent huge pages: {mode}"),
                "",
            )
        }
        None => check(
            "huge pages",
            Verdict::Ok,
            "no transparent huge pages".into(),
            "",
        ),
    }
}

/// NUMA nodes with their CPUs, from `sys/devices/system/node`.
pub fn numa_nodes(root: &Path) -> Vec<(usize, Vec<usize>)> {
    let mut nodes = Vec::new();
    let Ok(entries) = std::fs::read_dir(root.join("sys/devices/system/node")) else {
        return nodes;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(n) = name.strip_prefix("node").and_then(|n| n.parse().ok()) else {
            continue;
        };
        let cpus = std::fs::read_to_string(e.path().join("cpulist"))
            .ok()
            .and_then(|l| crate::cpuset::parse_cpu_list(l.trim()).ok())
            .unwrap_or_default();
        nodes.push((n, cpus));
    }
    nodes.sort();
    nodes
}

fn numa(host: &Host) -> Check {
    let nodes: Vec<_> = numa_nodes(&host.dir("/"))
        .into_iter()
        .filter(|(_, cpus)| !cpus.is_empty())
        .collect();
    if nodes.len() <= 1 {
        return check(
            "numa",
            Verdict::Ok,
            format!(
                "one NUMA node; {} shard(s) planned",
                host.planned_cpus.len()
            ),
            "",
        );
    }
    let spanned: Vec<usize> = nodes
        .iter()
        .filter(|(_, cpus)| host.planned_cpus.iter().any(|c| cpus.contains(c)))
        .map(|(n, _)| *n)
        .collect();
    let unknown: Vec<usize> = host
        .planned_cpus
        .iter()
        .copied()
        .filter(|c| !nodes.iter().any(|(_, cpus)| cpus.contains(c)))
        .collect();
    if !unknown.is_empty() {
        return check(
            "numa",
            Verdict::Fail,
            format!("planned CPUs {unknown:?} belong to no NUMA node (offline?)"),
            "pick online CPUs with --cpuset",
        );
    }
    if spanned.len() > 1 {
        check(
            "numa",
            Verdict::Warn,
            format!(
                "{} NUMA nodes; this process's shards span nodes {spanned:?}: memory and messages cross the interconnect",
                nodes.len()
            ),
            "one process per NUMA node: deploy/launch-numa.sh, or numactl --cpunodebind=N --membind=N quire node",
        )
    } else {
        check(
            "numa",
            Verdict::Ok,
            format!(
                "{} NUMA nodes; shards on node {}",
                nodes.len(),
                spanned.first().copied().unwrap_or(0)
            ),
            "",
        )
    }
}
