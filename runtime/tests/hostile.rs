//! Hostile agents deployed over the wire to a real `quire node` on its
//! default limits, one attack each: the caller gets the right reason, a good
//! agent on the attacker's shard keeps answering, the node's memory stays
//! within the agent's limits, and undeploy gives everything back.

mod common;

use std::time::{Duration, Instant};

use common::NodeProcess;
use quire_runtime::net::{ClientError, RemoteClient};

/// Host functions and exports every attacker shares; 256 pages (16 MiB,
/// the default limit) of memory, payloads written at 1024.
const PRELUDE: &str = r#"
  (import "quire" "reply" (func $reply (param i32 i32) (result i32)))
  (import "quire" "send" (func $send (param i32 i32 i32 i32) (result i64)))
  (import "quire" "call" (func $call (param i32 i32 i32 i32 i32) (result i64)))
  (import "quire" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "quire" "state_put" (func $state_put (param i32 i32 i32 i32) (result i32)))
  (import "quire" "log" (func $log (param i32 i32 i32)))
  (import "quire" "self_id" (func $self_id (param i32 i32) (result i32)))
  (memory (export "memory") 256)
  (func (export "quire_abi_version") (result i32) i32.const 1)
  (func (export "quire_alloc") (param i32) (result i32) i32.const 1024)
"#;

fn module(body: &str) -> Vec<u8> {
    wasmer::wat2wasm(format!("(module {PRELUDE} {body})").as_bytes())
        .expect("attack WAT parses")
        .into_owned()
}

/// Replies to every call with its payload.
fn echo() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (drop (call $reply (local.get 3) (local.get 4))) i32.const 0)"#,
    )
}

/// Sends itself a message, then fills 16 MB over and over: fuel barely
/// moves (a few units a fill), only the clock can stop it.
fn freezer() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (local $len i32)
             (local.set $len (call $self_id (i32.const 0) (i32.const 512)))
             (drop (call $send (i32.const 0) (local.get $len) (i32.const 0) (i32.const 0)))
             (loop $again
               (memory.fill (i32.const 4096) (i32.const 7) (i32.const 16000000))
               (br $again))
             i32.const 0)"#,
    )
}

/// A table of ten million entries (80 MB).
fn table_bomb() -> Vec<u8> {
    module(
        r#"(table 10000000 funcref)
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) i32.const 0)"#,
    )
}

/// Grows its table by 400 million entries and replies with what
/// `table.grow` returned.
fn table_grower() -> Vec<u8> {
    module(
        r#"(table 1 funcref)
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (i32.store (i32.const 0) (table.grow (ref.null func) (i32.const 400000000)))
             (drop (call $reply (i32.const 0) (i32.const 4)))
             i32.const 0)"#,
    )
}

/// Never replies: calls to it wait for their timeout.
fn silent() -> Vec<u8> {
    module(r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) i32.const 0)"#)
}

/// On a call, makes 5 000 calls with a ten-minute timeout to agents
/// "silent-0" to "silent-7" in turn (which never reply), and replies with
/// how many of them were taken (u32).
fn call_hog() -> Vec<u8> {
    module(
        r#"(data (i32.const 0) "silent-0")
           (func (export "quire_handle") (param $ev i32) (param i64 i32 i32 i32) (result i32)
             (local $i i32) (local $ok i32)
             (if (i32.ne (local.get $ev) (i32.const 1)) (then (return (i32.const 0))))
             (loop $again
               (i32.store8 (i32.const 7) (i32.add (i32.const 48) (i32.rem_u (local.get $i) (i32.const 8))))
               (if (i64.gt_s (call $call (i32.const 0) (i32.const 8) (i32.const 0) (i32.const 0) (i32.const 600000)) (i64.const 0))
                 (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $again (i32.lt_u (local.get $i) (i32.const 5000))))
             (i32.store (i32.const 16) (local.get $ok))
             (drop (call $reply (i32.const 16) (i32.const 4)))
             i32.const 0)"#,
    )
}

/// Each call stores 1 MiB under a new key (a counter at key "n").
fn state_hog() -> Vec<u8> {
    module(
        r#"(data (i32.const 0) "n")
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (i32.store (i32.const 8) (i32.const 0))
             (drop (call $state_get (i32.const 0) (i32.const 1) (i32.const 8) (i32.const 4)))
             (i32.store (i32.const 8) (i32.add (i32.load (i32.const 8)) (i32.const 1)))
             (drop (call $state_put (i32.const 0) (i32.const 1) (i32.const 8) (i32.const 4)))
             (drop (call $state_put (i32.const 8) (i32.const 4) (i32.const 65536) (i32.const 1048576)))
             (drop (call $reply (i32.const 8) (i32.const 4)))
             i32.const 0)"#,
    )
}

/// Stores under a 2 MiB key.
fn long_key() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (drop (call $state_put (i32.const 65536) (i32.const 2097152) (i32.const 0) (i32.const 4)))
             (drop (call $reply (i32.const 0) (i32.const 0)))
             i32.const 0)"#,
    )
}

/// On "w": writes key "k", then traps. On anything else: replies with the
/// length state_get finds for "k" (negative: not found).
fn write_then_trap() -> Vec<u8> {
    module(
        r#"(data (i32.const 0) "k")
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 119))
               (then
                 (drop (call $state_put (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 1)))
                 unreachable))
             (i32.store (i32.const 8) (call $state_get (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 4)))
             (drop (call $reply (i32.const 8) (i32.const 4)))
             i32.const 0)"#,
    )
}

/// Sends itself 100 messages of 1 MiB each; replies with how many were
/// taken.
fn mailbox_bomb() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param $ev i32) (param i64 i32 i32 i32) (result i32)
             (local $len i32) (local $i i32) (local $ok i32)
             (if (i32.ne (local.get $ev) (i32.const 1)) (then (return (i32.const 0))))
             (local.set $len (call $self_id (i32.const 0) (i32.const 512)))
             (loop $again
               (if (i64.gt_s (call $send (i32.const 0) (local.get $len) (i32.const 65536) (i32.const 1048576)) (i64.const 0))
                 (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $again (i32.lt_u (local.get $i) (i32.const 100))))
             (i32.store (i32.const 16) (local.get $ok))
             (drop (call $reply (i32.const 16) (i32.const 4)))
             i32.const 0)"#,
    )
}

/// Logs 100 000 lines of 4 KiB from one message.
fn log_flood() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (local $i i32)
             (memory.fill (i32.const 65536) (i32.const 65) (i32.const 4096))
             (loop $again
               (call $log (i32.const 1) (i32.const 65536) (i32.const 4096))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $again (i32.lt_u (local.get $i) (i32.const 100000))))
             (drop (call $reply (i32.const 0) (i32.const 0)))
             i32.const 0)"#,
    )
}

/// Traps with its memory at its full 16 MiB: a trap, not a memory limit.
fn plain_trap() -> Vec<u8> {
    module(r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) unreachable)"#)
}

/// A start function.
fn starter() -> Vec<u8> {
    module(
        r#"(func $init)
           (start $init)
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) i32.const 0)"#,
    )
}

fn reason(r: Result<bytes::Bytes, ClientError>) -> String {
    match r {
        Err(ClientError::Node {
            detail: Some(d), ..
        }) => d,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn u32_of(reply: &[u8]) -> u32 {
    u32::from_le_bytes(reply[..4].try_into().expect("a u32 reply"))
}

fn i32_of(reply: &[u8]) -> i32 {
    i32::from_le_bytes(reply[..4].try_into().expect("an i32 reply"))
}

const CALL: Duration = Duration::from_secs(10);

/// A node with `attacker` deployed, and a good echo agent on the same shard.
struct Arena {
    node: NodeProcess,
    client: RemoteClient,
    good: String,
    _dir: tempfile::TempDir,
}

impl Arena {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeProcess::start(&dir.path().join("data"), "none");
        let client = node.client();
        Self {
            node,
            client,
            good: String::new(),
            _dir: dir,
        }
    }

    fn shard_of(&mut self, name: &str) -> u64 {
        let rows = self.client.agents().unwrap();
        rows.iter()
            .find(|r| r.name == name)
            .expect("deployed")
            .shard
    }

    /// Deploys `module` as `name` and a good agent on its shard.
    fn deploy_with_neighbour(&mut self, name: &str, module: &[u8]) {
        self.client.deploy(name, module).unwrap();
        let shard = self.shard_of(name);
        for i in 0.. {
            let good = format!("good-{i}");
            self.client.deploy(&good, &echo()).unwrap();
            if self.shard_of(&good) == shard {
                self.good = good;
                return;
            }
            self.client.undeploy(&good).unwrap();
        }
    }

    fn good_answers(&mut self) {
        let good = self.good.clone();
        let reply = self.client.call(&good, b"still here", CALL).unwrap();
        assert_eq!(&reply[..], b"still here", "the good neighbour answers");
    }

    /// The node's resident memory, from /proc.
    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.node.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.node.get("/metrics");
        body.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

#[test]
fn a_freezing_handler_is_stopped_and_the_shard_serves_its_commands() {
    let mut a = Arena::new();
    a.deploy_with_neighbour("freezer", &freezer());
    let attacked = Instant::now();
    // The first handler runs until the clock stops it.
    assert_eq!(reason(a.client.call("freezer", b"x", CALL)), "time_limit");
    let stopped = attacked.elapsed();
    // Its self-sent messages keep coming; commands and the neighbour are
    // served between them.
    let rows = a.client.agents().unwrap();
    let served = attacked.elapsed();
    let good_asked = Instant::now();
    a.good_answers();
    let good_served = good_asked.elapsed();
    assert!(rows.iter().any(|r| r.name == "freezer"));
    a.good_answers();
    // Five failures in the window quarantine it: the chain ends.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = a.client.agents().unwrap();
        let row = rows.iter().find(|r| r.name == "freezer").unwrap();
        if row.state == "quarantined" {
            break;
        }
        assert!(Instant::now() < deadline, "never quarantined: {row:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(a.metric("quire_wasm_preemptions_total") >= 1.0);
    a.client.undeploy("freezer").unwrap();
    a.good_answers();
    eprintln!(
        "freezer: first handler stopped after {} ms; a command answered {} ms after the attack began; the neighbour then answered in {} ms",
        stopped.as_millis(),
        served.as_millis(),
        good_served.as_millis()
    );
}

#[test]
fn tables_are_held_to_the_memory_limit() {
    let mut a = Arena::new();
    let before = a.rss_bytes();
    let err = a.client.deploy("tables", &table_bomb()).unwrap_err();
    assert!(
        err.to_string().contains("table of 10000000 entries"),
        "the deploy names the table: {err}"
    );
    a.deploy_with_neighbour("grower", &table_grower());
    let grown = a.client.call("grower", b"x", CALL).unwrap();
    assert_eq!(
        i32_of(&grown),
        -1,
        "table.grow past the limit fails in the guest"
    );
    a.good_answers();
    let grown_by = a.rss_bytes().saturating_sub(before);
    assert!(
        grown_by < 64 << 20,
        "the node grew by {grown_by} bytes for agents limited to 16 MiB"
    );
    a.client.undeploy("grower").unwrap();
}

#[test]
fn one_agent_cannot_take_the_shards_pending_calls() {
    let mut a = Arena::new();
    for i in 0..8 {
        a.client.deploy(&format!("silent-{i}"), &silent()).unwrap();
    }
    a.deploy_with_neighbour("hog", &call_hog());
    let taken = u32_of(&a.client.call("hog", b"x", CALL).unwrap());
    assert_eq!(taken, 4096, "its calls beyond its own bound are refused");
    a.good_answers();
    let waiting = a.metric("quire_pending_calls");
    assert!(waiting >= 4096.0, "{waiting} calls waiting");
    a.client.undeploy("hog").unwrap();
    let waiting = a.metric("quire_pending_calls");
    assert!(
        waiting < 16.0,
        "undeploy freed its calls: {waiting} still waiting"
    );
}

#[test]
fn state_has_a_quota_and_keys_a_length_limit() {
    let mut a = Arena::new();
    a.deploy_with_neighbour("hoarder", &state_hog());
    let mut stored = 0;
    let refused = loop {
        match a.client.call("hoarder", b"x", CALL) {
            Ok(_) => stored += 1,
            Err(e) => break reason(Err(e)),
        }
        assert!(stored < 100, "a 64 MiB quota took {stored} MiB");
    };
    assert_eq!(refused, "state_quota");
    assert!((60..=64).contains(&stored), "{stored} MiB stored");
    a.good_answers();
    a.client.deploy("long-key", &long_key()).unwrap();
    assert_eq!(reason(a.client.call("long-key", b"x", CALL)), "state_quota");
}

#[test]
fn a_failed_message_leaves_no_state() {
    let mut a = Arena::new();
    a.client.deploy("fickle", &write_then_trap()).unwrap();
    assert_eq!(reason(a.client.call("fickle", b"w", CALL)), "agent_trapped");
    let found = i32_of(&a.client.call("fickle", b"r", CALL).unwrap());
    assert!(
        found < 0,
        "the trapped message's write was undone (state_get said {found})"
    );
}

#[test]
fn mailboxes_are_bounded_by_bytes() {
    let mut a = Arena::new();
    a.deploy_with_neighbour("bomb", &mailbox_bomb());
    let before = a.rss_bytes();
    let taken = u32_of(&a.client.call("bomb", b"x", CALL).unwrap());
    assert!(
        taken <= 16,
        "{taken} messages of 1 MiB queued (bound: 16 MiB)"
    );
    a.good_answers();
    let grown_by = a.rss_bytes().saturating_sub(before);
    assert!(grown_by < 128 << 20, "the node grew by {grown_by} bytes");
}

#[test]
fn one_message_cannot_flood_the_log() {
    let mut a = Arena::new();
    a.deploy_with_neighbour("chatty", &log_flood());
    let before = a.node.log().len();
    let r = a.client.call("chatty", b"x", CALL);
    assert!(r.is_ok() || reason(r) == "fuel_exhausted");
    a.good_answers();
    let written = a.node.log().len() - before;
    assert!(
        written < 512 << 10,
        "{written} bytes of log from one message"
    );
}

#[test]
fn errors_say_what_happened() {
    let mut a = Arena::new();
    a.client.deploy("trap", &plain_trap()).unwrap();
    assert_eq!(reason(a.client.call("trap", b"x", CALL)), "agent_trapped");
    let err = a.client.deploy("starter", &starter()).unwrap_err();
    assert!(err.to_string().contains("start function"), "{err}");
    let err = a.client.deploy("garbage", b"\x13\x37 garbage").unwrap_err();
    assert!(
        err.to_string().contains("neither a WebAssembly binary"),
        "{err}"
    );
}

/// Sends itself a message, then fills 16 MB twenty times (~30-60 ms, well
/// within every limit): a storm that never fails.
fn hog() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (local $len i32) (local $i i32)
             (local.set $len (call $self_id (i32.const 0) (i32.const 512)))
             (drop (call $send (i32.const 0) (local.get $len) (i32.const 0) (i32.const 0)))
             (loop $again
               (memory.fill (i32.const 4096) (i32.const 7) (i32.const 16000000))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $again (i32.lt_u (local.get $i) (i32.const 20))))
             i32.const 0)"#,
    )
}

#[test]
fn an_agent_within_its_limits_that_hogs_its_shard_is_throttled_then_quarantined() {
    let mut a = Arena::new();
    a.deploy_with_neighbour("hog", &hog());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_throttled = false;
    loop {
        // A throttled agent's own storm ends (its self-sent message is
        // refused); its client starts it again and again.
        let _ = a.client.send("hog", b"go");
        let rows = a.client.agents().unwrap();
        let row = rows.iter().find(|r| r.name == "hog").unwrap().clone();
        seen_throttled |= row.state == "throttled";
        if row.state == "quarantined" {
            assert!(row.busy_ns > 0, "its time shows: {row:?}");
            break;
        }
        assert!(Instant::now() < deadline, "never quarantined: {row:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(a.metric("quire_wasm_throttles_total") >= 1.0);
    assert!(seen_throttled || a.metric("quire_wasm_throttles_total") >= 5.0);
    a.good_answers();
}

/// A module whose one function nests `depth` blocks: Cranelift's time grows
/// with the square of the depth (10 000: ~4 s; 50 000: over a minute here).
fn nested_blocks(depth: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn section(id: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(payload.len(), out);
        out.extend_from_slice(payload);
    }
    let mut body = vec![0x00];
    for _ in 0..depth {
        body.extend_from_slice(&[0x02, 0x40]);
    }
    body.extend(std::iter::repeat_n(0x0b, depth + 1));
    let mut code = Vec::new();
    leb(1, &mut code);
    leb(body.len(), &mut code);
    code.extend_from_slice(&body);
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[0x01, 0x60, 0x00, 0x00], &mut m);
    section(3, &[0x01, 0x00], &mut m);
    section(10, &code, &mut m);
    m
}

#[test]
fn a_module_that_compiles_too_long_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start_with_env(
        &dir.path().join("data"),
        "none",
        &[("QUIRE_WASM_COMPILE_TIMEOUT_MS", "1500")],
    );
    let mut client = node.client();
    let started = Instant::now();
    let err = client.deploy("nested", &nested_blocks(50_000)).unwrap_err();
    let took = started.elapsed();
    assert!(err.to_string().contains("compile_limit"), "{err}");
    assert!(took < Duration::from_secs(20), "the deploy took {took:?}");
    // The compile was stopped, not left running.
    let children = std::fs::read_to_string(format!(
        "/proc/{}/task/{}/children",
        node.child.id(),
        node.child.id()
    ))
    .unwrap_or_default();
    let compiling = children.split_whitespace().filter(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.contains(quire_shards::wasm::COMPILE_SUBCOMMAND))
    });
    assert_eq!(compiling.count(), 0, "no compile goes on");
    // The node still compiles and runs ordinary modules.
    client.deploy("echo", &echo()).unwrap();
    assert_eq!(&client.call("echo", b"hi", CALL).unwrap()[..], b"hi");
    eprintln!(
        "nested blocks: deploy refused compile_limit after {} ms",
        took.as_millis()
    );
}
