//! Routing: where an envelope goes (this shard's mailboxes, another
//! shard's outbox, a link to another node), client calls completed, and
//! refused messages bounced to their senders.

use super::*;

impl ShardCore {
    /// Envelopes waiting for the mesh towards `peer`.
    pub fn outbox_len(&self, peer: ShardId) -> usize {
        self.outboxes[peer as usize].len()
    }

    /// Takes everything waiting for `peer`, in order, as one batch.
    pub fn take_outbox(&mut self, peer: ShardId) -> Vec<Envelope> {
        let outbox = &mut self.outboxes[peer as usize];
        if outbox.is_empty() {
            return Vec::new();
        }
        // The next batch will likely be as large as this one: allocate it
        // once now rather than growing it message by message.
        let next = Vec::with_capacity(outbox.len().next_power_of_two().min(4096));
        let batch = std::mem::replace(outbox, next);
        self.stats.cross_shard_out += batch.len() as u64;
        self.stats.batches_out += 1;
        batch
    }

    /// Routes an ordinary message emitted on this shard; counts it as sent,
    /// and as rejected when refused at once.
    #[allow(clippy::result_large_err)] // the message itself comes back, unboxed
    #[inline(always)]
    pub(super) fn route_ordinary(&mut self, env: Envelope) -> Result<(), (Rejection, Envelope)> {
        self.stats.sent += 1;
        let result = if self.stopping {
            Err((Rejection::ShuttingDown, env))
        } else {
            match &env.to {
                Address::Agent(to) => match self.remote_route(to) {
                    RemoteRoute::Here => self.route_here(env),
                    RemoteRoute::Link(link) => {
                        let outbox = &mut self.link_outboxes[link];
                        if outbox.len() >= self.cfg.outbox_capacity {
                            Err((Rejection::QueueFull, env))
                        } else {
                            outbox.push(env);
                            Ok(())
                        }
                    }
                    RemoteRoute::Down => Err((Rejection::NodeDown, env)),
                },
                _ => Err((Rejection::Invalid, env)),
            }
        };
        if let Err((reason, _)) = &result {
            self.stats.reject(*reason);
        }
        result
    }

    /// Where `to` lives as the cluster sees it (always here outside one).
    #[inline(always)]
    pub(super) fn remote_route(&mut self, to: &AgentId) -> RemoteRoute {
        let Some(remote) = self.remote.as_mut() else {
            return RemoteRoute::Here;
        };
        let route = remote.route(to);
        if let RemoteRoute::Link(link) = route {
            if link >= self.link_outboxes.len() {
                self.link_outboxes.resize_with(link + 1, Vec::new);
            }
        }
        route
    }

    /// Routes an ordinary message to its owning shard on this node.
    #[allow(clippy::result_large_err)] // the message itself comes back, unboxed
    #[inline(always)]
    pub(super) fn route_here(&mut self, env: Envelope) -> Result<(), (Rejection, Envelope)> {
        let Address::Agent(to) = &env.to else {
            return Err((Rejection::Invalid, env));
        };
        let owner = to.owning_shard(self.cfg.shard_count);
        if owner == self.cfg.shard {
            self.deliver_local(env)
        } else {
            let outbox = &mut self.outboxes[owner as usize];
            if outbox.len() >= self.cfg.outbox_capacity {
                Err((Rejection::QueueFull, env))
            } else {
                outbox.push(env);
                Ok(())
            }
        }
    }

    /// Routes a reply or a bounce. These are never refused for room (see
    /// [`Kind`]); one whose receiver is gone is counted and dropped.
    #[inline(always)]
    pub(super) fn route_control(&mut self, env: Envelope) {
        // A handler's reply to a client waits for its commit (output commit).
        let Some(env) = self.replies.capture(env) else {
            return;
        };
        let owner = match &env.to {
            Address::Agent(id) => match self.remote_route(id) {
                RemoteRoute::Here => id.owning_shard(self.cfg.shard_count),
                RemoteRoute::Link(link) => {
                    self.link_outboxes[link].push(env);
                    return;
                }
                RemoteRoute::Down => {
                    self.stats.control_dropped += 1;
                    return;
                }
            },
            Address::Client(t) => t.shard(),
            Address::Nobody => {
                self.stats.control_dropped += 1;
                return;
            }
        };
        if owner == self.cfg.shard {
            if self.deliver_local(env).is_err() {
                self.stats.control_dropped += 1;
            }
        } else {
            self.outboxes[owner as usize].push(env);
        }
    }

    /// Puts a message for an agent (or a client) of this shard where it goes.
    #[allow(clippy::result_large_err)] // the message itself comes back, unboxed
    #[inline(always)]
    pub(super) fn deliver_local(&mut self, mut env: Envelope) -> Result<(), (Rejection, Envelope)> {
        if let Address::Client(ticket) = &env.to {
            self.complete_client_call(ticket.key(), env);
            return Ok(());
        }
        // An answer to a call goes to the slot recorded with the call, with
        // no name lookup; anything else finds its agent by name.
        let answered_slot = match env.kind {
            Kind::Reply | Kind::CallRejected(_) | Kind::HandlerFailed(_) => {
                let Some(pending) = env
                    .in_reply_to
                    .and_then(|call| self.take_pending_call(call))
                else {
                    // The call already timed out: its caller has its answer.
                    self.stats.late_replies += 1;
                    return Ok(());
                };
                if let Kind::CallRejected(reason) | Kind::HandlerFailed(reason) = env.kind {
                    // An agent's caller gets the reason (the ABI has no
                    // room for the detail; its failure was logged).
                    env.kind = Kind::CallFailed(CallError::Rejected(reason));
                } else {
                    self.stats.replies += 1;
                    if let Some(started) = pending.started {
                        if pending.remote {
                            self.record_remote_round_trip(started);
                        } else {
                            self.record_round_trip(started);
                        }
                    }
                }
                let slot = &self.slots[pending.caller_slot];
                if !slot.live || slot.generation != pending.caller_generation {
                    return Err((Rejection::NoSuchAgent, env));
                }
                Some(pending.caller_slot)
            }
            Kind::Send | Kind::Call | Kind::Bounce(_) | Kind::CallFailed(_) => None,
        };
        let idx = match answered_slot {
            Some(idx) => idx,
            None => match &env.to {
                Address::Agent(id) => match self.by_name.get(id) {
                    Some(&idx) => idx,
                    None => {
                        let id = id.clone();
                        let activated = match env.kind {
                            Kind::Send | Kind::Call if self.activator.is_some() => {
                                self.activate_unknown(&id)
                            }
                            _ => None,
                        };
                        match activated {
                            Some(idx) => idx,
                            None => return Err((Rejection::NoSuchAgent, env)),
                        }
                    }
                },
                _ => return Err((Rejection::Invalid, env)),
            },
        };
        let slot = &mut self.slots[idx];
        if slot.stopped && !env.kind.is_control() {
            return Err((Rejection::AgentStopped, env));
        }
        let urgent = env.priority.is_urgent();
        // A client's confirmed send is answered once it is queued here.
        let confirm = match (&env.kind, &env.from) {
            (Kind::Send, Address::Client(ticket)) => Some((*ticket, env.id, env.priority)),
            _ => None,
        };
        match slot.mailbox.push(env) {
            Ok(()) => {
                if let Some((ticket, id, priority)) = confirm {
                    self.confirm_queued(ticket, id, priority);
                }
                let slot = &mut self.slots[idx];
                self.queued += 1;
                if !slot.scheduled {
                    slot.scheduled = true;
                    self.ready.push_back(idx);
                }
                if urgent && self.cfg.express_scheduling && !slot.express {
                    slot.express = true;
                    self.express.push_back(idx);
                }
                Ok(())
            }
            Err(env) => Err((Rejection::QueueFull, env)),
        }
    }

    /// Tells the client whose send was just queued here (an empty reply).
    #[cold]
    pub(super) fn confirm_queued(
        &mut self,
        ticket: ClientTicket,
        id: MessageId,
        priority: Priority,
    ) {
        let reply = self.next_message_id();
        self.route_control(Envelope {
            id: reply,
            from: Address::Nobody,
            to: Address::Client(ticket),
            conversation: Some(id),
            in_reply_to: Some(id),
            priority,
            deadline: None,
            kind: Kind::Reply,
            payload: Bytes::new(),
        });
    }

    pub(super) fn complete_client_call(&mut self, ticket: u64, env: Envelope) {
        let Some(call) = self.client_calls.remove(&ticket) else {
            self.stats.late_replies += 1;
            return;
        };
        let result = match env.kind {
            Kind::Reply => {
                self.stats.replies += 1;
                self.record_round_trip(call.started);
                Ok(env)
            }
            Kind::CallRejected(reason) | Kind::Bounce(reason) => Err(reason.into()),
            Kind::HandlerFailed(reason) => Err(CallFailure {
                error: CallError::Rejected(reason),
                detail: Some(String::from_utf8_lossy(&env.payload).into_owned()),
            }),
            Kind::CallFailed(e) => Err(e.into()),
            Kind::Send | Kind::Call => Err(Rejection::Invalid.into()),
        };
        (call.waiter)(result);
    }

    pub(super) fn record_round_trip(&mut self, started: Instant) {
        let ns = self.elapsed_ns(started);
        self.stats.call_latency_ns.saturating_record(ns);
    }

    pub(super) fn record_remote_round_trip(&mut self, started: Instant) {
        let ns = self.elapsed_ns(started);
        self.stats.remote_call_latency_ns.saturating_record(ns);
    }

    /// Tells the caller of the call `env` (as it came, payload gone) that
    /// its handler failed for `reason`, and what the runtime saw.
    pub(super) fn handler_failed(&mut self, mut env: Envelope, reason: Rejection, detail: String) {
        self.journal.finish(env.id);
        env.payload = Bytes::from(detail);
        self.answer_back(env, Kind::HandlerFailed(reason));
    }

    /// Sends a refused ordinary message back to its sender.
    pub(super) fn bounce(&mut self, env: Envelope, reason: Rejection) {
        // A durable message that cannot be delivered is dead-lettered: it
        // leaves the inbox like a handled one.
        self.journal.finish(env.id);
        let kind = match env.kind {
            Kind::Send => Kind::Bounce(reason),
            Kind::Call => Kind::CallRejected(reason),
            _ => {
                self.stats.control_dropped += 1;
                return;
            }
        };
        self.answer_back(env, kind);
    }

    /// Routes a control message of `kind` answering `env` to its sender,
    /// with `env`'s payload.
    fn answer_back(&mut self, env: Envelope, kind: Kind) {
        let id = self.next_message_id();
        self.route_control(Envelope {
            id,
            from: env.to,
            to: env.from,
            conversation: env.conversation,
            in_reply_to: Some(env.id),
            priority: env.priority,
            deadline: None,
            kind,
            payload: env.payload,
        });
    }
}
