//! Folding observations in: listings, inspections, engine events and probe windows.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::{HostState, RestartOp, Tracked};
use crate::model::{DockerState, ObservedContainer};
use crate::policy::health;
use crate::runtime::{EventKind, RuntimeEvent};

/// Engine events up to this long after one of our restarts ended are taken as that restart's.
const OWN_EVENTS_GRACE: Duration = Duration::from_secs(1);

/// What an engine event calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventEffect {
    /// The state is known: decide now.
    Reconcile(String),
    /// Ask the engine for the container's details first.
    Inspect(String),
    Nothing,
}

impl HostState {
    /// Records what the engine says about one container; out-of-scope ones are dropped.
    pub fn observe(&mut self, obs: ObservedContainer, now: Instant) {
        if !self.in_scope(&obs) {
            self.remove(&obs.id);
            return;
        }
        match self.containers.get_mut(&obs.id) {
            Some(t) => {
                if obs.state == DockerState::Running && t.obs.state != DockerState::Running {
                    t.running_since = now;
                    t.streak = 0;
                    t.lossy_since = None;
                }
                if obs.state == DockerState::Running {
                    t.died_at = None; // its `start` event may have been missed
                }
                t.obs = obs;
            }
            None => {
                let id = obs.id.clone();
                self.containers.insert(id, Tracked::new(obs, now));
            }
        }
    }

    /// Applies a full listing: observes every listed container, forgets the unlisted ones.
    /// Returns the ids of the forgotten.
    pub fn sync(&mut self, listed: Vec<ObservedContainer>, now: Instant) -> Vec<String> {
        let seen: BTreeSet<String> = listed.iter().map(|o| o.id.clone()).collect();
        for obs in listed {
            self.observe(obs, now);
        }
        let gone: Vec<String> = self.containers.keys().filter(|id| !seen.contains(*id)).cloned().collect();
        gone.iter().for_each(|id| self.remove(id));
        gone
    }

    /// Forgets a container, leaving a tombstone for delta pulls.
    pub fn remove(&mut self, id: &str) {
        if self.containers.remove(id).is_some() {
            self.tombstone(id);
        }
    }

    /// Folds an engine event into the state and says what it calls for.
    pub fn on_event(&mut self, ev: &RuntimeEvent, now: Instant) -> EventEffect {
        let Some(t) = self.containers.get_mut(&ev.id) else {
            let creates = matches!(ev.kind, EventKind::Start | EventKind::Health(_));
            return if creates { EventEffect::Inspect(ev.id.clone()) } else { EventEffect::Nothing };
        };
        match &ev.kind {
            EventKind::Die | EventKind::Stop | EventKind::Oom => {
                if t.obs.state == DockerState::Running {
                    t.died_at = ev.time.map(OffsetDateTime::from);
                }
                t.obs.state = DockerState::Exited;
                t.streak = 0;
                t.lossy_since = None;
                EventEffect::Reconcile(ev.id.clone())
            }
            EventKind::Health(h) => {
                t.obs.health = *h;
                EventEffect::Reconcile(ev.id.clone())
            }
            EventKind::Start => {
                t.stopped_externally = false;
                t.died_at = None;
                t.own_start_seen = true;
                if t.obs.state != DockerState::Running {
                    t.running_since = now;
                    t.streak = 0;
                    t.lossy_since = None;
                }
                t.obs.state = DockerState::Running;
                EventEffect::Inspect(ev.id.clone())
            }
            // a lethal signal is followed by `die`; the periodic resync covers the rest
            EventKind::Kill => {
                // only a kill-fast restart of ours sends a `kill`, before its `start`; the grace
                // covers a restart whose `start` never came (a failed start). A `kill` while we
                // only start a stopped container is someone else's, however long the start takes.
                let ended_lately = t.restart_ended.is_some_and(|at| now.duration_since(at) < OWN_EVENTS_GRACE);
                let ours = t.own_op == Some(RestartOp::Restart)
                    && (t.tracker.in_flight() || (!t.own_start_seen && ended_lately));
                if !ours {
                    t.stopped_externally = true;
                }
                EventEffect::Nothing
            }
            EventKind::Destroy => {
                self.remove(&ev.id);
                EventEffect::Nothing
            }
        }
    }

    /// Folds a probe window in. Returns false when the window was stale and discarded.
    pub fn on_window(&mut self, id: &str, ip: IpAddr, started: Instant, loss: f64) -> bool {
        let threshold = match self.containers.get(id) {
            Some(t) => self.threshold_of(&t.obs),
            None => return false,
        };
        let Some(t) = self.containers.get_mut(id) else { return false };
        let current = t.obs.state == DockerState::Running && t.obs.ip == Some(ip);
        if !current || t.tracker.in_flight() || started < t.running_since {
            return false;
        }
        t.loss = Some(loss);
        t.shown_loss = Some(health::published_loss(t.shown_loss, loss, threshold));
        let streak = health::next_streak(t.streak, loss, threshold);
        t.lossy_since = match (t.streak, streak) {
            (_, 0) => None,
            (0, _) => Some(started),
            _ => t.lossy_since,
        };
        t.streak = streak;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::Plan;
    use super::super::fixtures::{event, obs};
    use super::*;
    use crate::policy::RestartPolicy;

    #[test]
    fn a_kill_while_we_only_start_a_container_is_someone_elses() {
        let (policy, wall, id) = (RestartPolicy::default(), OffsetDateTime::UNIX_EPOCH, "a".repeat(64));
        let mut h = HostState::new("h".into(), 30, 2, None);
        let t0 = Instant::now();
        h.observe(obs(DockerState::Running), t0);
        // a crash: counted, started at once
        h.on_event(&event(EventKind::Die), t0);
        assert!(matches!(h.plan(&id, &policy, t0, wall, 0.0), Plan::Act { op: RestartOp::Start, .. }));
        // while our slow start is in flight, someone stops the container again
        h.on_event(&event(EventKind::Start), t0);
        h.on_event(&event(EventKind::Kill), t0);
        h.on_event(&event(EventKind::Die), t0);
        h.restart_done(&id, Some(obs(DockerState::Exited)), t0);
        // a second crash would wait for the back-off; someone's stop is started at once
        let plan = h.plan(&id, &policy, t0, wall, 0.0);
        assert!(matches!(plan, Plan::Act { op: RestartOp::Start, .. }), "{plan:?}");
    }
}
