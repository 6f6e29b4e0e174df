//! How agents' linear memories are laid out in the address space.
//!
//! wasmer's default reserves 8 GiB of address space per memory (a static
//! memory with a 4 GiB guard), which caps a process near 16k instances.
//! Agents get dynamic memories instead: bounds-checked by the generated code,
//! each an [`AgentMemory`] reserving address space up to the agent's limit
//! (plus one guard page) and touching only the pages it uses. The memory limit of the
//! agent being instantiated clamps the memory's declared maximum, so a
//! `memory.grow` past it fails inside the guest (returns -1) instead of
//! taking the host's memory.

use std::cell::Cell;
use std::ptr::NonNull;

use wasmer::sys::vm::{VMConfig, VMMemory, VMMemoryDefinition, VMTable, VMTableDefinition};

use super::memory::AgentMemory;
use wasmer::sys::{BaseTunables, Tunables};
use wasmer::{MemoryError, MemoryStyle};
use wasmer::{MemoryType, Pages, TableStyle, TableType};

/// Guard after each memory: catches small constant offsets past the end.
const GUARD_BYTES: u64 = 64 * 1024;

thread_local! {
    /// The memory limit (pages) of the instance this thread is creating.
    static MEMORY_LIMIT: Cell<u32> = const { Cell::new(u32::MAX) };
    /// `memory.grow` calls refused for the limit on this thread, ever.
    static GROWS_REFUSED: Cell<u64> = const { Cell::new(0) };
}

/// How many `memory.grow` calls this thread refused for an agent's memory
/// limit so far: compared before and after a guest call, it tells a trap
/// that followed a refused grow (an allocator giving up) from any other.
pub(crate) fn grows_refused() -> u64 {
    GROWS_REFUSED.with(Cell::get)
}

/// Counts one `memory.grow` refused at an agent's limit.
pub(crate) fn count_refused_grow() {
    GROWS_REFUSED.with(|c| c.set(c.get() + 1));
}

/// Runs `f` (an instantiation) with memories capped at `pages`.
pub(crate) fn with_memory_limit<R>(pages: u32, f: impl FnOnce() -> R) -> R {
    let before = MEMORY_LIMIT.with(|c| c.replace(pages));
    let result = f();
    MEMORY_LIMIT.with(|c| c.set(before));
    result
}

/// Dynamic memories with small guards and a per-instance maximum.
pub(crate) struct AgentTunables {
    base: BaseTunables,
    config: VMConfig,
}

impl AgentTunables {
    pub(crate) fn new() -> Self {
        Self {
            base: BaseTunables::new(),
            // A small stack per call: agents' handlers are short, and a deep
            // recursion should trap quickly rather than use megabytes.
            config: VMConfig {
                wasm_stack_size: Some(512 * 1024),
            },
        }
    }

    fn capped(ty: &MemoryType) -> Result<MemoryType, MemoryError> {
        let limit = Pages(MEMORY_LIMIT.with(Cell::get));
        if ty.minimum > limit {
            return Err(MemoryError::MinimumMemoryTooLarge {
                min_requested: ty.minimum,
                max_allowed: limit,
            });
        }
        let mut ty = *ty;
        ty.maximum = Some(ty.maximum.map_or(limit, |m| m.min(limit)));
        Ok(ty)
    }
}

impl Tunables for AgentTunables {
    fn memory_style(&self, _memory: &MemoryType) -> MemoryStyle {
        MemoryStyle::Dynamic {
            offset_guard_size: GUARD_BYTES,
        }
    }

    fn table_style(&self, table: &TableType) -> TableStyle {
        self.base.table_style(table)
    }

    fn create_host_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
    ) -> Result<VMMemory, MemoryError> {
        let memory = AgentMemory::new(&Self::capped(ty)?, style, GUARD_BYTES as usize, None)?;
        Ok(VMMemory(Box::new(memory)))
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        let memory = AgentMemory::new(
            &Self::capped(ty)?,
            style,
            GUARD_BYTES as usize,
            Some(vm_definition_location),
        )?;
        Ok(VMMemory(Box::new(memory)))
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        self.base.create_host_table(ty, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        // SAFETY: forwarded as given; the caller upholds the contract.
        unsafe { self.base.create_vm_table(ty, style, vm_definition_location) }
    }

    fn vmconfig(&self) -> &VMConfig {
        &self.config
    }
}
