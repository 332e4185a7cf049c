//! The service image (busybox `httpd` `FROM scratch`) against the real Docker engine: its static
//! page, its CPU-bound CGI endpoint and a prompt `docker stop`. The fixture removes every
//! container and image tag it made, also when a test fails; no Docker fails the tests.

mod common;

use std::time::{Duration, Instant};

use common::{DockerFixture, docker, eventually, http};
use hms::lab::serviceimage::{DEFAULT_WORK, SERVICE_PORT, STATIC_PATH, WORK_PATH};

/// Starts a service container with extra `docker run` args; returns its name and `ip:port` once
/// the static page answers.
async fn start(fx: &mut DockerFixture, run_args: &[&str]) -> (String, String) {
    let name = fx.run_with(&[], run_args, &[]);
    let addr = format!("{}:{SERVICE_PORT}", fx.ip(&name));
    eventually(Duration::from_secs(5), "httpd answers", || async { get(&addr, STATIC_PATH).0 == 200 }).await;
    (name, addr)
}

/// `GET path` over a fresh connection: `(status, body)`, status 0 when the request failed.
fn get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path, None, None).unwrap_or((0, String::new()))
}

/// Wall time of one `GET path` that must answer 200.
fn timed(addr: &str, path: &str) -> Duration {
    let t0 = Instant::now();
    let (status, body) = get(addr, path);
    let took = t0.elapsed();
    assert_eq!(status, 200, "GET {path}: {body}");
    took
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn static_page_and_zero_work_answer_200() {
    let mut fx = DockerFixture::service();
    let (_, addr) = start(&mut fx, &[]).await;
    assert_eq!(get(&addr, STATIC_PATH), (200, "ok\n".to_owned()));
    assert_eq!(get(&addr, &format!("{WORK_PATH}?n=0")), (200, "ok n=0\n".to_owned()));
}

#[tokio::test]
async fn work_without_n_runs_the_work_variable_and_malformed_n_is_400() {
    let mut fx = DockerFixture::service();
    let (_, default) = start(&mut fx, &[]).await;
    let (_, seven) = start(&mut fx, &["-e", "WORK=7"]).await;
    assert_eq!(get(&default, WORK_PATH), (200, format!("ok n={DEFAULT_WORK}\n")));
    assert_eq!(get(&seven, WORK_PATH), (200, "ok n=7\n".to_owned()));
    assert_eq!(get(&seven, &format!("{WORK_PATH}?x=1&n=3")), (200, "ok n=3\n".to_owned()));
    for bad in ["n=", "n=abc", "n=-1", "n=123456789"] {
        assert_eq!(get(&seven, &format!("{WORK_PATH}?{bad}")).0, 400, "?{bad}");
    }
}

#[tokio::test]
async fn large_work_takes_clearly_longer_than_no_work() {
    let mut fx = DockerFixture::service();
    let (_, addr) = start(&mut fx, &[]).await;
    let (none, large) = (format!("{WORK_PATH}?n=0"), format!("{WORK_PATH}?n=100000"));
    let (mut t_none, mut t_large) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        t_none.push(timed(&addr, &none));
        t_large.push(timed(&addr, &large));
    }
    let (t_none, t_large) = (median(t_none), median(t_large));
    assert!(t_large >= t_none * 5, "median n=100000 {t_large:?} not 5 × median n=0 {t_none:?}");
}

#[tokio::test]
async fn docker_stop_returns_within_three_seconds_with_exit_code_0() {
    let mut fx = DockerFixture::service();
    let (name, _) = start(&mut fx, &[]).await;
    let t0 = Instant::now();
    docker(&["stop", &name]);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "docker stop took {took:?}");
    assert_eq!(docker(&["inspect", "-f", "{{.State.ExitCode}}", &name]), "0", "the trap exits 0, SIGKILL would be 137");
}

#[tokio::test]
async fn a_dependent_calls_its_dependencies_first_and_answers_502_without_them() {
    let mut fx = DockerFixture::service();
    let (dep, dep_addr) = start(&mut fx, &["-e", "WORK=7"]).await;
    let depends = format!("DEPENDS=http://{dep_addr}{WORK_PATH}?n=1 http://{dep_addr}{STATIC_PATH}");
    let (_, user) = start(&mut fx, &["-e", "WORK=3", "-e", &depends]).await;
    assert_eq!(get(&user, WORK_PATH), (200, "ok n=3\n".to_owned()));
    assert_eq!(get(&user, STATIC_PATH).0, 200, "a static page calls nobody");
    // a hung dependency (paused: a stopped one's address went to another test's container, which
    // answered in its place): the dependent gives up after 5 s and says which one failed
    docker(&["pause", &dep]);
    let t0 = Instant::now();
    let (status, body) = get(&user, WORK_PATH);
    let waited = t0.elapsed();
    docker(&["unpause", &dep]);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains(&format!("dependency http://{dep_addr}{WORK_PATH}?n=1 failed")), "{body}");
    assert!(waited >= Duration::from_secs(4) && waited < Duration::from_secs(10), "{waited:?}");
}
