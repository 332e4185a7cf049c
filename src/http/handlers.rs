//! Thin handlers: reads borrow the published snapshot; commands are an actor call with a
//! timeout; then a DTO. Each carries its OpenAPI description.

use ractor::rpc::CallResult;
use serde::{Deserialize, Serialize};

use crate::analysis::detect::{AnalysisConfig, AnalysisPatch};
use utoipa::ToSchema;
use warp::Rejection;
use warp::http::header::CONTENT_TYPE;
use warp::reply::{Reply, Response, json};

use super::error::ErrorBody;
use super::{Api, ApiError};
use crate::actors::controller::ControllerMsg;
use crate::actors::protocol::{Command, CommandOk, ProbeSetting};
use crate::analysis::series::SeriesRecord;
use crate::model::{Aggregation, ContainerRecord, HostRecord, LookupError, Threshold};
use crate::probe::response::ResponseTarget;

/// `{"threshold": 0..100}`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdBody {
    /// Packet-loss threshold in percent, 0–100.
    #[schema(value_type = u8, minimum = 0, maximum = 100)]
    threshold: Threshold,
}

impl ThresholdBody {
    fn value(&self) -> Result<Threshold, ApiError> {
        Ok(self.threshold)
    }
}

/// The controller's settings: `{"aggregation": seconds, "analysis": {…}}`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigBody {
    /// Aggregation window of the controller, in seconds, from 0.001 to 3600.
    #[schema(minimum = 0.001, maximum = 3600)]
    aggregation: f64,
    /// The fleet-wide analysis settings (every host runs with them, also one that rejoins).
    analysis: AnalysisConfig,
}

/// A change of the controller's settings: `aggregation` and/or `analysis` (whose unspecified
/// fields keep their value); `{}` changes nothing and answers the settings.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatchBody {
    /// Aggregation window of the controller, in seconds, from 0.001 to 3600.
    #[schema(minimum = 0.001, maximum = 3600)]
    aggregation: Option<f64>,
    analysis: Option<AnalysisPatch>,
}

/// `{"endpoint": "ip:port"}`, optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddHostBody {
    /// Cluster address of the host's manager node, `host:port` (port 1–65535); the controller dials it.
    #[schema(
        pattern = r"^[^\s/\x00-\x1f\x7f-\x9f]+:\+?0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
    )]
    endpoint: Option<String>,
}

impl AddHostBody {
    fn endpoint(self) -> Result<Option<String>, ApiError> {
        let Some(e) = self.endpoint else { return Ok(None) };
        let valid = e.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if valid && !e.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
            Ok(Some(e))
        } else {
            Err(ApiError::BadRequest(format!("endpoint must be host:port, got {e:?}")))
        }
    }
}

/// `{"probe": "http://:PORT/PATH" | "tcp://:PORT" | null}`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeBody {
    /// The response-time probe, or null for none (whatever the `hms.probe` label says).
    /// Required: an empty body must not turn probing off by accident.
    #[schema(
        required = true,
        max_length = 1040,
        pattern = r"^([hH][tT][tT][pP]://:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})(/[!-~]*)?|[tT][cC][pP]://:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})/?)$"
    )]
    #[serde(default, deserialize_with = "present")]
    probe: Option<Option<String>>,
}

/// A field that must be present, though it may be null: absent is `None`, null `Some(None)`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl ProbeBody {
    fn setting(self) -> Result<ProbeSetting, ApiError> {
        match self.probe {
            None => Err(ApiError::BadRequest("probe: a probe or null is required".to_owned())),
            Some(None) => Ok(ProbeSetting::Off),
            Some(Some(text)) => match text.parse::<ResponseTarget>() {
                Ok(target) => Ok(ProbeSetting::Probe(target.to_string())),
                Err(e) => Err(ApiError::BadRequest(format!("probe: {e}"))),
            },
        }
    }
}

/// `?since=RFC3339&last=N`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// Only points at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only the latest N points.
    #[param(minimum = 0, maximum = 6000)]
    last: Option<u32>,
}

/// One host: its record and its containers.
#[derive(Serialize, ToSchema)]
pub struct HostView<'a> {
    host: &'a HostRecord,
    containers: &'a [ContainerRecord],
}

/// What one host answered to a fleet-wide command.
#[derive(Serialize, ToSchema)]
pub struct HostOutcome {
    host: String,
    ok: bool,
    error: Option<String>,
}

/// The answer to `POST /containers`.
#[derive(Serialize, ToSchema)]
pub struct FleetThreshold {
    threshold: u8,
    hosts: Vec<HostOutcome>,
}

/// The answer to `POST /containers/{address}`.
#[derive(Serialize, ToSchema)]
pub struct HostThreshold {
    host: String,
    threshold: u8,
}

/// The answer to `DELETE /containers/{address}`.
#[derive(Serialize, ToSchema)]
pub struct Removed {
    host: String,
    removed: bool,
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

    /// Routes a command to one host through the controller and waits for its answer (for a
    /// mutating command, until the published view shows its effect).
    pub(super) async fn route(&self, host: &str, cmd: Command) -> Result<CommandOk, ApiError> {
        let reply = self.ask(|reply| ControllerMsg::Command { host: host.to_owned(), cmd, reply }).await;
        match reply {
            Ok(res) => res.map_err(ApiError::from),
            // the controller answers at once unless it waits on the host
            Err(ApiError::Timeout(_)) => Err(ApiError::Timeout(format!("host {host} did not answer in time"))),
            Err(e) => Err(e),
        }
    }
}

fn lookup_error(host: &str, id: &str, e: LookupError) -> ApiError {
    match e {
        LookupError::NotFound => ApiError::NotFound(format!("no container {id} on host {host}")),
        LookupError::Ambiguous(c) => ApiError::Conflict(format!("{id:?} is ambiguous: it matches {}", c.join(", "))),
    }
}

/// Every monitored container of every host.
#[utoipa::path(get, path = "/containers", tag = "containers",
    responses((status = 200, description = "every container record", body = [ContainerRecord])))]
pub async fn list_containers(api: Api) -> Result<Response, Rejection> {
    let mut res = Response::new(api.snapshot().containers_json().into());
    res.headers_mut().insert(CONTENT_TYPE, warp::http::HeaderValue::from_static("application/json"));
    Ok(res)
}

/// One host: its status and its containers.
#[utoipa::path(get, path = "/containers/{address}", tag = "hosts",
    params(("address" = String, Path, description = "host name")),
    responses((status = 200, body = HostView), (status = 404, body = ErrorBody)))]
pub async fn host_view(host: String, api: Api) -> Result<Response, Rejection> {
    let fleet = api.snapshot();
    let h = fleet.host(&host).ok_or_else(|| reject(ApiError::NotFound(format!("unknown host {host}"))))?;
    Ok(json(&HostView { host: &h.record, containers: &h.containers }).into_response())
}

/// One container, by full id, short id, unique prefix or name.
#[utoipa::path(get, path = "/containers/{address}/{id}", tag = "containers",
    params(("address" = String, Path, description = "host name"),
           ("id" = String, Path, description = "full id, short id, unique prefix or name")),
    responses((status = 200, body = ContainerRecord), (status = 404, body = ErrorBody),
              (status = 409, description = "ambiguous prefix: the message names the candidates", body = ErrorBody)))]
pub async fn one_container(host: String, id: String, api: Api) -> Result<Response, Rejection> {
    let fleet = api.snapshot();
    let h = fleet.host(&host).ok_or_else(|| reject(ApiError::NotFound(format!("unknown host {host}"))))?;
    let i = fleet.find(h, &id).map_err(|e| reject(lookup_error(&host, &id, e)))?;
    Ok(json(&h.containers[i]).into_response())
}

/// Sets the packet-loss threshold on every host.
#[utoipa::path(post, path = "/containers", tag = "containers", request_body = ThresholdBody,
    security(("bearer" = [])),
    responses((status = 200, description = "each host's answer", body = FleetThreshold),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn set_threshold_everywhere(body: ThresholdBody, api: Api) -> Result<Response, Rejection> {
    let threshold = body.value().map_err(reject)?;
    let hosts: Vec<String> = api.snapshot().hosts.keys().cloned().collect();
    if hosts.is_empty() {
        return Err(reject(ApiError::Unavailable("no host is registered".to_owned())));
    }
    let calls = hosts.into_iter().map(|host| {
        let api = api.clone();
        async move {
            let res = api.route(&host, Command::SetThreshold(threshold)).await;
            HostOutcome { host, ok: res.is_ok(), error: res.err().map(|e| e.to_string()) }
        }
    });
    let hosts = futures::future::join_all(calls).await;
    Ok(json(&FleetThreshold { threshold: threshold.get(), hosts }).into_response())
}

/// Adds a Docker host: the controller keeps it in its known hosts and dials its endpoint.
#[utoipa::path(put, path = "/containers/{address}", tag = "hosts", request_body(content = Option<AddHostBody>, description = "optional"),
    params(("address" = String, Path, description = "host name: no '/' nor control characters, at most 253 bytes",
            pattern = r"^[^/\x00-\x1f\x7f-\x9f]+$", max_length = 253)), security(("bearer" = [])),
    responses((status = 200, body = HostRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn add_host(host: String, body: AddHostBody, api: Api) -> Result<Response, Rejection> {
    let endpoint = body.endpoint().map_err(reject)?;
    let record = api
        .ask(|reply| ControllerMsg::AddHost { host, endpoint, reply })
        .await
        .map_err(reject)?
        .map_err(|e| reject(e.into()))?;
    Ok(json(&record).into_response())
}

/// Sets the threshold of one host.
#[utoipa::path(post, path = "/containers/{address}", tag = "hosts", request_body = ThresholdBody,
    params(("address" = String, Path, description = "host name")), security(("bearer" = [])),
    responses((status = 200, body = HostThreshold), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn set_host_threshold(host: String, body: ThresholdBody, api: Api) -> Result<Response, Rejection> {
    let threshold = body.value().map_err(reject)?;
    api.route(&host, Command::SetThreshold(threshold)).await.map_err(reject)?;
    Ok(json(&HostThreshold { host, threshold: threshold.get() }).into_response())
}

/// Removes a host from supervision and from the known hosts.
#[utoipa::path(delete, path = "/containers/{address}", tag = "hosts",
    params(("address" = String, Path, description = "host name")), security(("bearer" = [])),
    responses((status = 200, body = Removed), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_host(host: String, api: Api) -> Result<Response, Rejection> {
    api.ask(|r| ControllerMsg::RemoveHost(host.clone(), r)).await.map_err(reject)?.map_err(|e| reject(e.into()))?;
    Ok(json(&Removed { host, removed: true }).into_response())
}

/// Monitors a container again (takes it off the ignore list, releases a quarantine).
#[utoipa::path(put, path = "/containers/{address}/{id}", tag = "containers",
    params(("address" = String, Path), ("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ContainerRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn monitor(host: String, id: String, api: Api) -> Result<Response, Rejection> {
    let ok = api.route(&host, Command::Monitor(id)).await.map_err(reject)?;
    Ok(json(&ok.container).into_response())
}

/// Ignores a container (puts it on the ignore list).
#[utoipa::path(delete, path = "/containers/{address}/{id}", tag = "containers",
    params(("address" = String, Path), ("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ContainerRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "already ignored, or ambiguous", body = ErrorBody),
              (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn ignore(host: String, id: String, api: Api) -> Result<Response, Rejection> {
    let ok = api.route(&host, Command::Ignore(id)).await.map_err(reject)?;
    Ok(json(&ok.container).into_response())
}

/// The kept signals of a container: one point per probe period, ten minutes back.
#[utoipa::path(get, path = "/containers/{address}/{id}/series", tag = "containers",
    params(("address" = String, Path, description = "host name"),
           ("id" = String, Path, description = "full id, short id, unique prefix or name"), SeriesParams),
    responses((status = 200, body = SeriesRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn series(host: String, id: String, q: SeriesParams, api: Api) -> Result<Response, Rejection> {
    if let Some(s) = &q.since {
        let parsed = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339);
        parsed.map_err(|_| reject(ApiError::BadRequest(format!("since must be an RFC 3339 time, got {s:?}"))))?;
    }
    let cmd = Command::Series { container: id, since: q.since, last: q.last };
    let ok = api.route(&host, cmd).await.map_err(reject)?;
    Ok(json(&ok.series).into_response())
}

/// Sets a container's response-time probe (kept across restarts of HMS); null turns it off.
#[utoipa::path(put, path = "/containers/{address}/{id}/probe", tag = "containers", request_body = ProbeBody,
    params(("address" = String, Path), ("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ContainerRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody),
              (status = 504, body = ErrorBody)))]
pub async fn set_probe(host: String, id: String, body: ProbeBody, api: Api) -> Result<Response, Rejection> {
    let probe = body.setting().map_err(reject)?;
    let ok = api.route(&host, Command::SetProbe { container: id, probe }).await.map_err(reject)?;
    Ok(json(&ok.container).into_response())
}

/// Drops a probe set through REST: the container's `hms.probe` label rules again.
#[utoipa::path(delete, path = "/containers/{address}/{id}/probe", tag = "containers",
    params(("address" = String, Path), ("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ContainerRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn reset_probe(host: String, id: String, api: Api) -> Result<Response, Rejection> {
    let ok = api.route(&host, Command::SetProbe { container: id, probe: ProbeSetting::Label }).await.map_err(reject)?;
    Ok(json(&ok.container).into_response())
}

/// Hosts with status and last heartbeat.
#[utoipa::path(get, path = "/hosts", tag = "hosts", responses((status = 200, body = [HostRecord])))]
pub async fn hosts(api: Api) -> Result<Response, Rejection> {
    let fleet = api.snapshot();
    let hosts: Vec<&HostRecord> = fleet.host_records().collect();
    Ok(json(&hosts).into_response())
}

/// The aggregation time.
#[utoipa::path(get, path = "/config", tag = "config", responses((status = 200, body = ConfigBody)))]
pub async fn get_config(api: Api) -> Result<Response, Rejection> {
    let snap = api.snapshot();
    Ok(json(&ConfigBody { aggregation: snap.aggregation, analysis: snap.analysis }).into_response())
}

/// Changes the aggregation time and/or the analysis settings (persisted).
#[utoipa::path(put, path = "/config", tag = "config", request_body = ConfigPatchBody, security(("bearer" = [])),
    responses((status = 200, body = ConfigBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn put_config(body: ConfigPatchBody, api: Api) -> Result<Response, Rejection> {
    // everything is checked before anything changes
    let agg =
        body.aggregation.map(Aggregation::new).transpose().map_err(|e| reject(ApiError::BadRequest(e.to_string())))?;
    let analysis = match &body.analysis {
        Some(p) => Some(api.snapshot().analysis.patched(p).map_err(|e| reject(ApiError::BadRequest(e)))?),
        None => None,
    };
    if let Some(agg) = agg {
        let d = agg.duration();
        api.ask(|r| ControllerMsg::SetAggregation(d, r)).await.map_err(reject)?.map_err(|e| reject(e.into()))?;
    }
    if let Some(a) = analysis {
        api.ask(|r| ControllerMsg::SetAnalysis(a, r)).await.map_err(reject)?.map_err(|e| reject(e.into()))?;
    }
    get_config(api).await
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "observability",
    responses((status = 200, description = "Prometheus text format (OpenMetrics 1.0, as prometheus-client encodes it)",
        content_type = super::metrics::CONTENT_TYPE, body = String)))]
pub async fn metrics(api: Api) -> Result<Response, Rejection> {
    let stats = api.ask(ControllerMsg::Stats).await.ok();
    let text = api.metrics.render(&api.snapshot(), stats.as_ref());
    let mut res = Response::new(text.into());
    res.headers_mut().insert(CONTENT_TYPE, warp::http::HeaderValue::from_static(super::metrics::CONTENT_TYPE));
    Ok(res)
}
