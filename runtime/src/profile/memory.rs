//! A memory profile of a running node: jemalloc's own figures before and
//! after a window, and a jemalloc heap profile of what was allocated in the
//! window and is still live at its end (the growth a leak hunt wants).
//!
//! The `quire` binary builds jemalloc with profiling compiled in but
//! inactive (`prof:true,prof_active:false`, set in its `malloc_conf`): an
//! inactive profiler costs a branch per allocation and no backtraces, so a
//! latency-critical node pays nothing until asked. A profile turns sampling
//! on for its window (one backtrace per 512 KiB allocated, on average),
//! dumps the heap in jeprof's format, and turns it off again. A program
//! that embeds the runtime without that `malloc_conf` gets the figures and
//! no heap profile, and says so.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// jemalloc's process-wide figures (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatorFigures {
    /// Bytes the program has allocated and not freed.
    pub allocated: u64,
    /// Bytes in pages the allocator holds for live allocations.
    pub active: u64,
    /// Bytes physically resident in the allocator's mappings.
    pub resident: u64,
    /// Bytes in mappings the allocator has.
    pub mapped: u64,
    /// Bytes returned to the OS as unused but kept mapped.
    pub retained: u64,
    /// The allocator's own bookkeeping.
    pub metadata: u64,
}

impl AllocatorFigures {
    /// The figures now.
    pub fn now() -> Self {
        use tikv_jemalloc_ctl::{epoch, stats};
        // Most statistics are refreshed only when the epoch moves.
        let _ = epoch::advance();
        let read = |r: tikv_jemalloc_ctl::Result<usize>| r.map_or(0, |v| v as u64);
        Self {
            allocated: read(stats::allocated::read()),
            active: read(stats::active::read()),
            resident: read(stats::resident::read()),
            mapped: read(stats::mapped::read()),
            retained: read(stats::retained::read()),
            metadata: read(stats::metadata::read()),
        }
    }
}

/// One shard's memory as the shard counts it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardMemory {
    /// The shard.
    pub shard: usize,
    /// Agents on it.
    pub agents: u64,
    /// Linear memory of its active WebAssembly agents (bytes).
    pub agent_memory_bytes: u64,
    /// Live WebAssembly instances (active and pooled).
    pub wasm_instances: u64,
    /// Messages waiting in its mailboxes.
    pub queued_messages: u64,
}

/// A memory profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryProfile {
    /// The window (s).
    pub seconds: f64,
    /// At the window's start.
    pub before: AllocatorFigures,
    /// At its end.
    pub after: AllocatorFigures,
    /// Per shard, at the end (shards that did not answer are left out).
    pub shards: Vec<ShardMemory>,
    /// The heap profile (jeprof's format), or why there is none.
    pub heap_profile: Result<String, String>,
}

impl MemoryProfile {
    /// A table for people.
    pub fn render(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let delta = |a: u64, b: u64| (b as f64 - a as f64) / (1024.0 * 1024.0);
        let (b, a) = (&self.before, &self.after);
        let mut out = format!("memory profile: {:.1} s window\n", self.seconds);
        out.push_str("  allocator     start MiB    end MiB   change MiB\n");
        for (name, x, y) in [
            ("allocated", b.allocated, a.allocated),
            ("active", b.active, a.active),
            ("resident", b.resident, a.resident),
            ("mapped", b.mapped, a.mapped),
            ("retained", b.retained, a.retained),
            ("metadata", b.metadata, a.metadata),
        ] {
            out.push_str(&format!(
                "  {name:<11} {:>10.1} {:>10.1} {:>+12.2}\n",
                mib(x),
                mib(y),
                delta(x, y)
            ));
        }
        for s in &self.shards {
            out.push_str(&format!(
                "  shard {}: {} agents, {:.1} MiB wasm linear memory in {} instances, {} queued messages\n",
                s.shard,
                s.agents,
                mib(s.agent_memory_bytes),
                s.wasm_instances,
                s.queued_messages
            ));
        }
        match &self.heap_profile {
            Ok(p) => out.push_str(&format!(
                "  heap profile: {} bytes (jeprof format; `jeprof --text quire FILE`)\n",
                p.len()
            )),
            Err(why) => out.push_str(&format!("  no heap profile: {why}\n")),
        }
        out
    }
}

/// Whether this process's jemalloc was started with profiling available.
fn profiling_available() -> bool {
    tikv_jemalloc_ctl::profiling::prof::read().unwrap_or(false)
}

fn set_sampling(on: bool) -> Result<(), String> {
    // SAFETY: "prof.active" is a bool control of this jemalloc.
    unsafe { tikv_jemalloc_ctl::raw::write(b"prof.active\0", on) }
        .map_err(|e| format!("cannot switch heap sampling: {e}"))
}

fn dump_heap() -> Result<String, String> {
    let path = std::env::temp_dir().join(format!(
        "quire-heap.{}.{}.heap",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let c_path = std::ffi::CString::new(path.to_string_lossy().as_bytes())
        .map_err(|_| "temporary path has a NUL".to_string())?;
    // SAFETY: "prof.dump" takes a NUL-terminated path, read during the call.
    unsafe { tikv_jemalloc_ctl::raw::write(b"prof.dump\0", c_path.as_ptr()) }.map_err(|e| {
        format!(
            "jemalloc could not dump the heap to {}: {e}",
            path.display()
        )
    })?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()));
    let _ = std::fs::remove_file(&path);
    text
}

/// Samples the heap for `window`, then dumps it. Without profiling
/// compiled in and enabled at start-up, the reason.
pub(crate) fn heap_profile(
    window: Duration,
) -> (AllocatorFigures, Result<String, String>, AllocatorFigures) {
    let before = AllocatorFigures::now();
    if !profiling_available() {
        std::thread::sleep(window);
        let why = "this process's jemalloc runs without opt.prof (the quire binary sets it; \
                   an embedding program can start with _RJEM_MALLOC_CONF=prof:true,prof_active:false)";
        return (before, Err(why.into()), AllocatorFigures::now());
    }
    let profile = set_sampling(true).and_then(|()| {
        std::thread::sleep(window);
        let dump = dump_heap();
        set_sampling(false).and(dump)
    });
    (before, profile, AllocatorFigures::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_figures_are_read() {
        let f = AllocatorFigures::now();
        // The test binary may not allocate through jemalloc: only the
        // figures' own order is certain.
        assert!(f.mapped >= f.active && f.active >= f.allocated, "{f:?}");
    }

    #[test]
    fn a_profile_renders_its_figures_and_its_gap() {
        let p = MemoryProfile {
            seconds: 1.0,
            before: AllocatorFigures::default(),
            after: AllocatorFigures {
                allocated: 3 << 20,
                ..AllocatorFigures::default()
            },
            shards: vec![ShardMemory {
                shard: 0,
                agents: 2,
                ..ShardMemory::default()
            }],
            heap_profile: Err("off".into()),
        };
        let text = p.render();
        assert!(
            text.contains("allocated") && text.contains("+3.00"),
            "{text}"
        );
        assert!(text.contains("shard 0: 2 agents"), "{text}");
        assert!(text.contains("no heap profile: off"), "{text}");
    }
}
