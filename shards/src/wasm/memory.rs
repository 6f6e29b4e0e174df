//! An agent's linear memory: address space reserved up to the agent's
//! memory limit once, pages made accessible as the memory grows, never
//! moved.
//!
//! wasmer's dynamic memories reserve only their current size, so the first
//! `memory.grow` (every Rust guest's allocator makes one) maps a new region
//! and copies the old one into it, which makes every page of the memory
//! resident: 1.1 MiB for the smallest Rust agent. Reserving up to the limit
//! (address space costs nothing until touched) keeps an instance's resident
//! memory to the pages it really uses. Generated code bounds-checks every
//! access against the current length (dynamic style), so the reservation is
//! only room to grow into, and the guard after it catches small offsets.

use std::ptr::NonNull;

use wasmer::sys::vm::{LinearMemory, VMMemoryDefinition};
use wasmer::{MemoryError, MemoryStyle, MemoryType, Pages, WASM_PAGE_SIZE};

use super::tunables::count_refused_grow;

#[derive(Debug)]
pub(crate) struct AgentMemory {
    /// Start of the reservation: `reserved` bytes, the first `size` pages
    /// readable and writable, the rest inaccessible.
    base: NonNull<u8>,
    reserved: usize,
    size: Pages,
    ty: MemoryType,
    style: MemoryStyle,
    /// Where the instance (or this memory, for a host memory) keeps the
    /// base and length generated code reads.
    definition: Definition,
}

#[derive(Debug)]
enum Definition {
    InInstance(NonNull<VMMemoryDefinition>),
    Owned(Box<std::cell::UnsafeCell<VMMemoryDefinition>>),
}

// SAFETY: the memory is a plain mapping plus a pointer into its instance's
// context; wasmer requires memories to be Send + Sync and only touches one
// from the thread running its store.
unsafe impl Send for AgentMemory {}
unsafe impl Sync for AgentMemory {}

impl AgentMemory {
    /// Reserves `ty.maximum` pages (plus `guard` bytes) and makes the first
    /// `ty.minimum` accessible. `ty.maximum` must be set (the tunables cap
    /// it at the agent's limit).
    pub(crate) fn new(
        ty: &MemoryType,
        style: &MemoryStyle,
        guard: usize,
        location: Option<NonNull<VMMemoryDefinition>>,
    ) -> Result<Self, MemoryError> {
        let max = ty
            .maximum
            .ok_or_else(|| MemoryError::Generic("an agent's memory needs a maximum".to_string()))?;
        let reserved = max.bytes().0 + guard;
        // SAFETY: a fresh anonymous mapping, owned by this value until Drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(MemoryError::Region(format!(
                "cannot reserve {reserved} bytes for an agent's memory: {}",
                std::io::Error::last_os_error()
            )));
        }
        let base = NonNull::new(base.cast::<u8>()).expect("mmap succeeded");
        let definition = VMMemoryDefinition {
            base: base.as_ptr(),
            current_length: 0,
        };
        let definition = match location {
            Some(mut at) => {
                // SAFETY: wasmer hands a valid, instance-owned location.
                unsafe { *at.as_mut() = definition };
                Definition::InInstance(at)
            }
            None => Definition::Owned(Box::new(std::cell::UnsafeCell::new(definition))),
        };
        let mut memory = Self {
            base,
            reserved,
            size: Pages(0),
            ty: *ty,
            style: *style,
            definition,
        };
        memory.set_accessible(ty.minimum)?;
        Ok(memory)
    }

    fn definition_ptr(&self) -> NonNull<VMMemoryDefinition> {
        match &self.definition {
            Definition::InInstance(at) => *at,
            Definition::Owned(cell) => NonNull::new(cell.get()).expect("boxed"),
        }
    }

    /// Makes the memory `pages` long (only ever longer).
    fn set_accessible(&mut self, pages: Pages) -> Result<(), MemoryError> {
        let old = self.size.bytes().0;
        let new = pages.bytes().0;
        if new > old {
            // SAFETY: [old, new) lies inside the reservation (new <= max).
            let rc = unsafe {
                libc::mprotect(
                    self.base.as_ptr().add(old).cast(),
                    new - old,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if rc != 0 {
                return Err(MemoryError::Region(format!(
                    "cannot grow an agent's memory to {new} bytes: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        self.size = pages;
        // SAFETY: the location stays valid as long as this memory.
        unsafe { self.definition_ptr().as_mut().current_length = new };
        Ok(())
    }
}

impl Drop for AgentMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.reserved) };
    }
}

impl LinearMemory for AgentMemory {
    fn ty(&self) -> MemoryType {
        let mut ty = self.ty;
        ty.minimum = self.size;
        ty
    }

    fn size(&self) -> Pages {
        self.size
    }

    fn style(&self) -> MemoryStyle {
        self.style
    }

    fn grow(&mut self, delta: Pages) -> Result<Pages, MemoryError> {
        let previous = self.size;
        let refused = || MemoryError::CouldNotGrow {
            current: previous,
            attempted_delta: delta,
        };
        let new = previous.checked_add(delta).ok_or_else(refused)?;
        if self.ty.maximum.is_some_and(|max| new > max) {
            count_refused_grow();
            return Err(refused());
        }
        self.set_accessible(new)?;
        Ok(previous)
    }

    fn vmmemory(&self) -> NonNull<VMMemoryDefinition> {
        self.definition_ptr()
    }

    fn try_clone(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        Err(MemoryError::Generic(
            "agent memories are not cloned".to_string(),
        ))
    }

    fn copy(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        let mut copy = Self::new(
            &self.ty(),
            &self.style,
            self.reserved - self.max_bytes(),
            None,
        )?;
        let len = self.size.bytes().0;
        // SAFETY: both memories have at least `len` accessible bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.base.as_ptr(), copy.base.as_ptr(), len) };
        copy.ty = self.ty;
        Ok(Box::new(copy))
    }
}

impl AgentMemory {
    fn max_bytes(&self) -> usize {
        self.ty.maximum.map_or(0, |m| m.0 as usize * WASM_PAGE_SIZE)
    }
}
