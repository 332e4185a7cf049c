//! `ProbeActor`: one per monitored container, running one ICMP window per probe period.
//!
//! It reports every window to its supervising host manager and never decides anything itself.
//! A panic in the prober fails the actor; the manager re-spawns it with back-off.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;
use tracing::Instrument;

use super::host_manager::HostMsg;
use crate::probe::{Prober, WindowSpec};

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
}

/// Local only: never crosses nodes.
impl ractor::Message for ProbeMsg {}

/// The read-only half: what to probe with and whom to tell.
pub struct ProbeActor {
    pub prober: Arc<dyn Prober>,
    pub spec: WindowSpec,
    pub period: Duration,
}

/// Start-up arguments.
pub struct ProbeArgs {
    /// Full id of the probed container.
    pub container: String,
    pub target: Option<IpAddr>,
    pub manager: ActorRef<HostMsg>,
    /// Delay before the first window, to stagger many probes.
    pub first_delay: Duration,
}

/// The mutable half.
pub struct ProbeState {
    container: String,
    target: Option<IpAddr>,
    manager: ActorRef<HostMsg>,
}

impl Actor for ProbeActor {
    type Msg = ProbeMsg;
    type State = ProbeState;
    type Arguments = ProbeArgs;

    async fn pre_start(&self, myself: ActorRef<ProbeMsg>, args: ProbeArgs) -> Result<ProbeState, ActorProcessingErr> {
        myself.send_after(args.first_delay, || ProbeMsg::Tick);
        Ok(ProbeState { container: args.container, target: args.target, manager: args.manager })
    }

    async fn handle(
        &self,
        myself: ActorRef<ProbeMsg>,
        msg: ProbeMsg,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProbeMsg::Tick => {
                myself.send_after(self.period, || ProbeMsg::Tick);
                self.window(state).await;
            }
            ProbeMsg::Confirm => self.window(state).await,
            ProbeMsg::SetTarget(ip) => state.target = ip,
        }
        Ok(())
    }
}

impl ProbeActor {
    /// Runs one window and reports it to the manager. (A `Tick` schedules the next one first, one
    /// period after this one's start.)
    async fn window(&self, state: &ProbeState) {
        let Some(ip) = state.target else { return };
        let started = Instant::now();
        let span =
            tracing::debug_span!("probe_window", container.id = %crate::model::short_id(&state.container), ip = %ip);
        let result = self.prober.window(ip, self.spec).instrument(span).await;
        let msg = match result {
            Ok(stats) => HostMsg::Window { id: state.container.clone(), ip, started, stats },
            Err(e) => {
                tracing::warn!(container.id = %crate::model::short_id(&state.container), error = %e, "probe window failed");
                return;
            }
        };
        let _ = state.manager.cast(msg);
    }
}
