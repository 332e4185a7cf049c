//! `GET /`: the live dashboard, one HTML page with its script, embedded in the binary.
//!
//! The page reads `/hosts` and `/containers`, then follows `/events` (server-sent events) and
//! re-reads after each burst of changes; its buttons call the REST API (with the bearer token
//! typed into the page, kept in the browser's local storage). It logs every container state it
//! shows to the console (`hms: container NAME STATE restarts=N`), which the browser test reads.

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
