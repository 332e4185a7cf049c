//! `GET /anomalies?host=NAME&since=RFC3339&open=true`: every host's anomaly book merged, oldest
//! first, with what only the whole fleet shows added (`analysis::anomaly::refine`: a dependency
//! anomalous on another host makes `neighbour`, every online host degraded makes `cluster`).

use serde::Deserialize;
use time::OffsetDateTime;
use warp::reply::{Reply, Response, json};
use warp::{Filter, Rejection};

use super::{Api, ApiError, with_api};
use crate::actors::protocol::Command;
use crate::analysis::anomaly::{AnomalyRecord, refine};
use crate::antagonist::truth::parse_time;
use crate::model::HostStatus;

/// `?host=&since=&open=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomaliesQuery {
    host: Option<String>,
    since: Option<String>,
    open: Option<String>,
}

/// `GET /anomalies`.
pub fn routes(api: Api) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("anomalies").and(warp::get()).and(warp::query::<AnomaliesQuery>()).and(with_api(api)).and_then(list)
}

fn reject(e: ApiError) -> Rejection {
    warp::reject::custom(e)
}

/// `open` as the contract spells it: `true` or `false`.
fn open_only(text: Option<&str>) -> Result<bool, ApiError> {
    match text {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!("open: expected true or false, got {other:?}"))),
    }
}

async fn list(q: AnomaliesQuery, api: Api) -> Result<Response, Rejection> {
    if let Some(s) = &q.since {
        parse_time(s).map_err(|e| reject(ApiError::BadRequest(format!("since: {e}"))))?;
    }
    let open = open_only(q.open.as_deref()).map_err(reject)?;
    let snapshot = api.snapshot();
    let online: Vec<String> =
        snapshot.hosts.iter().filter(|(_, h)| h.record.status == HostStatus::Online).map(|(n, _)| n.clone()).collect();
    // the refinement needs every host's open anomalies, whatever the filter asks for
    let hosts: Vec<String> = snapshot.hosts.keys().cloned().collect();
    if let Some(h) = &q.host
        && !snapshot.hosts.contains_key(h)
    {
        return Err(reject(ApiError::NotFound(format!("no host named {h:?}"))));
    }
    let calls = hosts.iter().map(|h| {
        let api = api.clone();
        async move { (h, api.route(h, Command::Anomalies { since: None, open: false }).await) }
    });
    let mut all: Vec<AnomalyRecord> = Vec::new();
    for (host, res) in futures::future::join_all(calls).await {
        match res {
            Ok(ok) => all.extend(ok.anomalies.unwrap_or_default()),
            Err(e) if q.host.as_ref() == Some(host) => return Err(reject(e)),
            Err(e) => tracing::warn!(host = %host, error = %e, "cannot read a host's anomalies"),
        }
    }
    refine(&mut all, &online);
    let since = q.since.as_deref().and_then(|s| parse_time(s).ok());
    let after = |r: &AnomalyRecord| since.is_none_or(|s| parse_time(&r.detected_at).is_ok_and(|t| t >= s));
    all.retain(|r| (!open || r.is_open()) && q.host.as_ref().is_none_or(|h| &r.host == h) && after(r));
    all.sort_by_key(|r| parse_time(&r.detected_at).unwrap_or(OffsetDateTime::UNIX_EPOCH));
    Ok(json(&all).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_is_true_false_or_absent() {
        assert!(!open_only(None).unwrap());
        assert!(open_only(Some("true")).unwrap());
        assert!(!open_only(Some("false")).unwrap());
        let e = open_only(Some("yes")).unwrap_err().to_string();
        assert!(e.starts_with("open:"), "{e}");
    }
}
