//! A partition on its own: round trips, coalescing, undeploy, de-duplication
//! ring, damaged files, resharding.

use std::fs;

use quire_storage::reshard::reshard;
use quire_storage::{
    partition_path, AgentRecord, DedupWindow, DurableMessage, Mutation, NodeManifest, Partition,
    StorageError, WriteBatch,
};

fn msg(seq: u64, to: &str) -> DurableMessage {
    DurableMessage {
        seq,
        dedup: 1000 + seq,
        to: to.into(),
        priority: 2,
        payload: format!("m{seq}").into(),
    }
}

fn put(agent: &str, key: &str, value: &str) -> Mutation {
    Mutation::PutState {
        agent: agent.into(),
        key: key.as_bytes().to_vec(),
        value: value.to_string().into(),
    }
}

#[test]
fn what_is_committed_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard-0.redb");
    {
        let p = Partition::open(&path).unwrap();
        let batch: WriteBatch = [
            Mutation::PutAgent(AgentRecord::new("a", "counter", b"cfg".to_vec())),
            put("a", "n", "1"),
            put("a", "m", "2"),
            Mutation::DeleteState {
                agent: "a".into(),
                key: b"m".to_vec(),
            },
            Mutation::Enqueue(msg(1, "a")),
            Mutation::Enqueue(msg(2, "a")),
        ]
        .into_iter()
        .collect();
        let stats = p.commit(&batch, true).unwrap();
        assert_eq!(
            (stats.mutations, stats.messages, stats.coalesced),
            (6, 2, 0)
        );
    }
    let p = Partition::open(&path).unwrap();
    let r = p.recover().unwrap();
    assert_eq!(
        r.agents,
        vec![AgentRecord::new("a", "counter", b"cfg".to_vec())]
    );
    assert_eq!(r.state.len(), 1);
    assert_eq!(
        (r.state[0].key.as_slice(), r.state[0].value.as_ref()),
        (&b"n"[..], &b"1"[..])
    );
    assert_eq!(r.inbox, vec![msg(1, "a"), msg(2, "a")]);
    assert_eq!(r.next_seq(), 3);
}

#[test]
fn a_message_finished_in_its_own_batch_never_touches_the_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path().join("p.redb")).unwrap();
    // Accepted earlier, finished now: leaves the inbox.
    p.commit(
        &[Mutation::Enqueue(msg(1, "a"))].into_iter().collect(),
        true,
    )
    .unwrap();
    let mut window = DedupWindow::new(8);
    let batch: WriteBatch = [
        Mutation::Enqueue(msg(2, "a")),
        Mutation::Finish {
            seq: 1,
            dedup: 1001,
            slot: window.insert(1001),
        },
        Mutation::Finish {
            seq: 2,
            dedup: 1002,
            slot: window.insert(1002),
        },
        Mutation::Enqueue(msg(3, "a")),
    ]
    .into_iter()
    .collect();
    let stats = p.commit(&batch, true).unwrap();
    assert_eq!(stats.coalesced, 1);
    let r = p.recover().unwrap();
    assert_eq!(r.inbox, vec![msg(3, "a")]);
    let mut restored = DedupWindow::new(8);
    restored.restore(r.dedup.iter().copied(), r.dedup_next);
    assert!(restored.contains(1001) && restored.contains(1002) && !restored.contains(1003));
    assert_eq!(restored.next_slot(), window.next_slot());
}

#[test]
fn deleting_an_agent_removes_its_state_and_only_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path().join("p.redb")).unwrap();
    let batch: WriteBatch = [
        Mutation::PutAgent(AgentRecord::new("ab", "k", vec![])),
        Mutation::PutAgent(AgentRecord::new("a", "k", vec![])),
        put("a", "x", "1"),
        put("a", "y", "2"),
        put("ab", "x", "3"),
        Mutation::DeleteAgent("a".into()),
    ]
    .into_iter()
    .collect();
    p.commit(&batch, false).unwrap();
    let r = p.recover().unwrap();
    assert_eq!(r.agents.len(), 1);
    assert_eq!(r.agents[0].name, "ab");
    assert_eq!(r.state.len(), 1);
    assert_eq!(r.state[0].agent, "ab");
}

#[test]
fn garbage_is_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard-0.redb");
    fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let err = Partition::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Open { .. } | StorageError::Corrupted { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("shard-0.redb"), "{err}");
}

#[test]
fn a_truncated_partition_is_an_error_never_a_panic_or_silent_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard-1.redb");
    {
        let p = Partition::open(&path).unwrap();
        for i in 0..50u64 {
            let batch: WriteBatch = (0..100)
                .map(|k| put(&format!("agent-{i}"), &format!("k{k}"), &"v".repeat(200)))
                .collect();
            p.commit(&batch, true).unwrap();
        }
    }
    let len = fs::metadata(&path).unwrap().len();
    for cut in [len / 2, len / 8, 100] {
        let copy = dir.path().join(format!("cut-{cut}.redb"));
        fs::copy(&path, &copy).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(cut)
            .unwrap();
        match quire_storage::integrity::verify_partition(&copy) {
            Err(e) => assert!(e.to_string().contains(&format!("cut-{cut}.redb")), "{e}"),
            // redb may fall back to an older commit it still has whole; then
            // what it returns must be whole too, never a partial agent.
            Ok(r) => {
                assert_eq!(
                    r.state.len() % 100,
                    0,
                    "cut at {cut}: a batch came back in part"
                );
            }
        }
    }
}

#[test]
fn a_failed_commit_names_the_file_and_the_next_one_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path().join("p.redb")).unwrap();
    // A value over redb's limits fails the commit.
    let huge = Mutation::PutState {
        agent: "a".into(),
        key: vec![0; 8],
        value: vec![0u8; 4 << 30].into(),
    };
    let first = p.commit(&[huge].into_iter().collect(), true).unwrap_err();
    assert!(first.to_string().contains("p.redb"), "{first}");
    assert!(p.failure().is_some());
    p.commit(&WriteBatch::default(), true).unwrap();
    assert_eq!(p.failure(), None);
}

#[test]
fn manifest_refuses_another_shard_count() {
    let dir = tempfile::tempdir().unwrap();
    NodeManifest::open_or_create(dir.path(), 2, "n1").unwrap();
    let err = NodeManifest::open_or_create(dir.path(), 3, "n1").unwrap_err();
    assert!(matches!(
        err,
        StorageError::ShardCountMismatch {
            found: 2,
            expected: 3,
            ..
        }
    ));
    let text = err.to_string();
    assert!(
        text.contains("quire storage reshard") && text.contains("--shards 3"),
        "{text}"
    );
    fs::write(
        dir.path().join("manifest.toml"),
        "format_version = 99\nnode_id = \"x\"\nshards = 2\n",
    )
    .unwrap();
    let err = NodeManifest::open_or_create(dir.path(), 2, "n1").unwrap_err();
    assert!(err.to_string().contains("format version 99"), "{err}");
}

#[test]
fn reshard_moves_every_agent_to_its_new_owner() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    NodeManifest::open_or_create(data, 2, "n1").unwrap();
    // Owner: the agent name's number modulo the shard count.
    let owner = |name: &str, shards: usize| name[1..].parse::<usize>().unwrap() % shards;
    for shard in 0..2 {
        let p = Partition::open(partition_path(data, shard)).unwrap();
        let mut batch = WriteBatch::default();
        for i in (0..12usize).filter(|i| i % 2 == shard) {
            let name = format!("a{i}");
            batch.push(Mutation::PutAgent(AgentRecord::new(&name, "k", vec![])));
            batch.push(put(&name, "n", &i.to_string()));
            batch.push(Mutation::Enqueue(DurableMessage {
                seq: i as u64 + 1,
                dedup: 500 + i as u64,
                to: name.clone(),
                priority: 2,
                payload: "p".into(),
            }));
        }
        batch.push(Mutation::Finish {
            seq: 99,
            dedup: 7000 + shard as u64,
            slot: 0,
        });
        p.commit(&batch, true).unwrap();
    }
    let report = reshard(data, 3, owner).unwrap();
    assert_eq!(
        (report.from, report.to, report.agents, report.messages),
        (2, 3, 12, 12)
    );
    assert_eq!(NodeManifest::read(data).unwrap().unwrap().shards, 3);
    assert!(report.backup.join("shard-0.redb").exists());
    for shard in 0..3 {
        let r = Partition::open(partition_path(data, shard))
            .unwrap()
            .recover()
            .unwrap();
        assert_eq!(r.agents.len(), 4, "shard {shard}");
        assert!(r.agents.iter().all(|a| owner(&a.name, 3) == shard));
        assert!(r.state.iter().all(|s| owner(&s.agent, 3) == shard));
        assert!(r.inbox.iter().all(|m| owner(&m.to, 3) == shard));
        assert_eq!(r.inbox.len(), 4);
        let ids: Vec<u64> = r.dedup.iter().map(|(_, id)| *id).collect();
        assert!(ids.contains(&7000) && ids.contains(&7001));
    }
    // The node now opens with 3 shards.
    NodeManifest::open_or_create(data, 3, "n1").unwrap();
}
