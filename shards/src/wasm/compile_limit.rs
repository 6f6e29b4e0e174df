//! Compiling a module under a time and a memory limit, in a child process
//! that can be stopped.
//!
//! Cranelift's compile time is not linear in the module: a few hundred KB of
//! deeply nested blocks can keep it busy for minutes and take gigabytes, and
//! a compile on a thread cannot be cancelled. So a node given a
//! [`CompilerProcess`] compiles each new module in a child (its own binary,
//! run with [`COMPILE_SUBCOMMAND`]) under `RLIMIT_DATA` and a deadline,
//! killed when it passes either; the parent loads the artifact the child
//! wrote, as it loads one from the module cache. The deploy then fails with
//! [`super::WasmError::CompileLimit`], and nothing keeps compiling after the
//! client is told.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmer::sys::{CompilerConfig, Cranelift, EngineBuilder, NativeEngineExt};
use wasmer::{Engine, Module};
use wasmer_middlewares::Metering;

use super::abi::check_no_start;
use super::engine::{operator_cost, WasmError};
use super::tunables::AgentTunables;

/// The argument that makes a node's binary compile one module: the module
/// on stdin, the artifact on stdout, the error on stderr (exit code 3).
pub const COMPILE_SUBCOMMAND: &str = "__compile-module";

/// Limits on compiling one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    /// Wall-clock time one compile may take.
    pub max_time: Duration,
    /// Heap (data segment and private mappings) the compile may use.
    pub max_memory_bytes: u64,
}

impl Default for CompileLimits {
    fn default() -> Self {
        Self {
            max_time: Duration::from_secs(30),
            max_memory_bytes: 1 << 30,
        }
    }
}

/// A program that compiles modules when run with [`COMPILE_SUBCOMMAND`]
/// (see [`compile_child_main`]), and the limits it runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompilerProcess {
    /// The program (a node passes its own executable).
    pub program: PathBuf,
    /// The limits.
    pub limits: CompileLimits,
}

/// The engine a module is compiled with: Cranelift with fuel metering and
/// bulk instructions charged by length (the middlewares keep per-module
/// state, so each compile gets its own) and the agents' tunables.
pub(crate) fn metered_engine() -> Engine {
    let mut compiler = Cranelift::default();
    compiler.push_middleware(Arc::new(Metering::new(0, operator_cost)));
    // After metering: it charges metering's own fuel global.
    compiler.push_middleware(Arc::new(super::bulk_metering::BulkMetering::default()));
    let mut engine: Engine = EngineBuilder::new(compiler).engine().into();
    engine.set_tunables(AgentTunables::new());
    engine
}

/// Turns an upload into a module binary: WebAssembly binaries as they are,
/// WebAssembly text converted (the node takes both, docs/agent-abi.md), and
/// a start function refused.
pub(crate) fn module_binary(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, WasmError> {
    let binary = if bytes.starts_with(b"\0asm") {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        wasmer::wat2wasm(bytes).map_err(|e| {
            WasmError::Compile(format!(
                "neither a WebAssembly binary (it does not begin with \\0asm) nor WebAssembly text: {e}"
            ))
        })?
    };
    check_no_start(&binary)?;
    Ok(binary)
}

/// Compiles the module binary `binary` in this process and returns the
/// serialized artifact.
pub fn compile_artifact(binary: &[u8]) -> Result<Vec<u8>, WasmError> {
    let engine = metered_engine();
    let module = Module::new(&engine, binary).map_err(|e| WasmError::Compile(e.to_string()))?;
    module
        .serialize()
        .map(|b| b.to_vec())
        .map_err(|e| WasmError::Compile(format!("the compiled module cannot be serialized: {e}")))
}

/// What a node's binary runs for [`COMPILE_SUBCOMMAND`]: reads a module
/// binary on stdin, writes its artifact on stdout. Returns the exit code.
pub fn compile_child_main() -> i32 {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("cannot read the module: {e}");
        return 3;
    }
    match compile_artifact(&bytes) {
        Ok(artifact) => match std::io::stdout().write_all(&artifact) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cannot write the artifact: {e}");
                3
            }
        },
        Err(WasmError::Compile(message)) => {
            // The parent passes this line on as the compile error.
            eprint!("{message}");
            3
        }
        Err(other) => {
            eprint!("{other}");
            3
        }
    }
}

/// Compiles `bytes` in a child under `process`'s limits; the artifact.
pub(crate) fn compile_in_child(
    process: &CompilerProcess,
    bytes: &[u8],
) -> Result<Vec<u8>, WasmError> {
    let limits = process.limits;
    let mut command = Command::new(&process.program);
    command
        .arg(COMPILE_SUBCOMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("QUIRE_LOG", "error");
    let data_limit = limits.max_memory_bytes;
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: data_limit,
                rlim_max: data_limit,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| {
        WasmError::Compile(format!(
            "cannot start the compiler process {}: {e}",
            process.program.display()
        ))
    })?;
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input);
        }
    });
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
    };
    let artifact = drain(stdout.map(|p| Box::new(p) as Box<dyn Read + Send>));
    let errors = drain(stderr.map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= limits.max_time => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                return Err(WasmError::Compile(format!(
                    "lost the compiler process: {e}"
                )))
            }
        }
    };
    let _ = writer.join();
    let artifact = artifact.join().unwrap_or_default();
    let errors = String::from_utf8_lossy(&errors.join().unwrap_or_default()).into_owned();
    let Some(status) = status else {
        return Err(WasmError::CompileLimit(format!(
            "compiling took longer than the limit of {} ms and was stopped",
            limits.max_time.as_millis()
        )));
    };
    if status.success() {
        return Ok(artifact);
    }
    if status.code() == Some(3) {
        return Err(WasmError::Compile(errors));
    }
    // Killed by the kernel or aborted: out of its memory limit, as a rule.
    Err(WasmError::CompileLimit(format!(
        "the compile failed within its memory limit of {} MiB ({status}){}",
        limits.max_memory_bytes >> 20,
        if errors.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", errors.trim().lines().last().unwrap_or_default())
        }
    )))
}
