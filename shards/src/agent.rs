//! The native agent interface: the [`Agent`] trait and the [`Context`] a
//! handler uses to send, reply and call.
//!
//! Handlers are synchronous and never block: a `call` returns at once with the
//! call's id, and the answer arrives later through [`Agent::on_reply`]. This is
//! the same model the WebAssembly host offers, so native and wasm agents
//! behave alike, and a shard's dispatcher never waits on an agent.

use std::time::{Duration, Instant};

use bytes::Bytes;

use quire_storage::AgentRecord;

use crate::agent_id::{AgentId, ShardId};
use crate::core::ShardCore;
use crate::envelope::{Address, ConversationId, Envelope, Kind, MessageId, Priority};
use crate::error::{CallError, Rejection};

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
    fn reconfigure(&mut self, record: &AgentRecord) -> Result<(), String> {
        Err(format!(
            "agents of kind {:?} cannot be reloaded",
            record.kind
        ))
    }

    /// How the agent is doing at `now` (the shard's clock), for `list`;
    /// native agents: always running.
    fn status(&self, now: Instant) -> AgentStatus {
        let _ = now;
        AgentStatus::default()
    }
}

/// What an agent is doing now, as listings show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Ready to handle messages (a native agent, or a live instance).
    #[default]
    Running,
    /// Addressable but with no live instance: activated by its next message.
    Idle,
    /// Failed too often; messages are refused until the policy lets it run.
    Quarantined,
    /// Took more than its share of its shard's time (or had too many sends
    /// refused) in its current window: messages are refused until the
    /// window ends.
    Throttled,
    /// Stopped by an operator; messages are refused until it is started.
    Stopped,
}

/// An agent's status: its state and what its supervision counted.
///
/// ```
/// use quire_shards::{AgentState, AgentStatus};
/// assert_eq!(AgentStatus::default().state, AgentState::Running);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgentStatus {
    /// What it is doing.
    pub state: AgentState,
    /// The version it runs (a WebAssembly module's content hash), if any.
    pub version: Option<String>,
    /// Messages it failed (limits broken, traps) since it was deployed.
    pub failures: u64,
    /// Fresh instances it was given after a failure.
    pub restarts: u64,
    /// Times it was activated from idle.
    pub activations: u64,
    /// Memory of its live instance (linear memory and tables), in bytes (0
    /// when idle or native).
    pub memory_bytes: u64,
    /// Time its handlers ran, in ns (WebAssembly agents).
    pub busy_ns: u64,
    /// Its latest failure: the reason's name and what the node saw, e.g.
    /// `fuel_exhausted: the handler ran out of fuel (limit 5)`.
    pub last_error: Option<String>,
}

/// Per-message options for [`Context::send_with`] and [`Context::call_with`].
///
/// ```
/// use std::time::Duration;
/// use quire_shards::{Priority, SendOptions};
/// let opts = SendOptions::default().priority(Priority::High).ttl(Duration::from_millis(5));
/// assert_eq!(opts.priority, Priority::High);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// Scheduling class at the receiver.
    pub priority: Priority,
    /// Time to live: after it the message is a dead letter.
    pub ttl: Option<Duration>,
    /// The conversation to file the message under (default: the current
    /// message's, or a new one).
    pub conversation: Option<ConversationId>,
}

impl SendOptions {
    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the time to live.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the conversation id.
    pub fn conversation(mut self, id: ConversationId) -> Self {
        self.conversation = Some(id);
        self
    }
}

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
