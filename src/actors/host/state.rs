//! The host manager's state and every decision it makes, as plain sync methods (no I/O, no clock).
//!
//! The actor in `host_manager.rs` feeds it observations (listings, events, probe windows,
//! restart outcomes) with the current time, and carries out the [`Plan`]s it returns.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use crate::actors::protocol::{CommandError, ContainerPatch, Content};
use crate::model::{self, ContainerRecord, ContainerState, DockerState, LookupError, ObservedContainer};
use crate::policy::health::{self, Need, Reason};
use crate::policy::{Decision, RestartPolicy, RestartTracker};
use crate::runtime::{EventKind, RuntimeEvent, Selector};

/// Label that excludes a container from monitoring.
pub const IGNORE_LABEL: &str = "hms.ignore";
/// Label overriding the threshold of one container.
pub const THRESHOLD_LABEL: &str = "hms.threshold";
/// Engine events up to this long after one of our restarts ended are taken as that restart's.
const OWN_EVENTS_GRACE: Duration = Duration::from_secs(1);
/// How many removals are remembered for delta pulls.
const TOMBSTONES: usize = 1024;

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
    published: Option<ContainerRecord>,
}

/// What to start or restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartOp {
    /// `docker start` a stopped container.
    Start,
    /// Kill-fast restart of a running container.
    Restart,
}

/// What the actor must do for one container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    Nothing,
    /// `down_for`: since the engine's `die` of a container we start, when an event told it.
    Act {
        op: RestartOp,
        reason: Reason,
        attempt: u64,
        down_for: Option<Duration>,
    },
    RetryAfter(Duration),
    Quarantined {
        until: Instant,
    },
    /// A loss restart held because most of the host's containers lose packets at once
    /// ([`health::loss_is_host_wide`]); the next window decides again.
    HeldHostWide {
        lossy: usize,
        probed: usize,
    },
}

/// What an engine event calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventEffect {
    /// The state is known: decide now.
    Reconcile(String),
    /// Ask the engine for the container's details first.
    Inspect(String),
    Nothing,
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

    fn in_scope(&self, obs: &ObservedContainer) -> bool {
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

    /// Records what the engine says about one container; out-of-scope ones are dropped.
    pub fn observe(&mut self, obs: ObservedContainer, now: Instant) {
        if !self.in_scope(&obs) {
            self.remove(&obs.id);
            return;
        }
        match self.containers.get_mut(&obs.id) {
            Some(t) => {
                if obs.state == DockerState::Running && t.obs.state != DockerState::Running {
                    t.running_since = now;
                    t.streak = 0;
                    t.lossy_since = None;
                }
                if obs.state == DockerState::Running {
                    t.died_at = None; // its `start` event may have been missed
                }
                t.obs = obs;
            }
            None => {
                let t = Tracked {
                    obs: obs.clone(),
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
                    published: None,
                };
                self.containers.insert(obs.id, t);
            }
        }
    }

    /// Applies a full listing: observes every listed container, forgets the unlisted ones.
    /// Returns the ids of the forgotten.
    pub fn sync(&mut self, listed: Vec<ObservedContainer>, now: Instant) -> Vec<String> {
        let seen: BTreeSet<String> = listed.iter().map(|o| o.id.clone()).collect();
        for obs in listed {
            self.observe(obs, now);
        }
        let gone: Vec<String> = self.containers.keys().filter(|id| !seen.contains(*id)).cloned().collect();
        gone.iter().for_each(|id| self.remove(id));
        gone
    }

    /// Forgets a container, leaving a tombstone for delta pulls.
    pub fn remove(&mut self, id: &str) {
        if self.containers.remove(id).is_some() {
            self.version += 1;
            self.tombstones.push((id.to_owned(), self.version));
            if self.tombstones.len() > TOMBSTONES {
                let (_, v) = self.tombstones.remove(0);
                self.pruned_upto = v;
            }
        }
    }

    /// Folds an engine event into the state and says what it calls for.
    pub fn on_event(&mut self, ev: &RuntimeEvent, now: Instant) -> EventEffect {
        let Some(t) = self.containers.get_mut(&ev.id) else {
            let creates = matches!(ev.kind, EventKind::Start | EventKind::Health(_));
            return if creates { EventEffect::Inspect(ev.id.clone()) } else { EventEffect::Nothing };
        };
        match &ev.kind {
            EventKind::Die | EventKind::Stop | EventKind::Oom => {
                if t.obs.state == DockerState::Running {
                    t.died_at = ev.time.map(OffsetDateTime::from);
                }
                t.obs.state = DockerState::Exited;
                t.streak = 0;
                t.lossy_since = None;
                EventEffect::Reconcile(ev.id.clone())
            }
            EventKind::Health(h) => {
                t.obs.health = *h;
                EventEffect::Reconcile(ev.id.clone())
            }
            EventKind::Start => {
                t.stopped_externally = false;
                t.died_at = None;
                t.own_start_seen = true;
                if t.obs.state != DockerState::Running {
                    t.running_since = now;
                    t.streak = 0;
                    t.lossy_since = None;
                }
                t.obs.state = DockerState::Running;
                EventEffect::Inspect(ev.id.clone())
            }
            // a lethal signal is followed by `die`; the periodic resync covers the rest
            EventKind::Kill => {
                // only a kill-fast restart of ours sends a `kill`, before its `start`; the grace
                // covers a restart whose `start` never came (a failed start). A `kill` while we
                // only start a stopped container is someone else's, however long the start takes.
                let ended_lately = t.restart_ended.is_some_and(|at| now.duration_since(at) < OWN_EVENTS_GRACE);
                let ours = t.own_op == Some(RestartOp::Restart)
                    && (t.tracker.in_flight() || (!t.own_start_seen && ended_lately));
                if !ours {
                    t.stopped_externally = true;
                }
                EventEffect::Nothing
            }
            EventKind::Destroy => {
                self.remove(&ev.id);
                EventEffect::Nothing
            }
        }
    }

    /// Running, monitored containers with a probed loss: (over their threshold, all of them).
    fn lossy_and_probed(&self) -> (usize, usize) {
        let probed = self
            .containers
            .values()
            .filter(|t| t.obs.state == DockerState::Running && t.loss.is_some() && !self.is_ignored(&t.obs));
        probed.fold((0, 0), |(lossy, all), t| (lossy + usize::from(t.streak > 0), all + 1))
    }

    /// Folds a probe window in. Returns false when the window was stale and discarded.
    pub fn on_window(&mut self, id: &str, ip: IpAddr, started: Instant, loss: f64) -> bool {
        let threshold = match self.containers.get(id) {
            Some(t) => self.threshold_of(&t.obs),
            None => return false,
        };
        let Some(t) = self.containers.get_mut(id) else { return false };
        let current = t.obs.state == DockerState::Running && t.obs.ip == Some(ip);
        if !current || t.tracker.in_flight() || started < t.running_since {
            return false;
        }
        t.loss = Some(loss);
        t.shown_loss = Some(health::published_loss(t.shown_loss, loss, threshold));
        let streak = health::next_streak(t.streak, loss, threshold);
        t.lossy_since = match (t.streak, streak) {
            (_, 0) => None,
            (0, _) => Some(started),
            _ => t.lossy_since,
        };
        t.streak = streak;
        true
    }

    /// Decides what one container needs now, recording a restart it orders.
    pub fn plan(&mut self, id: &str, policy: &RestartPolicy, now: Instant, wall: OffsetDateTime, unit: f64) -> Plan {
        let Some(t) = self.containers.get(id) else { return Plan::Nothing };
        if self.is_ignored(&t.obs) {
            return Plan::Nothing;
        }
        let confirm = self.confirm;
        let Some(t) = self.containers.get_mut(id) else { return Plan::Nothing };
        if t.retry_at.is_some_and(|at| at <= now) {
            t.retry_at = None;
        }
        let need = health::verdict(t.obs.state, t.obs.health, t.streak, confirm, t.loss.unwrap_or(0.0));
        let (op, reason) = match need {
            Need::Nothing => return Plan::Nothing,
            Need::Start(r) => (RestartOp::Start, r),
            Need::Restart(r) => (RestartOp::Restart, r),
        };
        if matches!(reason, Reason::PacketLoss(_)) {
            let (lossy, probed) = self.lossy_and_probed();
            let evidence = self.loss_evidence;
            if health::loss_is_host_wide(lossy, probed) {
                self.host_wide_at = Some(now);
                return Plan::HeldHostWide { lossy, probed };
            }
            // after a host-wide episode, every container is probed again before any is judged:
            // the streaks of the ones not probed since it ended are stale
            if self.host_wide_at.is_some_and(|at| now < at + evidence) {
                return Plan::HeldHostWide { lossy, probed };
            }
            let Some(t) = self.containers.get_mut(id) else { return Plan::Nothing };
            let ready = t.lossy_since.map_or(now, |since| since + evidence);
            if probed >= health::HOST_WIDE_MIN && now < ready {
                if t.retry_at.is_some() {
                    return Plan::Nothing;
                }
                t.retry_at = Some(ready);
                return Plan::RetryAfter(ready - now);
            }
        }
        let Some(t) = self.containers.get_mut(id) else { return Plan::Nothing };
        // A crash loop is what back-off and quarantine are for; a container someone stopped
        // through the API is started again at once, and that start is not held against it.
        let external = op == RestartOp::Start && t.stopped_externally;
        let decision = if external { t.tracker.decide_external(now) } else { t.tracker.decide(policy, now, unit) };
        match decision {
            Decision::Now => {
                if external {
                    t.tracker.begin_external();
                } else {
                    t.tracker.begin(policy, now);
                }
                t.restarts += 1;
                t.own_start_seen = false;
                t.own_op = Some(op);
                t.last_restart = Some(wall);
                t.streak = 0;
                t.lossy_since = None;
                let down_for = (t.died_at.filter(|_| op == RestartOp::Start))
                    .map(|died| Duration::try_from(wall - died).unwrap_or(Duration::ZERO));
                Plan::Act { op, reason, attempt: t.restarts, down_for }
            }
            Decision::After(d) if t.retry_at.is_none() => {
                t.retry_at = Some(now + d);
                Plan::RetryAfter(d)
            }
            Decision::Quarantine { until } => {
                t.tracker.quarantine(until);
                t.retry_at = Some(until);
                Plan::Quarantined { until }
            }
            Decision::After(_) | Decision::InFlight | Decision::Quarantined => Plan::Nothing,
        }
    }

    /// A restart ended; `obs` is the container as inspected afterwards.
    pub fn restart_done(&mut self, id: &str, obs: Option<ObservedContainer>, now: Instant) {
        if let Some(t) = self.containers.get_mut(id) {
            t.tracker.finish();
            t.restart_ended = Some(now);
        }
        match obs {
            Some(obs) => self.observe(obs, now),
            None => self.remove(id),
        }
    }

    /// The published state of a container.
    fn published_state(&self, t: &Tracked, now: Instant) -> ContainerState {
        if self.is_ignored(&t.obs) {
            return ContainerState::Ignored;
        }
        if t.tracker.is_quarantined(now) {
            return ContainerState::Quarantined;
        }
        if t.tracker.in_flight() {
            return ContainerState::Restarting;
        }
        match t.obs.state {
            DockerState::Running => ContainerState::Running,
            DockerState::Restarting => ContainerState::Restarting,
            DockerState::Exited | DockerState::Dead | DockerState::Created => ContainerState::Stopped,
            _ => ContainerState::Unknown,
        }
    }

    /// The record published for a container.
    pub fn record(&self, id: &str, now: Instant) -> Option<ContainerRecord> {
        let t = self.containers.get(id)?;
        Some(ContainerRecord {
            id: t.obs.short_id().to_owned(),
            name: t.obs.name.clone(),
            image: t.obs.image.clone(),
            host: self.name.clone(),
            ip: t.obs.ip.map(|ip| ip.to_string()),
            state: self.published_state(t, now),
            packet_loss: t.shown_loss,
            threshold: self.threshold_of(&t.obs),
            restarts: t.restarts,
            last_restart: t.last_restart.map(model::rfc3339),
            full_id: t.obs.id.clone(),
        })
    }

    /// Re-derives every record; bumps the version for each that changed. True when any did.
    pub fn touch_all(&mut self, now: Instant) -> bool {
        let ids: Vec<String> = self.containers.keys().cloned().collect();
        let before = self.version;
        ids.iter().for_each(|id| {
            self.touch(id, now);
        });
        self.version != before
    }

    /// Re-derives one record; bumps the version when it changed.
    pub fn touch(&mut self, id: &str, now: Instant) -> bool {
        let Some(rec) = self.record(id, now) else { return false };
        let Some(t) = self.containers.get_mut(id) else { return false };
        if t.published.as_ref() == Some(&rec) {
            return false;
        }
        self.version += 1;
        t.version = self.version;
        t.published = Some(rec);
        true
    }

    /// The content for a pull: everything, or what changed after `since` — as patches of the
    /// records the puller holds when `since` is the version of the last answer.
    pub fn content(&mut self, since: Option<u64>) -> Content {
        let delta_from = since.filter(|&v| v >= self.pruned_upto && v <= self.version);
        let patchable = delta_from.is_some() && delta_from == self.sent_version;
        let (mut containers, mut patches) = (Vec::new(), Vec::new());
        let changed = self.containers.values().filter(|t| delta_from.is_none_or(|v| t.version > v));
        for rec in changed.filter_map(|t| t.published.as_ref()) {
            let base = self.sent.get(&rec.full_id).filter(|_| patchable);
            match base.map(|old| ContainerPatch::diff(old, rec)) {
                Some(Some(patch)) if patch.is_empty() => {}
                Some(Some(patch)) => patches.push(patch),
                _ => containers.push(rec.clone()),
            }
        }
        let removed = match delta_from {
            Some(v) => self.tombstones.iter().filter(|(_, tv)| *tv > v).map(|(id, _)| id.clone()).collect(),
            None => Vec::new(),
        };
        self.sent =
            self.containers.values().filter_map(|t| t.published.clone()).map(|r| (r.full_id.clone(), r)).collect();
        self.sent_version = Some(self.version);
        Content {
            host: self.name.clone(),
            version: self.version,
            threshold: self.threshold,
            full: delta_from.is_none(),
            containers,
            patches,
            removed,
        }
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

    /// Whether a container should have a probe (`None`: no) and at which address
    /// (`Some(None)`: probe paused, the container has no address or is not running).
    pub fn probe_target(&self, id: &str) -> Option<Option<IpAddr>> {
        let t = self.containers.get(id).filter(|t| !self.is_ignored(&t.obs))?;
        Some(t.obs.ip.filter(|_| t.obs.state == DockerState::Running))
    }

    /// A restart ended but the container's state could not be read.
    pub fn restart_done_unknown(&mut self, id: &str) {
        if let Some(t) = self.containers.get_mut(id) {
            t.tracker.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Health;

    fn obs(state: DockerState) -> ObservedContainer {
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

    fn event(kind: EventKind) -> RuntimeEvent {
        RuntimeEvent { id: "a".repeat(64), kind, time: None }
    }

    #[test]
    fn a_start_carries_how_long_the_engine_says_the_container_was_down() {
        let (policy, id) = (RestartPolicy::default(), "a".repeat(64));
        let died = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut h = HostState::new("h".into(), 30, 2, None);
        let t0 = Instant::now();
        h.observe(obs(DockerState::Running), t0);
        let at = |kind, t: OffsetDateTime| RuntimeEvent { id: id.clone(), kind, time: Some(t.into()) };
        h.on_event(&at(EventKind::Die, died), t0);
        // the `stop` that follows a `die` does not move the death
        h.on_event(&at(EventKind::Stop, died + Duration::from_millis(40)), t0);
        let plan = h.plan(&id, &policy, t0, died + Duration::from_millis(250), 0.0);
        let Plan::Act { down_for, .. } = plan else { panic!("{plan:?}") };
        assert_eq!(down_for, Some(Duration::from_millis(250)));
        // a start forgets it; a death told by a listing has none
        h.on_event(&at(EventKind::Start, died + Duration::from_secs(1)), t0);
        h.restart_done(&id, Some(obs(DockerState::Running)), t0);
        h.observe(obs(DockerState::Exited), t0);
        let plan = h.plan(&id, &policy, t0 + Duration::from_secs(60), died + Duration::from_secs(61), 0.0);
        assert!(matches!(plan, Plan::Act { down_for: None, .. }), "{plan:?}");
    }

    #[test]
    fn loss_restarts_wait_while_most_of_the_host_loses_packets() {
        let (policy, wall) = (RestartPolicy::default(), OffsetDateTime::UNIX_EPOCH);
        let mut h = HostState::new("h".into(), 30, 2, None);
        let t0 = Instant::now();
        let ids: Vec<String> = (0..20).map(|i| format!("{i:064}")).collect();
        let ip = |i: usize| IpAddr::from([172, 17, 1, u8::try_from(i).unwrap()]);
        for (i, id) in ids.iter().enumerate() {
            h.observe(ObservedContainer { id: id.clone(), ip: Some(ip(i)), ..obs(DockerState::Running) }, t0);
        }
        let windows = |h: &mut HostState, lossy: usize| {
            for _ in 0..2 {
                for (i, id) in ids.iter().enumerate() {
                    assert!(h.on_window(id, ip(i), t0, if i < lossy { 60.0 } else { 0.0 }));
                }
            }
        };
        let t1 = t0 + h.loss_evidence;
        windows(&mut h, 2);
        // the loss has not lasted a probe period: wait for every container's window
        let plan = h.plan(&ids[0], &policy, t0, wall, 0.0);
        assert!(matches!(plan, Plan::RetryAfter(d) if d == h.loss_evidence), "{plan:?}");
        windows(&mut h, 11);
        let plan = h.plan(&ids[0], &policy, t1, wall, 0.0);
        assert!(matches!(plan, Plan::HeldHostWide { lossy: 11, probed: 20 }), "{plan:?}");
        // a death is still healed at once
        h.observe(ObservedContainer { id: ids[19].clone(), ip: Some(ip(19)), ..obs(DockerState::Exited) }, t0);
        assert!(matches!(h.plan(&ids[19], &policy, t0, wall, 0.0), Plan::Act { op: RestartOp::Start, .. }));
        // once the loss is local again (10 of 20), the lossy containers are restarted
        let back = ObservedContainer { id: ids[19].clone(), ip: Some(ip(19)), ..obs(DockerState::Running) };
        h.restart_done(&ids[19], Some(back), t0);
        windows(&mut h, 10);
        let plan = h.plan(&ids[0], &policy, t1, wall, 0.0);
        assert!(matches!(plan, Plan::HeldHostWide { lossy: 10, .. }), "a probe period after the episode: {plan:?}");
        let plan = h.plan(&ids[0], &policy, t1 + h.loss_evidence, wall, 0.0);
        assert!(matches!(plan, Plan::Act { op: RestartOp::Restart, reason: Reason::PacketLoss(_), .. }), "{plan:?}");
    }

    #[test]
    fn a_kill_while_we_only_start_a_container_is_someone_elses() {
        let (policy, wall, id) = (RestartPolicy::default(), OffsetDateTime::UNIX_EPOCH, "a".repeat(64));
        let mut h = HostState::new("h".into(), 30, 2, None);
        let t0 = Instant::now();
        h.observe(obs(DockerState::Running), t0);
        // a crash: counted, started at once
        h.on_event(&event(EventKind::Die), t0);
        assert!(matches!(h.plan(&id, &policy, t0, wall, 0.0), Plan::Act { op: RestartOp::Start, .. }));
        // while our slow start is in flight, someone stops the container again
        h.on_event(&event(EventKind::Start), t0);
        h.on_event(&event(EventKind::Kill), t0);
        h.on_event(&event(EventKind::Die), t0);
        h.restart_done(&id, Some(obs(DockerState::Exited)), t0);
        // a second crash would wait for the back-off; someone's stop is started at once
        let plan = h.plan(&id, &policy, t0, wall, 0.0);
        assert!(matches!(plan, Plan::Act { op: RestartOp::Start, .. }), "{plan:?}");
    }

    #[test]
    fn a_delta_from_the_last_answer_patches_fields_and_an_older_one_sends_records() {
        let id = "a".repeat(64);
        let mut h = HostState::new("h".into(), 30, 2, None);
        let t0 = Instant::now();
        h.observe(obs(DockerState::Running), t0);
        h.touch(&id, t0);
        let first = h.content(None);
        assert!(first.full && first.containers.len() == 1 && first.patches.is_empty());
        let v1 = first.version;
        // the container dies: the answer to a pull from v1 is a patch of its state
        h.observe(obs(DockerState::Exited), t0);
        h.touch(&id, t0);
        let delta = h.content(Some(v1));
        assert!(!delta.full && delta.containers.is_empty(), "{delta:?}");
        assert_eq!(delta.patches.len(), 1);
        assert_eq!(delta.patches[0].id, "a".repeat(12));
        assert!(delta.patches[0].state.is_some() && delta.patches[0].restarts.is_none());
        let mut rec = first.containers[0].clone();
        delta.patches[0].apply(&mut rec);
        assert_eq!(Some(&rec), h.containers[&id].published.as_ref());
        // a puller that missed that answer asks from v1 again: whole records, not patches
        h.observe(obs(DockerState::Running), t0);
        h.touch(&id, t0);
        let again = h.content(Some(v1));
        assert_eq!((again.containers.len(), again.patches.len()), (1, 0));
        // nothing changed since the last answer: an empty delta
        let none = h.content(Some(again.version));
        assert!(none.containers.is_empty() && none.patches.is_empty() && none.removed.is_empty());
    }
}
