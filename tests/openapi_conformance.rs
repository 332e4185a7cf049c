//! Generated requests against the REST API: schemathesis (pinned, see [`SCHEMATHESIS`]) reads
//! `/openapi.json` from an in-process server over the fake engine and prober, generates requests
//! for every documented operation, and fails on any 5xx, undocumented status, undocumented content
//! type, response that violates its schema, accepted invalid input or ignored authentication.
//!
//! The server runs with an API token (sent by schemathesis on every request), so the
//! `ignored_auth` check can prove that a mutation without it is a 401. `GET /events` streams
//! forever, so schemathesis leaves it out; this test checks its status and content type itself.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{FakeFleet, test_manager_config};
use hms::http::Api;

/// The schemathesis release this test is written against (installed by `.ci/run`).
const SCHEMATHESIS: &str = "4.32.5";
/// Generated cases per operation and phase.
const MAX_EXAMPLES: &str = "40";
/// Longest the generated run may take before the test fails.
const BUDGET: Duration = Duration::from_secs(150);
const TOKEN: &str = "conformance-token";

/// The checks that must hold on every generated response.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance,negative_data_rejection,\
    positive_data_acceptance,missing_required_header,ignored_auth";

/// The installed schemathesis's version, or a failure that says how to install the pinned one.
fn schemathesis_version() -> String {
    let install = format!("python3 -m pip install schemathesis=={SCHEMATHESIS} (as .ci/run does)");
    let out = Command::new("schemathesis").arg("--version").output();
    let out = out.unwrap_or_else(|e| panic!("schemathesis is not installed ({e}): {install}"));
    assert!(out.status.success(), "schemathesis --version failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.rsplit(' ').next().unwrap_or_default().trim().to_owned()
}

/// A server over the fake fleet on `127.0.0.1:0`; answers its address.
async fn serve(fleet: &FakeFleet) -> (String, tokio::sync::oneshot::Sender<()>, Api) {
    let api = common::fleet_api(fleet, Some(TOKEN), 3).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(hms::http::serve(listener, api.clone(), async move {
        let _ = stopped.await;
    }));
    (addr, stop, api)
}

/// The schemathesis command line against `addr`.
fn schemathesis(addr: &str, reports: &std::path::Path) -> Command {
    let mut cmd = Command::new("schemathesis");
    cmd.args(["run", &format!("http://{addr}/openapi.json")])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", "20261202", "--workers", "4"])
        .args(["--exclude-path", "/events"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--request-timeout", "10", "--generation-database", "none", "--no-color"])
        .args(["--report", "junit", "--report-dir"])
        .arg(reports)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .current_dir(reports)
        .stdin(Stdio::null());
    cmd
}

/// Runs schemathesis with `only` (its extra arguments) within [`BUDGET`]; fails with its report.
fn run(addr: &str, only: &[&str]) {
    let reports = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut cmd = schemathesis(addr, reports.path());
    cmd.args(only);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("schemathesis starts");
    let mut out = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = std::thread::spawn(move || {
        use std::io::Read;
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let _ = out.0.read_to_string(&mut stdout);
        let _ = out.1.read_to_string(&mut stderr);
        format!("{stdout}\n{stderr}")
    });
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if started.elapsed() > BUDGET {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        #[allow(clippy::disallowed_methods, reason = "a synchronous poll of a child process, outside any runtime")]
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = readers.join().unwrap();
    let Some(status) = status else { panic!("schemathesis {only:?} did not finish within {BUDGET:?}:\n{text}") };
    eprintln!("schemathesis {only:?} finished in {:.1?}", started.elapsed());
    assert!(status.success(), "schemathesis {only:?} found problems:\n{text}");
    assert!(text.contains(" passed") || text.contains("passed"), "schemathesis ran no test:\n{text}");
}

/// Every operation but adding a host; then adding hosts alone. A host the generator adds is
/// offline (nothing answers at its endpoint), and commands to an offline host are a 503 by
/// contract: so the hosts it adds must not be the ones the other operations are generated for.
#[test]
fn generated_requests_find_no_server_error_and_no_undocumented_answer() {
    let version = schemathesis_version();
    assert_eq!(version, SCHEMATHESIS, "schemathesis {SCHEMATHESIS} is pinned; {version} is installed");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let fleet = rt.block_on(FakeFleet::start(test_manager_config("h", None)));
    for name in ["web", "db", "cache"] {
        fleet.runtime.add(name, &[]);
    }
    let (addr, stop, _api) = rt.block_on(serve(&fleet));
    run(&addr, &["--exclude-operation-id", "add_host"]);
    run(&addr, &["--include-operation-id", "add_host"]);
    let _ = stop.send(());
}

#[test]
fn the_event_stream_answers_its_documented_content_type() {
    let doc: serde_json::Value = serde_json::from_str(hms::http::openapi::document()).unwrap();
    let documented = doc["paths"]["/events"]["get"]["responses"]["200"]["content"].as_object().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let fleet = FakeFleet::start(test_manager_config("h", None)).await;
        for name in ["web", "db", "cache"] {
            fleet.runtime.add(name, &[]);
        }
        let (addr, stop, _api) = serve(&fleet).await;
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await.expect("headers").unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let ct = head.lines().find_map(|l| l.strip_prefix("content-type:")).map(str::trim).unwrap_or_default();
        assert!(
            documented.keys().any(|k| k.eq_ignore_ascii_case(ct)),
            "/events answers {ct:?}, documents {documented:?}"
        );
        let _ = stop.send(());
    });
}
