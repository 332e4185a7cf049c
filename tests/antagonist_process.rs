//! The antagonist in a real `hms standalone` process, driven through REST: the endpoints, and no
//! rule left behind after a stop, a SIGTERM, or a SIGKILL followed by a restart.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{DockerFixture, HmsProcess, docker, eventually, free_port, http, unique_table};

const HOST: &str = "antagonist-node";

/// Removes the test's table from the host on drop (container namespaces go with the containers).
struct Cleanup {
    table: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let script = format!("table inet {t} {{}}\ndelete table inet {t}\n", t = self.table);
        let _ = nft(None, &["-f", "-"], Some(&script));
    }
}

fn nft(pid: Option<&str>, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut cmd = match pid {
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.args(["-t", pid, "-n", "nft"]);
            c
        }
        None => Command::new("nft"),
    };
    let mut child = cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).unwrap();
    }
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
}

fn ruleset(pid: Option<&str>) -> String {
    nft(pid, &["list", "ruleset"], None)
}

struct Node<'a> {
    addr: String,
    args: Vec<String>,
    table: &'a str,
    dir: &'a Path,
}

impl<'a> Node<'a> {
    /// `hms standalone` over `fx`'s containers, on a free port, with its data under `dir`.
    fn standalone(fx: &DockerFixture, table: &'a str, dir: &'a Path) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let select = format!("hms.test={}", fx.label);
        let data = dir.join("data").to_string_lossy().into_owned();
        let args = ["standalone", "--http", &addr, "--name", HOST, "--select", &select, "--data-dir", &data];
        Node { args: args.iter().map(|s| (*s).to_owned()).collect(), addr, table, dir }
    }

    fn start(&self) -> HmsProcess {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        HmsProcess::start(&args, self.dir, &[("HMS_ANTAGONIST_TABLE", self.table)])
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        match http(&self.addr, method, path, body, None) {
            Ok((status, text)) => (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)),
            Err(_) => (0, serde_json::Value::Null), // not listening yet
        }
    }

    async fn until_targets(&self, n: u64) {
        let path = format!("/antagonist/{HOST}");
        eventually(Duration::from_secs(15), "the antagonist sees its targets", || async {
            let (status, body) = self.call("GET", &path, None);
            status == 200 && body["targets"] == n
        })
        .await;
    }
}

// 10 % loss stays below the threshold: the manager does not restart the container meanwhile
const LINK: &str = r#"{"heavy":100,"balance":0,"loss":10,"loss_stddev":0,"frequency":0.01,"duration":3000}"#;
const CONTAINER: &str =
    r#"{"heavy":100,"balance":0,"loss":10,"loss_stddev":0,"frequency":0.01,"duration":3000,"loss_scope":"container"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_drives_the_antagonist_and_no_rule_survives_stop_sigterm_or_sigkill() {
    let mut fx = DockerFixture::new();
    let name = fx.run(&[]);
    let table = unique_table();
    let _cleanup = Cleanup { table: table.clone() };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::standalone(&fx, &table, dir.path());
    let one = format!("/antagonist/{HOST}");
    let has_rule = |pid: Option<&str>| ruleset(pid).contains(&table);

    // REST: validation, start, status, configure, stop, ground truth
    let mut hms = node.start();
    node.until_targets(1).await;
    let (status, body) = node.call("POST", &one, Some(r#"{"heavy":101}"#));
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("heavy"), "{body}");
    assert_eq!(node.call("PUT", &one, Some(r#"{"frequency":0}"#)).0, 400);
    assert_eq!(node.call("PUT", &one, Some(r#"{"nonsense":1}"#)).0, 400);
    assert_eq!(node.call("GET", "/antagonist/nowhere", None).0, 404);
    let (status, body) = node.call("PUT", &one, Some(LINK));
    assert_eq!((status, &body["running"]), (200, &serde_json::json!(true)), "{body}");
    assert_eq!(node.call("PUT", &one, None).0, 409, "already running");
    eventually(Duration::from_secs(5), "link rule on the host", || async { has_rule(None) }).await;
    let (status, body) = node.call("POST", &one, Some(r#"{"loss":15}"#));
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["config"]["loss"].as_f64(), body["config"]["duration"].as_f64()), (Some(15.0), Some(3000.0)));
    eventually(Duration::from_secs(5), "the new loss in force", || async {
        ruleset(None).contains("numgen random mod 100 < 15")
    })
    .await;
    let (status, body) = node.call("GET", "/antagonist", None);
    assert_eq!(status, 200);
    assert_eq!(body["hosts"][0]["status"]["running"], true, "{body}");
    let (status, body) = node.call("DELETE", "/antagonist", None);
    assert_eq!((status, &body["hosts"][0]["ok"]), (200, &serde_json::json!(true)), "{body}");
    assert!(!has_rule(None), "no rule after stop:\n{}", ruleset(None));
    let (status, attacks) = node.call("GET", &format!("/attacks?host={HOST}"), None);
    assert_eq!(status, 200);
    let attacks = attacks.as_array().unwrap();
    assert!(attacks.len() >= 2, "the configure and the stop each interrupted one attack: {attacks:?}");
    assert!(attacks.iter().all(|a| a["kind"] == "loss" && a["container_name"] == name.as_str()));
    assert_eq!(node.call("GET", "/attacks?since=yesterday", None).0, 400);
    let (_, later) = node.call("GET", "/attacks?since=2999-01-01T00:00:00Z", None);
    assert_eq!(later, serde_json::json!([]));
    assert!(std::fs::read_to_string(dir.path().join("data/attacks.jsonl")).unwrap().lines().count() >= 2);

    // every host at once: validation first, then one outcome per host
    let (status, body) = node.call("POST", "/antagonist", Some(r#"{"frequency":-1}"#));
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("frequency"), "{body}");
    let (status, body) = node.call("POST", "/antagonist", Some(r#"{"scenario":"test_low_high"}"#));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hosts"][0]["status"]["config"]["frequency"], 0.1, "{body}");

    // SIGTERM removes the rules
    let (status, body) = node.call("PUT", "/antagonist", Some(LINK));
    assert_eq!((status, &body["hosts"][0]["ok"]), (200, &serde_json::json!(true)), "{body}");
    eventually(Duration::from_secs(5), "link rule on the host", || async { has_rule(None) }).await;
    hms.signal("TERM");
    assert!(hms.wait(Duration::from_secs(10)).is_some(), "hms exits on SIGTERM");
    assert!(!has_rule(None), "no rule after SIGTERM:\n{}", ruleset(None));

    // SIGKILL leaves them; the next start removes them: host side, then in the container
    let mut pids = Vec::new();
    for (config, in_container) in [(LINK, false), (CONTAINER, true)] {
        let container_pid = docker(&["inspect", "-f", "{{.State.Pid}}", &name]);
        let pid = in_container.then_some(container_pid.as_str());
        pids.push(container_pid.clone());
        let mut hms = node.start();
        node.until_targets(1).await;
        assert_eq!(node.call("PUT", &one, Some(config)).0, 200);
        eventually(Duration::from_secs(5), "loss rule in place", || async { has_rule(pid) }).await;
        hms.signal("KILL");
        assert!(hms.wait(Duration::from_secs(5)).is_some());
        assert!(has_rule(pid), "a SIGKILL leaves the rule behind");
        let restarted = node.start();
        eventually(Duration::from_secs(15), &format!("leftovers removed at start-up ({config})"), || async {
            !has_rule(pid)
        })
        .await;
        drop(restarted);
        std::mem::drop(hms);
    }
    assert!(!has_rule(None));
    assert!(pids.iter().all(|p| !has_rule(Some(p))));
}

#[test]
fn hms_antagonist_runs_locally_for_its_duration_and_writes_the_ground_truth() {
    let mut fx = DockerFixture::new();
    let name = fx.run(&[]);
    let table = unique_table();
    let _cleanup = Cleanup { table: table.clone() };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let select = format!("hms.test={}", fx.label);
    let config = r#"{"heavy":100,"balance":0,"loss":10,"loss_stddev":0,"frequency":0.05,"duration":0.2,"seed":3}"#;
    let args = ["antagonist", "--config", config, "--select", &select, "--duration", "2", "--data-dir", &data];
    let mut run = HmsProcess::start(&args, dir.path(), &[("HMS_ANTAGONIST_TABLE", &table)]);
    let status = run.wait(Duration::from_secs(20)).expect("exits at the end of its duration");
    assert!(status.success(), "{}", run.log_text());
    let text = std::fs::read_to_string(dir.path().join("data/attacks.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 2, "{text}");
    assert!(lines.iter().all(|l| l["container_name"] == name.as_str() && l["kind"] == "loss" && l["loss"] == 10));
    assert!(!ruleset(None).contains(&table), "no rule after the run");

    let mut bad = HmsProcess::start(&["antagonist", "--scenario", "test_nope"], dir.path(), &[]);
    let status = bad.wait(Duration::from_secs(10)).expect("refuses at once");
    assert!(!status.success());
    assert!(bad.log_text().contains("scenario"), "{}", bad.log_text());
}

/// How a run with an attack in progress ends.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Stop,
    Term,
    Kill,
}

/// The analysis kinds in a real process: a `cpu_starve` (a changed limit) and a `cpu_hog` (busy
/// processes in the container) in progress are undone by `DELETE /antagonist/{host}`, by
/// SIGTERM, and after a SIGKILL by the next start, which reads the undo journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysis_fault_in_progress_is_undone_by_stop_sigterm_and_the_start_after_sigkill() {
    let mut fx = DockerFixture::service();
    let name = fx.run_with(&[], &["--cpus", "0.5", "--memory", "48m"], &[]);
    let table = unique_table();
    let _cleanup = Cleanup { table: table.clone() };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::standalone(&fx, &table, dir.path());
    let one = format!("/antagonist/{HOST}");
    let nano = || docker(&["inspect", "-f", "{{.HostConfig.NanoCpus}}", &name]);
    let hogs = || common::tagged_processes(&name, "hms-hog");
    for kind in ["cpu_starve", "cpu_hog"] {
        let in_effect = || if kind == "cpu_starve" { nano() == "125000000" } else { !hogs().is_empty() };
        let undone = || if kind == "cpu_starve" { nano() == "500000000" } else { hogs().is_empty() };
        for ending in [Ending::Stop, Ending::Term, Ending::Kill] {
            let what = format!("{kind} ended by {ending:?}");
            let mut hms = node.start();
            node.until_targets(1).await;
            let config = format!(r#"{{"heavy":100,"frequency":0.01,"duration":300,"kinds":["{kind}"]}}"#);
            let (status, body) = node.call("PUT", &one, Some(&config));
            assert_eq!(status, 200, "{what}: {body}");
            eventually(Duration::from_secs(10), &format!("{what}: in effect"), || async { in_effect() }).await;
            match ending {
                Ending::Stop => {
                    let (status, body) = node.call("DELETE", &one, None);
                    assert_eq!(status, 200, "{what}: {body}");
                }
                Ending::Term => {
                    hms.signal("TERM");
                    assert!(hms.wait(Duration::from_secs(10)).is_some(), "{what}: exits on SIGTERM");
                }
                Ending::Kill => {
                    hms.signal("KILL");
                    assert!(hms.wait(Duration::from_secs(5)).is_some());
                    assert!(in_effect(), "{what}: a SIGKILL leaves the fault in place");
                    let _restarted = node.start();
                    // The journal is forgotten just after its steps are applied: wait for both.
                    let journal = dir.path().join("data/antagonist-undo.json");
                    eventually(Duration::from_secs(15), &format!("{what}: undone at the next start"), || async {
                        undone() && !journal.exists()
                    })
                    .await;
                }
            }
            assert!(undone(), "{what}: undone (limit {}, hog processes {:?})", nano(), hogs());
            let attacks = std::fs::read_to_string(dir.path().join("data/attacks.jsonl")).unwrap_or_default();
            if !matches!(ending, Ending::Kill) {
                assert!(attacks.contains(&format!(r#""kind":"{kind}""#)), "{what}: recorded\n{attacks}");
            }
        }
    }
    assert!(!dir.path().join("data/antagonist-undo.json").exists(), "nothing left to undo");
}
