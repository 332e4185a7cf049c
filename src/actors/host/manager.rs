//! `HostManager`: watches every in-scope container of the local engine and heals it.
//!
//! It folds engine events, listings and probe windows into [`HostState`], asks it for a
//! [`Plan`] and carries plans out: restarts run in spawned tasks whose outcome comes back as a
//! message, retries are messages scheduled to itself. It never waits inside a handler, and it
//! keeps healing whether or not a controller is attached.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::antagonist::{Antagonist, AntagonistMsg};
use super::probe::{PHASES, ProbeActor, ProbeArgs, ProbeMsg, WindowReport, epoch, phase_start};
use super::state::{EventEffect, HostState, Plan, RestartOp};
use crate::actors::protocol::ToController;
use crate::actors::protocol::wire::Wire;
use crate::actors::protocol::{
    Command, CommandError, CommandOk, CommandReply, Content, Heartbeat, PullRequest, UpdateNotice,
};
use crate::antagonist::exec::Target;
use crate::antagonist::inject::SystemInjector;
use crate::config::{HealMode, ManagerConfig};
use crate::model::{ContainerRecord, ObservedContainer, short_id};
use crate::policy::Backoff;
use crate::probe::{Prober, WindowStats};
use crate::runtime::watch::{self, Watched};
use crate::runtime::{ContainerRuntime, RuntimeEvent};
use crate::store::Store;

const KEY_THRESHOLD: &str = "threshold";
const KEY_IGNORED: &str = "ignored";
const KEY_MONITORED: &str = "monitored";

/// Messages of the host manager.
#[derive(Debug)]
pub enum HostMsg {
    /// The event watcher (re)connected, or saw an event.
    Watched(Watched),
    /// Periodic full listing.
    Resync,
    /// A listing finished.
    Listed(Result<Vec<ObservedContainer>, String>),
    /// An inspection finished (`None`: the container is gone).
    Inspected { id: String, obs: Result<Option<ObservedContainer>, String> },
    /// A probe window ended.
    Window(WindowReport),
    /// Decide again for one container (scheduled retries and quarantine expiry).
    Reconcile(String),
    /// A restart ended; `obs` is the container inspected afterwards.
    RestartDone { id: String, error: Option<String>, obs: Result<Option<ObservedContainer>, String> },
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
    pub config: ManagerConfig,
    pub store: Option<Arc<Store>>,
}

/// Start-up arguments.
pub struct ManagerArgs {
    pub controller: Option<ActorRef<ToController>>,
}

struct ProbeSlot {
    actor: ActorRef<ProbeMsg>,
    ip: Option<std::net::IpAddr>,
}

/// The mutable half.
pub struct ManagerState {
    host: HostState,
    probes: HashMap<String, ProbeSlot>,
    probe_failures: HashMap<String, u32>,
    /// Containers whose probe is waiting for its back-off before being spawned again.
    respawn_pending: std::collections::HashSet<String>,
    /// Containers touched by the current message.
    dirty: std::collections::BTreeSet<String>,
    controller: Option<ActorRef<ToController>>,
    /// A notice was sent and not yet answered by a pull.
    notice_pending: bool,
    tasks: Vec<JoinHandle<()>>,
    antagonist: Option<ActorRef<AntagonistMsg>>,
    /// The targets last sent to the antagonist (`None`: none sent yet).
    targets: Option<Vec<Target>>,
    /// Restarts of this host in flight at once (the engine starts few containers well at a time).
    restart_slots: Arc<Semaphore>,
    /// When a held host-wide loss was last logged.
    host_wide_warned: Option<Instant>,
}

/// Restarts a manager runs at once; more wait their turn (each still one per container). A
/// thousand at once took a Docker daemon down on a 2-core machine.
pub const RESTARTS_IN_FLIGHT: usize = 8;
/// Back-off of re-spawning a probe actor that died: 100 ms doubling to 10 s.
const PROBE_RESPAWN: Backoff = Backoff::constant(Duration::from_millis(100), Duration::from_secs(10), 0.0);
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
        let host = self.load_host_state()?;
        let mut tasks = vec![
            myself.send_interval(self.config.resync, || HostMsg::Resync),
            myself.send_interval(self.config.heartbeat, || HostMsg::Heartbeat),
        ];
        if self.config.heal == HealMode::Seed {
            myself.cast(HostMsg::Resync)?; // the seed polls: no event stream
        } else {
            let me = myself.clone();
            tasks.push(watch::spawn(self.runtime.clone(), move |w| me.cast(HostMsg::Watched(w)).is_ok()));
        }
        let mut state = ManagerState {
            host,
            probes: HashMap::new(),
            probe_failures: HashMap::new(),
            respawn_pending: Default::default(),
            dirty: Default::default(),
            controller: None,
            notice_pending: false,
            tasks,
            antagonist: None,
            targets: None,
            restart_slots: Arc::new(Semaphore::new(RESTARTS_IN_FLIGHT)),
            host_wide_warned: None,
        };
        Self::attach(&mut state, args.controller);
        self.spawn_antagonist(&myself, &mut state).await;
        Ok(state)
    }

    async fn post_stop(&self, _myself: ActorRef<HostMsg>, state: &mut ManagerState) -> Result<(), ActorProcessingErr> {
        state.tasks.iter().for_each(JoinHandle::abort);
        if let Some(a) = state.antagonist.take() {
            let _ = a.stop_and_wait(None, Some(Duration::from_secs(2))).await;
        }
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
            HostMsg::Watched(Watched::Resync) | HostMsg::Resync => self.list(&myself),
            HostMsg::Watched(Watched::Event(ev)) => self.on_event(&myself, state, &ev),
            HostMsg::Listed(res) => self.on_listed(&myself, state, res),
            HostMsg::Inspected { id, obs } => self.on_inspected(&myself, state, &id, obs),
            HostMsg::Window(w) => self.on_window(&myself, state, &w.id, w.ip, w.started, w.stats),
            HostMsg::Reconcile(id) => self.reconcile(&myself, state, &id),
            HostMsg::RestartDone { id, error, obs } => self.on_restart_done(&myself, state, &id, error, obs),
            HostMsg::RespawnProbe(id) => {
                state.respawn_pending.remove(&id);
                self.changed(state, [&id]);
            }
            HostMsg::Heartbeat => Self::heartbeat(state),
            HostMsg::Pull(req, reply) => self.pull(state, req, reply),
            HostMsg::Command(cmd, reply) => self.command(&myself, state, cmd, reply),
            HostMsg::SetController(c) => Self::attach(state, c),
            HostMsg::Records(reply) => {
                let now = Instant::now();
                let ids = state.host.containers.keys();
                let _ = reply.send(ids.filter_map(|id| state.host.record(id, now)).collect());
            }
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
        let antagonist = state.antagonist.as_ref().map(|a| a.get_id());
        if evt.actor_id().is_some() && evt.actor_id() == antagonist && !matches!(evt, SupervisionEvent::ActorStarted(_))
        {
            tracing::warn!(host = %self.config.name, "antagonist exited: spawning an idle one");
            state.antagonist = None;
            myself.send_after(Duration::from_secs(1), || HostMsg::RespawnAntagonist);
            return Ok(());
        }
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => self.probe_exited(&myself, state, &cell, &err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                self.probe_exited(&myself, state, &cell, reason.as_deref().unwrap_or("terminated"))
            }
            _ => {}
        }
        Ok(())
    }
}

impl HostManager {
    fn load_host_state(&self) -> Result<HostState, ActorProcessingErr> {
        let c = &self.config;
        let mut host = HostState::new(c.name.clone(), c.threshold, c.confirm, c.select.clone());
        host.loss_evidence = c.probe_period;
        if let Some(store) = &self.store {
            host.threshold = store.get(KEY_THRESHOLD)?.unwrap_or(c.threshold);
            host.ignored = store.get(KEY_IGNORED)?.unwrap_or_default();
            host.monitored = store.get(KEY_MONITORED)?.unwrap_or_default();
        }
        Ok(host)
    }

    /// The controller's registration is the link's business ([`super::host_link`]).
    fn attach(state: &mut ManagerState, controller: Option<ActorRef<ToController>>) {
        state.controller = controller;
        state.notice_pending = false;
    }

    fn list(&self, myself: &ActorRef<HostMsg>) {
        let (rt, me, select) = (self.runtime.clone(), myself.clone(), self.config.select.clone());
        tokio::spawn(async move {
            let res = rt.list(select.as_ref()).await.map_err(|e| e.to_string());
            let _ = me.cast(HostMsg::Listed(res));
        });
    }

    fn inspect(&self, myself: &ActorRef<HostMsg>, id: String) {
        let (rt, me) = (self.runtime.clone(), myself.clone());
        tokio::spawn(async move {
            let obs = rt.inspect(&id).await.map_err(|e| e.to_string());
            let _ = me.cast(HostMsg::Inspected { id, obs });
        });
    }

    fn on_listed(
        &self,
        myself: &ActorRef<HostMsg>,
        state: &mut ManagerState,
        res: Result<Vec<ObservedContainer>, String>,
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
                self.inspect(myself, id.clone());
                self.changed(state, [&id]);
            }
            EventEffect::Nothing => self.changed(state, [&ev.id]),
        }
    }

    fn on_inspected(
        &self,
        myself: &ActorRef<HostMsg>,
        state: &mut ManagerState,
        id: &str,
        obs: Result<Option<ObservedContainer>, String>,
    ) {
        match obs {
            Ok(Some(obs)) => state.host.observe(obs, Instant::now()),
            Ok(None) => state.host.remove(id),
            Err(e) => return tracing::warn!(container.id = %short_id(id), error = %e, "inspect failed"),
        }
        self.reconcile(myself, state, id);
    }

    fn on_window(
        &self,
        myself: &ActorRef<HostMsg>,
        state: &mut ManagerState,
        id: &str,
        ip: std::net::IpAddr,
        started: Instant,
        stats: WindowStats,
    ) {
        state.probe_failures.remove(id);
        if state.host.on_window(id, ip, started, stats.loss()) {
            self.reconcile(myself, state, id);
        }
        // Over the threshold but not confirmed yet: confirm with the next window at once.
        let confirming = state.host.containers.get(id).is_some_and(|t| t.streak > 0 && t.streak < state.host.confirm);
        if confirming
            && self.config.heal != HealMode::Off
            && let Some(slot) = state.probes.get(id)
        {
            let _ = slot.actor.cast(ProbeMsg::Confirm);
        }
    }

    /// Decides for one container, carries the plan out, publishes the change.
    fn reconcile(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, id: &str) {
        self.reconcile_quiet(myself, state, id);
        self.changed(state, [id]);
    }

    fn reconcile_quiet(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, id: &str) {
        if self.config.heal == HealMode::Off {
            return;
        }
        let now = Instant::now();
        let plan = state.host.plan(id, &self.config.policy, now, OffsetDateTime::now_utc(), rand::random());
        match plan {
            Plan::Nothing => {}
            Plan::Act { op, reason, attempt, down_for } => {
                let slots = state.restart_slots.clone();
                self.restart(myself, slots, id, op, reason.as_str(), attempt, down_for);
            }
            Plan::RetryAfter(delay) => {
                tracing::info!(container.id = %short_id(id), delay_ms = delay.as_millis() as u64, "restart backing off");
                self.schedule_reconcile(myself, id, delay);
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
                self.schedule_reconcile(myself, id, until.saturating_duration_since(now));
            }
        }
    }

    fn schedule_reconcile(&self, myself: &ActorRef<HostMsg>, id: &str, delay: Duration) {
        let id = id.to_owned();
        myself.send_after(delay, move || HostMsg::Reconcile(id));
    }

    /// Runs a (re)start in its own task; the outcome comes back as `RestartDone`.
    /// `down_for` (since the engine's `die`) goes into the span as `down_ms`: with `waited_ms`
    /// (for a restart slot) and `took_ms` it splits a shutdown's downtime into our reaction and
    /// the engine's start.
    #[allow(clippy::too_many_arguments)]
    fn restart(
        &self,
        myself: &ActorRef<HostMsg>,
        slots: Arc<Semaphore>,
        id: &str,
        op: RestartOp,
        reason: &str,
        attempt: u64,
        down_for: Option<Duration>,
    ) {
        let (rt, me, id, stop) = (self.runtime.clone(), myself.clone(), id.to_owned(), self.config.stop_timeout);
        let span = tracing::info_span!(
            "restart",
            container.id = %short_id(&id),
            reason,
            attempt,
            op = ?op,
            down_ms = tracing::field::Empty
        );
        if let Some(d) = down_for {
            span.record("down_ms", d.as_millis() as u64);
        }
        tokio::spawn(
            async move {
                // closed never: the semaphore lives as long as the manager's state
                let queued = Instant::now();
                let _slot = slots.acquire_owned().await;
                let started = Instant::now();
                let waited_ms = (started - queued).as_millis() as u64;
                let res = match op {
                    RestartOp::Start => rt.start(&id).await,
                    RestartOp::Restart => rt.restart(&id, stop).await,
                };
                let took_ms = started.elapsed().as_millis() as u64;
                match &res {
                    Ok(()) => tracing::info!(took_ms, waited_ms, "container restarted"),
                    Err(e) => tracing::warn!(took_ms, waited_ms, error = %e, "restart failed"),
                }
                let obs = rt.inspect(&id).await.map_err(|e| e.to_string());
                let _ = me.cast(HostMsg::RestartDone { id, error: res.err().map(|e| e.to_string()), obs });
            }
            .instrument(span),
        );
    }

    fn on_restart_done(
        &self,
        myself: &ActorRef<HostMsg>,
        state: &mut ManagerState,
        id: &str,
        error: Option<String>,
        obs: Result<Option<ObservedContainer>, String>,
    ) {
        let now = Instant::now();
        match obs {
            Ok(obs) => state.host.restart_done(id, obs, now),
            Err(e) => {
                tracing::warn!(container.id = %short_id(id), error = %e, "inspect after restart failed");
                state.host.restart_done_unknown(id);
            }
        }
        if self.config.heal == HealMode::Seed {
            // the seed decides only in its sweep: the next listing looks at this container again
            return self.changed(state, [id]);
        }
        if error.is_some() {
            self.schedule_reconcile(myself, id, Duration::from_millis(100));
        }
        self.reconcile(myself, state, id);
    }

    /// Marks containers whose record or probe may have changed; `finish` acts on them.
    fn changed<S: AsRef<str>>(&self, state: &mut ManagerState, ids: impl IntoIterator<Item = S>) {
        state.dirty.extend(ids.into_iter().map(|id| id.as_ref().to_owned()));
    }

    /// After every message: re-derive dirty records, align probes, notify the controller.
    async fn finish(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, version_before: u64) {
        let now = Instant::now();
        let dirty = std::mem::take(&mut state.dirty);
        for id in &dirty {
            state.host.touch(id, now);
            self.sync_probe(myself, state, id).await;
        }
        if state.host.version != version_before {
            self.notify(state);
            Self::send_targets(state);
        }
    }

    /// Spawns the (idle) antagonist as a linked child.
    async fn spawn_antagonist(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState) {
        let setup = &self.config.antagonist;
        let injector = setup.injector.clone().unwrap_or_else(|| SystemInjector::detect(&setup.table));
        let actor = Antagonist {
            host: self.config.name.clone(),
            runtime: self.runtime.clone(),
            injector,
            log_dir: setup.log_dir.clone(),
        };
        match Actor::spawn_linked(None, actor, Default::default(), myself.get_cell()).await {
            Ok((a, _)) => {
                state.antagonist = Some(a);
                state.targets = None;
                Self::send_targets(state);
            }
            Err(e) => tracing::error!(host = %self.config.name, error = %e, "cannot spawn the antagonist"),
        }
    }

    /// Tells the antagonist the eligible containers (in scope, not ignored) when they changed.
    fn send_targets(state: &mut ManagerState) {
        let Some(a) = &state.antagonist else { return };
        let host = &state.host;
        let targets: Vec<Target> = (host.containers.values().filter(|t| !host.is_ignored(&t.obs)))
            .map(|t| Target::new(t.obs.id.clone(), t.obs.name.clone(), &t.obs.labels, t.obs.ip))
            .collect();
        if state.targets.as_ref() != Some(&targets) {
            let _ = a.cast(AntagonistMsg::Targets(targets.clone()));
            state.targets = Some(targets);
        }
    }

    /// Starts, retargets or stops the probe of one container to match the state.
    async fn sync_probe(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, id: &str) {
        let wanted = state.host.probe_target(id);
        match (wanted, state.probes.get_mut(id)) {
            (None, Some(_)) => {
                if let Some(slot) = state.probes.remove(id) {
                    slot.actor.stop(Some("container no longer monitored".into()));
                }
            }
            (Some(ip), Some(slot)) if slot.ip != ip => {
                slot.ip = ip;
                let _ = slot.actor.cast(ProbeMsg::SetTarget(ip));
            }
            (Some(ip), None) if !state.respawn_pending.contains(id) => self.spawn_probe(myself, state, id, ip).await,
            _ => {}
        }
    }

    async fn spawn_probe(
        &self,
        myself: &ActorRef<HostMsg>,
        state: &mut ManagerState,
        id: &str,
        ip: Option<std::net::IpAddr>,
    ) {
        let actor =
            ProbeActor { prober: self.prober.clone(), spec: self.config.window, period: self.config.probe_period };
        let phase = rand::random::<u32>() % PHASES;
        let first_at = phase_start(epoch(), Instant::now(), self.config.probe_period, phase);
        let me = myself.clone();
        let report = Arc::new(move |w| me.cast(HostMsg::Window(w)).is_ok());
        let args = ProbeArgs { container: id.to_owned(), target: ip, report, first_at };
        match Actor::spawn_linked(None, actor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                state.probes.insert(id.to_owned(), ProbeSlot { actor, ip });
            }
            Err(e) => {
                tracing::error!(container.id = %short_id(id), error = %e, "cannot spawn probe");
                self.respawn_later(myself, state, id);
            }
        }
    }

    /// A probe actor died: spawn it again after a back-off that grows with its failures.
    fn probe_exited(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, cell: &ActorCell, why: &str) {
        let Some(id) = state.probes.iter().find(|(_, s)| s.actor.get_id() == cell.get_id()).map(|(id, _)| id.clone())
        else {
            return;
        };
        state.probes.remove(&id);
        tracing::warn!(container.id = %short_id(&id), reason = why, "probe actor exited");
        self.respawn_later(myself, state, &id);
    }

    fn respawn_later(&self, myself: &ActorRef<HostMsg>, state: &mut ManagerState, id: &str) {
        let failures = state.probe_failures.entry(id.to_owned()).or_default();
        let delay = PROBE_RESPAWN.delay(*failures, 0.0);
        *failures = failures.saturating_add(1);
        state.respawn_pending.insert(id.to_owned());
        let owned = id.to_owned();
        myself.send_after(delay, move || HostMsg::RespawnProbe(owned));
    }

    fn command(
        &self,
        myself: &ActorRef<HostMsg>,
        state: &mut ManagerState,
        cmd: Command,
        reply: RpcReplyPort<CommandReply>,
    ) {
        if cmd.is_antagonist() {
            return match &state.antagonist {
                Some(a) => {
                    let _ = a.cast(AntagonistMsg::Command(cmd, reply));
                }
                None => {
                    let _ = reply.send(Err(CommandError::Conflict("the antagonist is restarting".to_owned())));
                }
            };
        }
        let res = self.apply_command(state, &cmd);
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

    /// Applies a command to the state and persists it; returns the affected container.
    fn apply_command(&self, state: &mut ManagerState, cmd: &Command) -> Result<Option<String>, CommandError> {
        let host = &mut state.host;
        let (id, key) = match cmd {
            Command::SetThreshold(t) => {
                host.threshold = t.get();
                (None, KEY_THRESHOLD)
            }
            Command::Ignore(q) => (Some(host.ignore(q)?), KEY_IGNORED),
            Command::Monitor(q) => (Some(host.monitor(q, Instant::now())?), KEY_MONITORED),
            other => return Err(CommandError::Invalid(format!("not a manager command: {other:?}"))),
        };
        tracing::info!(host = %host.name, command = ?cmd, "command applied");
        self.persist(host, key).map_err(|e| CommandError::Storage(e.to_string()))?;
        Ok(id)
    }

    fn persist(&self, host: &HostState, key: &str) -> Result<(), crate::store::StoreError> {
        let Some(store) = &self.store else { return Ok(()) };
        match key {
            KEY_THRESHOLD => store.put(KEY_THRESHOLD, &host.threshold),
            _ => {
                store.put(KEY_IGNORED, &host.ignored)?;
                store.put(KEY_MONITORED, &host.monitored)
            }
        }
    }

    fn notify(&self, state: &mut ManagerState) {
        let Some(c) = &state.controller else { return };
        if state.notice_pending {
            return;
        }
        let notice = UpdateNotice { host: state.host.name.clone(), version: state.host.version };
        state.notice_pending = c.cast(ToController::Notice(Wire::new(notice))).is_ok();
    }

    fn heartbeat(state: &mut ManagerState) {
        if let Some(c) = &state.controller {
            let hb = Heartbeat { host: state.host.name.clone(), version: state.host.version };
            let _ = c.cast(ToController::Heartbeat(Wire::new(hb)));
        }
    }

    fn pull(&self, state: &mut ManagerState, req: PullRequest, reply: RpcReplyPort<Content>) {
        state.notice_pending = false;
        // the seed sent its whole monitoring log every time
        let since = if self.config.heal == HealMode::Seed { None } else { req.since };
        let _ = reply.send(state.host.content(since));
    }
}
