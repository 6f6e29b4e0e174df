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
//!
//! Tables are memory too (8 bytes an entry, allocated at once): they are
//! capped the same way, so that a module declaring a table of millions of
//! entries, or growing one, stays within its agent's memory limit (see
//! [`InstanceBudget`]).

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
    /// The most entries each table of that instance may have.
    static TABLE_LIMIT: Cell<u32> = const { Cell::new(u32::MAX) };
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

/// Bytes one table entry takes (a function or extern reference).
pub(crate) const TABLE_ENTRY_BYTES: u64 = 8;

/// Table bytes not taken off the linear memory's share (8 192 entries).
const FREE_TABLE_BYTES: u64 = 64 * 1024;

/// How an agent's memory limit is shared between its linear memory and
/// its tables: tables may take a quarter of it, split evenly between them,
/// each up to its declared maximum (its minimum if it declares none); the
/// memory gets the rest, less the first [`FREE_TABLE_BYTES`] of tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InstanceBudget {
    /// Pages the linear memory may grow to.
    pub memory_pages: u32,
    /// Entries each table may grow to.
    pub table_entries: u32,
    /// Bytes the tables may take at most, together.
    pub table_bytes: u64,
}

impl InstanceBudget {
    /// The budget of an instance with `tables` under `limit_bytes`, or why
    /// the tables do not fit.
    pub(crate) fn new(limit_bytes: u64, tables: &[TableType]) -> Result<Self, String> {
        let per_table = (limit_bytes / 4 / TABLE_ENTRY_BYTES / tables.len().max(1) as u64)
            .min(u64::from(u32::MAX)) as u32;
        let mut table_bytes = 0;
        for table in tables {
            if table.minimum > per_table {
                return Err(format!(
                    "its table of {} entries ({} bytes) is over the agent's limit of {per_table} entries a table (tables may take a quarter of the memory limit of {limit_bytes} bytes)",
                    table.minimum,
                    u64::from(table.minimum) * TABLE_ENTRY_BYTES,
                ));
            }
            let max = table.maximum.unwrap_or(table.minimum).min(per_table);
            table_bytes += u64::from(max) * TABLE_ENTRY_BYTES;
        }
        // Small tables come free: a module that declares its memory at the
        // whole limit and an ordinary function table must still fit.
        let charged = table_bytes.saturating_sub(FREE_TABLE_BYTES);
        let memory_pages = (limit_bytes.saturating_sub(charged) / 65_536).clamp(1, 65_536) as u32;
        Ok(Self {
            memory_pages,
            table_entries: per_table,
            table_bytes,
        })
    }
}

/// Runs `f` (an instantiation) with memories and tables capped by `budget`.
pub(crate) fn with_budget<R>(budget: InstanceBudget, f: impl FnOnce() -> R) -> R {
    let pages_before = MEMORY_LIMIT.with(|c| c.replace(budget.memory_pages));
    let tables_before = TABLE_LIMIT.with(|c| c.replace(budget.table_entries));
    let result = f();
    MEMORY_LIMIT.with(|c| c.set(pages_before));
    TABLE_LIMIT.with(|c| c.set(tables_before));
    result
}

/// `ty` with its maximum capped at the instance's table limit.
fn capped_table(ty: &TableType) -> Result<TableType, String> {
    let limit = TABLE_LIMIT.with(Cell::get);
    if ty.minimum > limit {
        return Err(format!(
            "a table of {} entries is over the agent's limit of {limit} entries",
            ty.minimum
        ));
    }
    let mut ty = *ty;
    ty.maximum = Some(ty.maximum.unwrap_or(ty.minimum).min(limit));
    Ok(ty)
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
        self.base.create_host_table(&capped_table(ty)?, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        let ty = capped_table(ty)?;
        // SAFETY: as above; only the maximum was lowered.
        unsafe {
            self.base
                .create_vm_table(&ty, style, vm_definition_location)
        }
    }

    fn vmconfig(&self) -> &VMConfig {
        &self.config
    }
}
