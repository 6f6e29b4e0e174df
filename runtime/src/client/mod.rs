//! The client handle: how a program outside the shards (any thread, any
//! executor) registers agents, sends and calls.
//!
//! A [`Client`] enters a shard through that shard's bounded command channel;
//! it goes straight to the shard that owns the target agent, so a client
//! call costs no extra hop on the mesh.

mod batch;
mod blocking;
mod wasm;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future::block_on;
use quire_shards::{
    owning_shard, Agent, AgentId, AgentRecord, CallError, Envelope, MessageId, RegisterError,
    Rejection, SendOptions, ShardStats,
};

use quire_shards::wasm::{ModuleHash, WasmEngine, WasmShardStats, WasmSpec};
use quire_shards::AgentInfo;

use crate::command::{AgentFactory, Command, Probe, ShardNames};
pub use crate::command::{DeployError, DurableError, DurableReceipt};
use crate::wasm_agents::{WasmDefaults, WasmOptions};

/// A cheap-to-clone, `Send + Sync` handle to a running node.
///
/// The async methods suit any executor; the `_blocking` ones suit plain
/// threads (never call those on a shard's own thread).
///
/// ```no_run
/// # use std::time::Duration;
/// # use quire_runtime::Node;
/// # use quire_shards::{Agent, Context, Envelope};
/// struct Echo;
/// impl Agent for Echo {
///     fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
///         let _ = ctx.reply(msg.payload);
///     }
/// }
/// let node = Node::builder().shards(1).start().unwrap();
/// let client = node.client();
/// client.register_blocking("echo", || Echo).unwrap();
/// let reply = client.call_blocking("echo", "hi", Duration::from_secs(1)).unwrap();
/// assert_eq!(&reply.payload[..], b"hi");
/// node.shutdown();
/// ```
#[derive(Clone)]
pub struct Client {
    shards: Arc<[flume::Sender<Command>]>,
    /// Compiles modules for deploys, on the caller's side of the channel.
    wasm: WasmEngine,
    wasm_defaults: WasmDefaults,
    /// Source of de-duplication ids for durable sends that bring none: a
    /// random start per handle, counted up.
    dedup_ids: Arc<AtomicU64>,
}

/// The acknowledgement of a durable message sent with
/// [`Client::send_durable_pipelined`], still to come.
#[must_use = "the message is only known to be durable once its acknowledgement arrives"]
pub struct PendingDurable {
    answer: flume::Receiver<Result<DurableReceipt, DurableError>>,
}

impl PendingDurable {
    /// Waits for the acknowledgement.
    pub async fn wait(self) -> Result<DurableReceipt, DurableError> {
        self.answer
            .recv_async()
            .await
            .unwrap_or(Err(DurableError::Rejected(Rejection::ShuttingDown)))
    }

    /// [`Self::wait`] for plain threads.
    pub fn wait_blocking(self) -> Result<DurableReceipt, DurableError> {
        self.answer
            .recv()
            .unwrap_or(Err(DurableError::Rejected(Rejection::ShuttingDown)))
    }
}

/// Why an agent could not be registered through a client.
pub type RegisterResult = Result<(), RegisterError>;

impl Client {
    pub(crate) fn new(
        shards: Vec<flume::Sender<Command>>,
        wasm: WasmEngine,
        wasm_defaults: WasmDefaults,
    ) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let start = RandomState::new().hash_one(std::time::SystemTime::now());
        Self {
            shards: shards.into(),
            wasm,
            wasm_defaults,
            dedup_ids: Arc::new(AtomicU64::new(start)),
        }
    }

    /// The limits and supervision a WebAssembly deploy gets when it names
    /// none of its own (the node's `[wasm.limits]`, `[wasm.supervision]`).
    pub(crate) fn wasm_defaults(&self) -> WasmDefaults {
        self.wasm_defaults
    }

    /// Shards on the node.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn owner(&self, id: &AgentId) -> &flume::Sender<Command> {
        &self.shards[owning_shard(id.as_str(), self.shards.len()) as usize]
    }

    /// Sends the command `make` builds around a one-slot answer channel to
    /// the shard that owns `id`, and awaits the answer; `gone` stands for
    /// the answer of a node that has stopped.
    async fn request<T>(
        &self,
        id: &AgentId,
        make: impl FnOnce(flume::Sender<T>) -> Command,
        gone: T,
    ) -> T {
        let (done, answer) = flume::bounded(1);
        if self.owner(id).send_async(make(done)).await.is_err() {
            return gone;
        }
        answer.recv_async().await.unwrap_or(gone)
    }

    /// Registers a native agent; `make` runs on the owning shard's thread.
    pub async fn register<A, F>(&self, name: impl Into<AgentId>, make: F) -> RegisterResult
    where
        A: Agent,
        F: FnOnce() -> A + Send + 'static,
    {
        let id = name.into();
        let factory: AgentFactory = Box::new(move || Box::new(make()));
        let to = id.clone();
        self.request(
            &to,
            |done| Command::Register { id, factory, done },
            Err(RegisterError::ShuttingDown),
        )
        .await
    }

    /// [`Self::register`] for plain threads.
    pub fn register_blocking<A, F>(&self, name: impl Into<AgentId>, make: F) -> RegisterResult
    where
        A: Agent,
        F: FnOnce() -> A + Send + 'static,
    {
        block_on(self.register(name, make))
    }

    /// Removes an agent; returns how many queued messages were rejected.
    pub async fn unregister(&self, name: impl Into<AgentId>) -> Result<usize, RegisterError> {
        let id = name.into();
        let to = id.clone();
        self.request(
            &to,
            |done| Command::Unregister { id, done },
            Err(RegisterError::ShuttingDown),
        )
        .await
    }

    /// Deploys an agent of a kind the node knows (see
    /// [`crate::NodeBuilder::agent_kind`]). On a durable node the answer
    /// comes once the definition is committed; after a restart the agent is
    /// rebuilt from it, with its state.
    pub async fn deploy(
        &self,
        name: impl Into<AgentId>,
        kind: &str,
        config: impl Into<Vec<u8>>,
    ) -> Result<(), DeployError> {
        let id = name.into();
        let record = AgentRecord::new(id.as_str(), kind, config.into());
        self.request(
            &id,
            |done| Command::Deploy { record, done },
            Err(DeployError::Register(RegisterError::ShuttingDown)),
        )
        .await
    }

    /// Removes a deployed agent with its state (committed before the
    /// answer on a durable node); returns how many queued messages were
    /// rejected.
    pub async fn undeploy(&self, name: impl Into<AgentId>) -> Result<usize, RegisterError> {
        self.unregister(name).await
    }

    /// A fresh de-duplication id for [`Self::send_durable_with`].
    pub fn next_dedup_id(&self) -> u64 {
        self.dedup_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a one-way message that survives a crash once acknowledged.
    pub async fn send_durable(
        &self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
    ) -> Result<DurableReceipt, DurableError> {
        let dedup = self.next_dedup_id();
        self.send_durable_with(to, payload, SendOptions::default(), dedup)
            .await
    }

    /// Sends a durable message under the sender's own de-duplication id:
    /// sending it again with the same id (a retry after a lost answer)
    /// never delivers it twice while the receiving shard remembers the id
    /// (`storage.dedup_window` finished messages).
    ///
    /// On a node with `durability = "none"` this is a plain send.
    pub async fn send_durable_with(
        &self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
        opts: SendOptions,
        dedup: u64,
    ) -> Result<DurableReceipt, DurableError> {
        let to = to.into();
        let payload = payload.into();
        let owner = to.clone();
        self.request(
            &owner,
            |done| Command::SendDurable {
                to,
                payload,
                opts,
                dedup,
                done,
            },
            Err(DurableError::Rejected(Rejection::ShuttingDown)),
        )
        .await
    }

    /// Hands a durable message to its shard at once (waiting only while the
    /// shard's command queue is full) and returns its pending
    /// acknowledgement, so that one plain thread can keep many durable
    /// messages in flight, and each group commit covers many of them.
    ///
    /// ```no_run
    /// # use quire_runtime::Node;
    /// # use quire_shards::SendOptions;
    /// # let node = Node::builder().start().unwrap();
    /// let client = node.client();
    /// let acks: Vec<_> = (0..100)
    ///     .map(|i| client.send_durable_pipelined("counter-1", format!("{i}"), SendOptions::default(), client.next_dedup_id()))
    ///     .collect();
    /// for ack in acks {
    ///     ack.wait_blocking().unwrap();
    /// }
    /// ```
    pub fn send_durable_pipelined(
        &self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
        opts: SendOptions,
        dedup: u64,
    ) -> PendingDurable {
        let to = to.into();
        let (done, answer) = flume::bounded(1);
        let cmd = Command::SendDurable {
            to: to.clone(),
            payload: payload.into(),
            opts,
            dedup,
            done,
        };
        // A node that is gone drops the command, and with it the answer's
        // sender: the wait then reports ShuttingDown.
        let _ = self.owner(&to).send(cmd);
        PendingDurable { answer }
    }

    /// Sends a one-way message; `Ok` once the owning shard has queued it.
    pub async fn send(
        &self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
    ) -> Result<MessageId, Rejection> {
        self.send_with(to, payload, SendOptions::default()).await
    }

    /// Sends with options.
    pub async fn send_with(
        &self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
        opts: SendOptions,
    ) -> Result<MessageId, Rejection> {
        let to = to.into();
        let payload = payload.into();
        let owner = to.clone();
        self.request(
            &owner,
            |done| Command::Send {
                to,
                payload,
                opts,
                done,
            },
            Err(Rejection::ShuttingDown),
        )
        .await
    }

    /// Calls an agent: resolves with its reply, a rejection or `Timeout`.
    pub async fn call(
        &self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Envelope, CallError> {
        self.call_with(to, payload, timeout, SendOptions::default())
            .await
    }

    /// Calls with options.
    pub async fn call_with(
        &self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
        timeout: Duration,
        opts: SendOptions,
    ) -> Result<Envelope, CallError> {
        let to = to.into();
        let payload = payload.into();
        let owner = to.clone();
        let gone = Err(CallError::Rejected(Rejection::ShuttingDown));
        self.request(
            &owner,
            |done| Command::Call {
                to,
                payload,
                opts,
                timeout,
                done,
            },
            gone,
        )
        .await
    }

    /// Queues `cmd` at shard `shard` without waiting; false when its queue
    /// is full or the shard is gone.
    pub(crate) fn try_command(&self, shard: usize, cmd: Command) -> bool {
        self.shards
            .get(shard)
            .is_some_and(|s| s.try_send(cmd).is_ok())
    }

    /// Stops an agent: it keeps its state and queue, and ordinary messages
    /// sent to it are refused as `AgentStopped` until [`Self::start_agent`].
    pub async fn stop_agent(&self, name: impl Into<AgentId>) -> Result<(), RegisterError> {
        self.set_stopped(name.into(), true).await
    }

    /// Starts a stopped agent again (a `stop` quarantine included).
    pub async fn start_agent(&self, name: impl Into<AgentId>) -> Result<(), RegisterError> {
        self.set_stopped(name.into(), false).await
    }

    async fn set_stopped(&self, id: AgentId, stopped: bool) -> Result<(), RegisterError> {
        let key = id.clone();
        self.request(
            &key,
            |done| Command::SetStopped { id, stopped, done },
            Err(RegisterError::ShuttingDown),
        )
        .await
    }

    /// Every agent of the node with its status, sorted by name.
    pub async fn agents(&self) -> Vec<AgentInfo> {
        let mut all: Vec<AgentInfo> = self
            .ask_every_shard(|done| Command::ListAgents { done })
            .await
            .into_iter()
            .flatten()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Every shard's WebAssembly figures (activations, pools, failures).
    pub async fn wasm_stats(&self) -> Vec<WasmShardStats> {
        self.ask_every_shard(|done| Command::WasmStats { done })
            .await
    }

    /// The name patterns deployed on this node (`prefix*`) with their
    /// modules' short hashes, sorted. Every shard keeps every pattern; the
    /// shards' lists are merged so that one a shard has not taken yet
    /// still shows.
    pub async fn patterns(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .ask_every_shard(|done| Command::Patterns { done })
            .await
            .into_iter()
            .flatten()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The node's module compiler (its figures tell compiles from cache hits).
    pub fn wasm_engine(&self) -> &WasmEngine {
        &self.wasm
    }

    /// Asks every shard at once; answers in shard order (a shard that is
    /// gone is left out).
    async fn ask_every_shard<T>(&self, make: impl Fn(flume::Sender<T>) -> Command) -> Vec<T> {
        let mut answers = Vec::new();
        for shard in self.shards.iter() {
            let (done, answer) = flume::bounded(1);
            if shard.send_async(make(done)).await.is_ok() {
                answers.push(answer);
            }
        }
        let mut out = Vec::new();
        for a in answers {
            if let Ok(s) = a.recv_async().await {
                out.push(s);
            }
        }
        out
    }

    /// Every shard's figures, in shard order (a shard that is gone is left out).
    pub async fn stats(&self) -> Vec<ShardStats> {
        self.ask_every_shard(|done| Command::Stats { done }).await
    }

    /// Every shard's figures for a metrics scrape, in shard order; `None`
    /// for a shard that did not answer within `timeout` (stalled or gone).
    pub fn metrics_blocking(
        &self,
        timeout: std::time::Duration,
    ) -> Vec<Option<crate::metrics::ShardMetrics>> {
        self.ask_each_blocking(
            |_, done| Command::Metrics { done },
            Some(std::time::Instant::now() + timeout),
        )
    }

    /// The names of the agents in the slots each shard published as
    /// running (`wanted[shard]`, slot + 1), for a CPU profile; `None` for a
    /// shard that did not answer within `timeout`.
    pub(crate) fn slot_names_blocking(
        &self,
        wanted: &[Vec<usize>],
        timeout: std::time::Duration,
    ) -> Vec<Option<ShardNames>> {
        self.ask_each_blocking(
            |i, done| Command::NameSlots {
                slots: wanted.get(i).cloned().unwrap_or_default(),
                done,
            },
            Some(std::time::Instant::now() + timeout),
        )
    }

    /// Every shard's probe, in shard order; `None` where a shard is gone or
    /// did not answer by `deadline`.
    pub(crate) fn probe_until(&self, deadline: std::time::Instant) -> Vec<Option<Probe>> {
        self.ask_each_blocking(|_, done| Command::Probe { done }, Some(deadline))
    }

    /// Asks every shard at once from a plain thread; answers in shard
    /// order, `None` where a shard is gone or missed the `deadline`.
    fn ask_each_blocking<T>(
        &self,
        make: impl Fn(usize, flume::Sender<T>) -> Command,
        deadline: Option<std::time::Instant>,
    ) -> Vec<Option<T>> {
        let answers: Vec<_> = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (done, answer) = flume::bounded(1);
                let sent = match deadline {
                    Some(at) => s.send_deadline(make(i, done), at).is_ok(),
                    None => s.send(make(i, done)).is_ok(),
                };
                sent.then_some(answer)
            })
            .collect();
        answers
            .into_iter()
            .map(|a| {
                a.and_then(|a| match deadline {
                    Some(at) => a.recv_deadline(at).ok(),
                    None => a.recv().ok(),
                })
            })
            .collect()
    }

    /// Queues a command on every shard, waiting for room up to `deadline`
    /// (a shard whose queue stays full past it is skipped).
    pub(crate) fn broadcast_until(&self, make: impl Fn() -> Command, deadline: std::time::Instant) {
        for s in self.shards.iter() {
            let _ = s.send_deadline(make(), deadline);
        }
    }
}
