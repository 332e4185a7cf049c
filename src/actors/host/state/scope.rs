//! Scope: which containers a host watches (selector, ignore list, `hms.*` labels), their
//! thresholds, and the user commands that change it.

use std::net::IpAddr;

use tokio::time::Instant;

use super::HostState;
use crate::actors::protocol::CommandError;
use crate::model::{self, DockerState, LookupError, ObservedContainer};
use crate::probe::response::{PROBE_LABEL, ResponseTarget};

/// Label that excludes a container from monitoring.
pub const IGNORE_LABEL: &str = "hms.ignore";
/// Label overriding the threshold of one container.
pub const THRESHOLD_LABEL: &str = "hms.threshold";

impl HostState {
    pub(super) fn in_scope(&self, obs: &ObservedContainer) -> bool {
        self.select.as_ref().is_none_or(|s| s.matches(&obs.labels))
    }

    /// Whether the container is excluded from monitoring (ignore list, or label not overridden).
    pub fn is_ignored(&self, obs: &ObservedContainer) -> bool {
        let labelled = obs.labels.get(IGNORE_LABEL).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        self.ignored.contains(&obs.name) || (labelled && !self.monitored.contains(&obs.name))
    }

    /// The container's threshold: its `hms.threshold` label when valid, else the host's.
    pub fn threshold_of(&self, obs: &ObservedContainer) -> u8 {
        let label = obs.labels.get(THRESHOLD_LABEL).and_then(|v| crate::config::parse_threshold(v).ok());
        label.unwrap_or(self.threshold)
    }

    /// Finds a container by full id, short id, unique prefix or name.
    pub fn resolve(&self, query: &str) -> Result<String, CommandError> {
        let items = self.containers.values().map(|t| (t.obs.id.as_str(), t.obs.name.as_str()));
        model::resolve(items, query).map(str::to_owned).map_err(|e| match e {
            LookupError::NotFound => CommandError::NotFound(query.to_owned()),
            LookupError::Ambiguous(candidates) => CommandError::Ambiguous { query: query.to_owned(), candidates },
        })
    }

    /// Puts a container on the ignore list.
    pub fn ignore(&mut self, query: &str) -> Result<String, CommandError> {
        let id = self.resolve(query)?;
        let obs = &self.containers[&id].obs;
        if self.is_ignored(obs) {
            return Err(CommandError::Conflict(format!("container {} is already ignored", obs.name)));
        }
        let name = obs.name.clone();
        self.monitored.remove(&name);
        self.ignored.insert(name);
        Ok(id)
    }

    /// Takes a container off the ignore list, or out of quarantine.
    pub fn monitor(&mut self, query: &str, now: Instant) -> Result<String, CommandError> {
        let id = self.resolve(query)?;
        let t = &self.containers[&id];
        let (ignored, quarantined) = (self.is_ignored(&t.obs), t.tracker.is_quarantined(now));
        if !ignored && !quarantined {
            return Err(CommandError::Conflict(format!("container {} is already monitored", t.obs.name)));
        }
        let name = t.obs.name.clone();
        self.ignored.remove(&name);
        if self.is_ignored(&self.containers[&id].obs) {
            self.monitored.insert(name);
        }
        if let Some(t) = self.containers.get_mut(&id) {
            t.tracker.release();
            t.retry_at = None;
        }
        Ok(id)
    }

    /// Whether a container should have a probe (`None`: no), at which address (`None`: probe
    /// paused, the container has no address or is not running), and which response-time probe.
    pub fn probe_target(&self, id: &str) -> Option<(Option<IpAddr>, Option<ResponseTarget>)> {
        let t = self.containers.get(id).filter(|t| !self.is_ignored(&t.obs))?;
        Some((t.obs.ip.filter(|_| t.obs.state == DockerState::Running), self.response_probe(&t.obs)))
    }

    /// The container's response-time probe: what a user set through REST (which may be none),
    /// else its valid `hms.probe` label.
    pub fn response_probe(&self, obs: &ObservedContainer) -> Option<ResponseTarget> {
        match self.response_probes.get(&obs.name) {
            Some(set) => set.clone(),
            None => obs.labels.get(PROBE_LABEL).and_then(|v| v.parse().ok()),
        }
    }

    /// Sets a container's response-time probe (`Some(None)`: none), or (`None`) goes back to
    /// its label.
    pub fn set_response_probe(
        &mut self,
        query: &str,
        probe: Option<Option<ResponseTarget>>,
    ) -> Result<String, CommandError> {
        let id = self.resolve(query)?;
        let name = self.containers[&id].obs.name.clone();
        match probe {
            Some(p) => self.response_probes.insert(name, p),
            None => self.response_probes.remove(&name),
        };
        Ok(id)
    }
}
