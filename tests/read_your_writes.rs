//! Read-your-writes over REST: once a mutating call (ignore, monitor, threshold) answers 2xx, the
//! next read shows its effect. The aggregation window is set to 10 s first, so nothing but the
//! controller's pull after the command can bring the change into the view in time.

mod common;

use std::time::Duration;

use common::{FakeFleet, call, eventually, test_manager_config};
use hms::actors::controller::{ControllerMsg, Stats};
use hms::http::Api;
use hms::model::ContainerState;
use serde_json::Value;

struct Setup {
    fleet: FakeFleet,
    api: Api,
}

/// The controller's exchange counters.
async fn stats(fleet: &FakeFleet) -> Stats {
    match fleet.node.controller.call(ControllerMsg::Stats, None).await {
        Ok(ractor::rpc::CallResult::Success(s)) => s,
        other => panic!("controller did not answer: {other:?}"),
    }
}

/// A host `h` with `web` and `db` in the view (their first loss measured, so the probes change
/// nothing more), then a 10 s aggregation window and no shorter window left open from before:
/// the view's stale time stands still, or a window opened since (windows open one at a time).
async fn setup() -> Setup {
    setup_with(false).await
}

/// [`setup`], with `web` ignored (and the view showing it) before the window grows.
async fn setup_with(web_ignored: bool) -> Setup {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    fleet.runtime.add("web", &[]);
    fleet.runtime.add("db", &[]);
    let api = Api::connect(fleet.node.controller.clone(), Duration::from_secs(5), None).await.expect("api connects");
    let probe = api.clone();
    eventually(Duration::from_secs(10), "two containers published with their loss", || {
        let snapshot = probe.snapshot();
        let measured = snapshot.containers().filter(|c| c.packet_loss.is_some()).count();
        async move { measured == 2 }
    })
    .await;
    if web_ignored {
        let (st, body) = call(&api, "DELETE", "/containers/h/web", None).await;
        assert_eq!(st, 200, "{body}");
        eventually(Duration::from_secs(10), "web ignored in the view", || {
            let ignored = state(&probe, "web") == Some(ContainerState::Ignored);
            async move { ignored }
        })
        .await;
    }
    let (st, body) = call(&api, "PUT", "/config", Some(r#"{"aggregation": 10}"#)).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(api.snapshot().aggregation, 10.0, "the answer follows the published window");
    let windows = stats(&fleet).await.windows;
    eventually(Duration::from_secs(5), "no short window left open", || async {
        let before = stats(&fleet).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after = stats(&fleet).await;
        after.stale_seconds == before.stale_seconds || after.windows > windows
    })
    .await;
    Setup { fleet, api }
}

/// The state of a container of `h` in the published snapshot.
fn state(api: &Api, name: &str) -> Option<ContainerState> {
    api.snapshot().host("h")?.containers.iter().find(|c| c.name == name).map(|c| c.state)
}

fn thresholds(containers: &Value) -> Vec<u64> {
    containers.as_array().expect("an array").iter().filter_map(|c| c["threshold"].as_u64()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignored_container_reads_ignored_at_once() {
    let s = setup().await;
    let (st, body) = call(&s.api, "DELETE", "/containers/h/web", None).await;
    assert_eq!((st, body["state"].as_str()), (200, Some("ignored")), "{body}");
    let (st, one) = call(&s.api, "GET", "/containers/h/web", None).await;
    assert_eq!((st, one["state"].as_str()), (200, Some("ignored")), "{one}");
    let (_, all) = call(&s.api, "GET", "/containers", None).await;
    assert!(all.as_array().unwrap().iter().any(|c| c["name"] == "web" && c["state"] == "ignored"), "{all}");
    assert_eq!(state(&s.api, "web"), Some(ContainerState::Ignored), "the watched snapshot");
    s.fleet.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_monitored_again_reads_monitored_at_once() {
    let s = setup_with(true).await;
    let (st, monitored) = call(&s.api, "PUT", "/containers/h/web", None).await;
    assert_eq!(st, 200, "{monitored}");
    assert_ne!(monitored["state"], "ignored", "{monitored}");
    let (st, one) = call(&s.api, "GET", "/containers/h/web", None).await;
    assert_eq!((st, &one["state"]), (200, &monitored["state"]), "{one}");
    s.fleet.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_threshold_reads_on_the_host_and_its_containers_at_once() {
    let s = setup().await;
    let (st, body) = call(&s.api, "POST", "/containers/h", Some(r#"{"threshold": 77}"#)).await;
    assert_eq!((st, body["threshold"].as_u64()), (200, Some(77)), "{body}");
    let (st, host) = call(&s.api, "GET", "/containers/h", None).await;
    assert_eq!((st, host["host"]["threshold"].as_u64()), (200, Some(77)), "{host}");
    assert_eq!(thresholds(&host["containers"]), [77, 77], "{host}");
    let (_, hosts) = call(&s.api, "GET", "/hosts", None).await;
    assert_eq!(hosts[0]["threshold"].as_u64(), Some(77), "{hosts}");
    s.fleet.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_wide_threshold_reads_everywhere_at_once() {
    let s = setup().await;
    let (st, body) = call(&s.api, "POST", "/containers", Some(r#"{"threshold": 12}"#)).await;
    assert_eq!((st, body["hosts"][0]["ok"].as_bool()), (200, Some(true)), "{body}");
    let (_, all) = call(&s.api, "GET", "/containers", None).await;
    assert_eq!(thresholds(&all), [12, 12], "{all}");
    let (_, hosts) = call(&s.api, "GET", "/hosts", None).await;
    assert_eq!(hosts[0]["threshold"].as_u64(), Some(12), "{hosts}");
    s.fleet.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_or_removed_host_reads_at_once() {
    let s = setup().await;
    let (st, body) = call(&s.api, "PUT", "/containers/far", Some(r#"{"endpoint": "10.9.9.9:7946"}"#)).await;
    assert_eq!(st, 200, "{body}");
    let (_, hosts) = call(&s.api, "GET", "/hosts", None).await;
    assert!(hosts.as_array().unwrap().iter().any(|h| h["name"] == "far" && h["status"] == "offline"), "{hosts}");
    let (st, body) = call(&s.api, "DELETE", "/containers/far", None).await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = call(&s.api, "GET", "/containers/far", None).await;
    assert_eq!(st, 404, "{body}");
    s.fleet.node.stop().await;
}
