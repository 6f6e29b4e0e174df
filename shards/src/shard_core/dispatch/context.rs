//! The [`Context`] a handler runs with: who it is, the message it handles,
//! and the shard's ways to send, call, reply, keep state and fail. It is a
//! child of dispatch because it lives exactly as long as one handler call.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::agent_id::{AgentId, ShardId};
use crate::envelope::{Address, ConversationId, Envelope, Kind, MessageId, Priority, SendOptions};
use crate::error::Rejection;
use crate::shard_core::ShardCore;

/// What a handler knows of the message it is handling.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub id: MessageId,
    /// The caller, for calls only.
    pub from: Option<Address>,
    pub kind: Kind,
    pub conversation: Option<ConversationId>,
    pub priority: Priority,
    pub replied: bool,
    /// Set by [`Context::fail`]: the message failed for this reason.
    pub failed: Option<Rejection>,
    /// Set by [`Context::fail_with`]: what the caller is told of it.
    pub failure_detail: Option<String>,
}

/// A handler's view of its shard: who it is, and how to talk to others.
pub struct Context<'a> {
    pub(crate) core: &'a mut ShardCore,
    pub(crate) me: &'a AgentId,
    /// The agent's slot in its shard (for pending calls).
    pub(crate) slot: usize,
    pub(crate) current: Option<Current>,
}

impl Context<'_> {
    /// This agent's name.
    pub fn id(&self) -> &AgentId {
        self.me
    }

    /// The shard this agent lives on.
    pub fn shard(&self) -> ShardId {
        self.core.shard()
    }

    /// The time on the shard's clock ([`crate::Clock`]), which its
    /// deadlines, timeouts and timers use.
    pub fn now(&self) -> Instant {
        self.core.clock().now()
    }

    /// Sends a one-way message at normal priority. An error means the message
    /// was refused at once (the receiver's queue or the route to its shard is
    /// full, or a local receiver does not exist); a refusal found later comes
    /// back through [`Agent::on_undelivered`].
    #[inline(always)]
    pub fn send(
        &mut self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
    ) -> Result<MessageId, Rejection> {
        self.send_with(to, payload, SendOptions::default())
    }

    /// Sends a one-way message with options.
    #[inline(always)]
    pub fn send_with(
        &mut self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
        opts: SendOptions,
    ) -> Result<MessageId, Rejection> {
        let env = self.envelope(to.into(), payload.into(), Kind::Send, opts);
        let id = env.id;
        self.core.send_from_agent(env, None)?;
        Ok(id)
    }

    /// Calls another agent: the reply, a rejection or a timeout arrives later
    /// through [`Agent::on_reply`] with the returned call id.
    #[inline(always)]
    pub fn call(
        &mut self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<MessageId, Rejection> {
        self.call_with(to, payload, timeout, SendOptions::default())
    }

    /// Calls with options.
    #[inline(always)]
    pub fn call_with(
        &mut self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
        timeout: Duration,
        opts: SendOptions,
    ) -> Result<MessageId, Rejection> {
        let env = self.envelope(to.into(), payload.into(), Kind::Call, opts);
        let id = env.id;
        self.core.send_from_agent(env, Some((self.slot, timeout)))?;
        Ok(id)
    }

    /// Replies to the call being handled. Only calls take a reply, and only one.
    #[inline(always)]
    pub fn reply(&mut self, payload: impl Into<Bytes>) -> Result<(), Rejection> {
        let cur = match &mut self.current {
            Some(cur) if cur.kind == Kind::Call && !cur.replied => cur,
            _ => return Err(Rejection::Invalid),
        };
        cur.replied = true;
        let to = cur.from.take().unwrap_or(Address::Nobody);
        let (conversation, in_reply_to, priority) = (cur.conversation, cur.id, cur.priority);
        let env = Envelope {
            id: self.core.next_message_id(),
            from: Address::Agent(self.me.clone()),
            to,
            conversation,
            in_reply_to: Some(in_reply_to),
            priority,
            deadline: None,
            kind: Kind::Reply,
            payload: payload.into(),
        };
        self.core.send_control(env);
        Ok(())
    }

    /// Fails the message being handled: its sender gets `reason` (a call's
    /// caller as the call's error, a send's sender as an undelivered
    /// message) unless a reply already went out, and the shard counts it as
    /// rejected for `reason`. The WebAssembly host uses it for broken limits
    /// and traps. Outside a handler (in `on_reply`) it does nothing.
    pub fn fail(&mut self, reason: Rejection) {
        if let Some(cur) = &mut self.current {
            cur.failed = Some(reason);
        }
        self.core.undo_state(self.slot, self.me);
    }

    /// [`Self::fail`], and a call's caller is told `detail` (what the
    /// runtime saw: a trap's message, the limit broken) with the reason
    /// ([`Kind::HandlerFailed`]); a client reads it in its error.
    pub fn fail_with(&mut self, reason: Rejection, detail: impl Into<String>) {
        if let Some(cur) = &mut self.current {
            cur.failure_detail = Some(detail.into());
        }
        self.fail(reason);
    }

    /// From now until this message is handled, the state writes of this
    /// agent are undone if the message fails ([`Self::fail`]): a failed
    /// message leaves no state behind. The WebAssembly host asks for it.
    pub fn undo_state_on_failure(&mut self) {
        let undo = self.core.state_undo.get_or_insert_with(Vec::new);
        undo.clear();
    }

    /// Bytes of this agent's state (keys and values).
    pub fn state_bytes(&self) -> usize {
        self.core.agent_state_bytes(self.slot)
    }

    /// Ends this agent's turn after the current message: other ready agents
    /// run before its next queued message does. The WebAssembly host calls
    /// it after a failure, so that an agent burning its whole budget on
    /// every message cannot take several budgets in a row.
    pub fn end_turn(&mut self) {
        self.core.end_turn = true;
    }

    /// Ends this agent's turn and the shard's run of agents: the shard's
    /// other work (client commands, sockets, timers) goes before any other
    /// agent's turn.
    pub fn yield_shard(&mut self) {
        self.core.end_turn = true;
        self.core.yield_requested = true;
    }

    /// The shard's clock as read when its current run of turns began
    /// (at most about a turn quota ago, unless a handler ran long): a time
    /// for coarse windows that costs no clock read.
    pub fn turn_started(&self) -> Instant {
        self.core.turn_clock()
    }

    /// The shard's turn quota (see [`Self::charge_time`]).
    pub fn turn_quota(&self) -> Duration {
        self.core.turn_quota()
    }

    /// Tells the shard how long the handler ran. Once the turns of one
    /// [`ShardCore::run`] took the shard's turn quota
    /// (`ShardConfig::turn_quota`, 500 µs), this agent's turn ends (it goes
    /// to the back of the ready queue) and the shard serves its sockets,
    /// commands and timers before the next turn ([`Self::yield_shard`]).
    /// The WebAssembly host charges every handler: an agent slow on each
    /// message, or a storm of cheap ones, holds its neighbours up for about
    /// one quota, not one batch of messages.
    pub fn charge_time(&mut self, ran: Duration) {
        self.core.charge_turn_time(ran);
    }

    /// True when the message being handled is a call that has not been
    /// replied to yet.
    pub fn awaits_reply(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.kind == Kind::Call && !c.replied)
    }

    /// This agent's value for `key` in its key-value state.
    ///
    /// State lives in the shard's memory, so reads never wait on a disk.
    /// For a deployed agent on a node with storage, every change is
    /// journaled and committed in the same transaction as the completion of
    /// the durable message being handled: after a crash the state matches
    /// exactly the messages whose handling was committed.
    pub fn state(&self, key: &[u8]) -> Option<Bytes> {
        self.core.state_get(self.slot, key)
    }

    /// Sets `key` to `value` in this agent's state.
    pub fn put_state(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Bytes>) {
        self.core
            .state_put(self.slot, self.me, key.into(), value.into());
    }

    /// Removes `key` from this agent's state; `true` if it was there.
    pub fn delete_state(&mut self, key: &[u8]) -> bool {
        self.core.state_delete(self.slot, self.me, key)
    }

    /// Sends `payload` to this agent itself after `delay` (a timer).
    pub fn send_after(&mut self, delay: Duration, payload: impl Into<Bytes>) {
        let env = self.envelope(
            self.me.clone(),
            payload.into(),
            Kind::Send,
            SendOptions::default(),
        );
        let at = self.core.clock().now() + delay;
        self.core.schedule(at, env);
    }

    #[inline(always)]
    fn envelope(&mut self, to: AgentId, payload: Bytes, kind: Kind, opts: SendOptions) -> Envelope {
        let id = self.core.next_message_id();
        let conversation = opts
            .conversation
            .or_else(|| self.current.as_ref().and_then(|c| c.conversation))
            .or(Some(id));
        Envelope {
            id,
            from: Address::Agent(self.me.clone()),
            to: Address::Agent(to),
            conversation,
            in_reply_to: None,
            priority: opts.priority,
            deadline: opts.ttl.map(|ttl| self.core.clock().now() + ttl),
            kind,
            payload,
        }
    }
}
