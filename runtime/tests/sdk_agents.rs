//! The Rust guest SDK's example agents (sdk/quire-agent/examples, built into
//! sdk/prebuilt by scripts/build-agents.sh) deployed on a node, end to end.

use std::time::Duration;

use quire_runtime::{Node, WasmOptions};

const ECHO: &[u8] = include_bytes!("../../sdk/prebuilt/echo.wasm");
const COUNTER: &[u8] = include_bytes!("../../sdk/prebuilt/counter.wasm");
const FORWARDER: &[u8] = include_bytes!("../../sdk/prebuilt/forwarder.wasm");
const AGGREGATOR: &[u8] = include_bytes!("../../sdk/prebuilt/aggregator.wasm");
const T: Duration = Duration::from_secs(5);

/// Two shards where the machine has two CPUs, one on a single core.
fn shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn echo_and_counter() {
    let node = Node::builder().shards(shards()).start().unwrap();
    let client = node.client();
    client
        .deploy_wasm_blocking("echo", ECHO, WasmOptions::default())
        .unwrap();
    client
        .deploy_wasm_blocking("counter", COUNTER, WasmOptions::default())
        .unwrap();
    let big = vec![7u8; 100_000];
    assert_eq!(
        client
            .call_blocking("echo", big.clone(), T)
            .unwrap()
            .payload,
        big
    );
    for n in 1..=5u64 {
        let r = client.call_blocking("counter", "tick", T).unwrap();
        assert_eq!(u64_at(&r.payload, 0), n);
    }
    node.shutdown();
}

#[test]
fn forwarder_sends_on_and_counts_what_comes_back() {
    let node = Node::builder().shards(shards()).start().unwrap();
    let client = node.client();
    client
        .deploy_wasm_blocking("fwd", FORWARDER, WasmOptions::default())
        .unwrap();
    client
        .deploy_wasm_blocking("tally", COUNTER, WasmOptions::default())
        .unwrap();
    assert_eq!(
        &client
            .call_blocking("fwd", "target:tally", T)
            .unwrap()
            .payload[..],
        b"ok"
    );
    for _ in 0..10 {
        assert_eq!(
            &client.call_blocking("fwd", "hello", T).unwrap().payload[..],
            b"forwarded"
        );
    }
    // The tally saw ten forwarded messages (and this call).
    let deadline = std::time::Instant::now() + T;
    loop {
        let n = u64_at(
            &client.call_blocking("tally", "read", T).unwrap().payload,
            0,
        );
        if n >= 11 || std::time::Instant::now() > deadline {
            assert!(n >= 11, "tally saw {n}");
            break;
        }
    }
    node.shutdown();
}

#[test]
fn aggregator_fans_in_from_many_senders() {
    let node = Node::builder().shards(shards()).start().unwrap();
    let client = node.client();
    client
        .deploy_wasm_blocking("agg", AGGREGATOR, WasmOptions::default())
        .unwrap();
    let senders: Vec<_> = (0..4u64)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                for i in 0..250u64 {
                    let v = t * 1000 + i;
                    // Calls, so that every value is known to be in before the read.
                    client
                        .call_blocking("agg", v.to_le_bytes().to_vec(), T)
                        .unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let r = client.call_blocking("agg", "get", T).unwrap();
    let expected: u64 = (0..4u64)
        .flat_map(|t| (0..250).map(move |i| t * 1000 + i))
        .sum();
    assert_eq!(
        (u64_at(&r.payload, 0), u64_at(&r.payload, 8)),
        (expected, 1000)
    );
    node.shutdown();
}
