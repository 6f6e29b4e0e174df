//! What a shard's reactor is doing, published for samplers (the CPU
//! profile, the watchdog's stall reports) the way the core publishes whose
//! turn it is: one relaxed store when the shard's dispatcher or a runtime
//! task enters a phase. A leaf: the shard runtime writes it, the profile
//! and the watchdog read it.

use std::sync::atomic::{AtomicU8, Ordering};

/// A phase of a shard's reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Activity {
    /// Anything not marked: the reactor itself and its I/O tasks
    /// (connections, node links, commit acknowledgements).
    Reactor = 0,
    /// Taking batches off the mesh from the node's other shards.
    Intake = 1,
    /// Running agents' turns (the published running agent says whose).
    Agents = 2,
    /// Firing due timers (call timeouts, delayed sends, expiries).
    Timers = 3,
    /// Putting outboxes on the mesh and node links.
    Flush = 4,
    /// Polling for work before parking (`spin_before_park_us`): idle time
    /// spent on the CPU by choice.
    Spin = 5,
    /// Serving client commands (deploys, calls from embedded clients,
    /// scrapes).
    Commands = 6,
    /// The wasm host's sweep: idle deactivation, pool refills.
    Sweep = 7,
}

impl Activity {
    const ALL: [Activity; 8] = [
        Activity::Reactor,
        Activity::Intake,
        Activity::Agents,
        Activity::Timers,
        Activity::Flush,
        Activity::Spin,
        Activity::Commands,
        Activity::Sweep,
    ];

    /// Its name in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Reactor => "reactor and I/O tasks",
            Activity::Intake => "mesh intake",
            Activity::Agents => "agent scheduling",
            Activity::Timers => "timers",
            Activity::Flush => "mesh and link flush",
            Activity::Spin => "idle spin",
            Activity::Commands => "client commands",
            Activity::Sweep => "wasm sweep",
        }
    }

    fn from_u8(v: u8) -> Activity {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(Activity::Reactor)
    }
}

/// The published phase of one shard.
#[derive(Debug, Default)]
pub struct ActivityProbe(AtomicU8);

impl ActivityProbe {
    /// Marks the phase the shard enters (its own thread only).
    #[inline]
    pub fn set(&self, activity: Activity) {
        self.0.store(activity as u8, Ordering::Relaxed);
    }

    /// The phase last marked.
    pub fn get(&self) -> Activity {
        Activity::from_u8(self.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_activity_round_trips() {
        let probe = ActivityProbe::default();
        assert_eq!(probe.get(), Activity::Reactor);
        for a in Activity::ALL {
            probe.set(a);
            assert_eq!(probe.get(), a);
        }
    }
}
