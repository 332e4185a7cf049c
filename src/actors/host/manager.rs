//! `HostManager`: watches every in-scope container of the local engine and heals it.
//!
//! It folds engine events, listings and probe windows into [`HostState`], asks its [`Healing`]
//! strategy for a [`Plan`] and carries plans out: restarts run in spawned tasks
//! ([`Engine`]) whose outcome comes back as a message, retries are messages scheduled to
//! itself. It never waits inside a handler, and it keeps healing whether or not a controller is
//! attached. Its children (probes, antagonist) and what happens when they die are drawn in
//! [`super`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::analysis::AnalysisStore;
use super::antagonist_child::AntagonistChild;
use super::commands;
use super::engine::{Engine, Inspection, RestartJob, RestartOutcome};
use super::healing::{self, AfterRestart, Healing, Moment};
use super::probe::{Monitor, WindowReport};
use super::probes::Probes;
use super::series::SeriesStore;
use super::state::{EventEffect, HostState, Plan};
use super::upstream::Upstream;
use crate::actors::protocol::{Command, CommandError, CommandOk, CommandReply, Content, PullRequest, ToController};
use crate::config::ManagerConfig;
use crate::model::{ContainerRecord, ObservedContainer, short_id};
use crate::probe::Prober;
use crate::runtime::watch::{self, Watched};
use crate::runtime::{ContainerRuntime, RuntimeError, RuntimeEvent};
use crate::store::Store;

pub use super::engine::RESTARTS_IN_FLIGHT;

/// Messages of the host manager.
#[derive(Debug)]
pub enum HostMsg {
    /// The event watcher (re)connected, or saw an event.
    Watched(Watched),
    /// Periodic full listing.
    Resync,
    /// A listing finished.
    Listed(Result<Vec<ObservedContainer>, RuntimeError>),
    /// An inspection finished (`None`: the container is gone).
    Inspected { id: String, obs: Inspection },
    /// A probe window ended.
    Window(WindowReport),
    /// Decide again for one container (scheduled retries and quarantine expiry).
    Reconcile(String),
    /// A restart ended; `obs` is the container inspected afterwards.
    RestartDone { id: String, error: Option<RuntimeError>, obs: Inspection },
    /// Spawn the probe of a container again after it failed.
    RespawnProbe(String),
    /// Send a heartbeat to the controller.
    Heartbeat,
    /// The controller pulls this host's content.
    Pull(PullRequest, RpcReplyPort<Content>),
    /// A command routed by the controller.
    Command(Command, RpcReplyPort<CommandReply>),
    /// Attach (or detach) the controller.
    SetController(Option<ActorRef<ToController>>),
    /// Every container record (local queries and tests).
    Records(RpcReplyPort<Vec<ContainerRecord>>),
    /// Spawn the antagonist again after it died.
    RespawnAntagonist,
}

/// Local only: never crosses nodes.
impl ractor::Message for HostMsg {}

/// The read-only half: edges and configuration.
pub struct HostManager {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub prober: Arc<dyn Prober>,
    pub monitor: Monitor,
    pub config: ManagerConfig,
    pub store: Option<Arc<Store>>,
}

/// Start-up arguments.
pub struct ManagerArgs {
    pub controller: Option<ActorRef<ToController>>,
}

/// The mutable half.
pub struct ManagerState {
    host: HostState,
    /// How this manager heals: picked from `config.heal` once, at start-up.
    healing: Box<dyn Healing>,
    probes: Probes,
    /// Every monitored container's recent signals.
    series: SeriesStore,
    /// Detection and identification over those signals.
    analysis: AnalysisStore,
    engine: Engine,
    /// Containers touched by the current message.
    dirty: BTreeSet<String>,
    upstream: Upstream,
    tasks: Vec<JoinHandle<()>>,
    antagonist: AntagonistChild,
    /// When a held host-wide loss was last logged.
    host_wide_warned: Option<Instant>,
}

/// How often a held host-wide loss is logged while it lasts.
const HOST_WIDE_WARN_EVERY: Duration = Duration::from_secs(10);

impl Actor for HostManager {
    type Msg = HostMsg;
    type State = ManagerState;
    type Arguments = ManagerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<HostMsg>,
        args: ManagerArgs,
    ) -> Result<ManagerState, ActorProcessingErr> {
        let c = &self.config;
        let host = commands::load(c, self.store.as_deref())?;
        let healing = healing::for_mode(c.heal, &c.policy);
        let mut tasks = vec![
            myself.send_interval(c.resync, || HostMsg::Resync),
            myself.send_interval(c.heartbeat, || HostMsg::Heartbeat),
        ];
        if healing.watches_events() {
            let me = myself.clone();
            tasks.push(watch::spawn(self.runtime.clone(), move |w| me.cast(HostMsg::Watched(w)).is_ok()));
        } else {
            myself.cast(HostMsg::Resync)?; // no event stream to start from
        }
        let me = myself.clone();
        let report = Arc::new(move |w| me.cast(HostMsg::Window(w)).is_ok());
        let mut state = ManagerState {
            host,
            healing,
            probes: Probes::new(
                self.prober.clone(),
                c.monitor.then(|| self.monitor.clone()),
                c.window,
                c.response,
                c.probe_period,
                report,
            ),
            series: SeriesStore::new(c.probe_period, self.monitor.sensors.clone()),
            analysis: {
                let mut a = AnalysisStore::new(c.analysis);
                if let Some(dir) = c.record.as_deref().filter(|_| c.monitor) {
                    a.record_to(dir, &c.name);
                }
                a
            },
            engine: Engine::new(self.runtime.clone(), c.select.clone(), c.stop_timeout),
            dirty: Default::default(),
            upstream: Upstream::default(),
            tasks,
            antagonist: AntagonistChild::default(),
            host_wide_warned: None,
        };
        state.upstream.attach(args.controller);
        self.spawn_antagonist(&myself, &mut state).await;
        Ok(state)
    }

    async fn post_stop(&self, _myself: ActorRef<HostMsg>, state: &mut ManagerState) -> Result<(), ActorProcessingErr> {
        state.tasks.iter().for_each(JoinHandle::abort);
        state.antagonist.stop().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<HostMsg>,
        msg: HostMsg,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        let version_before = state.host.version;
        match msg {
            HostMsg::Watched(Watched::Resync) | HostMsg::Resync => Self::list(&myself, state),
            HostMsg::Watched(Watched::Event(ev)) => self.on_event(&myself, state, &ev),
            HostMsg::Listed(res) => self.on_listed(&myself, state, res),
            HostMsg::Inspected { id, obs } => self.on_inspected(&myself, state, &id, obs),
            HostMsg::Window(w) => self.on_window(&myself, state, &w),
            HostMsg::Reconcile(id) => self.reconcile(&myself, state, &id),
            HostMsg::RestartDone { id, error, obs } => {
                self.on_restart_done(&myself, state, RestartOutcome { id, error, obs })
            }
            HostMsg::RespawnProbe(id) => {
                state.probes.respawn_due(&id);
                self.changed(state, [&id]);
            }
            HostMsg::Heartbeat => {
                state.analysis.on_tick(&state.host.name);
                let signals = state.series.host_signals();
                state.upstream.heartbeat(&state.host.name, state.host.version, signals);
            }
            HostMsg::Pull(req, reply) => Self::pull(state, req, reply),
            HostMsg::Command(cmd, reply) => self.command(&myself, state, cmd, reply),
            HostMsg::SetController(c) => state.upstream.attach(c),
            HostMsg::Records(reply) => drop(reply.send(state.host.records(Instant::now()))),
            HostMsg::RespawnAntagonist => self.spawn_antagonist(&myself, state).await,
        }
        self.finish(&myself, state, version_before).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<HostMsg>,
        evt: SupervisionEvent,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        if state.antagonist.is(evt.actor_id()) && !matches!(evt, SupervisionEvent::ActorStarted(_)) {
            tracing::warn!(host = %self.config.name, "antagonist exited: spawning an idle one");
            state.antagonist.exited();
            myself.send_after(Duration::from_secs(1), || HostMsg::RespawnAntagonist);
            return Ok(());
        }
        let exited = match &evt {
            SupervisionEvent::ActorFailed(cell, err) => state.probes.exited(cell, &err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                state.probes.exited(cell, reason.as_deref().unwrap_or("terminated"))
            }
            _ => None,
        };
        if let Some((id, delay)) = exited {
            myself.send_after(delay, move || HostMsg::RespawnProbe(id));
        }
        Ok(())
    }
}

impl HostManager {
    fn list(myself: &ActorRef<HostMsg>, state: &ManagerState) {
        let me = myself.clone();
        state.engine.list(move |res| drop(me.cast(HostMsg::Listed(res))));
    }

    fn on_listed(
        &self,
        myself: &ActorRef<HostMsg>,
        state: &mut ManagerState,
        res: Result<Vec<ObservedContainer>, RuntimeError>,
    ) {
        let listed = match res {
            Ok(listed) => listed,
            Err(e) => return tracing::warn!(host = %self.config.name, error = %e, "listing containers failed"),
        };
        let now = Instant::now();
        let gone = state.host.sync(listed, now);
        let ids: Vec<String> = state.host.containers.keys().cloned().collect();
        for id in &ids {
            self.reconcile_quiet(myself, state, id);
        }
        self.changed(state, ids.iter().chain(&gone));
    }

    fn on_event(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, ev: &RuntimeEvent) {
        tracing::debug!(container.id = %short_id(&ev.id), kind = ?ev.kind, "docker event");
        match state.host.on_event(ev, Instant::now()) {
            EventEffect::Reconcile(id) => self.reconcile(myself, state, &id),
            EventEffect::Inspect(id) => {
                let me = myself.clone();
                state.engine.inspect(id.clone(), move |id, obs| drop(me.cast(HostMsg::Inspected { id, obs })));
                self.changed(state, [&id]);
            }
            EventEffect::Nothing => self.changed(state, [&ev.id]),
        }
    }

    fn on_inspected(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, id: &str, obs: Inspection) {
        match obs {
            Ok(Some(obs)) => state.host.observe(obs, Instant::now()),
            Ok(None) => state.host.remove(id),
            Err(e) => return tracing::warn!(container.id = %short_id(id), error = %e, "inspect failed"),
        }
        self.reconcile(myself, state, id);
    }

    /// Carries out what the strategy makes of a window: the plan, then a confirmation window.
    fn on_window(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, w: &WindowReport) {
        state.probes.window_seen(&w.id);
        if let Some(t) = state.host.containers.get_mut(&w.id).filter(|_| self.config.monitor) {
            let started = time::OffsetDateTime::now_utc() - Instant::now().saturating_duration_since(w.started);
            state.series.record(&w.id, started, &w.signals, w.stats.loss());
            let shown = t.shown.follow(&w.signals);
            t.signals = Some(w.signals);
            let moved = shown != t.shown;
            t.shown = shown;
            let judged = state.analysis.on_period(&mut state.host, &w.id, &w.signals, started);
            if moved {
                self.changed(state, [&w.id]);
            }
            self.changed(state, judged);
        }
        let at = Moment::now();
        let effect = state.healing.on_window(&mut state.host, w, &at);
        if let Some(plan) = effect.judged {
            self.carry_out(myself, state, &w.id, plan, at.now);
            self.changed(state, [&w.id]);
        }
        if effect.confirm_now {
            state.probes.confirm(&w.id);
        }
    }

    /// Decides for one container, carries the plan out, publishes the change.
    fn reconcile(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, id: &str) {
        self.reconcile_quiet(myself, state, id);
        self.changed(state, [id]);
    }

    fn reconcile_quiet(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, id: &str) {
        let at = Moment::now();
        let plan = state.healing.plan(&mut state.host, id, &at);
        self.carry_out(myself, state, id, plan, at.now);
    }

    fn carry_out(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, id: &str, plan: Plan, now: Instant) {
        match plan {
            Plan::Nothing => {}
            Plan::Act { op, reason, attempt, down_for } => {
                let job = RestartJob { id, op, reason: reason.as_str(), attempt, down_for };
                let me = myself.clone();
                state.engine.restart(job, move |out| {
                    let _ = me.cast(HostMsg::RestartDone { id: out.id, error: out.error, obs: out.obs });
                });
            }
            Plan::RetryAfter(delay) => {
                tracing::info!(container.id = %short_id(id), delay_ms = delay.as_millis() as u64, "restart backing off");
                Self::schedule_reconcile(myself, id, delay);
            }
            Plan::HeldHostWide { lossy, probed } => {
                let now = Instant::now();
                if state.host_wide_warned.is_none_or(|at| now >= at + HOST_WIDE_WARN_EVERY) {
                    state.host_wide_warned = Some(now);
                    tracing::warn!(
                        lossy,
                        probed,
                        "loss on most containers at once: the host's, not theirs; loss restarts held"
                    );
                }
            }
            Plan::Quarantined { until } => {
                tracing::warn!(container.id = %short_id(id), max_restarts = self.config.policy.max_restarts(), "container quarantined");
                Self::schedule_reconcile(myself, id, until.saturating_duration_since(now));
            }
        }
    }

    fn schedule_reconcile(myself: &ActorRef<HostMsg>, id: &str, delay: Duration) {
        let id = id.to_owned();
        myself.send_after(delay, move || HostMsg::Reconcile(id));
    }

    fn on_restart_done(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, out: RestartOutcome) {
        let (id, now) = (out.id.as_str(), Instant::now());
        match out.obs {
            Ok(obs) => state.host.restart_done(id, obs, now),
            Err(e) => {
                tracing::warn!(container.id = %short_id(id), error = %e, "inspect after restart failed");
                state.host.restart_done_unknown(id);
            }
        }
        match state.healing.after_restart(out.error.is_some()) {
            AfterRestart::NextSweep => self.changed(state, [id]),
            AfterRestart::Reconcile { retry } => {
                if let Some(delay) = retry {
                    Self::schedule_reconcile(myself, id, delay);
                }
                self.reconcile(myself, state, id);
            }
        }
    }

    /// Marks containers whose record or probe may have changed; `finish` acts on them.
    fn changed<S: AsRef<str>>(&self, state: &mut ManagerState, ids: impl IntoIterator<Item = S>) {
        state.dirty.extend(ids.into_iter().map(|id| id.as_ref().to_owned()));
    }

    /// After every message: re-derive dirty records, align probes, notify the controller.
    async fn finish(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, version_before: u64) {
        let now = Instant::now();
        let dirty: Vec<String> = std::mem::take(&mut state.dirty).into_iter().collect();
        for id in &dirty {
            if !state.host.containers.contains_key(id) {
                state.series.forget(id);
                state.analysis.forget(&state.host.name, id, time::OffsetDateTime::now_utc());
            }
            state.host.touch(id, now);
            let wanted = state.host.probe_target(id);
            if let Some(delay) = state.probes.sync(id, wanted, myself).await {
                let id = id.clone();
                myself.send_after(delay, move || HostMsg::RespawnProbe(id));
            }
        }
        if state.host.version != version_before {
            state.upstream.notify(&state.host.name, state.host.version);
            state.antagonist.send_targets(&state.host, &dirty);
        }
    }

    /// Spawns the (idle) antagonist as a linked child.
    async fn spawn_antagonist(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState) {
        let (rt, setup) = (self.runtime.clone(), &self.config.antagonist);
        let sensors = self.monitor.sensors.clone();
        state.antagonist.spawn(&state.host, rt, setup, sensors, myself.get_cell()).await;
    }

    /// Forwards antagonist commands; applies (and persists) the manager's own.
    fn command(
        &self,
        myself: &ActorRef<HostMsg>,
        state: &mut ManagerState,
        cmd: Command,
        reply: RpcReplyPort<CommandReply>,
    ) {
        if cmd.is_antagonist() {
            return state.antagonist.forward(cmd, reply);
        }
        if let Command::Anomalies { since, open } = &cmd {
            let since = since.as_deref().map(crate::antagonist::truth::parse_time).transpose();
            let res = since
                .map(|since| CommandOk { anomalies: Some(state.analysis.list(since, *open)), ..CommandOk::default() })
                .map_err(|e| CommandError::Invalid(format!("since: {e}")));
            let _ = reply.send(res);
            return;
        }
        if let Command::SetAnalysis(config) = &cmd {
            let changed = state.analysis.configure(&mut state.host, config.settings(), time::OffsetDateTime::now_utc());
            self.changed(state, changed.iter());
            let _ = reply.send(Ok(CommandOk::default()));
            return;
        }
        if let Command::Series { container, since, last } = &cmd {
            let series = state.series.answer(&state.host, container, since.as_deref(), *last);
            let _ = reply.send(series.map(|s| CommandOk { series: Some(s), ..CommandOk::default() }));
            return;
        }
        let res = commands::apply(&mut state.host, self.store.as_deref(), &cmd, Instant::now());
        let res = res.inspect(|id| {
            if let Some(id) = id {
                self.changed(state, [id]);
                self.reconcile_quiet(myself, state, id);
            } else {
                let all: Vec<String> = state.host.containers.keys().cloned().collect();
                self.changed(state, &all);
            }
        });
        let now = Instant::now();
        let out = res
            .map(|id| CommandOk { container: id.and_then(|id| state.host.record(&id, now)), ..CommandOk::default() });
        let _ = reply.send(out);
    }

    fn pull(state: &mut ManagerState, req: PullRequest, reply: RpcReplyPort<Content>) {
        state.upstream.pulled();
        let since = state.healing.answer_from(req.since);
        let _ = reply.send(state.host.content(since));
    }
}
