//! The messages exchanged between a host manager and the controller.
//!
//! These are the only types meant to cross nodes: plain structs and enums that serde and bincode
//! encode without `flatten`, tagging or `serde_json::Value`. The bandwidth counters measure their
//! bincode size ([`wire_size`]).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::analysis::series::SeriesRecord;
use crate::analysis::signals::HostSignals;
use crate::antagonist::plan::{AntagonistConfig, ConfigPatch};
use crate::antagonist::truth::AttackRecord;
use crate::model::{ContainerRecord, ContainerState, Threshold};

pub mod endpoints;
pub mod wire;

pub use endpoints::{
    CONTROLLER_GROUP, HOST_GROUP_PREFIX, ToController, ToHost, find_controller, find_host, host_group,
};

/// A host's link is up: the controller looks its link up and pulls everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Register {
    pub host: String,
    /// Retries of the controller's lookup of the host's link (0 when sent by the host).
    pub attempt: u8,
}

/// "Something changed on this host": the controller will pull.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateNotice {
    pub host: String,
    pub version: u64,
}

/// Sent by every manager once per heartbeat period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub host: String,
    /// The manager's current content version, so a lost notice is noticed.
    pub version: u64,
    /// The host's CPU, memory and load.
    pub signals: HostSignals,
}

/// A pull request: everything (`since` = None) or what changed after a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub since: Option<u64>,
}

/// A host's answer to a pull.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub host: String,
    pub version: u64,
    /// The host-wide packet-loss threshold.
    pub threshold: u8,
    /// True when `containers` is the whole set (replace), false for a delta (merge).
    pub full: bool,
    pub containers: Vec<ContainerRecord>,
    /// Field-level changes of containers the puller already holds (deltas only): what changes
    /// when a container is restarted is a few bytes, its record two hundred.
    pub patches: Vec<ContainerPatch>,
    /// Full ids of containers gone since the requested version (deltas only).
    pub removed: Vec<String>,
}

/// The fields of one record that changed, keyed by the record's short id. Only the fields a
/// container's life changes are here; a change of any other field sends the whole record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerPatch {
    pub id: String,
    pub state: Option<ContainerState>,
    pub packet_loss: Option<Option<f64>>,
    pub threshold: Option<u8>,
    pub restarts: Option<u64>,
    pub last_restart: Option<Option<Stamp>>,
    /// Four or sixteen bytes, where the record's text takes up to forty.
    pub ip: Option<Option<std::net::IpAddr>>,
    pub probe: Option<Option<String>>,
    pub response_ms: Option<Option<f64>>,
    pub workload: Option<Option<f64>>,
    pub cpu_percent: Option<Option<f64>>,
    pub memory_bytes: Option<Option<u64>>,
    pub anomaly: Option<Option<crate::analysis::Level>>,
}

/// An RFC 3339 instant in ten bytes, where its text takes thirty: whole seconds since the epoch
/// and nanoseconds. Only a text that [`Stamp::parse`] turns back into the same text travels as
/// one; any other sends its whole record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Stamp {
    /// The stamp of an RFC 3339 text, if formatting it again gives that text back.
    pub fn parse(text: &str) -> Option<Self> {
        let t = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
        let stamp = Self { secs: t.unix_timestamp(), nanos: t.nanosecond() };
        (stamp.text().as_deref() == Some(text)).then_some(stamp)
    }

    /// The stamp as RFC 3339 (UTC).
    pub fn text(self) -> Option<String> {
        let t = OffsetDateTime::from_unix_timestamp(self.secs).ok()?.replace_nanosecond(self.nanos).ok()?;
        Some(crate::model::rfc3339(t))
    }
}

impl ContainerPatch {
    /// The patch turning `old` into `new`, or `None` when a field outside the patch changed.
    pub fn diff(old: &ContainerRecord, new: &ContainerRecord) -> Option<Self> {
        let fixed =
            |r: &ContainerRecord| (r.id.clone(), r.name.clone(), r.image.clone(), r.host.clone(), r.full_id.clone());
        if fixed(old) != fixed(new) {
            return None;
        }
        fn changed<T: PartialEq + Clone>(old: &T, new: &T) -> Option<T> {
            (old != new).then(|| new.clone())
        }
        fn changed_f64(old: Option<f64>, new: Option<f64>) -> Option<Option<f64>> {
            (old.map(f64::to_bits) != new.map(f64::to_bits)).then_some(new)
        }
        // The compact encodings must give the record's text back exactly, else the whole record.
        let last_restart = match &new.last_restart {
            Some(text) => Some(Stamp::parse(text)?),
            None => None,
        };
        let ip = match &new.ip {
            Some(text) => Some(text.parse::<std::net::IpAddr>().ok().filter(|ip| ip.to_string() == *text)?),
            None => None,
        };
        Some(Self {
            id: new.id.clone(),
            state: changed(&old.state, &new.state),
            // Compare bit patterns: NaN never appears, but the diff must not depend on it.
            packet_loss: (old.packet_loss.map(f64::to_bits) != new.packet_loss.map(f64::to_bits))
                .then_some(new.packet_loss),
            threshold: changed(&old.threshold, &new.threshold),
            restarts: changed(&old.restarts, &new.restarts),
            last_restart: (old.last_restart != new.last_restart).then_some(last_restart),
            ip: (old.ip != new.ip).then_some(ip),
            probe: changed(&old.probe, &new.probe),
            response_ms: changed_f64(old.response_ms, new.response_ms),
            workload: changed_f64(old.workload, new.workload),
            cpu_percent: changed_f64(old.cpu_percent, new.cpu_percent),
            memory_bytes: changed(&old.memory_bytes, &new.memory_bytes),
            anomaly: changed(&old.anomaly, &new.anomaly),
        })
    }

    /// True when no field changed.
    pub fn is_empty(&self) -> bool {
        let Self {
            id: _,
            state,
            packet_loss,
            threshold,
            restarts,
            last_restart,
            ip,
            probe,
            response_ms,
            workload,
            cpu_percent,
            memory_bytes,
            anomaly,
        } = self;
        state.is_none()
            && packet_loss.is_none()
            && threshold.is_none()
            && restarts.is_none()
            && last_restart.is_none()
            && ip.is_none()
            && probe.is_none()
            && response_ms.is_none()
            && workload.is_none()
            && cpu_percent.is_none()
            && memory_bytes.is_none()
            && anomaly.is_none()
    }

    pub fn apply(&self, rec: &mut ContainerRecord) {
        if let Some(v) = self.state {
            rec.state = v;
        }
        if let Some(v) = self.packet_loss {
            rec.packet_loss = v;
        }
        if let Some(v) = self.threshold {
            rec.threshold = v;
        }
        if let Some(v) = self.restarts {
            rec.restarts = v;
        }
        if let Some(v) = self.last_restart {
            // a stamp outside time's range cannot come from `diff`: it shows as no restart time
            rec.last_restart = v.and_then(Stamp::text);
        }
        if let Some(v) = self.ip {
            rec.ip = v.map(|ip| ip.to_string());
        }
        if let Some(v) = &self.probe {
            rec.probe.clone_from(v);
        }
        if let Some(v) = self.response_ms {
            rec.response_ms = v;
        }
        if let Some(v) = self.workload {
            rec.workload = v;
        }
        if let Some(v) = self.cpu_percent {
            rec.cpu_percent = v;
        }
        if let Some(v) = self.memory_bytes {
            rec.memory_bytes = v;
        }
        if let Some(v) = self.anomaly {
            rec.anomaly = v;
        }
    }
}

/// A command routed from the controller to one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Set the host-wide packet-loss threshold (0–100).
    SetThreshold(Threshold),
    /// Put a container (id, prefix or name) on the ignore list.
    Ignore(String),
    /// Take a container off the ignore list (and out of quarantine).
    Monitor(String),
    /// The antagonist's status.
    AntagonistStatus,
    /// Start the antagonist, with a configuration patch applied first.
    AntagonistStart(Option<ConfigPatch>),
    /// Change the antagonist's configuration (unspecified fields kept); a running one goes on
    /// with the new configuration.
    AntagonistConfigure(ConfigPatch),
    /// Stop the antagonist, undoing every attack in progress.
    AntagonistStop,
    /// The ground truth: attacks that started at or after an RFC 3339 time (all when `None`).
    Attacks { since: Option<String> },
    /// Set a container's response-time probe.
    SetProbe { container: String, probe: ProbeSetting },
    /// A container's kept series: points at or after `since` (RFC 3339), at most the `last` ones.
    Series { container: String, since: Option<String>, last: Option<u32> },
    /// The host's anomalies detected at or after `since` (RFC 3339), only the open ones with
    /// `open`.
    Anomalies { since: Option<String>, open: bool },
    /// Run detection and identification with these fleet-wide settings.
    SetAnalysis(crate::analysis::detect::AnalysisConfig),
}

/// A container's response-time probe as a user sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeSetting {
    /// `http://:PORT/PATH` or `tcp://:PORT` (validated by the host).
    Probe(String),
    /// No response-time probe, whatever the label says.
    Off,
    /// Back to the container's `hms.probe` label.
    Label,
}

impl Command {
    /// Whether it may change the host's published records (so the controller pulls after it).
    pub fn changes_records(&self) -> bool {
        !self.is_antagonist() && !matches!(self, Self::Series { .. } | Self::Anomalies { .. })
    }

    /// Whether the host's antagonist answers it (rather than its manager).
    pub fn is_antagonist(&self) -> bool {
        matches!(
            self,
            Self::AntagonistStatus
                | Self::AntagonistStart(_)
                | Self::AntagonistConfigure(_)
                | Self::AntagonistStop
                | Self::Attacks { .. }
        )
    }
}

/// Attacks carried out in the current (or last) run, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackCounts {
    pub shutdown: u64,
    pub loss: u64,
    /// Attacks of the analysis kinds (every kind but `shutdown` and `loss`).
    pub faults: u64,
    /// Attacks the engine or the injector refused.
    pub failed: u64,
    /// Attacks cut short by a stop, a reconfiguration, or the target leaving the scope.
    pub interrupted: u64,
}

/// One host's antagonist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AntagonistStatus {
    pub host: String,
    pub running: bool,
    pub config: AntagonistConfig,
    /// Eligible containers (in scope, not ignored).
    pub targets: u32,
    /// Attacks in progress.
    pub active: u32,
    pub attacks: AttackCounts,
    /// RFC 3339 start of the current (or last) run.
    pub started_at: Option<String>,
    /// How loss is injected here: `nftables` or `netem`.
    pub method: String,
}

/// A command's successful outcome: the affected container, the antagonist's status or the
/// attacks asked for, when the command has one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandOk {
    pub container: Option<ContainerRecord>,
    pub antagonist: Option<AntagonistStatus>,
    pub attacks: Option<Vec<AttackRecord>>,
    pub series: Option<SeriesRecord>,
    pub anomalies: Option<Vec<crate::analysis::anomaly::AnomalyRecord>>,
}

/// Why a host refused a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    #[error("no container matches {0:?}")]
    NotFound(String),
    #[error("{query:?} is ambiguous: it matches {candidates:?}")]
    Ambiguous { query: String, candidates: Vec<String> },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("host failed to persist the change: {0}")]
    Storage(String),
}

pub type CommandReply = Result<CommandOk, CommandError>;

/// The encoded size of a message, as it would cross the wire.
pub fn wire_size<T: Serialize>(msg: &T) -> usize {
    bincode::serde::encode_to_vec(msg, bincode::config::standard()).map_or(0, |v| v.len())
}

#[cfg(test)]
mod tests;
