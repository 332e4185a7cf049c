//! The timed fault kinds beyond the seed's (`cpu_hog`, `memory_leak`, `cpu_starve`,
//! `load_surge`): how each is injected, seen to take effect, and undone.
//!
//! Every injection is bounded twice: in time by itself (a hog runs under busybox `timeout`, a
//! surge under its own duration) and by an undo step registered before it starts ([`Undo`]), so
//! a stop, a reconfiguration or a target leaving the scope ends it at once. The undo steps that
//! would outlive this process (a file in the container, a cut CPU limit) are also written to
//! [`UndoJournal`] in the data dir, and a new antagonist applies what a crashed one left.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::probe::response::ResponseTarget;
use crate::resources::procfs::NetCounter;
use crate::resources::sensors::{Counters, Sensors};
use crate::runtime::{ContainerRuntime, RuntimeError};

/// The tag in a hog's command line, found again by [`kill_tagged`].
pub const HOG_TAG: &str = "hms-hog";
/// The tag of a leak's writer, and its file under `/dev/shm`.
pub const LEAK_TAG: &str = "hms-leak";
/// What a leak grows to, as a share of the memory limit (with what the container already uses).
pub const LEAK_SHARE: f64 = 0.85;
/// Largest leak: Docker's default `/dev/shm` is 64 MiB.
pub const LEAK_MAX_MIB: u64 = 60;
/// A starved container keeps this share of its CPU limit.
pub const STARVE_SHARE: f64 = 0.25;
/// A surge adds this many times the measured rate (×5 in all).
pub const SURGE_EXTRA: f64 = 4.0;

/// How an attack in progress is undone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Undo {
    /// A command run in the container (kill the hog, remove the leak).
    Exec(Vec<String>),
    /// A command run in another container (kill a sibling's hog), by full id.
    ExecIn(String, Vec<String>),
    /// Put the CPU limit back (`None`: none).
    Cpus(Option<f64>),
    /// Kill a node hog: every process of this group under a budget, and remove the group.
    NodeHog(PathBuf),
    /// Stop a load run (dies with the process: never journaled).
    #[serde(skip)]
    Load(Arc<AtomicBool>),
}

impl Undo {
    /// Applies it to container `id`.
    pub async fn apply(&self, runtime: &dyn ContainerRuntime, id: &str) -> Result<(), RuntimeError> {
        match self {
            Undo::Exec(cmd) => {
                let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
                runtime.exec(id, &cmd, false).await
            }
            Undo::ExecIn(other, cmd) => {
                let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
                runtime.exec(other, &cmd, false).await
            }
            Undo::Cpus(cpus) => runtime.set_cpus(id, *cpus).await,
            Undo::NodeHog(group) => {
                let group = group.clone();
                let killed = tokio::task::spawn_blocking(move || crate::resources::budget::kill_group(&group)).await;
                killed.map_err(|e| RuntimeError::Other(e.into()))?.map_err(|e| RuntimeError::Other(e.into()))
            }
            Undo::Load(stop) => {
                stop.store(true, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Whether it must survive this process.
    fn durable(&self) -> bool {
        !matches!(self, Undo::Load(_))
    }
}

/// A shell command that kills (SIGKILL) every process in the container whose command line holds
/// `tag`, then runs `then`. Only `sh`, `tr`, `grep` and `kill` are needed: Debian's busybox has
/// no `pkill`, and a missing `pkill` once left every hog running to its `timeout`. The pattern
/// has a bracket, so neither the shell running the script nor its `grep` matches itself.
fn kill_tagged(tag: &str, then: &str) -> Vec<String> {
    let (head, last) = tag.split_at(tag.len() - 1);
    let script = format!(
        "for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline 2>/dev/null | grep -q '{head}[{last}]' \
         && kill -9 ${{p#/proc/}} 2>/dev/null; done; {then} true"
    );
    vec!["sh".into(), "-c".into(), script]
}

/// The busy loop: one CPU's worth inside the container, killed by `timeout` after `secs`.
pub fn hog_command(secs: u64) -> (Vec<String>, Undo) {
    let bound = secs.max(1).to_string();
    let cmd = ["timeout", "-s", "KILL", &bound, "sh", "-c", "while :; do :; done", HOG_TAG];
    (cmd.iter().map(|s| (*s).to_owned()).collect(), Undo::Exec(kill_tagged(HOG_TAG, "")))
}

/// The tag of a node hog's processes.
pub const NODE_HOG_TAG: &str = "hms-node-hog";

/// Starts `loops` busy loops on the host, each moving itself into cgroup `group` first (a loop
/// that cannot does not start: no hog outside a budget) and killed by `timeout` after `secs`.
/// The children are reaped by the runtime when dropped.
pub fn node_hog(group: &Path, loops: usize, secs: u64) -> std::io::Result<()> {
    let procs = group.join("cgroup.procs");
    let procs = procs.to_str().filter(|p| !p.contains('\'')).ok_or_else(|| std::io::Error::other("odd group path"))?;
    let script = format!(
        "echo $$ > '{procs}' || exit 1; exec timeout -s KILL {} sh -c 'while :; do :; done' {NODE_HOG_TAG}",
        secs.max(1)
    );
    for _ in 0..loops.max(1) {
        tokio::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
    }
    Ok(())
}

/// The leak: `mib` MiB written one at a time into `/dev/shm/hms-leak` over `grow_secs`, held
/// until `secs` (then killed by `timeout`; the file stays until the undo removes it).
pub fn leak_command(mib: u64, grow_secs: f64, secs: u64) -> (Vec<String>, Undo) {
    let pause_us = (grow_secs * 1e6 / mib.max(1) as f64) as u64;
    let script = format!(
        "i=0; while [ $i -lt {mib} ]; do dd if=/dev/zero of=/dev/shm/{LEAK_TAG} bs=1048576 count=1 seek=$i \
         conv=notrunc 2>/dev/null || break; i=$((i+1)); usleep {pause_us}; done; sleep {secs}"
    );
    let bound = secs.max(1).to_string();
    let cmd = ["timeout", "-s", "KILL", &bound, "sh", "-c", &script, LEAK_TAG];
    // the file by a glob: the tag written out would make the killing shell kill itself
    let (head, last) = LEAK_TAG.split_at(LEAK_TAG.len() - 1);
    let undo = Undo::Exec(kill_tagged(LEAK_TAG, &format!("rm -f /dev/shm/{head}[{last}];")));
    (cmd.iter().map(|s| (*s).to_owned()).collect(), undo)
}

/// How many MiB a leak writes: up to [`LEAK_SHARE`] of `limit` counting what is `used`, at most
/// [`LEAK_MAX_MIB`]; 0 when the container is already there.
pub fn leak_mib(limit: u64, used: u64) -> u64 {
    let room = (limit as f64 * LEAK_SHARE - used as f64).max(0.0);
    ((room / 1_048_576.0) as u64).min(LEAK_MAX_MIB)
}

/// The CPU limit of a starved container: [`STARVE_SHARE`] of its limit (of the host's CPUs
/// without one), at least 0.05.
pub fn starved_cpus(limit: Option<f64>, host_cpus: f64) -> f64 {
    (limit.unwrap_or(host_cpus) * STARVE_SHARE).max(0.05)
}

/// The URL a surge loads: the container's HTTP probe path at its address.
pub fn surge_url(ip: IpAddr, probe: Option<&ResponseTarget>) -> Option<String> {
    match probe? {
        ResponseTarget::Http { port, path } => Some(format!("http://{}{path}", std::net::SocketAddr::new(ip, *port))),
        ResponseTarget::Tcp { .. } => None,
    }
}

/// Watches container `id` every second for the whole `span` (the fault's length: it returns
/// only then): true when `seen` held between two readings (the earlier one, the later one, the
/// time between) at least once.
pub async fn watch(
    sensors: &dyn Sensors,
    id: &str,
    span: Duration,
    seen: impl Fn(&Counters, &Counters, Duration) -> bool,
) -> bool {
    let end = tokio::time::Instant::now() + span;
    let mut last = (tokio::time::Instant::now(), sensors.container(id, NetCounter::PassiveOpens));
    let mut any = false;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1).min(end.saturating_duration_since(tokio::time::Instant::now())))
            .await;
        let now = (tokio::time::Instant::now(), sensors.container(id, NetCounter::PassiveOpens));
        any |= seen(&last.1, &now.1, now.0 - last.0);
        last = now;
    }
    any
}

/// Connections a second the container accepted, from two readings.
pub fn accept_rate(before: &Counters, after: &Counters, elapsed: Duration) -> Option<f64> {
    crate::resources::procfs::rate(before.net?, after.net?, elapsed)
}

/// CPU use between two readings, in percent of one core.
pub fn cpu_percent(before: &Counters, after: &Counters, elapsed: Duration) -> Option<f64> {
    crate::resources::cgroup::cpu_percent(before.cpu?, after.cpu?, elapsed)
}

/// The durable undo steps of attacks in progress, by container id, in `antagonist-undo.json`
/// under the data dir; rewritten whole on each change (a handful of entries).
#[derive(Debug, Clone)]
pub struct UndoJournal {
    path: Option<PathBuf>,
}

/// The journal's file name under the data dir.
pub const JOURNAL_FILE: &str = "antagonist-undo.json";

impl UndoJournal {
    pub fn new(dir: Option<&Path>) -> Self {
        Self { path: dir.map(|d| d.join(JOURNAL_FILE)) }
    }

    fn read(&self) -> BTreeMap<String, Undo> {
        let Some(path) = &self.path else { return BTreeMap::new() };
        std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    fn write(&self, entries: &BTreeMap<String, Undo>) {
        let Some(path) = &self.path else { return };
        let res = if entries.is_empty() {
            std::fs::remove_file(path)
                .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        } else {
            serde_json::to_string(entries).map_err(std::io::Error::other).and_then(|t| {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, t).and_then(|()| std::fs::rename(&tmp, path))
            })
        };
        if let Err(e) = res {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the antagonist's undo journal");
        }
    }

    /// Notes `undo` for container `id` (durable kinds only).
    pub fn add(&self, id: &str, undo: &Undo) {
        if undo.durable() && self.path.is_some() {
            let mut e = self.read();
            e.insert(id.to_owned(), undo.clone());
            self.write(&e);
        }
    }

    /// Forgets container `id`'s entry (its attack was undone).
    pub fn remove(&self, id: &str) {
        if self.path.is_some() {
            let mut e = self.read();
            if e.remove(id).is_some() {
                self.write(&e);
            }
        }
    }

    /// Applies and forgets what a previous process left; returns how many steps it applied.
    pub async fn recover(&self, runtime: &dyn ContainerRuntime) -> usize {
        let left = self.read();
        let mut applied = 0;
        for (id, undo) in &left {
            match undo.apply(runtime, id).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => applied += 1,
                Err(e) => {
                    tracing::warn!(container.id = %crate::model::short_id(id), error = %e, "cannot undo a crashed run's attack")
                }
            }
        }
        self.write(&BTreeMap::new());
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leak_stops_short_of_the_limit_and_of_the_shm_size() {
        const MIB: u64 = 1_048_576;
        assert_eq!(leak_mib(40 * MIB, 2 * MIB), 32);
        assert_eq!(leak_mib(40 * MIB, 39 * MIB), 0);
        assert_eq!(leak_mib(1024 * MIB, 0), LEAK_MAX_MIB);
    }

    #[test]
    fn a_starved_container_keeps_a_quarter_and_never_nothing() {
        assert_eq!(starved_cpus(Some(0.8), 2.0), 0.2);
        assert_eq!(starved_cpus(None, 2.0), 0.5);
        assert_eq!(starved_cpus(Some(0.1), 2.0), 0.05);
    }

    #[test]
    fn the_kill_pattern_does_not_match_its_own_shell() {
        let (_, undo) = hog_command(5);
        let Undo::Exec(cmd) = undo else { panic!("an exec") };
        assert!(cmd[2].contains("grep -q 'hms-ho[g]'"), "{}", cmd[2]);
        assert!(!cmd[2].contains(HOG_TAG));
        let (_, undo) = leak_command(8, 1.0, 5);
        let Undo::Exec(cmd) = undo else { panic!("an exec") };
        assert!(cmd[2].contains("rm -f /dev/shm/hms-lea[k]"), "{}", cmd[2]);
        assert!(!cmd[2].contains(LEAK_TAG), "the killer would match itself: {}", cmd[2]);
        let (run, _) = hog_command(0);
        assert_eq!(&run[..4], ["timeout", "-s", "KILL", "1"]);
        assert_eq!(run.last().map(String::as_str), Some(HOG_TAG));
    }

    #[test]
    fn a_surge_needs_an_http_probe() {
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let http = ResponseTarget::Http { port: 8080, path: "/index.html".into() };
        assert_eq!(surge_url(ip, Some(&http)).as_deref(), Some("http://10.0.0.2:8080/index.html"));
        assert_eq!(surge_url(ip, Some(&ResponseTarget::Tcp { port: 5432 })), None);
        assert_eq!(surge_url(ip, None), None);
    }

    #[tokio::test]
    async fn the_journal_keeps_durable_steps_and_a_new_run_applies_them() {
        let dir = tempfile::tempdir().unwrap();
        let rt = crate::runtime::fake::FakeRuntime::new();
        let id = rt.add("web", &[]);
        let journal = UndoJournal::new(Some(dir.path()));
        journal.add(&id, &Undo::Cpus(Some(1.5)));
        journal.add("other", &Undo::Load(Arc::new(AtomicBool::new(false))));
        assert_eq!(journal.read().len(), 1, "a load run is not journaled");
        // a new process
        assert_eq!(UndoJournal::new(Some(dir.path())).recover(&rt).await, 1);
        assert_eq!(rt.limits(&id).await.unwrap().cpus, Some(1.5));
        assert!(!dir.path().join(JOURNAL_FILE).exists());
        journal.add(&id, &Undo::Cpus(None));
        journal.remove(&id);
        assert!(!dir.path().join(JOURNAL_FILE).exists());
    }
}
