//! The executor: one sequential loop per target carrying out its planner's steps through the
//! [`ContainerRuntime`] and an [`Injector`].
//!
//! A loop waits the step's gap, then attacks; the next gap starts when the attack has ended (a
//! shutdown when the container has stopped, a loss attack when its duration is over). Attacks in
//! progress are registered in [`Active`], so whoever aborts a loop (stop, reconfiguration, the
//! target leaving the scope) can undo them and log them as interrupted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::broadcast;
use tracing::Instrument;

use super::config::{AntagonistConfig, LossScope};
use super::faults::{self, Undo, UndoJournal};
use super::inject::{Injector, LossSite};
use super::plan::{AttackPlan, Planner};
use super::truth::{AttackKind, AttackRecord, Culprit, Level, Outcome, stamp};
use crate::analysis::deps;
use crate::load::generator::{self, LoadSpec};
use crate::load::schedule::Schedule;
use crate::model::{DockerState, ObservedContainer, short_id};
use crate::probe::response::{PROBE_LABEL, ResponseTarget};
use crate::resources::sensors::Sensors;
use crate::runtime::{ContainerRuntime, Limits, RuntimeError};

/// How often a link-scope loss checks that its container kept its address.
const FOLLOW: Duration = Duration::from_secs(1);

/// Where the cgroup hierarchies are mounted: the budgets of simulated hosts live there.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One hog loop per CPU of the machine (at most 8): as many loops as cores take a whole quota
/// before the attacked work does (see [`Executor::hog`]).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).min(8)
}

/// A container the antagonist may attack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// Full id.
    pub id: String,
    pub name: String,
    /// What seeds the target's schedule ([`Planner::new`]): its [`SCHEDULE_LABEL`] label, else
    /// its name.
    pub key: String,
    /// Its address as last seen (a restart on the default bridge usually changes it).
    pub ip: Option<std::net::IpAddr>,
    /// Its response-time probe (`hms.probe`), which a load surge loads.
    pub probe: Option<ResponseTarget>,
}

/// A container label naming the schedule of its attacks in place of the container's name, so
/// that containers recreated under other names (the experiment's runs, one per healing mode)
/// get the same planned attacks.
pub const SCHEDULE_LABEL: &str = "hms.antagonist.key";

impl Target {
    pub fn new(
        id: String,
        name: String,
        labels: &std::collections::BTreeMap<String, String>,
        ip: Option<std::net::IpAddr>,
    ) -> Self {
        let key = labels.get(SCHEDULE_LABEL).cloned().unwrap_or_else(|| name.clone());
        let probe = labels.get(PROBE_LABEL).and_then(|p| p.parse().ok());
        Self { id, name, key, ip, probe }
    }
}

/// An attack in progress: its record so far and the rule to remove, if any.
#[derive(Debug, Clone)]
pub struct ActiveAttack {
    pub record: AttackRecord,
    pub site: Option<LossSite>,
    /// How a timed fault is undone.
    pub undo: Option<Undo>,
}

/// With `exclusive`, the quiet time after an attack before the host's next one.
pub const EXCLUSIVE_SETTLE: Duration = Duration::from_secs(10);

/// Attacks in progress, by container id.
pub type Active = Arc<Mutex<HashMap<String, ActiveAttack>>>;

/// What every loop of one run shares.
pub struct Executor {
    pub host: String,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub injector: Arc<dyn Injector>,
    pub config: AntagonistConfig,
    pub active: Active,
    /// Receives every finished attack.
    pub report: Box<dyn Fn(AttackRecord) + Send + Sync>,
    /// The full id of every target seen at another address: a link-scope loss on it looks the
    /// address up at once, so a restart does not take its container out of the fault.
    pub moves: broadcast::Sender<String>,
    /// Reads the targets' counters, to see a fault take effect (`None`: not checked).
    pub sensors: Option<Arc<dyn Sensors>>,
    /// Where the undo steps that outlive a crash are kept.
    pub journal: UndoJournal,
    /// The host's targets now (kept current by the antagonist): where a `sibling_hog` finds
    /// its culprit.
    pub peers: Arc<Mutex<Vec<Target>>>,
    /// Held through an attack when the configuration is `exclusive`.
    pub turn: Arc<tokio::sync::Mutex<()>>,
}

impl Executor {
    /// The loop of one target, until aborted.
    pub async fn run(self: Arc<Self>, target: Target) {
        let Ok(mut planner) = Planner::new(&self.config, &target.key) else { return };
        loop {
            let step = planner.next_step();
            let planned_start = OffsetDateTime::now_utc() + step.gap;
            tokio::time::sleep(step.gap).await;
            if let Some(plan) = step.attack {
                let turn = match self.config.exclusive {
                    true => Some(self.turn.lock().await),
                    false => None,
                };
                let kind = plan.kind().name();
                let span = tracing::info_span!("attack", host = %self.host, container.id = %short_id(&target.id),
                    container.name = %target.name, kind);
                self.attack(&target, plan, planned_start).instrument(span).await;
                if turn.is_some() {
                    // the host settles before the next attack: episodes that do not overlap
                    tokio::time::sleep(EXCLUSIVE_SETTLE).await;
                }
            }
        }
    }

    /// Carries out one attack now on `target` (also what a test drives directly) and reports it.
    pub async fn attack(&self, target: &Target, plan: AttackPlan, planned_start: OffsetDateTime) {
        // Subscribed before the inspect, so a move told while it runs is not missed; only a
        // link-scope loss moves.
        let link_loss = matches!(plan, AttackPlan::Loss { .. }) && self.config.loss_scope == LossScope::Link;
        let moves = link_loss.then(|| self.moves.subscribe());
        let obs = match self.runtime.inspect(&target.id).await {
            Ok(Some(obs)) if obs.state == DockerState::Running => obs,
            Ok(_) => return tracing::debug!("target not running: attack skipped"),
            Err(e) => return tracing::warn!(error = %e, "cannot inspect the target: attack skipped"),
        };
        let now = OffsetDateTime::now_utc();
        let mut record = AttackRecord {
            time: String::new(),
            host: self.host.clone(),
            container_id: target.id.clone(),
            container_name: target.name.clone(),
            kind: AttackKind::Shutdown,
            loss: None,
            scope: None,
            method: None,
            planned_start: stamp(planned_start),
            planned_end: stamp(planned_start),
            actual_start: stamp(now),
            actual_end: String::new(),
            outcome: Outcome::Done,
            error: None,
            level: Some(Level::Container),
            culprit: Some(Culprit { host: self.host.clone(), container: Some(target.name.clone()) }),
            affected: vec![target.name.clone()],
            verified: None,
        };
        let error = match plan {
            AttackPlan::Shutdown => self.shutdown(&mut record).await,
            AttackPlan::Loss { percent, duration } => {
                record.kind = AttackKind::Loss;
                record.loss = Some(percent);
                record.scope = Some(self.config.loss_scope);
                record.method = Some(self.injector.method().to_owned());
                record.planned_end = stamp(planned_start + duration);
                self.loss(&mut record, obs.ip, percent, duration, moves).await
            }
            AttackPlan::Fault { kind, duration } => {
                record.kind = kind;
                record.planned_end = stamp(planned_start + duration);
                self.fault(&mut record, target, &obs, duration).await
            }
        };
        // the seed's kinds took effect when they were carried out; the others say so themselves
        if matches!(plan, AttackPlan::Shutdown | AttackPlan::Loss { .. }) {
            record.verified = Some(error.is_none());
        }
        self.active.lock().unwrap_or_else(|p| p.into_inner()).remove(&target.id);
        let end = OffsetDateTime::now_utc();
        record.actual_end = stamp(end);
        record.time = stamp(end);
        if let Some(e) = error {
            tracing::warn!(error = %e, "attack failed");
            record.outcome = Outcome::Failed;
            record.error = Some(e);
        } else {
            tracing::info!(loss = record.loss, "attack done");
        }
        (self.report)(record);
    }

    fn register(&self, record: &AttackRecord, site: Option<LossSite>) {
        let a = ActiveAttack { record: record.clone(), site, undo: None };
        self.active.lock().unwrap_or_else(|p| p.into_inner()).insert(record.container_id.clone(), a);
    }

    /// Registers a timed fault with its undo step (journaled when it would outlive a crash)
    /// before it is injected.
    fn register_undo(&self, record: &AttackRecord, undo: &Undo) {
        self.journal.add(&record.container_id, undo);
        let a = ActiveAttack { record: record.clone(), site: None, undo: Some(undo.clone()) };
        self.active.lock().unwrap_or_else(|p| p.into_inner()).insert(record.container_id.clone(), a);
    }

    /// Undoes a timed fault that ran its course; the error, if any, as the attack's.
    async fn finish(&self, record: &AttackRecord, undo: &Undo) -> Option<String> {
        let res = undo.apply(self.runtime.as_ref(), &record.container_id).await;
        self.journal.remove(&record.container_id);
        res.err().map(|e| format!("cannot undo the {}: {e}", record.kind.name()))
    }

    /// Starts the hog `cmd` in container `id`, one loop per CPU of the machine: one loop on a
    /// 2-core machine runs beside the container's own work on the other core and leaves its
    /// requests untouched half the time; as many loops as cores take the whole quota first.
    /// The limit or budget bounds them together.
    async fn hog(&self, id: &str, cmd: &[String]) -> Result<(), crate::runtime::RuntimeError> {
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        for _ in 0..cores() {
            self.runtime.exec(id, &cmd, true).await?;
        }
        Ok(())
    }

    /// Busy loops in the attacked container for `duration`, bounded by its CPU limit `cpus`
    /// (and by `timeout`); verified when it used most of that limit (of the machine, with a
    /// larger one).
    async fn hog_for(&self, record: &mut AttackRecord, cpus: f64, duration: Duration) -> Option<String> {
        let id = record.container_id.clone();
        let (cmd, undo) = faults::hog_command(duration.as_secs_f64().ceil().max(1.0) as u64 + 2);
        self.register_undo(record, &undo);
        if let Err(e) = self.hog(&id, &cmd).await {
            let _ = self.finish(record, &undo).await;
            return Some(e.to_string());
        }
        let floor = cpus.min(cores() as f64) * 100.0 * 0.7;
        let busy = move |a: &_, b: &_, t| faults::cpu_percent(a, b, t).is_some_and(|p| p >= floor);
        record.verified = self.watch(&id, duration, busy).await;
        self.finish(record, &undo).await
    }

    /// Watches container `id` for `duration` (the fault's length): whether `seen` held between
    /// two readings; `None` without sensors (it only waits then).
    async fn watch(
        &self,
        id: &str,
        duration: Duration,
        seen: impl Fn(&crate::resources::sensors::Counters, &crate::resources::sensors::Counters, Duration) -> bool,
    ) -> Option<bool> {
        match &self.sensors {
            Some(s) => Some(faults::watch(s.as_ref(), id, duration, seen).await),
            None => {
                tokio::time::sleep(duration).await;
                None
            }
        }
    }

    /// This host's targets under cgroup parent `parent` (a simulated host's budget), by name,
    /// with their limits.
    async fn under_parent(&self, parent: &str) -> Vec<(Target, Limits)> {
        let mut peers: Vec<Target> = self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Vec::new();
        for p in peers {
            match self.runtime.limits(&p.id).await {
                Ok(l) if l.cgroup_parent.as_deref() == Some(parent) => out.push((p, l)),
                _ => {}
            }
        }
        out
    }

    /// The names of the containers of the engine, under another cgroup parent than `parent`
    /// (another simulated host), that declare they depend on `target`. Dependents on other
    /// engines are not seen: the kind is meant for simulated hosts sharing one engine.
    async fn remote_dependents(&self, target: &Target, parent: Option<&str>) -> Result<Vec<String>, RuntimeError> {
        let all = self.runtime.list(None).await?;
        let Some(own) = all.iter().find(|c| c.id == target.id) else {
            return Err(RuntimeError::NotFound(target.id.clone()));
        };
        let named = deps::dependents(&own.name, &own.labels, all.iter().map(|c| (c.name.as_str(), &c.labels)));
        let mut out = Vec::new();
        for c in all.iter().filter(|c| named.contains(&c.name.as_str())) {
            if self.runtime.limits(&c.id).await.is_ok_and(|l| l.cgroup_parent.as_deref() != parent) {
                out.push(c.name.clone());
            }
        }
        out.sort();
        Ok(out)
    }

    /// A timed fault of a kind beyond the seed's: injected, watched for its effect, undone.
    async fn fault(
        &self,
        record: &mut AttackRecord,
        target: &Target,
        obs: &ObservedContainer,
        duration: Duration,
    ) -> Option<String> {
        use super::config::FaultKind;
        let id = record.container_id.clone();
        let limits = match self.runtime.limits(&id).await {
            Ok(l) => l,
            Err(e) => return Some(e.to_string()),
        };
        let secs = duration.as_secs_f64().ceil().max(1.0) as u64;
        match record.kind {
            FaultKind::CpuHog => {
                let Some(cpus) = limits.cpus else {
                    return Some("no CPU limit bounds a hog in this container: not attacked".to_owned());
                };
                self.hog_for(record, cpus, duration).await
            }
            FaultKind::DependencySlow => {
                let Some(cpus) = limits.cpus else {
                    return Some("no CPU limit bounds a hog in this dependency: not attacked".to_owned());
                };
                let dependents = match self.remote_dependents(target, limits.cgroup_parent.as_deref()).await {
                    Ok(d) if d.is_empty() => {
                        return Some("no container of another host depends on this one: not attacked".to_owned());
                    }
                    Ok(d) => d,
                    Err(e) => return Some(e.to_string()),
                };
                record.level = Some(Level::Neighbour);
                record.affected = dependents;
                self.hog_for(record, cpus, duration).await
            }
            FaultKind::NodeHog => {
                let Some(parent) = limits.cgroup_parent.clone() else {
                    return Some("the container's host has no budget (no cgroup parent): not attacked".to_owned());
                };
                let root = std::path::Path::new(CGROUP_ROOT);
                if crate::resources::budget::quota_cpus(root, &parent).is_none() {
                    return Some("the container's host group has no CPU quota to bound a hog: not attacked".to_owned());
                }
                let group = match crate::resources::budget::hog_group(root, &parent) {
                    Ok(g) => g,
                    Err(e) => return Some(e.to_string()),
                };
                let mut affected: Vec<String> =
                    self.under_parent(&parent).await.into_iter().map(|(t, _)| t.name).collect();
                if !affected.contains(&target.name) {
                    affected.push(target.name.clone());
                }
                affected.sort();
                record.level = Some(Level::Node);
                record.culprit = Some(Culprit { host: self.host.clone(), container: None });
                record.affected = affected;
                let undo = Undo::NodeHog(group.clone());
                self.register_undo(record, &undo);
                let before = crate::resources::budget::throttling(root, &parent);
                if let Err(e) = faults::node_hog(&group, cores(), secs + 2) {
                    let _ = self.finish(record, &undo).await;
                    return Some(format!("cannot start the node hog: {e}"));
                }
                tokio::time::sleep(duration).await;
                // the host's budget was throttled in most periods of the fault
                record.verified = match (before, crate::resources::budget::throttling(root, &parent)) {
                    (Some((p0, t0)), Some((p1, t1))) if p1 > p0 => Some((t1 - t0) * 2 >= p1 - p0),
                    _ => None,
                };
                self.finish(record, &undo).await
            }
            FaultKind::MemoryLeak => {
                let Some(limit) = limits.memory_bytes else {
                    return Some("no memory limit bounds a leak in this container: not attacked".to_owned());
                };
                let used = self
                    .sensors
                    .as_ref()
                    .and_then(|s| s.container(&id, crate::resources::procfs::NetCounter::PassiveOpens).memory);
                let mib = faults::leak_mib(limit, used.map_or(0, |m| m.usage_bytes));
                let (cmd, undo) = faults::leak_command(mib, duration.as_secs_f64() / 2.0, secs + 2);
                self.register_undo(record, &undo);
                let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
                if let Err(e) = self.runtime.exec(&id, &cmd, true).await {
                    let _ = self.finish(record, &undo).await;
                    return Some(e.to_string());
                }
                let full = move |_: &_, b: &crate::resources::sensors::Counters, _| {
                    b.memory.is_some_and(|m| m.usage_bytes as f64 >= 0.8 * limit as f64)
                };
                record.verified = self.watch(&id, duration, full).await;
                self.finish(record, &undo).await
            }
            FaultKind::CpuStarve => {
                let host_cpus = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
                let cut = faults::starved_cpus(limits.cpus, host_cpus);
                let undo = Undo::Cpus(limits.cpus);
                self.register_undo(record, &undo);
                if let Err(e) = self.runtime.set_cpus(&id, Some(cut)).await {
                    let _ = self.finish(record, &undo).await;
                    return Some(e.to_string());
                }
                let applied = self.runtime.limits(&id).await.ok().and_then(|l| l.cpus);
                record.verified = Some(applied.is_some_and(|c| (c - cut).abs() < 0.01));
                tokio::time::sleep(duration).await;
                self.finish(record, &undo).await
            }
            FaultKind::LoadSurge => {
                record.level = Some(Level::Load);
                record.culprit = None;
                let Some(url) = obs.ip.and_then(|ip| faults::surge_url(ip, target.probe.as_ref())) else {
                    return Some("a surge needs the container's address and an hms.probe=http:// label".to_owned());
                };
                let Ok(load_target) = url.parse::<generator::Target>() else {
                    return Some(format!("cannot load {url}"));
                };
                // the rate now, over two seconds
                let base = match &self.sensors {
                    Some(s) => {
                        let t0 = (
                            tokio::time::Instant::now(),
                            s.container(&id, crate::resources::procfs::NetCounter::PassiveOpens),
                        );
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        let t1 = s.container(&id, crate::resources::procfs::NetCounter::PassiveOpens);
                        faults::accept_rate(&t0.1, &t1, t0.0.elapsed()).unwrap_or(0.0)
                    }
                    None => 0.0,
                };
                let rate = faults::SURGE_EXTRA * base.max(1.0);
                let spec = LoadSpec {
                    targets: vec![load_target],
                    schedule: Schedule::Constant(rate),
                    duration,
                    timeout: Duration::from_secs(5),
                    max_in_flight: 10_000,
                };
                let handle = match generator::spawn(spec, |_| ()) {
                    Ok(h) => h,
                    Err(e) => return Some(format!("cannot start the load: {e}")),
                };
                let undo = Undo::Load(handle.stop_flag());
                self.register_undo(record, &undo);
                let surge =
                    move |a: &_, b: &_, t| faults::accept_rate(a, b, t).is_some_and(|r| r >= 3.0 * base.max(1.0));
                record.verified = self.watch(&id, duration, surge).await;
                handle.stop();
                let _ = handle.finished().await;
                self.finish(record, &undo).await
            }
            FaultKind::SiblingHog => {
                let Some(parent) = limits.cgroup_parent.clone() else {
                    return Some("the container shares no host budget (no cgroup parent): not attacked".to_owned());
                };
                let peers = self.under_parent(&parent).await;
                let sibling = peers.iter().find(|(p, _)| p.id != id).cloned();
                let Some((sibling, Limits { cpus: own_cpus, .. })) = sibling else {
                    return Some("no sibling shares the container's host budget: not attacked".to_owned());
                };
                let budget = crate::resources::budget::quota_cpus(std::path::Path::new(CGROUP_ROOT), &parent);
                if budget.is_none() && own_cpus.is_none() {
                    return Some("neither the host's budget nor the sibling has a CPU limit to bound a hog".to_owned());
                }
                record.level = Some(Level::Sibling);
                record.culprit = Some(Culprit { host: self.host.clone(), container: Some(sibling.name.clone()) });
                if budget.is_some() {
                    // the hog takes the budget every container under it shares: all are victims
                    let mut affected: Vec<String> =
                        peers.iter().filter(|(p, _)| p.id != sibling.id).map(|(p, _)| p.name.clone()).collect();
                    if !affected.contains(&target.name) {
                        affected.push(target.name.clone());
                    }
                    affected.sort();
                    record.affected = affected;
                }
                let (cmd, undo) = faults::hog_command(secs + 2);
                let Undo::Exec(kill) = undo else { return Some("a hog's undo is a command".to_owned()) };
                let undo = Undo::ExecIn(sibling.id.clone(), kill);
                self.register_undo(record, &undo);
                if let Err(e) = self.hog(&sibling.id, &cmd).await {
                    let _ = self.finish(record, &undo).await;
                    return Some(e.to_string());
                }
                // the sibling takes most of what bounds it
                let floor = budget.or(own_cpus).map_or(30.0, |c| c.min(own_cpus.unwrap_or(c)) * 100.0 * 0.7);
                let busy = move |a: &_, b: &_, t| faults::cpu_percent(a, b, t).is_some_and(|p| p >= floor);
                record.verified = self.watch(&sibling.id, duration, busy).await;
                self.finish(record, &undo).await
            }
            FaultKind::Shutdown | FaultKind::Loss => Some("not a timed fault".to_owned()),
        }
    }

    async fn shutdown(&self, record: &mut AttackRecord) -> Option<String> {
        self.register(record, None);
        let id = &record.container_id;
        let res = if self.config.stop_timeout == 0.0 {
            self.runtime.kill(id, "SIGKILL").await
        } else {
            self.runtime.stop(id, self.config.stop_grace()).await
        };
        res.err().map(|e| e.to_string())
    }

    async fn loss(
        &self,
        record: &mut AttackRecord,
        ip: Option<IpAddr>,
        percent: u8,
        duration: Duration,
        mut moves: Option<broadcast::Receiver<String>>,
    ) -> Option<String> {
        let Some(ip) = ip else { return Some("the target has no address".to_owned()) };
        let pid = match self.config.loss_scope {
            LossScope::Link => None,
            LossScope::Container => match self.runtime.pid(&record.container_id).await {
                Ok(Some(pid)) => Some(pid),
                Ok(None) => return Some("the target has no process".to_owned()),
                Err(e) => return Some(e.to_string()),
            },
        };
        let mut site = LossSite { ip, scope: self.config.loss_scope, pid };
        self.register(record, Some(site.clone()));
        if let Err(e) = self.injector.inject(&site, percent).await {
            let _ = self.injector.clear(&site).await;
            return Some(e.to_string());
        }
        tracing::info!(loss = percent, duration_ms = duration.as_millis() as u64, ip = %ip, "loss injected");
        let deadline = tokio::time::Instant::now() + duration;
        // The rule is not where `site` says (a move cleared it and failed to inject): retried.
        let mut misplaced = false;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(left.min(FOLLOW)) => {}
                () = moved(moves.as_mut(), &record.container_id) => {}
            }
            match site.scope {
                LossScope::Link => match self.follow(record, &mut site, percent, misplaced).await {
                    Ok(()) => misplaced = false,
                    Err(e) => {
                        misplaced = true;
                        tracing::warn!(error = %e, "cannot move the loss to the container's new address");
                    }
                },
                LossScope::Container if self.namespace_gone(record, &site).await => {
                    tracing::info!("container restarted or stopped: its namespace and the loss are gone");
                    break;
                }
                LossScope::Container => {}
            }
        }
        self.injector.clear(&site).await.err().map(|e| format!("cannot remove the loss: {e}"))
    }

    /// Whether the namespace holding a container-scope rule is gone (the container stopped or
    /// restarted): the fault is over, the attack ends there.
    async fn namespace_gone(&self, record: &AttackRecord, site: &LossSite) -> bool {
        self.runtime.pid(&record.container_id).await.is_ok_and(|pid| pid != site.pid)
    }

    /// A link-scope loss follows its container: when a restart gave it another address, the rule
    /// moves there (a stopped container keeps its rule, its address may come back). Runs when
    /// [`Executor::moves`] tells of a move and every [`FOLLOW`] in case one was missed; the
    /// address is the engine's, never the told one, which may be older. `again` re-injects even
    /// at the same address.
    async fn follow(&self, record: &AttackRecord, site: &mut LossSite, percent: u8, again: bool) -> Result<(), String> {
        let obs = self.runtime.inspect(&record.container_id).await.map_err(|e| e.to_string())?;
        let Some(ip) = obs.and_then(|o| o.ip) else { return Ok(()) };
        if ip == site.ip && !again {
            return Ok(());
        }
        tracing::info!(from = %site.ip, to = %ip, "container moved: loss follows");
        self.injector.clear(site).await.map_err(|e| e.to_string())?;
        site.ip = ip;
        self.register(record, Some(site.clone()));
        self.injector.inject(site, percent).await.map_err(|e| e.to_string())
    }
}

/// Returns when `id` may have moved: a move of it was told, or some were lost (lagged). Waits
/// forever without a receiver or once the channel is closed.
async fn moved(moves: Option<&mut broadcast::Receiver<String>>, id: &str) {
    let Some(moves) = moves else { return std::future::pending().await };
    loop {
        match moves.recv().await {
            Ok(moved) if moved == id => return,
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// Undoes the attacks in `active` (after their loops were aborted) and returns their records,
/// marked interrupted.
pub async fn undo(
    active: &Active,
    injector: &dyn Injector,
    runtime: &dyn ContainerRuntime,
    journal: &UndoJournal,
    ids: Option<&[String]>,
) -> Vec<AttackRecord> {
    let taken: Vec<ActiveAttack> = {
        let mut g = active.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<String> = g.keys().filter(|k| ids.is_none_or(|ids| ids.contains(k))).cloned().collect();
        keys.iter().filter_map(|k| g.remove(k)).collect()
    };
    let mut out = Vec::with_capacity(taken.len());
    for mut a in taken {
        if let Some(site) = &a.site
            && let Err(e) = injector.clear(site).await
        {
            tracing::warn!(container.id = %short_id(&a.record.container_id), error = %e, "cannot remove a loss rule");
            a.record.error = Some(e.to_string());
        }
        if let Some(step) = &a.undo {
            match step.apply(runtime, &a.record.container_id).await {
                Ok(()) | Err(crate::runtime::RuntimeError::NotFound(_)) => journal.remove(&a.record.container_id),
                Err(e) => {
                    tracing::warn!(container.id = %short_id(&a.record.container_id), error = %e, "cannot undo an attack");
                    a.record.error = Some(e.to_string());
                }
            }
        }
        let now = stamp(OffsetDateTime::now_utc());
        a.record.actual_end = now.clone();
        a.record.time = now;
        a.record.outcome = Outcome::Interrupted;
        out.push(a.record);
    }
    out
}
