//! Domain types shared by the actors, the HTTP layer and the store.
//!
//! `Observed*` types are what the edges (Docker, ICMP) report; `*Record` types are what HMS publishes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The Docker-level state of a container, reduced to what healing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DockerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Unknown,
}

impl DockerState {
    /// Whether the container is down and should be started again.
    pub fn is_down(self) -> bool {
        matches!(self, Self::Exited | Self::Dead | Self::Created)
    }
}

/// Docker's health-check verdict, when the image defines one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    None,
    Starting,
    Healthy,
    Unhealthy,
}

/// One container as the runtime sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedContainer {
    /// Full 64-hex id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    pub image: String,
    pub ip: Option<IpAddr>,
    pub labels: BTreeMap<String, String>,
    pub state: DockerState,
    pub health: Health,
}

impl ObservedContainer {
    /// The 12-character short id used in every published record.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }
}

/// The 12-character prefix of a container id.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The state HMS publishes for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Running,
    Restarting,
    Stopped,
    Ignored,
    Quarantined,
    Unknown,
}

/// A published container record (the REST contract's field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContainerRecord {
    /// 12-character short id.
    pub id: String,
    pub name: String,
    pub image: String,
    pub host: String,
    pub ip: Option<String>,
    pub state: ContainerState,
    /// Loss of the probe windows, 0–100, or null before the first window: the last window's
    /// when it moved at least 10 points from the value shown, crossed the threshold or came back
    /// to 0 (`health::published_loss`), so loss jitter does not flood the fleet view.
    pub packet_loss: Option<f64>,
    pub threshold: u8,
    pub restarts: u64,
    /// RFC 3339.
    pub last_restart: Option<String>,
    /// Full id, so lookups by any prefix work.
    pub full_id: String,
}

/// Whether a host is reachable from the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    Online,
    Offline,
}

/// A published host record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostRecord {
    pub name: String,
    pub status: HostStatus,
    /// RFC 3339, or null before the first heartbeat.
    pub last_heartbeat: Option<String>,
    pub threshold: u8,
    pub endpoint: Option<String>,
    pub containers: usize,
}

/// Formats a timestamp as RFC 3339 (UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Why a container lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    NotFound,
    /// The query is a prefix of several ids; carries their short ids.
    Ambiguous(Vec<String>),
}

/// Finds the one container a query names: full id, short id, unique id prefix, or name.
/// `items` yields `(full_id, name)`; an exact name or full id wins over prefixes.
pub fn resolve<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>, query: &str) -> Result<&'a str, LookupError> {
    let query = query.trim_start_matches('/');
    if query.is_empty() {
        return Err(LookupError::NotFound);
    }
    let mut prefixed = Vec::new();
    for (id, name) in items {
        if id == query || name == query {
            return Ok(id);
        }
        if id.starts_with(query) {
            prefixed.push(id);
        }
    }
    match prefixed.as_slice() {
        [] => Err(LookupError::NotFound),
        [one] => Ok(one),
        many => Err(LookupError::Ambiguous(many.iter().map(|id| short_id(id).to_owned()).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEMS: [(&str, &str); 3] = [("abc111", "web"), ("abc222", "db"), ("def333", "abc")];

    #[test]
    fn resolves_by_name_full_id_and_unique_prefix() {
        assert_eq!(resolve(ITEMS, "web"), Ok("abc111"));
        assert_eq!(resolve(ITEMS, "abc222"), Ok("abc222"));
        assert_eq!(resolve(ITEMS, "def"), Ok("def333"));
        assert_eq!(resolve(ITEMS, "/db"), Ok("abc222"));
    }

    #[test]
    fn exact_name_beats_prefix_and_ambiguity_names_candidates() {
        assert_eq!(resolve(ITEMS, "abc"), Ok("def333"));
        assert_eq!(resolve(ITEMS, "ab"), Err(LookupError::Ambiguous(vec!["abc111".into(), "abc222".into()])));
        assert_eq!(resolve(ITEMS, "zz"), Err(LookupError::NotFound));
        assert_eq!(resolve(ITEMS, ""), Err(LookupError::NotFound));
    }
}
