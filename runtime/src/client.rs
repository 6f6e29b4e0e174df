//! The client handle: how a program outside the shards (any thread, any
//! executor) registers agents, sends and calls.
//!
//! A [`Client`] enters a shard through that shard's bounded command channel;
//! it goes straight to the shard that owns the target agent, so a client
//! call costs no extra hop on the mesh.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future::block_on;
use quire_shards::{
    owning_shard, Agent, AgentId, CallError, Envelope, MessageId, RegisterError, Rejection,
    SendOptions, ShardStats,
};

use crate::shard_runtime::{AgentFactory, Command, Probe};

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
}

/// Why an agent could not be registered through a client.
pub type RegisterResult = Result<(), RegisterError>;

impl Client {
    pub(crate) fn new(shards: Vec<flume::Sender<Command>>) -> Self {
        Self {
            shards: shards.into(),
        }
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

    /// [`Self::unregister`] for plain threads.
    pub fn unregister_blocking(&self, name: impl Into<AgentId>) -> Result<usize, RegisterError> {
        block_on(self.unregister(name))
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

    /// [`Self::send`] for plain threads.
    pub fn send_blocking(
        &self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
    ) -> Result<MessageId, Rejection> {
        block_on(self.send(to, payload))
    }

    /// [`Self::send_with`] for plain threads.
    pub fn send_with_blocking(
        &self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
        opts: SendOptions,
    ) -> Result<MessageId, Rejection> {
        block_on(self.send_with(to, payload, opts))
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

    /// [`Self::call`] for plain threads.
    pub fn call_blocking(
        &self,
        to: impl Into<AgentId>,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Envelope, CallError> {
        block_on(self.call(to, payload, timeout))
    }

    /// Every shard's figures, in shard order (a shard that is gone is left out).
    pub async fn stats(&self) -> Vec<ShardStats> {
        let mut answers = Vec::new();
        for shard in self.shards.iter() {
            let (done, answer) = flume::bounded(1);
            if shard.send_async(Command::Stats { done }).await.is_ok() {
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

    /// [`Self::stats`] for plain threads.
    pub fn stats_blocking(&self) -> Vec<ShardStats> {
        block_on(self.stats())
    }

    pub(crate) fn probe_blocking(&self) -> Option<Vec<Probe>> {
        let answers: Vec<_> = self
            .shards
            .iter()
            .map(|s| {
                let (done, answer) = flume::bounded(1);
                s.send(Command::Probe { done }).ok().map(|_| answer)
            })
            .collect::<Option<_>>()?;
        answers.into_iter().map(|a| a.recv().ok()).collect()
    }

    pub(crate) fn broadcast_blocking(&self, make: impl Fn() -> Command) {
        for s in self.shards.iter() {
            let _ = s.send(make());
        }
    }
}
