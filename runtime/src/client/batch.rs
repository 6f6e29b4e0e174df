//! Many agents in one request per shard: `register_many` for native agents
//! and `deploy_wasm_many` for one WebAssembly module under many names. The
//! names are grouped by owning shard and every shard gets its whole group
//! in one command, all shards at once, so a batch costs one round trip per
//! shard instead of one per agent (and, on a durable node, one commit).

use futures_lite::future::block_on;
use quire_shards::wasm::ModuleHash;
use quire_shards::{owning_shard, Agent, AgentId, RegisterError};

use super::{Client, DeployError, RegisterResult};
use crate::command::{AgentFactory, Command};
use crate::wasm_agents::WasmOptions;
use quire_shards::AgentRecord;

impl Client {
    /// Splits `items` by the shard that owns each one's name; keeps the
    /// position of each for the answers.
    fn by_shard<T>(&self, items: Vec<(AgentId, T)>) -> Vec<Vec<(usize, AgentId, T)>> {
        let shards = self.shards.len();
        let mut groups: Vec<Vec<(usize, AgentId, T)>> = (0..shards).map(|_| Vec::new()).collect();
        for (i, (id, item)) in items.into_iter().enumerate() {
            groups[owning_shard(id.as_str(), shards) as usize].push((i, id, item));
        }
        groups
    }

    /// Sends each non-empty group its command, then gathers the answers in
    /// the items' order; `gone` answers for a shard that has stopped.
    async fn each_group<T, R: Clone>(
        &self,
        groups: Vec<Vec<(usize, AgentId, T)>>,
        len: usize,
        make: impl Fn(Vec<(AgentId, T)>, flume::Sender<Vec<R>>) -> Command,
        gone: R,
    ) -> Vec<R> {
        let mut waiting = Vec::new();
        for (shard, group) in groups.into_iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            let (positions, items): (Vec<usize>, Vec<(AgentId, T)>) =
                group.into_iter().map(|(i, id, t)| (i, (id, t))).unzip();
            let (done, answer) = flume::bounded(1);
            let sent = self.shards[shard]
                .send_async(make(items, done))
                .await
                .is_ok();
            waiting.push((positions, sent.then_some(answer)));
        }
        let mut results = vec![gone.clone(); len];
        for (positions, answer) in waiting {
            let answers = match answer {
                Some(a) => a.recv_async().await.unwrap_or_default(),
                None => Vec::new(),
            };
            for (i, position) in positions.into_iter().enumerate() {
                if let Some(r) = answers.get(i) {
                    results[position] = r.clone();
                }
            }
        }
        results
    }

    /// Registers many native agents, one command per shard; an answer per
    /// agent, in the order given (one taken name fails alone).
    ///
    /// ```
    /// use quire_runtime::Node;
    /// use quire_shards::{Agent, Context, Envelope};
    ///
    /// struct Idle;
    /// impl Agent for Idle {
    ///     fn handle(&mut self, _: &mut Context<'_>, _: Envelope) {}
    /// }
    ///
    /// let node = Node::builder().shards(1).start().unwrap();
    /// let agents = (0..1000).map(|i| (format!("worker-{i}"), || Idle));
    /// let results = node.client().register_many_blocking(agents);
    /// assert!(results.iter().all(Result::is_ok));
    /// assert_eq!(node.client().agents_blocking().len(), 1000);
    /// node.shutdown();
    /// ```
    pub async fn register_many<A, F, N>(
        &self,
        agents: impl IntoIterator<Item = (N, F)>,
    ) -> Vec<RegisterResult>
    where
        A: Agent,
        F: FnOnce() -> A + Send + 'static,
        N: Into<AgentId>,
    {
        let items: Vec<(AgentId, AgentFactory)> = agents
            .into_iter()
            .map(|(name, make)| {
                let factory: AgentFactory = Box::new(move || Box::new(make()));
                (name.into(), factory)
            })
            .collect();
        let len = items.len();
        self.each_group(
            self.by_shard(items),
            len,
            |agents, done| Command::RegisterMany { agents, done },
            Err(RegisterError::ShuttingDown),
        )
        .await
    }

    /// [`Self::register_many`] for plain threads.
    pub fn register_many_blocking<A, F, N>(
        &self,
        agents: impl IntoIterator<Item = (N, F)>,
    ) -> Vec<RegisterResult>
    where
        A: Agent,
        F: FnOnce() -> A + Send + 'static,
        N: Into<AgentId>,
    {
        block_on(self.register_many(agents))
    }

    /// Deploys one WebAssembly module under many names: compiled once, one
    /// command per shard, one commit per shard on a durable node. The
    /// module's hash, and an answer per name in the order given; a module
    /// that does not compile fails the whole batch.
    pub async fn deploy_wasm_many(
        &self,
        names: impl IntoIterator<Item = impl Into<AgentId>>,
        module: impl Into<Vec<u8>>,
        opts: WasmOptions,
    ) -> Result<(ModuleHash, Vec<Result<(), DeployError>>), DeployError> {
        let ids: Vec<AgentId> = names.into_iter().map(Into::into).collect();
        let Some(first) = ids.first() else {
            return Err(DeployError::Build {
                name: String::new(),
                reason: "a batch deploy needs at least one name".into(),
            });
        };
        let (record, hash) = self.wasm_record(first, module.into(), opts).await?;
        let items: Vec<(AgentId, AgentRecord)> = ids
            .into_iter()
            .map(|id| {
                let mut r = record.clone();
                r.name = id.as_str().to_string();
                (id, r)
            })
            .collect();
        let len = items.len();
        let results = self
            .each_group(
                self.by_shard(items),
                len,
                |agents, done| Command::DeployMany {
                    records: agents.into_iter().map(|(_, r)| r).collect(),
                    done,
                },
                Err(DeployError::Register(RegisterError::ShuttingDown)),
            )
            .await;
        Ok((hash, results))
    }

    /// [`Self::deploy_wasm_many`] for plain threads.
    pub fn deploy_wasm_many_blocking(
        &self,
        names: impl IntoIterator<Item = impl Into<AgentId>>,
        module: impl Into<Vec<u8>>,
        opts: WasmOptions,
    ) -> Result<(ModuleHash, Vec<Result<(), DeployError>>), DeployError> {
        block_on(self.deploy_wasm_many(names, module, opts))
    }
}
