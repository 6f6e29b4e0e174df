//! [`WasmAgent`]: a deployed WebAssembly module behaving as an [`Agent`],
//! under hard limits and a supervision policy, activated on demand and
//! reloadable while it runs.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::abi::{call_error_code, event, rejection_code};
use super::engine::{ModuleHash, WasmModule};
use super::instance::{id_to_guest, Event, LiveInstance, Violation};
use super::limits::{AgentLimits, OnRepeatedFailure, Supervision};
use super::shard::{Activation, WasmShard};
use crate::agent_status::{AgentState, AgentStatus};
use crate::envelope::{Envelope, Kind, MessageId};
use crate::error::{CallError, DefinitionError, Rejection};
use crate::shard_core::{Agent, Context};
use quire_storage::AgentRecord;

/// The agent kind WebAssembly agents are deployed as.
pub const WASM_KIND: &str = "wasm";

/// What a deployed WebAssembly agent's record holds (MessagePack in
/// [`AgentRecord::config`]): which module, under which limits.
///
/// ```
/// use quire_shards::wasm::{AgentLimits, ModuleHash, Supervision, WasmSpec};
/// let spec = WasmSpec::new(ModuleHash::of(b"module bytes"), AgentLimits::default(), Supervision::default());
/// let record = spec.record("orders/1");
/// assert_eq!(record.kind, "wasm");
/// assert_eq!(WasmSpec::from_record(&record).unwrap(), spec);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasmSpec {
    /// The module's content hash (hex).
    pub module: String,
    /// Its limits.
    pub limits: AgentLimits,
    /// Its supervision.
    pub supervision: Supervision,
}

impl WasmSpec {
    /// A spec for `module`.
    pub fn new(module: ModuleHash, limits: AgentLimits, supervision: Supervision) -> Self {
        Self {
            module: module.as_str().to_string(),
            limits,
            supervision,
        }
    }

    /// The record that deploys agent `name` with this spec.
    pub fn record(&self, name: &str) -> AgentRecord {
        let config = rmp_serde::to_vec_named(self).expect("a spec always encodes");
        AgentRecord::new(name, WASM_KIND, config)
    }

    /// Reads the spec of a `wasm` record.
    pub fn from_record(record: &AgentRecord) -> Result<Self, DefinitionError> {
        if record.kind != WASM_KIND {
            return Err(DefinitionError::WrongKind {
                name: record.name.clone(),
                kind: record.kind.clone(),
                expected: WASM_KIND,
            });
        }
        rmp_serde::from_slice(&record.config).map_err(|e| DefinitionError::Unreadable {
            name: record.name.clone(),
            what: "wasm spec",
            detail: e.to_string(),
        })
    }

    /// The module hash, parsed.
    pub fn module_hash(&self) -> Result<ModuleHash, DefinitionError> {
        ModuleHash::parse(&self.module)
            .ok_or_else(|| DefinitionError::NotAModuleHash(self.module.clone()))
    }
}

/// Quarantine state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quarantine {
    None,
    Until(Instant),
    UntilReload,
    /// Over its cost budget until its cost window ends.
    Throttled(Instant),
}

/// What an agent's handlers cost in its current cost window.
#[derive(Debug, Clone, Copy)]
struct CostWindow {
    /// On the shard's clock; `None` until the agent's first event.
    started: Option<Instant>,
    busy: Duration,
    refused: u64,
}

/// A WebAssembly agent (see the module docs).
pub struct WasmAgent {
    shard: Rc<WasmShard>,
    module: WasmModule,
    limits: AgentLimits,
    supervision: Supervision,
    activation: Rc<Activation>,
    /// Instances of earlier versions that still wait for answers to calls
    /// they made: their answers go to them, everything else to the new one.
    retiring: Vec<LiveInstance>,
    recent_failures: VecDeque<Instant>,
    quarantine: Quarantine,
    /// Quarantines in a row (each within `window_ms` of the last one's
    /// end): the next lasts `quarantine_ms << backoff`.
    backoff: u32,
    /// When the last quarantine ended (or was due to).
    last_quarantine_end: Option<Instant>,
    cost: CostWindow,
    /// Time its handlers ran, all windows together.
    busy_total: Duration,
    failures: u64,
    /// The latest failure, as the agent's status shows it.
    last_error: Option<String>,
    restarts: u64,
    activations: u64,
}

impl WasmAgent {
    /// An agent of `record` on the shard whose wasm host is `shard`. Makes
    /// no instance: the first message activates it.
    pub fn from_record(
        shard: &Rc<WasmShard>,
        record: &AgentRecord,
    ) -> Result<Self, DefinitionError> {
        let spec = WasmSpec::from_record(record)?;
        spec.limits.validate()?;
        let module = shard.engine().module(&spec.module_hash()?)?;
        Ok(Self::new(shard, module, spec.limits, spec.supervision))
    }

    /// An agent running `module`.
    pub fn new(
        shard: &Rc<WasmShard>,
        module: WasmModule,
        limits: AgentLimits,
        supervision: Supervision,
    ) -> Self {
        shard.want_pool(&module, &limits);
        Self {
            shard: shard.clone(),
            module,
            limits,
            supervision,
            activation: Rc::default(),
            retiring: Vec::new(),
            recent_failures: VecDeque::new(),
            quarantine: Quarantine::None,
            backoff: 0,
            last_quarantine_end: None,
            cost: CostWindow {
                started: None,
                busy: Duration::ZERO,
                refused: 0,
            },
            busy_total: Duration::ZERO,
            failures: 0,
            last_error: None,
            restarts: 0,
            activations: 0,
        }
    }

    /// Why messages are refused now, if they are (a quarantine or a
    /// throttling that has run its course is lifted here).
    fn refusing(&mut self, ctx: &Context<'_>) -> Option<Rejection> {
        // The clock is read only while a quarantine or throttling lasts.
        match self.quarantine {
            Quarantine::None => None,
            Quarantine::UntilReload => Some(Rejection::Quarantined),
            Quarantine::Until(t) if ctx.now() < t => Some(Rejection::Quarantined),
            Quarantine::Throttled(t) if ctx.now() < t => Some(Rejection::Throttled),
            Quarantine::Until(_) => {
                self.quarantine = Quarantine::None;
                self.recent_failures.clear();
                None
            }
            Quarantine::Throttled(_) => {
                self.quarantine = Quarantine::None;
                None
            }
        }
    }

    /// Counts what the last event cost; an agent over its budget for the
    /// window is throttled until the window ends, which counts as a failure.
    ///
    /// Work the agent made for itself (`self_made`: messages it sent
    /// itself, answers to its own calls and sends) is held against its busy
    /// budget in full. Of work clients and other agents ask of it, only a
    /// handler's time past the shard's turn quota is: a popular agent with
    /// quick handlers is not a hostile one (the shard's fair turns share
    /// that load), but no one on the shard runs while a handler does, so
    /// slowness on every message is the agent's, whoever asked. Refused
    /// sends and calls are always its own doing.
    fn account(&mut self, ctx: &mut Context<'_>, cost: (Duration, u32), self_made: bool) {
        let (elapsed, refused) = cost;
        // Windows of tens of ms are placed by the turn's start: no clock
        // read per message.
        let now = ctx.turn_started();
        self.busy_total += elapsed;
        let elapsed = if self_made {
            elapsed
        } else {
            elapsed.saturating_sub(ctx.turn_quota())
        };
        let window = Duration::from_millis(self.supervision.cost_window_ms.max(1));
        let window_started = match self.cost.started {
            Some(started) if now.saturating_duration_since(started) < window => started,
            _ => {
                self.cost = CostWindow {
                    started: Some(now),
                    busy: Duration::ZERO,
                    refused: 0,
                };
                now
            }
        };
        self.cost.busy += elapsed;
        self.cost.refused += u64::from(refused);
        let busy_cap = window * self.supervision.max_busy_percent.min(100) / 100;
        let over_time = self.cost.busy > busy_cap;
        if !over_time && self.cost.refused <= self.supervision.max_refused_per_window {
            return;
        }
        let quarantined = self.note_failure(now, self.supervision.quarantine_on_cost);
        self.last_error = Some(format!(
            "throttled: its handlers took {} ms of the last {} ms and {} of its sends and calls were refused",
            self.cost.busy.as_millis(),
            window.as_millis(),
            self.cost.refused
        ));
        if !quarantined {
            self.quarantine = Quarantine::Throttled(window_started + window);
        }
        self.shard.count_throttle();
        ctx.end_turn();
        tracing::warn!(
            agent = ctx.id().as_str(),
            quarantined,
            "throttled: its handlers took {} ms of the last {} ms and {} of its sends and calls were refused (limits: {}%, {})",
            self.cost.busy.as_millis(),
            window.as_millis(),
            self.cost.refused,
            self.supervision.max_busy_percent,
            self.supervision.max_refused_per_window
        );
    }

    /// Counts one failure at `now` (`at_once`: one that quarantines
    /// whatever the count); true if it quarantines the agent.
    fn note_failure(&mut self, now: Instant, at_once: bool) -> bool {
        self.failures += 1;
        let window = Duration::from_millis(self.supervision.window_ms);
        self.recent_failures.push_back(now);
        while self
            .recent_failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.recent_failures.pop_front();
        }
        let quarantine =
            at_once || self.recent_failures.len() >= self.supervision.max_failures as usize;
        if quarantine {
            let again = self
                .last_quarantine_end
                .is_some_and(|end| now.saturating_duration_since(end) <= window);
            self.backoff = if again { (self.backoff + 1).min(6) } else { 0 };
            let lasts = Duration::from_millis(self.supervision.quarantine_ms << self.backoff);
            self.last_quarantine_end = Some(now + lasts);
            self.recent_failures.clear();
            self.quarantine = match self.supervision.policy {
                OnRepeatedFailure::Restart => Quarantine::Until(now + lasts),
                OnRepeatedFailure::Stop => Quarantine::UntilReload,
            };
        }
        quarantine
    }

    /// Delivers `ev` to the live instance (activating one if needed).
    fn deliver(
        &mut self,
        ctx: &mut Context<'_>,
        ev: Event,
        payload: &Bytes,
        self_made: bool,
    ) -> Result<(), Violation> {
        if self.activation.live.borrow().is_none() {
            self.shard
                .activate(&self.activation, &self.module, &self.limits)
                .map_err(|detail| Violation {
                    reason: Rejection::AgentTrapped,
                    detail: format!("the agent could not be instantiated: {detail}"),
                })?;
            self.activations += 1;
        } else {
            self.shard.touch(&self.activation);
        }
        // A failed message leaves no state behind.
        ctx.undo_state_on_failure();
        let mut live = self.activation.live.borrow_mut();
        let instance = live.as_mut().expect("activated above");
        let result = instance.deliver(ctx, ev, payload, &self.limits, self.shard.preemption());
        let cost = instance.last_cost;
        drop(live);
        self.account(ctx, cost, self_made);
        result
    }

    /// A failure: the message fails with its reason, the instance is
    /// dropped (the next message gets a fresh one, state kept), and too many
    /// failures in the window quarantine the agent.
    fn fail(&mut self, ctx: &mut Context<'_>, violation: Violation) {
        ctx.fail_with(violation.reason, violation.detail.as_str());
        self.last_error = Some(format!(
            "{}: {}",
            violation.reason.as_str(),
            violation.detail
        ));
        ctx.end_turn();
        if self.activation.live.borrow_mut().take().is_some() {
            self.restarts += 1;
        }
        let at_once =
            self.supervision.quarantine_on_cost && violation.reason == Rejection::TimeLimit;
        let quarantine = self.note_failure(ctx.now(), at_once);
        self.shard.count_failure(quarantine);
        tracing::warn!(
            agent = ctx.id().as_str(),
            reason = violation.reason.as_str(),
            quarantined = quarantine,
            "{}",
            violation.detail
        );
    }

    /// Hands an answer to a call to the instance that made it.
    fn answer(&mut self, ctx: &mut Context<'_>, call: MessageId, ev: Event, payload: &Bytes) {
        ctx.undo_state_on_failure();
        if let Some(pos) = self
            .retiring
            .iter()
            .position(|i| i.outstanding_calls.contains(&call))
        {
            let old = &mut self.retiring[pos];
            old.outstanding_calls.remove(&call);
            let result = old.deliver(ctx, ev, payload, &self.limits, self.shard.preemption());
            if result.is_err() || old.outstanding_calls.is_empty() {
                self.retiring.swap_remove(pos);
            }
            if let Err(v) = result {
                self.fail(ctx, v);
            }
            return;
        }
        if let Some(live) = self.activation.live.borrow_mut().as_mut() {
            live.outstanding_calls.remove(&call);
        }
        if let Err(v) = self.deliver(ctx, ev, payload, true) {
            self.fail(ctx, v);
        }
    }
}

impl Drop for WasmAgent {
    fn drop(&mut self) {
        self.shard.release_pool(&self.module, &self.limits);
    }
}

impl Agent for WasmAgent {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        if let Some(reason) = self.refusing(ctx) {
            ctx.fail(reason);
            return;
        }
        let kind = if msg.kind == Kind::Call {
            event::CALL
        } else {
            event::SEND
        };
        let ev = Event {
            kind,
            id: id_to_guest(msg.id),
            code: 0,
        };
        let self_made = msg.from.agent() == Some(ctx.id());
        if let Err(v) = self.deliver(ctx, ev, &msg.payload, self_made) {
            self.fail(ctx, v);
        }
    }

    fn on_reply(
        &mut self,
        ctx: &mut Context<'_>,
        call: MessageId,
        reply: Result<Envelope, CallError>,
    ) {
        if self.refusing(ctx).is_some() {
            // A quarantined or throttled agent runs no handler, answers
            // included: otherwise a chain of calls to itself (each refused,
            // each refusal an answer) would run on at full speed.
            self.shard.count_answer_skipped();
            return;
        }
        let (ev, payload) = match reply {
            Ok(env) => (
                Event {
                    kind: event::REPLY,
                    id: id_to_guest(call),
                    code: 0,
                },
                env.payload,
            ),
            Err(e) => (
                Event {
                    kind: event::CALL_FAILED,
                    id: id_to_guest(call),
                    code: call_error_code(e),
                },
                Bytes::new(),
            ),
        };
        self.answer(ctx, call, ev, &payload);
    }

    fn on_undelivered(&mut self, ctx: &mut Context<'_>, msg: Envelope, reason: Rejection) {
        if self.refusing(ctx).is_some() {
            // A quarantined or throttled agent runs no handler, answers
            // included: otherwise a chain of calls to itself (each refused,
            // each refusal an answer) would run on at full speed.
            self.shard.count_answer_skipped();
            return;
        }
        let ev = Event {
            kind: event::UNDELIVERED,
            id: id_to_guest(msg.id),
            code: rejection_code(reason),
        };
        if let Err(v) = self.deliver(ctx, ev, &msg.payload, true) {
            self.fail(ctx, v);
        }
    }

    fn reconfigure(&mut self, record: &AgentRecord) -> Result<(), DefinitionError> {
        let spec = WasmSpec::from_record(record)?;
        spec.limits.validate()?;
        let module = self.shard.engine().module(&spec.module_hash()?)?;
        // The running version keeps answering for the calls it made;
        // everything from now on goes to the new one.
        if let Some(old) = self.activation.live.borrow_mut().take() {
            if !old.outstanding_calls.is_empty() {
                self.retiring.push(old);
            }
        }
        self.shard.want_pool(&module, &spec.limits);
        self.shard.release_pool(&self.module, &self.limits);
        self.module = module;
        self.limits = spec.limits;
        self.supervision = spec.supervision;
        self.quarantine = Quarantine::None;
        self.recent_failures.clear();
        self.backoff = 0;
        self.last_quarantine_end = None;
        Ok(())
    }

    fn status(&self, now: Instant) -> AgentStatus {
        let live = self.activation.live.borrow();
        let state = match (self.quarantine, live.is_some()) {
            (Quarantine::Until(t), _) if now < t => AgentState::Quarantined,
            (Quarantine::UntilReload, _) => AgentState::Quarantined,
            (Quarantine::Throttled(t), _) if now < t => AgentState::Throttled,
            (_, true) => AgentState::Running,
            (_, false) => AgentState::Idle,
        };
        AgentStatus {
            state,
            version: Some(self.module.hash.short().to_string()),
            failures: self.failures,
            restarts: self.restarts,
            activations: self.activations,
            memory_bytes: live.as_ref().map_or(0, LiveInstance::memory_bytes),
            busy_ns: self.busy_total.as_nanos() as u64,
            last_error: self.last_error.clone(),
        }
    }
}
