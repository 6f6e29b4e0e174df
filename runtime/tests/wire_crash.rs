//! The crash test at the node's edge: a `quire node` process whose SDK
//! counters are called over the wire by several clients is killed with
//! SIGKILL at random moments and restarted, again and again. A reply is a
//! promise (output commit): after every restart each counter must be at
//! least at the highest count its replies acknowledged. Both persistent
//! modes; 20 cycles each here, `scripts/wire-crash-test.sh N` runs N.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{counter_wasm, decode_count, NodeProcess};
use quire_client::RemoteClient;

const COUNTERS: usize = 6;
const CLIENTS: usize = 3;

fn cycles() -> usize {
    std::env::var("QUIRE_WIRE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// xorshift64: a random kill time per cycle, from a seed printed for re-runs.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

/// Clients calling the counters until stopped (or the node dies); every
/// reply raises its counter's acknowledged count.
fn load(addr: &str, acked: &Arc<Vec<AtomicU64>>) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = (0..CLIENTS)
        .map(|t| {
            let (addr, acked, stop) = (addr.to_string(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let Ok(mut c) = RemoteClient::connect(&addr, None) else {
                    return 0;
                };
                let mut replies = 0;
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let k = i % COUNTERS;
                    i += 1;
                    match c.call(&format!("counter-{k}"), b"", Duration::from_secs(5)) {
                        Ok(reply) => {
                            acked[k].fetch_max(decode_count(&reply), Ordering::SeqCst);
                            replies += 1;
                        }
                        // The node died under us: what it answered stands.
                        Err(_) => break,
                    }
                }
                replies
            })
        })
        .collect();
    Load { stop, threads }
}

impl Load {
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().unwrap()).sum()
    }
}

fn crash_loop(durability: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..COUNTERS).map(|_| AtomicU64::new(0)).collect());

    let node = NodeProcess::start(&data, durability);
    let mut admin = node.client();
    let module = counter_wasm();
    for k in 0..COUNTERS {
        admin.deploy(&format!("counter-{k}"), &module).unwrap();
    }
    drop(admin);
    let mut node = Some(node);
    let (mut replies, mut lost, mut checked) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for cycle in 0..cycles() {
        let running = node.take().expect("a node runs");
        let load = load(&running.addr, &acked);
        std::thread::sleep(Duration::from_millis(50 + rng.below(300)));
        running.kill();
        replies += load.finish();

        let restarted = NodeProcess::start(&data, durability);
        let mut c = restarted.client();
        for (k, acked) in acked.iter().enumerate() {
            let now = decode_count(
                &c.call(&format!("counter-{k}"), b"", Duration::from_secs(10))
                    .unwrap_or_else(|e| panic!("cycle {cycle}: counter-{k}: {e}")),
            );
            let promised = acked.load(Ordering::SeqCst);
            // This call counted one more than what survived.
            let survived = now - 1;
            if survived < promised {
                lost += promised - survived;
                eprintln!(
                    "cycle {cycle} (seed {seed}): counter-{k} came back at {survived}, its replies had acknowledged {promised}"
                );
            }
            checked += 1;
            acked.fetch_max(now, Ordering::SeqCst);
        }
        node = Some(restarted);
    }
    eprintln!(
        "wire crash test ({durability}): {} cycles, {replies} replies acknowledged, {checked} counter checks, {lost} increments lost, {:.1} s (seed {seed})",
        cycles(),
        started.elapsed().as_secs_f64()
    );
    assert!(replies > 0, "no call was ever answered");
    assert_eq!(lost, 0, "acknowledged increments were lost (seed {seed})");
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_increment_batched() {
    crash_loop("batched");
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_increment_immediate() {
    crash_loop("immediate");
}
