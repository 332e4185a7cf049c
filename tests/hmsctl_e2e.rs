//! End to end through the real `hmsctl` binary: a real `hms standalone` on the real Docker engine
//! (tables, `--json`, errors with the server's message, token, `watch`), and an in-process node
//! over the fake engine, responder and sensors (signal columns, `series`, `probe`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{DockerFixture, FakeFleet, HmsProcess, docker, eventually, free_port, test_manager_config};
use hms::resources::cgroup::{CpuSample, MemorySample};
use hms::resources::procfs::{CpuTimes, HostSample};
use hms::resources::sensors::Counters;
use serde_json::{Value, json};

const TOKEN: &str = "e2e-token";

fn hmsctl(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmsctl"));
    cmd.args(args).env("HMS_URL", url).env_remove("HMS_API_TOKEN").stdin(Stdio::null());
    if let Some(t) = token {
        cmd.env("HMS_API_TOKEN", t);
    }
    cmd.output().expect("hmsctl runs")
}

/// `hmsctl` off the runtime's workers, for a server that runs in this process.
async fn hmsctl_off(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let (url, token) = (url.to_owned(), token.map(str::to_owned));
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hmsctl(&url, token.as_deref(), &args)
    })
    .await
    .expect("hmsctl thread")
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
    ok(&hmsctl(&url, Some(TOKEN), &["config", "--method", "seed", "--window", "40"]));
    let config = json(&hmsctl(&url, None, &["--json", "config"]));
    assert_eq!(config["analysis"]["method"], "seed", "{config}");
    assert_eq!(
        (config["analysis"]["window"].as_u64(), config["aggregation"].as_f64()),
        (Some(40), Some(0.3)),
        "{config}"
    );

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

/// Counters of a container using `mib` MiB of 256, with steady CPU time and traffic.
fn counters(mib: u64) -> Counters {
    let memory = MemorySample { usage_bytes: mib << 20, limit_bytes: Some(256 << 20), failures: 0 };
    Counters {
        cpu: Some(CpuSample { usage_ns: 1_000_000, periods: 0, throttled: 0 }),
        memory: Some(memory),
        net: Some(100),
    }
}

/// A container's field through `hmsctl --json container`.
async fn field(url: &str, name: &str, key: &str) -> Value {
    let out = hmsctl_off(url, None, &["--json", "container", "node1", name]).await;
    serde_json::from_slice::<Value>(&out.stdout).map(|v| v[key].clone()).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hmsctl_shows_signals_reads_a_series_and_sets_a_probe() {
    let fleet = FakeFleet::start(test_manager_config("node1", None)).await;
    let web = fleet.runtime.add("web", &[("hms.probe", "http://:8080/")]);
    let black_box = fleet.runtime.add("box", &[]);
    fleet.responder.set(fleet.ip(&web).await, Some(Duration::from_millis(42)));
    fleet.sensors.set(&web, counters(180));
    fleet.sensors.set(&black_box, counters(12));
    let cpu = CpuTimes { busy: 100, total: 400 };
    let host = HostSample {
        cpu,
        memory_total_bytes: 8 << 30,
        memory_available_bytes: 3 << 30,
        load1: 0.5,
        ..HostSample::default()
    };
    fleet.sensors.set_host(Some(host));
    let (addr, _stop) = common::serve_fleet(&fleet, Some(TOKEN), 2).await;
    let url = format!("http://{addr}");

    // the signal columns, in human units; `-` where nothing is measured
    eventually(Duration::from_secs(10), "every signal of web and box in the table", || async {
        let table = String::from_utf8_lossy(&hmsctl_off(&url, None, &["containers"]).await.stdout).into_owned();
        table.contains("42.0 ms") && table.contains("req/s") && table.contains("pkt/s")
    })
    .await;
    let table = ok(&hmsctl_off(&url, None, &["containers"]).await);
    let row = |name: &str| {
        let found = table.lines().find(|l| l.split_whitespace().nth(1) == Some(name));
        found.unwrap_or_else(|| panic!("no {name} in {table}")).to_owned()
    };
    assert!(table.starts_with("HOST") && table.contains(" RESPONSE ") && table.contains(" MEMORY "), "{table}");
    for want in ["42.0 ms", "0 req/s", "0 %", "180 MiB"] {
        assert!(row("web").contains(want), "{want} in {table}");
    }
    assert!(row("box").contains("0 pkt/s") && row("box").contains("12 MiB") && !row("box").contains(" ms "), "{table}");
    eventually(Duration::from_secs(10), "the host's memory and load in the table", || async {
        let hosts = String::from_utf8_lossy(&hmsctl_off(&url, None, &["hosts"]).await.stdout).into_owned();
        hosts.contains("CPU_BUSY") && hosts.contains("3.0 GiB / 8.0 GiB") && hosts.contains("0.50")
    })
    .await;

    // `series`: the kept points, as JSON and as a table; `--last` and `--since`
    eventually(Duration::from_secs(10), "three periods of web measured", || async {
        let out = hmsctl_off(&url, None, &["--json", "series", "node1", "web"]).await;
        let s: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        s["points"].as_array().is_some_and(|p| p.iter().filter(|p| p["response_ms"] == 42.0).count() >= 3)
    })
    .await;
    let s = json(&hmsctl_off(&url, None, &["--json", "series", "node1", "web", "--last", "2"]).await);
    assert_eq!(
        (&s["name"], &s["workload_unit"], s["points"].as_array().map(Vec::len)),
        (&json!("web"), &json!("requests"), Some(2))
    );
    let since = s["points"][1]["at"].as_str().unwrap();
    let later = json(&hmsctl_off(&url, None, &["--json", "series", "node1", "web", "--since", since]).await);
    assert_eq!(later["points"][0]["at"].as_str(), Some(since), "{later}");
    let text = ok(&hmsctl_off(&url, None, &["series", "node1", "web", "--last", "3"]).await);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("web (") && lines[0].contains("on node1: 3 points"), "{text}");
    assert!(lines[0].contains("req/s") && lines[0].contains("memory limit 256 MiB"), "{text}");
    assert!(lines[2].starts_with("AT ") && lines.len() == 6, "{text}");
    assert!(lines[5].contains("42.0 ms") && lines[5].contains("180 MiB"), "{text}");
    let err = failed(&hmsctl_off(&url, None, &["series", "node1", "nope"]).await);
    assert!(err.contains("404"), "{err}");
    let err = failed(&hmsctl_off(&url, None, &["series", "node1", "web", "--since", "yesterday"]).await);
    assert!(err.contains("400") && err.contains("since"), "{err}");

    // `probe`: set one (token needed), turn one off, go back to the label, refuse a bad one
    let err = failed(&hmsctl_off(&url, None, &["probe", "node1", "box", "tcp://:80"]).await);
    assert!(err.contains("401"), "{err}");
    let record = ok(&hmsctl_off(&url, Some(TOKEN), &["probe", "node1", "box", "tcp://:80"]).await);
    assert!(record.lines().any(|l| l.starts_with("probe ") && l.ends_with(" tcp://:80")), "{record}");
    eventually(Duration::from_secs(10), "box measured through its new probe", || async {
        field(&url, "box", "response_ms").await == 5.0
    })
    .await;
    let record = json(&hmsctl_off(&url, Some(TOKEN), &["--json", "probe", "node1", "web", "off"]).await);
    assert_eq!(record["probe"], Value::Null, "{record}");
    eventually(Duration::from_secs(10), "web's response time gone with its probe", || async {
        field(&url, "web", "response_ms").await.is_null()
    })
    .await;
    let record = json(&hmsctl_off(&url, Some(TOKEN), &["--json", "probe", "node1", "web", "label"]).await);
    assert_eq!(record["probe"], "http://:8080/", "{record}");
    eventually(Duration::from_secs(10), "web measured through its label again", || async {
        field(&url, "web", "response_ms").await == 42.0
    })
    .await;
    let err = failed(&hmsctl_off(&url, Some(TOKEN), &["probe", "node1", "web", "ftp://:21"]).await);
    assert!(err.contains("400") && err.contains("probe"), "{err}");
}
