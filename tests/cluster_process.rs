//! The distributed shape as real processes on loopback: one `hms controller`, several
//! `hms manager`s sharing the local engine through disjoint label selectors.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::{DockerFixture, HmsProcess, docker, eventually, free_port, http, started_at};
use tokio::time::Instant;

const COOKIE: &str = "test-cookie";

/// A controller process and the addresses it serves.
struct Cluster {
    http: String,
    listen: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self { http: format!("127.0.0.1:{}", free_port()), listen: format!("127.0.0.1:{}", free_port()), dir }
    }

    fn controller(&self) -> HmsProcess {
        let data = self.dir.path().join("controller");
        let args = ["controller", "--http", &self.http, "--listen", &self.listen, "--data-dir", path(&data)];
        HmsProcess::start(&args, self.dir.path(), &[("HMS_COOKIE", COOKIE)])
    }

    /// A manager named `name` watching the containers labelled `hms.host=<label>`.
    fn manager(&self, name: &str, label: &str, cookie: &str) -> HmsProcess {
        let data = self.dir.path().join(name);
        let select = format!("hms.host={label}");
        let args =
            ["manager", "--name", name, "--controller", &self.listen, "--select", &select, "--data-dir", path(&data)];
        HmsProcess::start(&args, self.dir.path(), &[("HMS_COOKIE", cookie)])
    }

    fn get(&self, path: &str) -> Option<serde_json::Value> {
        let (status, body) = http(&self.http, "GET", path, None, None).ok()?;
        (status == 200).then(|| serde_json::from_str(&body).ok()).flatten()
    }

    fn host_status(&self, host: &str) -> Option<String> {
        let hosts = self.get("/hosts")?;
        let h = hosts.as_array()?.iter().find(|h| h["name"] == host)?;
        h["status"].as_str().map(str::to_owned)
    }

    fn host_count(&self) -> usize {
        self.get("/hosts").and_then(|h| h.as_array().map(Vec::len)).unwrap_or(0)
    }

    fn sees_container(&self, host: &str, name: &str) -> bool {
        self.get(&format!("/containers/{host}/{name}")).is_some_and(|c| c["state"] == "running")
    }

    /// Waits until `host` has `status`; returns how long it took.
    async fn until_status(&self, host: &str, status: &str, within: Duration) -> Duration {
        let t0 = Instant::now();
        eventually(within, &format!("{host} {status}"), || async { self.host_status(host).as_deref() == Some(status) })
            .await;
        t0.elapsed()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn label(fx: &DockerFixture, host: &str) -> String {
    format!("{}-{host}", fx.label)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_managers_are_seen_and_go_offline_and_back_on_kill_stop_and_restart() {
    let mut fx = DockerFixture::new();
    let cluster = Cluster::new();
    let _controller = cluster.controller();
    let mut managers = Vec::new();
    let mut containers = Vec::new();
    for host in ["vm1", "vm2", "vm3"] {
        containers.push(fx.run(&[("hms.host", &label(&fx, host))]));
        managers.push(cluster.manager(host, &label(&fx, host), COOKIE));
    }
    eventually(Duration::from_secs(20), "every container of every manager through REST", || async {
        ["vm1", "vm2", "vm3"].iter().zip(&containers).all(|(h, c)| cluster.sees_container(h, c))
    })
    .await;
    let all = cluster.get("/containers").unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    // the series stays on its host: the controller asks the manager process for it
    let series_path = format!("/containers/vm3/{}/series", containers[2]);
    eventually(Duration::from_secs(5), "a remote host's series through the controller", || async {
        cluster
            .get(&series_path)
            .is_some_and(|s| s["host"] == "vm3" && s["points"].as_array().is_some_and(|p| p.len() >= 2))
    })
    .await;
    eventually(Duration::from_secs(5), "host signals in heartbeats", || async {
        cluster.get("/hosts").is_some_and(|h| {
            h.as_array().is_some_and(|a| a.iter().all(|h| h["cpu_busy_percent"].is_number() && h["load1"].is_number()))
        })
    })
    .await;

    managers[0].signal("KILL");
    let took = cluster.until_status("vm1", "offline", Duration::from_secs(5)).await;
    eprintln!("SIGKILL → offline: {took:?}");
    assert!(took <= Duration::from_secs(3) * common::patience(), "SIGKILL → offline took {took:?}");

    managers[1].signal("STOP");
    let took = cluster.until_status("vm2", "offline", Duration::from_secs(6)).await;
    eprintln!("SIGSTOP → offline: {took:?}");
    assert!(took <= Duration::from_secs(4) * common::patience(), "SIGSTOP → offline took {took:?}");
    let t0 = Instant::now();
    let (status, body) = http(&cluster.http, "POST", "/containers/vm2", Some(r#"{"threshold": 40}"#), None).unwrap();
    assert_eq!(status, 503, "a command to an offline host fails fast: {body}");
    assert!(t0.elapsed() < Duration::from_secs(1), "503 took {:?}", t0.elapsed());
    managers[1].signal("CONT");
    cluster.until_status("vm2", "online", Duration::from_secs(5)).await;

    managers[0] = cluster.manager("vm1", &label(&fx, "vm1"), COOKIE);
    cluster.until_status("vm1", "online", Duration::from_secs(10)).await;
    assert_eq!(cluster.host_count(), 3, "a returning host is not duplicated: {:?}", cluster.get("/hosts"));
    assert!(cluster.sees_container("vm1", &containers[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_heal_without_the_controller_and_a_restarted_controller_sees_the_whole_fleet() {
    let mut fx = DockerFixture::new();
    let cluster = Cluster::new();
    let mut controller = cluster.controller();
    let c1 = fx.run(&[("hms.host", &label(&fx, "vm1"))]);
    let c2 = fx.run(&[("hms.host", &label(&fx, "vm2"))]);
    let _m1 = cluster.manager("vm1", &label(&fx, "vm1"), COOKIE);
    let _m2 = cluster.manager("vm2", &label(&fx, "vm2"), COOKIE);
    eventually(Duration::from_secs(20), "both hosts' containers", || async {
        cluster.sees_container("vm1", &c1) && cluster.sees_container("vm2", &c2)
    })
    .await;
    let (status, body) = http(&cluster.http, "POST", "/containers/vm1", Some(r#"{"threshold": 42}"#), None).unwrap();
    assert_eq!(status, 200, "{body}");

    controller.signal("KILL");
    controller.wait(Duration::from_secs(5)).expect("controller killed");
    let before = started_at(&c1);
    let t0 = Instant::now();
    docker(&["kill", &c1]);
    eventually(Duration::from_secs(5), "healed without a controller", || async {
        // one inspection per poll: start time and state together
        let now = docker(&["inspect", "-f", "{{.State.StartedAt}} {{.State.Status}}", &c1]);
        now.ends_with(" running") && !now.starts_with(&before)
    })
    .await;
    let took = t0.elapsed();
    eprintln!("kill → running without a controller: {took:?}");
    assert!(took <= Duration::from_secs(1) * common::patience(), "kill → running without controller took {took:?}");

    let _controller = cluster.controller();
    let t0 = Instant::now();
    eventually(Duration::from_secs(10), "whole fleet again after a controller restart", || async {
        cluster.sees_container("vm1", &c1)
            && cluster.sees_container("vm2", &c2)
            && cluster.host_status("vm1").as_deref() == Some("online")
            && cluster.host_status("vm2").as_deref() == Some("online")
    })
    .await;
    eprintln!("fleet view back {:?} after the controller restarted", t0.elapsed());
    let c = cluster.get(&format!("/containers/vm1/{c1}")).unwrap();
    assert_eq!(c["threshold"], 42, "threshold kept by its owner: {c}");
    assert_eq!(c["restarts"], 1, "the heal done alone is reported: {c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cookie_is_refused_and_garbage_on_the_cluster_port_crashes_nothing() {
    let mut fx = DockerFixture::new();
    let cluster = Cluster::new();
    let mut controller = cluster.controller();
    let good = fx.run(&[("hms.host", &label(&fx, "good"))]);
    fx.run(&[("hms.host", &label(&fx, "bad"))]);
    let _good = cluster.manager("good", &label(&fx, "good"), COOKIE);
    let mut bad = cluster.manager("bad", &label(&fx, "bad"), "not-the-cookie");
    eventually(Duration::from_secs(20), "the right cookie joins", || async { cluster.sees_container("good", &good) })
        .await;

    for _ in 0..5 {
        let mut s = std::net::TcpStream::connect(&cluster.listen).unwrap();
        let mut junk: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        junk[..8].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 40]);
        let _ = s.write_all(&junk);
        let _ = s.write_all(&[0xFF; 8]);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(controller.child.try_wait().unwrap().is_none(), "controller survived garbage: {}", controller.log_text());
    assert_eq!(cluster.host_status("bad"), None, "a wrong cookie never joins: {:?}", cluster.get("/hosts"));
    assert_eq!(cluster.host_status("good").as_deref(), Some("online"));
    assert!(bad.child.try_wait().unwrap().is_none(), "the refused manager keeps healing: {}", bad.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_without_a_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut hms = HmsProcess::start(&["manager", "--name", "vm1", "--controller", &listen], dir.path(), &[]);
    let status = hms.wait(Duration::from_secs(10)).expect("exits at once");
    assert!(!status.success());
    assert!(hms.log_text().contains("cookie"), "{}", hms.log_text());
}
