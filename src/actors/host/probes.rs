//! Probe supervision: one linked [`ProbeActor`] per monitored container, started, retargeted
//! and stopped to match the host's state, and re-spawned with back-off when it dies.
//!
//! The manager owns a [`Probes`] and carries out what it returns (a respawn to schedule); it
//! knows nothing of the manager's messages: windows go to the [`ReportTo`] it was given.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef};
use tokio::time::Instant;

use super::probe::{Monitor, PHASES, ProbeActor, ProbeArgs, ProbeMsg, ReportTo, epoch, phase_start};
use crate::model::short_id;
use crate::policy::Backoff;
use crate::probe::response::{ResponseSpec, ResponseTarget};
use crate::probe::{Prober, WindowSpec};

/// Back-off of re-spawning a probe actor that died: 100 ms doubling to 10 s.
const PROBE_RESPAWN: Backoff = Backoff::constant(Duration::from_millis(100), Duration::from_secs(10), 0.0);

struct ProbeSlot {
    actor: ActorRef<ProbeMsg>,
    ip: Option<IpAddr>,
    response: Option<ResponseTarget>,
}

/// What a container's probe should do: probe this address (`None`: paused), with this
/// response-time probe (`None`: ICMP only).
pub type ProbeWanted = (Option<IpAddr>, Option<ResponseTarget>);

/// The probes of one host manager.
pub struct Probes {
    prober: Arc<dyn Prober>,
    /// `None`: ICMP only.
    monitor: Option<Monitor>,
    spec: WindowSpec,
    response_spec: ResponseSpec,
    period: Duration,
    /// Where every probe reports its windows.
    report: ReportTo,
    slots: HashMap<String, ProbeSlot>,
    failures: HashMap<String, u32>,
    /// Containers whose probe is waiting for its back-off before being spawned again.
    respawn_pending: HashSet<String>,
}

impl Probes {
    pub fn new(
        prober: Arc<dyn Prober>,
        monitor: Option<Monitor>,
        spec: WindowSpec,
        response_spec: ResponseSpec,
        period: Duration,
        report: ReportTo,
    ) -> Self {
        let (slots, failures, respawn_pending) = Default::default();
        Self { prober, monitor, spec, response_spec, period, report, slots, failures, respawn_pending }
    }

    /// A window came in: the container's probe works, its past failures are forgiven.
    pub fn window_seen(&mut self, id: &str) {
        self.failures.remove(id);
    }

    /// Runs the container's next window at once.
    pub fn confirm(&self, id: &str) {
        if let Some(slot) = self.slots.get(id) {
            let _ = slot.actor.cast(ProbeMsg::Confirm);
        }
    }

    /// The back-off of a dead probe is over: it may be spawned again.
    pub fn respawn_due(&mut self, id: &str) {
        self.respawn_pending.remove(id);
    }

    /// Starts, retargets or stops the probe of one container to match `wanted` (what
    /// [`super::state::HostState::probe_target`] says). Returns when to try again when a spawn
    /// failed.
    pub async fn sync(&mut self, id: &str, wanted: Option<ProbeWanted>, supervisor: &ActorCell) -> Option<Duration> {
        match (wanted, self.slots.get_mut(id)) {
            (None, Some(_)) => {
                if let Some(slot) = self.slots.remove(id) {
                    slot.actor.stop(Some("container no longer monitored".into()));
                }
            }
            (Some((ip, response)), Some(slot)) => {
                if slot.ip != ip {
                    slot.ip = ip;
                    let _ = slot.actor.cast(ProbeMsg::SetTarget(ip));
                }
                if slot.response != response {
                    slot.response.clone_from(&response);
                    let _ = slot.actor.cast(ProbeMsg::SetResponse(response));
                }
            }
            (Some(wanted), None) if !self.respawn_pending.contains(id) => {
                return self.spawn(id, wanted, supervisor).await;
            }
            _ => {}
        }
        None
    }

    async fn spawn(&mut self, id: &str, (ip, response): ProbeWanted, supervisor: &ActorCell) -> Option<Duration> {
        let actor = ProbeActor {
            prober: self.prober.clone(),
            monitor: self.monitor.clone(),
            spec: self.spec,
            response_spec: self.response_spec,
            period: self.period,
        };
        let phase = rand::random::<u32>() % PHASES;
        let first_at = phase_start(epoch(), Instant::now(), self.period, phase);
        let args = ProbeArgs {
            container: id.to_owned(),
            target: ip,
            response: response.clone(),
            report: self.report.clone(),
            first_at,
        };
        match Actor::spawn_linked(None, actor, args, supervisor.clone()).await {
            Ok((actor, _)) => {
                self.slots.insert(id.to_owned(), ProbeSlot { actor, ip, response });
                None
            }
            Err(e) => {
                tracing::error!(container.id = %short_id(id), error = %e, "cannot spawn probe");
                Some(self.respawn_later(id))
            }
        }
    }

    /// A child died: when it was a probe, forgets it and says whose it was and when to spawn it
    /// again (a back-off that grows with its failures).
    pub fn exited(&mut self, cell: &ActorCell, why: &str) -> Option<(String, Duration)> {
        let id = self.slots.iter().find(|(_, s)| s.actor.get_id() == cell.get_id()).map(|(id, _)| id.clone())?;
        self.slots.remove(&id);
        tracing::warn!(container.id = %short_id(&id), reason = why, "probe actor exited");
        let delay = self.respawn_later(&id);
        Some((id, delay))
    }

    fn respawn_later(&mut self, id: &str) -> Duration {
        let failures = self.failures.entry(id.to_owned()).or_default();
        let delay = PROBE_RESPAWN.delay(*failures, 0.0);
        *failures = failures.saturating_add(1);
        self.respawn_pending.insert(id.to_owned());
        delay
    }
}
