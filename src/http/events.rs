//! `GET /events`: every change the controller publishes, as server-sent events.
//!
//! Events are named after their kind (`containers`, `host`, `anomaly`: a container's anomaly
//! opened, changed level or closed) and carry the `FleetEvent` as JSON; a
//! subscriber too slow to keep up gets one `lagged` event naming how many it missed (then it
//! should re-read `/containers`). **Invariant:** every stream ends when the server shuts down
//! ([`super::Api::close`]) or the controller stops, so a graceful shutdown never waits on one.

use std::convert::Infallible;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, watch};
use warp::Reply;
use warp::sse::Event;

use super::Api;
use crate::actors::controller::FleetEvent;

/// Server-sent events.
#[utoipa::path(get, path = "/events", tag = "observability",
    responses((status = 200, description = "server-sent events: `containers`, `host` and `anomaly` changes, `lagged`",
               content_type = "text/event-stream", body = String)))]
pub fn stream(api: Api) -> warp::reply::Response {
    let rx = api.events.subscribe();
    let events = futures::stream::unfold((rx, api.closing.clone()), next).map(Ok::<_, Infallible>);
    let keep = warp::sse::keep_alive().interval(Duration::from_secs(15));
    warp::sse::reply(keep.stream(events)).into_response()
}

type StreamState = (broadcast::Receiver<FleetEvent>, watch::Receiver<bool>);

async fn next((mut rx, mut closing): StreamState) -> Option<(Event, StreamState)> {
    if *closing.borrow() {
        return None;
    }
    let event = tokio::select! {
        _ = closing.wait_for(|c| *c) => return None,
        e = rx.recv() => e,
    };
    let event = match event {
        Ok(e) => to_event(&e),
        Err(broadcast::error::RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
        Err(broadcast::error::RecvError::Closed) => return None,
    };
    Some((event, (rx, closing)))
}

fn to_event(e: &FleetEvent) -> Event {
    let name = match e {
        FleetEvent::Containers { .. } => "containers",
        FleetEvent::Host { .. } => "host",
        FleetEvent::Anomaly { .. } => "anomaly",
    };
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".to_owned());
    Event::default().event(name).data(data)
}
