//! Agent ABI v1: what a module must export, what it may import, and the
//! numbers that cross the boundary. docs/agent-abi.md is the prose form of
//! this file; [`check_module`] is what a deploy enforces.

use wasmer::{ExternType, FunctionType, Module, Type};

use crate::error::{CallError, Rejection};

/// The ABI version this host speaks.
pub const ABI_VERSION: i32 = 1;

/// The only import module an agent may use.
pub const HOST_MODULE: &str = "quire";

/// Exports every agent must have.
pub const EXPORT_MEMORY: &str = "memory";
/// `() -> i32`: the ABI version the module speaks.
pub const EXPORT_ABI_VERSION: &str = "quire_abi_version";
/// `(len: i32) -> i32`: room for `len` bytes the host is about to write.
pub const EXPORT_ALLOC: &str = "quire_alloc";
/// `(event: i32, id: i64, code: i32, ptr: i32, len: i32) -> i32`.
pub const EXPORT_HANDLE: &str = "quire_handle";

/// Events `quire_handle` is called with.
pub mod event {
    /// A one-way message; `id` is its message id.
    pub const SEND: i32 = 0;
    /// A call: the agent may `reply` once while handling it.
    pub const CALL: i32 = 1;
    /// The reply to a call this agent made; `id` is what `call` returned.
    pub const REPLY: i32 = 2;
    /// A call this agent made ended without a reply; `code` says why.
    pub const CALL_FAILED: i32 = 3;
    /// A message this agent sent came back undelivered; `id` is what `send`
    /// returned, `code` says why, the payload is the one sent.
    pub const UNDELIVERED: i32 = 4;
}

/// Error codes. Host functions return them negated; events carry them
/// positive in `code`.
pub mod code {
    /// No such key (state_get).
    pub const NOT_FOUND: i32 = 1;
    /// A pointer/length pair falls outside the agent's memory.
    pub const BAD_POINTER: i32 = 2;
    /// The call is not allowed here (a reply outside a call, a second
    /// reply, a bad agent name, not UTF-8).
    pub const INVALID: i32 = 3;
    /// A payload, key or value is over the agent's `max_message_bytes`.
    pub const TOO_LARGE: i32 = 4;
    /// A call ended without a reply within its timeout.
    pub const TIMEOUT: i32 = 5;
    /// Rejections start here: `REJECTION_BASE + Rejection::index()`.
    pub const REJECTION_BASE: i32 = 16;
}

/// The code for a rejection.
///
/// ```
/// use quire_shards::{wasm::abi, Rejection};
/// assert_eq!(abi::rejection_code(Rejection::QueueFull), abi::code::REJECTION_BASE);
/// ```
pub fn rejection_code(reason: Rejection) -> i32 {
    code::REJECTION_BASE + reason.index() as i32
}

/// The code for a call that ended without a reply.
pub fn call_error_code(err: CallError) -> i32 {
    match err {
        CallError::Timeout => code::TIMEOUT,
        CallError::Rejected(reason) => rejection_code(reason),
    }
}

/// Host functions in module `quire`: name, parameters, results.
pub const IMPORTS: &[(&str, &[Type], &[Type])] = {
    use Type::{I32, I64};
    &[
        ("send", &[I32, I32, I32, I32], &[I64]),
        ("call", &[I32, I32, I32, I32, I32], &[I64]),
        ("reply", &[I32, I32], &[I32]),
        ("state_get", &[I32, I32, I32, I32], &[I32]),
        ("state_put", &[I32, I32, I32, I32], &[I32]),
        ("state_delete", &[I32, I32], &[I32]),
        ("log", &[I32, I32, I32], &[]),
        ("now", &[], &[I64]),
        ("self_id", &[I32, I32], &[I32]),
    ]
};

/// Why a module is refused at deploy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    /// It imports from another module than `quire` (WASI, `env`, ...).
    #[error("the module imports {module}::{name}; agents may import only from \"quire\" (no WASI, no files, no sockets)")]
    ForeignImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// It imports a `quire` function the host does not have, or with
    /// another signature.
    #[error("the module imports quire::{name} as {found}, which ABI v1 does not offer{expected}")]
    UnknownImport {
        /// Import name.
        name: String,
        /// What it declared.
        found: String,
        /// What v1 has under that name, if anything.
        expected: String,
    },
    /// A required export is missing or has the wrong type.
    #[error("the module must export {name} as {expected}; {found}")]
    MissingExport {
        /// Export name.
        name: &'static str,
        /// What the ABI needs.
        expected: &'static str,
        /// What the module has.
        found: String,
    },
    /// `quire_abi_version` returned another version.
    #[error("the module speaks agent ABI version {found}; this host speaks version {ABI_VERSION}")]
    WrongVersion {
        /// What it returned.
        found: i32,
    },
    /// It has a start function.
    #[error("the module has a start function (function {func}); agents may not run code when instantiated (instances are made ahead of their messages, in pools, outside any handler's limits): do the set-up on the first message")]
    StartFunction {
        /// The start function's index.
        func: u32,
    },
}

/// Refuses a module binary with a start section (see
/// [`AbiError::StartFunction`]); other sections are left to the compiler.
pub fn check_no_start(binary: &[u8]) -> Result<(), AbiError> {
    use wasmer::wasmparser::{Parser, Payload};
    for payload in Parser::new(0).parse_all(binary) {
        match payload {
            Ok(Payload::StartSection { func, .. }) => return Err(AbiError::StartFunction { func }),
            // The code comes after the start section: nothing more to see.
            Ok(Payload::CodeSectionStart { .. }) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Checks a compiled module's imports and exports against ABI v1 (the
/// version itself is checked when the module is first instantiated, by
/// calling `quire_abi_version`).
pub fn check_module(module: &Module) -> Result<(), AbiError> {
    for import in module.imports() {
        if import.module() != HOST_MODULE {
            return Err(AbiError::ForeignImport {
                module: import.module().to_string(),
                name: import.name().to_string(),
            });
        }
        let found = import.ty().clone();
        let known = IMPORTS.iter().find(|(name, _, _)| *name == import.name());
        let matches = match (&found, known) {
            (ExternType::Function(f), Some((_, params, results))) => {
                f.params() == *params && f.results() == *results
            }
            _ => false,
        };
        if !matches {
            return Err(AbiError::UnknownImport {
                name: import.name().to_string(),
                found: describe(&found),
                expected: known
                    .map(|(_, p, r)| format!(" (v1 has it as {})", FunctionType::new(*p, *r)))
                    .unwrap_or_default(),
            });
        }
    }
    let exports: Vec<_> = module.exports().collect();
    let find = |name: &str| {
        exports
            .iter()
            .find(|e| e.name() == name)
            .map(|e| e.ty().clone())
    };
    match find(EXPORT_MEMORY) {
        Some(ExternType::Memory(_)) => {}
        other => {
            return Err(AbiError::MissingExport {
                name: EXPORT_MEMORY,
                expected: "a memory",
                found: found_text(other),
            })
        }
    }
    let functions: [(&'static str, &'static str, &[Type], &[Type]); 3] = [
        (EXPORT_ABI_VERSION, "[] -> [I32]", &[], &[Type::I32]),
        (EXPORT_ALLOC, "[I32] -> [I32]", &[Type::I32], &[Type::I32]),
        (
            EXPORT_HANDLE,
            "[I32, I64, I32, I32, I32] -> [I32]",
            &[Type::I32, Type::I64, Type::I32, Type::I32, Type::I32],
            &[Type::I32],
        ),
    ];
    for (name, expected, params, results) in functions {
        match find(name) {
            Some(ExternType::Function(f)) if f.params() == params && f.results() == results => {}
            other => {
                return Err(AbiError::MissingExport {
                    name,
                    expected,
                    found: found_text(other),
                })
            }
        }
    }
    Ok(())
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Function(f) => format!("a function {f}"),
        ExternType::Memory(_) => "a memory".into(),
        ExternType::Table(_) => "a table".into(),
        ExternType::Global(_) => "a global".into(),
        ExternType::Tag(_) => "a tag".into(),
    }
}

fn found_text(ty: Option<ExternType>) -> String {
    match ty {
        Some(ty) => format!("it exports {}", describe(&ty)),
        None => "it does not export it".into(),
    }
}
