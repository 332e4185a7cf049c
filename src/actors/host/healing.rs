//! Healing strategies: how a host manager heals, behind one narrow trait, [`Healing`].
//!
//! The manager picks one with [`for_mode`] from `config.heal` once, at start-up, and only ever
//! calls the trait; no other code branches on the mode.
//! - [`HmsHealing`]: engine events, a confirmation window at once when a loss needs confirming,
//!   the restart policy, a fresh decision after every restart, delta pulls.
//! - [`SeedHealing`]: the seed's way (the experiments' baseline): listing sweeps instead of
//!   events, decisions only in its sweep (none after a restart), full content on every pull.
//! - [`NoHealing`]: watch and report; never plans a restart, never asks for a confirmation.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::probe::WindowReport;
use super::state::{HostState, Plan};
use crate::config::HealMode;
use crate::policy::RestartPolicy;

/// A failed restart is decided on again after this long (besides at once).
const RETRY_FAILED_RESTART: Duration = Duration::from_millis(100);

/// The clock readings a decision needs, taken by the manager (strategies never read a clock).
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    pub now: Instant,
    pub wall: OffsetDateTime,
    /// A uniform random number in [0, 1) for the back-off's jitter.
    pub unit: f64,
}

impl Moment {
    /// The readings now.
    pub fn now() -> Self {
        Self { now: Instant::now(), wall: OffsetDateTime::now_utc(), unit: rand::random() }
    }
}

/// What a probe window calls for, in the order the manager carries it out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowEffect {
    /// The window was folded in and judged: carry this plan out and publish the change
    /// (`None`: the window was stale and discarded).
    pub judged: Option<Plan>,
    /// Run the container's next window at once: its loss is over the threshold but not yet
    /// confirmed, so it is restarted one window later instead of one probe period later.
    pub confirm_now: bool,
}

/// What follows the end of a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRestart {
    /// Nothing now: the next listing sweep looks at the container again.
    NextSweep,
    /// Decide again now, and once more after `retry` (a failed restart).
    Reconcile { retry: Option<Duration> },
}

/// The decisions that differ between ways of healing.
pub trait Healing: Send + Sync {
    /// Whether the engine's event stream is watched; without it, the periodic listing is all.
    fn watches_events(&self) -> bool;
    /// What one container needs now.
    fn plan(&self, host: &mut HostState, id: &str, at: &Moment) -> Plan;
    /// Folds a probe window in and says what it calls for.
    fn on_window(&self, host: &mut HostState, w: &WindowReport, at: &Moment) -> WindowEffect;
    /// What follows the end of a restart (`failed`: the engine refused it).
    fn after_restart(&self, failed: bool) -> AfterRestart;
    /// The version a pull is answered from, given the one the puller asked (`None`: everything).
    fn answer_from(&self, asked: Option<u64>) -> Option<u64>;
}

/// The strategy of a heal mode.
pub fn for_mode(mode: HealMode, policy: &RestartPolicy) -> Box<dyn Healing> {
    match mode {
        HealMode::Hms => Box::new(HmsHealing { policy: policy.clone() }),
        HealMode::Seed => Box::new(SeedHealing { policy: policy.clone() }),
        HealMode::Off => Box::new(NoHealing),
    }
}

/// Folds a window in, judges it with `plan` when it was fresh, and asks for a confirmation
/// window when the judgement left the loss unconfirmed.
fn judge(host: &mut HostState, w: &WindowReport, plan: impl FnOnce(&mut HostState) -> Plan) -> WindowEffect {
    let judged = host.on_window(&w.id, w.ip, w.started, w.stats.loss()).then(|| plan(host));
    WindowEffect { judged, confirm_now: host.awaits_confirmation(&w.id) }
}

/// HMS's own way (the default).
pub struct HmsHealing {
    pub policy: RestartPolicy,
}

impl Healing for HmsHealing {
    fn watches_events(&self) -> bool {
        true
    }

    fn plan(&self, host: &mut HostState, id: &str, at: &Moment) -> Plan {
        host.plan(id, &self.policy, at.now, at.wall, at.unit)
    }

    fn on_window(&self, host: &mut HostState, w: &WindowReport, at: &Moment) -> WindowEffect {
        judge(host, w, |host| self.plan(host, &w.id, at))
    }

    fn after_restart(&self, failed: bool) -> AfterRestart {
        AfterRestart::Reconcile { retry: failed.then_some(RETRY_FAILED_RESTART) }
    }

    fn answer_from(&self, asked: Option<u64>) -> Option<u64> {
        asked
    }
}

/// The seed's way: it polled, decided only in its sweep and sent its whole log every time.
pub struct SeedHealing {
    pub policy: RestartPolicy,
}

impl Healing for SeedHealing {
    fn watches_events(&self) -> bool {
        false
    }

    fn plan(&self, host: &mut HostState, id: &str, at: &Moment) -> Plan {
        host.plan(id, &self.policy, at.now, at.wall, at.unit)
    }

    fn on_window(&self, host: &mut HostState, w: &WindowReport, at: &Moment) -> WindowEffect {
        judge(host, w, |host| self.plan(host, &w.id, at))
    }

    fn after_restart(&self, _failed: bool) -> AfterRestart {
        AfterRestart::NextSweep
    }

    fn answer_from(&self, _asked: Option<u64>) -> Option<u64> {
        None
    }
}

/// Watch and report, never heal.
pub struct NoHealing;

impl Healing for NoHealing {
    fn watches_events(&self) -> bool {
        true
    }

    fn plan(&self, _host: &mut HostState, _id: &str, _at: &Moment) -> Plan {
        Plan::Nothing
    }

    fn on_window(&self, host: &mut HostState, w: &WindowReport, _at: &Moment) -> WindowEffect {
        let judged = host.on_window(&w.id, w.ip, w.started, w.stats.loss()).then_some(Plan::Nothing);
        WindowEffect { judged, confirm_now: false }
    }

    fn after_restart(&self, failed: bool) -> AfterRestart {
        AfterRestart::Reconcile { retry: failed.then_some(RETRY_FAILED_RESTART) }
    }

    fn answer_from(&self, asked: Option<u64>) -> Option<u64> {
        asked
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use super::*;
    use crate::model::{DockerState, Health, ObservedContainer};
    use crate::policy::health::Reason;
    use crate::probe::WindowStats;

    const IP: [u8; 4] = [172, 17, 0, 2];

    fn host(confirm: u32, state: DockerState) -> HostState {
        let mut h = HostState::new("h".into(), 30, confirm, None);
        let obs = ObservedContainer {
            id: "a".repeat(64),
            name: "web".into(),
            image: "img".into(),
            ip: Some(IpAddr::from(IP)),
            labels: BTreeMap::new(),
            state,
            health: Health::None,
        };
        h.observe(obs, Instant::now());
        h
    }

    fn window(loss_of_20: usize) -> WindowReport {
        let rtts = vec![Duration::from_millis(1); 20 - loss_of_20];
        WindowReport {
            id: "a".repeat(64),
            ip: IpAddr::from(IP),
            started: Instant::now(),
            stats: WindowStats::from_rtts(20, &rtts),
            signals: Default::default(),
        }
    }

    fn at() -> Moment {
        Moment { now: Instant::now(), wall: OffsetDateTime::UNIX_EPOCH, unit: 0.0 }
    }

    fn hms() -> Box<dyn Healing> {
        for_mode(HealMode::Hms, &RestartPolicy::default())
    }

    #[test]
    fn hms_confirms_a_lossy_window_at_once_and_restarts_on_the_confirming_one() {
        let (s, mut h) = (hms(), host(2, DockerState::Running));
        let first = s.on_window(&mut h, &window(12), &at());
        assert_eq!(first, WindowEffect { judged: Some(Plan::Nothing), confirm_now: true });
        let second = s.on_window(&mut h, &window(12), &at());
        assert!(matches!(second.judged, Some(Plan::Act { reason: Reason::PacketLoss(_), .. })), "{second:?}");
        assert!(!second.confirm_now, "a restart in flight needs no confirmation");
        let quiet = s.on_window(&mut h, &window(0), &at());
        assert_eq!(quiet, WindowEffect { judged: None, confirm_now: false }, "stale while restarting");
    }

    #[test]
    fn hms_watches_events_decides_after_every_restart_and_answers_deltas() {
        let s = hms();
        assert!(s.watches_events());
        assert_eq!(s.after_restart(false), AfterRestart::Reconcile { retry: None });
        assert_eq!(s.after_restart(true), AfterRestart::Reconcile { retry: Some(RETRY_FAILED_RESTART) });
        assert_eq!(s.answer_from(Some(7)), Some(7));
        let mut h = host(2, DockerState::Exited);
        assert!(matches!(s.plan(&mut h, &"a".repeat(64), &at()), Plan::Act { reason: Reason::Down, .. }));
    }

    #[test]
    fn seed_polls_leaves_restarts_to_its_sweep_and_sends_everything() {
        let s = for_mode(HealMode::Seed, &RestartPolicy::default());
        assert!(!s.watches_events());
        assert_eq!(s.after_restart(true), AfterRestart::NextSweep);
        assert_eq!(s.answer_from(Some(7)), None);
        let mut h = host(1, DockerState::Running);
        let effect = s.on_window(&mut h, &window(12), &at());
        assert!(matches!(effect.judged, Some(Plan::Act { reason: Reason::PacketLoss(_), .. })), "{effect:?}");
        assert!(!effect.confirm_now);
    }

    #[test]
    fn no_healing_never_plans_nor_asks_for_a_confirmation() {
        let s = for_mode(HealMode::Off, &RestartPolicy::default());
        assert!(s.watches_events());
        assert_eq!(s.answer_from(Some(7)), Some(7));
        let mut h = host(2, DockerState::Running);
        let effect = s.on_window(&mut h, &window(12), &at());
        assert_eq!(effect, WindowEffect { judged: Some(Plan::Nothing), confirm_now: false });
        let mut dead = host(2, DockerState::Exited);
        assert_eq!(s.plan(&mut dead, &"a".repeat(64), &at()), Plan::Nothing);
    }
}
