//! `GET /`: the live dashboard, one HTML page with its script, embedded in the binary.
//!
//! The page reads `/hosts`, `/containers` and the open `/anomalies` (a container's level and culprit,
//! a host with an open anomaly marked), then follows `/events` (server-sent events) and
//! re-reads after each burst of changes; its buttons call the REST API (with the bearer token
//! typed into the page, kept in the browser's local storage). Hosts show CPU busy, memory
//! available and load; containers their response time, workload, CPU and memory, in the units
//! `hmsctl` uses, and a sparkline of response time and workload over the last 120 points of
//! their series. Sparklines are refreshed every 5 s for the containers that have a probe or a
//! row on screen (host online, at most 32 a round, 4 requests at a time, only the new points
//! after the first fetch), never while the page is hidden.
//!
//! It logs to the console, which the browser test reads: every container state it shows
//! (`hms: container NAME STATE restarts=N`), every response time it shows (`hms: response NAME
//! 12.3 ms`, `—` for none) and a container's first sparkline with at least two response times
//! (`hms: sparkline NAME response points=N`).

use warp::http::HeaderValue;
use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use warp::reply::Response;
use warp::{Filter, Rejection};

const PAGE: &str = include_str!("../../assets/dashboard.html");

/// `/`
pub fn routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::end().and(warp::get()).map(index)
}

/// The live dashboard.
#[utoipa::path(get, path = "/", tag = "docs",
    responses((status = 200, description = "the dashboard", content_type = "text/html", body = String)))]
pub fn index() -> Response {
    let mut res = Response::new(PAGE.into());
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
