//! Many agents in one request: `Client::register_many`,
//! `Client::deploy_wasm_many` (durable across a restart), and DEPLOY_MANY
//! over the wire to a `quire node` process, where one bad name fails alone.

mod common;

use std::time::Duration;

use quire_runtime::{Node, WasmOptions};
use quire_shards::{Agent, Context, Envelope, RegisterError};
use quire_storage::Durability;

struct Echo;
impl Agent for Echo {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        let _ = ctx.reply(msg.payload.clone());
    }
}

#[test]
fn register_many_answers_each_agent_in_order() {
    let node = Node::builder().shards(common::shards()).start().unwrap();
    let client = node.client();
    client.register_blocking("worker-7", || Echo).unwrap();
    let results =
        client.register_many_blocking((0..2000).map(|i| (format!("worker-{i}"), || Echo)));
    assert_eq!(results.len(), 2000);
    for (i, r) in results.iter().enumerate() {
        if i == 7 {
            assert!(
                matches!(r, Err(RegisterError::AlreadyRegistered(_))),
                "{r:?}"
            );
        } else {
            assert!(r.is_ok(), "worker-{i}: {r:?}");
        }
    }
    assert_eq!(client.agents_blocking().len(), 2000);
    let reply = client
        .call_blocking("worker-1999", &b"hi"[..], Duration::from_secs(5))
        .unwrap();
    assert_eq!(&reply.payload[..], b"hi");
    node.shutdown();
}

#[test]
fn deploy_wasm_many_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        Node::builder()
            .shards(common::shards())
            .durability(Durability::Batched)
            .data_dir(dir.path())
            .start()
            .unwrap()
    };
    let node = start();
    let names: Vec<String> = (0..300).map(|i| format!("svc-{i}")).collect();
    let (_, results) = node
        .client()
        .deploy_wasm_many_blocking(
            names.clone(),
            quire_shards::testing::wat_echo(),
            WasmOptions::default(),
        )
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    node.shutdown();

    let node = start();
    let client = node.client();
    assert_eq!(client.agents_blocking().len(), 300);
    let reply = client
        .call_blocking("svc-299", &b"back"[..], Duration::from_secs(5))
        .unwrap();
    assert_eq!(&reply.payload[..], b"back");
    // A module that does not compile fails the whole batch, naming why.
    let err = client
        .deploy_wasm_many_blocking(["x-1", "x-2"], &b"not wasm"[..], WasmOptions::default())
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    node.shutdown();
}

#[test]
fn deploy_many_over_the_wire_fails_only_the_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::NodeProcess::start(&dir.path().join("data"), "batched");
    let mut client = node.client();
    let echo = quire_shards::testing::wat_echo();
    client.deploy("taken", &echo).unwrap();
    let mut names: Vec<String> = (0..500).map(|i| format!("batch-{i}")).collect();
    names.push("taken".into());
    names.push("".into());
    let (hash, failed) = client.deploy_many(&names, &echo).unwrap();
    assert!(!hash.is_empty());
    let failed_names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(failed_names, ["taken", ""], "{failed:?}");
    assert!(failed[0].1.contains("already"), "{failed:?}");
    assert_eq!(client.agents().unwrap().len(), 501);
    let reply = client
        .call("batch-499", b"wire", Duration::from_secs(5))
        .unwrap();
    assert_eq!(&reply[..], b"wire");

    // The CLI: several names, one request.
    let file = dir.path().join("echo.wat");
    std::fs::write(&file, &echo).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quire"))
        .args(["deploy", "--node", &node.addr, "--token", common::TOKEN])
        .arg(&file)
        .args(["--name", "cli-1,cli-2,cli-3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("deployed 3 agents"), "{text}");
    assert_eq!(client.agents().unwrap().len(), 504);
    node.kill();
}
