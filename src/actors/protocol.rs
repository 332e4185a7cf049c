//! The messages exchanged between a host manager and the controller.
//!
//! These are the only types meant to cross nodes: plain structs and enums that serde and bincode
//! encode without `flatten`, tagging or `serde_json::Value`. The bandwidth counters measure their
//! bincode size ([`wire_size`]).

use serde::{Deserialize, Serialize};

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
}

/// A command's successful outcome: the affected container, when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandOk {
    pub container: Option<ContainerRecord>,
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
}
