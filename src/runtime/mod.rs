//! The container runtime edge: everything HMS asks of Docker, behind [`ContainerRuntime`].
//!
//! - [`docker::DockerRuntime`] talks to a real engine through bollard (the only file that does).
//! - [`fake::FakeRuntime`] is an in-memory engine for deterministic tests.

pub mod docker;
pub mod fake;
pub mod watch;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::model::{Health, ObservedContainer};

/// Errors from the runtime, keeping the engine's cause.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0} not found")]
    NotFound(String),
    #[error("docker engine unreachable: {0}")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("docker refused {op} on {id}: {message}")]
    Refused { op: &'static str, id: String, message: String },
    #[error("docker request failed: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A label selector `KEY=VALUE` limiting the containers a manager watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok(Self { key: k.to_owned(), value: v.to_owned() }),
            _ => Err(format!("expected KEY=VALUE, got {s:?}")),
        }
    }
}

impl Selector {
    /// Whether a container's labels match.
    pub fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        labels.get(&self.key) == Some(&self.value)
    }
}

/// What happened to a container, as far as healing cares.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Start,
    Die,
    Stop,
    Kill,
    Oom,
    Destroy,
    Health(Health),
}

/// One container event from the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeEvent {
    pub id: String,
    pub kind: EventKind,
    /// Engine time of the event, used to resume the stream after a reconnect.
    pub time: Option<SystemTime>,
}

/// A container's resource limits as the engine holds them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Limits {
    /// CPUs (`--cpus`, or a CFS quota over its period); `None`: no CPU limit.
    pub cpus: Option<f64>,
    /// Memory in bytes (`--memory`); `None`: no limit.
    pub memory_bytes: Option<u64>,
    /// Its cgroup parent (`--cgroup-parent`, a simulated host's budget); `None`: the engine's.
    pub cgroup_parent: Option<String>,
}

/// The operations HMS needs from a container engine.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Every container (running or not) matching the selector.
    async fn list(&self, selector: Option<&Selector>) -> Result<Vec<ObservedContainer>, RuntimeError>;
    /// One container, or `None` when it no longer exists.
    async fn inspect(&self, id: &str) -> Result<Option<ObservedContainer>, RuntimeError>;
    /// Starts a stopped container; starting a running one is success.
    async fn start(&self, id: &str) -> Result<(), RuntimeError>;
    /// Stops a container, killing it after `timeout`; stopping a stopped one is success.
    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError>;
    /// Sends a signal to a running container.
    async fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError>;
    /// Stops (with `timeout`) and starts a container.
    async fn restart(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError>;
    /// The host pid of a running container's main process (its network namespace), if any.
    async fn pid(&self, id: &str) -> Result<Option<u32>, RuntimeError> {
        let _ = id;
        Ok(None)
    }
    /// Runs `cmd` inside a running container. `detach`: started and left to end by itself;
    /// otherwise waited for, an error unless it exits 0. Engines without exec refuse.
    async fn exec(&self, id: &str, cmd: &[&str], detach: bool) -> Result<(), RuntimeError> {
        let _ = (cmd, detach);
        Err(RuntimeError::Refused { op: "exec", id: id.to_owned(), message: "not supported".to_owned() })
    }
    /// The container's CPU and memory limits.
    async fn limits(&self, id: &str) -> Result<Limits, RuntimeError> {
        let _ = id;
        Ok(Limits::default())
    }
    /// Sets the container's CPU limit in CPUs (`None`: no limit), as `docker update --cpus`.
    async fn set_cpus(&self, id: &str, cpus: Option<f64>) -> Result<(), RuntimeError> {
        let _ = cpus;
        Err(RuntimeError::Refused { op: "update", id: id.to_owned(), message: "not supported".to_owned() })
    }
    /// Container events, replayed from `since` when given. The stream ends or yields an error
    /// when the connection drops; it never reconnects by itself.
    fn events(&self, since: Option<SystemTime>) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>>;
}
