//! Helpers for tests and examples: envelopes and agents with no logic of
//! their own. Public so that other crates' tests and doc examples use them too.

use bytes::Bytes;

use crate::envelope::{Address, Envelope, Kind, MessageId, Priority};
use crate::AgentId;

/// A one-way envelope for `to` with an empty payload.
///
/// ```
/// use quire_shards::{testing::envelope_to, Priority};
/// assert_eq!(envelope_to("a", Priority::High).priority, Priority::High);
/// ```
pub fn envelope_to(to: &str, priority: Priority) -> Envelope {
    Envelope {
        id: MessageId::new(0, 1).expect("nonzero"),
        from: Address::Nobody,
        to: Address::Agent(AgentId::from(to)),
        conversation: None,
        in_reply_to: None,
        priority,
        deadline: None,
        kind: Kind::Send,
        payload: Bytes::new(),
    }
}

/// The imports and exports every hand-written test agent shares: the host
/// functions it may call, one page of memory, ABI version 1, and an
/// allocator that always hands out offset 1024 (one payload at a time).
pub const WAT_AGENT_PRELUDE: &str = r#"
  (import "quire" "reply" (func $reply (param i32 i32) (result i32)))
  (import "quire" "send" (func $send (param i32 i32 i32 i32) (result i64)))
  (import "quire" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "quire" "state_put" (func $state_put (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "quire_abi_version") (result i32) i32.const 1)
  (func (export "quire_alloc") (param i32) (result i32) i32.const 1024)
"#;

/// A WebAssembly agent module from WAT `body` (which defines at least
/// `quire_handle`) after [`WAT_AGENT_PRELUDE`].
///
/// ```
/// let echo = quire_shards::testing::wat_agent(
///     r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
///          (drop (call $reply (local.get 3) (local.get 4))) i32.const 0)"#,
/// );
/// assert!(quire_shards::wasm::WasmEngine::new(None).compile(&echo).is_ok());
/// ```
pub fn wat_agent(body: &str) -> Vec<u8> {
    wasmer::wat2wasm(format!("(module {WAT_AGENT_PRELUDE} {body})").as_bytes())
        .expect("test WAT parses")
        .into_owned()
}

/// A WAT agent that replies to every call with its payload.
pub fn wat_echo() -> Vec<u8> {
    wat_agent(
        r#"(func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (drop (call $reply (local.get 3) (local.get 4))) i32.const 0)"#,
    )
}

/// A WAT agent that keeps a u32 count in its state under key "n", adds one
/// per message and replies with it.
pub fn wat_counter() -> Vec<u8> {
    wat_agent(
        r#"(data (i32.const 0) "n")
           (func (export "quire_handle") (param i32 i64 i32 i32 i32) (result i32)
             (i32.store (i32.const 8) (i32.const 0))
             (drop (call $state_get (i32.const 0) (i32.const 1) (i32.const 8) (i32.const 4)))
             (i32.store (i32.const 8) (i32.add (i32.load (i32.const 8)) (i32.const 1)))
             (drop (call $state_put (i32.const 0) (i32.const 1) (i32.const 8) (i32.const 4)))
             (drop (call $reply (i32.const 8) (i32.const 4)))
             i32.const 0)"#,
    )
}
