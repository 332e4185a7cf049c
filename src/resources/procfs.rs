//! The host's CPU, memory, load and pressure, and a container's inbound traffic, read from procfs.
//!
//! | what | file (under the proc root) | field |
//! |---|---|---|
//! | connections accepted | `<pid>/net/snmp` | `Tcp:` column `PassiveOpens` (found by name) |
//! | packets received | `<pid>/net/dev` | receive `packets`, summed over every interface but `lo` |
//! | host CPU time | `stat` | `cpu ` line: user nice system idle iowait irq softirq steal (jiffies) |
//! | host memory | `meminfo` | `MemTotal`, `MemAvailable` (kB) |
//! | host load | `loadavg` | first field (1-minute average) |
//! | CPU, memory pressure | `pressure/cpu`, `pressure/memory` | `some avg10` (%; no files without PSI) |
//!
//! `<pid>/net/` shows the network namespace of process `<pid>`, so reading it for a container's
//! process ([`crate::resources::cgroup::Cgroups::pid`]) counts, from outside the container, what
//! the container accepted and received. Reading is plain file I/O on a root passed in (normally
//! `/proc`), so tests run on fixture trees; malformed content is a [`ProcError::Parse`], never a
//! panic. Rates come from two samples ([`cpu_busy_percent`], [`rate`]): pure, time passed in.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a procfs file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file does not exist (the process is gone, or the kernel does not provide it).
    #[error("no file {0}")]
    NotFound(PathBuf),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected content in {0}")]
    Parse(PathBuf),
}

/// Cumulative inbound traffic of a network namespace at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetCounters {
    /// TCP connections accepted (`Tcp: PassiveOpens`).
    pub passive_opens: u64,
    /// Packets received on every interface but `lo`; goes back when an interface goes away.
    pub rx_packets: u64,
}

/// Cumulative CPU time of the whole host, in jiffies (all CPUs together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Everything but idle and iowait.
    pub busy: u64,
    pub total: u64,
}

/// The host at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostSample {
    pub cpu: CpuTimes,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    /// Load average over one minute.
    pub load1: f64,
    /// Share of the last 10 s in which some task waited for a CPU, in percent; `None` without PSI.
    pub cpu_pressure: Option<f64>,
    /// Share of the last 10 s in which some task waited for memory, in percent; `None` without PSI.
    pub memory_pressure: Option<f64>,
}

/// The inbound counters of the network namespace of process `pid`.
pub fn net_counters(proc_root: &Path, pid: u32) -> Result<NetCounters, ProcError> {
    let net = proc_root.join(pid.to_string()).join("net");
    Ok(NetCounters {
        passive_opens: parse(&net.join("snmp"), |t| snmp_value(t, "Tcp", "PassiveOpens"))?,
        rx_packets: parse(&net.join("dev"), rx_packets)?,
    })
}

/// One inbound counter of a network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetCounter {
    /// TCP connections accepted (`net/snmp` `Tcp: PassiveOpens`).
    PassiveOpens,
    /// Packets received off `lo` (`net/dev`).
    RxPackets,
}

/// One inbound counter of the network namespace of process `pid`: half the reads of
/// [`net_counters`] when only one is needed.
pub fn net_counter(proc_root: &Path, pid: u32, which: NetCounter) -> Result<u64, ProcError> {
    let path = net_counter_path(proc_root, pid, which);
    parse(&path, |t| net_counter_value(which, t))
}

/// The file holding counter `which` of process `pid`'s network namespace.
pub fn net_counter_path(proc_root: &Path, pid: u32, which: NetCounter) -> PathBuf {
    let net = proc_root.join(pid.to_string()).join("net");
    match which {
        NetCounter::PassiveOpens => net.join("snmp"),
        NetCounter::RxPackets => net.join("dev"),
    }
}

/// Counter `which` in the content of its file ([`net_counter_path`]).
pub fn net_counter_value(which: NetCounter, text: &str) -> Option<u64> {
    match which {
        NetCounter::PassiveOpens => snmp_value(text, "Tcp", "PassiveOpens"),
        NetCounter::RxPackets => rx_packets(text),
    }
}

/// The host's CPU times, memory, load and pressure.
pub fn host_sample(proc_root: &Path) -> Result<HostSample, ProcError> {
    let memory = |t: &str| Some((meminfo_bytes(t, "MemTotal")?, meminfo_bytes(t, "MemAvailable")?));
    let (memory_total_bytes, memory_available_bytes) = parse(&proc_root.join("meminfo"), memory)?;
    let pressure = proc_root.join("pressure");
    Ok(HostSample {
        cpu: parse(&proc_root.join("stat"), cpu_times)?,
        memory_total_bytes,
        memory_available_bytes,
        load1: parse(&proc_root.join("loadavg"), load1)?,
        cpu_pressure: pressure_some_avg10(&pressure.join("cpu"))?,
        memory_pressure: pressure_some_avg10(&pressure.join("memory"))?,
    })
}

/// Busy share of all CPUs between two samples, in percent (0–100); `None` when no time passed or
/// the counters went back.
pub fn cpu_busy_percent(before: CpuTimes, after: CpuTimes) -> Option<f64> {
    let total = after.total.checked_sub(before.total).filter(|&t| t > 0)?;
    let busy = after.busy.checked_sub(before.busy)?;
    Some((busy as f64 * 100.0 / total as f64).min(100.0))
}

/// The per-second rate of a counter between two samples `elapsed` apart; `None` when no time
/// passed or the counter went back (the container restarted).
pub fn rate(before: u64, after: u64, elapsed: Duration) -> Option<f64> {
    let delta = after.checked_sub(before)?;
    let secs = elapsed.as_secs_f64();
    (secs > 0.0).then(|| delta as f64 / secs)
}

fn read(path: &Path) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ProcError::NotFound(path.to_owned()),
        _ => ProcError::Read { path: path.to_owned(), source },
    })
}

/// Reads `path` and extracts a value with `f`; `None` from `f` is a parse error naming the path.
fn parse<T>(path: &Path, f: impl FnOnce(&str) -> Option<T>) -> Result<T, ProcError> {
    f(&read(path)?).ok_or_else(|| ProcError::Parse(path.to_owned()))
}

/// Linux's `EOPNOTSUPP`: what a PSI file answers when the kernel was booted with `psi=0`.
const EOPNOTSUPP: i32 = 95;

/// `some avg10` of a PSI file; `None` when the kernel has no PSI (no file, or PSI disabled).
fn pressure_some_avg10(path: &Path) -> Result<Option<f64>, ProcError> {
    match read(path) {
        Ok(text) => psi_some_avg10(&text).map(Some).ok_or_else(|| ProcError::Parse(path.to_owned())),
        Err(ProcError::NotFound(_)) => Ok(None),
        Err(ProcError::Read { source, .. }) if source.raw_os_error() == Some(EOPNOTSUPP) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The value in column `column` of protocol `proto` in a `net/snmp`-style file: a line of names
/// then a line of values, both prefixed `<proto>:`.
fn snmp_value(text: &str, proto: &str, column: &str) -> Option<u64> {
    let of_proto = |l: &&str| l.split_whitespace().next().and_then(|w| w.strip_suffix(':')) == Some(proto);
    let mut lines = text.lines().filter(of_proto);
    let (names, values) = (lines.next()?, lines.next()?);
    if names.split_whitespace().count() != values.split_whitespace().count() {
        return None;
    }
    let i = names.split_whitespace().position(|n| n == column)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// Receive packets of `net/dev` summed over every interface but `lo`: two header lines (the
/// second names the receive columns before the first `|` after `face`), then `name: counters`.
fn rx_packets(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    let header = lines.nth(1)?;
    let mut sections = header.split('|').skip(1).map(|s| s.split_whitespace().collect::<Vec<_>>());
    let receive = sections.next()?;
    let width = receive.len() + sections.next()?.len();
    let column = receive.iter().position(|c| *c == "packets")?;
    lines.filter(|l| !l.trim().is_empty()).try_fold(0u64, |sum, line| {
        let (name, counters) = line.split_once(':')?;
        let counters: Vec<_> = counters.split_whitespace().collect();
        let packets: u64 = counters.get(column).filter(|_| counters.len() == width)?.parse().ok()?;
        Some(if name.trim() == "lo" { sum } else { sum.saturating_add(packets) })
    })
}

/// The host's CPU times from the `cpu ` line of `stat`. Of its fields (user nice system idle
/// iowait irq softirq steal guest guest_nice) the total is the first eight: guest time is already
/// counted in user and nice. Kernels before 2.6 have only the first four to seven.
fn cpu_times(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find_map(|l| l.strip_prefix("cpu "))?;
    let fields: Vec<u64> = line.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let fields = fields.get(..fields.len().min(8)).filter(|f| f.len() >= 4)?;
    let sum = |xs: &[u64]| xs.iter().try_fold(0u64, |a, &x| a.checked_add(x));
    let total = sum(fields)?;
    let idle = sum(fields.get(3..fields.len().min(5))?)?;
    Some(CpuTimes { busy: total - idle, total })
}

/// A `meminfo` entry (`Key:   value kB`) in bytes.
fn meminfo_bytes(text: &str, key: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.split_once(':').filter(|(k, _)| *k == key).map(|(_, v)| v))?;
    let mut words = rest.split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match (words.next(), words.next()) {
        (Some("kB"), None) => value.checked_mul(1024),
        (None, None) => Some(value),
        _ => None,
    }
}

/// The first field of `loadavg`.
fn load1(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok().filter(|l: &f64| l.is_finite() && *l >= 0.0)
}

/// `avg10` of the `some` line of a PSI file (`some avg10=1.23 avg60=… avg300=… total=…`).
fn psi_some_avg10(text: &str) -> Option<f64> {
    let line = text.lines().find_map(|l| l.strip_prefix("some "))?;
    let avg10: f64 = line.split_whitespace().find_map(|f| f.strip_prefix("avg10="))?.parse().ok()?;
    (0.0..=100.0).contains(&avg10).then_some(avg10)
}

#[cfg(test)]
mod tests;
