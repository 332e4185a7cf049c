//! End to end: a real `hms standalone` on the real Docker engine, driven through the real
//! `hmsctl` binary (tables, `--json`, errors with the server's message, token, `watch`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{DockerFixture, HmsProcess, docker, eventually, free_port};

const TOKEN: &str = "e2e-token";

fn hmsctl(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmsctl"));
    cmd.args(args).env("HMS_URL", url).env_remove("HMS_API_TOKEN").stdin(Stdio::null());
    if let Some(t) = token {
        cmd.env("HMS_API_TOKEN", t);
    }
    cmd.output().expect("hmsctl runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "hmsctl failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "hmsctl should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("--json prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmsctl_drives_a_standalone_node_on_real_docker() {
    let mut fx = DockerFixture::new();
    let name = fx.run(&[]);
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}");
    let select = format!("hms.test={}", fx.label);
    let args = ["standalone", "--http", &addr, "--select", &select, "--name", "node1", "--api-token", TOKEN];
    let _hms = HmsProcess::start(&args, dir.path(), &[]);

    eventually(Duration::from_secs(20), "the container is listed by hmsctl", || async {
        let out = hmsctl(&url, None, &["containers"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&name)
    })
    .await;
    let table = ok(&hmsctl(&url, None, &["containers", "node1"]));
    assert!(table.contains("STATE") && table.contains("running") && table.contains(&name), "{table}");
    let one = json(&hmsctl(&url, None, &["--json", "container", "node1", &name]));
    assert_eq!(one["name"], name.as_str());
    let hosts = ok(&hmsctl(&url, None, &["hosts"]));
    assert!(hosts.contains("node1") && hosts.contains("online"), "{hosts}");

    let err = failed(&hmsctl(&url, None, &["ignore", "node1", &name]));
    assert!(err.contains("401") && err.contains("token"), "{err}");
    let ignored = ok(&hmsctl(&url, Some(TOKEN), &["ignore", "node1", &name]));
    assert!(ignored.contains("ignored"), "{ignored}");
    let err = failed(&hmsctl(&url, Some(TOKEN), &["ignore", "node1", &name]));
    assert!(err.contains("409") && err.contains("conflict"), "{err}");
    ok(&hmsctl(&url, Some(TOKEN), &["monitor", "node1", &name]));
    let err = failed(&hmsctl(&url, Some(TOKEN), &["container", "node1", "no-such-container"]));
    assert!(err.contains("404"), "{err}");

    ok(&hmsctl(&url, Some(TOKEN), &["threshold", "node1", "55"]));
    let err = failed(&hmsctl(&url, Some(TOKEN), &["threshold", "101"]));
    assert!(err.contains("threshold must be an integer from 0 to 100"), "{err}");
    eventually(Duration::from_secs(10), "threshold 55 published", || async {
        let hosts = json(&hmsctl(&url, None, &["--json", "hosts"]));
        hosts[0]["threshold"] == 55
    })
    .await;
    ok(&hmsctl(&url, Some(TOKEN), &["config", "--aggregation", "0.3"]));
    eventually(Duration::from_secs(5), "aggregation 0.3", || async {
        json(&hmsctl(&url, None, &["--json", "config"]))["aggregation"] == 0.3
    })
    .await;

    let mut watch = Command::new(env!("CARGO_BIN_EXE_hmsctl"))
        .args(["watch"])
        .env("HMS_URL", &url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hmsctl watch runs");
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // `hmsctl watch` prints nothing before the first change, so there is no line to wait for:
    // give its SSE subscription time to open before the change it must show
    #[allow(clippy::disallowed_methods, reason = "synchronous test thread; no output to wait for")]
    std::thread::sleep(Duration::from_millis(300));
    docker(&["kill", &name]);
    let deadline = std::time::Instant::now() + Duration::from_secs(15) * common::patience();
    let mut seen = Vec::new();
    let healed = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(&name) && line.contains("running") && line.contains("restarts=1");
                seen.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(healed, "hmsctl watch did not show the restart: {seen:#?}");
    assert!(seen.iter().all(|l| l.contains(" container ") || l.contains(" host ")), "{seen:#?}");
}
