//! Storage faults injected through the partition's backend: a full disk
//! and a failing fsync fail the commit, change nothing on disk, and the
//! same batch commits once the fault is gone, with nothing committed
//! before it lost.

use quire_storage::faults::{FaultSwitch, FaultyFile};
use quire_storage::{Mutation, Partition, WriteBatch};

fn put(key: &str, value: &str) -> Mutation {
    Mutation::PutState {
        agent: "counter".into(),
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec().into(),
    }
}

fn state_of(p: &Partition) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = p
        .recover()
        .unwrap()
        .state
        .into_iter()
        .map(|e| {
            (
                String::from_utf8(e.key).unwrap(),
                String::from_utf8(e.value.to_vec()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn fault_then_recovery(fail: impl Fn(&FaultSwitch, bool)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard-0.redb");
    let switch = FaultSwitch::default();
    let p = FaultyFile::partition(&path, switch.clone()).unwrap();
    p.commit(&[put("a", "1")].into_iter().collect(), true)
        .unwrap();

    fail(&switch, true);
    let batch: WriteBatch = [put("a", "2"), put("b", "1")].into_iter().collect();
    let err = p.commit(&batch, true).unwrap_err();
    assert!(err.to_string().contains("shard-0.redb"), "{err}");
    assert!(switch.injected() > 0);
    // Still failing: the retry fails too, and says so.
    assert!(p.commit(&batch, true).is_err());
    assert!(p.failure().is_some());

    fail(&switch, false);
    p.commit(&batch, true).unwrap();
    assert_eq!(p.failure(), None);
    assert_eq!(
        state_of(&p),
        vec![("a".into(), "2".into()), ("b".into(), "1".into())]
    );
    drop(p);
    // What the retried commit wrote is on disk for a plain reopen too.
    let reopened = Partition::open(&path).unwrap();
    assert_eq!(state_of(&reopened).len(), 2);
}

#[test]
fn a_full_disk_fails_the_commit_and_the_retry_lands_once_there_is_room() {
    fault_then_recovery(|s, on| s.fail_writes(on));
}

#[test]
fn a_failing_fsync_fails_the_commit_and_the_retry_lands_once_it_works() {
    fault_then_recovery(|s, on| s.fail_syncs(on));
}

#[test]
fn a_failed_commit_leaves_the_last_durable_state_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard-0.redb");
    let switch = FaultSwitch::default();
    let p = FaultyFile::partition(&path, switch.clone()).unwrap();
    p.commit(&[put("a", "1")].into_iter().collect(), true)
        .unwrap();
    switch.fail_syncs(true);
    let _ = p
        .commit(&[put("a", "2")].into_iter().collect(), true)
        .unwrap_err();
    drop(p);
    // A crash now (the node gone): the file holds the last durable commit.
    switch.fail_syncs(false);
    let reopened = Partition::open(&path).unwrap();
    assert_eq!(state_of(&reopened), vec![("a".into(), "1".into())]);
}
