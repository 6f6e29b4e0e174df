//! Write Quire agents in Rust.
//!
//! An agent is a type with a [`Default`] value and an [`Agent`] impl;
//! [`export!`] turns it into a module that speaks agent ABI v1
//! (docs/agent-abi.md in the Quire repository). Build it with
//! `cargo build --release --target wasm32-unknown-unknown` and deploy the
//! `.wasm` file.
//!
//! ```ignore
//! use quire_agent::{export, reply, Agent, Message};
//!
//! #[derive(Default)]
//! struct Echo;
//!
//! impl Agent for Echo {
//!     fn handle(&mut self, msg: Message<'_>) {
//!         if msg.is_call() {
//!             let _ = reply(msg.payload);
//!         }
//!     }
//! }
//!
//! export!(Echo);
//! ```
//!
//! The agent value lives as long as its instance: a restart after a
//! failure, a hot reload or a deactivation starts from `Default` again, so
//! what must last goes in [`state`].

use std::cell::RefCell;

/// The ABI version this crate speaks.
pub const ABI_VERSION: i32 = 1;

/// Host functions (module `quire`).
#[cfg(target_arch = "wasm32")]
mod sys {
    #[link(wasm_import_module = "quire")]
    extern "C" {
        pub fn send(to_ptr: *const u8, to_len: i32, ptr: *const u8, len: i32) -> i64;
        pub fn call(
            to_ptr: *const u8,
            to_len: i32,
            ptr: *const u8,
            len: i32,
            timeout_ms: i32,
        ) -> i64;
        pub fn reply(ptr: *const u8, len: i32) -> i32;
        pub fn state_get(key_ptr: *const u8, key_len: i32, out_ptr: *mut u8, out_cap: i32) -> i32;
        pub fn state_put(key_ptr: *const u8, key_len: i32, val_ptr: *const u8, val_len: i32)
            -> i32;
        pub fn state_delete(key_ptr: *const u8, key_len: i32) -> i32;
        pub fn log(level: i32, ptr: *const u8, len: i32);
        pub fn now() -> i64;
        pub fn self_id(out_ptr: *mut u8, out_cap: i32) -> i32;
    }
}

/// Off wasm32 (for `cargo check` and docs on the host) every host function
/// answers INVALID.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::missing_safety_doc)]
mod sys {
    pub unsafe fn send(_: *const u8, _: i32, _: *const u8, _: i32) -> i64 {
        -3
    }
    pub unsafe fn call(_: *const u8, _: i32, _: *const u8, _: i32, _: i32) -> i64 {
        -3
    }
    pub unsafe fn reply(_: *const u8, _: i32) -> i32 {
        -3
    }
    pub unsafe fn state_get(_: *const u8, _: i32, _: *mut u8, _: i32) -> i32 {
        -3
    }
    pub unsafe fn state_put(_: *const u8, _: i32, _: *const u8, _: i32) -> i32 {
        -3
    }
    pub unsafe fn state_delete(_: *const u8, _: i32) -> i32 {
        -3
    }
    pub unsafe fn log(_: i32, _: *const u8, _: i32) {}
    pub unsafe fn now() -> i64 {
        0
    }
    pub unsafe fn self_id(_: *mut u8, _: i32) -> i32 {
        -3
    }
}

/// An error code from the host (see docs/agent-abi.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error(pub i32);

impl Error {
    /// No such key.
    pub const NOT_FOUND: Error = Error(1);
    /// A pointer outside the agent's memory.
    pub const BAD_POINTER: Error = Error(2);
    /// Not allowed here (a second reply, a bad agent name).
    pub const INVALID: Error = Error(3);
    /// Over the agent's message size limit.
    pub const TOO_LARGE: Error = Error(4);
    /// A call timed out.
    pub const TIMEOUT: Error = Error(5);
    /// The receiver's queue was full.
    pub const QUEUE_FULL: Error = Error(16);
    /// No agent of that name.
    pub const NO_SUCH_AGENT: Error = Error(17);
}

fn check32(rc: i32) -> Result<i32, Error> {
    if rc < 0 {
        Err(Error(-rc))
    } else {
        Ok(rc)
    }
}

fn check64(rc: i64) -> Result<u64, Error> {
    if rc < 0 {
        Err(Error((-rc) as i32))
    } else {
        Ok(rc as u64)
    }
}

/// Whether a message is one-way or expects a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One-way.
    Send,
    /// A call: answer it with [`reply`] while handling it.
    Call,
}

/// A message being handled.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Its id on the node.
    pub id: u64,
    /// Send or call.
    pub kind: Kind,
    /// Its bytes.
    pub payload: &'a [u8],
}

impl Message<'_> {
    /// True for a call.
    pub fn is_call(&self) -> bool {
        self.kind == Kind::Call
    }
}

/// An agent: one value per instance, driven by the host's events.
pub trait Agent: Default + 'static {
    /// Handles a send or a call. An `Err` fails the message: its sender
    /// hears that the agent failed.
    fn handle(&mut self, msg: Message<'_>) -> Result<(), Error>;

    /// A call made with [`call`] was answered (or failed).
    fn on_reply(&mut self, call: u64, reply: Result<&[u8], Error>) {
        let _ = (call, reply);
    }

    /// A message sent with [`send`] came back undelivered.
    fn on_undelivered(&mut self, message: u64, payload: &[u8], reason: Error) {
        let _ = (message, payload, reason);
    }
}

/// Sends a one-way message; returns its id.
pub fn send(to: &str, payload: &[u8]) -> Result<u64, Error> {
    // SAFETY: pointers and lengths of live slices.
    check64(unsafe {
        sys::send(
            to.as_ptr(),
            to.len() as i32,
            payload.as_ptr(),
            payload.len() as i32,
        )
    })
}

/// Calls an agent; the answer comes to [`Agent::on_reply`] with the returned
/// id. `timeout_ms` 0 takes the host's default.
pub fn call(to: &str, payload: &[u8], timeout_ms: u32) -> Result<u64, Error> {
    // SAFETY: pointers and lengths of live slices.
    check64(unsafe {
        sys::call(
            to.as_ptr(),
            to.len() as i32,
            payload.as_ptr(),
            payload.len() as i32,
            timeout_ms as i32,
        )
    })
}

/// Replies to the call being handled.
pub fn reply(payload: &[u8]) -> Result<(), Error> {
    // SAFETY: pointer and length of a live slice.
    check32(unsafe { sys::reply(payload.as_ptr(), payload.len() as i32) }).map(drop)
}

/// The agent's durable key-value state, kept by its shard (it outlives
/// instances, restarts and reloads; on a durable node, restarts of the node).
pub mod state {
    use super::{check32, sys, Error};

    /// The value of `key`, if any.
    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 64];
        loop {
            // SAFETY: pointers and lengths of live buffers.
            let rc = unsafe {
                sys::state_get(
                    key.as_ptr(),
                    key.len() as i32,
                    buf.as_mut_ptr(),
                    buf.len() as i32,
                )
            };
            let len = check32(rc).ok()? as usize;
            if len <= buf.len() {
                buf.truncate(len);
                return Some(buf);
            }
            buf.resize(len, 0);
        }
    }

    /// Sets `key` to `value`.
    pub fn put(key: &[u8], value: &[u8]) -> Result<(), Error> {
        // SAFETY: pointers and lengths of live slices.
        check32(unsafe {
            sys::state_put(
                key.as_ptr(),
                key.len() as i32,
                value.as_ptr(),
                value.len() as i32,
            )
        })
        .map(drop)
    }

    /// Removes `key`; true if it was there.
    pub fn delete(key: &[u8]) -> bool {
        // SAFETY: pointer and length of a live slice.
        unsafe { sys::state_delete(key.as_ptr(), key.len() as i32) == 1 }
    }

    /// A u64 kept little-endian under `key` (0 when missing).
    pub fn get_u64(key: &[u8]) -> u64 {
        get(key)
            .and_then(|v| v.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0)
    }

    /// Keeps `value` little-endian under `key`.
    pub fn put_u64(key: &[u8], value: u64) -> Result<(), Error> {
        put(key, &value.to_le_bytes())
    }
}

/// Log lines, attributed to the agent by the host.
pub mod log {
    use super::sys;

    fn at(level: i32, text: &str) {
        // SAFETY: pointer and length of a live str.
        unsafe { sys::log(level, text.as_ptr(), text.len() as i32) }
    }
    /// Error level.
    pub fn error(text: &str) {
        at(0, text)
    }
    /// Warning level.
    pub fn warn(text: &str) {
        at(1, text)
    }
    /// Info level.
    pub fn info(text: &str) {
        at(2, text)
    }
    /// Debug level.
    pub fn debug(text: &str) {
        at(3, text)
    }
}

/// Nanoseconds since the Unix epoch, by the host's clock.
pub fn now() -> u64 {
    // SAFETY: no arguments.
    unsafe { sys::now() as u64 }
}

/// This agent's name.
pub fn self_id() -> String {
    let mut buf = vec![0u8; 255];
    // SAFETY: pointer and capacity of a live buffer.
    let len = unsafe { sys::self_id(buf.as_mut_ptr(), buf.len() as i32) };
    buf.truncate(len.max(0) as usize);
    String::from_utf8(buf).unwrap_or_default()
}

thread_local! {
    /// Where the host writes the next event's payload.
    static INBOX: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[doc(hidden)]
pub fn __alloc(len: i32) -> i32 {
    INBOX.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        b.resize(len.max(0) as usize, 0);
        b.as_mut_ptr() as i32
    })
}

#[doc(hidden)]
pub fn __handle<A: Agent>(agent: &RefCell<A>, event: i32, id: i64, code: i32, len: i32) -> i32 {
    INBOX.with(|b| {
        let b = b.borrow();
        let payload = &b[..(len.max(0) as usize).min(b.len())];
        let mut agent = agent.borrow_mut();
        let id = id as u64;
        let result = match event {
            0 => agent.handle(Message {
                id,
                kind: Kind::Send,
                payload,
            }),
            1 => agent.handle(Message {
                id,
                kind: Kind::Call,
                payload,
            }),
            2 => {
                agent.on_reply(id, Ok(payload));
                Ok(())
            }
            3 => {
                agent.on_reply(id, Err(Error(code)));
                Ok(())
            }
            4 => {
                agent.on_undelivered(id, payload, Error(code));
                Ok(())
            }
            _ => Err(Error::INVALID),
        };
        match result {
            Ok(()) => 0,
            Err(e) => e.0.max(1),
        }
    })
}

/// Exports `$agent` (a type implementing [`Agent`]) as the module's agent.
#[macro_export]
macro_rules! export {
    ($agent:ty) => {
        thread_local! {
            static __QUIRE_AGENT: ::std::cell::RefCell<$agent> =
                ::std::cell::RefCell::new(<$agent as ::std::default::Default>::default());
        }

        #[no_mangle]
        pub extern "C" fn quire_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn quire_alloc(len: i32) -> i32 {
            $crate::__alloc(len)
        }

        #[no_mangle]
        pub extern "C" fn quire_handle(event: i32, id: i64, code: i32, _ptr: i32, len: i32) -> i32 {
            __QUIRE_AGENT.with(|a| $crate::__handle(a, event, id, code, len))
        }
    };
}
