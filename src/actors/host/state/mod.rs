//! The host manager's state and every decision it makes, as plain sync methods (no I/O, no clock).
//!
//! The actor in [`super::manager`] feeds it observations (listings, events, probe windows,
//! restart outcomes) with the current time, and carries out the [`Plan`]s it returns. One
//! [`HostState`], its methods split by responsibility:
//! - [`scope`]: which containers are watched (selector, ignore list, labels) and user commands on it;
//! - [`events`]: folding listings, inspections, engine events and probe windows in;
//! - [`plan`]: what a container needs now (the healing plan) and what its record shows;
//! - [`replication`]: the versioned records the controller pulls (snapshots, deltas, tombstones).

mod events;
mod plan;
mod replication;
mod scope;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use crate::analysis::signals::{Shown, Signals};
use crate::model::{ContainerRecord, ObservedContainer};
use crate::policy::RestartTracker;
use crate::probe::response::ResponseTarget;
use crate::runtime::Selector;

pub use events::EventEffect;
pub use plan::{Plan, RestartOp};
pub use scope::{IGNORE_LABEL, THRESHOLD_LABEL};

/// One watched container.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub obs: ObservedContainer,
    pub streak: u32,
    pub loss: Option<f64>,
    /// The loss the published record shows ([`health::published_loss`]).
    pub shown_loss: Option<f64>,
    pub restarts: u64,
    pub last_restart: Option<OffsetDateTime>,
    pub tracker: RestartTracker,
    /// Windows that started before this instant describe an earlier life of the container.
    pub running_since: Instant,
    /// A reconcile is scheduled for this instant.
    pub retry_at: Option<Instant>,
    /// Start of the first window of the current run of windows over the threshold.
    pub lossy_since: Option<Instant>,
    /// Content version of the last change to the published record.
    pub version: u64,
    /// The current death was ordered through the engine's API by someone else (a `kill` event
    /// outside our own restarts): an operator's or an antagonist's stop, not a crash.
    pub stopped_externally: bool,
    /// When our last restart ended: its own `kill` and `die` events may arrive after it.
    pub restart_ended: Option<Instant>,
    /// The `start` event of our last restart was seen: every later `kill` is someone else's.
    pub own_start_seen: bool,
    /// What our last restart did: only a kill-fast restart sends a `kill` of its own.
    pub own_op: Option<RestartOp>,
    /// Engine time of the current death (its first `die`, `stop` or `oom` event), if an event
    /// told it: how long the container was down when we start it is logged with the start.
    pub died_at: Option<OffsetDateTime>,
    /// The last period's signals, and what the record shows of them.
    pub signals: Option<Signals>,
    pub shown: Shown,
    /// The level of its open anomaly (the manager's analysis sets it).
    pub anomaly: Option<crate::analysis::Level>,
    published: Option<ContainerRecord>,
}

/// Everything a host manager knows.
#[derive(Debug)]
pub struct HostState {
    pub name: String,
    pub threshold: u8,
    pub confirm: u32,
    pub select: Option<Selector>,
    /// Names put on the ignore list by users.
    pub ignored: BTreeSet<String>,
    /// Names users asked to monitor despite an `hms.ignore` label.
    pub monitored: BTreeSet<String>,
    /// Response-time probes set by users, by container name (`None`: no probe, whatever the
    /// label says).
    pub response_probes: BTreeMap<String, Option<ResponseTarget>>,
    pub containers: BTreeMap<String, Tracked>,
    pub version: u64,
    tombstones: Vec<(String, u64)>,
    /// Deltas from versions below this need a full snapshot.
    pruned_upto: u64,
    /// The records as the last pull's answer left them at the puller, and that answer's version:
    /// a delta from exactly that version sends field-level patches against them.
    sent: BTreeMap<String, ContainerRecord>,
    sent_version: Option<u64>,
    /// On a host large enough to judge ([`health::HOST_WIDE_MIN`]), how long a container's loss
    /// must have lasted before it is restarted for it: one probe period, so every container has
    /// been probed during the episode and host-wide loss can be told from local loss.
    pub loss_evidence: Duration,
    /// When a loss restart was last held because the loss was host-wide.
    host_wide_at: Option<Instant>,
}

impl HostState {
    pub fn new(name: String, threshold: u8, confirm: u32, select: Option<Selector>) -> Self {
        Self {
            name,
            threshold,
            confirm,
            select,
            ignored: BTreeSet::new(),
            monitored: BTreeSet::new(),
            response_probes: BTreeMap::new(),
            containers: BTreeMap::new(),
            version: 0,
            tombstones: Vec::new(),
            pruned_upto: 0,
            sent: BTreeMap::new(),
            sent_version: None,
            loss_evidence: Duration::from_secs(1),
            host_wide_at: None,
        }
    }
}

impl Tracked {
    fn new(obs: ObservedContainer, now: Instant) -> Self {
        Self {
            obs,
            streak: 0,
            loss: None,
            shown_loss: None,
            restarts: 0,
            last_restart: None,
            tracker: RestartTracker::default(),
            running_since: now,
            retry_at: None,
            lossy_since: None,
            version: 0,
            stopped_externally: false,
            restart_ended: None,
            own_start_seen: false,
            own_op: None,
            died_at: None,
            signals: None,
            shown: Shown::default(),
            anomaly: None,
            published: None,
        }
    }
}

/// What the unit tests of every part start from.
#[cfg(test)]
mod fixtures {
    use super::*;
    use crate::model::{DockerState, Health};
    use crate::runtime::{EventKind, RuntimeEvent};

    pub fn obs(state: DockerState) -> ObservedContainer {
        ObservedContainer {
            id: "a".repeat(64),
            name: "web".into(),
            image: "img".into(),
            ip: Some("172.17.0.2".parse().unwrap()),
            labels: BTreeMap::new(),
            state,
            health: Health::None,
        }
    }

    pub fn event(kind: EventKind) -> RuntimeEvent {
        RuntimeEvent { id: "a".repeat(64), kind, time: None }
    }
}
