//! `hms load` against servers of the test's own on loopback: it keeps its schedule and its
//! latency is the server's.

use std::net::SocketAddr;
use std::time::Duration;

use hms::load::generator::{self, LoadSpec, Summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server that answers every connection after `delay` with a 200 and closes; runs until the
/// test's runtime ends.
async fn server(delay: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
            });
        }
    });
    addr
}

fn spec(addr: SocketAddr, schedule: &str, secs: f64) -> LoadSpec {
    LoadSpec {
        targets: vec![format!("http://{addr}/x").parse().unwrap()],
        schedule: schedule.parse().unwrap(),
        duration: Duration::from_secs_f64(secs),
        timeout: Duration::from_secs(2),
        max_in_flight: 10_000,
    }
}

async fn run(spec: LoadSpec) -> (Summary, Vec<generator::Second>) {
    let seconds = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seconds.clone();
    let handle = generator::spawn(spec, move |s| sink.lock().unwrap().push(s.clone())).unwrap();
    let summary = handle.finished().await;
    let seconds = seconds.lock().unwrap().clone();
    (summary, seconds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_keeps_500_requests_a_second_against_a_fast_target() {
    let addr = server(Duration::ZERO).await;
    let (s, seconds) = run(spec(addr, "500", 4.0)).await;
    eprintln!("{}", serde_json::to_string(&s).unwrap());
    assert_eq!(s.scheduled, 2000);
    assert!((s.achieved_rate - 500.0).abs() <= 25.0, "achieved {:.1}/s", s.achieved_rate);
    assert!(s.ok as f64 >= 0.99 * s.sent as f64, "{} of {} answered", s.ok, s.sent);
    assert_eq!((s.dropped, s.timed_out), (0, 0));
    let sent: u64 = seconds.iter().map(|x| x.sent).sum();
    assert_eq!(sent, s.sent, "the seconds add up to the run");
    for x in seconds.iter().filter(|x| x.second < 4) {
        assert!((x.sent as f64 - 500.0).abs() <= 50.0, "second {}: {} sent", x.second, x.sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn its_latency_is_the_servers_delay() {
    let addr = server(Duration::from_millis(80)).await;
    let (s, _) = run(spec(addr, "50", 3.0)).await;
    let l = s.latency.expect("answers");
    eprintln!("{l:?}");
    assert!(l.p50_ms >= 80.0 && l.p50_ms <= 100.0, "p50 {:.1} ms for an 80 ms delay", l.p50_ms);
    assert!(l.count >= 140, "{} answers", l.count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_cannot_hide_behind_the_sender() {
    // open loop: a server answering in 300 ms at 20/s has ~6 requests in flight; the sends
    // keep their times, so 2 s schedule 40 requests whatever the answers do
    let addr = server(Duration::from_millis(300)).await;
    let (s, _) = run(spec(addr, "20", 2.0)).await;
    assert_eq!(s.sent, 40);
    assert!(s.latency.unwrap().p50_ms >= 300.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_target_counts_failures_and_a_stop_ends_the_run_early() {
    // a port nobody listens on: bind, note it, close
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let handle = generator::spawn(spec(addr, "100", 60.0), |_| ()).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    handle.stop();
    let started = std::time::Instant::now();
    let s = handle.finished().await;
    assert!(started.elapsed() < Duration::from_secs(3), "stopped promptly");
    assert!(s.duration_s < 2.0 && s.sent > 0);
    assert_eq!((s.ok, s.failed), (0, s.sent));
    assert!(s.latency.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_writes_its_csv_and_summary_and_refuses_bad_input() {
    let addr = server(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let (csv, summary) = (dir.path().join("load.csv"), dir.path().join("summary.json"));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hms"))
        .args(["load", "--target", &format!("http://{addr}/"), "--schedule", "steps:20@0,40@1", "--duration", "2"])
        .arg("--csv")
        .arg(&csv)
        .arg("--summary")
        .arg(&summary)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(summary["sent"], 60);
    assert_eq!(summary["schedule"], "steps:20@0,40@1");
    let rows = std::fs::read_to_string(&csv).unwrap();
    let mut lines = rows.lines();
    assert_eq!(lines.next(), Some(generator::Second::CSV_HEADER));
    let sent: Vec<u64> = lines.map(|l| l.split(',').nth(2).unwrap().parse().unwrap()).collect();
    assert_eq!(&sent[..2], &[20, 40]);
    let good = ["--target", "http://127.0.0.1:9/", "--duration", "1", "--schedule", "5"];
    for (flag, value) in [("--schedule", "steps:5@3"), ("--duration", "0"), ("--target", "ftp://x:1/")] {
        let bad = [flag, value];
        let mut args = vec!["load"];
        // the good arguments but the one replaced
        for pair in good.chunks(2) {
            args.extend(if pair[0] == flag { bad } else { [pair[0], pair[1]] });
        }
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hms")).args(&args).output().await.unwrap();
        assert!(!out.status.success(), "{bad:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("must be") || err.contains("expected"), "{bad:?}: {err}");
    }
}
