//! `hms experiment --short` end to end on the real engine: it writes its files, its metrics are
//! in range, and it leaves no container, image, nftables table or process behind.

mod common;

use std::process::Command;

fn exp_containers() -> String {
    common::docker(&["ps", "-aq", "--filter", "label=hms.exp"])
}

fn exp_tables() -> Vec<String> {
    let out = Command::new("nft").args(["list", "tables"]).output().expect("run nft");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().filter(|l| l.contains("hms_x")).map(str::to_owned).collect()
}

#[test]
fn short_experiment_writes_its_results_and_leaves_nothing_behind() {
    common::require_docker();
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_hms"))
        .args(["experiment", "--short", "--scenario", "test_high_high", "--aggregation", "0.1"])
        .args(["--managers", "2", "--containers", "2", "--modes", "hms,off", "--seed", "3"])
        .arg("--out")
        .arg(out.path())
        .env("RUST_LOG", "warn")
        .status()
        .expect("run hms experiment");
    assert!(status.success(), "hms experiment failed: {status}");

    for f in ["summary.json", "availability.png", "bandwidth.png"] {
        let len = std::fs::metadata(out.path().join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{f} missing or empty");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    let runs = summary.as_array().expect("an array of runs");
    assert_eq!(runs.len(), 2, "one run per mode");
    for r in runs {
        let mode = r["spec"]["mode"].as_str().unwrap();
        let dir = out.path().join(format!("test_high_high-agg0.1-{mode}"));
        let csv = std::fs::read_to_string(dir.join("samples.csv")).unwrap();
        assert!(csv.starts_with("t,container,running,reachable\n"));
        // 4 Hz for 8 s on 4 containers, allowing for a loaded machine
        assert!(r["samples_per_container"].as_u64().unwrap() >= 16, "{r}");
        assert!(csv.lines().count() > 4 * 16);
        let events = std::fs::read_to_string(dir.join("events.csv")).unwrap();
        assert!(events.starts_with("t,container,event\n"), "{events}");
        for key in ["availability", "all_up", "availability_bound"] {
            let v = r["score"][key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{mode} {key} = {v}");
        }
        let fresh = r["view_freshness"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&fresh), "{mode} freshness {fresh}");
        let bound = r["view_freshness_bound"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&bound), "{mode} freshness bound {bound}");
        let (payload, update) = (
            r["bandwidth"]["payload_bytes_per_sec"].as_f64().unwrap(),
            r["bandwidth"]["update_bytes_per_sec"].as_f64().unwrap(),
        );
        assert!(update >= 0.0 && update <= payload, "{mode}: update bytes are part of the payload: {r}");
        assert!(r["bandwidth"]["messages_per_sec"].as_f64().unwrap() > 0.0, "heartbeats at least: {r}");
        assert!(r["bare_start"].as_f64().unwrap() > 0.0);
    }
    let off = runs.iter().find(|r| r["spec"]["mode"] == "off").unwrap();
    assert_eq!(off["score"]["actions"], 0, "healing off never starts anything: {off}");
    assert!(exp_containers().trim().is_empty(), "containers left: {}", exp_containers());
    assert!(exp_tables().is_empty(), "nft tables left: {:?}", exp_tables());
    let images = common::docker(&["images", "-q", "--filter", "reference=hms-experiment"]);
    assert!(images.trim().is_empty(), "images left: {images}");
}
