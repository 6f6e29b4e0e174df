//! Deploying WebAssembly agents through a [`Client`]: modules compiled on a
//! thread of their own (never on a shard or the caller's executor), agents
//! and name patterns deployed, reloaded and undeployed.

use super::*;

impl Client {
    /// Deploys a WebAssembly agent: compiles `module` (once per node, on a
    /// thread of its own: never on a shard), checks it against the agent
    /// ABI, and deploys agent `name` running it. The agent holds no instance
    /// until its first message. Returns the module's content hash.
    pub async fn deploy_wasm(
        &self,
        name: impl Into<AgentId>,
        module: impl Into<Vec<u8>>,
        opts: WasmOptions,
    ) -> Result<ModuleHash, DeployError> {
        self.wasm_command(name.into(), module.into(), opts, |record, done| {
            Command::Deploy { record, done }
        })
        .await
    }

    /// Hot-reloads WebAssembly agent `name` with `module`: messages handled
    /// from now on run the new version (what is queued included); answers
    /// to calls the old version made still go to it. Its state is kept.
    pub async fn reload_wasm(
        &self,
        name: impl Into<AgentId>,
        module: impl Into<Vec<u8>>,
        opts: WasmOptions,
    ) -> Result<ModuleHash, DeployError> {
        self.wasm_command(name.into(), module.into(), opts, |record, done| {
            Command::Redeploy { record, done }
        })
        .await
    }

    /// Compiles `module` and sends the owning shard of `id` the command
    /// `make` builds around the agent's record.
    async fn wasm_command(
        &self,
        id: AgentId,
        module: Vec<u8>,
        opts: WasmOptions,
        make: impl FnOnce(AgentRecord, flume::Sender<Result<(), DeployError>>) -> Command,
    ) -> Result<ModuleHash, DeployError> {
        let (record, hash) = self.wasm_record(&id, module, opts).await?;
        self.request(
            &id,
            |done| make(record, done),
            Err(DeployError::Register(RegisterError::ShuttingDown)),
        )
        .await?;
        Ok(hash)
    }

    /// Deploys `module` under a name pattern (`prefix*`): every name with
    /// that prefix becomes an agent running it, created by its owning
    /// shard when the first message for it arrives, and kept (with its
    /// state) like any deployed agent from then on. Every shard learns the
    /// pattern before this returns.
    pub async fn deploy_wasm_pattern(
        &self,
        pattern: &str,
        module: impl Into<Vec<u8>>,
        opts: WasmOptions,
    ) -> Result<ModuleHash, DeployError> {
        quire_shards::wasm::pattern_prefix(pattern).map_err(|reason| DeployError::Build {
            name: pattern.to_string(),
            reason,
        })?;
        let id = AgentId::new(pattern).map_err(|e| DeployError::Build {
            name: pattern.to_string(),
            reason: e.to_string().into(),
        })?;
        let (record, hash) = self.wasm_record(&id, module.into(), opts).await?;
        let spec = WasmSpec::from_record(&record).map_err(|reason| DeployError::Build {
            name: pattern.to_string(),
            reason,
        })?;
        let record = spec.pattern_record(pattern);
        for answer in self
            .ask_every_shard(|done| Command::DeployPattern {
                record: record.clone(),
                done,
            })
            .await
        {
            answer?;
        }
        Ok(hash)
    }

    /// Removes a name pattern from every shard (agents it already created
    /// stay); true if some shard had it.
    pub fn undeploy_wasm_pattern_blocking(&self, pattern: &str) -> Result<bool, DeployError> {
        block_on(self.undeploy_wasm_pattern(pattern))
    }

    /// [`Self::undeploy_wasm_pattern_blocking`] for async callers.
    pub async fn undeploy_wasm_pattern(&self, pattern: &str) -> Result<bool, DeployError> {
        let answers = self
            .ask_every_shard(|done| Command::UndeployPattern {
                pattern: pattern.to_string(),
                done,
            })
            .await;
        let mut any = false;
        for a in answers {
            any |= a?;
        }
        Ok(any)
    }

    /// Finds or compiles the module and builds the agent's record.
    pub(super) async fn wasm_record(
        &self,
        id: &AgentId,
        bytes: Vec<u8>,
        opts: WasmOptions,
    ) -> Result<(AgentRecord, ModuleHash), DeployError> {
        let module = match self.wasm.lookup(&bytes) {
            Some(module) => module,
            None => self.compile_off_thread(id, bytes).await?,
        };
        let spec = opts.spec(module.hash().clone(), &self.wasm_defaults);
        spec.limits
            .validate()
            .map_err(|reason| DeployError::Build {
                name: id.to_string(),
                reason,
            })?;
        Ok((spec.record(id.as_str()), module.hash().clone()))
    }

    /// Compiles on a thread of its own, so that neither an async caller's
    /// executor nor a shard ever waits on Cranelift.
    async fn compile_off_thread(
        &self,
        id: &AgentId,
        bytes: Vec<u8>,
    ) -> Result<quire_shards::wasm::WasmModule, DeployError> {
        let engine = self.wasm.clone();
        let (tx, rx) = flume::bounded(1);
        std::thread::Builder::new()
            .name("quire-compile".into())
            .spawn(move || {
                let _ = tx.send(engine.compile(&bytes));
            })
            .map_err(|e| DeployError::Build {
                name: id.to_string(),
                reason: format!("cannot start a compile thread: {e}").into(),
            })?;
        rx.recv_async()
            .await
            .map_err(|_| DeployError::Build {
                name: id.to_string(),
                reason: "the compile thread died".into(),
            })?
            .map_err(|source| DeployError::Module {
                name: id.to_string(),
                source,
            })
    }
}
