//! The dashboard in a real headless browser (Debian's `chromium`): the page shows a container,
//! follows `/events` while the container is killed and healed, and a screenshot is kept as
//! `target/dashboard.png`; over an in-process node (fake engine and responder) it shows a probed
//! container's response time and sparkline (`target/dashboard-signals.png`). Fails (never skips)
//! when chromium is missing.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::{DockerFixture, FakeFleet, HmsProcess, docker, free_port, patience, test_manager_config};

const CHROMIUM: &str = "chromium";

fn require_chromium() {
    match Command::new(CHROMIUM).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        other => panic!("chromium is required (apt-get install chromium): {other:?}"),
    }
}

fn browser_args(profile: &Path) -> Vec<String> {
    ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--window-size=1280,800"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect()
}

/// A headless browser showing one page, in its own process group; killed (whole group) on drop.
struct Browser {
    child: Child,
}

impl Browser {
    /// Opens `url`; the page's console lines starting with `hms:` arrive on the receiver.
    fn open(url: &str, profile: &Path) -> (Self, Receiver<String>) {
        let mut child = Command::new(CHROMIUM)
            .args(browser_args(profile))
            .args(["--enable-logging=stderr", "--v=0", "--remote-debugging-port=0", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("\"hms: ") {
                    let msg = line[i + 1..].split('"').next().unwrap_or_default().to_owned();
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
            }
        });
        (Self { child }, rx)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Waits for a console line matching `pred`; panics with every line seen.
fn wait_line(rx: &Receiver<String>, within: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within * patience();
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("the dashboard never showed {what}; console: {seen:#?}"),
        }
    }
}

/// `target/NAME`, beside the test binaries.
fn kept_path(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join(name)
}

/// A screenshot of `url` after it ran for three (virtual) seconds, kept as `target/NAME`.
fn screenshot(url: &str, profile: &Path, name: &str) {
    let shot = kept_path(name);
    let _ = std::fs::remove_file(&shot);
    let out = Command::new(CHROMIUM)
        .args(browser_args(profile))
        .args(["--virtual-time-budget=3000", &format!("--screenshot={}", shot.display()), url])
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs");
    let png = std::fs::read(&shot)
        .unwrap_or_else(|e| panic!("no screenshot ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot of {} bytes", png.len());
}

#[test]
fn dashboard_shows_a_container_and_follows_its_restart_live() {
    require_chromium();
    let mut fx = DockerFixture::new();
    let name = fx.run(&[]);
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let select = format!("hms.test={}", fx.label);
    let _hms =
        HmsProcess::start(&["standalone", "--http", &addr, "--select", &select, "--name", "web1"], dir.path(), &[]);
    let url = format!("http://{addr}/");

    let (browser, console) = Browser::open(&url, &dir.path().join("profile"));
    let running = format!("hms: container {name} running restarts=0");
    wait_line(&console, Duration::from_secs(30), "the container running", |l| l == running);

    // the page re-reads the API only when an event arrives: what follows is pushed through /events
    docker(&["kill", &name]);
    let prefix = format!("hms: container {name} ");
    let changed = wait_line(&console, Duration::from_secs(20), "the container's state change", |l| {
        l.starts_with(&prefix) && l != running
    });
    assert!(changed.contains("restarts=1") || !changed.contains(" running "), "{changed}");
    // the controller may see the restarted container only (kill and restart within one window)
    let healed = format!("hms: container {name} running restarts=1");
    if changed != healed {
        wait_line(&console, Duration::from_secs(20), "the container healed", |l| l == healed);
    }
    drop(browser);

    screenshot(&format!("{url}?live=0"), &dir.path().join("profile-shot"), "dashboard.png");
}

/// The page's DOM after it ran for a few (virtual) seconds, with `--dump-dom`.
fn dump_dom(url: &str, profile: &Path) -> String {
    let out = Command::new(CHROMIUM)
        .args(browser_args(profile))
        .args(["--virtual-time-budget=5000", "--dump-dom", url])
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium --dump-dom failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dashboard_shows_the_response_time_and_a_sparkline_of_a_probed_container() {
    require_chromium();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let fleet = rt.block_on(FakeFleet::start(test_manager_config("node1", None)));
    let web = fleet.runtime.add("web", &[("hms.probe", "http://:8080/")]);
    fleet.runtime.add("box", &[]);
    fleet.responder.set(rt.block_on(fleet.ip(&web)), Some(Duration::from_millis(42)));
    let (addr, stop) = rt.block_on(common::serve_fleet(&fleet, None, 2));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/");

    let (browser, console) = Browser::open(&url, &dir.path().join("profile"));
    wait_line(&console, Duration::from_secs(20), "web's response time", |l| l == "hms: response web 42.0 ms");
    wait_line(&console, Duration::from_secs(30), "web's sparkline", |l| {
        l.strip_prefix("hms: sparkline web response points=")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 2)
    });
    drop(browser);

    // a page that renders once draws them too
    let dom = dump_dom(&format!("{url}?live=0"), &dir.path().join("profile-dom"));
    let row = dom.split("<tr").find(|r| r.contains(">web<")).unwrap_or_else(|| panic!("no row of web: {dom}"));
    assert!(row.contains(">42.0 ms<"), "{row}");
    assert!(row.contains(r#"<svg class="spark""#) && row.contains(r#"class="rt" d="M"#), "{row}");
    screenshot(&format!("{url}?live=0"), &dir.path().join("profile-shot"), "dashboard-signals.png");
    let _ = stop.send(());
}
