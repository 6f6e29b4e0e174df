//! The host functions an agent imports from module `quire`, and the bridge
//! that lets them reach the shard while (and only while) the agent handles
//! an event.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use wasmer::{Function, FunctionEnv, FunctionEnvMut, Global, Memory, MemoryView, Store, Value};

use super::abi::{code, rejection_code};
use super::instance::{id_to_guest, Violation};
use super::limits::AgentLimits;
use crate::agent_id::AgentId;
use crate::envelope::MessageId;
use crate::error::Rejection;
use crate::shard_core::Context;

/// Calls whose timeout the guest leaves at 0 get this one.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

type ContextCell = Rc<Cell<*mut Context<'static>>>;

/// What the host functions of one instance share.
pub(crate) struct HostEnv {
    pub memory: Option<Memory>,
    /// The metering middleware's fuel left: host calls are charged by the
    /// bytes they move, like the guest's own operators.
    pub fuel: Option<Global>,
    /// The handler's context while an event is being delivered; null
    /// otherwise, so a host function called at any other time (from
    /// `quire_alloc`, say) finds no shard and answers `INVALID`.
    ctx: ContextCell,
    /// The agent's limits (the payload, state and key bounds apply here).
    pub limits: AgentLimits,
    violation: Option<Violation>,
    calls_made: Vec<MessageId>,
    /// Log lines written while handling the current event.
    log_lines: u32,
    /// Log bytes the current event may still write.
    log_bytes_left: u32,
    /// Log lines over [`MAX_LOG_LINES`] or [`MAX_LOG_BYTES_PER_EVENT`]
    /// left out for the current event.
    pub logs_dropped: u32,
    /// Sends and calls of the current event the shard refused.
    pub refused: u32,
}

// SAFETY: a HostEnv lives in its instance's Store, which is not Send: it is
// only ever touched by the shard thread that made it.
unsafe impl Send for HostEnv {}

impl HostEnv {
    pub(crate) fn new(limits: AgentLimits) -> Self {
        Self {
            memory: None,
            ctx: Rc::new(Cell::new(std::ptr::null_mut())),
            limits,
            violation: None,
            calls_made: Vec::new(),
            fuel: None,
            log_lines: 0,
            log_bytes_left: MAX_LOG_BYTES_PER_EVENT,
            logs_dropped: 0,
            refused: 0,
        }
    }

    /// Starts a new event's accounting.
    pub(crate) fn begin_event(&mut self) {
        self.log_lines = 0;
        self.log_bytes_left = MAX_LOG_BYTES_PER_EVENT;
        self.logs_dropped = 0;
        self.refused = 0;
    }

    pub(crate) fn take_violation(&mut self) -> Option<Violation> {
        self.violation.take()
    }

    pub(crate) fn take_calls_made(&mut self) -> std::vec::Drain<'_, MessageId> {
        self.calls_made.drain(..)
    }

    /// Fails the message being handled: the guest broke a limit inside a
    /// host function. The first violation wins.
    fn violate(&mut self, reason: Rejection, detail: String) -> i32 {
        self.violation.get_or_insert(Violation { reason, detail });
        -code::TOO_LARGE
    }

    fn with_ctx<R>(&self, f: impl FnOnce(&mut Context<'static>) -> R) -> Option<R> {
        let ptr = self.ctx.get();
        // SAFETY: the pointer is set only by `bind_context` for the length of
        // one guest call, during which the context it points to is borrowed
        // mutably by that call and by nothing else.
        (!ptr.is_null()).then(|| f(unsafe { &mut *ptr }))
    }
}

/// Clears the context pointer when the guest call ends, however it ends.
pub(crate) struct BoundContext(ContextCell);

impl Drop for BoundContext {
    fn drop(&mut self) {
        self.0.set(std::ptr::null_mut());
    }
}

/// Lets the instance's host functions reach `ctx` until the guard drops.
pub(crate) fn bind_context(
    env: &FunctionEnv<HostEnv>,
    store: &mut Store,
    ctx: &mut Context<'_>,
) -> BoundContext {
    let cell = env.as_mut(store).ctx.clone();
    cell.set((ctx as *mut Context<'_>).cast::<Context<'static>>());
    BoundContext(cell)
}

/// Bytes a host call moves per unit of fuel charged.
const BYTES_PER_FUEL: u64 = 64;

/// Charges the fuel for a host call moving `bytes`: a call that moves
/// megabytes costs like the loop that would have copied them. Fuel that
/// runs out here traps at the guest's next metered block.
fn charge(fenv: &mut FunctionEnvMut<HostEnv>, bytes: i64) {
    let cost = 1 + bytes.max(0) as u64 / BYTES_PER_FUEL;
    let (env, mut store) = fenv.data_and_store_mut();
    let Some(fuel) = env.fuel.clone() else {
        return;
    };
    if let Value::I64(left) = fuel.get(&mut store) {
        let left = (left as u64).saturating_sub(cost);
        let _ = fuel.set(&mut store, Value::I64(left as i64));
    }
}

/// Runs `f` with the instance's environment and a view of its memory
/// (`INVALID` if the memory is not bound yet).
fn with_view<R: From<i32>>(
    fenv: &mut FunctionEnvMut<HostEnv>,
    f: impl FnOnce(&mut HostEnv, &MemoryView<'_>) -> R,
) -> R {
    let (env, store) = fenv.data_and_store_mut();
    let Some(memory) = env.memory.clone() else {
        return R::from(-code::INVALID);
    };
    let view = memory.view(&store);
    f(env, &view)
}

/// Reads `len` bytes at `ptr` of the guest's memory.
fn read(view: &MemoryView<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, i32> {
    if ptr < 0 || len < 0 {
        return Err(-code::BAD_POINTER);
    }
    let mut buf = vec![0; len as usize];
    view.read(ptr as u64, &mut buf)
        .map_err(|_| -code::BAD_POINTER)?;
    Ok(buf)
}

/// Copies `bytes` to `out_ptr` when they fit in `out_cap`; returns their
/// length either way (the guest retries with more room), or an error.
fn write_out(view: &MemoryView<'_>, bytes: &[u8], out_ptr: i32, out_cap: i32) -> i32 {
    if out_ptr < 0 || out_cap < 0 {
        return -code::BAD_POINTER;
    }
    if bytes.len() <= out_cap as usize && view.write(out_ptr as u64, bytes).is_err() {
        return -code::BAD_POINTER;
    }
    bytes.len() as i32
}

fn agent_name(view: &MemoryView<'_>, ptr: i32, len: i32) -> Result<AgentId, i32> {
    if len <= 0 || len as usize > AgentId::MAX_LEN {
        return Err(-code::INVALID);
    }
    let raw = read(view, ptr, len)?;
    let name = std::str::from_utf8(&raw).map_err(|_| -code::INVALID)?;
    AgentId::new(name).map_err(|_| -code::INVALID)
}

/// Reads a payload, refusing one over the agent's limit (which also fails
/// the message being handled, so the sender hears why).
fn payload(
    env: &mut HostEnv,
    view: &MemoryView<'_>,
    ptr: i32,
    len: i32,
    what: &str,
) -> Result<Bytes, i32> {
    if len as i64 > i64::from(env.limits.max_message_bytes) {
        let detail = format!(
            "the agent's {what} of {len} bytes is over its limit of {} bytes",
            env.limits.max_message_bytes
        );
        return Err(env.violate(Rejection::TooLarge, detail));
    }
    read(view, ptr, len).map(Bytes::from)
}

fn send(mut fenv: FunctionEnvMut<HostEnv>, to_ptr: i32, to_len: i32, ptr: i32, len: i32) -> i64 {
    charge(&mut fenv, i64::from(len) + i64::from(to_len));
    with_view(&mut fenv, |env, view| {
        let result = agent_name(view, to_ptr, to_len).and_then(|to| {
            let payload = payload(env, view, ptr, len, "message")?;
            env.with_ctx(|ctx| ctx.send(to, payload))
                .ok_or(-code::INVALID)?
                .map_err(|r| -rejection_code(r))
        });
        if result.is_err() {
            env.refused = env.refused.saturating_add(1);
        }
        match result {
            Ok(id) => id_to_guest(id),
            Err(code) => i64::from(code),
        }
    })
}

fn call(
    mut fenv: FunctionEnvMut<HostEnv>,
    to_ptr: i32,
    to_len: i32,
    ptr: i32,
    len: i32,
    timeout_ms: i32,
) -> i64 {
    charge(&mut fenv, i64::from(len) + i64::from(to_len));
    with_view(&mut fenv, |env, view| {
        let timeout = match timeout_ms {
            t if t > 0 => Duration::from_millis(t as u64),
            _ => DEFAULT_CALL_TIMEOUT,
        };
        let result = agent_name(view, to_ptr, to_len).and_then(|to| {
            let payload = payload(env, view, ptr, len, "call")?;
            env.with_ctx(|ctx| ctx.call(to, payload, timeout))
                .ok_or(-code::INVALID)?
                .map_err(|r| -rejection_code(r))
        });
        match result {
            Ok(id) => {
                env.calls_made.push(id);
                id_to_guest(id)
            }
            Err(code) => {
                env.refused = env.refused.saturating_add(1);
                i64::from(code)
            }
        }
    })
}

fn reply(mut fenv: FunctionEnvMut<HostEnv>, ptr: i32, len: i32) -> i32 {
    charge(&mut fenv, i64::from(len));
    with_view(&mut fenv, |env, view| {
        if env.violation.is_some() {
            // The message already failed (a limit broken in a host call):
            // its caller hears that reason, not a reply.
            return -code::INVALID;
        }
        let payload = match payload(env, view, ptr, len, "reply") {
            Ok(p) => p,
            Err(code) => return code,
        };
        match env.with_ctx(|ctx| ctx.reply(payload)) {
            Some(Ok(())) => 0,
            _ => -code::INVALID,
        }
    })
}

fn state_get(
    mut fenv: FunctionEnvMut<HostEnv>,
    key_ptr: i32,
    key_len: i32,
    out_ptr: i32,
    out_cap: i32,
) -> i32 {
    let written = with_view(&mut fenv, |env, view| {
        let key = match read(view, key_ptr, key_len) {
            Ok(k) => k,
            Err(code) => return code,
        };
        match env.with_ctx(|ctx| ctx.state(&key)) {
            Some(Some(value)) => write_out(view, &value, out_ptr, out_cap),
            Some(None) => -code::NOT_FOUND,
            None => -code::INVALID,
        }
    });
    charge(&mut fenv, i64::from(key_len) + i64::from(written.max(0)));
    written
}

fn state_put(
    mut fenv: FunctionEnvMut<HostEnv>,
    key_ptr: i32,
    key_len: i32,
    val_ptr: i32,
    val_len: i32,
) -> i32 {
    charge(&mut fenv, i64::from(key_len) + i64::from(val_len));
    with_view(&mut fenv, |env, view| {
        let key = match read(view, key_ptr, key_len) {
            Ok(k) if !k.is_empty() => k,
            Ok(_) => return -code::INVALID,
            Err(code) => return code,
        };
        if key.len() as u64 > u64::from(env.limits.max_key_bytes) {
            let detail = format!(
                "the agent's state key of {} bytes is over its limit of {} bytes",
                key.len(),
                env.limits.max_key_bytes
            );
            return env.violate(Rejection::StateQuota, detail);
        }
        let value = match payload(env, view, val_ptr, val_len, "state value") {
            Ok(v) => v,
            Err(code) => return code,
        };
        let quota = env.limits.max_state_bytes;
        let outcome = env.with_ctx(|ctx| {
            let replaced = ctx.state(&key).map_or(0, |old| key.len() + old.len());
            let after = (ctx.state_bytes() - replaced + key.len() + value.len()) as u64;
            if after > quota {
                return Err(after);
            }
            ctx.put_state(key, value);
            Ok(())
        });
        match outcome {
            Some(Ok(())) => 0,
            Some(Err(after)) => {
                let detail = format!(
                    "the agent's state would be {after} bytes, over its quota of {quota} bytes"
                );
                env.violate(Rejection::StateQuota, detail)
            }
            None => -code::INVALID,
        }
    })
}

fn state_delete(mut fenv: FunctionEnvMut<HostEnv>, key_ptr: i32, key_len: i32) -> i32 {
    charge(&mut fenv, i64::from(key_len));
    with_view(&mut fenv, |env, view| {
        let key = match read(view, key_ptr, key_len) {
            Ok(k) => k,
            Err(code) => return code,
        };
        match env.with_ctx(|ctx| ctx.delete_state(&key)) {
            Some(existed) => i32::from(existed),
            None => -code::INVALID,
        }
    })
}

/// Longest log line kept; the rest is cut (a log call must stay cheap).
const MAX_LOG_BYTES: i32 = 4096;

/// Log lines one event may write; the rest are counted, not written (one
/// message must not fill the node's log).
pub(crate) const MAX_LOG_LINES: u32 = 32;

/// Log bytes one event may write (a line past them is cut to what is
/// left). Formatting a line is the shard's time: a few KiB is what a
/// handler's diagnostics need, not what a flood would like.
pub(crate) const MAX_LOG_BYTES_PER_EVENT: u32 = 16 << 10;

fn log(mut fenv: FunctionEnvMut<HostEnv>, level: i32, ptr: i32, len: i32) {
    charge(&mut fenv, i64::from(len.clamp(0, MAX_LOG_BYTES)));
    let (env, store) = fenv.data_and_store_mut();
    if env.log_lines >= MAX_LOG_LINES || env.log_bytes_left == 0 {
        env.logs_dropped = env.logs_dropped.saturating_add(1);
        return;
    }
    env.log_lines += 1;
    let len = len.clamp(0, MAX_LOG_BYTES).min(env.log_bytes_left as i32);
    env.log_bytes_left -= len as u32;
    let Some(memory) = env.memory.clone() else {
        return;
    };
    let view = memory.view(&store);
    let Ok(raw) = read(&view, ptr, len) else {
        return;
    };
    let text = String::from_utf8_lossy(&raw);
    let agent = env
        .with_ctx(|ctx| ctx.id().as_str().to_string())
        .unwrap_or_default();
    match level {
        0 => tracing::error!(agent, "{text}"),
        1 => tracing::warn!(agent, "{text}"),
        2 => tracing::info!(agent, "{text}"),
        3 => tracing::debug!(agent, "{text}"),
        _ => tracing::trace!(agent, "{text}"),
    }
}

fn now(_fenv: FunctionEnvMut<HostEnv>) -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn self_id(mut fenv: FunctionEnvMut<HostEnv>, out_ptr: i32, out_cap: i32) -> i32 {
    with_view(&mut fenv, |env, view| {
        match env.with_ctx(|ctx| ctx.id().as_str().to_string()) {
            Some(name) => write_out(view, name.as_bytes(), out_ptr, out_cap),
            None => -code::INVALID,
        }
    })
}

/// The host function `name` of ABI v1, bound to `env`.
pub(crate) fn function(store: &mut Store, env: &FunctionEnv<HostEnv>, name: &str) -> Function {
    match name {
        "send" => Function::new_typed_with_env(store, env, send),
        "call" => Function::new_typed_with_env(store, env, call),
        "reply" => Function::new_typed_with_env(store, env, reply),
        "state_get" => Function::new_typed_with_env(store, env, state_get),
        "state_put" => Function::new_typed_with_env(store, env, state_put),
        "state_delete" => Function::new_typed_with_env(store, env, state_delete),
        "log" => Function::new_typed_with_env(store, env, log),
        "now" => Function::new_typed_with_env(store, env, now),
        "self_id" => Function::new_typed_with_env(store, env, self_id),
        other => unreachable!("ABI v1 has no host function {other}"),
    }
}
