//! [`Sensors`]: a container's and the host's counters at one instant, behind a trait so the
//! actors run over fakes. [`HostSensors`] reads this machine's cgroup and proc files;
//! [`FakeSensors`] answers from a table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::cgroup::{Cgroups, CpuSample, MemorySample};
use super::procfs::{self, HostSample, NetCounter};

/// A container's cumulative counters at one instant; a counter that could not be read is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counters {
    pub cpu: Option<CpuSample>,
    pub memory: Option<MemorySample>,
    /// The one inbound counter of the container's network namespace that was asked for.
    pub net: Option<u64>,
}

/// Reads counters. Calls are plain reads of kernel files (microseconds), made from async code.
pub trait Sensors: Send + Sync + 'static {
    /// The counters of the container with full id `id`, with `net` its inbound counter.
    fn container(&self, id: &str, net: NetCounter) -> Counters;
    /// The host's CPU, memory, load and pressure, when readable.
    fn host(&self) -> Option<HostSample>;
}

/// This machine's cgroup hierarchy and `/proc`.
#[derive(Debug, Clone)]
pub struct HostSensors {
    cgroups: Cgroups,
    proc_root: PathBuf,
}

impl HostSensors {
    /// The usual mounts: `/sys/fs/cgroup` and `/proc`.
    pub fn new() -> Self {
        Self::at("/sys/fs/cgroup", "/proc")
    }

    pub fn at(cgroup_root: impl Into<PathBuf>, proc_root: impl Into<PathBuf>) -> Self {
        Self { cgroups: Cgroups::detect(cgroup_root), proc_root: proc_root.into() }
    }
}

impl Default for HostSensors {
    fn default() -> Self {
        Self::new()
    }
}

impl Sensors for HostSensors {
    fn container(&self, id: &str, net: NetCounter) -> Counters {
        // The network counters are the namespace's of any process of the container: the first
        // one its cgroup lists, so no engine call is needed.
        let pid = self.cgroups.pid(id).ok().flatten();
        Counters {
            cpu: self.cgroups.cpu(id).ok(),
            memory: self.cgroups.memory(id).ok(),
            net: pid.and_then(|pid| procfs::net_counter(&self.proc_root, pid, net).ok()),
        }
    }

    fn host(&self) -> Option<HostSample> {
        procfs::host_sample(&self.proc_root).ok()
    }
}

/// Counters from a table (containers not in it read as nothing); the host reads as nothing
/// unless set.
#[derive(Clone, Default)]
pub struct FakeSensors {
    table: Arc<Mutex<FakeTable>>,
}

#[derive(Default)]
struct FakeTable {
    containers: HashMap<String, Counters>,
    host: Option<HostSample>,
}

impl FakeSensors {
    pub fn new() -> Self {
        Self::default()
    }

    /// What later reads of container `id` (full id) return, whichever counter `net` is asked.
    pub fn set(&self, id: &str, counters: Counters) {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).containers.insert(id.to_owned(), counters);
    }

    /// What later reads of the host return.
    pub fn set_host(&self, sample: Option<HostSample>) {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).host = sample;
    }
}

impl Sensors for FakeSensors {
    fn container(&self, id: &str, _net: NetCounter) -> Counters {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).containers.get(id).copied().unwrap_or_default()
    }

    fn host(&self) -> Option<HostSample> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).host
    }
}
