//! The readers on fixture trees of both layouts, and the rates.

use std::fs;
use std::path::Path;

use super::*;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn write(dir: &Path, name: &str, text: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), text).unwrap();
}

/// A v1 tree as Docker's cgroupfs driver lays it out (cpu and cpuacct mounted apart).
fn v1_tree(root: &Path, limit: &str) {
    write(&root.join("cpuacct/docker").join(ID), "cpuacct.usage", "1500000000\n");
    write(&root.join("cpu/docker").join(ID), "cpu.stat", "nr_periods 200\nnr_throttled 50\nthrottled_time 123\n");
    let mem = root.join("memory/docker").join(ID);
    write(&mem, "memory.usage_in_bytes", "10485760\n");
    write(&mem, "memory.limit_in_bytes", limit);
    write(&mem, "memory.failcnt", "3\n");
}

#[test]
fn reads_a_v1_tree() {
    let dir = tempfile::tempdir().unwrap();
    v1_tree(dir.path(), "67108864\n");
    let cg = Cgroups::detect(dir.path());
    assert_eq!(cg.layout(), &Layout::V1);
    assert_eq!(cg.cpu(ID).unwrap(), CpuSample { usage_ns: 1_500_000_000, periods: 200, throttled: 50 });
    let mem = cg.memory(ID).unwrap();
    assert_eq!(mem, MemorySample { usage_bytes: 10_485_760, limit_bytes: Some(67_108_864), failures: 3 });
}

#[test]
fn a_v1_limit_of_page_rounded_i64_max_is_no_limit() {
    let dir = tempfile::tempdir().unwrap();
    v1_tree(dir.path(), "9223372036854771712\n");
    assert_eq!(Cgroups::detect(dir.path()).memory(ID).unwrap().limit_bytes, None);
}

#[test]
fn reads_a_v1_tree_with_cpu_and_cpuacct_mounted_together() {
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("cpu,cpuacct/docker").join(ID);
    write(&both, "cpuacct.usage", "42\n");
    write(&both, "cpu.stat", "nr_periods 0\nnr_throttled 0\n");
    assert_eq!(Cgroups::detect(dir.path()).cpu(ID).unwrap().usage_ns, 42);
}

#[test]
fn reads_a_v2_tree_of_either_driver() {
    for group in [format!("docker/{ID}"), format!("system.slice/docker-{ID}.scope")] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "cgroup.controllers", "cpu memory io\n");
        let g = dir.path().join(&group);
        write(&g, "cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\n");
        write(&g, "memory.current", "4096\n");
        write(&g, "memory.max", "max\n");
        write(&g, "memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n");
        let cg = Cgroups::detect(dir.path());
        assert_eq!(cg.layout(), &Layout::V2, "{group}");
        assert_eq!(cg.cpu(ID).unwrap(), CpuSample { usage_ns: 2_500_000, periods: 10, throttled: 4 });
        assert_eq!(cg.memory(ID).unwrap(), MemorySample { usage_bytes: 4096, limit_bytes: None, failures: 7 });
        write(&g, "memory.max", "1048576\n");
        assert_eq!(cg.memory(ID).unwrap().limit_bytes, Some(1_048_576));
    }
}

#[test]
fn missing_or_garbled_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let cg = Cgroups::detect(dir.path());
    assert!(matches!(cg.cpu(ID), Err(CgroupError::NotFound(..))));
    v1_tree(dir.path(), "lots\n");
    assert!(matches!(cg.memory(ID), Err(CgroupError::Parse(_))));
    write(dir.path(), "cgroup.controllers", "");
    let v2 = Cgroups::detect(dir.path());
    write(&dir.path().join("docker").join(ID), "cpu.stat", "nr_periods 1\n");
    assert!(matches!(v2.cpu(ID), Err(CgroupError::Parse(_))));
}

#[test]
fn rates_between_two_samples() {
    let a = CpuSample { usage_ns: 1_000_000_000, periods: 100, throttled: 10 };
    let b = CpuSample { usage_ns: 1_500_000_000, periods: 110, throttled: 15 };
    assert_eq!(cpu_percent(a, b, Duration::from_secs(1)), Some(50.0));
    assert_eq!(cpu_percent(a, b, Duration::from_millis(250)), Some(200.0));
    assert_eq!(throttled_share(a, b), Some(0.5));
    // no quota: no periods; a restart: counters went back; no time: no rate
    assert_eq!(throttled_share(CpuSample::default(), CpuSample::default()), None);
    assert_eq!(cpu_percent(b, a, Duration::from_secs(1)), None);
    assert_eq!(throttled_share(b, a), None);
    assert_eq!(cpu_percent(a, b, Duration::ZERO), None);
}

/// This machine's real hierarchy answers for a path it does not have with an error, whatever its
/// layout (the reader never panics on a live /sys/fs/cgroup).
#[test]
fn the_live_hierarchy_answers_an_unknown_container_with_not_found() {
    let cg = Cgroups::detect("/sys/fs/cgroup");
    assert!(matches!(cg.memory("no-such-container"), Err(CgroupError::NotFound(..))));
}

#[test]
fn finds_a_process_of_a_v1_container_in_any_hierarchy_it_has() {
    for hierarchy in ["cpu", "cpuacct", "cpu,cpuacct", "memory"] {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join(hierarchy).join("docker").join(ID), "cgroup.procs", "4242\n4300\n");
        assert_eq!(Cgroups::detect(dir.path()).pid(ID).unwrap(), Some(4242), "{hierarchy}");
    }
}

#[test]
fn finds_a_process_of_a_v2_container_of_either_driver() {
    for group in [format!("docker/{ID}"), format!("system.slice/docker-{ID}.scope")] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "cgroup.controllers", "cpu memory io\n");
        write(&dir.path().join(&group), "cgroup.procs", "17\n");
        assert_eq!(Cgroups::detect(dir.path()).pid(ID).unwrap(), Some(17), "{group}");
    }
}

/// A container running systemd (or Docker) moves its processes into sub-groups of its own.
#[test]
fn finds_a_process_in_a_sub_group_when_the_group_itself_has_none() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cgroup.controllers", "cpu memory io\n");
    let group = dir.path().join("docker").join(ID);
    write(&group, "cgroup.procs", "");
    write(&group.join("a.slice"), "cgroup.procs", "");
    write(&group.join("init.scope"), "cgroup.procs", "91\n");
    assert_eq!(Cgroups::detect(dir.path()).pid(ID).unwrap(), Some(91));
}

#[test]
fn a_stopped_container_has_no_process() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("memory/docker").join(ID), "cgroup.procs", "");
    assert_eq!(Cgroups::detect(dir.path()).pid(ID).unwrap(), None);
}

#[test]
fn a_missing_group_or_garbled_procs_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cg = Cgroups::detect(dir.path());
    assert!(matches!(cg.pid(ID), Err(CgroupError::NotFound(..))));
    let group = dir.path().join("cpu/docker").join(ID);
    fs::create_dir_all(&group).unwrap();
    assert!(matches!(cg.pid(ID), Err(CgroupError::Read { .. })));
    write(&group, "cgroup.procs", "init\n");
    assert!(matches!(cg.pid(ID), Err(CgroupError::Parse(_))));
    write(&group, "cgroup.procs", "99999999999\n");
    assert!(matches!(cg.pid(ID), Err(CgroupError::Parse(_))));
}

#[test]
fn finds_a_container_run_under_a_cgroup_parent_in_either_layout() {
    let v1 = tempfile::tempdir().unwrap();
    write(&v1.path().join("cpuacct/hms-vm1").join(ID), "cpuacct.usage", "42\n");
    write(&v1.path().join("cpu/hms-vm1").join(ID), "cpu.stat", "nr_periods 1\nnr_throttled 0\n");
    write(&v1.path().join("cpu/hms-vm1").join(ID), "cgroup.procs", "77\n");
    write(&v1.path().join("memory/hms-vm1").join(ID), "memory.usage_in_bytes", "1\n");
    assert_eq!(Cgroups::detect(v1.path()).cpu(ID).unwrap().usage_ns, 42);
    assert_eq!(Cgroups::detect(v1.path()).pid(ID).unwrap(), Some(77));
    let v2 = tempfile::tempdir().unwrap();
    fs::write(v2.path().join("cgroup.controllers"), "cpu memory").unwrap();
    write(&v2.path().join("hms-vm2").join(ID), "cpu.stat", "usage_usec 5\n");
    assert_eq!(Cgroups::detect(v2.path()).cpu(ID).unwrap().usage_ns, 5000);
}
