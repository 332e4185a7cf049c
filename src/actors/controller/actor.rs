//! `Controller`: the fleet view. Batches update notices within the aggregation window, pulls the
//! hosts that announced changes (concurrently, in spawned tasks), merges their content, tracks
//! host liveness from heartbeats and publishes every change to subscribers (REST/SSE).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::NodeServerMessage;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::known_hosts::KnownHosts;
use crate::actors::protocol::ToHost;
use crate::actors::protocol::wire::Wire;
use crate::actors::protocol::{Content, Heartbeat, PullRequest, UpdateNotice, wire_size};
use crate::config::ControllerConfig;
use crate::fleet::{FleetSnapshot, HostSnapshot};
use crate::model::{ContainerRecord, HostRecord, HostStatus, rfc3339};
use crate::policy::aggregation::Aggregator;
use crate::store::Store;

const KEY_AGGREGATION_MS: &str = "aggregation_ms";
const KEY_KNOWN_HOSTS: &str = "known_hosts";

/// Messages of the controller.
#[derive(Debug)]
pub enum ControllerMsg {
    /// A host manager joined (or re-joined) under `host`; `manager` is its link.
    Register { host: String, manager: ActorRef<ToHost> },
    /// A host's link left (its session dropped): offline at once, unless it was replaced.
    LinkDown { host: String, link: ractor::ActorId },
    /// A host's content changed.
    Notice(UpdateNotice),
    /// A host is alive.
    Heartbeat(Heartbeat),
    /// The aggregation window is over: pull.
    CloseWindow,
    /// A pull ended.
    Pulled { host: String, content: Result<Content, String> },
    /// Check heartbeats.
    Liveness,
    /// The whole fleet view.
    Fleet(RpcReplyPort<Fleet>),
    /// The manager of one host, to route a command to.
    Manager(String, RpcReplyPort<Result<ActorRef<ToHost>, HostUnavailable>>),
    /// Change the aggregation window.
    SetAggregation(Duration, RpcReplyPort<Result<(), String>>),
    /// Exchange counters.
    Stats(RpcReplyPort<Stats>),
    /// Cluster mode: the node server, to dial hosts with an endpoint.
    AttachNode(ActorRef<NodeServerMessage>),
    /// Add a host to the known hosts (durably); with an endpoint the controller dials it.
    AddHost { host: String, endpoint: Option<String>, reply: RpcReplyPort<Result<HostRecord, String>> },
    /// Remove a host from supervision and from the known hosts.
    RemoveHost(String, RpcReplyPort<Result<(), HostUnavailable>>),
    /// The published fleet snapshots and change events, for REST readers.
    Subscribe(RpcReplyPort<Subscription>),
}

/// What a reader of the fleet view holds: the latest snapshot (replaced on every change) and the
/// change events.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub fleet: watch::Receiver<Arc<FleetSnapshot>>,
    pub events: broadcast::Sender<FleetEvent>,
}

/// Local only: never crosses nodes.
impl ractor::Message for ControllerMsg {}

/// Why a command cannot reach a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostUnavailable {
    #[error("unknown host {0}")]
    Unknown(String),
    #[error("host {0} is offline")]
    Offline(String),
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
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FleetEvent {
    Containers { host: String, containers: Vec<ContainerRecord>, removed: Vec<String> },
    Host { host: HostRecord },
}

/// The read-only half.
pub struct Controller {
    pub config: ControllerConfig,
    pub store: Option<Arc<Store>>,
    pub events: broadcast::Sender<FleetEvent>,
}

impl HostView {
    /// A host known but not (yet) connected.
    fn offline(host: &str, endpoint: Option<String>) -> Self {
        let record = HostRecord {
            name: host.to_owned(),
            status: HostStatus::Offline,
            last_heartbeat: None,
            threshold: 0,
            endpoint,
            containers: 0,
        };
        Self {
            record,
            manager: None,
            version: None,
            containers: BTreeMap::new(),
            shared: None,
            last_seen: Instant::now(),
        }
    }
}

struct HostView {
    record: HostRecord,
    /// The host's link; None until it first registers (a known host after a restart).
    manager: Option<ActorRef<ToHost>>,
    version: Option<u64>,
    containers: BTreeMap<String, ContainerRecord>,
    /// `containers` as last published; None when it changed since.
    shared: Option<Arc<Vec<ContainerRecord>>>,
    last_seen: Instant,
}

/// The mutable half.
pub struct ControllerState {
    hosts: BTreeMap<String, HostView>,
    agg: Aggregator,
    stats: Stats,
    liveness: JoinHandle<()>,
    known: KnownHosts,
    node: Option<ActorRef<NodeServerMessage>>,
    snapshot: watch::Sender<Arc<FleetSnapshot>>,
}

impl Actor for Controller {
    type Msg = ControllerMsg;
    type State = ControllerState;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<ControllerMsg>, _: ()) -> Result<ControllerState, ActorProcessingErr> {
        let stored: Option<u64> = match &self.store {
            Some(s) => s.get(KEY_AGGREGATION_MS)?,
            None => None,
        };
        let window = stored.map_or(self.config.aggregation, Duration::from_millis);
        let known = match &self.store {
            Some(s) => s.get(KEY_KNOWN_HOSTS)?.unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let known = KnownHosts::new(known);
        let hosts = known.hosts().iter().map(|(h, k)| (h.clone(), HostView::offline(h, k.endpoint.clone()))).collect();
        let liveness = myself.send_interval(self.config.heartbeat / 2, || ControllerMsg::Liveness);
        let agg = Aggregator::new(window);
        let (snapshot, _) = watch::channel(Arc::new(FleetSnapshot::default()));
        let mut state = ControllerState { hosts, agg, stats: Stats::default(), liveness, known, node: None, snapshot };
        Self::publish_snapshot(&mut state);
        Ok(state)
    }

    async fn post_stop(
        &self,
        _: ActorRef<ControllerMsg>,
        state: &mut ControllerState,
    ) -> Result<(), ActorProcessingErr> {
        state.liveness.abort();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ControllerMsg>,
        msg: ControllerMsg,
        state: &mut ControllerState,
    ) -> Result<(), ActorProcessingErr> {
        let read_only = matches!(
            msg,
            ControllerMsg::Fleet(_)
                | ControllerMsg::Manager(..)
                | ControllerMsg::Stats(_)
                | ControllerMsg::Subscribe(_)
        );
        match msg {
            ControllerMsg::Register { host, manager } => self.register(&myself, state, host, manager),
            ControllerMsg::LinkDown { host, link } => self.link_down(state, &host, link),
            ControllerMsg::Notice(n) => self.on_notice(&myself, state, n),
            ControllerMsg::Heartbeat(hb) => self.on_heartbeat(&myself, state, hb),
            ControllerMsg::CloseWindow => self.close_window(&myself, state),
            ControllerMsg::Pulled { host, content } => self.on_pulled(state, &host, content),
            ControllerMsg::Liveness => self.liveness(state),
            ControllerMsg::Fleet(reply) => {
                let _ = reply.send(Self::fleet(state));
            }
            ControllerMsg::Manager(host, reply) => {
                let _ = reply.send(Self::manager(state, &host));
            }
            ControllerMsg::SetAggregation(d, reply) => {
                let _ = reply.send(self.set_aggregation(state, d));
            }
            ControllerMsg::AttachNode(node) => state.node = Some(node),
            ControllerMsg::AddHost { host, endpoint, reply } => {
                let _ = reply.send(self.add_host(state, &host, endpoint));
            }
            ControllerMsg::RemoveHost(host, reply) => {
                let _ = reply.send(self.remove_host(state, &host));
            }
            ControllerMsg::Stats(reply) => {
                let mut stats = state.stats.clone();
                stats.stale_seconds = state.agg.stale_time(Instant::now()).as_secs_f64();
                let _ = reply.send(stats);
            }
            ControllerMsg::Subscribe(reply) => {
                let fleet = state.snapshot.subscribe();
                let _ = reply.send(Subscription { fleet, events: self.events.clone() });
            }
        }
        if !read_only {
            Self::publish_snapshot(state);
        }
        Ok(())
    }
}

impl Controller {
    fn register(
        &self,
        myself: &ActorRef<ControllerMsg>,
        state: &mut ControllerState,
        host: String,
        manager: ActorRef<ToHost>,
    ) {
        tracing::info!(host = %host, "host registered");
        if state.known.upsert(&host, None) {
            let _ = self.save_known(state);
        }
        state.known.connected(&host);
        let endpoint = state.known.hosts().get(&host).and_then(|k| k.endpoint.clone());
        let view = state.hosts.entry(host.clone()).or_insert_with(|| HostView::offline(&host, endpoint));
        view.manager = Some(manager);
        view.version = None;
        view.last_seen = Instant::now();
        view.record.status = HostStatus::Online;
        view.record.last_heartbeat = Some(rfc3339(OffsetDateTime::now_utc()));
        self.publish_host(state, &host);
        self.updated(myself, state, &host);
    }

    /// A notice received from a host: counted, then handled.
    fn on_notice(&self, myself: &ActorRef<ControllerMsg>, state: &mut ControllerState, n: UpdateNotice) {
        state.stats.notices += 1;
        self.count(state, &n);
        self.updated(myself, state, &n.host);
    }

    /// `host` has content the view lacks (its notice, a registration, a heartbeat ahead of the
    /// view): it joins the aggregation window. Nothing crossed the wire here, so nothing is
    /// counted.
    fn updated(&self, myself: &ActorRef<ControllerMsg>, state: &mut ControllerState, host: &str) {
        if !state.hosts.contains_key(host) {
            return;
        }
        if let Some(delay) = state.agg.notice(host, Instant::now()) {
            state.stats.windows += 1;
            myself.send_after(delay, || ControllerMsg::CloseWindow);
        }
    }

    fn on_heartbeat(&self, myself: &ActorRef<ControllerMsg>, state: &mut ControllerState, hb: Heartbeat) {
        state.stats.heartbeats += 1;
        state.stats.heartbeat_bytes += self.count(state, &hb);
        let Some(view) = state.hosts.get_mut(&hb.host).filter(|v| v.manager.is_some()) else { return };
        view.last_seen = Instant::now();
        view.record.last_heartbeat = Some(rfc3339(OffsetDateTime::now_utc()));
        let came_back = view.record.status == HostStatus::Offline;
        view.record.status = HostStatus::Online;
        let behind = view.version.is_some_and(|v| v < hb.version);
        if came_back {
            tracing::info!(host = %hb.host, "host online");
            self.publish_host(state, &hb.host);
        }
        if behind || came_back {
            self.updated(myself, state, &hb.host);
        }
    }

    /// Pulls every host that announced an update, each in its own task.
    fn close_window(&self, myself: &ActorRef<ControllerMsg>, state: &mut ControllerState) {
        for host in state.agg.close() {
            let Some((view, manager)) = state.hosts.get(&host).and_then(|v| Some((v, v.manager.clone()?))) else {
                state.agg.pulled(Instant::now());
                continue;
            };
            let req = PullRequest { since: view.version };
            let (me, timeout) = (myself.clone(), self.config.call_timeout);
            state.stats.pulls += 1;
            self.count(state, &req);
            tokio::spawn(async move {
                let res = manager.call(|r| ToHost::Pull(Wire::new(req), r), Some(timeout)).await;
                let content = match res {
                    Ok(CallResult::Success(c)) => c.open().map_err(|e| e.to_string()),
                    Ok(CallResult::Timeout) => Err("pull timed out".to_owned()),
                    Ok(CallResult::SenderError) => Err("host dropped the pull".to_owned()),
                    Err(e) => Err(format!("pull not delivered: {e}")),
                };
                let _ = me.cast(ControllerMsg::Pulled { host, content });
            });
        }
    }

    fn on_pulled(&self, state: &mut ControllerState, host: &str, content: Result<Content, String>) {
        state.agg.pulled(Instant::now());
        let content = match content {
            Ok(c) => c,
            Err(e) => {
                state.stats.pull_failures += 1;
                return tracing::warn!(host = %host, error = %e, "pull failed");
            }
        };
        self.count(state, &content);
        let Some(view) = state.hosts.get_mut(host) else { return };
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
        // A patch of a record this view lacks cannot be applied: the next pull asks for all.
        view.version = (!unknown).then_some(content.version);
        if unknown {
            tracing::warn!(host = %host, "patch of an unknown container; next pull is full");
        }
        let threshold_changed =
            view.record.threshold != content.threshold || view.record.containers != view.containers.len();
        view.record.threshold = content.threshold;
        view.record.containers = view.containers.len();
        let Content { mut containers, mut removed, full, .. } = content;
        containers.extend(patched);
        if full {
            removed.clear();
        }
        let _ = self.events.send(FleetEvent::Containers { host: host.to_owned(), containers, removed });
        if threshold_changed {
            self.publish_host(state, host);
        }
    }

    fn link_down(&self, state: &mut ControllerState, host: &str, link: ractor::ActorId) {
        let Some(view) = state.hosts.get_mut(host) else { return };
        if view.manager.as_ref().is_none_or(|m| m.get_id() != link) || view.record.status == HostStatus::Offline {
            return;
        }
        view.record.status = HostStatus::Offline;
        tracing::warn!(host = %host, "host offline: its session dropped");
        self.publish_host(state, host);
    }

    fn add_host(
        &self,
        state: &mut ControllerState,
        host: &str,
        endpoint: Option<String>,
    ) -> Result<HostRecord, String> {
        if host.is_empty() || host.len() > 253 || host.chars().any(|c| c.is_control() || c == '/') {
            return Err(format!("invalid host name {host:?}"));
        }
        if state.known.upsert(host, endpoint.clone()) {
            self.save_known(state)?;
        }
        let view = state.hosts.entry(host.to_owned()).or_insert_with(|| HostView::offline(host, None));
        if endpoint.is_some() {
            view.record.endpoint = endpoint;
        }
        let record = view.record.clone();
        self.publish_host(state, host);
        self.dial_due(state);
        Ok(record)
    }

    fn remove_host(&self, state: &mut ControllerState, host: &str) -> Result<(), HostUnavailable> {
        let known = state.known.remove(host);
        let view = state.hosts.remove(host);
        if !known && view.is_none() {
            return Err(HostUnavailable::Unknown(host.to_owned()));
        }
        let _ = self.save_known(state);
        tracing::info!(host = %host, "host removed from supervision");
        let _ = self.events.send(FleetEvent::Containers { host: host.to_owned(), containers: vec![], removed: vec![] });
        Ok(())
    }

    fn save_known(&self, state: &ControllerState) -> Result<(), String> {
        let Some(store) = &self.store else { return Ok(()) };
        store.put(KEY_KNOWN_HOSTS, state.known.hosts()).map_err(|e| {
            tracing::error!(error = %e, "cannot persist the known hosts");
            e.to_string()
        })
    }

    /// Dials the known hosts with an endpoint that are not online (cluster mode), with back-off.
    fn dial_due(&self, state: &mut ControllerState) {
        let Some(node) = &state.node else { return };
        let hosts = &state.hosts;
        let online = |h: &str| hosts.get(h).is_some_and(|v| v.record.status == HostStatus::Online);
        for (host, endpoint) in state.known.due(Instant::now(), online, rand::random::<f64>()) {
            let node = node.clone();
            tokio::spawn(async move {
                if let Err(e) = ractor_cluster::client_connect(&node, endpoint.as_str()).await {
                    tracing::debug!(host = %host, endpoint = %endpoint, error = ?e, "cannot dial host");
                }
            });
        }
    }

    /// Marks hosts offline after the configured number of missed heartbeats.
    fn liveness(&self, state: &mut ControllerState) {
        self.dial_due(state);
        let limit = self.config.heartbeat * self.config.missed_heartbeats;
        let now = Instant::now();
        let late: Vec<String> = state
            .hosts
            .iter()
            .filter(|(_, v)| v.record.status == HostStatus::Online && now.duration_since(v.last_seen) > limit)
            .map(|(h, _)| h.clone())
            .collect();
        for host in late {
            if let Some(v) = state.hosts.get_mut(&host) {
                v.record.status = HostStatus::Offline;
            }
            tracing::warn!(host = %host, "host offline: heartbeats missed");
            self.publish_host(state, &host);
        }
    }

    fn set_aggregation(&self, state: &mut ControllerState, d: Duration) -> Result<(), String> {
        if d.is_zero() || d > Duration::from_secs(3600) {
            return Err("aggregation must be within (0, 3600] seconds".to_owned());
        }
        if let Some(store) = &self.store {
            store.put(KEY_AGGREGATION_MS, &(d.as_millis() as u64)).map_err(|e| e.to_string())?;
        }
        state.agg.set_window(d);
        tracing::info!(aggregation_ms = d.as_millis() as u64, "aggregation changed");
        Ok(())
    }

    fn fleet(state: &ControllerState) -> Fleet {
        Fleet {
            hosts: state.hosts.values().map(|v| v.record.clone()).collect(),
            containers: state
                .hosts
                .iter()
                .map(|(h, v)| (h.clone(), v.containers.values().cloned().collect()))
                .collect(),
            aggregation: state.agg.window().as_secs_f64(),
        }
    }

    /// Publishes the view to REST readers when it changed (containers are shared between
    /// snapshots until their host's content changes).
    fn publish_snapshot(state: &mut ControllerState) {
        let aggregation = state.agg.window().as_secs_f64();
        let current = state.snapshot.borrow().clone();
        let hosts: BTreeMap<String, HostSnapshot> = state
            .hosts
            .iter_mut()
            .map(|(h, v)| {
                let containers =
                    v.shared.get_or_insert_with(|| Arc::new(v.containers.values().cloned().collect())).clone();
                (h.clone(), HostSnapshot { record: v.record.clone(), containers })
            })
            .collect();
        let same = current.aggregation == aggregation
            && current.hosts.len() == hosts.len()
            && hosts
                .iter()
                .zip(&current.hosts)
                .all(|((h, a), (g, b))| h == g && a.record == b.record && Arc::ptr_eq(&a.containers, &b.containers));
        if !same {
            state.snapshot.send_replace(Arc::new(FleetSnapshot::new(hosts, aggregation)));
        }
    }

    fn manager(state: &ControllerState, host: &str) -> Result<ActorRef<ToHost>, HostUnavailable> {
        let view = state.hosts.get(host).ok_or_else(|| HostUnavailable::Unknown(host.to_owned()))?;
        match &view.manager {
            Some(m) if view.record.status == HostStatus::Online => Ok(m.clone()),
            _ => Err(HostUnavailable::Offline(host.to_owned())),
        }
    }

    fn publish_host(&self, state: &ControllerState, host: &str) {
        if let Some(v) = state.hosts.get(host) {
            let _ = self.events.send(FleetEvent::Host { host: v.record.clone() });
        }
    }

    /// Counts one message exchanged with a host; returns its size.
    fn count<T: Serialize>(&self, state: &mut ControllerState, msg: &T) -> u64 {
        let size = wire_size(msg) as u64;
        state.stats.messages += 1;
        state.stats.bytes += size;
        size
    }
}
