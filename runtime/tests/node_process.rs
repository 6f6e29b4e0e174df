//! A `quire node` process stopped the way process managers stop it, and
//! run on a disk that fills up: SIGTERM and SIGINT both drain and commit
//! and exit 0; a full disk (a real, small tmpfs) is refused and reported
//! while it lasts and survived when room comes back. The node's stderr is
//! a file on that same full disk, as a log often is: a log line that cannot
//! be written must not take a shard down.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{counter_wasm, decode_count, NodeProcess};
use quire_client::ClientError;

fn stop_drains_and_commits(signal: i32, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = NodeProcess::start(&data, "batched");
    let mut c = node.client();
    c.deploy("counter", &counter_wasm()).unwrap();
    // Queued, not yet handled nor committed when the signal comes: only a
    // drain that handles and commits them keeps them.
    let sends = 500;
    for _ in 0..sends {
        c.send("counter", b"").unwrap();
    }
    drop(c);
    let code = node.stop_with(signal);
    assert_eq!(code, Some(0), "{name} did not end in a clean exit");
    let node = NodeProcess::start(&data, "batched");
    let count = decode_count(
        &node
            .client()
            .call("counter", b"", Duration::from_secs(10))
            .unwrap(),
    );
    assert_eq!(
        count,
        sends + 1,
        "after {name}: every queued message was handled and kept"
    );
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0));
}

#[test]
fn sigterm_drains_commits_and_exits_zero() {
    stop_drains_and_commits(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_drains_commits_and_exits_zero() {
    stop_drains_and_commits(libc::SIGINT, "SIGINT");
}

/// A tmpfs of `mib` MiB mounted on `dir` (root only), unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, mib: u32) -> Option<Self> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn storage_unavailable(e: &ClientError) -> bool {
    matches!(e, ClientError::Node { detail: Some(d), .. } if d == "storage_unavailable")
}

#[test]
fn a_full_disk_is_refused_reported_and_survived_on_a_real_tmpfs() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(dir.path(), 24) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must be able to mount a tmpfs"
        );
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    };
    let data = dir.path().join("data");
    let node = NodeProcess::start(&data, "batched");
    let mut c = node.client();
    c.deploy("counter", &counter_wasm()).unwrap();
    let t = Duration::from_secs(10);
    let mut acked = 0;
    for _ in 0..10 {
        acked = decode_count(&c.call("counter", b"", t).unwrap());
    }

    // Fill the disk.
    let filler = dir.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    drop(f);

    // Durable sends with large payloads need new pages: one soon fails,
    // and the sender is told it was not committed.
    let payload = vec![1u8; 512 * 1024];
    let mut refused = None;
    for i in 0..40 {
        match c.send_durable("counter", &payload, &format!("big-{i}")) {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("a full disk never refused a durable send");
    assert!(storage_unavailable(&refused), "{refused:?}");
    let (status, body) = node.get("/health");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("storage unavailable") && body.contains("shard-"),
        "{body}"
    );
    // A call that changes the counter is refused too, not acknowledged.
    let err = c.call("counter", b"", t).unwrap_err();
    assert!(storage_unavailable(&err), "{err:?}");

    // Room again: the shard resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let resumed = loop {
        match c.call("counter", b"", t) {
            Ok(reply) => break decode_count(&reply),
            Err(e) if storage_unavailable(&e) => {
                assert!(
                    Instant::now() < deadline,
                    "the shard never resumed: {}",
                    node.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(resumed > acked);
    assert_eq!(node.get("/health").0, 200);
    drop(c);
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0));

    let node = NodeProcess::start(&data, "batched");
    let after = decode_count(&node.client().call("counter", b"", t).unwrap());
    assert!(
        after > resumed,
        "{after} after {resumed}: acknowledged increments lost"
    );
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0));
}

#[test]
fn durable_sends_over_the_wire_survive_sigkill_and_are_handled_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = NodeProcess::start(&data, "batched");
    let mut c = node.client();
    c.deploy("counter", &counter_wasm()).unwrap();
    let sends = 50;
    for i in 0..sends {
        let id = c
            .send_durable("counter", b"", &format!("order-{i}"))
            .unwrap();
        assert_ne!(id, "duplicate");
    }
    // A retry before the crash is a duplicate, not a second message.
    assert_eq!(
        c.send_durable("counter", b"", "order-0").unwrap(),
        "duplicate"
    );
    drop(c);
    node.kill();

    let node = NodeProcess::start(&data, "batched");
    let mut c = node.client();
    // The sender retries everything after the crash (it cannot know what
    // landed): every one was committed before its OK, so all are duplicates.
    for i in 0..sends {
        assert_eq!(
            c.send_durable("counter", b"", &format!("order-{i}"))
                .unwrap(),
            "duplicate",
            "order-{i}"
        );
    }
    let count = decode_count(&c.call("counter", b"", Duration::from_secs(10)).unwrap());
    assert_eq!(count, sends + 1, "each durable send handled exactly once");
    drop(c);
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0));
}
