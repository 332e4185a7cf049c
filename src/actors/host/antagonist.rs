//! `Antagonist`: the per-host fault injector, idle until started.
//!
//! Its host manager sends it the eligible containers (in scope, not ignored) whenever that set
//! changes, and forwards the controller's antagonist commands to it. While running, one
//! [`Executor`] loop per target carries out that target's planned attacks; a loop appends each
//! finished attack to the shared [`Journal`] (counts and ground-truth log) itself, before it can be
//! aborted, so once a stop has joined the loops every attack of the run is in the log.
//!
//! Handlers await the injector (removing rules takes milliseconds), so a stop answers only once
//! every attack in progress is undone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use crate::actors::protocol::{AntagonistStatus, AttackCounts, Command, CommandError, CommandOk, CommandReply};
use crate::antagonist::exec::{Active, Executor, Target, undo};
use crate::antagonist::faults::UndoJournal;
use crate::antagonist::inject::Injector;
use crate::antagonist::plan::{AntagonistConfig, ConfigPatch};
use crate::antagonist::truth::{AttackKind, AttackLog, AttackRecord, Outcome, parse_time, stamp};
use crate::resources::sensors::Sensors;
use crate::runtime::ContainerRuntime;

/// Longest wait for the injector while stopping.
const UNDO_TIMEOUT: Duration = Duration::from_secs(1);

/// Messages of the antagonist.
#[derive(Debug)]
pub enum AntagonistMsg {
    /// The eligible containers (from the host manager or the local lister), when they change.
    Targets(Vec<Target>),
    /// An antagonist command (status, start, configure, stop, attacks).
    Command(Box<Command>, RpcReplyPort<CommandReply>),
    /// The run time of run `n` is over.
    RunOver(u64),
}

/// Local only: never crosses nodes.
impl ractor::Message for AntagonistMsg {}

/// The read-only half: edges and where the log goes.
pub struct Antagonist {
    pub host: String,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub injector: Arc<dyn Injector>,
    /// Data dir of the ground-truth log and of the undo journal (`None`: memory only).
    pub log_dir: Option<PathBuf>,
    /// Reads the targets' counters to see faults take effect (`None`: not checked).
    pub sensors: Option<Arc<dyn Sensors>>,
}

struct Run {
    id: u64,
    exec: Arc<Executor>,
    loops: HashMap<String, JoinHandle<()>>,
}

/// If the actor dies (a panic skips `post_stop`), its state is dropped: no loop may outlive it.
/// The replacement antagonist's start-up then removes the rules left in force.
impl Drop for Run {
    fn drop(&mut self) {
        self.loops.values().for_each(JoinHandle::abort);
    }
}

/// What the attacks of this process did: shared by the actor and the loops.
struct Journal {
    host: String,
    counts: AttackCounts,
    log: AttackLog,
}

impl Journal {
    fn record(&mut self, r: AttackRecord) {
        let c = &mut self.counts;
        match (r.outcome, r.kind) {
            (Outcome::Failed, _) => c.failed += 1,
            (Outcome::Interrupted, _) => c.interrupted += 1,
            (Outcome::Done, AttackKind::Shutdown) => c.shutdown += 1,
            (Outcome::Done, AttackKind::Loss) => c.loss += 1,
            (Outcome::Done, _) => c.faults += 1,
        }
        if let Err(e) = self.log.append(r) {
            tracing::error!(host = %self.host, error = %e, "cannot write the ground truth");
        }
    }
}

/// The mutable half.
pub struct AntagonistState {
    config: AntagonistConfig,
    targets: BTreeMap<String, Target>,
    run: Option<Run>,
    runs: u64,
    started_at: Option<String>,
    journal: Arc<Mutex<Journal>>,
    /// Containers whose namespace was cleared of a crashed process's leftovers (once each).
    swept: BTreeSet<String>,
}

impl Actor for Antagonist {
    type Msg = AntagonistMsg;
    type State = AntagonistState;
    type Arguments = AntagonistConfig;

    async fn pre_start(
        &self,
        _myself: ActorRef<AntagonistMsg>,
        config: AntagonistConfig,
    ) -> Result<AntagonistState, ActorProcessingErr> {
        if let Err(e) = self.injector.clear_all().await {
            tracing::warn!(host = %self.host, error = %e, "cannot remove leftover loss rules");
        }
        let undone = UndoJournal::new(self.log_dir.as_deref()).recover(self.runtime.as_ref()).await;
        if undone > 0 {
            tracing::info!(host = %self.host, undone, "undid the attacks a crashed run left in force");
        }
        let log_dir = self.log_dir.clone();
        let log = tokio::task::spawn_blocking(move || AttackLog::open(log_dir.as_deref())).await?;
        Ok(AntagonistState {
            config,
            targets: BTreeMap::new(),
            run: None,
            runs: 0,
            started_at: None,
            journal: Arc::new(Mutex::new(Journal { host: self.host.clone(), counts: AttackCounts::default(), log })),
            swept: BTreeSet::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<AntagonistMsg>,
        state: &mut AntagonistState,
    ) -> Result<(), ActorProcessingErr> {
        self.stop_run(state).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<AntagonistMsg>,
        msg: AntagonistMsg,
        state: &mut AntagonistState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AntagonistMsg::Targets(targets) => self.on_targets(state, targets).await,
            AntagonistMsg::Command(cmd, reply) => {
                let res = self.command(&myself, state, *cmd).await;
                let _ = reply.send(res);
            }
            AntagonistMsg::RunOver(id) if state.run.as_ref().is_some_and(|r| r.id == id) => {
                tracing::info!(host = %self.host, "antagonist run time over");
                self.stop_run(state).await;
            }
            AntagonistMsg::RunOver(_) => {}
        }
        Ok(())
    }
}

impl Antagonist {
    async fn command(
        &self,
        myself: &ActorRef<AntagonistMsg>,
        state: &mut AntagonistState,
        cmd: Command,
    ) -> CommandReply {
        match cmd {
            Command::AntagonistStatus => {}
            Command::AntagonistStart(patch) => self.start(myself, state, patch)?,
            Command::AntagonistConfigure(patch) => self.configure(myself, state, &patch).await?,
            Command::AntagonistStop => self.stop_run(state).await,
            Command::Attacks { since } => return self.attacks(state, since.as_deref()),
            other => return Err(CommandError::Invalid(format!("not an antagonist command: {other:?}"))),
        }
        Ok(CommandOk { antagonist: Some(self.status(state)), ..CommandOk::default() })
    }

    fn start(
        &self,
        myself: &ActorRef<AntagonistMsg>,
        state: &mut AntagonistState,
        patch: Option<ConfigPatch>,
    ) -> Result<(), CommandError> {
        if state.run.is_some() {
            return Err(CommandError::Conflict(format!("the antagonist of {} is already running", self.host)));
        }
        let config = match &patch {
            Some(p) => state.config.patched(p).map_err(|e| CommandError::Invalid(e.to_string()))?,
            None => state.config.clone(),
        };
        if state.targets.is_empty() {
            return Err(CommandError::Conflict(format!("no eligible container to attack on {}", self.host)));
        }
        state.config = config;
        journal(state).counts = AttackCounts::default();
        state.started_at = Some(stamp(OffsetDateTime::now_utc()));
        self.start_run(myself, state);
        Ok(())
    }

    async fn configure(
        &self,
        myself: &ActorRef<AntagonistMsg>,
        state: &mut AntagonistState,
        patch: &ConfigPatch,
    ) -> Result<(), CommandError> {
        state.config = state.config.patched(patch).map_err(|e| CommandError::Invalid(e.to_string()))?;
        tracing::info!(host = %self.host, config = ?state.config, "antagonist configured");
        if state.run.is_some() {
            self.stop_run(state).await;
            self.start_run(myself, state);
        }
        Ok(())
    }

    /// Spawns one loop per target with the current configuration.
    fn start_run(&self, myself: &ActorRef<AntagonistMsg>, state: &mut AntagonistState) {
        state.runs += 1;
        let shared = state.journal.clone();
        let exec = Arc::new(Executor {
            host: self.host.clone(),
            runtime: self.runtime.clone(),
            injector: self.injector.clone(),
            config: state.config.clone(),
            active: Active::default(),
            report: Box::new(move |r| shared.lock().unwrap_or_else(|p| p.into_inner()).record(r)),
            moves: tokio::sync::broadcast::channel(256).0,
            sensors: self.sensors.clone(),
            journal: UndoJournal::new(self.log_dir.as_deref()),
            peers: Arc::new(Mutex::new(state.targets.values().cloned().collect())),
            turn: Arc::default(),
        });
        let mut run = Run { id: state.runs, exec, loops: HashMap::new() };
        for t in state.targets.values() {
            Self::spawn_loop(&mut run, t.clone());
        }
        if let Some(secs) = state.config.run_time {
            let id = run.id;
            myself.send_after(Duration::from_secs_f64(secs), move || AntagonistMsg::RunOver(id));
        }
        tracing::info!(host = %self.host, targets = run.loops.len(), config = ?state.config, "antagonist started");
        state.run = Some(run);
    }

    fn spawn_loop(run: &mut Run, target: Target) {
        let id = target.id.clone();
        run.loops.insert(id, tokio::spawn(run.exec.clone().run(target)));
    }

    /// Aborts every loop, undoes the attacks in progress and logs them as interrupted.
    async fn stop_run(&self, state: &mut AntagonistState) {
        let Some(mut run) = state.run.take() else { return };
        let handles: Vec<JoinHandle<()>> = std::mem::take(&mut run.loops).into_values().collect();
        handles.iter().for_each(JoinHandle::abort);
        for h in handles {
            let _ = h.await;
        }
        let injector = self.injector.as_ref();
        let undo_all = async {
            let records = undo(&run.exec.active, injector, self.runtime.as_ref(), &run.exec.journal, None).await;
            if let Err(e) = injector.clear_all().await {
                tracing::warn!(host = %self.host, error = %e, "cannot remove the loss table");
            }
            records
        };
        let records = tokio::time::timeout(UNDO_TIMEOUT, undo_all).await.unwrap_or_else(|_| {
            tracing::error!(host = %self.host, "undoing the attacks took too long");
            Vec::new()
        });
        let mut j = journal(state);
        records.into_iter().for_each(|r| j.record(r));
        tracing::info!(host = %self.host, attacks = ?j.counts, "antagonist stopped");
    }

    async fn on_targets(&self, state: &mut AntagonistState, targets: Vec<Target>) {
        let new: BTreeMap<String, Target> = targets.into_iter().map(|t| (t.id.clone(), t)).collect();
        self.sweep(state, &new).await;
        let gone: Vec<String> = state.targets.keys().filter(|id| !new.contains_key(*id)).cloned().collect();
        let added: Vec<Target> = new.values().filter(|t| !state.targets.contains_key(&t.id)).cloned().collect();
        let moved: Vec<String> = (new.values())
            .filter(|t| t.ip.is_some() && state.targets.get(&t.id).is_some_and(|old| old.ip != t.ip))
            .map(|t| t.id.clone())
            .collect();
        state.targets = new;
        let Some(run) = state.run.as_mut() else { return };
        *run.exec.peers.lock().unwrap_or_else(|p| p.into_inner()) = state.targets.values().cloned().collect();
        for m in moved {
            // no receiver: no link-scope loss in progress
            let _ = run.exec.moves.send(m);
        }
        for id in &gone {
            if let Some(h) = run.loops.remove(id) {
                h.abort();
                let _ = h.await;
            }
        }
        let exec = run.exec.clone();
        for t in added {
            Self::spawn_loop(run, t);
        }
        let records =
            undo(&exec.active, self.injector.as_ref(), self.runtime.as_ref(), &exec.journal, Some(&gone)).await;
        let mut j = journal(state);
        records.into_iter().for_each(|r| j.record(r));
    }

    /// Removes our table from the namespace of every target seen for the first time (leftovers of
    /// a crashed process); a new target is not attacked yet, so nothing of ours is lost.
    async fn sweep(&self, state: &mut AntagonistState, targets: &BTreeMap<String, Target>) {
        state.swept.retain(|id| targets.contains_key(id));
        let mut pids = Vec::new();
        for id in targets.keys() {
            if state.swept.insert(id.clone())
                && let Ok(Some(pid)) = self.runtime.pid(id).await
            {
                pids.push(pid);
            }
        }
        if pids.is_empty() {
            return;
        }
        if let Err(e) = self.injector.clear_leftovers(&pids).await {
            tracing::warn!(host = %self.host, error = %e, "cannot remove leftover loss rules");
        }
    }

    fn attacks(&self, state: &AntagonistState, since: Option<&str>) -> CommandReply {
        let since = since.map(parse_time).transpose().map_err(|e| CommandError::Invalid(format!("since: {e}")))?;
        Ok(CommandOk { attacks: Some(journal(state).log.since(since)), ..CommandOk::default() })
    }

    fn status(&self, state: &AntagonistState) -> AntagonistStatus {
        let active = state.run.as_ref().map_or(0, |r| r.exec.active.lock().map_or(0, |a| a.len()));
        AntagonistStatus {
            host: self.host.clone(),
            running: state.run.is_some(),
            config: state.config.clone(),
            targets: u32::try_from(state.targets.len()).unwrap_or(u32::MAX),
            active: u32::try_from(active).unwrap_or(u32::MAX),
            attacks: journal(state).counts.clone(),
            started_at: state.started_at.clone(),
            method: self.injector.method().to_owned(),
        }
    }
}

/// The journal, locked (a loop that panicked while recording leaves it usable).
fn journal(state: &AntagonistState) -> MutexGuard<'_, Journal> {
    state.journal.lock().unwrap_or_else(|p| p.into_inner())
}
