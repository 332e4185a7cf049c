//! `GET /metrics`: the fleet view, the controller's counters and probe windows in Prometheus
//! (OpenMetrics) text format, encoded with prometheus-client.
//!
//! Gauges and counters are rebuilt from the snapshot on each scrape (they are views of state the
//! controller already keeps); the recovery histogram lives here, fed by the controller's events:
//! the time from a container seen down (stopped, restarting, quarantined, unknown) to seen running
//! again, as the controller sees it (so it includes the aggregation delay).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::actors::controller::{FleetEvent, Stats};
use crate::fleet::FleetSnapshot;
use crate::model::{ContainerState, HostStatus};
use crate::probe::counting::ProbeCounters;

/// The content type of a scrape: prometheus-client's text encoder writes OpenMetrics 1.0 (with
/// `# EOF` and `_total` counters), which Prometheus negotiates.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const STATES: [(ContainerState, &str); 6] = [
    (ContainerState::Running, "running"),
    (ContainerState::Restarting, "restarting"),
    (ContainerState::Stopped, "stopped"),
    (ContainerState::Ignored, "ignored"),
    (ContainerState::Quarantined, "quarantined"),
    (ContainerState::Unknown, "unknown"),
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    host: String,
    container: String,
    id: String,
}

/// A container's workload, with what it counts (`requests` or `packets`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabels {
    host: String,
    container: String,
    id: String,
    unit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    host: String,
    container: String,
    id: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabels {
    level: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    host: String,
}

/// Metrics kept between scrapes.
#[derive(Debug)]
pub struct Metrics {
    recovery: Histogram,
    down_since: Mutex<HashMap<String, Instant>>,
    probes: OnceLock<Arc<ProbeCounters>>,
    scrapes: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let buckets = [0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0];
        Self {
            recovery: Histogram::new(buckets),
            down_since: Mutex::default(),
            probes: OnceLock::new(),
            scrapes: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts the probe windows of this process (standalone: the local manager's probes).
    pub fn set_probe_counters(&self, counters: Arc<ProbeCounters>) {
        let _ = self.probes.set(counters);
    }

    /// Feeds the recovery histogram from the controller's events until `closing`.
    pub fn follow(self: &Arc<Self>, mut rx: broadcast::Receiver<FleetEvent>, mut closing: watch::Receiver<bool>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = closing.wait_for(|c| *c) => return,
                    e = rx.recv() => e,
                };
                match event {
                    Ok(FleetEvent::Containers { containers, .. }) => {
                        let states = containers.iter().map(|c| (c.full_id.as_str(), c.state));
                        me.observe(states, Instant::now());
                    }
                    Ok(FleetEvent::Host { .. } | FleetEvent::Anomaly { .. })
                    | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Records containers going down and observes the ones that came back.
    pub fn observe<'a>(&self, states: impl Iterator<Item = (&'a str, ContainerState)>, now: Instant) {
        let Ok(mut down) = self.down_since.lock() else { return };
        for (id, state) in states {
            match state {
                ContainerState::Running => {
                    if let Some(since) = down.remove(id) {
                        self.recovery.observe(now.duration_since(since).as_secs_f64());
                    }
                }
                ContainerState::Ignored => {
                    down.remove(id);
                }
                _ => {
                    down.entry(id.to_owned()).or_insert(now);
                }
            }
        }
    }

    /// The text exposition of one scrape.
    pub fn render(&self, fleet: &FleetSnapshot, stats: Option<&Stats>) -> String {
        let mut reg = Registry::default();
        self.containers(&mut reg, fleet);
        Self::hosts(&mut reg, fleet);
        if let Some(s) = stats {
            Self::controller(&mut reg, s);
        }
        reg.register(
            "hms_container_recovery_seconds",
            "time from a container seen down to seen running again, in the controller's view",
            self.recovery.clone(),
        );
        if let Some(p) = self.probes.get() {
            let windows = ConstCounter::new(p.windows.load(Ordering::Relaxed));
            reg.register("hms_probe_windows", "probe windows run by this process", windows);
            let failures = ConstCounter::new(p.failures.load(Ordering::Relaxed));
            reg.register("hms_probe_window_failures", "probe windows that failed (socket errors)", failures);
        }
        let scrapes = self.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
        reg.register("hms_metrics_scrapes", "scrapes of /metrics", ConstCounter::new(scrapes));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
            tracing::warn!("cannot encode metrics");
        }
        out
    }

    fn containers(&self, reg: &mut Registry, fleet: &FleetSnapshot) {
        let loss = Family::<ContainerLabels, Gauge<f64, AtomicU64>>::default();
        let threshold = Family::<ContainerLabels, Gauge>::default();
        let restarts = Family::<ContainerLabels, prometheus_client::metrics::counter::Counter>::default();
        let state = Family::<StateLabels, Gauge>::default();
        let signals: [Family<ContainerLabels, Gauge<f64, AtomicU64>>; 3] = Default::default();
        let workload = Family::<WorkloadLabels, Gauge<f64, AtomicU64>>::default();
        let anomalies = Family::<LevelLabels, Gauge>::default();
        for level in crate::analysis::Level::ALL {
            anomalies.get_or_create(&LevelLabels { level: level.name() }).set(0);
        }
        for c in fleet.containers() {
            if let Some(level) = c.anomaly {
                anomalies.get_or_create(&LevelLabels { level: level.name() }).inc();
            }
            let l = ContainerLabels { host: c.host.clone(), container: c.name.clone(), id: c.id.clone() };
            if let Some(p) = c.packet_loss {
                loss.get_or_create(&l).set(p);
            }
            let values =
                [c.response_ms.map(|v| v / 1000.0), c.cpu_percent.map(|v| v / 100.0), c.memory_bytes.map(|v| v as f64)];
            for (family, v) in signals.iter().zip(values) {
                if let Some(v) = v {
                    family.get_or_create(&l).set(v);
                }
            }
            if let Some(w) = c.workload {
                let unit = if c.probe.is_some() { "requests" } else { "packets" };
                let wl =
                    WorkloadLabels { host: l.host.clone(), container: l.container.clone(), id: l.id.clone(), unit };
                workload.get_or_create(&wl).set(w);
            }
            threshold.get_or_create(&l).set(i64::from(c.threshold));
            restarts.get_or_create(&l).inc_by(c.restarts);
            for (s, name) in STATES {
                let sl =
                    StateLabels { host: l.host.clone(), container: l.container.clone(), id: l.id.clone(), state: name };
                state.get_or_create(&sl).set(i64::from(c.state == s));
            }
        }
        reg.register("hms_container_packet_loss_percent", "packet loss as published: the last window's when it moved 10 points, crossed the threshold or came back to 0", loss);
        reg.register("hms_container_threshold_percent", "packet-loss threshold of the container", threshold);
        reg.register("hms_container_restarts", "restarts ordered by hms", restarts);
        reg.register("hms_container_state", "1 for the container's current state", state);
        let [response, cpu, memory] = signals;
        reg.register(
            "hms_container_response_seconds",
            "median response time of a recent probe period (moves by 10 %)",
            response,
        );
        reg.register("hms_container_cpu_usage_ratio", "CPU used, in cores (1 = one core busy)", cpu);
        reg.register("hms_container_memory_bytes", "memory in use", memory);
        reg.register("hms_anomalies_open", "containers with an open anomaly, by its level", anomalies);
        reg.register("hms_container_workload_per_second", "requests (containers with a response-time probe) or packets reaching the container per second, hms's own excluded", workload);
    }

    fn hosts(reg: &mut Registry, fleet: &FleetSnapshot) {
        let online = Family::<HostLabels, Gauge>::default();
        let age = Family::<HostLabels, Gauge<f64, AtomicU64>>::default();
        let containers = Family::<HostLabels, Gauge>::default();
        let signals: [Family<HostLabels, Gauge<f64, AtomicU64>>; 6] = Default::default();
        let now = OffsetDateTime::now_utc();
        for h in fleet.host_records() {
            let l = HostLabels { host: h.name.clone() };
            let values = [
                h.cpu_busy_percent.map(|v| v / 100.0),
                h.memory_available_bytes.map(|v| v as f64),
                h.memory_total_bytes.map(|v| v as f64),
                h.load1,
                h.cpu_pressure.map(|v| v / 100.0),
                h.memory_pressure.map(|v| v / 100.0),
            ];
            for (family, v) in signals.iter().zip(values) {
                if let Some(v) = v {
                    family.get_or_create(&l).set(v);
                }
            }
            online.get_or_create(&l).set(i64::from(h.status == HostStatus::Online));
            containers.get_or_create(&l).set(i64::try_from(h.containers).unwrap_or(i64::MAX));
            let last = h
                .last_heartbeat
                .as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
            if let Some(t) = last {
                age.get_or_create(&l).set((now - t).as_seconds_f64().max(0.0));
            }
        }
        reg.register("hms_host_online", "1 when the host is online", online);
        reg.register("hms_host_heartbeat_age_seconds", "seconds since the host's last heartbeat", age);
        reg.register("hms_host_containers", "containers the host reports", containers);
        let [busy, available, total, load1, cpu_pressure, memory_pressure] = signals;
        reg.register(
            "hms_host_cpu_busy_ratio",
            "share of all the host's CPUs busy between its last two heartbeats",
            busy,
        );
        reg.register("hms_host_memory_available_bytes", "memory available on the host", available);
        reg.register("hms_host_memory_total_bytes", "memory of the host", total);
        reg.register("hms_host_load1", "one-minute load average of the host", load1);
        reg.register(
            "hms_host_cpu_pressure_ratio",
            "PSI: share of the last 10 s some task waited for CPU",
            cpu_pressure,
        );
        reg.register(
            "hms_host_memory_pressure_ratio",
            "PSI: share of the last 10 s some task waited for memory",
            memory_pressure,
        );
    }

    fn controller(reg: &mut Registry, s: &Stats) {
        let counters = [
            ("hms_controller_aggregation_windows", "aggregation windows opened", s.windows),
            ("hms_controller_pulls", "pulls of host content", s.pulls),
            ("hms_controller_pull_failures", "pulls that failed or timed out", s.pull_failures),
            ("hms_controller_notices", "update notices received", s.notices),
            ("hms_controller_heartbeats", "heartbeats received", s.heartbeats),
            ("hms_controller_messages", "messages exchanged with hosts", s.messages),
            ("hms_controller_bytes", "bytes exchanged with hosts (bincode size)", s.bytes),
        ];
        for (name, help, v) in counters {
            reg.register(name, help, ConstCounter::new(v));
        }
        let stale = ConstCounter::new(s.stale_seconds);
        reg.register("hms_controller_view_stale_seconds", "seconds the view had unpulled updates", stale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_observed_from_down_to_running() {
        let m = Metrics::default();
        let t0 = Instant::now();
        m.observe([("a", ContainerState::Stopped)].into_iter(), t0);
        m.observe([("a", ContainerState::Restarting)].into_iter(), t0 + std::time::Duration::from_millis(100));
        m.observe([("a", ContainerState::Running)].into_iter(), t0 + std::time::Duration::from_millis(400));
        let text = m.render(&FleetSnapshot::default(), None);
        assert!(text.contains("hms_container_recovery_seconds_count 1"), "{text}");
        assert!(text.contains("hms_container_recovery_seconds_sum 0.4"), "{text}");
    }

    #[test]
    fn signals_are_exported_in_base_units() {
        let edit = |c: &mut crate::model::ContainerRecord| {
            c.response_ms = Some(250.0);
            c.cpu_percent = Some(50.0);
            c.workload = Some(12.5);
            c.probe = Some("http://:80/".into());
            c.memory_bytes = Some(1024);
        };
        let fleet = crate::fleet::tests::snapshot_with(edit, |h| h.load1 = Some(0.5));
        let text = Metrics::default().render(&fleet, None);
        assert!(
            text.contains(r#"hms_container_response_seconds{host="h",container="web",id="aaa111"} 0.25"#),
            "{text}"
        );
        assert!(text.contains(r#"hms_container_cpu_usage_ratio{host="h",container="web",id="aaa111"} 0.5"#), "{text}");
        assert!(
            text.contains(
                r#"hms_container_workload_per_second{host="h",container="web",id="aaa111",unit="requests"} 12.5"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"hms_container_memory_bytes{host="h",container="web",id="aaa111"} 1024"#), "{text}");
        assert!(text.contains(r#"hms_host_load1{host="h"} 0.5"#), "{text}");
        assert!(!text.contains("hms_host_cpu_busy_ratio{"), "unknown values are left out: {text}");
    }

    #[test]
    fn controller_counters_end_in_total() {
        let stats = Stats { windows: 3, bytes: 1200, ..Stats::default() };
        let text = Metrics::default().render(&FleetSnapshot::default(), Some(&stats));
        assert!(text.contains("hms_controller_aggregation_windows_total 3"), "{text}");
        assert!(text.contains("hms_controller_bytes_total 1200"), "{text}");
        assert!(text.contains("hms_controller_view_stale_seconds_total"), "{text}");
    }
}
