//! Operations: `quire doctor` against faked /proc and /sys, the NUMA
//! launcher's dry run on a faked two-node topology, the profiles and the
//! systemd unit.

use std::path::{Path, PathBuf};
use std::process::Command;

use quire_runtime::doctor::{self, Host, Verdict};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A healthy two-NUMA-node host: CPUs 0-3 on node 0, 4-7 on node 1.
fn good_host(root: &Path) {
    write(root, "proc/sys/kernel/io_uring_disabled", "0\n");
    write(root, "proc/sys/vm/max_map_count", "1048576\n");
    write(
        root,
        "sys/kernel/mm/transparent_hugepage/enabled",
        "always [madvise] never\n",
    );
    for cpu in 0..8 {
        write(
            root,
            &format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"),
            "performance\n",
        );
    }
    write(root, "sys/devices/system/node/node0/cpulist", "0-3\n");
    write(root, "sys/devices/system/node/node1/cpulist", "4-7\n");
}

fn host(root: &Path, cpus: Vec<usize>) -> Host {
    Host {
        root: root.to_path_buf(),
        memlock: 64 << 20,
        nofile: 1 << 20,
        probe_io_uring: false,
        planned_cpus: cpus,
    }
}

fn verdict_of(checks: &[doctor::Check], name: &str) -> (Verdict, String) {
    let c = checks.iter().find(|c| c.name == name).unwrap();
    (c.verdict, format!("{}: {}", c.finding, c.fix))
}

#[test]
fn doctor_passes_a_good_host() {
    let dir = tempfile::tempdir().unwrap();
    good_host(dir.path());
    let checks = doctor::run(&host(dir.path(), vec![0, 1, 2, 3]));
    assert_eq!(doctor::worst(&checks), Verdict::Ok, "{checks:#?}");
    assert!(checks.iter().all(|c| c.fix.is_empty()));
}

#[test]
fn doctor_names_every_problem_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    good_host(root);
    write(root, "proc/sys/vm/max_map_count", "65530\n");
    write(
        root,
        "sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never\n",
    );
    write(
        root,
        "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
        "powersave\n",
    );
    let mut h = host(root, vec![0, 1, 4, 5]);
    h.nofile = 1024;
    let checks = doctor::run(&h);
    let (v, text) = verdict_of(&checks, "vm.max_map_count");
    assert_eq!(v, Verdict::Warn);
    assert!(text.contains("sysctl -w vm.max_map_count="), "{text}");
    let (v, text) = verdict_of(&checks, "huge pages");
    assert_eq!(v, Verdict::Warn);
    assert!(text.contains("madvise"), "{text}");
    let (v, text) = verdict_of(&checks, "cpu governor");
    assert_eq!(v, Verdict::Warn);
    assert!(
        text.contains("cpu1=powersave") && text.contains("cpupower"),
        "{text}"
    );
    let (v, text) = verdict_of(&checks, "open files");
    assert_eq!(v, Verdict::Warn);
    assert!(text.contains("ulimit -n"), "{text}");
    // Shards on both NUMA nodes: one process per node is the fix.
    let (v, text) = verdict_of(&checks, "numa");
    assert_eq!(v, Verdict::Warn);
    assert!(text.contains("launch-numa.sh"), "{text}");
    assert_eq!(doctor::worst(&checks), Verdict::Warn);

    // Failures: memlock too low, io_uring off, a CPU on no node.
    write(root, "proc/sys/kernel/io_uring_disabled", "2\n");
    let mut h = host(root, vec![0, 1, 9]);
    h.memlock = 64 * 1024;
    let checks = doctor::run(&h);
    let (v, text) = verdict_of(&checks, "memlock");
    assert_eq!(v, Verdict::Fail);
    assert!(text.contains("ulimit -l 1536"), "{text}");
    let (v, text) = verdict_of(&checks, "io_uring");
    assert_eq!(v, Verdict::Fail);
    assert!(text.contains("kernel.io_uring_disabled=0"), "{text}");
    assert_eq!(verdict_of(&checks, "numa").0, Verdict::Fail);
    assert_eq!(doctor::worst(&checks), Verdict::Fail);
}

#[test]
fn doctor_command_exits_non_zero_on_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    good_host(dir.path());
    let run = |memlock: &str| {
        Command::new(env!("CARGO_BIN_EXE_quire"))
            .args(["doctor", "--cpuset", "0-1", "--root"])
            .arg(dir.path())
            .args(["--limits", memlock, "1048576"])
            .output()
            .unwrap()
    };
    let out = run("67108864");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run("4096");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("fail memlock") && stdout.contains("fix: ulimit -l"),
        "{stdout}"
    );
}

#[test]
fn launcher_dry_run_on_two_numa_nodes() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "devices/system/node/node0/cpulist", "0-3\n");
    write(dir.path(), "devices/system/node/node1/cpulist", "4-7\n");
    // A memory-only node runs no shard.
    write(dir.path(), "devices/system/node/node2/cpulist", "\n");
    let out = Command::new("bash")
        .arg(repo().join("deploy/launch-numa.sh"))
        .args([
            "--dry-run",
            "--secret",
            "s",
            "--base-port",
            "9000",
            "--data-root",
            "/srv/q",
        ])
        .args(["--", "--shards", "4"])
        .env("QUIRE_SYSFS", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("numactl --cpunodebind=0 --membind=0 "),
        "{text}"
    );
    assert!(lines[0].contains("--listen 127.0.0.1:9000") && lines[0].contains("/srv/q/node-0"));
    // Each node seeds from the others, node 0 too (a restart rejoins).
    assert!(lines[0].contains("--seeds 127.0.0.1:9100 "), "{text}");
    assert!(
        lines[1].starts_with("numactl --cpunodebind=1 --membind=1 "),
        "{text}"
    );
    assert!(lines[1].contains("--listen 127.0.0.1:9100") && lines[1].contains("/srv/q/node-1"));
    assert!(lines[1].contains("--seeds 127.0.0.1:9000 "), "{text}");
    assert!(lines[0].contains("--metrics 127.0.0.1:9099"), "{text}");
    assert!(lines[1].contains("--metrics 127.0.0.1:9199"), "{text}");
    assert!(lines
        .iter()
        .all(|l| l.contains("--secret s") && l.ends_with("--shards 4 ")));
    // Without a secret it refuses to start anything.
    let out = Command::new("bash")
        .arg(repo().join("deploy/launch-numa.sh"))
        .env("QUIRE_SYSFS", dir.path())
        .env_remove("QUIRE_CLUSTER_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster secret"));
}

#[test]
fn every_profile_passes_config_check() {
    for name in ["low-latency", "high-throughput", "memory-optimized"] {
        let path = repo().join(format!("deploy/profiles/{name}.toml"));
        let out = Command::new(env!("CARGO_BIN_EXE_quire"))
            .args(["config", "check"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = repo().join("deploy/systemd/quire@.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for needed in [
        "numactl --cpunodebind=%i --membind=%i",
        "LimitMEMLOCK=",
        "LimitNOFILE=",
        "CAP_IPC_LOCK",
        "CAP_SYS_NICE",
        "Restart=on-failure",
        "/etc/quire/node-%i.toml",
        "/var/lib/quire/node-%i",
    ] {
        assert!(text.contains(needed), "unit lacks {needed}");
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed; checked the unit's text only");
        return;
    }
    // Verify an instance; missing binaries on this machine are reported as
    // such, anything else is a defect in the unit.
    let dir = tempfile::tempdir().unwrap();
    let instance = dir.path().join("quire@0.service");
    std::fs::copy(&unit, &instance).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&instance)
        .output()
        .unwrap();
    let errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("is not executable") && !l.contains("No such file"))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
