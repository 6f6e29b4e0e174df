//! How agents' linear memories are laid out in the address space.
//!
//! wasmer's default reserves 8 GiB of address space per memory (a static
//! memory with a 4 GiB guard), which caps a process near 16k instances.
//! Agents get dynamic memories instead: bounds-checked by the generated code,
//! reserving only what they use plus one guard page. The memory limit of the
//! agent being instantiated clamps the memory's declared maximum, so a
//! `memory.grow` past it fails inside the guest (returns -1) instead of
//! taking the host's memory.

use std::cell::Cell;
use std::ptr::NonNull;

use wasmer::sys::vm::{
    LinearMemory, Trap, VMConfig, VMMemory, VMMemoryDefinition, VMTable, VMTableDefinition,
};
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

/// An agent's memory: wasmer's own, counting grows refused at the maximum.
#[derive(Debug)]
struct LimitedMemory(VMMemory);

impl LinearMemory for LimitedMemory {
    fn ty(&self) -> MemoryType {
        self.0 .0.ty()
    }
    fn size(&self) -> Pages {
        self.0 .0.size()
    }
    fn style(&self) -> MemoryStyle {
        self.0 .0.style()
    }
    fn grow(&mut self, delta: Pages) -> Result<Pages, MemoryError> {
        let result = self.0 .0.grow(delta);
        if let Err(MemoryError::CouldNotGrow { .. }) = &result {
            GROWS_REFUSED.with(|c| c.set(c.get() + 1));
        }
        result
    }
    fn grow_at_least(&mut self, min_size: u64) -> Result<(), MemoryError> {
        self.0 .0.grow_at_least(min_size)
    }
    fn reset(&mut self) -> Result<(), MemoryError> {
        self.0 .0.reset()
    }
    fn vmmemory(&self) -> NonNull<VMMemoryDefinition> {
        self.0 .0.vmmemory()
    }
    fn try_clone(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        self.0 .0.try_clone()
    }
    unsafe fn initialize_with_data(&self, start: usize, data: &[u8]) -> Result<(), Trap> {
        // SAFETY: forwarded as given; the caller upholds the contract.
        unsafe { self.0 .0.initialize_with_data(start, data) }
    }
    fn copy(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        self.0 .0.copy()
    }
}

fn limited(memory: VMMemory) -> VMMemory {
    VMMemory(Box::new(LimitedMemory(memory)))
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
        VMMemory::new(&Self::capped(ty)?, style).map(limited)
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        // SAFETY: forwarded as given; the caller upholds the contract.
        unsafe { VMMemory::from_definition(&Self::capped(ty)?, style, vm_definition_location) }
            .map(limited)
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
