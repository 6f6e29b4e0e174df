//! The shard's registry: agents registered and deployed, their slots, what
//! recovery puts back, and agents made on first message (name patterns).

use super::*;

impl ShardCore {
    /// Registers a native agent under `id`, which must hash to this shard.
    pub fn register(&mut self, id: AgentId, agent: Box<dyn Agent>) -> Result<(), RegisterError> {
        if self.stopping || self.draining {
            return Err(RegisterError::ShuttingDown);
        }
        let owner = id.owning_shard(self.cfg.shard_count);
        if owner != self.cfg.shard {
            return Err(RegisterError::WrongShard {
                id,
                owner,
                this: self.cfg.shard,
            });
        }
        if self.by_name.contains_key(&id) {
            return Err(RegisterError::AlreadyRegistered(id));
        }
        let mut slot = Slot {
            id: Some(id.clone()),
            generation: 0,
            agent: Some(agent),
            mailbox: Mailbox::with_headroom(self.cfg.mailbox_capacity, self.cfg.urgent_headroom)
                .with_byte_limit(self.cfg.mailbox_max_bytes),
            scheduled: false,
            express: false,
            live: true,
            persistent: false,
            stopped: false,
            state: KeyValues::default(),
            calls_waiting: 0,
            state_bytes: 0,
        };
        let idx = match self.free_slots.pop() {
            Some(idx) => {
                slot.generation = self.slots[idx].generation.wrapping_add(1);
                self.slots[idx] = slot;
                idx
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.by_name.insert(id, idx);
        Ok(())
    }

    /// Removes an agent; what waited in its mailbox goes back to its senders
    /// as `NoSuchAgent`. Returns how many ordinary messages were rejected.
    pub fn unregister(&mut self, id: &AgentId) -> Result<usize, RegisterError> {
        let idx = self
            .by_name
            .remove(id)
            .ok_or_else(|| RegisterError::NotRegistered(id.clone()))?;
        let slot = &mut self.slots[idx];
        slot.live = false;
        slot.agent = None;
        slot.state = KeyValues::default();
        slot.state_bytes = 0;
        if std::mem::take(&mut slot.persistent) {
            self.journal
                .log(Mutation::DeleteAgent(id.as_str().to_string()));
        }
        if std::mem::take(&mut self.slots[idx].calls_waiting) > 0 {
            // Its calls' answers have nobody to go to: free their entries
            // now rather than when each times out.
            let generation = self.slots[idx].generation;
            self.pending_calls
                .retain(|_, p| p.caller_slot != idx || p.caller_generation != generation);
        }
        let slot = &mut self.slots[idx];
        let waiting: Vec<Envelope> = slot.mailbox.drain().collect();
        self.queued -= waiting.len();
        if !slot.scheduled {
            self.free_slots.push(idx);
        }
        let mut rejected = 0;
        for env in waiting {
            if env.kind.is_control() {
                self.stats.control_dropped += 1;
            } else {
                rejected += 1;
                self.stats.reject(Rejection::NoSuchAgent);
                self.bounce(env, Rejection::NoSuchAgent);
            }
        }
        Ok(rejected)
    }

    /// True when `id` is registered here.
    pub fn is_registered(&self, id: &AgentId) -> bool {
        self.by_name.contains_key(id)
    }

    /// Messages waiting in this shard's mailboxes, all agents together.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The agent with the most messages waiting, and how many: a walk over
    /// every slot, for scrapes and diagnosis (never on the message path).
    /// `None` while every mailbox is empty.
    pub fn fullest_mailbox(&self) -> Option<(AgentId, usize)> {
        if self.queued == 0 {
            return None;
        }
        self.slots
            .iter()
            .filter(|s| s.live)
            .filter_map(|s| Some((s.id.clone()?, s.mailbox.len())))
            .max_by_key(|(_, n)| *n)
            .filter(|(_, n)| *n > 0)
    }

    /// Agents registered here.
    pub fn agent_count(&self) -> usize {
        self.by_name.len()
    }

    /// Deploys an agent: registers it and journals its definition, so that a
    /// restart rebuilds it (with its state) from `record`.
    pub fn deploy(
        &mut self,
        record: AgentRecord,
        agent: Box<dyn Agent>,
    ) -> Result<(), RegisterError> {
        let id = AgentId::from(record.name.as_str());
        self.register(id.clone(), agent)?;
        let idx = self.by_name[&id];
        self.slots[idx].persistent = true;
        self.journal.log(Mutation::PutAgent(record));
        Ok(())
    }

    /// Gives a deployed agent a new definition (a hot reload): the agent
    /// takes it through [`Agent::reconfigure`], between two of its messages,
    /// and the new record is journaled. Nothing queued is lost: what waits in
    /// the mailbox is handled by the new version.
    pub fn redeploy(&mut self, record: AgentRecord) -> Result<(), RegisterError> {
        let id = AgentId::from(record.name.as_str());
        let idx = *self
            .by_name
            .get(&id)
            .ok_or_else(|| RegisterError::NotRegistered(id.clone()))?;
        let slot = &mut self.slots[idx];
        // Handlers run to completion before the shard takes a command, so the
        // agent is always in its slot here.
        let agent = slot
            .agent
            .as_mut()
            .ok_or_else(|| RegisterError::NotRegistered(id.clone()))?;
        agent
            .reconfigure(&record)
            .map_err(|reason| RegisterError::Refused { id, reason })?;
        if slot.persistent {
            self.journal.log(Mutation::PutAgent(record));
        }
        Ok(())
    }

    /// Stops (`true`) or starts again (`false`) an agent: a stopped agent
    /// keeps its state and what is queued, and ordinary messages sent to it
    /// are refused as `AgentStopped`.
    pub fn set_stopped(&mut self, id: &AgentId, stopped: bool) -> Result<(), RegisterError> {
        let idx = *self
            .by_name
            .get(id)
            .ok_or_else(|| RegisterError::NotRegistered(id.clone()))?;
        let slot = &mut self.slots[idx];
        slot.stopped = stopped;
        if !stopped && !slot.mailbox.is_empty() && !slot.scheduled {
            slot.scheduled = true;
            self.ready.push_back(idx);
        }
        Ok(())
    }

    /// The `n` agents whose handlers ran longest (those that ran at all),
    /// costliest first: a walk over every slot, for scrapes (never on the
    /// message path).
    pub fn costliest_agents(&self, n: usize) -> Vec<AgentInfo> {
        let now = self.clock.now();
        let mut top: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .filter_map(|(i, s)| Some((s.agent.as_ref()?.status(now).busy_ns, i)))
            .filter(|(busy, _)| *busy > 0)
            .collect();
        top.sort_unstable_by_key(|t| std::cmp::Reverse(t.0));
        top.truncate(n);
        top.into_iter()
            .filter_map(|(_, idx)| {
                let name = self.slots[idx].id.as_ref()?.as_str().to_string();
                Some(self.agent_info(idx, name))
            })
            .collect()
    }

    /// What a listing shows of the agent in `idx`, named `name`.
    fn agent_info(&self, idx: usize, name: String) -> AgentInfo {
        let slot = &self.slots[idx];
        let now = self.clock.now();
        let mut status = slot
            .agent
            .as_ref()
            .map(|a| a.status(now))
            .unwrap_or_default();
        if slot.stopped {
            status.state = AgentState::Stopped;
        }
        AgentInfo {
            name,
            shard: self.cfg.shard,
            deployed: slot.persistent,
            queued: slot.mailbox.len(),
            state_entries: slot.state.len(),
            state_bytes: slot.state_bytes,
            calls_waiting: slot.calls_waiting,
            status,
        }
    }

    /// Every agent on this shard with its status, sorted by name.
    pub fn list_agents(&self) -> Vec<AgentInfo> {
        let mut list: Vec<AgentInfo> = self
            .by_name
            .iter()
            .map(|(id, &idx)| self.agent_info(idx, id.as_str().to_string()))
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Sets what builds agents for unknown names (see [`Activator`]).
    pub fn set_activator(&mut self, activator: Activator) {
        self.activator = Some(activator);
    }

    /// Journals a definition that is not an agent of this shard (a name
    /// pattern every shard keeps), so a restart reads it back.
    pub fn log_definition(&mut self, record: AgentRecord) {
        self.journal.log(Mutation::PutAgent(record));
    }

    /// Journals the removal of such a definition.
    pub fn drop_definition(&mut self, name: &str) {
        self.journal.log(Mutation::DeleteAgent(name.to_string()));
    }

    /// The slot of a new agent the activator builds for `id`, if it does.
    #[cold]
    pub(super) fn activate_unknown(&mut self, id: &AgentId) -> Option<usize> {
        if self.draining || self.stopping {
            return None;
        }
        let mut activator = self.activator.take()?;
        let built = activator(id);
        self.activator = Some(activator);
        let (record, agent) = built?;
        self.deploy(record, agent).ok()?;
        self.by_name.get(id).copied()
    }

    /// Brings back a deployed agent at recovery (its definition is stored
    /// already, so nothing is journaled).
    pub fn restore_agent(
        &mut self,
        id: AgentId,
        agent: Box<dyn Agent>,
    ) -> Result<(), RegisterError> {
        self.register(id.clone(), agent)?;
        let idx = self.by_name[&id];
        self.slots[idx].persistent = true;
        Ok(())
    }

    /// Puts back one state entry of a restored agent; `false` when no such
    /// agent is registered.
    pub fn restore_state(&mut self, id: &AgentId, key: Vec<u8>, value: Bytes) -> bool {
        let Some(&idx) = self.by_name.get(id) else {
            return false;
        };
        let slot = &mut self.slots[idx];
        slot.state_bytes += key.len() + value.len();
        if let Some(old) = slot.state.insert(key.into_boxed_slice(), value) {
            slot.state_bytes -= old.len();
        }
        true
    }

    /// Rebuilds the de-duplication window from the partition.
    pub fn restore_dedup(&mut self, slots: impl IntoIterator<Item = (u32, u64)>, next: u32) {
        self.journal.restore_dedup(slots, next);
    }
}
