//! The machine's processors as hwloc sees them: each logical CPU with its
//! physical core, package and NUMA node.
//!
//! Discovery goes through hwlocality once at start-up; the result is a plain
//! list that placement works on, so placement is tested on synthetic
//! topologies (hwloc's own synthetic descriptions) without the real machine.

use std::fmt;

use hwlocality::object::types::ObjectType;
use hwlocality::topology::builder::BuildFlags;
use hwlocality::Topology;

/// One logical CPU (a hardware thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuInfo {
    /// The OS's CPU number (what `taskset`, `numactl` and cpusets use).
    pub cpu: usize,
    /// The OS's index of the physical core it belongs to (hwloc's logical
    /// index where the OS gives none).
    pub core: usize,
    /// The package (socket).
    pub package: usize,
    /// The NUMA node whose memory is local to it.
    pub numa_node: usize,
}

/// Every CPU of the machine that hwloc reports online and allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineTopology {
    /// Sorted by CPU number.
    pub cpus: Vec<CpuInfo>,
}

/// Why the topology could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// hwloc itself failed.
    #[error("hwloc could not read the machine topology: {0}")]
    Hwloc(String),
    /// A synthetic description did not parse.
    #[error("bad synthetic topology {0:?}: {1}")]
    Synthetic(String, String),
}

impl MachineTopology {
    /// Reads this machine's topology through hwloc.
    ///
    /// ```
    /// let topo = quire_runtime::topology::MachineTopology::discover().unwrap();
    /// assert!(!topo.cpus.is_empty());
    /// ```
    pub fn discover() -> Result<Self, TopologyError> {
        let topology = Topology::new().map_err(|e| TopologyError::Hwloc(e.to_string()))?;
        Ok(Self::from_hwloc(&topology))
    }

    /// Builds a topology from an hwloc synthetic description, such as
    /// `"pack:1 numa:2 core:2 pu:2"` (2 NUMA nodes, 2 cores each, 2 threads
    /// per core). For tests and for planning on another machine's shape.
    ///
    /// ```
    /// use quire_runtime::topology::MachineTopology;
    /// let topo = MachineTopology::synthetic("pack:1 numa:2 core:2 pu:2").unwrap();
    /// assert_eq!(topo.cpus.len(), 8);
    /// assert_eq!(topo.numa_nodes(), vec![0, 1]);
    /// ```
    pub fn synthetic(description: &str) -> Result<Self, TopologyError> {
        let err = |e: String| TopologyError::Synthetic(description.to_owned(), e);
        let topology = Topology::builder()
            .from_synthetic(description)
            .map_err(|e| err(e.to_string()))?
            .with_flags(BuildFlags::empty())
            .map_err(|e| err(e.to_string()))?
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok(Self::from_hwloc(&topology))
    }

    fn from_hwloc(topology: &Topology) -> Self {
        let allowed = topology.allowed_cpuset();
        let numa: Vec<(usize, hwlocality::cpu::cpuset::CpuSet)> = topology
            .objects_with_type(ObjectType::NUMANode)
            .filter_map(|n| {
                Some((
                    n.os_index().unwrap_or(n.logical_index()),
                    n.cpuset()?.clone_target(),
                ))
            })
            .collect();
        let mut cpus: Vec<CpuInfo> = topology
            .objects_with_type(ObjectType::PU)
            .filter_map(|pu| {
                let cpu = pu.os_index()?;
                if !allowed.is_set(cpu) {
                    return None;
                }
                let index_of = |ty| {
                    pu.first_ancestor_with_type(ty)
                        .map(|o| o.os_index().unwrap_or(o.logical_index()))
                        .unwrap_or(0)
                };
                let numa_node = numa
                    .iter()
                    .find(|(_, set)| set.is_set(cpu))
                    .map(|(n, _)| *n)
                    .unwrap_or(0);
                Some(CpuInfo {
                    cpu,
                    core: pu
                        .first_ancestor_with_type(ObjectType::Core)
                        .map(|c| c.logical_index())
                        .unwrap_or(cpu),
                    package: index_of(ObjectType::Package),
                    numa_node,
                })
            })
            .collect();
        cpus.sort_by_key(|c| c.cpu);
        Self { cpus }
    }

    /// The CPU numbered `cpu`, if it is online.
    pub fn cpu(&self, cpu: usize) -> Option<&CpuInfo> {
        self.cpus.iter().find(|c| c.cpu == cpu)
    }

    /// NUMA node numbers present, ascending.
    pub fn numa_nodes(&self) -> Vec<usize> {
        let mut nodes: Vec<usize> = self.cpus.iter().map(|c| c.numa_node).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

impl fmt::Display for MachineTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cores = {
            let mut c: Vec<_> = self.cpus.iter().map(|c| (c.package, c.core)).collect();
            c.sort_unstable();
            c.dedup();
            c.len()
        };
        write!(
            f,
            "{} CPUs, {} cores, {} NUMA node(s)",
            self.cpus.len(),
            cores,
            self.numa_nodes().len()
        )
    }
}
