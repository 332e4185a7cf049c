//! The analysis experiment end to end, short (CI): `hms experiment --analysis --short` on the real
//! engine builds its simulated hosts, records their signals, injects faults, replays both methods
//! and writes the tables — and leaves no container, image tag or budget behind. It checks the
//! structure of what it wrote, not the scores (those come from the full run, docs/analysis.md).

mod common;

use std::time::Duration;

use common::{HmsProcess, docker, require_docker};

#[test]
fn a_short_analysis_experiment_writes_both_methods_tables_and_leaves_nothing() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_string_lossy().into_owned();
    let args = ["experiment", "--analysis", "--short", "--managers", "2", "--containers", "2", "--out", &out_s];
    let mut hms = HmsProcess::start(&args, dir.path(), &[("RUST_LOG", "info,ractor_cluster=warn")]);
    let pid = hms.child.id();
    let status = hms.wait(Duration::from_secs(300)).expect("the short run ends by itself");
    assert!(status.success(), "{}", hms.log_text());

    let report = std::fs::read_to_string(out.join("analysis.md")).unwrap();
    for row in
        ["| CDA", "| AD", "| FAR per window", "| time to detect p50", "| CIA", "| IIA", "| AI", "| culprit accuracy"]
    {
        assert!(report.contains(row), "{row} missing:\n{report}");
    }
    assert!(report.contains("| metric | paper (HHMM) | hms | seed |"), "{report}");
    assert!(report.contains("method `hms`") && report.contains("method `seed`"), "{report}");
    let signals = out.join("signals");
    let recorded: Vec<String> = std::fs::read_dir(&signals)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("signals-"))
        .collect();
    assert_eq!(recorded.len(), 2, "one recording per simulated host: {recorded:?}");
    let lines = hms::analysis::engine::read_recording(&signals).unwrap();
    assert!(lines.len() > 4 * 60, "every container recorded every period: {} lines", lines.len());
    assert!(lines.iter().any(|l| l.response_ms.is_some() && l.host_cpus.is_some()), "response times and budgets");
    assert!(lines.iter().any(|l| !l.depends_on.is_empty()), "the cross-host dependency is recorded");
    for method in ["hms", "seed"] {
        let scores: serde_json::Value =
            serde_json::from_slice(&std::fs::read(signals.join(format!("scores-{method}.json"))).unwrap()).unwrap();
        for field in ["cda", "ad", "far_window", "cia", "iia", "ai", "ident_far", "culprit_at_1", "confusion"] {
            assert!(scores.get(field).is_some(), "{method}: {field} missing in {scores}");
        }
        assert!(signals.join(format!("anomalies-{method}.jsonl")).exists());
    }

    let run = format!("a{pid}");
    let left = docker(&["ps", "-a", "--filter", &format!("name=hms-{run}-"), "--format", "{{.Names}}"]);
    assert!(left.is_empty(), "containers left: {left}");
    let images = docker(&["images", "-q", &format!("hms-service:{run}")]);
    assert!(images.is_empty(), "image tag left");
    for hierarchy in ["cpu", "cpu,cpuacct", ""] {
        let base = std::path::Path::new("/sys/fs/cgroup").join(hierarchy);
        for h in 0..2 {
            let group = base.join(format!("hms-{run}-vm{h}"));
            assert!(!group.exists(), "budget left: {}", group.display());
        }
    }
}
