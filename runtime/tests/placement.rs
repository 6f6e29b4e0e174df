//! Placement on the real machine: from a cpuset, from the inherited affinity
//! mask, and clear refusals.

use std::time::Duration;

use quire_runtime::placement::inherited_affinity;
use quire_runtime::{Node, StartError};
use quire_shards::{Agent, Context, Envelope};

/// Replies with the CPU its handler runs on.
struct WhereAmI;
impl Agent for WhereAmI {
    fn handle(&mut self, ctx: &mut Context<'_>, _msg: Envelope) {
        // SAFETY: sched_getcpu has no preconditions.
        let cpu = unsafe { libc::sched_getcpu() };
        let _ = ctx.reply(cpu.to_string());
    }
}

fn last_cpu() -> usize {
    *inherited_affinity().last().expect("some CPU")
}

#[test]
fn cpuset_pins_the_shard_to_that_cpu() {
    let cpu = last_cpu();
    let node = Node::builder().cpuset(&cpu.to_string()).start().unwrap();
    assert_eq!(node.placement().cpus(), vec![cpu]);
    let client = node.client();
    client.register_blocking("where", || WhereAmI).unwrap();
    let reply = client
        .call_blocking("where", "", Duration::from_secs(5))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&reply.payload), cpu.to_string());
    node.shutdown();
}

#[test]
fn inherited_affinity_mask_decides_the_cpus() {
    let cpu = last_cpu();
    // Narrow this thread's mask, as taskset or numactl would for a process.
    let plan = std::thread::spawn(move || {
        assert!(core_affinity::set_for_current(core_affinity::CoreId {
            id: cpu
        }));
        assert_eq!(inherited_affinity(), vec![cpu]);
        Node::builder().plan().unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(plan.cpus(), vec![cpu]);
    assert_eq!(plan.shards[0].cpu.cpu, cpu);
}

#[test]
fn bad_cpusets_are_refused_with_what_to_change() {
    let err = Node::builder().cpuset("4096").start().err().unwrap();
    assert!(matches!(err, StartError::Placement(_)), "{err}");
    assert!(err.to_string().contains("not online"), "{err}");
    let err = Node::builder().cpuset("zero-one").start().err().unwrap();
    assert!(err.to_string().contains("invalid --cpuset"), "{err}");
    let err = Node::builder().shards(4096).start().err().unwrap();
    assert!(err.to_string().contains("lower --shards"), "{err}");
}
