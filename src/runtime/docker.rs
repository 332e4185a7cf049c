//! [`ContainerRuntime`] over a real Docker engine, through bollard.
#![allow(
    clippy::disallowed_types,
    reason = "the one file that talks to Docker (clippy.toml bans bollard::Docker elsewhere)"
)]

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary, EventMessage, HealthStatusEnum,
};
use bollard::query_parameters::{
    EventsOptions, KillContainerOptions, ListContainersOptions, RestartContainerOptions, StopContainerOptions,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::{ContainerRuntime, EventKind, RuntimeError, RuntimeEvent, Selector};
use crate::model::{DockerState, Health, ObservedContainer};

/// Slack added to a stop timeout for the client-side request timeout.
const CLIENT_SLACK: Duration = Duration::from_secs(30);

/// A Docker engine reached through its local socket.
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
}

impl DockerRuntime {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket) and negotiates the API version.
    /// `max_stop` is the longest stop timeout HMS will use; the client timeout stays longer.
    pub async fn connect(max_stop: Duration) -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| RuntimeError::Unreachable(Box::new(e)))?
            .with_timeout(max_stop + CLIENT_SLACK);
        let docker = docker.negotiate_version().await.map_err(|e| RuntimeError::Unreachable(Box::new(e)))?;
        docker.ping().await.map_err(|e| RuntimeError::Unreachable(Box::new(e)))?;
        Ok(Self { docker })
    }
}

fn refused(op: &'static str, id: &str, err: BollardError) -> RuntimeError {
    match err {
        BollardError::DockerResponseServerError { status_code: 404, .. } => RuntimeError::NotFound(id.to_owned()),
        BollardError::DockerResponseServerError { message, .. } => {
            RuntimeError::Refused { op, id: id.to_owned(), message }
        }
        other => RuntimeError::Other(Box::new(other)),
    }
}

/// A 304 ("already started/stopped") is success.
fn ok_unless_error(op: &'static str, id: &str, res: Result<(), BollardError>) -> Result<(), RuntimeError> {
    match res {
        Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
        Err(e) => Err(refused(op, id, e)),
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs_f64().ceil() as u64).unwrap_or(i32::MAX)
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn list(&self, selector: Option<&Selector>) -> Result<Vec<ObservedContainer>, RuntimeError> {
        let mut filters = HashMap::new();
        if let Some(s) = selector {
            filters.insert("label".to_owned(), vec![format!("{}={}", s.key, s.value)]);
        }
        let opts = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let summaries = self.docker.list_containers(Some(opts)).await.map_err(|e| refused("list", "*", e))?;
        // one request for the whole host: the summaries carry all that healing needs
        Ok(summaries.into_iter().filter_map(from_summary).collect())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ObservedContainer>, RuntimeError> {
        match self.docker.inspect_container(id, None).await {
            Ok(resp) => Ok(Some(observed(resp))),
            Err(e) => match refused("inspect", id, e) {
                RuntimeError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn pid(&self, id: &str) -> Result<Option<u32>, RuntimeError> {
        match self.docker.inspect_container(id, None).await {
            Ok(resp) => Ok(resp.state.and_then(|s| s.pid).and_then(|p| u32::try_from(p).ok()).filter(|p| *p > 0)),
            Err(e) => match refused("inspect", id, e) {
                RuntimeError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn exec(&self, id: &str, cmd: &[&str], detach: bool) -> Result<(), RuntimeError> {
        let config = bollard::exec::CreateExecOptions {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(!detach),
            attach_stderr: Some(!detach),
            ..Default::default()
        };
        let created = self.docker.create_exec(id, config).await.map_err(|e| refused("exec", id, e))?;
        let start = bollard::exec::StartExecOptions { detach, ..Default::default() };
        let started = self.docker.start_exec(&created.id, Some(start)).await.map_err(|e| refused("exec", id, e))?;
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                chunk.map_err(|e| refused("exec", id, e))?;
            }
            let done = self.docker.inspect_exec(&created.id).await.map_err(|e| refused("exec", id, e))?;
            if let Some(code) = done.exit_code.filter(|c| *c != 0) {
                let message = format!("{} exited with {code}", cmd.join(" "));
                return Err(RuntimeError::Refused { op: "exec", id: id.to_owned(), message });
            }
        }
        Ok(())
    }

    async fn limits(&self, id: &str) -> Result<super::Limits, RuntimeError> {
        let resp = self.docker.inspect_container(id, None).await.map_err(|e| refused("inspect", id, e))?;
        let hc = resp.host_config.unwrap_or_default();
        let nano = hc.nano_cpus.filter(|n| *n > 0).map(|n| n as f64 / 1e9);
        let quota = match (hc.cpu_quota, hc.cpu_period) {
            (Some(q), p) if q > 0 => Some(q as f64 / p.filter(|p| *p > 0).unwrap_or(100_000) as f64),
            _ => None,
        };
        let memory_bytes = hc.memory.filter(|m| *m > 0).and_then(|m| u64::try_from(m).ok());
        let cgroup_parent = hc.cgroup_parent.filter(|p| !p.is_empty());
        Ok(super::Limits { cpus: nano.or(quota), memory_bytes, cgroup_parent })
    }

    async fn set_cpus(&self, id: &str, cpus: Option<f64>) -> Result<(), RuntimeError> {
        let nano = cpus.map_or(0, |c| (c * 1e9).round() as i64);
        let body = bollard::models::ContainerUpdateBody { nano_cpus: Some(nano), ..Default::default() };
        self.docker.update_container(id, body).await.map_err(|e| refused("update", id, e))
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        ok_unless_error("start", id, self.docker.start_container(id, None).await)
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let opts = StopContainerOptions { t: Some(secs(timeout)), signal: None };
        ok_unless_error("stop", id, self.docker.stop_container(id, Some(opts)).await)
    }

    async fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError> {
        let opts = KillContainerOptions { signal: signal.to_owned() };
        ok_unless_error("kill", id, self.docker.kill_container(id, Some(opts)).await)
    }

    async fn restart(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let opts = RestartContainerOptions { t: Some(secs(timeout)), signal: None };
        ok_unless_error("restart", id, self.docker.restart_container(id, Some(opts)).await)
    }

    fn events(&self, since: Option<SystemTime>) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>> {
        let mut filters = HashMap::new();
        filters.insert("type".to_owned(), vec!["container".to_owned()]);
        let since = since
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()));
        let opts = EventsOptions { since, until: None, filters: Some(filters) };
        self.docker
            .events(Some(opts))
            .filter_map(|item| async move {
                match item {
                    Ok(msg) => event(msg).map(Ok),
                    Err(e) => Some(Err(RuntimeError::Other(Box::new(e)))),
                }
            })
            .boxed()
    }
}

fn event(msg: EventMessage) -> Option<RuntimeEvent> {
    let id = msg.actor.and_then(|a| a.id)?;
    let action = msg.action?;
    let kind = match action.as_str() {
        "start" => EventKind::Start,
        "die" => EventKind::Die,
        "stop" => EventKind::Stop,
        "kill" => EventKind::Kill,
        "oom" => EventKind::Oom,
        "destroy" => EventKind::Destroy,
        a if a.starts_with("health_status") => EventKind::Health(health_from_str(a.rsplit(' ').next()?)),
        _ => return None,
    };
    let time = msg.time_nano.and_then(|n| u64::try_from(n).ok()).map(|n| UNIX_EPOCH + Duration::from_nanos(n));
    Some(RuntimeEvent { id, kind, time })
}

fn health_from_str(s: &str) -> Health {
    match s {
        "healthy" => Health::Healthy,
        "unhealthy" => Health::Unhealthy,
        "starting" => Health::Starting,
        _ => Health::None,
    }
}

fn observed(resp: ContainerInspectResponse) -> ObservedContainer {
    let state = resp.state.as_ref();
    let status = state.and_then(|s| s.status).unwrap_or(ContainerStateStatusEnum::EMPTY);
    let health = state.and_then(|s| s.health.as_ref()).and_then(|h| h.status);
    let config = resp.config.as_ref();
    let labels: BTreeMap<String, String> =
        config.and_then(|c| c.labels.clone()).unwrap_or_default().into_iter().collect();
    ObservedContainer {
        id: resp.id.clone().unwrap_or_default(),
        name: resp.name.as_deref().unwrap_or_default().trim_start_matches('/').to_owned(),
        image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
        ip: ip_of(&resp),
        labels,
        state: docker_state(status),
        health: match health {
            Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
            Some(HealthStatusEnum::STARTING) => Health::Starting,
            _ => Health::None,
        },
    }
}

fn from_summary(s: ContainerSummary) -> Option<ObservedContainer> {
    use bollard::models::ContainerSummaryStateEnum as S;
    let state = match s.state? {
        S::CREATED => DockerState::Created,
        S::RUNNING => DockerState::Running,
        S::PAUSED => DockerState::Paused,
        S::RESTARTING | S::STOPPING => DockerState::Restarting,
        S::REMOVING => DockerState::Removing,
        S::EXITED => DockerState::Exited,
        S::DEAD => DockerState::Dead,
        _ => DockerState::Unknown,
    };
    let status = s.status.as_deref().unwrap_or_default();
    let health = if status.contains("(unhealthy)") {
        Health::Unhealthy
    } else if status.contains("(healthy)") {
        Health::Healthy
    } else if status.contains("(health: starting)") {
        Health::Starting
    } else {
        Health::None
    };
    let networks = s.network_settings.and_then(|n| n.networks).unwrap_or_default();
    Some(ObservedContainer {
        name: s.names.and_then(|n| n.into_iter().next()).unwrap_or_default().trim_start_matches('/').to_owned(),
        image: s.image.unwrap_or_default(),
        ip: pick_ip(&networks),
        labels: s.labels.unwrap_or_default().into_iter().collect(),
        state,
        health,
        id: s.id?,
    })
}

fn docker_state(s: ContainerStateStatusEnum) -> DockerState {
    use ContainerStateStatusEnum as S;
    match s {
        S::CREATED => DockerState::Created,
        S::RUNNING => DockerState::Running,
        S::PAUSED => DockerState::Paused,
        S::RESTARTING => DockerState::Restarting,
        S::REMOVING => DockerState::Removing,
        S::STOPPING => DockerState::Restarting,
        S::EXITED => DockerState::Exited,
        S::DEAD => DockerState::Dead,
        _ => DockerState::Unknown,
    }
}

fn ip_of(resp: &ContainerInspectResponse) -> Option<IpAddr> {
    pick_ip(resp.network_settings.as_ref()?.networks.as_ref()?)
}

/// The container's address: on the `bridge` network when it has one, else the first with an address.
fn pick_ip(networks: &HashMap<String, bollard::models::EndpointSettings>) -> Option<IpAddr> {
    let addr = |name: &str| networks.get(name).and_then(|n| n.ip_address.as_deref()).filter(|a| !a.is_empty());
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    addr("bridge").or_else(|| names.iter().find_map(|n| addr(n))).and_then(|a| a.parse().ok())
}

/// Creating and removing containers: used by the benchmarks, never by healing.
impl DockerRuntime {
    /// Creates and starts a container from `image` with `labels`; returns its full id.
    pub async fn run_container(
        &self,
        name: &str,
        image: &str,
        labels: &[(&str, &str)],
    ) -> Result<String, RuntimeError> {
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_owned()),
            labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            ..Default::default()
        };
        let opts =
            bollard::query_parameters::CreateContainerOptions { name: Some(name.to_owned()), ..Default::default() };
        let created = self.docker.create_container(Some(opts), body).await.map_err(|e| refused("create", name, e))?;
        self.start(&created.id).await?;
        Ok(created.id)
    }

    /// Removes a container, killing it first.
    pub async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let opts = bollard::query_parameters::RemoveContainerOptions { force: true, ..Default::default() };
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) => match refused("remove", id, e) {
                RuntimeError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }
}
