//! An agent's life over the wire, against a `quire node` process: RELOAD
//! swaps its module and keeps its state, STOP refuses its messages until
//! START, AGENT_INFO shows each step; refusals are typed and name what was
//! wrong; the CLI verbs do the same from a shell.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{decode_count, prebuilt, NodeProcess, TOKEN};
use quire_client::protocol::ErrorCode;
use quire_client::{ClientError, RemoteClient};

const T: Duration = Duration::from_secs(5);

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> (ErrorCode, String) {
    match result {
        Err(ClientError::Node { code, message, .. }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Whether an agent row's version (a short hash) is that module's hash.
fn runs(version: &Option<String>, hash: &str) -> bool {
    version
        .as_deref()
        .is_some_and(|v| v.len() >= 8 && hash.starts_with(v))
}

/// Runs the CLI against `node` (with `token`, if any): success, stdout,
/// stderr.
fn quire(node: &NodeProcess, token: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quire"));
    command.args(args).args(["--node", &node.addr]);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn prebuilt_path(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../sdk/prebuilt/{name}.wasm"));
    path.to_string_lossy().into_owned()
}

fn count(c: &mut RemoteClient, name: &str) -> u64 {
    decode_count(&c.call(name, b"", T).unwrap())
}

#[test]
fn reload_keeps_state_stop_refuses_until_start_and_info_shows_each_step() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"), "batched");
    let mut c = node.client();
    let counter_hash = c.deploy("tally", &prebuilt("counter")).unwrap();
    assert_eq!((count(&mut c, "tally"), count(&mut c, "tally")), (1, 2));
    let info = c.info("tally").unwrap();
    assert_eq!(info.name, "tally");
    assert!(runs(&info.version, &counter_hash), "{info:?}");

    // Another module in place: it runs from the next message on.
    let echo_hash = c.reload("tally", &prebuilt("echo")).unwrap();
    assert_ne!(echo_hash, counter_hash);
    assert_eq!(c.call("tally", b"echoed", T).unwrap(), &b"echoed"[..]);
    assert!(runs(&c.info("tally").unwrap().version, &echo_hash));
    // Back to the counter: the count it kept in its state goes on.
    c.reload("tally", &prebuilt("counter")).unwrap();
    assert_eq!(count(&mut c, "tally"), 3);

    // A module that does not compile is refused; the agent keeps running.
    let (refused, message) = code(c.reload("tally", b"\0asm not really"));
    assert_eq!(refused, ErrorCode::DeployFailed, "{message}");
    assert_eq!(count(&mut c, "tally"), 4);

    c.stop("tally").unwrap();
    assert_eq!(c.info("tally").unwrap().state, "stopped");
    match c.call("tally", b"", T) {
        Err(ClientError::Node {
            code: ErrorCode::Rejected,
            detail,
            ..
        }) => assert_eq!(detail.as_deref(), Some("agent_stopped")),
        other => panic!("a stopped agent answered: {other:?}"),
    }
    c.start("tally").unwrap();
    assert_ne!(c.info("tally").unwrap().state, "stopped");
    assert_eq!(
        count(&mut c, "tally"),
        5,
        "the refused call was not handled"
    );

    for (what, result) in [
        ("reload", c.reload("nobody", &prebuilt("echo")).map(|_| ())),
        ("stop", c.stop("nobody")),
        ("start", c.start("nobody")),
        ("info", c.info("nobody").map(|_| ())),
        ("info of a pattern", c.info("tally-*").map(|_| ())),
    ] {
        let (refused, message) = code(result);
        assert_eq!(refused, ErrorCode::NotFound, "{what}: {message}");
        assert!(
            message.contains("nobody") || message.contains("tally-*"),
            "{what}: {message}"
        );
    }

    // Reload survives a restart: the node comes back with the new module.
    c.reload("tally", &prebuilt("echo")).unwrap();
    drop(c);
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0));
    let node = NodeProcess::start(&dir.path().join("data"), "batched");
    let mut c = node.client();
    assert!(runs(&c.info("tally").unwrap().version, &echo_hash));
    assert_eq!(c.call("tally", b"after", T).unwrap(), &b"after"[..]);
}

#[test]
fn the_cli_verbs_reload_stop_start_and_info() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"), "none");
    node.client().deploy("shell", &prebuilt("counter")).unwrap();
    let echo = prebuilt_path("echo");
    let cli = |args: &[&str]| quire(&node, Some(TOKEN), args);
    let (ok, stdout, stderr) = cli(&["info", "shell"]);
    assert!(
        ok && stdout.contains("shell") && stdout.contains("version"),
        "{stdout}{stderr}"
    );
    let (ok, stdout, stderr) = cli(&["stop", "shell"]);
    assert!(ok && stdout.contains("stopped shell"), "{stdout}{stderr}");
    let (_, stdout, _) = cli(&["info", "shell"]);
    assert!(stdout.contains("stopped"), "{stdout}");
    let (ok, stdout, stderr) = cli(&["start", "shell"]);
    assert!(ok && stdout.contains("started shell"), "{stdout}{stderr}");
    let (ok, stdout, stderr) = cli(&["reload", &echo, "--name", "shell"]);
    assert!(ok && stdout.contains("reloaded shell"), "{stdout}{stderr}");
    let (ok, stdout, stderr) = cli(&["stop", "nobody"]);
    assert!(!ok && stderr.contains("nobody"), "{stdout}{stderr}");
    // Without a token: the CLI says which scope was missing.
    let (ok, _, stderr) = quire(&node, None, &["stop", "shell"]);
    assert!(!ok && stderr.contains("admin scope"), "{stderr}");
}

#[test]
fn a_deploy_sets_its_own_limits_and_a_setting_the_node_cannot_take_is_named() {
    use quire_client::protocol::DeployOptions;
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"), "none");
    let mut c = node.client();
    // Too little fuel for one message: every call is refused, naming why.
    let starved = DeployOptions::default().set("fuel_per_message", 5);
    c.deploy_with("starved", &prebuilt("counter"), &starved)
        .unwrap();
    match c.call("starved", b"", T) {
        Err(ClientError::Node {
            code: ErrorCode::Rejected,
            detail,
            ..
        }) => assert_eq!(detail.as_deref(), Some("fuel_exhausted")),
        other => panic!("an agent with 5 fuel handled a message: {other:?}"),
    }
    // AGENT_INFO tells why; the listing keeps its rows as older readers
    // know them.
    let info = c.info("starved").unwrap();
    assert!(
        info.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("fuel_exhausted: ")),
        "{info:?}"
    );
    assert_eq!(info.failures, 1);
    assert!(c.agents().unwrap().iter().all(|a| a.last_error.is_none()));
    // A neighbour deployed without settings keeps the node's defaults.
    c.deploy("fed", &prebuilt("counter")).unwrap();
    assert_eq!(count(&mut c, "fed"), 1);
    // Reload with the defaults again: the same agent now runs.
    c.reload("starved", &prebuilt("counter")).unwrap();
    assert_eq!(count(&mut c, "starved"), 1);

    for (options, named) in [
        (DeployOptions::default().set("fuel", 1), "\"fuel\""),
        (
            DeployOptions::default().set("max_memory_bytes", 1_000),
            "max_memory_bytes",
        ),
        (DeployOptions::default().set("policy", "explode"), "explode"),
        (
            DeployOptions::default().set("max_time_us", "soon"),
            "max_time_us",
        ),
    ] {
        let (refused, message) = code(c.deploy_with("refused", &prebuilt("echo"), &options));
        assert_eq!(refused, ErrorCode::DeployFailed, "{message}");
        assert!(message.contains(named), "{options:?}: {message}");
        let (refused, message) = code(c.reload_with("fed", &prebuilt("echo"), &options));
        assert_eq!(refused, ErrorCode::DeployFailed, "{message}");
    }
    // Nothing refused was deployed, and the refused reload left "fed" as
    // it was.
    assert_eq!(code(c.info("refused")).0, ErrorCode::NotFound);
    assert_eq!(count(&mut c, "fed"), 2);

    // The CLI's --set.
    let counter = prebuilt_path("counter");
    let (ok, _, stderr) = quire(
        &node,
        Some(TOKEN),
        &["deploy", &counter, "--name", "cli-starved"],
    );
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = quire(
        &node,
        Some(TOKEN),
        &[
            "deploy",
            &counter,
            "--name",
            "cli-starved-2",
            "--set",
            "fuel_per_message=5",
            "--set",
            "policy=stop",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(code(c.call("cli-starved-2", b"", T)).0, ErrorCode::Rejected);
    assert_eq!(count(&mut c, "cli-starved"), 1, "no --set: the defaults");
    let (ok, _, stderr) = quire(
        &node,
        Some(TOKEN),
        &[
            "deploy",
            &counter,
            "--name",
            "x",
            "--set",
            "fuel_per_message",
        ],
    );
    assert!(!ok && stderr.contains("KEY=VALUE"), "{stderr}");
}

#[test]
fn patterns_are_listed_with_their_module_and_gone_once_undeployed() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"), "batched");
    let mut c = node.client();
    assert!(c.patterns().unwrap().is_empty());
    let hash = c.deploy("sensor-*", &prebuilt("counter")).unwrap();
    c.deploy("probe-*", &prebuilt("echo")).unwrap();
    let patterns = c.patterns().unwrap();
    let names: Vec<&str> = patterns.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["probe-*", "sensor-*"]);
    assert!(hash.starts_with(&patterns[1].1), "{patterns:?} {hash}");
    // A name under the pattern makes an agent; the pattern stays listed.
    assert_eq!(count(&mut c, "sensor-7"), 1);
    // Patterns survive a restart (they are journaled like agents).
    drop(c);
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0));
    let node = NodeProcess::start(&dir.path().join("data"), "batched");
    let mut c = node.client();
    assert_eq!(c.patterns().unwrap(), patterns);
    c.undeploy("probe-*").unwrap();
    let left: Vec<String> = c.patterns().unwrap().into_iter().map(|p| p.0).collect();
    assert_eq!(left, ["sensor-*"]);
    let (ok, stdout, _) = quire(&node, None, &["patterns"]);
    assert!(
        ok && stdout.contains("sensor-*") && stdout.contains("1 pattern(s)"),
        "{stdout}"
    );
}
