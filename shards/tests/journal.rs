//! The write journal of a single shard, driven by hand: durable messages,
//! agent state, deployments, redelivery and de-duplication.

use bytes::Bytes;
use quire_shards::*;
use quire_storage::{Mutation, Partition};

/// Adds each message's number to its state key "sum".
struct Summer;

impl Agent for Summer {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        let n: u64 = std::str::from_utf8(&msg.payload).unwrap().parse().unwrap();
        let sum = ctx.state(b"sum").map_or(0, |v| {
            std::str::from_utf8(&v).unwrap().parse::<u64>().unwrap()
        });
        ctx.put_state(b"sum".to_vec(), Bytes::from((sum + n).to_string()));
    }
}

fn journaling_shard() -> ShardCore {
    ShardCore::new(ShardConfig {
        journal: true,
        dedup_window: 4,
        mailbox_capacity: 2,
        ..ShardConfig::new(0, 1)
    })
}

fn kinds(batch: &quire_storage::WriteBatch) -> Vec<&'static str> {
    batch
        .mutations()
        .iter()
        .map(|m| match m {
            Mutation::PutAgent(_) => "put_agent",
            Mutation::DeleteAgent(_) => "delete_agent",
            Mutation::PutState { .. } => "put_state",
            Mutation::DeleteState { .. } => "delete_state",
            Mutation::Enqueue(_) => "enqueue",
            Mutation::Finish { .. } => "finish",
        })
        .collect()
}

fn deploy_summer(shard: &mut ShardCore, name: &str) {
    shard
        .deploy(
            AgentRecord::new(name, "summer", Vec::new()),
            Box::new(Summer),
        )
        .unwrap();
}

#[test]
fn a_durable_message_is_journaled_then_finished_with_the_state_it_wrote() {
    let mut shard = journaling_shard();
    deploy_summer(&mut shard, "s");
    let admitted = shard
        .admit_durable("s".into(), "5".into(), SendOptions::default(), 77)
        .unwrap();
    assert!(matches!(admitted, DurableAdmission::Accepted(_)));
    let ack_at = shard.journal_position();
    assert_eq!(shard.pending_writes(), (2, 1));
    shard.run(usize::MAX);
    let (batch, end) = shard.take_writes(usize::MAX);
    assert_eq!(
        kinds(&batch),
        ["put_agent", "enqueue", "put_state", "finish"]
    );
    assert!(end >= ack_at);
    assert_eq!(shard.durable_inflight(), 0);
    let stats = shard.stats();
    assert_eq!((stats.durable_accepted, stats.handled), (1, 1));
}

#[test]
fn a_retry_is_a_duplicate_while_queued_and_after_it_finished() {
    let mut shard = journaling_shard();
    deploy_summer(&mut shard, "s");
    let opts = SendOptions::default();
    shard
        .admit_durable("s".into(), "1".into(), opts, 1)
        .unwrap();
    assert_eq!(
        shard.admit_durable("s".into(), "1".into(), opts, 1),
        Ok(DurableAdmission::Duplicate)
    );
    shard.run(usize::MAX);
    assert_eq!(
        shard.admit_durable("s".into(), "1".into(), opts, 1),
        Ok(DurableAdmission::Duplicate)
    );
    shard.run(usize::MAX);
    assert_eq!(shard.stats().handled, 1);
    assert_eq!(shard.stats().durable_duplicates, 2);
    // The window holds 4 ids: after 4 more, id 1 is forgotten.
    for id in 2..6 {
        shard
            .admit_durable("s".into(), "1".into(), opts, id)
            .unwrap();
        shard.run(usize::MAX);
    }
    assert!(matches!(
        shard.admit_durable("s".into(), "1".into(), opts, 1),
        Ok(DurableAdmission::Accepted(_))
    ));
}

#[test]
fn a_full_mailbox_refuses_a_durable_message_before_anything_is_journaled() {
    let mut shard = journaling_shard();
    deploy_summer(&mut shard, "s");
    let opts = SendOptions::default();
    shard
        .admit_durable("s".into(), "1".into(), opts, 1)
        .unwrap();
    shard
        .admit_durable("s".into(), "1".into(), opts, 2)
        .unwrap();
    let before = shard.journal_position();
    assert_eq!(
        shard.admit_durable("s".into(), "1".into(), opts, 3),
        Err(Rejection::QueueFull)
    );
    assert_eq!(shard.journal_position(), before);
    assert_eq!(
        shard.admit_durable("nobody".into(), "1".into(), opts, 4),
        Err(Rejection::NoSuchAgent)
    );
}

#[test]
fn take_writes_stops_at_the_message_limit() {
    let mut shard = journaling_shard();
    deploy_summer(&mut shard, "s");
    let opts = SendOptions::default();
    shard
        .admit_durable("s".into(), "1".into(), opts, 1)
        .unwrap();
    shard
        .admit_durable("s".into(), "2".into(), opts, 2)
        .unwrap();
    let (first, end1) = shard.take_writes(1);
    assert_eq!(kinds(&first), ["put_agent", "enqueue"]);
    let (second, end2) = shard.take_writes(1);
    assert_eq!(kinds(&second), ["enqueue"]);
    assert_eq!((end1, end2), (2, 3));
    assert_eq!(shard.take_writes(1).0.len(), 0);
}

#[test]
fn only_deployed_agents_journal_their_state_and_undeploy_removes_it() {
    let mut shard = journaling_shard();
    shard.register("plain".into(), Box::new(Summer)).unwrap();
    shard
        .admit_client("plain".into(), "3".into(), SendOptions::default())
        .unwrap();
    shard.run(usize::MAX);
    assert_eq!(shard.take_writes(usize::MAX).0.len(), 0);
    deploy_summer(&mut shard, "kept");
    shard.unregister(&"kept".into()).unwrap();
    assert_eq!(
        kinds(&shard.take_writes(usize::MAX).0),
        ["put_agent", "delete_agent"]
    );
}

#[test]
fn without_a_journal_nothing_is_recorded() {
    let mut shard = ShardCore::new(ShardConfig::new(0, 1));
    shard
        .deploy(AgentRecord::new("s", "summer", vec![]), Box::new(Summer))
        .unwrap();
    shard
        .admit_durable("s".into(), "1".into(), SendOptions::default(), 1)
        .unwrap();
    shard.run(usize::MAX);
    assert_eq!(shard.journal_position(), 0);
    assert_eq!(shard.take_writes(usize::MAX).0.len(), 0);
}

#[test]
fn a_partition_brings_a_shard_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let part = Partition::open(dir.path().join("shard-0.redb")).unwrap();
    let mut shard = journaling_shard();
    deploy_summer(&mut shard, "s");
    let opts = SendOptions::default();
    // 1 and 2 are handled and committed; 3 is committed but not handled.
    shard
        .admit_durable("s".into(), "1".into(), opts, 1)
        .unwrap();
    shard
        .admit_durable("s".into(), "2".into(), opts, 2)
        .unwrap();
    shard.run(usize::MAX);
    shard
        .admit_durable("s".into(), "3".into(), opts, 3)
        .unwrap();
    part.commit(&shard.take_writes(usize::MAX).0, true).unwrap();
    // 4 is accepted, never committed: its sender was never acknowledged.
    shard
        .admit_durable("s".into(), "4".into(), opts, 4)
        .unwrap();
    drop(shard);

    let rec = part.recover().unwrap();
    let mut back = journaling_shard();
    for a in &rec.agents {
        back.restore_agent(a.name.as_str().into(), Box::new(Summer))
            .unwrap();
    }
    for s in rec.state.clone() {
        assert!(back.restore_state(&s.agent.as_str().into(), s.key, s.value));
    }
    back.restore_dedup(rec.dedup.iter().copied(), rec.dedup_next);
    for m in rec.inbox.clone() {
        back.redeliver(m).unwrap();
    }
    assert_eq!(rec.inbox.len(), 1);
    // A retry of 2 (handled and committed) is a duplicate; 3 is queued.
    assert_eq!(
        back.admit_durable("s".into(), "2".into(), opts, 2),
        Ok(DurableAdmission::Duplicate)
    );
    assert_eq!(
        back.admit_durable("s".into(), "3".into(), opts, 3),
        Ok(DurableAdmission::Duplicate)
    );
    back.run(usize::MAX);
    part.commit(&back.take_writes(usize::MAX).0, true).unwrap();
    let rec = part.recover().unwrap();
    assert!(rec.inbox.is_empty());
    assert_eq!(rec.state[0].value.as_ref(), b"6");
}
