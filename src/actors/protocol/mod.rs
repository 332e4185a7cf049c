//! The messages exchanged between a host manager and the controller.
//!
//! These are the only types meant to cross nodes: plain structs and enums that serde and bincode
//! encode without `flatten`, tagging or `serde_json::Value`. The bandwidth counters measure their
//! bincode size ([`wire_size`]).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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
        })
    }

    /// True when no field changed.
    pub fn is_empty(&self) -> bool {
        let Self { id: _, state, packet_loss, threshold, restarts, last_restart, ip } = self;
        state.is_none()
            && packet_loss.is_none()
            && threshold.is_none()
            && restarts.is_none()
            && last_restart.is_none()
            && ip.is_none()
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
            patches: vec![ContainerPatch { id: "abc".into(), restarts: Some(3), ..ContainerPatch::default() }],
            removed: vec!["a".into()],
        };
        let bytes = bincode::serde::encode_to_vec(&c, bincode::config::standard()).unwrap();
        let (back, _): (Content, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, c);
        assert_eq!(wire_size(&c), bytes.len());
    }

    fn record(i: u8) -> ContainerRecord {
        ContainerRecord {
            id: format!("{i:012}"),
            name: format!("hms.exp-vm1-c{i}"),
            image: "hms-test:latest".into(),
            host: "vm1".into(),
            ip: Some(format!("172.17.0.{i}")),
            state: ContainerState::Running,
            packet_loss: Some(0.0),
            threshold: 30,
            restarts: 0,
            last_restart: None,
            full_id: format!("{i:064}"),
        }
    }

    fn state(i: u8) -> ContainerState {
        use ContainerState::*;
        [Running, Restarting, Stopped, Ignored, Quarantined, Unknown][usize::from(i % 6)]
    }

    proptest::proptest! {
        #[test]
        fn a_patch_turns_the_old_record_into_the_new(
            s in 0u8..6, loss in proptest::option::of(0.0f64..=100.0), th in 0u8..=100, restarts in 0u64..1000,
            last in proptest::option::of((0i64..4_000_000_000, 0u32..1_000_000_000)),
            ip in proptest::option::of(proptest::array::uniform4(0u8..=255)),
        ) {
            let old = record(1);
            let last = last.and_then(|(secs, nanos)| Stamp { secs, nanos }.text());
            let ip = ip.map(|o| std::net::Ipv4Addr::from(o).to_string());
            let new = ContainerRecord {
                state: state(s), packet_loss: loss, threshold: th, restarts, last_restart: last, ip, ..old.clone()
            };
            let patch = ContainerPatch::diff(&old, &new).unwrap();
            let mut patched = old.clone();
            patch.apply(&mut patched);
            proptest::prop_assert_eq!(&patched, &new);
            proptest::prop_assert_eq!(round_trip(&patch), patch.clone());
            proptest::prop_assert!(wire_size(&patch) <= wire_size(&new));
        }
    }

    #[test]
    fn a_change_outside_the_patch_needs_the_whole_record() {
        let old = record(1);
        let renamed = ContainerRecord { name: "other".into(), ..old.clone() };
        assert_eq!(ContainerPatch::diff(&old, &renamed), None);
        let restarted = ContainerRecord { restarts: 1, state: ContainerState::Restarting, ..old.clone() };
        let patch = ContainerPatch::diff(&old, &restarted).unwrap();
        assert!(wire_size(&patch) * 5 < wire_size(&restarted), "{} vs {}", wire_size(&patch), wire_size(&restarted));
        // texts the compact encodings cannot give back exactly
        for odd in [
            ContainerRecord { last_restart: Some("yesterday".into()), ..old.clone() },
            ContainerRecord { last_restart: Some("2026-01-01T00:00:00+01:00".into()), ..old.clone() },
            ContainerRecord { ip: Some("172.017.0.1".into()), ..old.clone() },
        ] {
            assert_eq!(ContainerPatch::diff(&old, &odd), None, "{odd:?}");
        }
    }

    #[test]
    fn a_restart_patch_carries_its_time_and_address_compactly() {
        let old = record(1);
        let restarted = ContainerRecord {
            restarts: 1,
            last_restart: Some("2026-11-23T17:51:01.603839123Z".into()),
            ip: Some("172.17.0.23".into()),
            ..old.clone()
        };
        let patch = ContainerPatch::diff(&old, &restarted).unwrap();
        let mut patched = old.clone();
        patch.apply(&mut patched);
        assert_eq!(patched, restarted);
        // id 13, restarts 2, time 12, address 7, empty fields 3
        assert!(wire_size(&patch) <= 38, "{} bytes", wire_size(&patch));
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
