//! The native agent interface: the [`Agent`] trait a shard's agents
//! implement. Its handlers get a [`Context`] (`dispatch::context`).
//!
//! Handlers are synchronous and never block: a `call` returns at once with the
//! call's id, and the answer arrives later through [`Agent::on_reply`]. This is
//! the same model the WebAssembly host offers, so native and wasm agents
//! behave alike, and a shard's dispatcher never waits on an agent.

use std::time::Instant;

use quire_storage::AgentRecord;

use super::Context;
use crate::agent_status::AgentStatus;
use crate::envelope::{Envelope, MessageId};
use crate::error::{CallError, DefinitionError, Rejection};

/// An in-process agent. It lives on the shard that owns its name and is only
/// ever touched by that shard's thread, so it need not be `Send` or `Sync`.
///
/// ```
/// use quire_shards::{Agent, Context, Envelope};
///
/// /// Answers every call with the request's own payload.
/// struct Echo;
///
/// impl Agent for Echo {
///     fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
///         let _ = ctx.reply(msg.payload);
///     }
/// }
/// ```
pub trait Agent: 'static {
    /// Handles one ordinary message (a send or a call).
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope);

    /// The call `call` this agent made has ended: with the reply, or with why
    /// there is none. Every successful `ctx.call` ends here exactly once.
    fn on_reply(
        &mut self,
        ctx: &mut Context<'_>,
        call: MessageId,
        reply: Result<Envelope, CallError>,
    ) {
        let _ = (ctx, call, reply);
    }

    /// A one-way message this agent sent could not be delivered; it comes back
    /// as it was sent (same id, receiver and payload) with the reason.
    fn on_undelivered(&mut self, ctx: &mut Context<'_>, msg: Envelope, reason: Rejection) {
        let _ = (ctx, msg, reason);
    }

    /// Takes a new definition of this deployed agent (a hot reload): the
    /// next message is handled by the new version. An `Err` refuses the
    /// reload and leaves the agent as it was. Agents that cannot change keep
    /// this default, which refuses.
    fn reconfigure(&mut self, record: &AgentRecord) -> Result<(), DefinitionError> {
        Err(DefinitionError::NotReloadable {
            kind: record.kind.clone(),
        })
    }

    /// How the agent is doing at `now` (the shard's clock), for `list`;
    /// native agents: always running.
    fn status(&self, now: Instant) -> AgentStatus {
        let _ = now;
        AgentStatus::default()
    }
}
