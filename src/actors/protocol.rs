//! The messages exchanged between a host manager and the controller.
//!
//! These are the only types meant to cross nodes: plain structs and enums that serde and bincode
//! encode without `flatten`, tagging or `serde_json::Value`. The bandwidth counters measure their
//! bincode size ([`wire_size`]).

use serde::{Deserialize, Serialize};

use crate::antagonist::plan::{AntagonistConfig, ConfigPatch};
use crate::antagonist::truth::AttackRecord;
use crate::model::ContainerRecord;

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
    /// Full ids of containers gone since the requested version (deltas only).
    pub removed: Vec<String>,
}

/// A command routed from the controller to one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Set the host-wide packet-loss threshold (0–100).
    SetThreshold(u8),
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
}

impl Command {
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
mod tests {
    use super::*;

    #[test]
    fn content_round_trips_through_bincode() {
        let c = Content {
            host: "vm1".into(),
            version: 7,
            threshold: 30,
            full: true,
            containers: vec![],
            removed: vec!["a".into()],
        };
        let bytes = bincode::serde::encode_to_vec(&c, bincode::config::standard()).unwrap();
        let (back, _): (Content, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, c);
        assert_eq!(wire_size(&c), bytes.len());
    }

    fn round_trip<T: Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
        let bytes = bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap();
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap().0
    }

    #[test]
    fn antagonist_commands_and_answers_round_trip_through_bincode() {
        use crate::antagonist::plan::LossScope;
        let patch = ConfigPatch {
            scenario: Some("test_high_high".into()),
            heavy: Some(50.0),
            loss_scope: Some(LossScope::Container),
            run_time: Some(30.0),
            seed: Some(u64::MAX),
            ..ConfigPatch::default()
        };
        for cmd in [
            Command::AntagonistStart(Some(patch.clone())),
            Command::AntagonistStart(None),
            Command::AntagonistConfigure(patch),
            Command::AntagonistStop,
            Command::AntagonistStatus,
            Command::Attacks { since: Some("2026-01-01T00:00:00Z".into()) },
        ] {
            assert_eq!(round_trip(&cmd), cmd);
        }
        let status = AntagonistStatus {
            host: "vm1".into(),
            running: true,
            config: AntagonistConfig::default(),
            targets: 3,
            active: 1,
            attacks: AttackCounts { shutdown: 2, loss: 1, failed: 0, interrupted: 4 },
            started_at: Some("2026-01-01T00:00:00Z".into()),
            method: "nftables".into(),
        };
        let ok = CommandOk { container: None, antagonist: Some(status), attacks: Some(vec![]) };
        assert_eq!(round_trip(&ok), ok);
    }
}
