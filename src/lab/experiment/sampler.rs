//! What the experiment observes, independently of HMS: every container's state through Docker
//! and its reachability through ICMP at a fixed rate, and the engine's `die`/`start` events.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::score::{EngineEvent, Sample};
use crate::model::{DockerState, ObservedContainer};
use crate::probe::{Prober, WindowSpec};
use crate::runtime::{ContainerRuntime, EventKind, Selector};

/// Echoes per reachability check; a container is reachable when most of them are answered.
pub const REACH_ECHOES: u16 = 3;

/// The echo burst of one reachability check: 3 echoes 10 ms apart, 100 ms timeout.
pub fn reach_spec() -> WindowSpec {
    WindowSpec { count: REACH_ECHOES, interval: Duration::from_millis(10), timeout: Duration::from_millis(100) }
}

/// One watched container.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    pub name: String,
}

/// Samples every target every `period` until `until`; returns name → samples (same instants).
/// One listing of the run's containers (`selector`) per instant gives their state and address —
/// a few requests a second to the engine, where an inspect per container would add a hundred
/// to the load being measured. Each instant's round runs in its own task, so a slow check (a
/// listing while the engine is busy, an echo timing out) never delays the next instant; an
/// instant the engine could not list is skipped for every container alike.
pub async fn sample(
    rt: Arc<dyn ContainerRuntime>,
    prober: Arc<dyn Prober>,
    targets: &[Target],
    selector: &Selector,
    t0: Instant,
    period: Duration,
    until: Instant,
) -> BTreeMap<String, Vec<Sample>> {
    let mut out: BTreeMap<String, Vec<Sample>> = targets.iter().map(|t| (t.name.clone(), Vec::new())).collect();
    let mut tick = tokio::time::interval_at(t0, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rounds = tokio::task::JoinSet::new();
    let targets: Arc<[Target]> = targets.into();
    loop {
        let at = tick.tick().await;
        if at >= until {
            break;
        }
        let t = at.duration_since(t0).as_secs_f64();
        rounds.spawn(round(rt.clone(), prober.clone(), targets.clone(), selector.clone(), t));
    }
    while let Some(round) = rounds.join_next().await {
        for (name, s) in round.unwrap_or_default() {
            out.entry(name).or_default().push(s);
        }
    }
    out.values_mut().for_each(|v| v.sort_by(|a, b| a.t.total_cmp(&b.t)));
    out
}

/// One sampling instant: the listing, then the reachability echoes of every running target.
async fn round(
    rt: Arc<dyn ContainerRuntime>,
    prober: Arc<dyn Prober>,
    targets: Arc<[Target]>,
    selector: Selector,
    t: f64,
) -> Vec<(String, Sample)> {
    let listed = match rt.list(Some(&selector)).await {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!(t, error = %e, "sampling instant skipped: cannot list the containers");
            return Vec::new();
        }
    };
    let by_id: HashMap<&str, &ObservedContainer> = listed.iter().map(|o| (o.id.as_str(), o)).collect();
    let checks = targets.iter().map(|target| {
        let obs = by_id.get(target.id.as_str());
        let running = obs.is_some_and(|o| o.state == DockerState::Running);
        let ip: Option<IpAddr> = obs.and_then(|o| o.ip).filter(|_| running);
        let prober = prober.clone();
        async move {
            let reachable = match ip {
                Some(ip) => prober.window(ip, reach_spec()).await.is_ok_and(|w| 2 * w.received > REACH_ECHOES),
                None => false,
            };
            (target.name.clone(), Sample { t, running, reachable })
        }
    });
    futures::future::join_all(checks).await
}

/// Engine events of the targets, as (container name, event, engine time).
pub type EventLog = mpsc::UnboundedReceiver<(String, EngineEvent, SystemTime)>;

/// Records `die` and `start` events of the targets from now on.
pub fn record_events(rt: &Arc<dyn ContainerRuntime>, targets: &[Target]) -> (EventLog, tokio::task::JoinHandle<()>) {
    let names: BTreeMap<String, String> = targets.iter().map(|t| (t.id.clone(), t.name.clone())).collect();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut events = rt.events(None);
    let task = tokio::spawn(async move {
        while let Some(Ok(ev)) = events.next().await {
            let kind = match ev.kind {
                EventKind::Die => EngineEvent::Die,
                EventKind::Start => EngineEvent::Start,
                _ => continue,
            };
            if let Some(name) = names.get(&ev.id) {
                let at = ev.time.unwrap_or_else(SystemTime::now);
                if tx.send((name.clone(), kind, at)).is_err() {
                    return;
                }
            }
        }
    });
    (rx, task)
}

/// Seconds from `t0` to `at` (negative before it).
pub fn secs_since(t0: SystemTime, at: SystemTime) -> f64 {
    match at.duration_since(t0) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}
