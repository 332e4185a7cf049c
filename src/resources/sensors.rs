//! [`Sensors`]: a container's and the host's counters at one instant, behind a trait so the
//! actors run over fakes. [`HostSensors`] reads this machine's cgroup and proc files;
//! [`FakeSensors`] answers from a table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::cgroup::{Cgroups, CpuSample, GroupFiles, MemorySample};
use super::files::Reader;
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
    /// Container `id` is no longer read: what was kept for it (open files) goes.
    fn forget(&self, _id: &str) {}
}

/// This machine's cgroup hierarchy and `/proc`. A container's cgroup directories are resolved
/// on its first reading and its files kept open ([`Reader::keeping`]) until it is forgotten or
/// its cgroup goes away; its process (for the network namespace) is checked on every reading.
#[derive(Clone)]
pub struct HostSensors {
    cgroups: Cgroups,
    proc_root: PathBuf,
    open: Arc<Mutex<HashMap<String, Kept>>>,
    /// Containers whose files may be kept open: a share of the process's file limit, so keeping
    /// never takes the descriptors that sockets need. Past it, files are opened for each read.
    keep_at_most: usize,
}

/// What is kept for one container between readings.
struct Kept {
    group: GroupFiles,
    reader: Reader,
    /// The process whose network namespace was read last.
    pid: Option<u32>,
}

/// Files kept open per container at most (v1: 5 cgroup files, `cgroup.procs`, a net file).
const FILES_PER_CONTAINER: usize = 8;

impl HostSensors {
    /// The usual mounts: `/sys/fs/cgroup` and `/proc`.
    pub fn new() -> Self {
        Self::at("/sys/fs/cgroup", "/proc")
    }

    pub fn at(cgroup_root: impl Into<PathBuf>, proc_root: impl Into<PathBuf>) -> Self {
        let limit = std::fs::read_to_string("/proc/self/limits").ok().and_then(|t| open_files_limit(&t));
        let keep_at_most = limit.map_or(0, |l| usize::try_from(l / 4).unwrap_or(usize::MAX) / FILES_PER_CONTAINER);
        Self { cgroups: Cgroups::detect(cgroup_root), proc_root: proc_root.into(), open: Arc::default(), keep_at_most }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for HostSensors {
    fn default() -> Self {
        Self::new()
    }
}

impl Sensors for HostSensors {
    fn container(&self, id: &str, net: NetCounter) -> Counters {
        // Taken out of the table while reading, so other probes' readings don't wait on this one.
        let (kept, keep) = {
            let mut open = self.lock();
            (open.remove(id), open.len() < self.keep_at_most)
        };
        let mut kept = match kept {
            Some(kept) => kept,
            None => match self.cgroups.files(id) {
                Ok(group) => {
                    let reader = if keep { Reader::keeping() } else { Reader::plain() };
                    Kept { group, reader, pid: None }
                }
                Err(_) => return Counters::default(),
            },
        };
        // The network counters are the namespace's of any process of the container: the first
        // one its cgroup lists, so no engine call is needed.
        let pid = kept.group.pid(&mut kept.reader).ok().flatten();
        if pid != kept.pid {
            if let Some(old) = kept.pid {
                for which in [NetCounter::PassiveOpens, NetCounter::RxPackets] {
                    kept.reader.forget(&procfs::net_counter_path(&self.proc_root, old, which));
                }
            }
            kept.pid = pid;
        }
        let counters = Counters {
            cpu: kept.group.cpu(&mut kept.reader).ok(),
            memory: kept.group.memory(&mut kept.reader).ok(),
            net: pid.and_then(|pid| {
                let text = kept.reader.read(&procfs::net_counter_path(&self.proc_root, pid, net)).ok()?;
                procfs::net_counter_value(net, text)
            }),
        };
        kept.reader.release();
        // A group that answers nothing went away (the container stopped or was re-created):
        // resolve it again next time.
        if counters.cpu.is_some() || counters.memory.is_some() {
            self.lock().insert(id.to_owned(), kept);
        }
        counters
    }

    fn host(&self) -> Option<HostSample> {
        procfs::host_sample(&self.proc_root).ok()
    }

    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// The soft limit of open files in a `/proc/<pid>/limits` text (`None`: unlimited or absent).
fn open_files_limit(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn write(path: &std::path::Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // in place, as the kernel rewrites its files: kept descriptors see the new content
        std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(path).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn tree(cg: &std::path::Path, proc: &std::path::Path, pid: u32, usage: u64, opens: u64) {
        let group = |c: &str| cg.join(c).join("docker").join(ID);
        write(&group("cpuacct").join("cpuacct.usage"), &format!("{usage}\n"));
        write(&group("cpu").join("cpu.stat"), "nr_periods 10\nnr_throttled 2\n");
        write(&group("cpu").join("cgroup.procs"), &format!("{pid}\n"));
        for (name, v) in [("memory.usage_in_bytes", "4096"), ("memory.limit_in_bytes", "8192"), ("memory.failcnt", "0")]
        {
            write(&group("memory").join(name), v);
        }
        let snmp = format!("Tcp: RtoAlgorithm PassiveOpens\nTcp: 1 {opens}\n");
        write(&proc.join(pid.to_string()).join("net/snmp"), &snmp);
    }

    #[test]
    fn kept_files_follow_the_counters_and_a_new_process_its_own_namespace() {
        let (cg, proc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut sensors = HostSensors::at(cg.path(), proc.path());
        sensors.keep_at_most = 10;
        tree(cg.path(), proc.path(), 41, 1_000, 7);
        let first = sensors.container(ID, NetCounter::PassiveOpens);
        assert_eq!((first.cpu.unwrap().usage_ns, first.net), (1_000, Some(7)));
        assert_eq!(first.memory.unwrap().limit_bytes, Some(8192));
        assert!(sensors.lock()[ID].reader.kept() >= 6, "its files are kept open");
        tree(cg.path(), proc.path(), 41, 2_500, 9);
        let second = sensors.container(ID, NetCounter::PassiveOpens);
        assert_eq!((second.cpu.unwrap().usage_ns, second.net), (2_500, Some(9)));
        // the container restarted: another process, another namespace
        tree(cg.path(), proc.path(), 77, 100, 1);
        assert_eq!(sensors.container(ID, NetCounter::PassiveOpens).net, Some(1));
        sensors.forget(ID);
        assert!(sensors.lock().is_empty());
    }

    #[test]
    fn past_its_share_of_the_file_limit_a_container_is_read_without_keeping() {
        let (cg, proc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut sensors = HostSensors::at(cg.path(), proc.path());
        sensors.keep_at_most = 0;
        tree(cg.path(), proc.path(), 41, 1_000, 7);
        assert_eq!(sensors.container(ID, NetCounter::PassiveOpens).net, Some(7));
        assert_eq!(sensors.lock()[ID].reader.kept(), 0);
    }

    #[test]
    fn an_unknown_container_reads_as_nothing_and_is_not_kept() {
        let (cg, proc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let sensors = HostSensors::at(cg.path(), proc.path());
        assert_eq!(sensors.container(ID, NetCounter::RxPackets), Counters::default());
        assert!(sensors.lock().is_empty());
    }

    #[test]
    fn the_open_files_limit_is_read_from_the_limits_table() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(open_files_limit(text), Some(1024));
        assert_eq!(open_files_limit("Max open files unlimited unlimited files"), None);
        assert_eq!(open_files_limit(""), None);
    }
}
