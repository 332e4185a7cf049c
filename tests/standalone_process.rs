//! `hms standalone` as a real process: persistence across restarts, clean shutdown, start-up errors.

mod common;

use std::time::Duration;

use common::{DockerFixture, HmsProcess, eventually, free_port, http};

fn standalone_args<'a>(addr: &'a str, dir: &'a str, select: &'a str) -> Vec<&'a str> {
    vec!["standalone", "--http", addr, "--data-dir", dir, "--select", select, "--name", "node1"]
}

async fn container_json(addr: &str, name: &str) -> Option<serde_json::Value> {
    let (status, body) = http(addr, "GET", &format!("/containers/node1/{name}"), None, None).ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok()).flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_and_ignore_list_survive_a_restart_of_the_process() {
    let mut fx = DockerFixture::new();
    let name = fx.run(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (data, select) = (data.to_str().unwrap().to_owned(), format!("hms.test={}", fx.label));
    let addr = format!("127.0.0.1:{}", free_port());
    let mut hms = HmsProcess::start(&standalone_args(&addr, &data, &select), dir.path(), &[]);
    eventually(Duration::from_secs(15), "container visible through REST", || async {
        container_json(&addr, &name).await.is_some()
    })
    .await;

    let (status, body) = http(&addr, "POST", "/containers/node1", Some(r#"{"threshold": 55}"#), None).unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&addr, "DELETE", &format!("/containers/node1/{name}"), None, None).unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&addr, "DELETE", &format!("/containers/node1/{name}"), None, None).unwrap();
    assert_eq!(status, 409, "ignoring twice: {body}");
    let (status, body) = http(&addr, "POST", "/containers/node1", Some(r#"{"threshold": 101}"#), None).unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#""error":"bad_request""#), "{body}");

    hms.signal("TERM");
    let status = hms.wait(Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(status.success(), "exit {status:?}: {}", hms.log_text());

    let _hms = HmsProcess::start(&standalone_args(&addr, &data, &select), dir.path(), &[]);
    eventually(Duration::from_secs(15), "settings restored", || async {
        container_json(&addr, &name).await.is_some_and(|c| c["state"] == "ignored" && c["threshold"] == 55)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_non_loopback_address_without_a_token() {
    common::require_docker();
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("0.0.0.0:{}", free_port());
    let mut hms = HmsProcess::start(&["standalone", "--http", &addr], dir.path(), &[]);
    let status = hms.wait(Duration::from_secs(10)).expect("exits at once");
    assert!(!status.success());
    assert!(hms.log_text().contains("without HMS_API_TOKEN"), "{}", hms.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_docker_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let env = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let mut hms = HmsProcess::start(&["standalone", "--http", &addr], dir.path(), &env);
    let status = hms.wait(Duration::from_secs(20)).expect("exits");
    assert!(!status.success());
    assert!(hms.log_text().contains("docker engine"), "{}", hms.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flag_values_stop_start_up_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mut hms = HmsProcess::start(&["standalone", "--threshold", "150"], dir.path(), &[]);
    let status = hms.wait(Duration::from_secs(10)).expect("exits");
    assert!(!status.success());
    assert!(hms.log_text().contains("--threshold"), "{}", hms.log_text());
}
