//! The antagonist's REST API: `/antagonist` (every host), `/antagonist/{address}` (one host) and
//! `/attacks` (the ground truth of every host).
//!
//! | method | `/antagonist` | `/antagonist/{address}` |
//! |---|---|---|
//! | GET | `{"hosts": [outcome…]}` | the host's status |
//! | PUT (optional config body) | start everywhere | start there |
//! | POST (config body, partial) | configure everywhere | configure there |
//! | DELETE | stop everywhere | stop there |
//!
//! A status is `{"host","running","config":{…},"targets","active","attacks":{"shutdown","loss",
//! "failed","interrupted"},"started_at","method"}`; a per-host outcome is
//! `{"host","ok","error","status"}`. A config body is validated before anything is sent to a
//! host: an invalid value is a 400 naming its field.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use warp::reply::{Reply, Response, json};
use warp::{Filter, Rejection};

use super::{Api, ApiError, BODY_LIMIT, Segment, authorized, json_body, with_api};
use crate::actors::protocol::{AntagonistStatus, Command, CommandOk};
use crate::antagonist::plan::ConfigPatch;
use crate::antagonist::truth::{AttackRecord, parse_time};

/// Every antagonist route.
pub fn routes(api: Api) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    fleet(api.clone()).or(one_host(api.clone())).or(attacks(api))
}

/// `/antagonist`: GET, PUT, POST, DELETE on every host.
fn fleet(api: Api) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("antagonist").and(action(api)).untuple_one().and_then(everywhere)
}

/// `/antagonist/{address}`: GET, PUT, POST, DELETE on one host.
fn one_host(api: Api) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("antagonist" / Segment)
        .map(String::from)
        .and(action(api))
        .and_then(|host: String, (action, api): (Action, Api)| async move { on_host(host, action, api).await })
}

/// The method (and body) of an antagonist request as an [`Action`], authorized when it mutates.
fn action(api: Api) -> impl Filter<Extract = ((Action, Api),), Error = Rejection> + Clone {
    let get = warp::get().and(with_api(api.clone())).map(|api| (Action::Status, api));
    let put = warp::put()
        .and(authorized(api.clone()))
        .and(optional_patch())
        .and(with_api(api.clone()))
        .map(|p: Option<ConfigPatch>, api| (Action::Start(p), api));
    let post = warp::post()
        .and(authorized(api.clone()))
        .and(json_body::<ConfigPatch>())
        .and(with_api(api.clone()))
        .map(|p, api| (Action::Configure(p), api));
    let delete = warp::delete().and(authorized(api.clone())).and(with_api(api)).map(|api| (Action::Stop, api));
    get.or(put).unify().or(post).unify().or(delete).unify()
}

/// `/attacks?since=RFC3339&host=NAME`: the merged ground truth, oldest first.
fn attacks(api: Api) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("attacks").and(warp::get()).and(warp::query::<AttacksQuery>()).and(with_api(api)).and_then(list_attacks)
}

/// What to do on the antagonist(s).
#[derive(Debug, Clone)]
enum Action {
    Status,
    Start(Option<ConfigPatch>),
    Configure(ConfigPatch),
    Stop,
}

impl Action {
    /// The command, once the body is validated (a 400 naming the field otherwise).
    fn command(self) -> Result<Command, ApiError> {
        let check = |p: &ConfigPatch| {
            if p.seed.is_some_and(|s| s > super::body::MAX_EXACT_INTEGER) {
                let max = super::body::MAX_EXACT_INTEGER;
                return Err(ApiError::BadRequest(format!("seed must be an integer from 0 to {max} (exact in JSON)")));
            }
            p.validate().map_err(|e| ApiError::BadRequest(e.to_string()))
        };
        Ok(match self {
            Action::Status => Command::AntagonistStatus,
            Action::Start(p) => {
                p.as_ref().map(check).transpose()?;
                Command::AntagonistStart(p)
            }
            Action::Configure(p) => {
                check(&p)?;
                Command::AntagonistConfigure(p)
            }
            Action::Stop => Command::AntagonistStop,
        })
    }
}

/// `?since=&host=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttacksQuery {
    since: Option<String>,
    host: Option<String>,
}

#[derive(Serialize)]
struct Outcome {
    host: String,
    ok: bool,
    error: Option<String>,
    status: Option<AntagonistStatus>,
}

fn reject(e: ApiError) -> Rejection {
    warp::reject::custom(e)
}

/// An optional JSON body (no body, or an empty one, is `None`), limited like every body.
fn optional_patch() -> impl Filter<Extract = (Option<ConfigPatch>,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::header::optional::<String>("transfer-encoding"))
        .and_then(|len: Option<u64>, chunked: Option<String>| async move {
            match (len, chunked) {
                (Some(n), _) if n > BODY_LIMIT => Err(reject(ApiError::PayloadTooLarge)),
                (None, Some(_)) => Err(reject(ApiError::BadRequest("a Content-Length is required".to_owned()))),
                _ => Ok(()),
            }
        })
        .untuple_one()
        .and(warp::body::bytes())
        .and_then(
            |bytes: bytes::Bytes| async move { super::body::decode_optional::<ConfigPatch>(&bytes).map_err(reject) },
        )
}

fn status_of(ok: CommandOk, host: &str) -> Result<AntagonistStatus, ApiError> {
    ok.antagonist.ok_or_else(|| ApiError::Internal(format!("host {host} answered without a status")))
}

async fn on_host(host: String, action: Action, api: Api) -> Result<Response, Rejection> {
    let cmd = action.command().map_err(reject)?;
    let ok = api.route(&host, cmd).await.map_err(reject)?;
    Ok(json(&status_of(ok, &host).map_err(reject)?).into_response())
}

async fn everywhere(action: Action, api: Api) -> Result<Response, Rejection> {
    let cmd = action.command().map_err(reject)?;
    let names: Vec<String> = api.snapshot().hosts.keys().cloned().collect();
    if names.is_empty() {
        return Err(reject(ApiError::Unavailable("no host is registered".to_owned())));
    }
    let calls = names.iter().map(|h| {
        let (api, cmd) = (api.clone(), cmd.clone());
        async move {
            let res = api.route(h, cmd).await.and_then(|ok| status_of(ok, h));
            match res {
                Ok(s) => Outcome { host: h.clone(), ok: true, error: None, status: Some(s) },
                Err(e) => Outcome { host: h.clone(), ok: false, error: Some(e.to_string()), status: None },
            }
        }
    });
    let hosts = futures::future::join_all(calls).await;
    Ok(json(&serde_json::json!({ "hosts": hosts })).into_response())
}

async fn list_attacks(q: AttacksQuery, api: Api) -> Result<Response, Rejection> {
    if let Some(s) = &q.since {
        parse_time(s).map_err(|e| reject(ApiError::BadRequest(format!("since: {e}"))))?;
    }
    let hosts: Vec<String> = match q.host {
        Some(h) => vec![h],
        None => api.snapshot().hosts.keys().cloned().collect(),
    };
    let single = hosts.len() == 1;
    let calls = hosts.iter().map(|h| {
        let (api, since) = (api.clone(), q.since.clone());
        async move { (h, api.route(h, Command::Attacks { since }).await) }
    });
    let mut all: Vec<AttackRecord> = Vec::new();
    for (host, res) in futures::future::join_all(calls).await {
        match res {
            Ok(ok) => all.extend(ok.attacks.unwrap_or_default()),
            Err(e) if single => return Err(reject(e)),
            Err(e) => tracing::warn!(host = %host, error = %e, "cannot read a host's attacks"),
        }
    }
    all.sort_by_key(|r| parse_time(&r.actual_start).unwrap_or(OffsetDateTime::UNIX_EPOCH));
    Ok(json(&all).into_response())
}
