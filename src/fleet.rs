//! `FleetSnapshot`: an immutable copy of the controller's fleet view, published through a
//! `tokio::sync::watch` channel on every change, so that REST reads borrow it without asking the
//! controller actor (commands still go through the actor).
//!
//! **Invariant:** a snapshot is never mutated once published; the containers of a host are shared
//! (`Arc`) between successive snapshots until that host's content changes, so publishing after a
//! heartbeat costs one record copy per host, not one per container.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::model::{ContainerRecord, HostRecord, LookupError, resolve};

/// One host in a snapshot.
#[derive(Debug, Clone)]
pub struct HostSnapshot {
    pub record: HostRecord,
    pub containers: Arc<Vec<ContainerRecord>>,
}

/// The whole fleet view at one instant.
#[derive(Debug, Default)]
pub struct FleetSnapshot {
    /// Host name → host.
    pub hosts: BTreeMap<String, HostSnapshot>,
    /// Aggregation window, in seconds.
    pub aggregation: f64,
    /// The fleet-wide analysis settings (`GET /config`).
    pub analysis: crate::analysis::detect::AnalysisConfig,
    /// `GET /containers` of this snapshot, serialized on first use.
    all_json: OnceLock<Bytes>,
}

impl FleetSnapshot {
    pub fn new(hosts: BTreeMap<String, HostSnapshot>, aggregation: f64) -> Self {
        Self { hosts, aggregation, analysis: Default::default(), all_json: OnceLock::new() }
    }

    /// The snapshot with the fleet-wide analysis settings.
    pub fn with_analysis(mut self, analysis: crate::analysis::detect::AnalysisConfig) -> Self {
        self.analysis = analysis;
        self
    }

    /// Every container of every host, hosts in name order.
    pub fn containers(&self) -> impl Iterator<Item = &ContainerRecord> {
        self.hosts.values().flat_map(|h| h.containers.iter())
    }

    /// Every host record, in name order.
    pub fn host_records(&self) -> impl Iterator<Item = &HostRecord> {
        self.hosts.values().map(|h| &h.record)
    }

    /// The JSON array of every container, serialized once per snapshot.
    pub fn containers_json(&self) -> Bytes {
        self.all_json
            .get_or_init(|| {
                let all: Vec<&ContainerRecord> = self.containers().collect();
                Bytes::from(serde_json::to_vec(&all).unwrap_or_else(|_| b"[]".to_vec()))
            })
            .clone()
    }

    pub fn host(&self, name: &str) -> Option<&HostSnapshot> {
        self.hosts.get(name)
    }

    /// The one container of `host` that `query` names (full id, short id, unique prefix, name).
    pub fn find(&self, host: &HostSnapshot, query: &str) -> Result<usize, LookupError> {
        let items = host.containers.iter().map(|c| (c.full_id.as_str(), c.name.as_str()));
        let full = resolve(items, query)?;
        host.containers.iter().position(|c| c.full_id == full).ok_or(LookupError::NotFound)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{ContainerState, HostStatus};

    fn container(host: &str, id: &str, name: &str) -> ContainerRecord {
        ContainerRecord {
            id: id[..id.len().min(12)].to_owned(),
            name: name.to_owned(),
            image: "img".to_owned(),
            host: host.to_owned(),
            ip: None,
            state: ContainerState::Running,
            packet_loss: None,
            threshold: 30,
            restarts: 0,
            last_restart: None,
            probe: None,
            response_ms: None,
            workload: None,
            cpu_percent: None,
            memory_bytes: None,
            anomaly: None,
            full_id: id.to_owned(),
        }
    }

    fn snapshot() -> FleetSnapshot {
        snapshot_with(|_| {}, |_| {})
    }

    /// Host `h` with containers `web` (`aaa111`) and `db`, each record edited by `edit`, the
    /// host's by `edit_host`.
    pub(crate) fn snapshot_with(
        edit: impl Fn(&mut ContainerRecord),
        edit_host: impl Fn(&mut HostRecord),
    ) -> FleetSnapshot {
        let mut record = HostRecord {
            name: "h".into(),
            status: HostStatus::Online,
            last_heartbeat: None,
            threshold: 30,
            endpoint: None,
            containers: 2,
            cpu_busy_percent: None,
            memory_available_bytes: None,
            memory_total_bytes: None,
            load1: None,
            cpu_pressure: None,
            memory_pressure: None,
        };
        edit_host(&mut record);
        let mut containers = vec![container("h", "aaa111", "web"), container("h", "aaa222", "db")];
        containers.iter_mut().for_each(edit);
        let containers = Arc::new(containers);
        FleetSnapshot::new(BTreeMap::from([("h".to_owned(), HostSnapshot { record, containers })]), 0.5)
    }

    #[test]
    fn finds_containers_by_name_and_prefix_and_reports_ambiguity() {
        let s = snapshot();
        let h = s.host("h").unwrap();
        assert_eq!(s.find(h, "db"), Ok(1));
        assert_eq!(s.find(h, "aaa1"), Ok(0));
        assert_eq!(s.find(h, "aaa"), Err(LookupError::Ambiguous(vec!["aaa111".into(), "aaa222".into()])));
    }

    #[test]
    fn containers_json_is_the_array_of_every_record() {
        let v: serde_json::Value = serde_json::from_slice(&snapshot().containers_json()).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(2));
        assert_eq!(v[1]["name"], "db");
    }
}
