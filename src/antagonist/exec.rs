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
use super::inject::{Injector, LossSite};
use super::plan::{AttackPlan, Planner};
use super::truth::{AttackKind, AttackRecord, Outcome, stamp};
use crate::model::{DockerState, short_id};
use crate::runtime::ContainerRuntime;

/// How often a link-scope loss checks that its container kept its address.
const FOLLOW: Duration = Duration::from_secs(1);

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
        Self { id, name, key, ip }
    }
}

/// An attack in progress: its record so far and the rule to remove, if any.
#[derive(Debug, Clone)]
pub struct ActiveAttack {
    pub record: AttackRecord,
    pub site: Option<LossSite>,
}

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
                let kind = if plan == AttackPlan::Shutdown { "shutdown" } else { "loss" };
                let span = tracing::info_span!("attack", host = %self.host, container.id = %short_id(&target.id),
                    container.name = %target.name, kind);
                self.attack(&target, plan, planned_start).instrument(span).await;
            }
        }
    }

    async fn attack(&self, target: &Target, plan: AttackPlan, planned_start: OffsetDateTime) {
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
        };
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
        let a = ActiveAttack { record: record.clone(), site };
        self.active.lock().unwrap_or_else(|p| p.into_inner()).insert(record.container_id.clone(), a);
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
pub async fn undo(active: &Active, injector: &dyn Injector, ids: Option<&[String]>) -> Vec<AttackRecord> {
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
        let now = stamp(OffsetDateTime::now_utc());
        a.record.actual_end = now.clone();
        a.record.time = now;
        a.record.outcome = Outcome::Interrupted;
        out.push(a.record);
    }
    out
}
