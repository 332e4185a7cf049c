//! The manager's requests to the engine: listings, inspections and (re)starts, each in its own
//! task, at most [`RESTARTS_IN_FLIGHT`] restarts per host at once (each still one per container,
//! which the state guarantees). Outcomes come back through callbacks, which the manager turns
//! into messages: a handler never waits for the engine.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

use super::state::RestartOp;
use crate::model::{ObservedContainer, short_id};
use crate::runtime::{ContainerRuntime, RuntimeError, Selector};

/// Restarts a manager runs at once; more wait their turn (each still one per container). A
/// thousand at once took a Docker daemon down on a 2-core machine.
pub const RESTARTS_IN_FLIGHT: usize = 8;

/// One (re)start to carry out.
#[derive(Debug, Clone, Copy)]
pub struct RestartJob<'a> {
    pub id: &'a str,
    pub op: RestartOp,
    pub reason: &'static str,
    pub attempt: u64,
    /// Since the engine's `die`, when an event told it.
    pub down_for: Option<Duration>,
}

/// How a restart ended: the engine's answer, and the container inspected afterwards.
#[derive(Debug)]
pub struct RestartOutcome {
    pub id: String,
    pub error: Option<RuntimeError>,
    pub obs: Inspection,
}

/// An inspection's answer (`None`: the container is gone).
pub type Inspection = Result<Option<ObservedContainer>, RuntimeError>;

/// Runs the engine requests of one host.
pub struct Engine {
    runtime: Arc<dyn ContainerRuntime>,
    /// The manager's scope, for listings.
    select: Option<Selector>,
    /// The kill-fast restart's stop timeout.
    stop_timeout: Duration,
    /// Restarts in flight at once (the engine starts few containers well at a time).
    slots: Arc<Semaphore>,
}

impl Engine {
    pub fn new(runtime: Arc<dyn ContainerRuntime>, select: Option<Selector>, stop_timeout: Duration) -> Self {
        Self { runtime, select, stop_timeout, slots: Arc::new(Semaphore::new(RESTARTS_IN_FLIGHT)) }
    }

    /// Lists the containers in scope.
    pub fn list(&self, done: impl FnOnce(Result<Vec<ObservedContainer>, RuntimeError>) + Send + 'static) {
        let (rt, select) = (self.runtime.clone(), self.select.clone());
        tokio::spawn(async move { done(rt.list(select.as_ref()).await) });
    }

    /// Inspects one container.
    pub fn inspect(&self, id: String, done: impl FnOnce(String, Inspection) + Send + 'static) {
        let rt = self.runtime.clone();
        tokio::spawn(async move {
            let obs = rt.inspect(&id).await;
            done(id, obs);
        });
    }

    /// Runs a (re)start in its own task and hands its outcome to `done`. `down_for` goes into
    /// the span as `down_ms`: with `waited_ms` (for a restart slot) and `took_ms` it splits a
    /// shutdown's downtime into our reaction and the engine's start.
    pub fn restart(&self, job: RestartJob<'_>, done: impl FnOnce(RestartOutcome) + Send + 'static) {
        let (rt, slots, stop, id, op) =
            (self.runtime.clone(), self.slots.clone(), self.stop_timeout, job.id.to_owned(), job.op);
        let span = tracing::info_span!(
            "restart",
            container.id = %short_id(&id),
            reason = job.reason,
            attempt = job.attempt,
            op = ?op,
            down_ms = tracing::field::Empty
        );
        if let Some(d) = job.down_for {
            span.record("down_ms", d.as_millis() as u64);
        }
        tokio::spawn(
            async move {
                // closed never: the semaphore lives as long as the manager's state
                let queued = Instant::now();
                let _slot = slots.acquire_owned().await;
                let started = Instant::now();
                let waited_ms = (started - queued).as_millis() as u64;
                let res = match op {
                    RestartOp::Start => rt.start(&id).await,
                    RestartOp::Restart => rt.restart(&id, stop).await,
                };
                let took_ms = started.elapsed().as_millis() as u64;
                match &res {
                    Ok(()) => tracing::info!(took_ms, waited_ms, "container restarted"),
                    Err(e) => tracing::warn!(took_ms, waited_ms, error = %e, "restart failed"),
                }
                let obs = rt.inspect(&id).await;
                done(RestartOutcome { id, error: res.err(), obs });
            }
            .instrument(span),
        );
    }
}
