//! Entry points: messages from clients (plain, confirmed, waited-for calls),
//! from other shards and other nodes, from agents' contexts, and durable
//! messages (accepted, redelivered after a restart).

use super::*;

impl ShardCore {
    /// A one-way message from outside the shards (a client). `Ok` means it is
    /// queued at its receiver or on its way there; an error means it was
    /// refused and is counted.
    pub fn admit_client(
        &mut self,
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
    ) -> Result<MessageId, Rejection> {
        let env = self.outside_envelope(to, payload, Kind::Send, Address::Nobody, opts);
        let id = env.id;
        self.refuse_while_draining()?;
        self.route_ordinary(env).map_err(|(r, _)| r)?;
        Ok(id)
    }

    /// A call from outside the shards. `waiter` is completed exactly once:
    /// with the reply, a rejection (also when refused at once, which the
    /// returned error repeats) or a timeout.
    pub fn admit_client_call(
        &mut self,
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        timeout: Duration,
        waiter: ClientWaiter,
    ) -> Result<MessageId, Rejection> {
        self.admit_waited(to, payload, opts, timeout, waiter, Kind::Call)
    }

    pub(super) fn admit_waited(
        &mut self,
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        timeout: Duration,
        waiter: ClientWaiter,
        kind: Kind,
    ) -> Result<MessageId, Rejection> {
        self.ticket_seq += 1;
        let ticket = self.ticket_seq;
        let from = Address::Client(ClientTicket::new(self.cfg.shard, ticket));
        let env = self.outside_envelope(to, payload, kind, from, opts);
        let id = env.id;
        if let Err(reason) = self
            .refuse_while_draining()
            .and_then(|()| self.check_pending_room())
        {
            waiter(Err(reason.into()));
            return Err(reason);
        }
        // The waiter is in place before the message moves: a confirmed send
        // queued on this very shard is answered while it is routed.
        let started = self.clock.now();
        self.client_calls
            .insert(ticket, ClientCall { waiter, started });
        if let Err((reason, _)) = self.route_ordinary(env) {
            if let Some(call) = self.client_calls.remove(&ticket) {
                (call.waiter)(Err(reason.into()));
            }
            return Err(reason);
        }
        self.add_call_timeout(started + timeout, TimeoutOf::Client(ticket));
        Ok(id)
    }

    /// A one-way message from a client that wants to know its fate:
    /// `waiter` is completed exactly once, with an empty reply once the
    /// message is queued at its receiver (on whichever shard or node owns
    /// it), or with the reason it was refused there (or at once), or with
    /// `Timeout`. What the agent does with it is not waited for.
    pub fn admit_client_confirmed(
        &mut self,
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        timeout: Duration,
        waiter: ClientWaiter,
    ) -> Result<MessageId, Rejection> {
        self.admit_waited(to, payload, opts, timeout, waiter, Kind::Send)
    }

    /// Envelopes another shard of this node put on the mesh for this one.
    pub fn deliver_from_peer(&mut self, env: Envelope) {
        self.stats.cross_shard_in += 1;
        if self.stopping {
            if !env.kind.is_control() {
                self.stats.reject(Rejection::ShuttingDown);
            }
            return;
        }
        if env.kind.is_control() {
            self.route_control(env);
        } else if let Err((reason, env)) = self.deliver_local(env) {
            self.stats.reject(reason);
            self.bounce(env, reason);
        }
    }

    /// Consults `routes` for every agent address from now on: the node
    /// joined a cluster.
    pub fn set_remote_routes(&mut self, routes: Box<dyn RemoteRoutes>) {
        self.remote = Some(routes);
    }

    /// Envelopes waiting for link `link` to another node.
    pub fn link_outbox_len(&self, link: usize) -> usize {
        self.link_outboxes.get(link).map_or(0, Vec::len)
    }

    /// Takes everything waiting for link `link`, in order.
    pub fn take_link_outbox(&mut self, link: usize) -> Vec<Envelope> {
        match self.link_outboxes.get_mut(link) {
            Some(outbox) if !outbox.is_empty() => {
                let batch = std::mem::take(outbox);
                self.stats.cross_node_out += batch.len() as u64;
                batch
            }
            _ => Vec::new(),
        }
    }

    /// An envelope another node sent to an agent of this one: delivered
    /// here or across the mesh to its owning shard, never forwarded to a
    /// third node (the sender already chose this one). A refused ordinary
    /// message bounces to its sender, wherever that is.
    pub fn admit_from_link(&mut self, env: Envelope) {
        self.stats.cross_node_in += 1;
        if env.kind.is_control() {
            self.route_control(env);
            return;
        }
        if self.stopping || self.draining {
            self.stats.reject(Rejection::ShuttingDown);
            self.bounce(env, Rejection::ShuttingDown);
            return;
        }
        if let Err((reason, env)) = self.route_here(env) {
            self.stats.reject(reason);
            self.bounce(env, reason);
        }
    }

    /// A reply or a bounce made outside the shard (an answer that came back
    /// over a link, or a link's failure reported to its waiting callers).
    pub fn accept_control(&mut self, env: Envelope) {
        self.route_control(env);
    }

    #[inline(always)]
    pub(crate) fn send_from_agent(
        &mut self,
        env: Envelope,
        call: Option<(usize, Duration)>,
    ) -> Result<(), Rejection> {
        let Some((caller_slot, timeout)) = call else {
            return self.route_ordinary(env).map_err(|(r, _)| r);
        };
        self.check_pending_room()?;
        if self.slots[caller_slot].calls_waiting >= self.cfg.max_pending_calls_per_agent {
            self.stats.sent += 1;
            self.stats.reject(Rejection::TooManyPendingCalls);
            return Err(Rejection::TooManyPendingCalls);
        }
        let id = env.id;
        let links_before = self.stats.cross_node_out;
        self.route_ordinary(env).map_err(|(r, _)| r)?;
        let remote = self.stats.cross_node_out != links_before;
        // Timeouts run from the start of the current turn (the clock the shard
        // read when it began running agents), which saves a clock read per call.
        self.calls_made += 1;
        let started = self
            .calls_made
            .is_multiple_of(LATENCY_SAMPLE_EVERY)
            .then(|| self.clock.now());
        let caller_generation = self.slots[caller_slot].generation;
        self.slots[caller_slot].calls_waiting += 1;
        self.pending_calls.insert(
            id,
            PendingCall {
                caller_slot,
                caller_generation,
                started,
                remote,
            },
        );
        self.add_call_timeout(self.turn_clock + timeout, TimeoutOf::Agent(id));
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn send_control(&mut self, env: Envelope) {
        self.route_control(env);
    }

    pub(crate) fn schedule(&mut self, at: Instant, env: Envelope) {
        self.add_timer(at, Timer::Delayed(env));
    }

    pub(super) fn outside_envelope(
        &mut self,
        to: AgentId,
        payload: Bytes,
        kind: Kind,
        from: Address,
        opts: SendOptions,
    ) -> Envelope {
        let id = self.next_message_id();
        Envelope {
            id,
            from,
            to: Address::Agent(to),
            conversation: opts.conversation.or(Some(id)),
            in_reply_to: None,
            priority: opts.priority,
            deadline: opts.ttl.map(|ttl| self.clock.now() + ttl),
            kind,
            payload,
        }
    }

    pub(super) fn refuse_while_draining(&mut self) -> Result<(), Rejection> {
        if self.draining {
            self.stats.sent += 1;
            self.stats.reject(Rejection::ShuttingDown);
            return Err(Rejection::ShuttingDown);
        }
        Ok(())
    }

    pub(super) fn check_pending_room(&mut self) -> Result<(), Rejection> {
        if self.pending_calls() >= self.cfg.max_pending_calls {
            self.stats.sent += 1;
            self.stats.reject(Rejection::TooManyPendingCalls);
            return Err(Rejection::TooManyPendingCalls);
        }
        Ok(())
    }

    /// Queues again a durable message that was accepted before a restart and
    /// not finished. It takes its place even in a full mailbox (it was
    /// acknowledged long ago); one whose agent is gone is dead-lettered.
    pub fn redeliver(&mut self, msg: DurableMessage) -> Result<MessageId, Rejection> {
        let id = self.next_message_id();
        self.journal.readmit(id, msg.seq, msg.dedup);
        self.stats.durable_redelivered += 1;
        self.stats.sent += 1;
        let to = AgentId::from(msg.to.as_str());
        let priority = Priority::ALL
            .get(usize::from(msg.priority))
            .copied()
            .unwrap_or_default();
        let env = Envelope {
            id,
            from: Address::Nobody,
            to: Address::Agent(to.clone()),
            conversation: Some(id),
            in_reply_to: None,
            priority,
            deadline: None,
            kind: Kind::Send,
            payload: msg.payload,
        };
        let Some(&idx) = self.by_name.get(&to) else {
            self.stats.reject(Rejection::NoSuchAgent);
            self.journal.finish(id);
            return Err(Rejection::NoSuchAgent);
        };
        let slot = &mut self.slots[idx];
        slot.mailbox.push_unbounded(env);
        self.queued += 1;
        if !slot.scheduled {
            slot.scheduled = true;
            self.ready.push_back(idx);
        }
        Ok(id)
    }

    /// A one-way message from a client that must survive a crash once
    /// acknowledged. `dedup` is the sender's id for it, the same on every
    /// retry. The runtime acknowledges an accepted message (and a duplicate)
    /// once [`Self::journal_position`], read right after this call, is
    /// committed. Without a journal this is [`Self::admit_client`].
    pub fn admit_durable(
        &mut self,
        to: AgentId,
        payload: Bytes,
        opts: SendOptions,
        dedup: u64,
    ) -> Result<DurableAdmission, Rejection> {
        if !self.journal.enabled() {
            return self
                .admit_client(to, payload, opts)
                .map(DurableAdmission::Accepted);
        }
        if self.journal.is_duplicate(dedup) {
            self.stats.durable_duplicates += 1;
            return Ok(DurableAdmission::Duplicate);
        }
        if to.owning_shard(self.cfg.shard_count) != self.cfg.shard {
            // Durable messages are journaled where their agent lives.
            return Err(Rejection::Invalid);
        }
        let msg = DurableMessage {
            seq: self.journal.next_seq(),
            dedup,
            to: to.as_str().to_string(),
            priority: opts.priority as u8,
            payload: payload.clone(),
        };
        let env = self.outside_envelope(to, payload, Kind::Send, Address::Nobody, opts);
        let id = env.id;
        self.refuse_while_draining()?;
        self.route_ordinary(env).map_err(|(r, _)| r)?;
        self.journal.accept(id, msg);
        self.stats.durable_accepted += 1;
        Ok(DurableAdmission::Accepted(id))
    }
}
