//! `Controller`: the actor around the [`FleetView`]. Each message is one call into the view, then
//! its effects: pulls and commands in spawned tasks (which report back by message), dialling
//! known hosts, storing settings, sending change events and publishing the fleet snapshot.
//!
//! **Invariant:** a reply to a request that changed the view is sent after the snapshot that
//! shows the change is published, so a REST read that follows a 2xx sees it. A mutating command
//! (threshold, ignore, monitor) is answered only once its host has been pulled and the content
//! merged ([`ControllerMsg::Written`]): read-your-writes without waiting for the window.
//!
//! Over 400 lines on purpose: it is one cohesive thing, the table of the controller's messages
//! and the effect each one has; every decision is already in [`FleetView`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::NodeServerMessage;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::ControllerError;
use super::fleet_view::{Fleet, FleetEvent, FleetView, Link, Merge, Pull, Stats};
use crate::actors::protocol::wire::Wire;
use crate::actors::protocol::{Command, CommandOk, Content, Heartbeat, ToHost, UpdateNotice};
use crate::analysis::detect::AnalysisConfig;
use crate::config::ControllerConfig;
use crate::fleet::FleetSnapshot;
use crate::model::HostRecord;
use crate::store::Store;

const KEY_AGGREGATION_MS: &str = "aggregation_ms";
const KEY_KNOWN_HOSTS: &str = "known_hosts";
const KEY_ANALYSIS: &str = "analysis";

/// The shortest wait for the pull that follows a command, whatever the command took.
const MIN_PULL_TIMEOUT: Duration = Duration::from_millis(100);

/// A command's answer: the host's OK, or why there is none.
pub type CommandResult = Result<CommandOk, ControllerError>;

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
    /// A window's pull ended.
    Pulled { pull: Pull<ActorRef<ToHost>>, content: Result<Content, ControllerError> },
    /// Check heartbeats (and dial the known hosts that are due).
    Liveness,
    /// The whole fleet view.
    Fleet(RpcReplyPort<Fleet>),
    /// A command for one host, answered with the host's OK or error, with the call timeout. A
    /// mutating one (threshold, ignore, monitor) is answered once the view shows its effect.
    Command { host: String, cmd: Command, reply: RpcReplyPort<CommandResult> },
    /// A mutating command succeeded and its host was pulled: merge, publish, then answer.
    Written(Box<Written>),
    /// Change the aggregation window (durably).
    SetAggregation(Duration, RpcReplyPort<Result<(), ControllerError>>),
    /// Set the fleet-wide analysis settings (persisted; sent to every host now and to each
    /// host when it registers).
    SetAnalysis(AnalysisConfig, RpcReplyPort<Result<(), ControllerError>>),
    /// Exchange counters.
    Stats(RpcReplyPort<Stats>),
    /// Cluster mode: the node server, to dial hosts with an endpoint.
    AttachNode(ActorRef<NodeServerMessage>),
    /// Add a host to the known hosts (durably); with an endpoint the controller dials it.
    AddHost { host: String, endpoint: Option<String>, reply: RpcReplyPort<Result<HostRecord, ControllerError>> },
    /// Remove a host from supervision and from the known hosts (durably).
    RemoveHost(String, RpcReplyPort<Result<(), ControllerError>>),
    /// The published fleet snapshots and change events, for REST readers.
    Subscribe(RpcReplyPort<Subscription>),
}

/// The pull that followed a mutating command, and the command's answer to give once it is merged.
#[derive(Debug)]
pub struct Written {
    pub pull: Pull<ActorRef<ToHost>>,
    pub content: Result<Content, ControllerError>,
    pub ok: CommandOk,
    pub reply: RpcReplyPort<CommandResult>,
}

/// Local only: never crosses nodes.
impl ractor::Message for ControllerMsg {}

/// What a reader of the fleet view holds: the latest snapshot (replaced on every change) and the
/// change events.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub fleet: watch::Receiver<Arc<FleetSnapshot>>,
    pub events: broadcast::Sender<FleetEvent>,
}

impl Link for ActorRef<ToHost> {
    type Id = ractor::ActorId;
    fn id(&self) -> ractor::ActorId {
        self.get_id()
    }
}

/// The read-only half.
pub struct Controller {
    pub config: ControllerConfig,
    pub store: Option<Arc<Store>>,
    pub events: broadcast::Sender<FleetEvent>,
}

/// The mutable half.
pub struct ControllerState {
    view: FleetView<ActorRef<ToHost>>,
    liveness: JoinHandle<()>,
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
        let analysis: Option<AnalysisConfig> = match &self.store {
            Some(s) => s.get(KEY_ANALYSIS)?,
            None => None,
        };
        let limit = self.config.heartbeat * self.config.missed_heartbeats;
        let mut view = FleetView::new(known, window, limit, Instant::now());
        view.set_analysis(analysis.unwrap_or_default());
        let liveness = myself.send_interval(self.config.heartbeat / 2, || ControllerMsg::Liveness);
        let (snapshot, _) = watch::channel(Arc::new(FleetSnapshot::default()));
        let mut state = ControllerState { view, liveness, node: None, snapshot };
        Self::publish(&mut state);
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
                | ControllerMsg::Command { .. }
                | ControllerMsg::Stats(_)
                | ControllerMsg::Subscribe(_)
        );
        match msg {
            ControllerMsg::Register { host, manager } => self.register(&myself, state, &host, manager),
            ControllerMsg::LinkDown { host, link } => self.link_down(state, &host, &link),
            ControllerMsg::Notice(n) => close_after(&myself, state.view.notice(&n, Instant::now())),
            ControllerMsg::Heartbeat(hb) => self.heartbeat(&myself, state, &hb),
            ControllerMsg::CloseWindow => self.close_window(&myself, state),
            ControllerMsg::Pulled { pull, content } => self.pulled(state, &pull, content),
            ControllerMsg::Liveness => self.liveness(state),
            ControllerMsg::Fleet(reply) => {
                let _ = reply.send(state.view.fleet());
            }
            ControllerMsg::Command { host, cmd, reply } => self.command(&myself, state, &host, cmd, reply),
            ControllerMsg::Written(w) => {
                let Written { pull, content, ok, reply } = *w;
                let res = self.written(state, &pull, content).map(|()| ok);
                Self::answer(state, reply, res);
            }
            ControllerMsg::SetAggregation(d, reply) => {
                let res = self.set_aggregation(state, d);
                Self::answer(state, reply, res);
            }
            ControllerMsg::SetAnalysis(a, reply) => {
                let res = self.set_analysis(state, a);
                Self::answer(state, reply, res);
            }
            ControllerMsg::Stats(reply) => {
                let _ = reply.send(state.view.stats(Instant::now()));
            }
            ControllerMsg::AttachNode(node) => state.node = Some(node),
            ControllerMsg::AddHost { host, endpoint, reply } => {
                let res = self.add_host(state, &host, endpoint);
                Self::answer(state, reply, res);
            }
            ControllerMsg::RemoveHost(host, reply) => {
                let res = self.remove_host(state, &host);
                Self::answer(state, reply, res);
            }
            ControllerMsg::Subscribe(reply) => {
                let fleet = state.snapshot.subscribe();
                let _ = reply.send(Subscription { fleet, events: self.events.clone() });
            }
        }
        if !read_only {
            Self::publish(state);
        }
        Ok(())
    }
}

/// Schedules the end of the aggregation window, when a notice opened one.
fn close_after(myself: &ActorRef<ControllerMsg>, delay: Option<Duration>) {
    if let Some(delay) = delay {
        myself.send_after(delay, || ControllerMsg::CloseWindow);
    }
}

impl Controller {
    fn register(&self, myself: &ActorRef<ControllerMsg>, state: &mut ControllerState, host: &str, m: ActorRef<ToHost>) {
        tracing::info!(host = %host, "host registered");
        let changes = state.view.register(host, m, Instant::now(), OffsetDateTime::now_utc());
        if changes.persist_known {
            let _ = self.save_known(state.view.known_hosts());
        }
        // a host that was away when the analysis settings changed gets them now
        if let Ok(pull) = state.view.route(host) {
            self.push_analysis(pull, state.view.analysis());
        }
        self.send(changes.events);
        close_after(myself, changes.close_after);
    }

    fn link_down(&self, state: &mut ControllerState, host: &str, link: &ractor::ActorId) {
        if let Some(event) = state.view.link_down(host, link) {
            tracing::warn!(host = %host, "host offline: its session dropped");
            self.send(vec![event]);
        }
    }

    fn heartbeat(&self, myself: &ActorRef<ControllerMsg>, state: &mut ControllerState, hb: &Heartbeat) {
        let changes = state.view.heartbeat(hb, Instant::now(), OffsetDateTime::now_utc());
        if !changes.events.is_empty() {
            tracing::info!(host = %hb.host, "host online");
        }
        self.send(changes.events);
        close_after(myself, changes.close_after);
    }

    /// Pulls every host that announced an update, each in its own task.
    fn close_window(&self, myself: &ActorRef<ControllerMsg>, state: &mut ControllerState) {
        for pull in state.view.close_window(Instant::now()) {
            let (me, timeout) = (myself.clone(), self.config.call_timeout);
            tokio::spawn(async move {
                let content = pull_host(&pull, timeout).await;
                let _ = me.cast(ControllerMsg::Pulled { pull, content });
            });
        }
    }

    fn pulled(
        &self,
        state: &mut ControllerState,
        pull: &Pull<ActorRef<ToHost>>,
        content: Result<Content, ControllerError>,
    ) {
        match state.view.pulled(&pull.host, pull.epoch, content, Instant::now()) {
            Ok((merge, events)) => self.merged(&pull.host, merge, events),
            Err(e) => tracing::warn!(host = %pull.host, error = %e.chain(), "pull failed"),
        }
    }

    /// Sends the events of a merge and says what was unusual about it.
    fn merged(&self, host: &str, merge: Merge, events: Vec<FleetEvent>) {
        match merge {
            Merge::AppliedNextFull => tracing::warn!(host = %host, "patch of an unknown container; next pull is full"),
            Merge::Older => tracing::debug!(host = %host, "content older than the view: dropped"),
            Merge::OtherLink => tracing::debug!(host = %host, "content of a replaced link: dropped"),
            Merge::Applied => {}
        }
        self.send(events);
    }

    /// Routes a command to its host in a task; a mutating one is followed by a pull of the host,
    /// reported back as [`ControllerMsg::Written`].
    fn command(
        &self,
        myself: &ActorRef<ControllerMsg>,
        state: &ControllerState,
        host: &str,
        cmd: Command,
        reply: RpcReplyPort<CommandResult>,
    ) {
        let pull = match state.view.route(host) {
            Ok(pull) => pull,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let (me, timeout) = (myself.clone(), self.config.call_timeout);
        tokio::spawn(async move {
            let deadline = Instant::now() + timeout;
            let mutating = cmd.changes_records();
            let res = ask_host(&pull.manager, &pull.host, |r| ToHost::Command(Wire::new(cmd), r), timeout).await;
            let res =
                res.and_then(|r| r.map_err(|source| ControllerError::Refused { host: pull.host.clone(), source }));
            match res {
                Ok(ok) if mutating => {
                    let left = deadline.saturating_duration_since(Instant::now()).max(MIN_PULL_TIMEOUT);
                    let content = pull_host(&pull, left).await;
                    let _ = me.cast(ControllerMsg::Written(Box::new(Written { pull, content, ok, reply })));
                }
                other => {
                    let _ = reply.send(other);
                }
            }
        });
    }

    /// Merges the pull that followed a mutating command. The command took effect on its host
    /// either way; an error here says the view could not follow it.
    fn written(
        &self,
        state: &mut ControllerState,
        pull: &Pull<ActorRef<ToHost>>,
        content: Result<Content, ControllerError>,
    ) -> Result<(), ControllerError> {
        let unconfirmed = |source| ControllerError::Unconfirmed { host: pull.host.clone(), source: Box::new(source) };
        let (merge, events) = state.view.pulled_after_command(pull, content).map_err(unconfirmed)?;
        self.merged(&pull.host, merge, events);
        match merge {
            Merge::OtherLink => Err(unconfirmed(ControllerError::Dropped(pull.host.clone()))),
            Merge::Applied | Merge::AppliedNextFull | Merge::Older => Ok(()),
        }
    }

    fn add_host(
        &self,
        state: &mut ControllerState,
        host: &str,
        endpoint: Option<String>,
    ) -> Result<HostRecord, ControllerError> {
        if let Some(known) = state.view.known_with(host, endpoint.as_deref())? {
            self.save_known(&known)?;
        }
        let (record, event) = state.view.add_host(host, endpoint, Instant::now())?;
        self.send(vec![event]);
        self.dial_due(state);
        Ok(record)
    }

    fn remove_host(&self, state: &mut ControllerState, host: &str) -> Result<(), ControllerError> {
        if let Some(known) = state.view.known_without(host)? {
            self.save_known(&known)?;
        }
        let event = state.view.remove_host(host)?;
        tracing::info!(host = %host, "host removed from supervision");
        self.send(vec![event]);
        Ok(())
    }

    fn set_aggregation(&self, state: &mut ControllerState, d: Duration) -> Result<(), ControllerError> {
        super::error::check_aggregation(d)?;
        if let Some(store) = &self.store {
            let stored = store.put(KEY_AGGREGATION_MS, &(d.as_millis() as u64));
            stored.map_err(|source| {
                self.storage_failed(ControllerError::Storage { what: "aggregation", source: Box::new(source) })
            })?;
        }
        state.view.set_aggregation(d)?;
        tracing::info!(aggregation_ms = d.as_millis() as u64, "aggregation changed");
        Ok(())
    }

    fn set_analysis(&self, state: &mut ControllerState, a: AnalysisConfig) -> Result<(), ControllerError> {
        if let Some(store) = &self.store {
            store.put(KEY_ANALYSIS, &a).map_err(|source| {
                self.storage_failed(ControllerError::Storage { what: "analysis settings", source: Box::new(source) })
            })?;
        }
        state.view.set_analysis(a);
        tracing::info!(
            enabled = a.enabled,
            method = a.method.name(),
            dd = a.dd,
            window = a.window,
            "analysis settings changed"
        );
        for pull in state.view.online_links() {
            self.push_analysis(pull, a);
        }
        Ok(())
    }

    /// Sends the analysis settings to one host (in a task: a slow host holds nothing up; one
    /// that misses them gets them when it registers again).
    fn push_analysis(&self, pull: Pull<ActorRef<ToHost>>, a: AnalysisConfig) {
        let timeout = self.config.call_timeout;
        tokio::spawn(async move {
            let cmd = Command::SetAnalysis(a);
            let res = ask_host(&pull.manager, &pull.host, |r| ToHost::Command(Wire::new(cmd), r), timeout).await;
            match res {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(host = %pull.host, error = %e, "the host refused the analysis settings"),
                Err(e) => tracing::warn!(host = %pull.host, error = %e, "cannot send the analysis settings"),
            }
        });
    }

    fn save_known(&self, known: &BTreeMap<String, super::known_hosts::KnownHost>) -> Result<(), ControllerError> {
        let Some(store) = &self.store else { return Ok(()) };
        let stored = store.put(KEY_KNOWN_HOSTS, known);
        stored.map_err(|source| {
            self.storage_failed(ControllerError::Storage { what: "known hosts", source: Box::new(source) })
        })
    }

    fn storage_failed(&self, e: ControllerError) -> ControllerError {
        tracing::error!(error = %e.chain(), "storage failed");
        e
    }

    /// Dials the known hosts with an endpoint that are not online (cluster mode), with back-off.
    fn dial_due(&self, state: &mut ControllerState) {
        let Some(node) = &state.node else { return };
        for (host, endpoint) in state.view.due_dials(Instant::now(), rand::random::<f64>()) {
            let node = node.clone();
            tokio::spawn(async move {
                if let Err(e) = ractor_cluster::client_connect(&node, endpoint.as_str()).await {
                    tracing::debug!(host = %host, endpoint = %endpoint, error = ?e, "cannot dial host");
                }
            });
        }
    }

    /// Dials who is due and marks hosts offline after the configured number of missed heartbeats.
    fn liveness(&self, state: &mut ControllerState) {
        self.dial_due(state);
        let events = state.view.liveness(Instant::now());
        for e in &events {
            if let FleetEvent::Host { host } = e {
                tracing::warn!(host = %host.name, "host offline: heartbeats missed");
            }
        }
        self.send(events);
    }

    fn send(&self, events: Vec<FleetEvent>) {
        for e in events {
            let _ = self.events.send(e);
        }
    }

    /// Publishes the view to REST readers when it changed.
    fn publish(state: &mut ControllerState) {
        let current = state.snapshot.borrow().clone();
        if let Some(next) = state.view.snapshot(&current) {
            state.snapshot.send_replace(Arc::new(next));
        }
    }

    /// Publishes what the request changed, then answers it: the answer never overtakes the
    /// snapshot.
    fn answer<T>(state: &mut ControllerState, reply: RpcReplyPort<T>, value: T) {
        Self::publish(state);
        let _ = reply.send(value);
    }
}

/// Pulls a host's content, with a timeout.
async fn pull_host(pull: &Pull<ActorRef<ToHost>>, timeout: Duration) -> Result<Content, ControllerError> {
    ask_host(&pull.manager, &pull.host, |r| ToHost::Pull(Wire::new(pull.request), r), timeout).await
}

/// Asks a host's link, with a timeout; every way it can fail is a [`ControllerError`].
async fn ask_host<T: Send + 'static>(
    manager: &ActorRef<ToHost>,
    host: &str,
    msg: impl FnOnce(RpcReplyPort<Wire<T>>) -> ToHost,
    timeout: Duration,
) -> Result<T, ControllerError> {
    match manager.call(msg, Some(timeout)).await {
        Ok(CallResult::Success(frame)) => {
            frame.open().map_err(|source| ControllerError::Malformed { host: host.to_owned(), source })
        }
        Ok(CallResult::Timeout) => Err(ControllerError::Timeout(host.to_owned())),
        Ok(CallResult::SenderError) | Err(_) => Err(ControllerError::Dropped(host.to_owned())),
    }
}
