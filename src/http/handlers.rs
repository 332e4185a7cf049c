//! Thin handlers: an actor call with a timeout, then a DTO.

use ractor::rpc::CallResult;
use serde::{Deserialize, Serialize};
use warp::Rejection;
use warp::reply::{Reply, Response, json};

use super::{Api, ApiError};
use crate::actors::controller::{ControllerMsg, Fleet, HostUnavailable};
use crate::actors::host_link::ToHost;
use crate::actors::protocol::{Command, CommandOk};
use crate::actors::wire::Wire;
use crate::model::{ContainerRecord, HostRecord, resolve};

/// `{"threshold": 0..100}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdBody {
    threshold: i64,
}

impl ThresholdBody {
    fn value(&self) -> Result<u8, ApiError> {
        u8::try_from(self.threshold).ok().filter(|t| *t <= 100).ok_or_else(|| {
            ApiError::BadRequest(format!("threshold must be an integer from 0 to 100, got {}", self.threshold))
        })
    }
}

/// `{"aggregation": seconds}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigBody {
    aggregation: f64,
}

#[derive(Serialize)]
struct HostView {
    host: HostRecord,
    containers: Vec<ContainerRecord>,
}

#[derive(Serialize)]
struct HostOutcome {
    host: String,
    ok: bool,
    error: Option<String>,
}

fn reject(e: ApiError) -> Rejection {
    warp::reject::custom(e)
}

impl Api {
    /// Asks the controller, with the API's timeout.
    async fn ask<T: Send + 'static>(
        &self,
        msg: impl FnOnce(ractor::RpcReplyPort<T>) -> ControllerMsg,
    ) -> Result<T, ApiError> {
        match self.controller.call(msg, Some(self.timeout)).await {
            Ok(CallResult::Success(v)) => Ok(v),
            Ok(CallResult::Timeout) => Err(ApiError::Timeout("controller did not answer in time".to_owned())),
            Ok(CallResult::SenderError) | Err(_) => Err(ApiError::Internal("controller is not running".to_owned())),
        }
    }

    async fn fleet(&self) -> Result<Fleet, ApiError> {
        self.ask(ControllerMsg::Fleet).await
    }

    /// Routes a command to one host and waits for its answer.
    async fn route(&self, host: &str, cmd: Command) -> Result<CommandOk, ApiError> {
        let manager = self.ask(|r| ControllerMsg::Manager(host.to_owned(), r)).await??;
        match manager.call(|r| ToHost::Command(Wire::new(cmd), r), Some(self.timeout)).await {
            Ok(CallResult::Success(res)) => res
                .open()
                .map_err(|e| ApiError::Internal(format!("host {host} answered garbage: {e}")))?
                .map_err(ApiError::from),
            Ok(CallResult::Timeout) => Err(ApiError::Timeout(format!("host {host} did not answer in time"))),
            Ok(CallResult::SenderError) | Err(_) => Err(HostUnavailable::Offline(host.to_owned()).into()),
        }
    }
}

pub async fn list_containers(api: Api) -> Result<Response, Rejection> {
    let fleet = api.fleet().await.map_err(reject)?;
    let all: Vec<ContainerRecord> = fleet.containers.into_values().flatten().collect();
    Ok(json(&all).into_response())
}

fn host_of(fleet: &mut Fleet, host: &str) -> Result<(HostRecord, Vec<ContainerRecord>), ApiError> {
    let record = fleet.hosts.iter().find(|h| h.name == host).cloned();
    let record = record.ok_or_else(|| ApiError::NotFound(format!("unknown host {host}")))?;
    Ok((record, fleet.containers.remove(host).unwrap_or_default()))
}

pub async fn host_view(host: String, api: Api) -> Result<Response, Rejection> {
    let mut fleet = api.fleet().await.map_err(reject)?;
    let (host, containers) = host_of(&mut fleet, &host).map_err(reject)?;
    Ok(json(&HostView { host, containers }).into_response())
}

pub async fn one_container(host: String, id: String, api: Api) -> Result<Response, Rejection> {
    let mut fleet = api.fleet().await.map_err(reject)?;
    let (_, containers) = host_of(&mut fleet, &host).map_err(reject)?;
    let items = containers.iter().map(|c| (c.full_id.as_str(), c.name.as_str()));
    let found = resolve(items, &id).map_err(|e| {
        reject(match e {
            crate::model::LookupError::NotFound => ApiError::NotFound(format!("no container {id} on host {host}")),
            crate::model::LookupError::Ambiguous(c) => {
                ApiError::Conflict(format!("{id:?} is ambiguous: it matches {c:?}"))
            }
        })
    })?;
    let record = containers.iter().find(|c| c.full_id == found);
    Ok(json(&record).into_response())
}

pub async fn set_threshold_everywhere(body: ThresholdBody, api: Api) -> Result<Response, Rejection> {
    let threshold = body.value().map_err(reject)?;
    let fleet = api.fleet().await.map_err(reject)?;
    if fleet.hosts.is_empty() {
        return Err(reject(ApiError::Unavailable("no host is registered".to_owned())));
    }
    let calls = fleet.hosts.iter().map(|h| {
        let api = api.clone();
        async move {
            let res = api.route(&h.name, Command::SetThreshold(threshold)).await;
            HostOutcome { host: h.name.clone(), ok: res.is_ok(), error: res.err().map(|e| e.to_string()) }
        }
    });
    let outcomes = futures::future::join_all(calls).await;
    Ok(json(&serde_json::json!({ "threshold": threshold, "hosts": outcomes })).into_response())
}

pub async fn set_host_threshold(host: String, body: ThresholdBody, api: Api) -> Result<Response, Rejection> {
    let threshold = body.value().map_err(reject)?;
    api.route(&host, Command::SetThreshold(threshold)).await.map_err(reject)?;
    Ok(json(&serde_json::json!({ "host": host, "threshold": threshold })).into_response())
}

pub async fn monitor(host: String, id: String, api: Api) -> Result<Response, Rejection> {
    let ok = api.route(&host, Command::Monitor(id)).await.map_err(reject)?;
    Ok(json(&ok.container).into_response())
}

pub async fn ignore(host: String, id: String, api: Api) -> Result<Response, Rejection> {
    let ok = api.route(&host, Command::Ignore(id)).await.map_err(reject)?;
    Ok(json(&ok.container).into_response())
}

pub async fn hosts(api: Api) -> Result<Response, Rejection> {
    let fleet = api.fleet().await.map_err(reject)?;
    Ok(json(&fleet.hosts).into_response())
}

pub async fn get_config(api: Api) -> Result<Response, Rejection> {
    let fleet = api.fleet().await.map_err(reject)?;
    Ok(json(&serde_json::json!({ "aggregation": fleet.aggregation })).into_response())
}

pub async fn put_config(body: ConfigBody, api: Api) -> Result<Response, Rejection> {
    let secs = body.aggregation;
    if !secs.is_finite() || secs <= 0.0 || secs > 3600.0 {
        return Err(reject(ApiError::BadRequest(format!("aggregation must be within (0, 3600] seconds, got {secs}"))));
    }
    let d = std::time::Duration::from_secs_f64(secs);
    api.ask(|r| ControllerMsg::SetAggregation(d, r))
        .await
        .map_err(reject)?
        .map_err(|e| reject(ApiError::Internal(e)))?;
    Ok(json(&serde_json::json!({ "aggregation": secs })).into_response())
}
