//! A durable node: deployments, agent state and durable messages survive a
//! restart in each durability mode; recovery redelivers what was accepted
//! and not finished; bad data directories stop the node with a clear error.

use std::path::Path;

use quire_runtime::builtin_kinds::{builtin_kinds, decode_count, record_key, COUNT_KEY};
use quire_runtime::{DurableError, Node, NodeBuilder, StartError};
use quire_shards::{owning_shard, Rejection, SendOptions};
use quire_storage::{
    partition_path, Durability, DurableMessage, Mutation, NodeManifest, Partition, WriteBatch,
};

fn shards() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(2)
}

fn durable_node(dir: &Path, mode: Durability) -> NodeBuilder {
    Node::builder()
        .shards(shards())
        .durability(mode)
        .data_dir(dir)
        .agent_kinds(builtin_kinds())
}

/// Every counter's state, read straight from the partitions.
fn counters(dir: &Path) -> Vec<(String, u64, usize)> {
    let n = NodeManifest::read(dir).unwrap().unwrap().shards;
    let mut out = Vec::new();
    for shard in 0..n {
        let rec = quire_storage::integrity::verify_partition(partition_path(dir, shard)).unwrap();
        for a in rec.agents {
            let count = rec
                .state
                .iter()
                .find(|s| s.agent == a.name && s.key == COUNT_KEY)
                .map_or(0, |s| decode_count(&s.value));
            let records = rec
                .state
                .iter()
                .filter(|s| s.agent == a.name && s.key.starts_with(b"m/"))
                .count();
            out.push((a.name, count, records));
        }
    }
    out.sort();
    out
}

fn durable_round_trip(mode: Durability, messages: u64) {
    let dir = tempfile::tempdir().unwrap();
    let node = durable_node(dir.path(), mode).start().unwrap();
    let client = node.client();
    for c in 0..4 {
        client
            .deploy_blocking(format!("c{c}"), "counter", Vec::new())
            .unwrap();
    }
    for i in 0..messages {
        let receipt = client
            .send_durable_blocking(format!("c{}", i % 4), i.to_string())
            .unwrap();
        assert!(!receipt.duplicate);
    }
    let report = node.shutdown();
    assert!(report.drained, "{report}");
    let totals = report.totals();
    assert_eq!(totals.durable_accepted, messages);
    assert!(totals.commits > 0 && totals.commit_failures == 0);

    let counted = counters(dir.path());
    assert_eq!(counted.len(), 4);
    for (name, count, records) in &counted {
        assert_eq!(*count, messages / 4, "{name}");
        assert_eq!(*records as u64, messages / 4, "{name}");
    }

    // After a restart the agents are back with their state and keep counting.
    let node = durable_node(dir.path(), mode).start().unwrap();
    let recovered: usize = node.recovery().iter().map(|r| r.agents).sum();
    assert_eq!(recovered, 4);
    let reply = node
        .client()
        .call_blocking("c0", "", std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(decode_count(&reply.payload), messages / 4 + 1);
    node.shutdown();
}

#[test]
fn batched_mode_keeps_every_acknowledged_message_and_state() {
    durable_round_trip(Durability::Batched, 400);
}

#[test]
fn immediate_mode_keeps_every_acknowledged_message_and_state() {
    durable_round_trip(Durability::Immediate, 200);
}

#[test]
fn none_mode_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = durable_node(&data, Durability::None).start().unwrap();
    let client = node.client();
    client.deploy_blocking("c0", "counter", Vec::new()).unwrap();
    let receipt = client.send_durable_blocking("c0", "x").unwrap();
    assert!(!receipt.duplicate);
    let totals = node.shutdown().totals();
    assert_eq!((totals.handled, totals.commits), (1, 0));
    assert!(!data.exists());
}

#[test]
fn a_retry_with_the_same_id_is_acknowledged_but_not_handled_again_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = durable_node(dir.path(), Durability::Batched)
        .start()
        .unwrap();
    let client = node.client();
    client.deploy_blocking("c0", "counter", Vec::new()).unwrap();
    let send = |client: &quire_runtime::Client, dedup| {
        futures_lite::future::block_on(client.send_durable_with(
            "c0",
            "once",
            SendOptions::default(),
            dedup,
        ))
        .unwrap()
    };
    assert!(!send(&client, 42).duplicate);
    assert!(send(&client, 42).duplicate);
    node.shutdown();
    let node = durable_node(dir.path(), Durability::Batched)
        .start()
        .unwrap();
    assert!(send(&node.client(), 42).duplicate);
    assert!(!send(&node.client(), 43).duplicate);
    node.shutdown();
    assert_eq!(counters(dir.path()), vec![("c0".to_string(), 2, 1)]);
}

#[test]
fn recovery_redelivers_accepted_messages_that_were_not_finished() {
    let dir = tempfile::tempdir().unwrap();
    let n = shards();
    // What a node killed right after acknowledging leaves behind: the agent
    // and three messages in its shard's inbox.
    NodeManifest::open_or_create(dir.path(), n, "test").unwrap();
    let owner = owning_shard("c7", n) as usize;
    for shard in 0..n {
        let part = Partition::open(partition_path(dir.path(), shard)).unwrap();
        if shard != owner {
            continue;
        }
        let mut batch = WriteBatch::default();
        batch.push(Mutation::PutAgent(quire_shards::AgentRecord::new(
            "c7",
            "counter",
            Vec::new(),
        )));
        for seq in 1..=3u64 {
            batch.push(Mutation::Enqueue(DurableMessage {
                seq,
                dedup: 900 + seq,
                to: "c7".into(),
                priority: 2,
                payload: format!("r{seq}").into(),
            }));
        }
        part.commit(&batch, true).unwrap();
    }
    let node = durable_node(dir.path(), Durability::Batched)
        .start()
        .unwrap();
    let redelivered: usize = node.recovery().iter().map(|r| r.redelivered).sum();
    assert_eq!(redelivered, 3);
    // A sender retrying one of them gets a duplicate, not a second delivery.
    let again = futures_lite::future::block_on(node.client().send_durable_with(
        "c7",
        "r1",
        SendOptions::default(),
        901,
    ))
    .unwrap();
    assert!(again.duplicate);
    let report = node.shutdown();
    assert_eq!(report.totals().durable_redelivered, 3);
    assert_eq!(counters(dir.path()), vec![("c7".to_string(), 3, 3)]);
    let rec =
        quire_storage::integrity::verify_partition(partition_path(dir.path(), owner)).unwrap();
    assert!(rec.inbox.is_empty());
    assert!(rec.state.iter().any(|s| s.key == record_key(b"r3")));
}

#[test]
fn undeploy_removes_the_agent_and_its_state_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let node = durable_node(dir.path(), Durability::Batched)
        .start()
        .unwrap();
    let client = node.client();
    client
        .deploy_blocking("gone", "counter", Vec::new())
        .unwrap();
    client.send_durable_blocking("gone", "x").unwrap();
    futures_lite::future::block_on(client.undeploy("gone")).unwrap();
    node.shutdown();
    assert!(counters(dir.path()).is_empty());
    let node = durable_node(dir.path(), Durability::Batched)
        .start()
        .unwrap();
    let err = node
        .client()
        .send_durable_blocking("gone", "x")
        .unwrap_err();
    assert_eq!(err, DurableError::Rejected(Rejection::NoSuchAgent));
    node.shutdown();
}

#[test]
fn another_shard_count_is_refused_with_the_reshard_command() {
    let dir = tempfile::tempdir().unwrap();
    NodeManifest::open_or_create(dir.path(), shards() + 1, "other").unwrap();
    let err = durable_node(dir.path(), Durability::Batched)
        .start()
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(matches!(err, StartError::Storage(_)), "{text}");
    assert!(text.contains("quire storage reshard"), "{text}");
}

#[test]
fn an_unknown_agent_kind_at_recovery_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let n = shards();
    quire_storage::integrity::open_data_dir(dir.path(), n, "t").unwrap();
    let part = Partition::open(partition_path(dir.path(), owning_shard("w", n) as usize)).unwrap();
    part.commit(
        &[Mutation::PutAgent(quire_shards::AgentRecord::new(
            "w",
            "python",
            vec![1, 2],
        ))]
        .into_iter()
        .collect(),
        true,
    )
    .unwrap();
    drop(part);
    let err = durable_node(dir.path(), Durability::Batched)
        .start()
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(matches!(err, StartError::UnknownAgentKind { .. }), "{text}");
    assert!(
        text.contains("\"python\"") && text.contains("shard-"),
        "{text}"
    );
}

#[test]
fn a_corrupted_partition_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    quire_storage::integrity::open_data_dir(dir.path(), shards(), "t").unwrap();
    std::fs::write(
        partition_path(dir.path(), 0),
        b"this is not a redb file at all",
    )
    .unwrap();
    let err = durable_node(dir.path(), Durability::Batched)
        .start()
        .err()
        .unwrap();
    assert!(err.to_string().contains("shard-0.redb"), "{err}");
}
