//! Compiling agent modules: once per node, off every reactor, cached on disk.
//!
//! A [`WasmEngine`] is shared by every shard of a node (it is `Send + Sync`).
//! `compile` runs on the caller's thread (a client's, or a blocking pool's),
//! never on a shard's reactor: it hashes the bytes (BLAKE3), returns the
//! module already compiled under that hash if there is one, else loads the
//! compiled artifact from the cache directory, else compiles with Cranelift,
//! checks the ABI, instantiates once to read the ABI version, and writes
//! both the source and the artifact to the cache directory so a restart does
//! not compile again.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmer::sys::{Cranelift, EngineBuilder, NativeEngineExt};
use wasmer::wasmparser::Operator;
use wasmer::{Engine, Module};

use super::abi::{check_module, AbiError};
use super::compile_limit::{compile_in_child, metered_engine, module_binary, CompilerProcess};
use super::instance::LiveInstance;
use super::limits::AgentLimits;
use super::tunables::AgentTunables;

/// Bumped when the artifact layout or the instrumentation changes, so stale
/// artifacts are compiled again rather than loaded.
const ARTIFACT_TAG: &str = "wasmer-7.4.2-cranelift-metered-v2";

/// A module's content hash (BLAKE3 of its bytes), in hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleHash(Arc<str>);

impl ModuleHash {
    /// The hash of `bytes`.
    ///
    /// ```
    /// use quire_shards::wasm::ModuleHash;
    /// assert_eq!(ModuleHash::of(b"x").as_str().len(), 64);
    /// ```
    pub fn of(bytes: &[u8]) -> Self {
        Self(blake3::hash(bytes).to_hex().as_str().into())
    }

    /// Parses a hash written by [`Self::as_str`].
    pub fn parse(hex: &str) -> Option<Self> {
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(hex.to_ascii_lowercase().into()))
    }

    /// The hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for listings.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A compiled, checked agent module. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct WasmModule {
    pub(crate) hash: ModuleHash,
    pub(crate) module: Module,
    /// The engine the module was compiled (or loaded) with: its stores are
    /// made from it.
    pub(crate) engine: Engine,
}

impl fmt::Debug for WasmModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmModule")
            .field("hash", &self.hash)
            .finish()
    }
}

impl WasmModule {
    /// Its content hash.
    pub fn hash(&self) -> &ModuleHash {
        &self.hash
    }
}

impl From<WasmError> for crate::error::DefinitionError {
    /// The module a definition names could not be loaded.
    fn from(e: WasmError) -> Self {
        Self::Module(e.to_string())
    }
}

/// Why a module could not be compiled or loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WasmError {
    /// Not WebAssembly, or invalid WebAssembly.
    #[error("the module does not compile: {0}")]
    Compile(String),
    /// Valid WebAssembly that does not speak the agent ABI.
    #[error("the module is not a Quire agent: {0}")]
    Abi(#[from] AbiError),
    /// It compiled but could not be instantiated within the agent's limits.
    #[error("the module cannot be instantiated: {0}")]
    Instantiate(String),
    /// The module's bytes are over the node's limit.
    #[error("the module is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No module with this hash was deployed on this node.
    #[error("no module with hash {0} is known to this node")]
    Unknown(String),
    /// Compiling it broke the node's compile limits (time or memory) and
    /// was stopped.
    #[error("compile_limit: {0}")]
    CompileLimit(String),
    /// The cache directory could not be written.
    #[error("the module cache at {path} failed: {reason}")]
    Cache {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Figures of one engine since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Modules compiled from source.
    pub compiled: u64,
    /// Modules loaded from an artifact in the cache directory.
    pub loaded: u64,
    /// Requests answered by a module already in memory.
    pub reused: u64,
    /// Time spent compiling.
    pub compile_time: Duration,
}

struct Inner {
    /// Loads artifacts; stores of loaded modules are made from it.
    loader: Engine,
    cache_dir: Option<PathBuf>,
    max_module_bytes: usize,
    /// Where new modules are compiled; `None`: on the caller's thread.
    compiler: Option<CompilerProcess>,
    modules: Mutex<HashMap<ModuleHash, WasmModule>>,
    stats: Mutex<EngineStats>,
}

/// The node's compiler and module registry, shared by every shard.
///
/// ```
/// use quire_shards::wasm::WasmEngine;
/// let engine = WasmEngine::new(None);
/// let err = engine.compile(b"not wasm").unwrap_err();
/// assert!(err.to_string().contains("does not compile"));
/// ```
#[derive(Clone)]
pub struct WasmEngine {
    inner: Arc<Inner>,
}

impl fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmEngine")
            .field("cache_dir", &self.inner.cache_dir)
            .finish()
    }
}

/// Largest module a node takes unless told otherwise.
pub const DEFAULT_MAX_MODULE_BYTES: usize = 32 << 20;

impl WasmEngine {
    /// An engine caching compiled modules in `cache_dir` (created if
    /// missing), or in memory only.
    pub fn new(cache_dir: Option<PathBuf>) -> Self {
        Self::with_max_module_bytes(cache_dir, DEFAULT_MAX_MODULE_BYTES)
    }

    /// The same, refusing modules over `max_module_bytes`.
    pub fn with_max_module_bytes(cache_dir: Option<PathBuf>, max_module_bytes: usize) -> Self {
        Self::with_compiler(cache_dir, max_module_bytes, None)
    }

    /// The same, compiling new modules in child processes of `compiler`
    /// under its limits (see [`CompilerProcess`]); `None`: in-process, with
    /// no limit.
    pub fn with_compiler(
        cache_dir: Option<PathBuf>,
        max_module_bytes: usize,
        compiler: Option<CompilerProcess>,
    ) -> Self {
        let mut loader: Engine = EngineBuilder::new(Cranelift::default()).engine().into();
        loader.set_tunables(AgentTunables::new());
        if let Some(dir) = &cache_dir {
            remove_leftovers(dir);
        }
        Self {
            inner: Arc::new(Inner {
                loader,
                cache_dir,
                max_module_bytes,
                compiler,
                modules: Mutex::new(HashMap::new()),
                stats: Mutex::new(EngineStats::default()),
            }),
        }
    }

    /// Figures since the engine was made.
    pub fn stats(&self) -> EngineStats {
        *self.inner.stats.lock().expect("stats lock")
    }

    /// Compiles (or finds) the module in `bytes`, checked against the ABI.
    /// Blocking: milliseconds for a small module, more for a large one; call
    /// it off any reactor.
    pub fn compile(&self, bytes: &[u8]) -> Result<WasmModule, WasmError> {
        if bytes.len() > self.inner.max_module_bytes {
            return Err(WasmError::TooLarge {
                size: bytes.len(),
                limit: self.inner.max_module_bytes,
            });
        }
        let hash = ModuleHash::of(bytes);
        if let Some(found) = self.cached(&hash) {
            return Ok(found);
        }
        if let Some(found) = self.load_artifact(&hash) {
            return Ok(self.remember(found));
        }
        let module = self.compile_fresh(hash, bytes)?;
        self.write_cache(&module, bytes)?;
        Ok(self.remember(module))
    }

    /// The module in `bytes` if this engine has it in memory already: a
    /// hash and a lookup, cheap enough for any thread (no compile, no disk).
    pub fn lookup(&self, bytes: &[u8]) -> Option<WasmModule> {
        self.cached(&ModuleHash::of(bytes))
    }

    /// The module deployed under `hash`: from memory, from its cached
    /// artifact, or compiled again from its cached source.
    pub fn module(&self, hash: &ModuleHash) -> Result<WasmModule, WasmError> {
        if let Some(found) = self.cached(hash) {
            return Ok(found);
        }
        if let Some(found) = self.load_artifact(hash) {
            return Ok(self.remember(found));
        }
        let source = self
            .cache_path(hash, "wasm")
            .and_then(|p| std::fs::read(p).ok())
            .ok_or_else(|| WasmError::Unknown(hash.to_string()))?;
        self.compile(&source)
    }

    fn cached(&self, hash: &ModuleHash) -> Option<WasmModule> {
        let found = self
            .inner
            .modules
            .lock()
            .expect("module lock")
            .get(hash)
            .cloned();
        if found.is_some() {
            self.inner.stats.lock().expect("stats lock").reused += 1;
        }
        found
    }

    fn remember(&self, module: WasmModule) -> WasmModule {
        self.inner
            .modules
            .lock()
            .expect("module lock")
            .entry(module.hash.clone())
            .or_insert(module)
            .clone()
    }

    fn compile_fresh(&self, hash: ModuleHash, bytes: &[u8]) -> Result<WasmModule, WasmError> {
        let started = Instant::now();
        let binary = module_binary(bytes)?;
        let (module, engine) = match &self.inner.compiler {
            Some(process) => {
                let artifact = compile_in_child(process, &binary)?;
                // SAFETY: the artifact was written by our own compiler
                // process for this engine configuration, just now.
                let module =
                    unsafe { Module::deserialize(&self.inner.loader, artifact) }.map_err(|e| {
                        WasmError::Compile(format!("the compiled artifact does not load: {e}"))
                    })?;
                (module, self.inner.loader.clone())
            }
            None => {
                let engine = metered_engine();
                let module = Module::new(&engine, &binary[..])
                    .map_err(|e| WasmError::Compile(e.to_string()))?;
                (module, engine)
            }
        };
        check_module(&module)?;
        let compiled = WasmModule {
            hash,
            module,
            engine,
        };
        // One instance proves the module instantiates within the default
        // limits and tells which ABI version it speaks.
        LiveInstance::new(&compiled, &AgentLimits::default())
            .map_err(WasmError::Instantiate)?
            .check_version()?;
        let mut stats = self.inner.stats.lock().expect("stats lock");
        stats.compiled += 1;
        stats.compile_time += started.elapsed();
        Ok(compiled)
    }

    fn cache_path(&self, hash: &ModuleHash, ext: &str) -> Option<PathBuf> {
        self.inner
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{hash}.{ext}")))
    }

    fn load_artifact(&self, hash: &ModuleHash) -> Option<WasmModule> {
        let path = self.cache_path(hash, &format!("{ARTIFACT_TAG}.bin"))?;
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: the artifact is one this engine wrote itself (named by the
        // content hash and the engine tag), written atomically.
        let module = match unsafe { Module::deserialize(&self.inner.loader, bytes) } {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("ignoring cached artifact {}: {e}", path.display());
                return None;
            }
        };
        check_module(&module).ok()?;
        self.inner.stats.lock().expect("stats lock").loaded += 1;
        Some(WasmModule {
            hash: hash.clone(),
            module,
            engine: self.inner.loader.clone(),
        })
    }

    fn write_cache(&self, module: &WasmModule, source: &[u8]) -> Result<(), WasmError> {
        let Some(dir) = &self.inner.cache_dir else {
            return Ok(());
        };
        let fail = |path: &Path, e: &dyn fmt::Display| WasmError::Cache {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, &e))?;
        let artifact = module.module.serialize().map_err(|e| fail(dir, &e))?;
        for (ext, bytes) in [
            ("wasm".to_string(), source),
            (format!("{ARTIFACT_TAG}.bin"), &artifact[..]),
        ] {
            let path = dir.join(format!("{}.{ext}", module.hash));
            write_atomically(&path, bytes).map_err(|e| fail(&path, &e))?;
        }
        Ok(())
    }
}

/// Removes what writes cut short by a crash left in the cache directory.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(TEMP_SUFFIX) else {
            continue;
        };
        // `<file>.<pid>.<n>.partial`: a writer still alive may be using it.
        let writer_alive = stem
            .rsplit('.')
            .nth(1)
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !writer_alive {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %entry.path().display(), "removed a module cache write cut short")
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), "cannot remove a leftover cache write: {e}")
                }
            }
        }
    }
}

/// Every operator costs one unit of fuel: simple, and proportional enough
/// to time for a limit whose job is to stop runaway loops.
pub(crate) fn operator_cost(_op: &Operator) -> u64 {
    1
}

/// Ends the names of files being written into the cache.
const TEMP_SUFFIX: &str = ".partial";

/// Writes `bytes` to `path` so that a crash leaves either the old file or
/// the whole new one: write a temporary file, fsync it, rename it. Each
/// write has a temporary file of its own (process id and a counter in its
/// name), so concurrent deploys of one module never share one; the last
/// rename wins, and every contender wrote the same bytes.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}{TEMP_SUFFIX}", std::process::id()));
    let tmp = path.with_file_name(name);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
