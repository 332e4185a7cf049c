//! The REST API at the warp level, over an in-process node (fake engine and prober): every
//! route, every error status, authentication on and off, the OpenAPI document, the REST
//! reference, server-sent events and a property test that no body produces a 5xx.

mod common;

use std::time::Duration;

use common::{FakeFleet, eventually, test_manager_config};
use hms::actors::controller::ControllerMsg;
use hms::actors::protocol::ToHost;
use hms::http::{Api, BODY_LIMIT, routes};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::Value;

struct Setup {
    fleet: FakeFleet,
    api: Api,
    web: String,
}

async fn setup(token: Option<&str>) -> Setup {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let web = fleet.runtime.add("web", &[]);
    fleet.runtime.add("db", &[]);
    let api = common::fleet_api(&fleet, token, 2).await;
    Setup { fleet, api, web }
}

async fn call(api: &Api, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> (u16, Value) {
    let (status, text) = call_text(api, method, path, body, token).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn call_text(api: &Api, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> (u16, String) {
    let mut req = warp::test::request().method(method).path(path);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = req.reply(&routes(api.clone())).await;
    (res.status().as_u16(), String::from_utf8_lossy(res.body()).into_owned())
}

fn assert_error(status: u16, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_routes_answer_the_contract_shapes() {
    let s = setup(None).await;
    let (st, all) = call(&s.api, "GET", "/containers", None, None).await;
    assert_eq!(st, 200);
    let names: Vec<&str> = all.as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names.len(), 2, "{all}");
    for field in ["id", "name", "image", "host", "ip", "state", "packet_loss", "threshold", "restarts", "last_restart"]
    {
        assert!(all[0].get(field).is_some(), "container record lacks {field}: {all}");
    }
    let (st, host) = call(&s.api, "GET", "/containers/h", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(host["host"]["name"], "h");
    assert_eq!(host["containers"].as_array().map(Vec::len), Some(2));
    for by in ["web", &s.web[..12], &s.web, &s.web[..14]] {
        let (st, one) = call(&s.api, "GET", &format!("/containers/h/{by}"), None, None).await;
        assert_eq!((st, one["name"].as_str()), (200, Some("web")), "lookup by {by}: {one}");
        assert_eq!(one["id"].as_str().map(str::len), Some(12));
    }
    let (st, hosts) = call(&s.api, "GET", "/hosts", None, None).await;
    assert_eq!(st, 200);
    for field in ["name", "status", "last_heartbeat", "threshold", "endpoint"] {
        assert!(hosts[0].get(field).is_some(), "host record lacks {field}: {hosts}");
    }
    assert_eq!(hosts[0]["status"], "online");
    let (st, config) = call(&s.api, "GET", "/config", None, None).await;
    assert_eq!((st, config["aggregation"].as_f64()), (200, Some(0.5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_change_the_fleet_and_answer_errors_with_the_right_status() {
    let s = setup(None).await;
    let (st, body) = call(&s.api, "POST", "/containers", Some(r#"{"threshold": 40}"#), None).await;
    assert_eq!((st, body["hosts"][0]["ok"].as_bool()), (200, Some(true)), "{body}");
    let (st, body) = call(&s.api, "POST", "/containers/h", Some(r#"{"threshold": 45}"#), None).await;
    assert_eq!((st, body["threshold"].as_u64()), (200, Some(45)), "{body}");
    let (st, body) = call(&s.api, "DELETE", "/containers/h/web", None, None).await;
    assert_eq!((st, body["state"].as_str()), (200, Some("ignored")), "{body}");
    let (st, body) = call(&s.api, "DELETE", "/containers/h/web", None, None).await;
    assert_error(st, &body, 409, "conflict");
    let (st, body) = call(&s.api, "PUT", "/containers/h/web", None, None).await;
    assert_eq!((st, body["name"].as_str()), (200, Some("web")), "{body}");
    let (st, body) = call(&s.api, "GET", "/containers/h/0000", None, None).await;
    assert_error(st, &body, 409, "conflict");
    assert!(body["message"].as_str().unwrap().contains("000000000001"), "names candidates: {body}");
    let (st, body) = call(&s.api, "GET", "/containers/h/nothing", None, None).await;
    assert_error(st, &body, 404, "not_found");
    let (st, body) = call(&s.api, "GET", "/containers/nohost", None, None).await;
    assert_error(st, &body, 404, "not_found");
    let (st, body) = call(&s.api, "PUT", "/config", Some(r#"{"aggregation": 0.2}"#), None).await;
    assert_eq!((st, body["aggregation"].as_f64()), (200, Some(0.2)), "{body}");
    let api = s.api.clone();
    eventually(Duration::from_secs(5), "aggregation published", || {
        let a = api.snapshot().aggregation;
        async move { (a - 0.2).abs() < 1e-9 }
    })
    .await;
    drop(s.fleet);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_added_and_removed_and_offline_hosts_answer_503() {
    let s = setup(None).await;
    let (st, body) = call(&s.api, "PUT", "/containers/far", Some(r#"{"endpoint": "10.9.9.9:7946"}"#), None).await;
    assert_eq!((st, body["endpoint"].as_str()), (200, Some("10.9.9.9:7946")), "{body}");
    let (st, body) = call(&s.api, "PUT", "/containers/near", None, None).await;
    assert_eq!((st, body["status"].as_str()), (200, Some("offline")), "{body}");
    let (st, body) = call(&s.api, "PUT", "/containers/far", Some(r#"{"endpoint": "no port"}"#), None).await;
    assert_error(st, &body, 400, "bad_request");
    let (st, body) = call(&s.api, "POST", "/containers/far", Some(r#"{"threshold": 10}"#), None).await;
    assert_error(st, &body, 503, "host_offline");
    let (st, body) = call(&s.api, "DELETE", "/containers/far/web", None, None).await;
    assert_error(st, &body, 503, "host_offline");
    let api = s.api.clone();
    eventually(Duration::from_secs(5), "far is listed", || {
        let listed = api.snapshot().host("far").is_some();
        async move { listed }
    })
    .await;
    let (st, hosts) = call(&s.api, "GET", "/hosts", None, None).await;
    assert_eq!(st, 200);
    assert!(hosts.as_array().unwrap().iter().any(|h| h["name"] == "far" && h["status"] == "offline"), "{hosts}");
    let (st, body) = call(&s.api, "DELETE", "/containers/far", None, None).await;
    assert_eq!((st, body["removed"].as_bool()), (200, Some(true)), "{body}");
    let (st, body) = call(&s.api, "DELETE", "/containers/far", None, None).await;
    assert_error(st, &body, 404, "not_found");
}

/// A host link that takes commands and never answers (a hung host).
struct Mute;

impl Actor for Mute {
    type Msg = ToHost;
    type State = Vec<Box<dyn std::any::Any + Send>>;
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<ToHost>, _: ()) -> Result<Self::State, ActorProcessingErr> {
        Ok(Vec::new())
    }
    async fn handle(&self, _: ActorRef<ToHost>, msg: ToHost, held: &mut Self::State) -> Result<(), ActorProcessingErr> {
        fn keep<T: Send + 'static>(held: &mut Vec<Box<dyn std::any::Any + Send>>, port: RpcReplyPort<T>) {
            held.push(Box::new(port));
        }
        match msg {
            ToHost::Pull(_, port) => keep(held, port),
            ToHost::Command(_, port) => keep(held, port),
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_does_not_answer_is_a_504() {
    let s = setup(None).await;
    let (mute, _) = Actor::spawn(None, Mute, ()).await.unwrap();
    s.fleet.node.controller.cast(ControllerMsg::Register { host: "hung".into(), manager: mute.clone() }).unwrap();
    let api = s.api.clone();
    eventually(Duration::from_secs(5), "hung registered", || {
        let ok = api.snapshot().host("hung").is_some();
        async move { ok }
    })
    .await;
    let (st, body) = call(&s.api, "POST", "/containers/hung", Some(r#"{"threshold": 10}"#), None).await;
    assert_error(st, &body, 504, "host_timeout");
    mute.stop(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_with_the_json_error_shape() {
    let s = setup(None).await;
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("POST", "/containers", Some("{not json"), 400, "bad_request"),
        ("POST", "/containers", Some(r#"{"threshold": "x"}"#), 400, "bad_request"),
        ("POST", "/containers", Some(r#"{"threshold": null}"#), 400, "bad_request"),
        ("POST", "/containers", Some(r#"{"threshold": 101}"#), 400, "bad_request"),
        ("POST", "/containers/h", Some(r#"{"threshold": -1}"#), 400, "bad_request"),
        ("POST", "/containers/h", Some(r#"{"threshold": 10.5}"#), 400, "bad_request"),
        ("POST", "/containers/h", Some(r#"{"threshold": 10, "treshold": 3}"#), 400, "bad_request"),
        ("POST", "/containers/h", Some(""), 400, "bad_request"),
        ("PUT", "/config", Some(r#"{"aggregation": -1}"#), 400, "bad_request"),
        ("PUT", "/config", Some(r#"{"aggregation": 0}"#), 400, "bad_request"),
        ("PUT", "/config", Some(r#"{"aggregation": 1e400}"#), 400, "bad_request"),
        ("PUT", "/config", Some(r#"{"aggregation": "NaN"}"#), 400, "bad_request"),
        ("PUT", "/config", Some(r#"{"aggregation": 1, "x": 1}"#), 400, "bad_request"),
        ("PUT", "/containers/h", Some(r#"{"endpoint": 5}"#), 400, "bad_request"),
        ("GET", "/nope", None, 404, "not_found"),
        ("GET", "/containers/h/web/extra", None, 404, "not_found"),
        ("PATCH", "/containers", None, 405, "method_not_allowed"),
        ("DELETE", "/hosts", None, 405, "method_not_allowed"),
        ("POST", "/config", Some("{}"), 405, "method_not_allowed"),
        ("POST", "/containers/h/web", None, 405, "method_not_allowed"),
        ("PUT", "/antagonist/h", Some(r#"{"heavy": 101}"#), 400, "bad_request"),
        ("POST", "/antagonist", Some(r#"{"frequency": 0}"#), 400, "bad_request"),
        ("POST", "/antagonist/h", Some(r#"{"loss_scope": "planet"}"#), 400, "bad_request"),
        ("PUT", "/antagonist", Some(r#"{"hevy": 5}"#), 400, "bad_request"),
        ("GET", "/attacks?since=yesterday", None, 400, "bad_request"),
    ];
    for (method, path, body, want, code) in cases {
        let (st, b) = call(&s.api, method, path, *body, None).await;
        assert_eq!(st, *want, "{method} {path} {body:?}: {b}");
        assert_eq!(b["error"], *code, "{method} {path} {body:?}: {b}");
    }
    let big = format!(r#"{{"threshold": 1, "pad": "{}"}}"#, "x".repeat(BODY_LIMIT as usize));
    let (st, b) = call(&s.api, "POST", "/containers", Some(&big), None).await;
    assert_error(st, &b, 413, "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_mutations_need_it_and_reads_stay_open() {
    let s = setup(Some("s3cret")).await;
    let body = Some(r#"{"threshold": 20}"#);
    let (st, b) = call(&s.api, "POST", "/containers/h", body, None).await;
    assert_error(st, &b, 401, "unauthorized");
    let (st, b) = call(&s.api, "POST", "/containers/h", body, Some("wrong")).await;
    assert_error(st, &b, 401, "unauthorized");
    let (st, b) = call(&s.api, "DELETE", "/containers/h/web", None, Some("s3cret-")).await;
    assert_error(st, &b, 401, "unauthorized");
    let (st, b) = call(&s.api, "PUT", "/antagonist", None, None).await;
    assert_error(st, &b, 401, "unauthorized");
    let (st, _) = call(&s.api, "POST", "/containers/h", body, Some("s3cret")).await;
    assert_eq!(st, 200);
    for path in ["/containers", "/containers/h", "/containers/h/web", "/hosts", "/config", "/metrics", "/openapi.json"]
    {
        let (st, b) = call_text(&s.api, "GET", path, None, None).await;
        assert_eq!(st, 200, "{path}: {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_mutations_are_open() {
    let s = setup(None).await;
    let (st, b) = call(&s.api, "POST", "/containers/h", Some(r#"{"threshold": 20}"#), Some("anything")).await;
    assert_eq!(st, 200, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_dashboard_and_swagger_ui_are_served() {
    let s = setup(None).await;
    let metrics = [
        "hms_container_packet_loss_percent{",
        "hms_container_state{",
        "hms_container_restarts_total{",
        "hms_host_online{host=\"h\"} 1",
        "hms_host_heartbeat_age_seconds{",
        "hms_controller_aggregation_windows_total",
        "hms_controller_pulls_total",
        "hms_controller_messages_total",
        "hms_controller_bytes_total",
        "hms_container_recovery_seconds_bucket",
        "hms_anomalies_open{level=\"container\"} 0",
        "hms_anomalies_open{level=\"load\"} 0",
    ];
    let api = s.api.clone();
    eventually(Duration::from_secs(10), "every metric exposed (loss after the first probe window)", || {
        let api = api.clone();
        async move {
            let (st, text) = call_text(&api, "GET", "/metrics", None, None).await;
            st == 200 && metrics.iter().all(|m| text.contains(m))
        }
    })
    .await;
    let (st, page) = call_text(&s.api, "GET", "/", None, None).await;
    assert!(st == 200 && page.contains("new EventSource(\"/events\")"), "{st}");
    let (st, _) = call_text(&s.api, "GET", "/docs", None, None).await;
    assert_eq!(st, 303);
    let (st, page) = call_text(&s.api, "GET", "/docs/", None, None).await;
    assert!(st == 200 && page.contains("swagger"), "{st}: {page}");
    let (st, init) = call_text(&s.api, "GET", "/docs/swagger-initializer.js", None, None).await;
    assert!(st == 200 && init.contains("/openapi.json"), "{st}: {init}");
    let (st, _) = call_text(&s.api, "GET", "/docs/swagger-ui-bundle.js", None, None).await;
    assert_eq!(st, 200);
}

/// The (method, path) pairs of the OpenAPI document.
fn documented() -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(hms::http::openapi::document()).unwrap();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            out.push((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_in_the_openapi_document_and_every_documented_route_exists() {
    let s = setup(None).await;
    s.api.close();
    let contract = [
        ("GET", "/containers"),
        ("POST", "/containers"),
        ("GET", "/containers/{address}"),
        ("PUT", "/containers/{address}"),
        ("POST", "/containers/{address}"),
        ("DELETE", "/containers/{address}"),
        ("GET", "/containers/{address}/{id}"),
        ("PUT", "/containers/{address}/{id}"),
        ("DELETE", "/containers/{address}/{id}"),
        ("GET", "/hosts"),
        ("GET", "/config"),
        ("PUT", "/config"),
        ("GET", "/antagonist"),
        ("PUT", "/antagonist"),
        ("POST", "/antagonist"),
        ("DELETE", "/antagonist"),
        ("GET", "/antagonist/{address}"),
        ("PUT", "/antagonist/{address}"),
        ("POST", "/antagonist/{address}"),
        ("DELETE", "/antagonist/{address}"),
        ("GET", "/attacks"),
        ("GET", "/events"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/docs/{file}"),
        ("GET", "/"),
    ];
    let documented = documented();
    for (m, p) in contract {
        assert!(documented.iter().any(|(dm, dp)| dm == m && dp == p), "{m} {p} is not in /openapi.json");
    }
    for (m, p) in &documented {
        let concrete = p.replace("{address}", "h").replace("{id}", "web").replace("{file}", "index.html");
        let (st, body) = call_text(&s.api, m, &concrete, Some("{}"), None).await;
        assert!(st != 405 && !body.contains("no such path"), "documented {m} {p} is not routed: {st} {body}");
    }
}

#[test]
fn the_rest_reference_documents_exactly_the_openapi_routes() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rest.md")).unwrap();
    let headings: Vec<(String, String)> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .filter_map(|h| {
            let (m, p) = h.trim().trim_matches('`').split_once(' ')?;
            Some((m.to_owned(), p.trim().to_owned()))
        })
        .collect();
    let documented = documented();
    for route in &documented {
        assert!(headings.contains(route), "docs/rest.md lacks a `### {} {}` section", route.0, route.1);
    }
    for h in &headings {
        assert!(documented.contains(h), "docs/rest.md documents {} {}, which /openapi.json does not", h.0, h.1);
    }
    let sections = doc.split("\n### ").skip(1);
    for s in sections {
        let title = s.lines().next().unwrap_or_default();
        assert!(s.contains("```"), "section {title} has no example");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_changes_and_end_on_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup(None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hms::http::serve(listener, s.api.clone(), async move {
        let _ = stopped.await;
    }));
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await.expect("headers").unwrap();
    seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    s.fleet.runtime.add("late", &[]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("\"late\"") {
        let n = tokio::time::timeout_at(deadline, conn.read(&mut buf)).await.expect("event in time").unwrap();
        assert!(n > 0, "stream closed early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream") && seen.contains("event:containers"), "{seen}");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), server).await.expect("graceful shutdown does not hang").unwrap();
}

mod bodies {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("threshold".to_owned()),
                        Just("aggregation".to_owned()),
                        Just("endpoint".to_owned()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..3
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn random_bodies_never_produce_a_5xx() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let s = rt.block_on(setup(None));
        let targets =
            [("POST", "/containers"), ("POST", "/containers/h"), ("PUT", "/containers/h"), ("PUT", "/config")];
        let config = ProptestConfig { cases: 96, ..ProptestConfig::default() };
        proptest!(config, |(body in json(), raw in prop::collection::vec(any::<u8>(), 0..64), which in 0usize..4, use_raw in any::<bool>())| {
            let (method, path) = targets[which];
            let text = if use_raw { String::from_utf8_lossy(&raw).into_owned() } else { body.to_string() };
            let (st, b) = rt.block_on(call_text(&s.api, method, path, Some(&text), None));
            prop_assert!(st < 500, "{} {} {:?} -> {} {}", method, path, text, st, b);
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_config_with_a_tiny_aggregation_is_a_400_naming_the_field() {
    let s = setup(None).await;
    for body in [r#"{"aggregation": 3.9e-91}"#, r#"{"aggregation": 0.0009}"#, r#"{"aggregation": 3600.5}"#] {
        let (st, b) = call(&s.api, "PUT", "/config", Some(body), None).await;
        assert_error(st, &b, 400, "bad_request");
        assert!(b["message"].as_str().unwrap().starts_with("aggregation"), "{body}: {b}");
    }
    let (st, b) = call(&s.api, "PUT", "/config", Some(r#"{"aggregation": 0.001}"#), None).await;
    assert_eq!((st, b["aggregation"].as_f64()), (200, Some(0.001)), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_messages_name_the_field_in_plain_words() {
    let s = setup(None).await;
    let cases = [
        ("POST", "/containers", r#"{"threshold": "x"}"#, "threshold"),
        ("POST", "/containers/h", r#"{"threshold": 10.5}"#, "threshold"),
        ("POST", "/containers/h", r#"{"threshold": null}"#, "threshold"),
        ("PUT", "/config", r#"{"aggregation": "NaN"}"#, "aggregation"),
        ("PUT", "/config", r#"{"aggregation": true}"#, "aggregation"),
        ("PUT", "/containers/h", r#"{"endpoint": 5}"#, "endpoint"),
        ("POST", "/antagonist", r#"{"heavy": "lots"}"#, "heavy"),
        ("PUT", "/antagonist/h", r#"{"seed": -1}"#, "seed"),
    ];
    for (method, path, body, field) in cases {
        let (st, b) = call(&s.api, method, path, Some(body), None).await;
        assert_error(st, &b, 400, "bad_request");
        let m = b["message"].as_str().unwrap();
        assert!(m.starts_with(field), "{method} {path} {body}: {m}");
        for rust in ["i64", "u64", "u8", "f64", "invalid type", "invalid value", "`"] {
            assert!(!m.contains(rust), "{method} {path} {body}: {m} leaks {rust:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_written_as_an_integral_float_is_accepted() {
    let s = setup(None).await;
    let (st, b) = call(&s.api, "POST", "/containers/h", Some(r#"{"threshold": 40.0}"#), None).await;
    assert_eq!((st, b["threshold"].as_u64()), (200, Some(40)), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_the_content_type_the_openapi_document_names() {
    let s = setup(None).await;
    let res = warp::test::request().path("/metrics").reply(&routes(s.api.clone())).await;
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    let doc: Value = serde_json::from_str(hms::http::openapi::document()).unwrap();
    let documented = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"].as_object().unwrap();
    assert!(documented.contains_key(&ct), "/metrics answers {ct}, the document names {documented:?}");
    assert!(String::from_utf8_lossy(res.body()).trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_segments_are_percent_decoded_and_optional_bodies_may_be_null() {
    let s = setup(None).await;
    let (st, b) = call(&s.api, "GET", "/containers/%68/w%65b", None, None).await;
    assert_eq!((st, b["name"].as_str()), (200, Some("web")), "{b}");
    let (st, b) = call(&s.api, "PUT", "/containers/my%20host", Some("null"), None).await;
    assert_eq!((st, b["name"].as_str()), (200, Some("my host")), "{b}");
    let (st, b) = call(&s.api, "PUT", "/containers/far", Some(r#"{"endpoint": ""}"#), None).await;
    assert_error(st, &b, 400, "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_config_sets_the_analysis_settings_and_a_bad_field_changes_nothing() {
    let s = setup(None).await;
    let (st, body) = call(&s.api, "GET", "/config", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(body["analysis"], serde_json::json!({"enabled": true, "method": "hms", "dd": 15.0, "window": 30}));
    let (st, body) =
        call(&s.api, "PUT", "/config", Some(r#"{"analysis": {"method": "seed", "window": 40}}"#), None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["analysis"], serde_json::json!({"enabled": true, "method": "seed", "dd": 15.0, "window": 40}));
    let (_, read) = call(&s.api, "GET", "/config", None, None).await;
    assert_eq!(read, body, "the next read sees the write");
    for (bad, field) in [
        (r#"{"analysis": {"window": 1}}"#, "analysis.window"),
        (r#"{"aggregation": 0.2, "analysis": {"dd": -3}}"#, "analysis.dd"),
    ] {
        let (st, err) = call(&s.api, "PUT", "/config", Some(bad), None).await;
        assert_error(st, &err, 400, "bad_request");
        assert!(err["message"].as_str().unwrap().contains(field), "{bad}: {err}");
    }
    let (st, err) = call(&s.api, "PUT", "/config", Some(r#"{"analysis": {"methd": "seed"}}"#), None).await;
    assert_error(st, &err, 400, "bad_request");
    let (_, after) = call(&s.api, "GET", "/config", None, None).await;
    assert_eq!(after, read, "a refused change changes nothing, the aggregation included");
    drop(s.fleet);
}
