//! `ProbeActor`: one per monitored container, running one window per probe period: an ICMP
//! window, and with a response-time probe (`hms.probe`) a response-time window beside it, after
//! reading the container's counters (CPU, memory, network namespace).
//!
//! It reports every window with the period's [`Signals`] to its supervising host manager and
//! never decides anything itself. A panic in the prober fails the actor; the manager re-spawns
//! it with back-off.
//!
//! Readings are taken at the start of each window, so between two readings exactly one window
//! of this actor ran, and its own connections and echo requests are taken out of the workload
//! exactly ([`crate::analysis::signals`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;
use tracing::Instrument;

use crate::analysis::signals::{self, Counters, OwnTraffic, Signals, WorkloadUnit};
use crate::probe::response::{FakeResponder, ResponseEngine, ResponseProber, ResponseSpec, ResponseTarget};
use crate::probe::{ProbeError, Prober, WindowSpec, WindowStats};
use crate::resources::sensors::{FakeSensors, HostSensors, Sensors};

/// What a probe measures with besides ICMP: response times and counters.
#[derive(Clone)]
pub struct Monitor {
    pub response: Arc<dyn ResponseProber>,
    pub sensors: Arc<dyn Sensors>,
}

impl Monitor {
    /// This machine: the process's response-time engine, its cgroup and proc files.
    pub fn real() -> Result<Self, ProbeError> {
        let response = Arc::new(ResponseEngine::new()?);
        Ok(Self { response, sensors: Arc::new(HostSensors::new()) })
    }

    /// Fakes: every service answers in 5 ms, no counters (actor tests).
    pub fn fake() -> Self {
        Self::fakes(FakeResponder::new(), FakeSensors::new())
    }

    /// Given fakes, kept by the caller to steer them.
    pub fn fakes(response: FakeResponder, sensors: FakeSensors) -> Self {
        Self { response: Arc::new(response), sensors: Arc::new(sensors) }
    }
}

/// Messages of a probe actor.
#[derive(Debug)]
pub enum ProbeMsg {
    /// Run one window now (scheduled by the actor itself).
    Tick,
    /// Run one extra window now, leaving the schedule alone: the manager asks for it when a
    /// window went over the threshold and the loss still needs confirming, so a lossy container
    /// is restarted one window later instead of one probe period later.
    Confirm,
    /// The container's address changed; `None` pauses probing.
    SetTarget(Option<IpAddr>),
    /// The container's response-time probe changed; `None`: none.
    SetResponse(Option<ResponseTarget>),
}

/// Local only: never crosses nodes.
impl ractor::Message for ProbeMsg {}

/// The read-only half: what to probe with and whom to tell.
pub struct ProbeActor {
    pub prober: Arc<dyn Prober>,
    /// `None`: ICMP only (`--no-monitor`).
    pub monitor: Option<Monitor>,
    pub spec: WindowSpec,
    pub response_spec: ResponseSpec,
    pub period: Duration,
}

/// One finished window, as reported to the probe's owner.
#[derive(Debug, Clone)]
pub struct WindowReport {
    /// Full id of the probed container.
    pub id: String,
    pub ip: IpAddr,
    pub started: Instant,
    pub stats: WindowStats,
    /// The period's response time, workload and resources.
    pub signals: Signals,
}

/// Where a probe reports its windows (its manager); false when the owner is gone.
pub type ReportTo = Arc<dyn Fn(WindowReport) -> bool + Send + Sync>;

/// Start-up arguments.
pub struct ProbeArgs {
    /// Full id of the probed container.
    pub container: String,
    pub target: Option<IpAddr>,
    pub response: Option<ResponseTarget>,
    pub report: ReportTo,
    /// When the first window starts: a [`phase_start`], so the probes of a process share
    /// [`PHASES`] instants per period.
    pub first_at: Instant,
}

/// The mutable half.
pub struct ProbeState {
    container: String,
    target: Option<IpAddr>,
    response: Option<ResponseTarget>,
    report: ReportTo,
    /// When the next scheduled window starts.
    next: Instant,
    /// The last reading of the container's counters.
    last: Option<(Instant, Counters)>,
    /// What the window run since that reading sent the container.
    own: OwnTraffic,
}

/// Windows start in this many phases per probe period. Probes of the same phase wake the runtime
/// once, together, for their timers and again for their results: on a VM a wake-up costs tens of
/// microseconds, which with a phase per probe was a fifth of the CPU of probing 100 containers.
pub const PHASES: u32 = 10;

/// The instant all phases are counted from (the first call in this process).
pub fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The first start of phase `phase` (of [`PHASES`]) at or after `now`: the instants
/// `epoch + period × (phase / PHASES + k)`, k ≥ 0.
pub fn phase_start(epoch: Instant, now: Instant, period: Duration, phase: u32) -> Instant {
    let p = period.as_nanos().max(1);
    let offset = p * u128::from(phase % PHASES) / u128::from(PHASES);
    let since = now.saturating_duration_since(epoch).as_nanos();
    let k = since.saturating_sub(offset).div_ceil(p);
    epoch + nanos(offset + k * p)
}

/// The start after `next` on its grid of period `period`: one period on, or the first one at or
/// after `now` when the actor fell behind (missed windows are skipped, the phase is kept).
pub fn following(next: Instant, now: Instant, period: Duration) -> Instant {
    let p = period.as_nanos().max(1);
    let behind = now.saturating_duration_since(next).as_nanos();
    next + nanos(behind.div_ceil(p).max(1) * p)
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

/// Sends `Tick` at `at` (an absolute deadline, so the timers of one phase stay together).
fn tick_at(myself: &ActorRef<ProbeMsg>, at: Instant) {
    let me = myself.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        let _ = me.cast(ProbeMsg::Tick);
    });
}

impl Actor for ProbeActor {
    type Msg = ProbeMsg;
    type State = ProbeState;
    type Arguments = ProbeArgs;

    async fn pre_start(&self, myself: ActorRef<ProbeMsg>, args: ProbeArgs) -> Result<ProbeState, ActorProcessingErr> {
        tick_at(&myself, args.first_at);
        Ok(ProbeState {
            container: args.container,
            target: args.target,
            response: args.response,
            report: args.report,
            next: args.first_at,
            last: None,
            own: OwnTraffic::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ProbeMsg>,
        msg: ProbeMsg,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProbeMsg::Tick => {
                state.next = following(state.next, Instant::now(), self.period);
                tick_at(&myself, state.next);
                self.window(state).await;
            }
            ProbeMsg::Confirm => self.window(state).await,
            ProbeMsg::SetTarget(ip) => {
                state.target = ip;
                state.last = None;
            }
            ProbeMsg::SetResponse(target) => {
                state.response = target;
                state.last = None;
            }
        }
        Ok(())
    }

    async fn post_stop(&self, _myself: ActorRef<ProbeMsg>, state: &mut ProbeState) -> Result<(), ActorProcessingErr> {
        if let Some(m) = &self.monitor {
            m.sensors.forget(&state.container);
        }
        Ok(())
    }
}

impl ProbeActor {
    /// Runs one window and reports it to the manager. (A `Tick` schedules the next one first, one
    /// period after this one's scheduled start.)
    async fn window(&self, state: &mut ProbeState) {
        let Some(ip) = state.target else { return };
        let started = Instant::now();
        let mut signals = self.read(state, started);
        let span =
            tracing::debug_span!("probe_window", container.id = %crate::model::short_id(&state.container), ip = %ip);
        let icmp = self.prober.window(ip, self.spec);
        let response = async {
            match (&state.response, &self.monitor) {
                (Some(target), Some(m)) => Some(m.response.window(ip, target, self.response_spec).await),
                _ => None,
            }
        };
        let (result, response) = async { futures::join!(icmp, response) }.instrument(span).await;
        let response = response.and_then(|r| {
            r.inspect_err(|e| tracing::warn!(container.id = %crate::model::short_id(&state.container), error = %e, "response-time window failed"))
                .ok()
        });
        state.own = OwnTraffic {
            connections: response.map_or(0, |r| r.connected),
            echoes: result.as_ref().map_or(self.spec.count, |s| s.sent),
        };
        if let Some(r) = response {
            signals.response_ms = r.median.map(|m| m.as_secs_f64() * 1000.0);
            signals.response_failed = r.failed_share();
        }
        let report = match result {
            Ok(stats) => WindowReport { id: state.container.clone(), ip, started, stats, signals },
            Err(e) => {
                tracing::warn!(container.id = %crate::model::short_id(&state.container), error = %e, "probe window failed");
                return;
            }
        };
        (state.report)(report);
    }

    /// Reads the counters and turns them into rates against the last reading.
    fn read(&self, state: &mut ProbeState, now: Instant) -> Signals {
        let Some(monitor) = &self.monitor else { return Signals::default() };
        let unit = if state.response.is_some() { WorkloadUnit::Requests } else { WorkloadUnit::Packets };
        let counters = monitor.sensors.container(&state.container, unit.counter());
        let (before, elapsed) = match &state.last {
            Some((at, before)) => (*before, now.saturating_duration_since(*at)),
            None => (Counters::default(), Duration::ZERO),
        };
        state.last = Some((now, counters));
        signals::rates(&before, &counters, elapsed, state.own, unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PERIOD: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_phase_starts_at_its_share_of_the_period() {
        let e = Instant::now();
        assert_eq!(phase_start(e, e, PERIOD, 0), e);
        assert_eq!(phase_start(e, e, PERIOD, 3), e + ms(300));
        assert_eq!(phase_start(e, e + ms(301), PERIOD, 3), e + ms(1300));
        assert_eq!(phase_start(e, e + ms(1300), PERIOD, 3), e + ms(1300));
        assert_eq!(phase_start(e, e + ms(50), PERIOD, 13), e + ms(300), "phases wrap");
    }

    #[test]
    fn the_next_window_is_one_period_on_unless_the_actor_fell_behind() {
        let e = Instant::now();
        assert_eq!(following(e, e + ms(5), PERIOD), e + ms(1000));
        assert_eq!(following(e, e + ms(2500), PERIOD), e + ms(3000), "two missed windows skipped");
        assert_eq!(following(e, e + ms(3000), PERIOD), e + ms(3000));
    }

    proptest! {
        #[test]
        fn phase_starts_are_on_the_grid_within_one_period(
            since in 0u64..100_000_000,
            period_ms in 1u64..10_000,
            phase in 0u32..100,
        ) {
            let e = Instant::now();
            let (now, period) = (e + Duration::from_micros(since), ms(period_ms));
            let at = phase_start(e, now, period, phase);
            prop_assert!(at >= now && at < now + period);
            let offset = period.as_nanos() * u128::from(phase % PHASES) / u128::from(PHASES);
            prop_assert_eq!(((at - e).as_nanos() - offset) % period.as_nanos(), 0);
            let later = now + Duration::from_micros(since % 7_000_000);
            let next = following(at, later, period);
            prop_assert!(next > at && (next - at).as_nanos().is_multiple_of(period.as_nanos()));
            prop_assert!(next >= later && next < later.max(at) + period + period);
        }
    }
}
