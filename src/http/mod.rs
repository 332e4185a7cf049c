//! The REST API on warp: one filter function per route, combined by [`routes`], thin handlers
//! (an actor call with a timeout, then a DTO), and one rejection handler ([`error::recover`]).

pub mod error;
mod handlers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection, Reply};

use crate::actors::controller::ControllerMsg;
pub use error::ApiError;

/// Largest accepted request body.
pub const BODY_LIMIT: u64 = 64 * 1024;

/// What every handler needs.
#[derive(Clone)]
pub struct Api {
    pub controller: ActorRef<ControllerMsg>,
    /// Longest wait for an actor's answer.
    pub timeout: Duration,
    /// Bearer token required on mutating requests, when set.
    pub token: Option<Arc<str>>,
}

/// Refuses to serve a non-loopback address without a token.
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), String> {
    if addr.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(format!("refusing to serve REST on non-loopback {addr} without HMS_API_TOKEN"))
    }
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(listener: tokio::net::TcpListener, api: Api, shutdown: impl Future<Output = ()> + Send + 'static) {
    warp::serve(routes(api)).incoming(listener).graceful(shutdown).run().await;
}

/// Every route, with the JSON rejection handler.
pub fn routes(api: Api) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    containers(api.clone())
        .or(host_containers(api.clone()))
        .or(container(api.clone()))
        .or(hosts(api.clone()))
        .or(config(api))
        .recover(error::recover)
}

fn with_api(api: Api) -> impl Filter<Extract = (Api,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || api.clone())
}

/// Requires the bearer token, when one is configured.
fn authorized(api: Api) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let api = api.clone();
            async move {
                let Some(token) = api.token.as_deref() else { return Ok(()) };
                let given = header.as_deref().and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
                if constant_time_eq(given.as_bytes(), token.as_bytes()) {
                    Ok(())
                } else {
                    Err(warp::reject::custom(ApiError::Unauthorized))
                }
            }
        })
        .untuple_one()
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let diff = a.iter().zip(b).fold(a.len() ^ b.len(), |acc, (x, y)| acc | usize::from(x ^ y));
    diff == 0
}

/// A JSON body of type `T`, limited in size; any decoding problem is a 400 naming it.
fn json_body<T: DeserializeOwned + Send>() -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(BODY_LIMIT).and(warp::body::bytes()).and_then(|bytes: bytes::Bytes| async move {
        serde_json::from_slice::<T>(&bytes)
            .map_err(|e| warp::reject::custom(ApiError::BadRequest(format!("invalid JSON body: {e}"))))
    })
}

/// `/containers`: GET every container, POST the threshold of every host.
fn containers(api: Api) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let path = warp::path!("containers");
    let get = warp::get().and(with_api(api.clone())).and_then(handlers::list_containers);
    let post = warp::post()
        .and(authorized(api.clone()))
        .and(json_body())
        .and(with_api(api))
        .and_then(handlers::set_threshold_everywhere);
    path.and(get.or(post).unify())
}

/// `/containers/{address}`: GET, POST (threshold).
fn host_containers(api: Api) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let path = || warp::path!("containers" / String);
    let get = path().and(warp::get()).and(with_api(api.clone())).and_then(handlers::host_view);
    let post = path()
        .and(warp::post())
        .and(authorized(api.clone()))
        .and(json_body())
        .and(with_api(api))
        .and_then(handlers::set_host_threshold);
    get.or(post).unify()
}

/// `/containers/{address}/{id}`: GET one, PUT monitor, DELETE ignore.
fn container(api: Api) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let path = || warp::path!("containers" / String / String);
    let get = path().and(warp::get()).and(with_api(api.clone())).and_then(handlers::one_container);
    let put =
        path().and(warp::put()).and(authorized(api.clone())).and(with_api(api.clone())).and_then(handlers::monitor);
    let delete = path().and(warp::delete()).and(authorized(api.clone())).and(with_api(api)).and_then(handlers::ignore);
    get.or(put).unify().or(delete).unify()
}

/// `/hosts`: GET every host.
fn hosts(api: Api) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path!("hosts").and(warp::get()).and(with_api(api)).and_then(handlers::hosts)
}

/// `/config`: GET, PUT the aggregation time.
fn config(api: Api) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let get = warp::get().and(with_api(api.clone())).and_then(handlers::get_config);
    let put =
        warp::put().and(authorized(api.clone())).and(json_body()).and(with_api(api)).and_then(handlers::put_config);
    warp::path!("config").and(get.or(put).unify())
}
