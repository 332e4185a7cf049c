//! A container's CPU and memory, read from its cgroup files: cgroup v1 (this machine's Docker,
//! cgroupfs driver) and cgroup v2 (current distributions; cgroupfs or systemd driver).
//!
//! | what | v1 file | v2 file |
//! |---|---|---|
//! | CPU time | `cpuacct/docker/<id>/cpuacct.usage` (ns) | `<group>/cpu.stat` `usage_usec` |
//! | CFS periods, throttled | `cpu/docker/<id>/cpu.stat` `nr_periods`, `nr_throttled` | `<group>/cpu.stat` same keys |
//! | memory in use | `memory/docker/<id>/memory.usage_in_bytes` | `<group>/memory.current` |
//! | memory limit | `memory/docker/<id>/memory.limit_in_bytes` (a huge value: none) | `<group>/memory.max` (`max`: none) |
//! | memory failures | `memory/docker/<id>/memory.failcnt` | `<group>/memory.events` `max` |
//! | a process | `cpu/docker/<id>/cgroup.procs` (or `cpuacct/`, `memory/`) | `<group>/cgroup.procs` |
//!
//! where the v2 `<group>` is `docker/<id>` (cgroupfs driver) or `system.slice/docker-<id>.scope`
//! (systemd driver). Reading is plain file I/O on a root passed in, so tests run on fixture trees.
//! Rates come from two samples ([`cpu_percent`], [`throttled_share`]): pure, time passed in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::files::Reader;

/// Which cgroup hierarchy a host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One hierarchy per controller under the root (`cpu/`, `cpuacct/`, `memory/`, …).
    V1,
    /// The unified hierarchy (the root has `cgroup.controllers`).
    V2,
}

/// Why a container's cgroup could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup of container {0} under {1}")]
    NotFound(String, PathBuf),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected content in {0}")]
    Parse(PathBuf),
}

/// Cumulative CPU counters of a container at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuSample {
    /// CPU time used since the container started, in nanoseconds.
    pub usage_ns: u64,
    /// CFS periods elapsed (0 without a CPU quota).
    pub periods: u64,
    /// CFS periods in which the container was throttled.
    pub throttled: u64,
}

/// A container's memory at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemorySample {
    pub usage_bytes: u64,
    /// `None`: no limit.
    pub limit_bytes: Option<u64>,
    /// Times the usage hit the limit.
    pub failures: u64,
}

/// v1 reports "no limit" as a page-rounded `i64::MAX`; anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// The cgroup files of the hierarchy rooted at `root` (normally `/sys/fs/cgroup`).
#[derive(Debug, Clone)]
pub struct Cgroups {
    root: PathBuf,
    layout: Layout,
}

impl Cgroups {
    /// Detects the layout of the hierarchy at `root`.
    pub fn detect(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let layout = if root.join("cgroup.controllers").exists() { Layout::V2 } else { Layout::V1 };
        Self { root, layout }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Where the files of the container with full id `id` are: resolved once, read every period.
    pub fn files(&self, id: &str) -> Result<GroupFiles, CgroupError> {
        match self.layout {
            Layout::V1 => Ok(GroupFiles {
                layout: Layout::V1,
                cpu: self.v1(id, "cpu")?,
                cpuacct: self.v1(id, "cpuacct")?,
                memory: self.v1(id, "memory")?,
            }),
            Layout::V2 => {
                let group = self.v2(id)?;
                Ok(GroupFiles { layout: Layout::V2, cpu: group.clone(), cpuacct: group.clone(), memory: group })
            }
        }
    }

    /// The CPU counters of the container with full id `id`.
    pub fn cpu(&self, id: &str) -> Result<CpuSample, CgroupError> {
        self.files(id)?.cpu(&mut Reader::plain())
    }

    /// The memory of the container with full id `id`.
    pub fn memory(&self, id: &str) -> Result<MemorySample, CgroupError> {
        self.files(id)?.memory(&mut Reader::plain())
    }

    /// A process of the container with full id `id`: the first listed in its group's
    /// `cgroup.procs` (v1: of the `cpu`, `cpuacct` or `memory` hierarchy), else of the first
    /// sub-group that has one (a container running systemd or Docker moves itself down a level);
    /// `None` when the group has no process (the container stopped). Its `/proc/<pid>/net` is the
    /// container's network namespace.
    pub fn pid(&self, id: &str) -> Result<Option<u32>, CgroupError> {
        let dir = match self.layout {
            Layout::V1 => ["cpu", "cpuacct", "memory"]
                .into_iter()
                .find_map(|c| self.v1(id, c).ok())
                .ok_or_else(|| CgroupError::NotFound(id.to_owned(), self.root.clone()))?,
            Layout::V2 => self.v2(id)?,
        };
        first_pid(&dir, &mut Reader::plain())
    }

    fn v1(&self, id: &str, controller: &str) -> Result<PathBuf, CgroupError> {
        // some hosts mount cpu and cpuacct together as `cpu,cpuacct`
        let hierarchies = [self.root.join(controller), self.root.join("cpu,cpuacct")];
        let found = hierarchies.iter().map(|h| h.join("docker").join(id)).find(|p| p.is_dir());
        // a container run with `--cgroup-parent` (a simulated host's budget) is one level down
        let found = found.or_else(|| hierarchies.iter().find_map(|h| under_a_parent(h, id)));
        found.ok_or_else(|| CgroupError::NotFound(id.to_owned(), self.root.join(controller)))
    }

    fn v2(&self, id: &str) -> Result<PathBuf, CgroupError> {
        let candidates =
            [self.root.join("docker").join(id), self.root.join("system.slice").join(format!("docker-{id}.scope"))];
        candidates
            .into_iter()
            .find(|p| p.is_dir())
            .or_else(|| under_a_parent(&self.root, id))
            .ok_or_else(|| CgroupError::NotFound(id.to_owned(), self.root.clone()))
    }
}

/// `<hierarchy>/<parent>/<id>` for any parent group (`--cgroup-parent`), if there is one.
fn under_a_parent(hierarchy: &Path, id: &str) -> Option<PathBuf> {
    let parents = std::fs::read_dir(hierarchy).ok()?;
    parents.filter_map(|e| e.ok()).map(|e| e.path().join(id)).find(|p| p.is_dir())
}

/// The directories of one container's cgroup ([`Cgroups::files`]); reads go through a
/// [`Reader`], which may keep the files open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFiles {
    layout: Layout,
    /// v1: the `cpu` hierarchy's group; v2: the group.
    cpu: PathBuf,
    /// v1: the `cpuacct` hierarchy's group (the same as `cpu` when mounted together).
    cpuacct: PathBuf,
    memory: PathBuf,
}

impl GroupFiles {
    /// The CPU counters.
    pub fn cpu(&self, r: &mut Reader) -> Result<CpuSample, CgroupError> {
        match self.layout {
            Layout::V1 => {
                let usage_ns = read_u64(r, &self.cpuacct.join("cpuacct.usage"))?;
                let stat = read(r, &self.cpu.join("cpu.stat"))?;
                Ok(CpuSample { usage_ns, periods: key(stat, "nr_periods"), throttled: key(stat, "nr_throttled") })
            }
            Layout::V2 => {
                let path = self.cpu.join("cpu.stat");
                let stat = read(r, &path)?;
                let usec = stat_key(stat, "usage_usec").ok_or_else(|| CgroupError::Parse(path.clone()))?;
                let (periods, throttled) = (key(stat, "nr_periods"), key(stat, "nr_throttled"));
                Ok(CpuSample { usage_ns: usec.saturating_mul(1000), periods, throttled })
            }
        }
    }

    /// The memory in use, its limit and failures.
    pub fn memory(&self, r: &mut Reader) -> Result<MemorySample, CgroupError> {
        let dir = &self.memory;
        match self.layout {
            Layout::V1 => {
                let limit = read_u64(r, &dir.join("memory.limit_in_bytes"))?;
                Ok(MemorySample {
                    usage_bytes: read_u64(r, &dir.join("memory.usage_in_bytes"))?,
                    limit_bytes: (limit < V1_UNLIMITED).then_some(limit),
                    failures: read_u64(r, &dir.join("memory.failcnt"))?,
                })
            }
            Layout::V2 => {
                let max_path = dir.join("memory.max");
                let limit_bytes = match read(r, &max_path)?.trim() {
                    "max" => None,
                    v => Some(v.parse().map_err(|_| CgroupError::Parse(max_path))?),
                };
                let failures = r.read(&dir.join("memory.events")).map(|events| key(events, "max")).unwrap_or(0);
                Ok(MemorySample { usage_bytes: read_u64(r, &dir.join("memory.current"))?, limit_bytes, failures })
            }
        }
    }

    /// A process of the container, as [`Cgroups::pid`] finds it.
    pub fn pid(&self, r: &mut Reader) -> Result<Option<u32>, CgroupError> {
        first_pid(&self.cpu, r)
    }
}

/// CPU use between two samples `elapsed` apart, in percent of one core (200 = two cores busy).
pub fn cpu_percent(before: CpuSample, after: CpuSample, elapsed: Duration) -> Option<f64> {
    let used = after.usage_ns.checked_sub(before.usage_ns)?;
    let wall = elapsed.as_nanos();
    (wall > 0).then(|| used as f64 * 100.0 / wall as f64)
}

/// The share (0–1) of the CFS periods between two samples in which the container was throttled;
/// `None` without a quota (no periods elapsed) or across a restart (counters went back).
pub fn throttled_share(before: CpuSample, after: CpuSample) -> Option<f64> {
    let periods = after.periods.checked_sub(before.periods).filter(|&p| p > 0)?;
    let throttled = after.throttled.checked_sub(before.throttled)?;
    Some((throttled as f64 / periods as f64).min(1.0))
}

/// The first process in `dir`'s `cgroup.procs`, else in its sub-groups', depth first.
fn first_pid(dir: &Path, r: &mut Reader) -> Result<Option<u32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    if let Some(first) = read(r, &path)?.split_whitespace().next() {
        return first.parse().map(Some).map_err(|_| CgroupError::Parse(path));
    }
    let entries = std::fs::read_dir(dir).map_err(|source| CgroupError::Read { path: dir.to_owned(), source })?;
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    children.sort();
    for child in children {
        if let Some(pid) = first_pid(&child, &mut Reader::plain())? {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

fn read<'r>(r: &'r mut Reader, path: &Path) -> Result<&'r str, CgroupError> {
    r.read(path).map_err(|source| CgroupError::Read { path: path.to_owned(), source })
}

fn read_u64(r: &mut Reader, path: &Path) -> Result<u64, CgroupError> {
    read(r, path)?.trim().parse().map_err(|_| CgroupError::Parse(path.to_owned()))
}

/// The value of `key` in a flat-keyed file (`key value` per line).
fn stat_key(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.split_once(' ').filter(|(k, _)| *k == key).and_then(|(_, v)| v.trim().parse().ok()))
}

/// [`stat_key`], 0 when absent (a counter that never moved is not written by every kernel).
fn key(text: &str, k: &str) -> u64 {
    stat_key(text, k).unwrap_or(0)
}

#[cfg(test)]
mod tests;
