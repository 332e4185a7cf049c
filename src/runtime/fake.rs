//! An in-memory container engine for deterministic tests.
//!
//! It keeps containers in a map, emits events to every open stream, records every mutating
//! operation, and can misbehave on demand: containers that die on every start, a dropped or
//! refused event stream, failing operations.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use super::{ContainerRuntime, EventKind, Limits, RuntimeError, RuntimeEvent, Selector};
use crate::model::{DockerState, Health, ObservedContainer};

/// A mutating operation the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Start(String),
    Stop(String),
    Kill(String),
    Restart(String),
}

impl Op {
    pub fn id(&self) -> &str {
        match self {
            Op::Start(id) | Op::Stop(id) | Op::Kill(id) | Op::Restart(id) => id,
        }
    }
}

#[derive(Default)]
struct Inner {
    containers: BTreeMap<String, ObservedContainer>,
    die_on_start: HashMap<String, bool>,
    streams: Vec<mpsc::UnboundedSender<Result<RuntimeEvent, RuntimeError>>>,
    refuse_streams: bool,
    ops: Vec<Op>,
    next_ip: u8,
    /// How long a start or restart takes (none by default).
    op_latency: Duration,
    in_flight: usize,
    max_in_flight: usize,
    limits: HashMap<String, Limits>,
    /// Every exec, in order: container id and command.
    execs: Vec<(String, Vec<String>)>,
}

/// The in-memory engine. Cheap to clone; clones share state.
#[derive(Clone, Default)]
pub struct FakeRuntime {
    inner: Arc<Mutex<Inner>>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a running container with the given name and labels; returns its full id.
    pub fn add(&self, name: &str, labels: &[(&str, &str)]) -> String {
        let mut g = self.lock();
        g.next_ip = g.next_ip.wrapping_add(1);
        // a 12-digit counter first, so short ids are unique as in Docker
        let id = format!("{:0<64}", format!("{:012x}{}", g.containers.len() + 1, hex_name(name)));
        let c = ObservedContainer {
            id: id.clone(),
            name: name.to_owned(),
            image: "fake:latest".to_owned(),
            ip: Some(IpAddr::V4(Ipv4Addr::new(10, 99, 0, g.next_ip))),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            state: DockerState::Running,
            health: Health::None,
        };
        g.containers.insert(id.clone(), c);
        emit(&mut g, &id, EventKind::Start);
        id
    }

    /// The container comes back at another address, as a restart on Docker's default bridge
    /// usually does: `die`, then `start` with the new address, which is returned.
    pub fn readdress(&self, id: &str) -> Option<IpAddr> {
        let mut g = self.lock();
        g.next_ip = g.next_ip.wrapping_add(1);
        let ip = IpAddr::V4(Ipv4Addr::new(10, 99, 0, g.next_ip));
        let c = g.containers.get_mut(id)?;
        c.ip = Some(ip);
        c.state = DockerState::Running;
        emit(&mut g, id, EventKind::Die);
        emit(&mut g, id, EventKind::Start);
        Some(ip)
    }

    /// The container dies (as after `docker kill`), emitting `die`.
    pub fn crash(&self, id: &str) {
        let mut g = self.lock();
        if let Some(c) = g.containers.get_mut(id) {
            c.state = DockerState::Exited;
            emit(&mut g, id, EventKind::Die);
        }
    }

    /// Sets the health status, emitting `health_status`.
    pub fn set_health(&self, id: &str, health: Health) {
        let mut g = self.lock();
        if let Some(c) = g.containers.get_mut(id) {
            c.health = health;
            emit(&mut g, id, EventKind::Health(health));
        }
    }

    /// Makes every future start of the container exit at once.
    pub fn die_on_start(&self, id: &str, on: bool) {
        self.lock().die_on_start.insert(id.to_owned(), on);
    }

    /// Ends every open event stream (as when the engine connection drops).
    pub fn drop_streams(&self) {
        self.lock().streams.clear();
    }

    /// While set, new event streams fail at once (the engine is unreachable for events).
    pub fn refuse_streams(&self, refuse: bool) {
        self.lock().refuse_streams = refuse;
    }

    /// Every mutating operation so far.
    pub fn ops(&self) -> Vec<Op> {
        self.lock().ops.clone()
    }

    /// Every command run in a container so far (id, argv).
    pub fn execs(&self) -> Vec<(String, Vec<String>)> {
        self.lock().execs.clone()
    }

    /// Sets a container's limits (as `docker run --cpus/--memory` would).
    pub fn set_limits(&self, id: &str, limits: Limits) {
        self.lock().limits.insert(id.to_owned(), limits);
    }

    /// The container's current state.
    pub fn state(&self, id: &str) -> Option<DockerState> {
        self.lock().containers.get(id).map(|c| c.state)
    }

    /// The number of open event streams.
    pub fn open_streams(&self) -> usize {
        let mut g = self.lock();
        g.streams.retain(|s| !s.is_closed());
        g.streams.len()
    }

    /// Makes every start and restart take `latency` (virtual time in paused tests).
    pub fn set_op_latency(&self, latency: Duration) {
        self.lock().op_latency = latency;
    }

    /// The most starts and restarts that were in progress at once.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Waits out the configured latency, counting the operation as in flight meanwhile.
    async fn slow(&self) {
        let latency = {
            let mut g = self.lock();
            g.in_flight += 1;
            g.max_in_flight = g.max_in_flight.max(g.in_flight);
            g.op_latency
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.lock().in_flight -= 1;
    }

    fn apply(&self, op: Op, steps: &[Step]) -> Result<(), RuntimeError> {
        let mut g = self.lock();
        let id = op.id().to_owned();
        g.ops.push(op);
        steps.iter().try_for_each(|step| step(&mut g, &id))
    }
}

/// One change applied to the fake engine under its lock.
type Step = fn(&mut Inner, &str) -> Result<(), RuntimeError>;

fn start_locked(g: &mut Inner, id: &str) -> Result<(), RuntimeError> {
    let dies = g.die_on_start.get(id).copied().unwrap_or(false);
    let c = g.containers.get_mut(id).ok_or_else(|| RuntimeError::NotFound(id.to_owned()))?;
    if c.state == DockerState::Running {
        return Ok(());
    }
    c.state = if dies { DockerState::Exited } else { DockerState::Running };
    emit(g, id, EventKind::Start);
    if dies {
        emit(g, id, EventKind::Die);
    }
    Ok(())
}

fn stop_locked(g: &mut Inner, id: &str) -> Result<(), RuntimeError> {
    let c = g.containers.get_mut(id).ok_or_else(|| RuntimeError::NotFound(id.to_owned()))?;
    if c.state != DockerState::Running {
        return Ok(());
    }
    c.state = DockerState::Exited;
    // like Docker: a stop or kill through the API signals the container (`kill`) before it dies
    emit(g, id, EventKind::Kill);
    emit(g, id, EventKind::Die);
    Ok(())
}

fn hex_name(name: &str) -> String {
    name.bytes().take(20).map(|b| format!("{b:02x}")).collect()
}

fn emit(g: &mut Inner, id: &str, kind: EventKind) {
    let ev = RuntimeEvent { id: id.to_owned(), kind, time: Some(SystemTime::now()) };
    g.streams.retain(|s| s.send(Ok(ev.clone())).is_ok());
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn exec(&self, id: &str, cmd: &[&str], _detach: bool) -> Result<(), RuntimeError> {
        let mut g = self.lock();
        match g.containers.get(id).map(|c| c.state) {
            Some(DockerState::Running) => {
                g.execs.push((id.to_owned(), cmd.iter().map(|s| (*s).to_owned()).collect()));
                Ok(())
            }
            Some(_) => {
                Err(RuntimeError::Refused { op: "exec", id: id.to_owned(), message: "is not running".to_owned() })
            }
            None => Err(RuntimeError::NotFound(id.to_owned())),
        }
    }

    async fn limits(&self, id: &str) -> Result<Limits, RuntimeError> {
        let g = self.lock();
        if !g.containers.contains_key(id) {
            return Err(RuntimeError::NotFound(id.to_owned()));
        }
        Ok(g.limits.get(id).cloned().unwrap_or_default())
    }

    async fn set_cpus(&self, id: &str, cpus: Option<f64>) -> Result<(), RuntimeError> {
        let mut g = self.lock();
        if !g.containers.contains_key(id) {
            return Err(RuntimeError::NotFound(id.to_owned()));
        }
        g.limits.entry(id.to_owned()).or_default().cpus = cpus;
        Ok(())
    }

    async fn list(&self, selector: Option<&Selector>) -> Result<Vec<ObservedContainer>, RuntimeError> {
        let g = self.lock();
        let all = g.containers.values();
        Ok(all.filter(|c| selector.is_none_or(|s| s.matches(&c.labels))).cloned().collect())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ObservedContainer>, RuntimeError> {
        Ok(self.lock().containers.get(id).cloned())
    }

    /// A made-up pid for running containers (derived from the address, stable per container).
    async fn pid(&self, id: &str) -> Result<Option<u32>, RuntimeError> {
        let g = self.lock();
        let c = g.containers.get(id).filter(|c| c.state == DockerState::Running);
        Ok(c.and_then(|c| c.ip).map(|ip| match ip {
            IpAddr::V4(v4) => 100_000 + u32::from(v4.octets()[3]),
            IpAddr::V6(_) => 100_000,
        }))
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.slow().await;
        self.apply(Op::Start(id.to_owned()), &[start_locked])
    }

    async fn stop(&self, id: &str, _timeout: Duration) -> Result<(), RuntimeError> {
        self.apply(Op::Stop(id.to_owned()), &[stop_locked])
    }

    async fn kill(&self, id: &str, _signal: &str) -> Result<(), RuntimeError> {
        self.apply(Op::Kill(id.to_owned()), &[stop_locked])
    }

    async fn restart(&self, id: &str, _timeout: Duration) -> Result<(), RuntimeError> {
        self.slow().await;
        self.apply(Op::Restart(id.to_owned()), &[stop_locked, start_locked])
    }

    fn events(&self, _since: Option<SystemTime>) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>> {
        let mut g = self.lock();
        if g.refuse_streams {
            let err = RuntimeError::Other("event stream refused".into());
            return futures::stream::once(async move { Err(err) }).boxed();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        g.streams.push(tx);
        tokio_stream_from(rx)
    }
}

fn tokio_stream_from(
    mut rx: mpsc::UnboundedReceiver<Result<RuntimeEvent, RuntimeError>>,
) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
