//! What the experiment observes, independently of HMS: every container's state through Docker
//! and its reachability through ICMP at a fixed rate, and the engine's `die`/`start` events.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::score::{EngineEvent, Sample};
use crate::model::DockerState;
use crate::probe::{Prober, WindowSpec};
use crate::runtime::{ContainerRuntime, EventKind};

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
/// Each instant's round runs in its own task, so a slow check (an inspect of a container being
/// restarted, an echo timing out) never delays the next instant; an instant the runtime could
/// not serve at all is skipped for every container alike.
pub async fn sample(
    rt: Arc<dyn ContainerRuntime>,
    prober: Arc<dyn Prober>,
    targets: &[Target],
    t0: Instant,
    period: Duration,
    until: Instant,
) -> BTreeMap<String, Vec<Sample>> {
    let mut out: BTreeMap<String, Vec<Sample>> = targets.iter().map(|t| (t.name.clone(), Vec::new())).collect();
    let mut tick = tokio::time::interval_at(t0, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rounds = tokio::task::JoinSet::new();
    loop {
        let at = tick.tick().await;
        if at >= until {
            break;
        }
        let t = at.duration_since(t0).as_secs_f64();
        let checks: Vec<_> =
            targets.iter().map(|target| check(rt.clone(), prober.clone(), target.clone(), t)).collect();
        rounds.spawn(futures::future::join_all(checks));
    }
    while let Some(round) = rounds.join_next().await {
        for (name, s) in round.unwrap_or_default() {
            out.entry(name).or_default().push(s);
        }
    }
    out.values_mut().for_each(|v| v.sort_by(|a, b| a.t.total_cmp(&b.t)));
    out
}

async fn check(rt: Arc<dyn ContainerRuntime>, prober: Arc<dyn Prober>, target: Target, t: f64) -> (String, Sample) {
    let obs = rt.inspect(&target.id).await.ok().flatten();
    let running = obs.as_ref().is_some_and(|o| o.state == DockerState::Running);
    let ip: Option<IpAddr> = obs.and_then(|o| o.ip);
    let reachable = match ip {
        Some(ip) if running => prober.window(ip, reach_spec()).await.is_ok_and(|w| 2 * w.received > REACH_ECHOES),
        _ => false,
    };
    (target.name, Sample { t, running, reachable })
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
