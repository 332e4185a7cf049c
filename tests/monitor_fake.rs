//! The Monitor over the in-memory engine, prober, responder and sensors: response time,
//! workload and resources reach the records, the series and REST; the probe follows labels and
//! REST settings.

mod common;

use std::time::Duration;

use common::{FakeFleet, call, eventually, test_manager_config};
use hms::resources::cgroup::{CpuSample, MemorySample};
use hms::resources::sensors::Counters;
use serde_json::Value;

/// Advances a container's fake counters every second, as a service under a steady load would:
/// a quarter of a core, `theirs` connections of its clients plus the probe's 3, 20 MiB.
fn steady_load(fleet: &FakeFleet, id: &str, theirs: u64) -> tokio::task::JoinHandle<()> {
    let (sensors, id) = (fleet.sensors.clone(), id.to_owned());
    tokio::spawn(async move {
        for i in 0u64..600 {
            let counters = Counters {
                cpu: Some(CpuSample { usage_ns: i * 250_000_000, periods: 0, throttled: 0 }),
                memory: Some(MemorySample { usage_bytes: 20 << 20, limit_bytes: Some(64 << 20), failures: 0 }),
                net: Some(i * (theirs + 3)),
            };
            sensors.set(&id, counters);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_probed_container_shows_its_response_time_workload_and_resources() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let web = fleet.runtime.add("web", &[("hms.probe", "http://:8080/")]);
    let db = fleet.runtime.add("db", &[]);
    fleet.responder.set(fleet.ip(&web).await, Some(Duration::from_millis(42)));
    let load = steady_load(&fleet, &web, 10);
    eventually(Duration::from_secs(10), "web shows its signals", || async {
        fleet.record("web").await.is_some_and(|r| {
            r.response_ms == Some(42.0)
                && r.workload == Some(10.0)
                && r.cpu_percent == Some(25.0)
                && r.memory_bytes == Some(20 << 20)
        })
    })
    .await;
    let web_rec = fleet.record("web").await.unwrap();
    assert_eq!(web_rec.probe.as_deref(), Some("http://:8080/"));
    let db_rec = fleet.record("db").await.unwrap();
    assert_eq!((db_rec.probe, db_rec.response_ms), (None, None), "no label, no response time");
    assert_eq!(db_rec.cpu_percent, None, "no counters, no CPU");
    load.abort();
    let _ = db;
}

#[tokio::test(start_paused = true)]
async fn a_failing_service_counts_at_the_timeout_and_a_stopped_one_shows_nothing() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let web = fleet.runtime.add("web", &[("hms.probe", "tcp://:5432")]);
    fleet.responder.set(fleet.ip(&web).await, None);
    eventually(Duration::from_secs(10), "failures at the 1 s timeout", || async {
        fleet.record("web").await.is_some_and(|r| r.response_ms == Some(1000.0))
    })
    .await;
    fleet.runtime.die_on_start(&web, true);
    fleet.runtime.crash(&web);
    eventually(Duration::from_secs(10), "a stopped container shows no signals", || async {
        fleet
            .record("web")
            .await
            .is_some_and(|r| r.response_ms.is_none() && r.state != hms::model::ContainerState::Running)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_series_endpoint_returns_the_kept_points_and_the_probe_is_set_over_rest() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let web = fleet.runtime.add("web", &[]);
    fleet.responder.set(fleet.ip(&web).await, Some(Duration::from_millis(7)));
    let api = common::fleet_api(&fleet, None, 1).await;

    let (st, rec) = call(&api, "PUT", "/containers/h/web/probe", Some(r#"{"probe": "http://:80/health"}"#)).await;
    assert_eq!(st, 200, "{rec}");
    assert_eq!(rec["probe"], "http://:80/health", "{rec}");
    let (_, read) = call(&api, "GET", "/containers/h/web", None).await;
    assert_eq!(read["probe"], "http://:80/health", "a 2xx is visible to the next read: {read}");
    eventually(Duration::from_secs(10), "response time measured", || async {
        fleet.record("web").await.is_some_and(|r| r.response_ms == Some(7.0))
    })
    .await;
    eventually(Duration::from_secs(10), "three points kept", || async {
        call(&api, "GET", "/containers/h/web/series", None).await.1["points"].as_array().is_some_and(|p| p.len() >= 3)
    })
    .await;
    let (st, series) = call(&api, "GET", "/containers/h/web/series?last=2", None).await;
    assert_eq!(st, 200, "{series}");
    assert_eq!((series["host"].as_str(), series["name"].as_str()), (Some("h"), Some("web")));
    assert_eq!(series["workload_unit"], "requests");
    assert_eq!(series["period_secs"], 1.0);
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{series}");
    let last = &points[1];
    assert_eq!(last["response_ms"], 7.0, "{last}");
    assert_eq!(last["response_failed"], 0.0, "{last}");
    assert_eq!(last["packet_loss"], 0.0, "{last}");
    assert!(last["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{last}");
    let future = "2999-01-01T00:00:00Z";
    let (_, none) = call(&api, "GET", &format!("/containers/h/web/series?since={future}"), None).await;
    assert_eq!(none["points"], serde_json::json!([]));

    for (path, body, want) in [
        ("/containers/h/web/series?since=yesterday", None, 400),
        ("/containers/h/web/series?last=-1", None, 400),
        ("/containers/h/web/series?colour=red", None, 400),
        ("/containers/h/nobody/series", None, 404),
        ("/containers/elsewhere/web/series", None, 404),
    ] {
        let (st, err) = call(&api, "GET", path, body).await;
        assert_eq!(st, want, "{path}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{err}");
    }
    for (body, fragment) in [
        (r#"{"probe": "ftp://:21"}"#, "probe must be"),
        (r#"{"probe": 80}"#, "probe"),
        (r#"{"probe": "http://:8080/", "extra": 1}"#, "extra"),
        ("{}", "required"),
    ] {
        let (st, err) = call(&api, "PUT", "/containers/h/web/probe", Some(body)).await;
        assert_eq!(st, 400, "{body}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| m.contains(fragment)), "{body}: {err}");
    }
    let (_, kept) = call(&api, "GET", "/containers/h/web", None).await;
    assert_eq!(kept["probe"], "http://:80/health", "a refused change loses nothing: {kept}");

    let (st, off) = call(&api, "PUT", "/containers/h/web/probe", Some(r#"{"probe": null}"#)).await;
    assert_eq!((st, &off["probe"]), (200, &Value::Null), "{off}");
    eventually(Duration::from_secs(5), "no probe, no response time", || async {
        fleet.record("web").await.is_some_and(|r| r.response_ms.is_none())
    })
    .await;
    let (st, label) = call(&api, "DELETE", "/containers/h/web/probe", None).await;
    assert_eq!((st, &label["probe"]), (200, &Value::Null), "back to the (absent) label: {label}");
}
