//! One probe period's signals of a container, from two readings of its counters taken by its
//! probe actor at the starts of consecutive windows.
//!
//! Workload is measured outside the container, from its network namespace's own counters
//! (`/proc/PID/net/snmp`, `/proc/PID/net/dev`), and HMS's own probe traffic is taken out
//! exactly: between two readings the probe actor ran exactly one window, whose connections and
//! echo requests it counted itself.
//! - A container with a response-time probe (`hms.probe`) has a workload in **requests** per
//!   second: TCP connections it accepted (`PassiveOpens`), the probe's own removed. A client
//!   keeping connections alive is counted once per connection.
//! - Any other container (a black box) has a workload in **packets** per second received,
//!   the window's echo requests removed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::resources::cgroup;
use crate::resources::procfs::{self, NetCounter};
pub use crate::resources::sensors::Counters;

/// What a container's workload counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadUnit {
    /// Connections accepted per second (containers with a response-time probe).
    Requests,
    /// Packets received per second (black boxes).
    #[default]
    Packets,
}

impl WorkloadUnit {
    /// The counter that measures it.
    pub fn counter(self) -> NetCounter {
        match self {
            Self::Requests => NetCounter::PassiveOpens,
            Self::Packets => NetCounter::RxPackets,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Packets => "packets",
        }
    }
}

/// Traffic of HMS's own that reached the container during one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnTraffic {
    /// Response-time requests whose connection was accepted.
    pub connections: u16,
    /// ICMP echo requests sent.
    pub echoes: u16,
}

/// One period's signals of one container; `None` where nothing was measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Signals {
    /// Median response time of the period's requests (failures at the timeout).
    pub response_ms: Option<f64>,
    /// Share (0–1) of the period's requests that failed.
    pub response_failed: Option<f64>,
    /// Requests or packets per second reaching the container, HMS's own excluded.
    pub workload: Option<f64>,
    pub workload_unit: WorkloadUnit,
    /// CPU used, in percent of one core.
    pub cpu_percent: Option<f64>,
    /// Share (0–1) of the CFS periods in which the container was throttled.
    pub cpu_throttled: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    /// Times the memory usage hit the limit during the period.
    pub memory_failures: Option<u64>,
}

/// The rates between two readings `elapsed` apart, with `own` (the window run between them)
/// taken out of the workload. Counters that went back (a restart) give no rate.
pub fn rates(before: &Counters, after: &Counters, elapsed: Duration, own: OwnTraffic, unit: WorkloadUnit) -> Signals {
    // a counter that went back (a restart) gives no rate; ours never takes it below zero
    let ours = match unit {
        WorkloadUnit::Requests => own.connections,
        WorkloadUnit::Packets => own.echoes,
    };
    let theirs =
        before.net.zip(after.net).and_then(|(b, a)| a.checked_sub(b)).map(|d| d.saturating_sub(u64::from(ours)));
    let workload = theirs.and_then(|n| procfs::rate(0, n, elapsed));
    let cpu = before.cpu.zip(after.cpu);
    let memory_failures = before.memory.zip(after.memory).and_then(|(b, a)| a.failures.checked_sub(b.failures));
    Signals {
        workload,
        workload_unit: unit,
        cpu_percent: cpu.and_then(|(b, a)| cgroup::cpu_percent(b, a, elapsed)),
        cpu_throttled: cpu.and_then(|(b, a)| cgroup::throttled_share(b, a)),
        memory_bytes: after.memory.map(|m| m.usage_bytes),
        memory_limit_bytes: after.memory.and_then(|m| m.limit_bytes),
        memory_failures,
        ..Signals::default()
    }
}

/// A host's CPU, memory, load and pressure, as its heartbeat carries them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct HostSignals {
    /// Share of all CPUs busy since the previous heartbeat, in percent (0–100).
    pub cpu_busy_percent: Option<f64>,
    pub memory_available_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    /// One-minute load average.
    pub load1: Option<f64>,
    /// PSI `some avg10` of CPU and memory in percent, where the kernel has PSI.
    pub cpu_pressure: Option<f64>,
    pub memory_pressure: Option<f64>,
}

/// The host's signals from its sample now and the previous one (CPU busy needs two).
pub fn host_signals(before: Option<&procfs::HostSample>, after: Option<&procfs::HostSample>) -> HostSignals {
    let Some(a) = after else { return HostSignals::default() };
    HostSignals {
        cpu_busy_percent: before.and_then(|b| procfs::cpu_busy_percent(b.cpu, a.cpu)),
        memory_available_bytes: Some(a.memory_available_bytes),
        memory_total_bytes: Some(a.memory_total_bytes),
        load1: Some(a.load1),
        cpu_pressure: a.cpu_pressure,
        memory_pressure: a.memory_pressure,
    }
}

/// The latest signal values a published container record shows. A record changes (and the
/// controller pulls it) only when a value moved enough to matter, so a fleet of busy services
/// does not turn every probe period into a pull.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Shown {
    pub response_ms: Option<f64>,
    pub workload: Option<f64>,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
}

/// A shown value moves when the new one differs by at least this share of the old…
pub const SHOWN_RELATIVE: f64 = 0.1;

impl Shown {
    /// What the record shows after a period measured `s`.
    pub fn follow(self, s: &Signals) -> Self {
        Self {
            response_ms: shown(self.response_ms, s.response_ms.map(|v| round(v, 10.0)), 1.0),
            workload: shown(self.workload, s.workload.map(|v| round(v, 10.0)), 1.0),
            cpu_percent: shown(self.cpu_percent, s.cpu_percent.map(|v| round(v, 10.0)), 2.0),
            memory_bytes: shown(self.memory_bytes.map(|b| b as f64), s.memory_bytes.map(|b| b as f64), 1_048_576.0)
                .map(|b| b as u64),
        }
    }
}

/// …and by at least `floor` in absolute terms; appearing or disappearing always shows.
fn shown(old: Option<f64>, new: Option<f64>, floor: f64) -> Option<f64> {
    match (old, new) {
        (Some(o), Some(n)) if (n - o).abs() < floor.max(SHOWN_RELATIVE * o.abs()) => Some(o),
        _ => new,
    }
}

fn round(v: f64, per_unit: f64) -> f64 {
    (v * per_unit).round() / per_unit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::cgroup::{CpuSample, MemorySample};
    use proptest::prelude::*;

    /// The counters a probe reads: its inbound counter is `net`.
    fn counters(usage_ns: u64, net: u64) -> Counters {
        Counters {
            cpu: Some(CpuSample { usage_ns, periods: 10, throttled: 0 }),
            memory: Some(MemorySample { usage_bytes: 5 << 20, limit_bytes: Some(64 << 20), failures: 0 }),
            net: Some(net),
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn workload_leaves_out_the_probe_s_own_connections_and_echoes() {
        let own = OwnTraffic { connections: 3, echoes: 20 };
        let (before, after) = (counters(0, 100), counters(250_000_000, 113));
        let s = rates(&before, &after, SEC, own, WorkloadUnit::Requests);
        assert_eq!(s.workload, Some(10.0));
        assert_eq!(s.cpu_percent, Some(25.0));
        assert_eq!((s.memory_bytes, s.memory_limit_bytes), (Some(5 << 20), Some(64 << 20)));
        let (before, after) = (counters(0, 1000), counters(250_000_000, 1120));
        let s = rates(&before, &after, SEC * 2, own, WorkloadUnit::Packets);
        assert_eq!(s.workload, Some(50.0));
        assert_eq!(s.workload_unit, WorkloadUnit::Packets);
    }

    #[test]
    fn a_restart_or_a_missing_counter_gives_no_rate_and_nothing_goes_negative() {
        let own = OwnTraffic { connections: 3, echoes: 20 };
        let s = rates(&counters(900, 100), &counters(5, 2), SEC, own, WorkloadUnit::Requests);
        assert_eq!((s.workload, s.cpu_percent), (None, None));
        let s = rates(&counters(0, 100), &counters(0, 101), SEC, own, WorkloadUnit::Requests);
        assert_eq!(s.workload, Some(0.0), "fewer connections than the probe's own: none of anybody else's");
        let s = rates(&Counters::default(), &counters(0, 1), SEC, own, WorkloadUnit::Packets);
        assert_eq!((s.workload, s.cpu_percent, s.memory_bytes), (None, None, Some(5 << 20)));
    }

    #[test]
    fn a_shown_value_moves_only_by_a_tenth_and_a_floor() {
        let mut shown = Shown::default();
        let at = |ms: f64| Signals { response_ms: Some(ms), ..Signals::default() };
        shown = shown.follow(&at(20.04));
        assert_eq!(shown.response_ms, Some(20.0));
        shown = shown.follow(&at(21.5));
        assert_eq!(shown.response_ms, Some(20.0), "7 % is jitter");
        shown = shown.follow(&at(22.0));
        assert_eq!(shown.response_ms, Some(22.0));
        shown = shown.follow(&at(0.3));
        assert_eq!(shown.response_ms, Some(0.3));
        shown = shown.follow(&at(0.9));
        assert_eq!(shown.response_ms, Some(0.3), "under the 1 ms floor");
        shown = shown.follow(&Signals::default());
        assert_eq!(shown.response_ms, None, "no probe any more: shown at once");
    }

    proptest! {
        #[test]
        fn a_shown_value_is_never_further_than_its_band_from_the_last_measured(
            values in proptest::collection::vec(0.0f64..5000.0, 1..50),
        ) {
            let mut shown = Shown::default();
            for v in &values {
                shown = shown.follow(&Signals { workload: Some(*v), ..Signals::default() });
                let s = shown.workload.unwrap();
                prop_assert!((s - v).abs() <= 1.0f64.max(SHOWN_RELATIVE * s.abs()) + 0.05);
            }
        }
    }
}
