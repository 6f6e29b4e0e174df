//! Running agents: ready queues, turns, one message handed to a handler
//! under `catch_unwind`, and the replies it made held for output commit.

use super::*;

pub(crate) mod context;

impl ShardCore {
    /// Publishes, in `probe`, which agent has its turn (slot + 1, 0 between
    /// turns): two relaxed stores per turn. [`Self::slot_name`] names it.
    pub fn publish_running(&mut self, probe: std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        self.running = Some(probe);
    }

    /// The agent in a slot published by [`Self::publish_running`] (slot + 1).
    pub fn slot_name(&self, published: usize) -> Option<AgentId> {
        let slot = self.slots.get(published.checked_sub(1)?)?;
        slot.id.clone()
    }

    /// Lets ready agents handle up to about `budget` messages (an agent's turn
    /// is not cut short). Returns how many were handled or rejected. It
    /// returns early, whatever the budget, after the turn of an agent that
    /// asked its shard to yield ([`crate::Context::yield_shard`]: a handler
    /// that ran long): call it again while [`Self::has_ready`].
    pub fn run(&mut self, budget: usize) -> usize {
        self.turn_clock = self.clock.now();
        self.run_time = Duration::ZERO;
        let mut done = 0;
        while done < budget {
            let (idx, from_express) = match self.express.pop_front() {
                Some(idx) => (idx, true),
                None => match self.ready.pop_front() {
                    Some(idx) => (idx, false),
                    None => break,
                },
            };
            let slot = &mut self.slots[idx];
            if from_express {
                slot.express = false;
                if !slot.live || slot.agent.is_none() {
                    // Its entry in `ready` finishes the bookkeeping.
                    continue;
                }
            }
            if !slot.live {
                slot.scheduled = false;
                self.free_slots.push(idx);
                continue;
            }
            let (Some(mut agent), Some(me)) = (slot.agent.take(), slot.id.take()) else {
                continue;
            };
            if let Some(probe) = &self.running {
                probe.store(idx + 1, std::sync::atomic::Ordering::Relaxed);
            }
            // The clock is read only when a message has a deadline to check,
            // and then once per turn.
            let mut now = None;
            let mut turn = 0;
            while turn < self.cfg.agent_batch {
                let Some(env) = self.slots[idx].mailbox.pop() else {
                    break;
                };
                self.queued -= 1;
                turn += 1;
                self.dispatch(agent.as_mut(), &me, idx, env, &mut now);
                if std::mem::take(&mut self.end_turn) {
                    break;
                }
            }
            done += turn;
            let yield_now = self.yield_requested;
            if let Some(probe) = &self.running {
                probe.store(0, std::sync::atomic::Ordering::Relaxed);
            }
            let slot = &mut self.slots[idx];
            slot.id = Some(me);
            if slot.live {
                slot.agent = Some(agent);
            }
            if from_express {
                // Still in `ready` (scheduled), or put there for the rest.
                if slot.live && !slot.mailbox.is_empty() && !slot.scheduled {
                    slot.scheduled = true;
                    self.ready.push_back(idx);
                }
            } else if slot.live && !slot.mailbox.is_empty() {
                self.ready.push_back(idx);
            } else {
                slot.scheduled = false;
                if !slot.live {
                    self.free_slots.push(idx);
                }
            }
            if yield_now {
                break;
            }
        }
        done
    }

    /// The shard's clock as read when the current run of turns began.
    pub(crate) fn turn_clock(&self) -> Instant {
        self.turn_clock
    }

    /// Handler time after which a run of turns ends.
    pub(crate) fn turn_quota(&self) -> Duration {
        self.cfg.turn_quota
    }

    /// Charges `ran` of handler time to the running turn and run (see
    /// [`crate::Context::charge_time`]).
    pub(crate) fn charge_turn_time(&mut self, ran: Duration) {
        self.run_time += ran;
        if self.run_time >= self.cfg.turn_quota {
            // The agent goes to the back of the ready queue.
            self.end_turn = true;
            self.yield_requested = true;
        }
    }

    /// Runs agents until none has messages waiting, whatever yields they
    /// ask for (a harness with no other tasks: tests, benchmarks, doc
    /// examples; a shard's dispatcher calls [`Self::run`] and serves its
    /// other tasks between runs). Returns how many messages were handled or
    /// rejected. An agent that keeps sending itself messages keeps it going.
    pub fn run_until_idle(&mut self) -> usize {
        let mut done = 0;
        while self.has_ready() {
            done += self.run(usize::MAX);
            self.yield_requested = false;
        }
        done
    }

    /// True once if an agent asked its shard to let its other tasks run
    /// (see [`crate::Context::yield_shard`]); `run` returned early for it.
    pub fn take_yield_request(&mut self) -> bool {
        std::mem::take(&mut self.yield_requested)
    }

    /// True when some agent has messages waiting.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.express.is_empty()
    }

    /// Ends the capture of the handler that just ran on `slot`: its replies
    /// to clients leave now, or once what they report is committed.
    #[inline(always)]
    pub(super) fn release_replies(&mut self, slot: usize, position_before: u64) {
        let position = self.journal.position();
        let needs_commit = position != position_before || self.slots[slot].persistent;
        let mut out = Vec::new();
        self.replies.end_handler(position, needs_commit, &mut out);
        for env in out {
            self.route_control(env);
        }
    }

    #[allow(clippy::too_many_lines)]
    pub(super) fn dispatch(
        &mut self,
        agent: &mut dyn Agent,
        me: &AgentId,
        slot: usize,
        env: Envelope,
        now: &mut Option<Instant>,
    ) {
        match env.kind {
            Kind::Send | Kind::Call => {
                if env.deadline.is_some()
                    && env.is_expired(*now.get_or_insert_with(|| self.clock.now()))
                {
                    self.stats.reject(Rejection::Expired);
                    self.bounce(env, Rejection::Expired);
                    return;
                }
                // One message in LATENCY_SAMPLE_EVERY is timed: two clock
                // reads per 16 messages.
                let timed = (self.stats.handled + self.stats.agent_panics)
                    .is_multiple_of(LATENCY_SAMPLE_EVERY)
                    .then(|| self.clock.now());
                let current = Current {
                    id: env.id,
                    // Only a call can be replied to; a send needs no return address.
                    from: (env.kind == Kind::Call).then(|| env.from.clone()),
                    kind: env.kind,
                    conversation: env.conversation,
                    priority: env.priority,
                    replied: false,
                    failed: None,
                    failure_detail: None,
                };
                let position_before = self.journal.position();
                self.replies.begin_handler();
                let mut ctx = Context {
                    core: self,
                    me,
                    slot,
                    current: Some(current),
                };
                let panicked =
                    catch_unwind(AssertUnwindSafe(|| agent.handle(&mut ctx, env))).is_err();
                let current = ctx.current.take().expect("current message is kept");
                self.state_undo = None;
                if let Some(started) = timed {
                    let ns = self.elapsed_ns(started);
                    self.stats.handle_ns.saturating_record(ns);
                }
                // A durable message is finished once handled, failed or not:
                // a message that makes its handler panic must not come back
                // after every restart.
                self.journal.finish(current.id);
                self.release_replies(slot, position_before);
                let reason = if panicked {
                    self.stats.agent_panics += 1;
                    Rejection::AgentFailed
                } else if let Some(reason) = current.failed {
                    reason
                } else {
                    self.stats.handled += 1;
                    return;
                };
                self.stats.reject(reason);
                let answered = current.kind == Kind::Call && current.replied;
                if !answered {
                    // The payload went to the handler; the sender gets the
                    // reason, and a caller what the runtime saw of it.
                    let detail = current
                        .failure_detail
                        .filter(|_| current.kind == Kind::Call);
                    let failed = Envelope {
                        id: current.id,
                        from: current.from.unwrap_or(Address::Nobody),
                        to: Address::Agent(me.clone()),
                        conversation: current.conversation,
                        in_reply_to: None,
                        priority: current.priority,
                        deadline: None,
                        kind: current.kind,
                        payload: Bytes::new(),
                    };
                    match detail {
                        Some(detail) => self.handler_failed(failed, reason, detail),
                        None => self.bounce(failed, reason),
                    }
                }
            }
            Kind::Reply
            | Kind::CallFailed(_)
            | Kind::Bounce(_)
            | Kind::CallRejected(_)
            | Kind::HandlerFailed(_) => {
                let mut ctx = Context {
                    core: self,
                    me,
                    slot,
                    current: None,
                };
                let outcome = catch_unwind(AssertUnwindSafe(|| match env.kind {
                    Kind::Reply => {
                        let call = env.in_reply_to.unwrap_or(env.id);
                        agent.on_reply(&mut ctx, call, Ok(env));
                    }
                    Kind::CallFailed(e) => {
                        agent.on_reply(&mut ctx, env.in_reply_to.unwrap_or(env.id), Err(e));
                    }
                    Kind::HandlerFailed(reason) => {
                        let call = env.in_reply_to.unwrap_or(env.id);
                        agent.on_reply(&mut ctx, call, Err(CallError::Rejected(reason)));
                    }
                    Kind::Bounce(reason) | Kind::CallRejected(reason) => {
                        agent.on_undelivered(&mut ctx, returned_original(env), reason);
                    }
                    Kind::Send | Kind::Call => unreachable!("ordinary kinds are handled above"),
                }));
                self.state_undo = None;
                if outcome.is_err() {
                    self.stats.agent_panics += 1;
                }
            }
        }
    }
}

/// The message a bounce carries back, as its sender sent it: addressed to the
/// agent that could not take it, with its original id and payload.
fn returned_original(bounce: Envelope) -> Envelope {
    let kind = match bounce.kind {
        Kind::CallRejected(_) => Kind::Call,
        _ => Kind::Send,
    };
    Envelope {
        id: bounce.in_reply_to.unwrap_or(bounce.id),
        from: bounce.to,
        to: bounce.from,
        in_reply_to: None,
        kind,
        ..bounce
    }
}
