//! Which CPU each shard runs on.
//!
//! The CPUs come from `--cpuset`, or else from the affinity mask the process
//! inherited (so `taskset -c 2,3 quire node` and `numactl --cpunodebind=1 quire
//! node` use exactly those CPUs). `--shards N` takes N of them, one per
//! physical core before any second hardware thread of a core, and NUMA node
//! by NUMA node. Planning is a pure function of the topology and the mask.

use std::fmt;

use crate::cpuset::{format_cpu_list, parse_cpu_list, CpuListError};
use crate::topology::{CpuInfo, MachineTopology};

/// What the operator asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementRequest {
    /// An explicit CPU list (cpuset(7) list format).
    pub cpuset: Option<String>,
    /// How many shards; default: one per usable CPU.
    pub shards: Option<usize>,
}

/// Where one shard runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardPlacement {
    /// The shard index.
    pub shard: usize,
    /// The CPU it is pinned to, and that CPU's core and NUMA node.
    pub cpu: CpuInfo,
}

/// The whole plan: one entry per shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// In shard order.
    pub shards: Vec<ShardPlacement>,
}

/// Why no plan could be made. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The cpuset did not parse.
    #[error("invalid --cpuset: {0}")]
    BadCpuList(#[from] CpuListError),
    /// The cpuset names CPUs this machine does not have online.
    #[error("--cpuset names CPU(s) {missing} that are not online here (online: {online}); pick CPUs from the online list")]
    OfflineCpus {
        /// The CPUs asked for but missing.
        missing: String,
        /// What is there.
        online: String,
    },
    /// The cpuset names CPUs outside the process's affinity mask.
    #[error("--cpuset names CPU(s) {outside} outside this process's affinity mask ({mask}); widen the mask (taskset/numactl) or pick CPUs inside it")]
    OutsideAffinity {
        /// The CPUs asked for but not allowed.
        outside: String,
        /// The allowed mask.
        mask: String,
    },
    /// More shards than CPUs to pin them to.
    #[error("{asked} shards asked for but only {available} CPU(s) are usable ({cpus}); lower --shards or widen --cpuset")]
    TooManyShards {
        /// Shards requested.
        asked: usize,
        /// CPUs usable.
        available: usize,
        /// Which.
        cpus: String,
    },
    /// Zero shards.
    #[error("--shards must be at least 1")]
    ZeroShards,
    /// Nothing usable at all.
    #[error("no usable CPU: the affinity mask ({mask}) shares no CPU with the machine's online CPUs ({online})")]
    NoCpus {
        /// The mask.
        mask: String,
        /// The machine.
        online: String,
    },
}

impl Placement {
    /// Plans shard placement on `topology` for a process whose inherited
    /// affinity mask is `affinity` (CPU numbers).
    ///
    /// ```
    /// use quire_runtime::placement::{Placement, PlacementRequest};
    /// use quire_runtime::topology::MachineTopology;
    ///
    /// let topo = MachineTopology::synthetic("pack:1 numa:2 core:2 pu:2").unwrap();
    /// let all: Vec<usize> = (0..8).collect();
    /// let req = PlacementRequest { cpuset: Some("4-7".into()), shards: None };
    /// let plan = Placement::plan(&topo, &all, &req).unwrap();
    /// assert_eq!(plan.cpus(), vec![4, 5, 6, 7]);
    /// assert!(plan.shards.iter().all(|s| s.cpu.numa_node == 1));
    /// ```
    pub fn plan(
        topology: &MachineTopology,
        affinity: &[usize],
        req: &PlacementRequest,
    ) -> Result<Self, PlacementError> {
        let online: Vec<usize> = topology.cpus.iter().map(|c| c.cpu).collect();
        let candidates: Vec<CpuInfo> = match &req.cpuset {
            Some(list) => {
                let wanted = parse_cpu_list(list)?;
                let missing: Vec<usize> = wanted
                    .iter()
                    .copied()
                    .filter(|c| topology.cpu(*c).is_none())
                    .collect();
                if !missing.is_empty() {
                    return Err(PlacementError::OfflineCpus {
                        missing: format_cpu_list(&missing),
                        online: format_cpu_list(&online),
                    });
                }
                let outside: Vec<usize> = wanted
                    .iter()
                    .copied()
                    .filter(|c| !affinity.contains(c))
                    .collect();
                if !outside.is_empty() {
                    return Err(PlacementError::OutsideAffinity {
                        outside: format_cpu_list(&outside),
                        mask: format_cpu_list(affinity),
                    });
                }
                wanted
                    .iter()
                    .filter_map(|c| topology.cpu(*c).copied())
                    .collect()
            }
            None => topology
                .cpus
                .iter()
                .copied()
                .filter(|c| affinity.contains(&c.cpu))
                .collect(),
        };
        if candidates.is_empty() {
            return Err(PlacementError::NoCpus {
                mask: format_cpu_list(affinity),
                online: format_cpu_list(&online),
            });
        }
        let count = match req.shards {
            Some(0) => return Err(PlacementError::ZeroShards),
            Some(n) if n > candidates.len() => {
                return Err(PlacementError::TooManyShards {
                    asked: n,
                    available: candidates.len(),
                    cpus: format_cpu_list(&candidates.iter().map(|c| c.cpu).collect::<Vec<_>>()),
                })
            }
            Some(n) => n,
            None => candidates.len(),
        };
        let chosen = spread(candidates, count);
        Ok(Self {
            shards: chosen
                .into_iter()
                .enumerate()
                .map(|(shard, cpu)| ShardPlacement { shard, cpu })
                .collect(),
        })
    }

    /// The pinned CPUs, in shard order.
    pub fn cpus(&self) -> Vec<usize> {
        self.shards.iter().map(|s| s.cpu.cpu).collect()
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// True for an empty plan (never produced by [`Placement::plan`]).
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }
}

/// Picks `count` CPUs: first hardware thread of every core, then second ones,
/// keeping NUMA node order, and returns them sorted by NUMA node then CPU.
fn spread(mut candidates: Vec<CpuInfo>, count: usize) -> Vec<CpuInfo> {
    candidates.sort_by_key(|c| (c.numa_node, c.package, c.core, c.cpu));
    let mut rank_in_core = Vec::with_capacity(candidates.len());
    for (i, c) in candidates.iter().enumerate() {
        let rank = candidates[..i]
            .iter()
            .filter(|o| o.package == c.package && o.core == c.core)
            .count();
        rank_in_core.push((rank, *c));
    }
    rank_in_core.sort_by_key(|(rank, c)| (*rank, c.numa_node, c.cpu));
    let mut chosen: Vec<CpuInfo> = rank_in_core
        .into_iter()
        .take(count)
        .map(|(_, c)| c)
        .collect();
    chosen.sort_by_key(|c| (c.numa_node, c.cpu));
    chosen
}

impl fmt::Display for Placement {
    /// The start-up placement table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "shard  cpu  core  package  numa")?;
        for s in &self.shards {
            writeln!(
                f,
                "{:>5}  {:>3}  {:>4}  {:>7}  {:>4}",
                s.shard, s.cpu.cpu, s.cpu.core, s.cpu.package, s.cpu.numa_node
            )?;
        }
        Ok(())
    }
}

/// The CPUs in the calling thread's affinity mask (inherited from the
/// launcher: taskset, numactl, systemd's CPUAffinity).
pub fn inherited_affinity() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_numa() -> MachineTopology {
        MachineTopology::synthetic("pack:1 numa:2 core:2 pu:2").unwrap()
    }

    fn all(topo: &MachineTopology) -> Vec<usize> {
        topo.cpus.iter().map(|c| c.cpu).collect()
    }

    #[test]
    fn default_is_one_shard_per_cpu_of_the_mask() {
        let topo = two_numa();
        let plan = Placement::plan(&topo, &[2, 3, 6], &PlacementRequest::default()).unwrap();
        assert_eq!(plan.cpus(), vec![2, 3, 6]);
    }

    #[test]
    fn shard_count_prefers_whole_cores_across_numa_nodes() {
        let topo = two_numa();
        // Cores: (0,1) (2,3) on node 0, (4,5) (6,7) on node 1.
        let req = PlacementRequest {
            cpuset: None,
            shards: Some(4),
        };
        let plan = Placement::plan(&topo, &all(&topo), &req).unwrap();
        assert_eq!(plan.cpus(), vec![0, 2, 4, 6]);
        let cores: std::collections::BTreeSet<_> = plan.shards.iter().map(|s| s.cpu.core).collect();
        assert_eq!(cores.len(), 4);
    }

    #[test]
    fn cpuset_is_honoured_and_checked() {
        let topo = two_numa();
        let req = PlacementRequest {
            cpuset: Some("1,5".into()),
            shards: None,
        };
        let plan = Placement::plan(&topo, &all(&topo), &req).unwrap();
        assert_eq!(plan.cpus(), vec![1, 5]);
        assert_eq!(plan.shards[1].cpu.numa_node, 1);

        let offline = PlacementRequest {
            cpuset: Some("6-9".into()),
            shards: None,
        };
        let err = Placement::plan(&topo, &all(&topo), &offline).unwrap_err();
        assert!(
            err.to_string().contains("CPU(s) 8-9 that are not online"),
            "{err}"
        );

        let outside = PlacementRequest {
            cpuset: Some("0-1".into()),
            shards: None,
        };
        let err = Placement::plan(&topo, &[1, 2], &outside).unwrap_err();
        assert!(err.to_string().contains("CPU(s) 0 outside"), "{err}");

        let garbage = PlacementRequest {
            cpuset: Some("zero".into()),
            shards: None,
        };
        assert!(matches!(
            Placement::plan(&topo, &all(&topo), &garbage),
            Err(PlacementError::BadCpuList(_))
        ));
    }

    #[test]
    fn too_many_or_zero_shards_is_an_error() {
        let topo = two_numa();
        let req = PlacementRequest {
            cpuset: Some("0-1".into()),
            shards: Some(3),
        };
        let err = Placement::plan(&topo, &all(&topo), &req).unwrap_err();
        assert!(
            err.to_string().contains("3 shards asked for but only 2"),
            "{err}"
        );
        let req = PlacementRequest {
            cpuset: None,
            shards: Some(0),
        };
        assert_eq!(
            Placement::plan(&topo, &all(&topo), &req),
            Err(PlacementError::ZeroShards)
        );
        let err = Placement::plan(&topo, &[42], &PlacementRequest::default()).unwrap_err();
        assert!(matches!(err, PlacementError::NoCpus { .. }));
    }

    #[test]
    fn table_lists_every_shard() {
        let topo = two_numa();
        let plan = Placement::plan(&topo, &[0, 7], &PlacementRequest::default()).unwrap();
        let table = plan.to_string();
        assert!(table.starts_with("shard  cpu  core  package  numa"));
        assert_eq!(table.lines().count(), 3);
        assert!(table.lines().nth(2).unwrap().ends_with("1"), "{table}");
    }
}
