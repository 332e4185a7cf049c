//! Simulated hosts' CPU budgets: when several managers share one engine (`--select hms.host=vmN`),
//! each simulated host's containers run under a cgroup parent of their own (`docker run
//! --cgroup-parent /hms-<host>`) with a CFS quota, so one container's hog really starves its
//! siblings and a host can be overloaded as a whole.
//!
//! | layout | the parent | its quota |
//! |---|---|---|
//! | v1 (cgroupfs driver) | `cpu/hms-<host>` (the engine makes it in the other hierarchies) | `cpu.cfs_quota_us` over `cpu.cfs_period_us` |
//! | v2 | `hms-<host>` (with `+cpu` in the root's `cgroup.subtree_control`) | `cpu.max` |
//!
//! The harness and the experiment create and remove them; [`remove_stale`] removes what a crashed
//! run left (the empty `hms-*` groups).

use std::path::{Path, PathBuf};

use super::cgroup::{Cgroups, Layout};

/// The CFS period of a budget, in microseconds (the kernel's default).
pub const PERIOD_US: u64 = 100_000;
/// The prefix of every budget's group.
pub const PREFIX: &str = "hms-";

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("a simulated host's name must be 1-64 letters, digits, '.', '_' or '-', got {0:?}")]
    Name(String),
    #[error("a budget must be more than 0 and at most 64 CPUs, got {0}")]
    Cpus(f64),
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One simulated host's CPU budget.
#[derive(Debug, Clone)]
pub struct Budget {
    root: PathBuf,
    layout: Layout,
    name: String,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BudgetError + 'a {
    move |source| BudgetError::Io { what, path: path.to_owned(), source }
}

impl Budget {
    /// Creates (or re-quotas) the group of simulated host `host` under the hierarchy at `root`
    /// (normally `/sys/fs/cgroup`) with `cpus` CPUs.
    pub fn create(root: impl Into<PathBuf>, host: &str, cpus: f64) -> Result<Self, BudgetError> {
        let valid = !host.is_empty()
            && host.len() <= 64
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(BudgetError::Name(host.to_owned()));
        }
        if !(cpus.is_finite() && cpus > 0.0 && cpus <= 64.0) {
            return Err(BudgetError::Cpus(cpus));
        }
        let root = root.into();
        let layout = Cgroups::detect(&root).layout().clone();
        let budget = Self { root, layout, name: format!("{PREFIX}{host}") };
        let quota = (cpus * PERIOD_US as f64).round() as u64;
        match budget.layout {
            Layout::V1 => {
                let dir = budget.root.join("cpu").join(&budget.name);
                std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                write(&dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
            Layout::V2 => {
                let control = budget.root.join("cgroup.subtree_control");
                let enabled = std::fs::read_to_string(&control).unwrap_or_default();
                if !enabled.split_whitespace().any(|c| c == "cpu") {
                    write(&control, "+cpu")?;
                }
                let dir = budget.root.join(&budget.name);
                std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                write(&dir.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?;
            }
        }
        Ok(budget)
    }

    /// What `docker run --cgroup-parent` takes.
    pub fn cgroup_parent(&self) -> String {
        format!("/{}", self.name)
    }

    /// Removes the group from every hierarchy that has it; its containers must be gone first
    /// (the kernel refuses to remove a group in use).
    pub fn remove(&self) -> Result<(), BudgetError> {
        for dir in groups(&self.root, &self.layout, |n| n == self.name) {
            kill_group(&dir.join(HOG_GROUP))?;
            std::fs::remove_dir(&dir).map_err(io("remove", &dir))?;
        }
        Ok(())
    }
}

/// The CPUs of the budget of cgroup parent `parent` (as `--cgroup-parent` takes it), when it
/// has a quota.
pub fn quota_cpus(root: &Path, parent: &str) -> Option<f64> {
    let name = parent.trim_matches('/');
    match Cgroups::detect(root).layout() {
        Layout::V1 => {
            let dir = root.join("cpu").join(name);
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok()?.trim().parse::<i64>().ok();
            let (quota, period) = (read("cpu.cfs_quota_us")?, read("cpu.cfs_period_us")?);
            (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
        }
        Layout::V2 => {
            let text = std::fs::read_to_string(root.join(name).join("cpu.max")).ok()?;
            let mut parts = text.split_whitespace();
            let quota: f64 = parts.next()?.parse().ok()?;
            let period: f64 = parts.next()?.parse().ok()?;
            (quota > 0.0 && period > 0.0).then(|| quota / period)
        }
    }
}

/// Removes every empty budget group of the simulated hosts named `host_prefix…` (`""`: all of
/// them) that a crashed run left; returns how many. Groups still in use are left, not counted.
pub fn remove_stale(root: &Path, host_prefix: &str) -> usize {
    let layout = Cgroups::detect(root).layout().clone();
    let prefix = format!("{PREFIX}{host_prefix}");
    let stale = groups(root, &layout, |n| n.starts_with(&prefix));
    stale.into_iter().filter(|d| kill_group(&d.join(HOG_GROUP)).is_ok() && std::fs::remove_dir(d).is_ok()).count()
}

/// The group of a node hog under a budget: processes of the host, not of any container, eating
/// the simulated host's budget as a runaway daemon of a real host would.
pub const HOG_GROUP: &str = "hms-node-hog";

/// The directory of the budget group of cgroup parent `parent` holding the CPU controller.
fn budget_dir(root: &Path, parent: &str) -> PathBuf {
    let name = parent.trim_matches('/');
    match Cgroups::detect(root).layout() {
        Layout::V1 => root.join("cpu").join(name),
        Layout::V2 => root.join(name),
    }
}

/// Creates the node-hog group under the budget of cgroup parent `parent` (which must exist);
/// its directory, whose `cgroup.procs` a hog writes itself into before it starts.
pub fn hog_group(root: &Path, parent: &str) -> Result<PathBuf, BudgetError> {
    let budget = budget_dir(root, parent);
    if !budget.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such budget");
        return Err(BudgetError::Io { what: "find", path: budget, source });
    }
    let dir = budget.join(HOG_GROUP);
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    Ok(dir)
}

/// The CFS periods of the budget of cgroup parent `parent` so far, and how many of them were
/// throttled (`cpu.stat`'s `nr_periods` and `nr_throttled`, v1 and v2 alike): a host whose
/// budget is throttled in most periods is overloaded as a whole.
pub fn throttling(root: &Path, parent: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(budget_dir(root, parent).join("cpu.stat")).ok()?;
    let field =
        |name: &str| stat.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<u64>().ok());
    Some((field("nr_periods")?, field("nr_throttled")?))
}

/// Kills (SIGKILL, through `/bin/sh`'s `kill`) every process of group `dir`, waits up to 2 s for
/// them to leave it, and removes it. A group already gone is fine. Blocking: from async code,
/// run it with `spawn_blocking`.
pub fn kill_group(dir: &Path) -> Result<(), BudgetError> {
    let procs = dir.join("cgroup.procs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let pids = match std::fs::read_to_string(&procs) {
            Ok(t) => {
                t.split_whitespace().filter(|p| p.bytes().all(|b| b.is_ascii_digit())).collect::<Vec<_>>().join(" ")
            }
            // no group (or, in a fixture, no file): nothing to kill
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(BudgetError::Io { what: "read", path: procs, source: e }),
        };
        if pids.is_empty() {
            return match std::fs::remove_dir(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(BudgetError::Io { what: "remove", path: dir.to_owned(), source: e })
                }
                _ => Ok(()),
            };
        }
        if std::time::Instant::now() > deadline {
            let source = std::io::Error::other(format!("processes {pids} survived SIGKILL"));
            return Err(BudgetError::Io { what: "empty", path: dir.to_owned(), source });
        }
        let _ = std::process::Command::new("/bin/sh").args(["-c", &format!("kill -9 {pids}")]).status();
        #[allow(
            clippy::disallowed_methods,
            reason = "a short blocking wait for killed processes to exit, off the runtime"
        )]
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The directories named `name` right under each hierarchy (v1) or the root (v2).
fn groups(root: &Path, layout: &Layout, name: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let tops = match layout {
        Layout::V1 => std::fs::read_dir(root)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default(),
        Layout::V2 => vec![root.to_owned()],
    };
    let mut out = Vec::new();
    for top in tops {
        let Ok(rd) = std::fs::read_dir(&top) else { continue };
        for e in rd.filter_map(|e| e.ok()) {
            if e.file_name().to_str().is_some_and(&name) && e.path().is_dir() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn write(path: &Path, text: &str) -> Result<(), BudgetError> {
    std::fs::write(path, text).map_err(io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_budget_is_a_quota_under_the_cpu_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("cpu")).unwrap();
        std::fs::create_dir_all(root.path().join("memory")).unwrap();
        let b = Budget::create(root.path(), "vm1", 0.75).unwrap();
        assert_eq!(b.cgroup_parent(), "/hms-vm1");
        let dir = root.path().join("cpu/hms-vm1");
        assert_eq!(std::fs::read_to_string(dir.join("cpu.cfs_quota_us")).unwrap(), "75000");
        assert_eq!(std::fs::read_to_string(dir.join("cpu.cfs_period_us")).unwrap(), "100000");
        assert_eq!(quota_cpus(root.path(), &b.cgroup_parent()), Some(0.75));
        assert_eq!(hog_group(root.path(), "/hms-vm1").unwrap(), dir.join(HOG_GROUP));
        assert!(hog_group(root.path(), "/hms-none").is_err(), "no hog outside a budget");
        std::fs::write(dir.join("cpu.stat"), "nr_periods 40\nnr_throttled 31\nthrottled_time 9\n").unwrap();
        assert_eq!(throttling(root.path(), "/hms-vm1"), Some((40, 31)));
        assert_eq!(throttling(root.path(), "/hms-none"), None);
        std::fs::remove_file(dir.join("cpu.stat")).unwrap();
        assert_eq!(quota_cpus(root.path(), "/hms-none"), None);
        // the engine makes the group in the other hierarchies; removal takes them all
        std::fs::create_dir_all(root.path().join("memory/hms-vm1")).unwrap();
        // a fixture's files keep a directory from being removed: empty them as the kernel would
        for f in ["cpu.cfs_quota_us", "cpu.cfs_period_us"] {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
        b.remove().unwrap();
        assert!(!dir.exists() && !root.path().join("memory/hms-vm1").exists());
    }

    #[test]
    fn a_v2_budget_enables_the_cpu_controller_and_sets_cpu_max() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory").unwrap();
        std::fs::write(root.path().join("cgroup.subtree_control"), "").unwrap();
        Budget::create(root.path(), "vm-2", 1.5).unwrap();
        assert_eq!(std::fs::read_to_string(root.path().join("cgroup.subtree_control")).unwrap(), "+cpu");
        assert_eq!(std::fs::read_to_string(root.path().join("hms-vm-2/cpu.max")).unwrap(), "150000 100000");
        assert_eq!(quota_cpus(root.path(), "/hms-vm-2"), Some(1.5));
    }

    #[test]
    fn bad_names_and_budgets_are_refused() {
        let root = tempfile::tempdir().unwrap();
        for bad in ["", "../etc", "a b", &"x".repeat(65)] {
            assert!(matches!(Budget::create(root.path(), bad, 1.0), Err(BudgetError::Name(_))), "{bad:?}");
        }
        for cpus in [0.0, -1.0, f64::NAN, 65.0] {
            assert!(matches!(Budget::create(root.path(), "vm1", cpus), Err(BudgetError::Cpus(_))), "{cpus}");
        }
    }

    #[test]
    fn stale_groups_are_removed_when_empty() {
        let root = tempfile::tempdir().unwrap();
        for d in ["cpu/hms-old", "cpu/docker", "memory/hms-old", "cpu/hms-busy/child", "cpu/hms-hogged/hms-node-hog"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        // a crashed run's node hog group, its processes gone (an empty `cgroup.procs` is what
        // the kernel shows; a fixture's file must go for the directory to be removable)
        assert_eq!(remove_stale(root.path(), ""), 3);
        assert!(root.path().join("cpu/docker").exists() && root.path().join("cpu/hms-busy").exists());
    }
}
