//! `Controller`: the fleet view. Batches update notices within the aggregation window, pulls the
//! hosts that announced changes (concurrently, in spawned tasks), merges their content, tracks
//! host liveness from heartbeats and publishes every change to subscribers (REST/SSE).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::aggregation::Aggregator;
use super::host_link::ToHost;
use super::protocol::{Content, Heartbeat, PullRequest, UpdateNotice, wire_size};
use super::wire::Wire;
use crate::config::ControllerConfig;
use crate::model::{ContainerRecord, HostRecord, HostStatus, rfc3339};
use crate::store::Store;

const KEY_AGGREGATION_MS: &str = "aggregation_ms";

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

struct HostView {
    record: HostRecord,
    manager: ActorRef<ToHost>,
    version: Option<u64>,
    containers: BTreeMap<String, ContainerRecord>,
    last_seen: Instant,
}

/// The mutable half.
pub struct ControllerState {
    hosts: BTreeMap<String, HostView>,
    agg: Aggregator,
    stats: Stats,
    liveness: JoinHandle<()>,
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
        let liveness = myself.send_interval(self.config.heartbeat / 2, || ControllerMsg::Liveness);
        Ok(ControllerState { hosts: BTreeMap::new(), agg: Aggregator::new(window), stats: Stats::default(), liveness })
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
            ControllerMsg::Stats(reply) => {
                let mut stats = state.stats.clone();
                stats.stale_seconds = state.agg.stale_time(Instant::now()).as_secs_f64();
                let _ = reply.send(stats);
            }
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
        let record = HostRecord {
            name: host.clone(),
            status: HostStatus::Online,
            last_heartbeat: Some(rfc3339(OffsetDateTime::now_utc())),
            threshold: 0,
            endpoint: None,
            containers: 0,
        };
        let view = HostView { record, manager, version: None, containers: BTreeMap::new(), last_seen: Instant::now() };
        let old = state.hosts.insert(host.clone(), view);
        if let (Some(old), Some(new)) = (old, state.hosts.get_mut(&host)) {
            new.containers = old.containers;
            new.record.threshold = old.record.threshold;
        }
        self.publish_host(state, &host);
        self.on_notice(myself, state, UpdateNotice { host, version: u64::MAX });
    }

    fn on_notice(&self, myself: &ActorRef<ControllerMsg>, state: &mut ControllerState, n: UpdateNotice) {
        state.stats.notices += 1;
        self.count(state, &n);
        if !state.hosts.contains_key(&n.host) {
            return;
        }
        if let Some(delay) = state.agg.notice(&n.host, Instant::now()) {
            state.stats.windows += 1;
            myself.send_after(delay, || ControllerMsg::CloseWindow);
        }
    }

    fn on_heartbeat(&self, myself: &ActorRef<ControllerMsg>, state: &mut ControllerState, hb: Heartbeat) {
        state.stats.heartbeats += 1;
        self.count(state, &hb);
        let Some(view) = state.hosts.get_mut(&hb.host) else { return };
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
            self.on_notice(myself, state, UpdateNotice { host: hb.host, version: hb.version });
        }
    }

    /// Pulls every host that announced an update, each in its own task.
    fn close_window(&self, myself: &ActorRef<ControllerMsg>, state: &mut ControllerState) {
        for host in state.agg.close() {
            let Some(view) = state.hosts.get(&host) else {
                state.agg.pulled(Instant::now());
                continue;
            };
            let req = PullRequest { since: view.version };
            let (manager, me, timeout) = (view.manager.clone(), myself.clone(), self.config.call_timeout);
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
        view.version = Some(content.version);
        let threshold_changed =
            view.record.threshold != content.threshold || view.record.containers != view.containers.len();
        view.record.threshold = content.threshold;
        view.record.containers = view.containers.len();
        let Content { containers, mut removed, full, .. } = content;
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
        if view.manager.get_id() != link || view.record.status == HostStatus::Offline {
            return;
        }
        view.record.status = HostStatus::Offline;
        tracing::warn!(host = %host, "host offline: its session dropped");
        self.publish_host(state, host);
    }

    /// Marks hosts offline after the configured number of missed heartbeats.
    fn liveness(&self, state: &mut ControllerState) {
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

    fn manager(state: &ControllerState, host: &str) -> Result<ActorRef<ToHost>, HostUnavailable> {
        let view = state.hosts.get(host).ok_or_else(|| HostUnavailable::Unknown(host.to_owned()))?;
        if view.record.status == HostStatus::Offline {
            return Err(HostUnavailable::Offline(host.to_owned()));
        }
        Ok(view.manager.clone())
    }

    fn publish_host(&self, state: &ControllerState, host: &str) {
        if let Some(v) = state.hosts.get(host) {
            let _ = self.events.send(FleetEvent::Host { host: v.record.clone() });
        }
    }

    fn count<T: Serialize>(&self, state: &mut ControllerState, msg: &T) {
        state.stats.messages += 1;
        state.stats.bytes += wire_size(msg) as u64;
    }
}
