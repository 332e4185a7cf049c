//! The Monitor against the real engine, with the service image (busybox `httpd`): response time
//! as the client feels it, a busy loop inside the container, a step of the request rate, no
//! probe without a label, and the kept series over REST. Each test holds `SERIAL`, so one
//! test's load never skews another's timings. Every container and image tag is removed, also
//! when a test fails; no Docker fails the tests.

mod common;

use std::time::Duration;

use common::{DockerFixture, docker, docker_node, eventually};
use hms::http::{Api, routes};
use hms::lab::serviceimage::{SERVICE_PORT, STATIC_PATH, WORK_PATH};
use hms::model::ContainerRecord;
use hms::node::Node;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One `GET path` on its own connection; its time when it answered 200.
async fn get(addr: String, path: String) -> Option<Duration> {
    let t0 = Instant::now();
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        (out.starts_with(b"HTTP/1.") && out.get(9..12) == Some(b"200")).then_some(())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange).await.ok().flatten()?;
    Some(t0.elapsed())
}

/// Open-loop load: `rate` requests per second for `secs` seconds, each sent at its time whatever
/// the others do; the times of those that answered.
async fn load(addr: &str, path: &str, rate: u32, secs: u32) -> Vec<Duration> {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut sent = tokio::task::JoinSet::new();
    for _ in 0..rate * secs {
        tick.tick().await;
        sent.spawn(get(addr.to_owned(), path.to_owned()));
    }
    sent.join_all().await.into_iter().flatten().collect()
}

/// A steady client on its own thread: one blocking GET every `1/rate` s for `secs` s (sequential:
/// each answers well within the gap), so its times carry no scheduling delay of a busy runtime.
async fn steady(addr: &str, path: &str, rate: u32, secs: u32) -> Vec<Duration> {
    let (addr, path) = (addr.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let gap = Duration::from_secs(1) / rate;
        let start = std::time::Instant::now();
        let mut times = Vec::new();
        for i in 0..rate * secs {
            #[allow(
                clippy::disallowed_methods,
                reason = "a blocking thread of its own (spawn_blocking), not a runtime worker"
            )]
            std::thread::sleep((start + gap * i).saturating_duration_since(std::time::Instant::now()));
            let t0 = std::time::Instant::now();
            let Ok(mut s) = std::net::TcpStream::connect(&addr) else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut out = Vec::new();
            if s.write_all(req.as_bytes()).is_ok() && s.read_to_end(&mut out).is_ok() && out.get(9..12) == Some(b"200")
            {
                times.push(t0.elapsed());
            }
        }
        times
    })
    .await
    .expect("client thread")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: &[Duration]) -> Vec<f64> {
    d.iter().map(|d| d.as_secs_f64() * 1000.0).collect()
}

/// The kept points of a container since an instant, through the manager.
async fn series(node: &Node, name: &str, since: time::OffsetDateTime) -> Vec<hms::analysis::series::SeriesPoint> {
    let since = Some(hms::model::rfc3339(since));
    let cmd = hms::actors::protocol::Command::Series { container: name.to_owned(), since, last: None };
    let reply = node.manager.call(|r| hms::actors::host::manager::HostMsg::Command(cmd, r), None).await;
    match reply {
        Ok(ractor::rpc::CallResult::Success(Ok(ok))) => ok.series.expect("a series").points,
        other => panic!("series of {name}: {other:?}"),
    }
}

async fn record(node: &Node, name: &str) -> ContainerRecord {
    common::record(&node.manager, name).await.expect("container tracked")
}

/// A service container watched by a fresh node; `probe` is its `hms.probe` label.
async fn service(fx: &mut DockerFixture, probe: Option<&str>, run_args: &[&str]) -> (Node, String, String) {
    let labels: Vec<(&str, &str)> = probe.map(|p| ("hms.probe", p)).into_iter().collect();
    let name = fx.run_with(&labels, run_args, &[]);
    let addr = format!("{}:{SERVICE_PORT}", fx.ip(&name));
    eventually(Duration::from_secs(5), "httpd answers", || async {
        get(addr.clone(), STATIC_PATH.to_owned()).await.is_some()
    })
    .await;
    let node = docker_node(fx, None).await;
    eventually(Duration::from_secs(10), "tracked and measured", || async {
        common::record(&node.manager, &name).await.is_some_and(|r| probe.is_none() || r.response_ms.is_some())
    })
    .await;
    (node, name, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_time_matches_the_client_s_own_median_under_a_steady_rate() {
    let _serial = SERIAL.lock().await;
    let mut fx = DockerFixture::service();
    let probe = format!("http://:{SERVICE_PORT}{WORK_PATH}");
    let (node, name, addr) = service(&mut fx, Some(&probe), &["-e", "WORK=8000", "--cpus", "1"]).await;
    let since = time::OffsetDateTime::now_utc();
    let client = steady(&addr, WORK_PATH, 5, 20).await;
    // the record shows one period's median of 3 requests; over the same interval, the median of
    // the periods' medians is what compares with the client's median of its 100 requests
    let points = series(&node, &name, since).await;
    let probe_ms = median(points.iter().filter_map(|p| p.response_ms).collect());
    let client_ms = median(ms(&client));
    let rec = record(&node, &name).await;
    println!(
        "client median {client_ms:.1} ms over {} requests; probe {probe_ms:.1} ms over {} periods; record {:?} ms",
        client.len(),
        points.len(),
        rec.response_ms
    );
    assert!(client.len() >= 95, "the service kept up: {} of 100 answered", client.len());
    assert!(points.len() >= 18, "one point a period: {}", points.len());
    assert!((probe_ms - client_ms).abs() <= 0.2 * client_ms, "probe {probe_ms:.1} ms vs client {client_ms:.1} ms");
    assert_eq!(rec.probe.as_deref(), Some(probe.as_str()));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_loop_inside_raises_cpu_and_at_least_doubles_response_time_within_5_s() {
    let _serial = SERIAL.lock().await;
    let mut fx = DockerFixture::service();
    let probe = format!("http://:{SERVICE_PORT}{WORK_PATH}");
    let (node, name, _) = service(&mut fx, Some(&probe), &["-e", "WORK=5000", "--cpus", "0.4"]).await;
    let since = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // the baseline is the median of the idle periods, not one period's value
    let idle = series(&node, &name, since).await;
    let base_ms = median(idle.iter().filter_map(|p| p.response_ms).collect());
    let base_cpu = median(idle.iter().filter_map(|p| p.cpu_percent).collect());
    // bounded twice: by the container's 0.4 core and by `timeout`
    docker(&["exec", "-d", &name, "timeout", "30", "sh", "-c", "while :; do :; done"]);
    let (t0, hog_since) = (Instant::now(), time::OffsetDateTime::now_utc());
    let deadline = t0 + Duration::from_secs(5) * common::patience();
    loop {
        let r = record(&node, &name).await;
        if r.response_ms.is_some_and(|v| v >= 2.0 * base_ms) && r.cpu_percent.is_some_and(|c| c >= base_cpu + 25.0) {
            break;
        }
        if Instant::now() > deadline {
            let seen: Vec<_> =
                series(&node, &name, hog_since).await.into_iter().map(|p| (p.response_ms, p.cpu_percent)).collect();
            panic!(
                "not within 5 s: baseline {base_ms:.1} ms at {base_cpu:.1} %; since the busy loop (ms, cpu %): {seen:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = record(&node, &name).await;
    println!(
        "baseline {base_ms:.1} ms at {base_cpu:.1} % CPU; with the busy loop {:?} ms at {:?} % after {:?}",
        after.response_ms,
        after.cpu_percent,
        t0.elapsed()
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_from_10_to_50_requests_per_second_shows_in_workload_within_3_s() {
    let _serial = SERIAL.lock().await;
    let mut fx = DockerFixture::service();
    let probe = format!("http://:{SERVICE_PORT}{STATIC_PATH}");
    let (node, name, addr) = service(&mut fx, Some(&probe), &["--cpus", "1"]).await;
    let low = tokio::spawn({
        let addr = addr.clone();
        async move { load(&addr, STATIC_PATH, 10, 6).await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    let at_10 = record(&node, &name).await.workload.expect("workload measured");
    low.await.unwrap();
    let high = tokio::spawn({
        let addr = addr.clone();
        async move { load(&addr, STATIC_PATH, 50, 6).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at_50 = record(&node, &name).await.workload.expect("workload measured");
    let answered = high.await.unwrap().len();
    println!("workload at 10/s: {at_10}; 3 s after the step to 50/s: {at_50} ({answered} of 300 answered)");
    assert!((at_10 - 10.0).abs() <= 2.0, "at 10/s the record shows {at_10}");
    assert!((at_50 - 50.0).abs() <= 10.0, "3 s after the step to 50/s the record shows {at_50}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_label_no_response_time_and_the_series_endpoint_returns_the_kept_points() {
    let _serial = SERIAL.lock().await;
    let mut fx = DockerFixture::service();
    let (node, name, _) = service(&mut fx, None, &[]).await;
    let api = Api::connect(node.controller.clone(), Duration::from_secs(2), None).await.expect("api");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rec = record(&node, &name).await;
    assert_eq!((rec.probe, rec.response_ms), (None, None), "no label, no response time");
    assert!(rec.memory_bytes.is_some_and(|m| m > 0), "memory read from the cgroup: {:?}", rec.memory_bytes);
    let path = format!("/containers/local/{name}/series");
    let res = warp::test::request().method("GET").path(&path).reply(&routes(api.clone())).await;
    assert_eq!(res.status(), 200);
    let series: Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(series["workload_unit"], "packets", "a black box counts packets: {series}");
    let points = series["points"].as_array().unwrap();
    assert!(points.len() >= 3, "one point per period kept: {series}");
    for p in points {
        assert_eq!(p["response_ms"], Value::Null, "{p}");
        assert_eq!(p["packet_loss"], 0.0, "{p}");
        assert!(p["memory_bytes"].as_u64().is_some_and(|m| m > 0), "{p}");
    }
    assert!(points.iter().skip(1).all(|p| p["cpu_percent"].as_f64().is_some()), "{series}");
    assert!(
        // the probe sends 20 echoes a period; a fresh container also gets a few packets of its own
        // (neighbour discovery, multicast: 5 in one second seen in CI), so the bound is 10, not 5
        points.iter().skip(1).all(|p| p["workload"].as_f64().is_some_and(|w| w <= 10.0)),
        "the probe's own echoes are not workload: {series}"
    );
    node.stop().await;
}
