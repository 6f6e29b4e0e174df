//! Hostile agents: WebAssembly modules that attack their shard the ways a
//! careless or malicious tenant would (frozen handlers, memory and table
//! bombs, storms, hoarded calls and state, floods), for the hostile-agent
//! tests against a real node and the sandbox benchmark. Each is a complete
//! agent of ABI v1; [`echo`] is the good neighbour.

/// What every module here imports and exports: 256 pages (16 MiB, the
/// default limit) of memory, payloads written at offset 1024.
pub const PRELUDE: &str = r#"
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

/// An attacker module: [`PRELUDE`]'s imports and exports, then WAT `body`.
pub fn module(body: &str) -> Vec<u8> {
    wasmer::wat2wasm(format!("(module {PRELUDE} {body})").as_bytes())
        .expect("attack WAT parses")
        .into_owned()
}

/// The good neighbour: replies to every call with its payload.
pub fn echo() -> Vec<u8> {
    crate::testing::wat_echo()
}

/// Sends itself a message, then fills 16 MB over and over: fuel barely
/// moves (a few units a fill), only the clock can stop it.
pub fn freezer() -> Vec<u8> {
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
pub fn table_bomb() -> Vec<u8> {
    module(
        r#"(table 10000000 funcref)
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) i32.const 0)"#,
    )
}

/// Grows its table by 400 million entries and replies with what
/// `table.grow` returned.
pub fn table_grower() -> Vec<u8> {
    module(
        r#"(table 1 funcref)
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (i32.store (i32.const 0) (table.grow (ref.null func) (i32.const 400000000)))
             (drop (call $reply (i32.const 0) (i32.const 4)))
             i32.const 0)"#,
    )
}

/// Never replies: calls to it wait for their timeout.
pub fn silent() -> Vec<u8> {
    module(r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) i32.const 0)"#)
}

/// On a call, makes 5 000 calls with a ten-minute timeout to agents
/// "silent-0" to "silent-7" in turn (which never reply), and replies with
/// how many of them were taken (u32).
pub fn call_hog() -> Vec<u8> {
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
pub fn state_hog() -> Vec<u8> {
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
pub fn long_key() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (drop (call $state_put (i32.const 65536) (i32.const 2097152) (i32.const 0) (i32.const 4)))
             (drop (call $reply (i32.const 0) (i32.const 0)))
             i32.const 0)"#,
    )
}

/// On "w": writes key "k", then traps. On anything else: replies with the
/// length state_get finds for "k" (negative: not found).
pub fn write_then_trap() -> Vec<u8> {
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
pub fn mailbox_bomb() -> Vec<u8> {
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

/// Logs 20 000 lines of 4 KiB (80 MB) from one message.
pub fn log_flood() -> Vec<u8> {
    logger(20_000, 4096)
}

/// Not an attacker: logs 40 short lines a message (the last 8 over the
/// per-message cap) and replies.
pub fn chatty() -> Vec<u8> {
    logger(40, 64)
}

/// Logs `lines` warnings of `bytes` bytes from each message, then replies.
fn logger(lines: u32, bytes: u32) -> Vec<u8> {
    module(&format!(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (local $i i32)
             (memory.fill (i32.const 65536) (i32.const 65) (i32.const {bytes}))
             (loop $again
               (call $log (i32.const 1) (i32.const 65536) (i32.const {bytes}))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $again (i32.lt_u (local.get $i) (i32.const {lines}))))
             (drop (call $reply (i32.const 0) (i32.const 0)))
             i32.const 0)"#
    ))
}

/// Traps with its memory at its full 16 MiB: a trap, not a memory limit.
pub fn plain_trap() -> Vec<u8> {
    module(r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) unreachable)"#)
}

/// A start function.
pub fn starter() -> Vec<u8> {
    module(
        r#"(func $init)
           (start $init)
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32) i32.const 0)"#,
    )
}

/// Sends itself a message, then fills 1 MB twice (well under a
/// millisecond, within every limit): a storm that never fails.
pub fn hog() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (local $len i32) (local $i i32)
             (local.set $len (call $self_id (i32.const 0) (i32.const 512)))
             (drop (call $send (i32.const 0) (local.get $len) (i32.const 0) (i32.const 0)))
             (loop $again
               (memory.fill (i32.const 4096) (i32.const 7) (i32.const 1000000))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $again (i32.lt_u (local.get $i) (i32.const 2))))
             i32.const 0)"#,
    )
}

/// Not an attacker: fills 1 MB twice per call and replies "done". Busy
/// because its clients keep it busy, within every limit.
pub fn worker() -> Vec<u8> {
    module(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (local $i i32)
             (loop $again
               (memory.fill (i32.const 4096) (i32.const 7) (i32.const 1000000))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $again (i32.lt_u (local.get $i) (i32.const 2))))
             (drop (call $reply (i32.const 4096) (i32.const 4)))
             i32.const 0)"#,
    )
}

/// A module whose one function nests `depth` blocks: Cranelift's time grows
/// with the square of the depth (10 000: ~4 s; 50 000: over a minute here).
pub fn nested_blocks(depth: usize) -> Vec<u8> {
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
