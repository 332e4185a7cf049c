//! The healing plan: what one container needs now, under the restart policy, and the state its
//! record shows.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::{HostState, Tracked};
use crate::model::{ContainerState, DockerState, ObservedContainer};
use crate::policy::health::{self, Need, Reason};
use crate::policy::{Decision, RestartPolicy};

/// What to start or restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartOp {
    /// `docker start` a stopped container.
    Start,
    /// Kill-fast restart of a running container.
    Restart,
}

/// What the actor must do for one container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    Nothing,
    /// `down_for`: since the engine's `die` of a container we start, when an event told it.
    Act {
        op: RestartOp,
        reason: Reason,
        attempt: u64,
        down_for: Option<Duration>,
    },
    RetryAfter(Duration),
    Quarantined {
        until: Instant,
    },
    /// A loss restart held because most of the host's containers lose packets at once
    /// ([`health::loss_is_host_wide`]); the next window decides again.
    HeldHostWide {
        lossy: usize,
        probed: usize,
    },
}

impl HostState {
    /// Running, monitored containers with a probed loss: (over their threshold, all of them).
    fn lossy_and_probed(&self) -> (usize, usize) {
        let probed = self
            .containers
            .values()
            .filter(|t| t.obs.state == DockerState::Running && t.loss.is_some() && !self.is_ignored(&t.obs));
        probed.fold((0, 0), |(lossy, all), t| (lossy + usize::from(t.streak > 0), all + 1))
    }

    /// Decides what one container needs now, recording a restart it orders.
    pub fn plan(&mut self, id: &str, policy: &RestartPolicy, now: Instant, wall: OffsetDateTime, unit: f64) -> Plan {
        let Some(t) = self.containers.get(id) else { return Plan::Nothing };
        if self.is_ignored(&t.obs) {
            return Plan::Nothing;
        }
        let confirm = self.confirm;
        let Some(t) = self.containers.get_mut(id) else { return Plan::Nothing };
        if t.retry_at.is_some_and(|at| at <= now) {
            t.retry_at = None;
        }
        let need = health::verdict(t.obs.state, t.obs.health, t.streak, confirm, t.loss.unwrap_or(0.0));
        let (op, reason) = match need {
            Need::Nothing => return Plan::Nothing,
            Need::Start(r) => (RestartOp::Start, r),
            Need::Restart(r) => (RestartOp::Restart, r),
        };
        if matches!(reason, Reason::PacketLoss(_)) {
            let (lossy, probed) = self.lossy_and_probed();
            let evidence = self.loss_evidence;
            if health::loss_is_host_wide(lossy, probed) {
                self.host_wide_at = Some(now);
                return Plan::HeldHostWide { lossy, probed };
            }
            // after a host-wide episode, every container is probed again before any is judged:
            // the streaks of the ones not probed since it ended are stale
            if self.host_wide_at.is_some_and(|at| now < at + evidence) {
                return Plan::HeldHostWide { lossy, probed };
            }
            let Some(t) = self.containers.get_mut(id) else { return Plan::Nothing };
            let ready = t.lossy_since.map_or(now, |since| since + evidence);
            if probed >= health::HOST_WIDE_MIN && now < ready {
                if t.retry_at.is_some() {
                    return Plan::Nothing;
                }
                t.retry_at = Some(ready);
                return Plan::RetryAfter(ready - now);
            }
        }
        let Some(t) = self.containers.get_mut(id) else { return Plan::Nothing };
        // A crash loop is what back-off and quarantine are for; a container someone stopped
        // through the API is started again at once, and that start is not held against it.
        let external = op == RestartOp::Start && t.stopped_externally;
        let decision = if external { t.tracker.decide_external(now) } else { t.tracker.decide(policy, now, unit) };
        match decision {
            Decision::Now => {
                if external {
                    t.tracker.begin_external();
                } else {
                    t.tracker.begin(policy, now);
                }
                t.restarts += 1;
                t.own_start_seen = false;
                t.own_op = Some(op);
                t.last_restart = Some(wall);
                t.streak = 0;
                t.lossy_since = None;
                let down_for = (t.died_at.filter(|_| op == RestartOp::Start))
                    .map(|died| Duration::try_from(wall - died).unwrap_or(Duration::ZERO));
                Plan::Act { op, reason, attempt: t.restarts, down_for }
            }
            Decision::After(d) if t.retry_at.is_none() => {
                t.retry_at = Some(now + d);
                Plan::RetryAfter(d)
            }
            Decision::Quarantine { until } => {
                t.tracker.quarantine(until);
                t.retry_at = Some(until);
                Plan::Quarantined { until }
            }
            Decision::After(_) | Decision::InFlight | Decision::Quarantined => Plan::Nothing,
        }
    }

    /// A restart ended; `obs` is the container as inspected afterwards.
    pub fn restart_done(&mut self, id: &str, obs: Option<ObservedContainer>, now: Instant) {
        if let Some(t) = self.containers.get_mut(id) {
            t.tracker.finish();
            t.restart_ended = Some(now);
        }
        match obs {
            Some(obs) => self.observe(obs, now),
            None => self.remove(id),
        }
    }

    /// A restart ended but the container's state could not be read.
    pub fn restart_done_unknown(&mut self, id: &str) {
        if let Some(t) = self.containers.get_mut(id) {
            t.tracker.finish();
        }
    }

    /// The published state of a container.
    pub(super) fn published_state(&self, t: &Tracked, now: Instant) -> ContainerState {
        if self.is_ignored(&t.obs) {
            return ContainerState::Ignored;
        }
        if t.tracker.is_quarantined(now) {
            return ContainerState::Quarantined;
        }
        if t.tracker.in_flight() {
            return ContainerState::Restarting;
        }
        match t.obs.state {
            DockerState::Running => ContainerState::Running,
            DockerState::Restarting => ContainerState::Restarting,
            DockerState::Exited | DockerState::Dead | DockerState::Created => ContainerState::Stopped,
            _ => ContainerState::Unknown,
        }
    }

    /// Over the threshold in fewer than `confirm` windows: the loss needs confirming, and the
    /// next window should come at once rather than a probe period later.
    pub fn awaits_confirmation(&self, id: &str) -> bool {
        self.containers.get(id).is_some_and(|t| t.streak > 0 && t.streak < self.confirm)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::fixtures::obs;
    use super::*;
    use crate::runtime::{EventKind, RuntimeEvent};

    #[test]
    fn a_start_carries_how_long_the_engine_says_the_container_was_down() {
        let (policy, id) = (RestartPolicy::default(), "a".repeat(64));
        let died = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut h = HostState::new("h".into(), 30, 2, None);
        let t0 = Instant::now();
        h.observe(obs(DockerState::Running), t0);
        let at = |kind, t: OffsetDateTime| RuntimeEvent { id: id.clone(), kind, time: Some(t.into()) };
        h.on_event(&at(EventKind::Die, died), t0);
        // the `stop` that follows a `die` does not move the death
        h.on_event(&at(EventKind::Stop, died + Duration::from_millis(40)), t0);
        let plan = h.plan(&id, &policy, t0, died + Duration::from_millis(250), 0.0);
        let Plan::Act { down_for, .. } = plan else { panic!("{plan:?}") };
        assert_eq!(down_for, Some(Duration::from_millis(250)));
        // a start forgets it; a death told by a listing has none
        h.on_event(&at(EventKind::Start, died + Duration::from_secs(1)), t0);
        h.restart_done(&id, Some(obs(DockerState::Running)), t0);
        h.observe(obs(DockerState::Exited), t0);
        let plan = h.plan(&id, &policy, t0 + Duration::from_secs(60), died + Duration::from_secs(61), 0.0);
        assert!(matches!(plan, Plan::Act { down_for: None, .. }), "{plan:?}");
    }

    #[test]
    fn loss_restarts_wait_while_most_of_the_host_loses_packets() {
        let (policy, wall) = (RestartPolicy::default(), OffsetDateTime::UNIX_EPOCH);
        let mut h = HostState::new("h".into(), 30, 2, None);
        let t0 = Instant::now();
        let ids: Vec<String> = (0..20).map(|i| format!("{i:064}")).collect();
        let ip = |i: usize| IpAddr::from([172, 17, 1, u8::try_from(i).unwrap()]);
        for (i, id) in ids.iter().enumerate() {
            h.observe(ObservedContainer { id: id.clone(), ip: Some(ip(i)), ..obs(DockerState::Running) }, t0);
        }
        let windows = |h: &mut HostState, lossy: usize| {
            for _ in 0..2 {
                for (i, id) in ids.iter().enumerate() {
                    assert!(h.on_window(id, ip(i), t0, if i < lossy { 60.0 } else { 0.0 }));
                }
            }
        };
        let t1 = t0 + h.loss_evidence;
        windows(&mut h, 2);
        // the loss has not lasted a probe period: wait for every container's window
        let plan = h.plan(&ids[0], &policy, t0, wall, 0.0);
        assert!(matches!(plan, Plan::RetryAfter(d) if d == h.loss_evidence), "{plan:?}");
        windows(&mut h, 11);
        let plan = h.plan(&ids[0], &policy, t1, wall, 0.0);
        assert!(matches!(plan, Plan::HeldHostWide { lossy: 11, probed: 20 }), "{plan:?}");
        // a death is still healed at once
        h.observe(ObservedContainer { id: ids[19].clone(), ip: Some(ip(19)), ..obs(DockerState::Exited) }, t0);
        assert!(matches!(h.plan(&ids[19], &policy, t0, wall, 0.0), Plan::Act { op: RestartOp::Start, .. }));
        // once the loss is local again (10 of 20), the lossy containers are restarted
        let back = ObservedContainer { id: ids[19].clone(), ip: Some(ip(19)), ..obs(DockerState::Running) };
        h.restart_done(&ids[19], Some(back), t0);
        windows(&mut h, 10);
        let plan = h.plan(&ids[0], &policy, t1, wall, 0.0);
        assert!(matches!(plan, Plan::HeldHostWide { lossy: 10, .. }), "a probe period after the episode: {plan:?}");
        let plan = h.plan(&ids[0], &policy, t1 + h.loss_evidence, wall, 0.0);
        assert!(matches!(plan, Plan::Act { op: RestartOp::Restart, reason: Reason::PacketLoss(_), .. }), "{plan:?}");
    }

    #[test]
    fn a_window_over_the_threshold_awaits_confirmation_until_the_streak_is_confirmed() {
        let (id, ip) = ("a".repeat(64), "172.17.0.2".parse().unwrap());
        let mut h = HostState::new("h".into(), 30, 2, None);
        let t0 = Instant::now();
        h.observe(obs(DockerState::Running), t0);
        assert!(!h.awaits_confirmation(&id));
        assert!(h.on_window(&id, ip, t0, 60.0));
        assert!(h.awaits_confirmation(&id), "one window of two");
        assert!(h.on_window(&id, ip, t0, 60.0));
        assert!(!h.awaits_confirmation(&id), "confirmed: the plan decides");
        assert!(!h.awaits_confirmation("unknown"));
    }
}
