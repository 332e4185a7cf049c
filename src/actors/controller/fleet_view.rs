//! `FleetView`: every decision of the controller, as plain sync methods. Time is passed in (no
//! clock reads), nothing is sent or stored here: each method returns what changed — the events to
//! publish, the pulls to start, when to close the aggregation window — and the actor carries it
//! out. Generic over the host's link `M`, so tests drive it without spawning actors.
//!
//! It holds the hosts (record, link, content version, containers), the [`Aggregator`]
//! bookkeeping, the durable [`KnownHosts`] and the exchange [`Stats`].
//!
//! Over 400 lines on purpose: one cohesive state machine (membership, liveness, aggregation and
//! merge all read and change the same host entries); its tests are in `fleet_view/tests.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::error::{ControllerError, check_aggregation, check_host_name};
use super::known_hosts::{KnownHost, KnownHosts};
use crate::actors::protocol::{Content, Heartbeat, PullRequest, UpdateNotice, wire_size};
use crate::fleet::{FleetSnapshot, HostSnapshot};
use crate::model::{ContainerRecord, HostRecord, HostStatus, rfc3339};
use crate::policy::aggregation::Aggregator;

/// A host's link as the view holds it: cloned into pulls and commands, told apart by its id.
pub trait Link: Clone {
    type Id: PartialEq;
    fn id(&self) -> Self::Id;
}

/// A copy of the fleet view.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub hosts: Vec<HostRecord>,
    /// Host name → its containers.
    pub containers: BTreeMap<String, Vec<ContainerRecord>>,
    pub aggregation: f64,
}

/// Counters of the controller's exchanges with hosts (the experiments' "bandwidth").
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub windows: u64,
    pub pulls: u64,
    pub pull_failures: u64,
    pub notices: u64,
    pub heartbeats: u64,
    pub messages: u64,
    pub bytes: u64,
    /// The share of `bytes` that is heartbeats (liveness, not updates).
    pub heartbeat_bytes: u64,
    /// Seconds the view had unpulled updates.
    pub stale_seconds: f64,
}

/// A published change, as sent to SSE subscribers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FleetEvent {
    Containers {
        host: String,
        containers: Vec<ContainerRecord>,
        removed: Vec<String>,
    },
    Host {
        host: HostRecord,
    },
    /// A container's anomaly opened (`level`), changed level, or closed (`level` null).
    Anomaly {
        host: String,
        container: String,
        name: String,
        level: Option<crate::analysis::Level>,
    },
}

/// A pull to carry out: whom to ask, what, and the registration of the host it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Pull<M> {
    pub host: String,
    pub manager: M,
    pub request: PullRequest,
    /// The content is merged only while the host still has this registration.
    pub epoch: u64,
}

/// What became of a pulled content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    Applied,
    /// Applied, but it patched a record the view lacks: the host's next pull is a full one.
    AppliedNextFull,
    /// Dropped: the host left the view or registered again since the pull.
    OtherLink,
    /// Dropped: older than what the view holds.
    Older,
}

/// What a registration or a heartbeat changed.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub events: Vec<FleetEvent>,
    /// The host's update opened the aggregation window: close it after this delay.
    pub close_after: Option<Duration>,
    /// The known hosts changed: store them.
    pub persist_known: bool,
}

#[derive(Debug)]
struct HostView<M> {
    record: HostRecord,
    /// The host's link; None until it first registers (a known host after a restart).
    manager: Option<M>,
    /// Which registration `manager` is.
    epoch: u64,
    /// What to pull since next time (None: everything).
    version: Option<u64>,
    /// The newest content version merged since the registration.
    merged: Option<u64>,
    containers: BTreeMap<String, ContainerRecord>,
    /// `containers` as last published; None when it changed since.
    shared: Option<Arc<Vec<ContainerRecord>>>,
    last_seen: Instant,
}

impl<M> HostView<M> {
    /// A host known but not (yet) connected.
    fn offline(host: &str, endpoint: Option<String>, now: Instant) -> Self {
        let record = HostRecord {
            name: host.to_owned(),
            status: HostStatus::Offline,
            last_heartbeat: None,
            threshold: 0,
            endpoint,
            containers: 0,
            cpu_busy_percent: None,
            memory_available_bytes: None,
            memory_total_bytes: None,
            load1: None,
            cpu_pressure: None,
            memory_pressure: None,
        };
        let containers = BTreeMap::new();
        Self { record, manager: None, epoch: 0, version: None, merged: None, containers, shared: None, last_seen: now }
    }

    fn online(&self) -> bool {
        self.record.status == HostStatus::Online
    }
}

/// The controller's fleet view and its bookkeeping.
#[derive(Debug)]
pub struct FleetView<M> {
    hosts: BTreeMap<String, HostView<M>>,
    agg: Aggregator,
    analysis: crate::analysis::detect::AnalysisConfig,
    known: KnownHosts,
    stats: Stats,
    /// Silence after which an online host is offline (heartbeat period × missed heartbeats).
    liveness: Duration,
    /// The last registration's number.
    epochs: u64,
}

impl<M: Link> FleetView<M> {
    /// The view after a start: every known host offline until it registers.
    pub fn new(known: BTreeMap<String, KnownHost>, window: Duration, liveness: Duration, now: Instant) -> Self {
        let known = KnownHosts::new(known);
        let hosts =
            known.hosts().iter().map(|(h, k)| (h.clone(), HostView::offline(h, k.endpoint.clone(), now))).collect();
        let (agg, analysis) = (Aggregator::new(window), Default::default());
        Self { hosts, agg, analysis, known, stats: Stats::default(), liveness, epochs: 0 }
    }

    /// A host's link registered (first time, or again after its session dropped): online, and
    /// everything is pulled in the next window.
    pub fn register(&mut self, host: &str, manager: M, now: Instant, wall: OffsetDateTime) -> Changes {
        let persist_known = self.known.upsert(host, None);
        self.known.connected(host);
        let endpoint = self.known.hosts().get(host).and_then(|k| k.endpoint.clone());
        self.epochs += 1;
        let view = self.hosts.entry(host.to_owned()).or_insert_with(|| HostView::offline(host, endpoint, now));
        view.manager = Some(manager);
        view.epoch = self.epochs;
        (view.version, view.merged) = (None, None);
        view.last_seen = now;
        view.record.status = HostStatus::Online;
        view.record.last_heartbeat = Some(rfc3339(wall));
        let events = vec![FleetEvent::Host { host: view.record.clone() }];
        Changes { events, close_after: self.updated(host, now), persist_known }
    }

    /// A host's link left: offline at once, unless the link is not the host's current one (it
    /// was replaced) or the host is already offline.
    pub fn link_down(&mut self, host: &str, link: &M::Id) -> Option<FleetEvent> {
        let view = self.hosts.get_mut(host)?;
        if view.manager.as_ref().is_none_or(|m| m.id() != *link) || !view.online() {
            return None;
        }
        view.record.status = HostStatus::Offline;
        Some(FleetEvent::Host { host: view.record.clone() })
    }

    /// A heartbeat: the host is online again if it was not; a host ahead of the view joins the
    /// window.
    pub fn heartbeat(&mut self, hb: &Heartbeat, now: Instant, wall: OffsetDateTime) -> Changes {
        self.stats.heartbeats += 1;
        self.stats.heartbeat_bytes += self.count(hb);
        let Some(view) = self.hosts.get_mut(&hb.host).filter(|v| v.manager.is_some()) else {
            return Changes::default();
        };
        view.last_seen = now;
        view.record.last_heartbeat = Some(rfc3339(wall));
        view.record.show_signals(&hb.signals);
        let came_back = !view.online();
        view.record.status = HostStatus::Online;
        let behind = view.version.is_some_and(|v| v < hb.version);
        let events = if came_back { vec![FleetEvent::Host { host: view.record.clone() }] } else { Vec::new() };
        let close_after = if behind || came_back { self.updated(&hb.host, now) } else { None };
        Changes { events, close_after, persist_known: false }
    }

    /// Online hosts silent for longer than the liveness limit go offline; their events.
    pub fn liveness(&mut self, now: Instant) -> Vec<FleetEvent> {
        let limit = self.liveness;
        let late = self.hosts.values_mut().filter(|v| v.online() && now.duration_since(v.last_seen) > limit);
        late.map(|v| {
            v.record.status = HostStatus::Offline;
            v.record.show_signals(&Default::default());
            FleetEvent::Host { host: v.record.clone() }
        })
        .collect()
    }

    /// A host's update notice (counted): it joins the window. The delay to close the window
    /// when this notice opened it.
    pub fn notice(&mut self, n: &UpdateNotice, now: Instant) -> Option<Duration> {
        self.stats.notices += 1;
        self.count(n);
        self.updated(&n.host, now)
    }

    /// `host` has content the view lacks: it joins the aggregation window. Nothing crossed the
    /// wire here, so nothing is counted.
    fn updated(&mut self, host: &str, now: Instant) -> Option<Duration> {
        if !self.hosts.contains_key(host) {
            return None;
        }
        let delay = self.agg.notice(host, now)?;
        self.stats.windows += 1;
        Some(delay)
    }

    /// The window closes: the pulls to start (counted), one per host that announced an update
    /// and still has a link.
    pub fn close_window(&mut self, now: Instant) -> Vec<Pull<M>> {
        let mut pulls = Vec::new();
        for host in self.agg.close() {
            let Some(pull) = self.pull_of(&host) else {
                self.agg.pulled(now);
                continue;
            };
            self.stats.pulls += 1;
            self.count(&pull.request);
            pulls.push(pull);
        }
        pulls
    }

    /// A window's pull ended: a failure is counted (and handed back), a content merged.
    pub fn pulled(
        &mut self,
        host: &str,
        epoch: u64,
        content: Result<Content, ControllerError>,
        now: Instant,
    ) -> Result<(Merge, Vec<FleetEvent>), ControllerError> {
        self.agg.pulled(now);
        self.take(host, epoch, content)
    }

    /// The pull that follows a mutating command ended (outside the window): counted, merged.
    pub fn pulled_after_command(
        &mut self,
        pull: &Pull<M>,
        content: Result<Content, ControllerError>,
    ) -> Result<(Merge, Vec<FleetEvent>), ControllerError> {
        self.stats.pulls += 1;
        self.count(&pull.request);
        self.take(&pull.host, pull.epoch, content)
    }

    fn take(
        &mut self,
        host: &str,
        epoch: u64,
        content: Result<Content, ControllerError>,
    ) -> Result<(Merge, Vec<FleetEvent>), ControllerError> {
        let content = content.inspect_err(|_| self.stats.pull_failures += 1)?;
        self.count(&content);
        Ok(self.merge(host, epoch, content))
    }

    /// Merges a host's content: a full one replaces its containers, a delta adds records,
    /// applies patches and drops what was removed. Dropped when older than the view or pulled
    /// from an earlier registration.
    pub fn merge(&mut self, host: &str, epoch: u64, content: Content) -> (Merge, Vec<FleetEvent>) {
        let Some(view) = self.hosts.get_mut(host).filter(|v| v.epoch == epoch && v.manager.is_some()) else {
            return (Merge::OtherLink, Vec::new());
        };
        if view.merged.is_some_and(|v| content.version < v) {
            return (Merge::Older, Vec::new());
        }
        let before: BTreeMap<String, Option<crate::analysis::Level>> =
            view.containers.iter().map(|(id, c)| (id.clone(), c.anomaly)).collect();
        if content.full {
            view.containers.clear();
        }
        for id in &content.removed {
            view.containers.remove(id);
        }
        for c in &content.containers {
            view.containers.insert(c.full_id.clone(), c.clone());
        }
        let mut patched = Vec::with_capacity(content.patches.len());
        let mut unknown = false;
        for p in &content.patches {
            match view.containers.values_mut().find(|c| c.id == p.id) {
                Some(rec) => {
                    p.apply(rec);
                    patched.push(rec.clone());
                }
                None => unknown = true,
            }
        }
        view.shared = None;
        view.merged = Some(content.version);
        // a patch of a record this view lacks cannot be applied: the next pull asks for all
        view.version = (!unknown).then_some(content.version);
        let record_changed =
            view.record.threshold != content.threshold || view.record.containers != view.containers.len();
        view.record.threshold = content.threshold;
        view.record.containers = view.containers.len();
        let Content { mut containers, mut removed, full, .. } = content;
        containers.extend(patched);
        if full {
            removed.clear();
        }
        let anomalies: Vec<FleetEvent> = view
            .containers
            .iter()
            .filter(|(id, c)| before.get(*id).copied().flatten() != c.anomaly)
            .map(|(_, c)| FleetEvent::Anomaly {
                host: host.to_owned(),
                container: c.id.clone(),
                name: c.name.clone(),
                level: c.anomaly,
            })
            .collect();
        let mut events = vec![FleetEvent::Containers { host: host.to_owned(), containers, removed }];
        events.extend(anomalies);
        if record_changed {
            events.push(FleetEvent::Host { host: view.record.clone() });
        }
        (if unknown { Merge::AppliedNextFull } else { Merge::Applied }, events)
    }

    /// Where a command for `host` goes, and the pull that follows a mutating one.
    pub fn route(&self, host: &str) -> Result<Pull<M>, ControllerError> {
        let view = self.hosts.get(host).ok_or_else(|| ControllerError::UnknownHost(host.to_owned()))?;
        self.pull_of(host).filter(|_| view.online()).ok_or_else(|| ControllerError::Offline(host.to_owned()))
    }

    fn pull_of(&self, host: &str) -> Option<Pull<M>> {
        let view = self.hosts.get(host)?;
        let manager = view.manager.clone()?;
        Some(Pull { host: host.to_owned(), manager, request: PullRequest { since: view.version }, epoch: view.epoch })
    }

    /// The known hosts to store before adding `host` (None when adding it changes nothing
    /// stored).
    pub fn known_with(
        &self,
        host: &str,
        endpoint: Option<&str>,
    ) -> Result<Option<BTreeMap<String, KnownHost>>, ControllerError> {
        check_host_name(host)?;
        let mut next = KnownHosts::new(self.known.hosts().clone());
        Ok(next.upsert(host, endpoint.map(str::to_owned)).then(|| next.hosts().clone()))
    }

    /// The known hosts to store before removing `host` (None when it is not among them).
    pub fn known_without(&self, host: &str) -> Result<Option<BTreeMap<String, KnownHost>>, ControllerError> {
        let mut next = KnownHosts::new(self.known.hosts().clone());
        let known = next.remove(host);
        if !known && !self.hosts.contains_key(host) {
            return Err(ControllerError::UnknownHost(host.to_owned()));
        }
        Ok(known.then(|| next.hosts().clone()))
    }

    /// Adds a host to supervision (and to the known hosts); offline until it registers.
    pub fn add_host(
        &mut self,
        host: &str,
        endpoint: Option<String>,
        now: Instant,
    ) -> Result<(HostRecord, FleetEvent), ControllerError> {
        check_host_name(host)?;
        self.known.upsert(host, endpoint.clone());
        let view = self.hosts.entry(host.to_owned()).or_insert_with(|| HostView::offline(host, None, now));
        if endpoint.is_some() {
            view.record.endpoint = endpoint;
        }
        Ok((view.record.clone(), FleetEvent::Host { host: view.record.clone() }))
    }

    /// Removes a host from supervision and from the known hosts; the event that empties it.
    pub fn remove_host(&mut self, host: &str) -> Result<FleetEvent, ControllerError> {
        let known = self.known.remove(host);
        if self.hosts.remove(host).is_none() && !known {
            return Err(ControllerError::UnknownHost(host.to_owned()));
        }
        Ok(FleetEvent::Containers { host: host.to_owned(), containers: vec![], removed: vec![] })
    }

    /// Changes the aggregation window (the next window opens with it).
    pub fn set_aggregation(&mut self, window: Duration) -> Result<(), ControllerError> {
        check_aggregation(window)?;
        self.agg.set_window(window);
        Ok(())
    }

    /// The fleet-wide analysis settings (what a host gets when it registers).
    pub fn analysis(&self) -> crate::analysis::detect::AnalysisConfig {
        self.analysis
    }

    pub fn set_analysis(&mut self, analysis: crate::analysis::detect::AnalysisConfig) {
        self.analysis = analysis;
    }

    /// The hosts online now, with their links.
    pub fn online_links(&self) -> Vec<Pull<M>> {
        self.hosts.keys().filter_map(|h| self.route(h).ok()).collect()
    }

    pub fn aggregation(&self) -> Duration {
        self.agg.window()
    }

    pub fn known_hosts(&self) -> &BTreeMap<String, KnownHost> {
        self.known.hosts()
    }

    /// Known hosts to dial now (with an endpoint, not online): `(host, endpoint)`, each
    /// scheduled for its next attempt with back-off and jitter (`unit` in [0, 1)).
    pub fn due_dials(&mut self, now: Instant, unit: f64) -> Vec<(String, String)> {
        let hosts = &self.hosts;
        self.known.due(now, |h| hosts.get(h).is_some_and(HostView::online), unit)
    }

    /// The counters, with the time the view was stale until `now`.
    pub fn stats(&self, now: Instant) -> Stats {
        Stats { stale_seconds: self.agg.stale_time(now).as_secs_f64(), ..self.stats.clone() }
    }

    /// A copy of the whole view.
    pub fn fleet(&self) -> Fleet {
        Fleet {
            hosts: self.hosts.values().map(|v| v.record.clone()).collect(),
            containers: self.hosts.iter().map(|(h, v)| (h.clone(), v.containers.values().cloned().collect())).collect(),
            aggregation: self.agg.window().as_secs_f64(),
        }
    }

    /// The snapshot to publish when the view differs from `current` (None when it does not).
    /// A host's containers are shared with `current` until its content changes.
    pub fn snapshot(&mut self, current: &FleetSnapshot) -> Option<FleetSnapshot> {
        let aggregation = self.agg.window().as_secs_f64();
        let hosts: BTreeMap<String, HostSnapshot> = self
            .hosts
            .iter_mut()
            .map(|(h, v)| {
                let containers =
                    v.shared.get_or_insert_with(|| Arc::new(v.containers.values().cloned().collect())).clone();
                (h.clone(), HostSnapshot { record: v.record.clone(), containers })
            })
            .collect();
        let same = current.aggregation == aggregation
            && current.analysis == self.analysis
            && current.hosts.len() == hosts.len()
            && hosts
                .iter()
                .zip(&current.hosts)
                .all(|((h, a), (g, b))| h == g && a.record == b.record && Arc::ptr_eq(&a.containers, &b.containers));
        (!same).then(|| FleetSnapshot::new(hosts, aggregation).with_analysis(self.analysis))
    }

    /// Counts one message exchanged with a host; returns its size.
    fn count<T: Serialize>(&mut self, msg: &T) -> u64 {
        let size = wire_size(msg) as u64;
        self.stats.messages += 1;
        self.stats.bytes += size;
        size
    }
}

#[cfg(test)]
mod tests;
