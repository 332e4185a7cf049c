//! The readers on fixture trees of real content (copied from a 6.18 kernel's /proc), broken
//! trees, the live /proc, and the rates.

use std::fs;
use std::path::Path;

use super::*;

const PID: u32 = 4242;

const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits
Ip: 1 64 4300 0 0 0 0 0 4300 2040 0 0 0 0 0 0 0 0 0 2040
Icmp: InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs InRedirects InEchos InEchoReps InTimestamps InTimestampReps InAddrMasks InAddrMaskReps OutMsgs OutErrors OutRateLimitGlobal OutRateLimitHost OutDestUnreachs OutTimeExcds OutParmProbs OutSrcQuenchs OutRedirects OutEchos OutEchoReps OutTimestamps OutTimestampReps OutAddrMasks OutAddrMaskReps
Icmp: 1 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
IcmpMsg: InType3
IcmpMsg: 1
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 15 2 0 0 4 4274 2022 0 0 0 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 25 0 0 26 0 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
";

/// Note `docker0:` with no space: a long name or a large byte count abuts the colon.
const DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 177748381    4274    0    0    0     0          0         0   208520    2020    0    0    0     0       0          0
docker0:     980      12    0    0    0     0          0         0        0       0    0    2    0     0       0          0
";

const STAT: &str = "\
cpu  14886 0 3968 26972 510 0 63 139 0 0
cpu0 7043 0 1690 14399 94 0 7 71 0 0
cpu1 7842 0 2278 12573 415 0 56 68 0 0
intr 177287 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 15 0 0 0 0 46 21 0 16 1 50297 0 2500
ctxt 295079
btime 1796180691
processes 7811
procs_running 4
procs_blocked 0
softirq 118368 0 13096 5 3638 50296 0 54 18326 0 32953
";

const MEMINFO: &str = "\
MemTotal:       24683584 kB
MemFree:        21998008 kB
MemAvailable:   23873712 kB
Buffers:           19868 kB
Cached:          2019548 kB
SwapCached:            0 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
";

const LOADAVG: &str = "1.10 0.30 0.10 3/118 3802\n";

const PRESSURE_CPU: &str = "\
some avg10=12.65 avg60=3.44 avg300=1.18 total=5277252
full avg10=0.00 avg60=0.00 avg300=0.00 total=0
";

const PRESSURE_MEMORY: &str = "\
some avg10=2.36 avg60=1.83 avg300=0.84 total=3644625
full avg10=2.27 avg60=1.77 avg300=0.82 total=3547373
";

fn write(dir: &Path, name: &str, text: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), text).unwrap();
}

fn net_tree(root: &Path, snmp: &str, dev: &str) {
    let net = root.join(PID.to_string()).join("net");
    write(&net, "snmp", snmp);
    write(&net, "dev", dev);
}

fn host_tree(root: &Path) {
    write(root, "stat", STAT);
    write(root, "meminfo", MEMINFO);
    write(root, "loadavg", LOADAVG);
    write(&root.join("pressure"), "cpu", PRESSURE_CPU);
    write(&root.join("pressure"), "memory", PRESSURE_MEMORY);
}

#[test]
fn reads_passive_opens_and_packets_received_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    net_tree(dir.path(), SNMP, DEV);
    let counters = net_counters(dir.path(), PID).unwrap();
    assert_eq!(counters, NetCounters { passive_opens: 2, rx_packets: 4274 + 12 });
}

#[test]
fn finds_the_snmp_column_by_name_not_position() {
    let dir = tempfile::tempdir().unwrap();
    let moved = "Tcp: PassiveOpens RtoAlgorithm ActiveOpens\nTcp: 77 1 15\n";
    net_tree(dir.path(), moved, DEV);
    assert_eq!(net_counters(dir.path(), PID).unwrap().passive_opens, 77);
}

#[test]
fn a_namespace_with_only_loopback_received_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let only_lo: String = DEV.lines().take(3).map(|l| format!("{l}\n")).collect();
    net_tree(dir.path(), SNMP, &only_lo);
    assert_eq!(net_counters(dir.path(), PID).unwrap().rx_packets, 0);
}

#[test]
fn reads_the_host() {
    let dir = tempfile::tempdir().unwrap();
    host_tree(dir.path());
    let busy = 14886 + 3968 + 63 + 139;
    let host = host_sample(dir.path()).unwrap();
    assert_eq!(
        host,
        HostSample {
            cpu: CpuTimes { busy, total: busy + 26972 + 510 },
            memory_total_bytes: 24_683_584 * 1024,
            memory_available_bytes: 23_873_712 * 1024,
            load1: 1.10,
            cpu_pressure: Some(12.65),
            memory_pressure: Some(2.36),
        }
    );
}

#[test]
fn guest_time_is_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    host_tree(dir.path());
    // user 100 includes guest 40, nice 10 includes guest_nice 5
    write(dir.path(), "stat", "cpu  100 10 20 800 30 1 2 3 40 5\n");
    assert_eq!(host_sample(dir.path()).unwrap().cpu, CpuTimes { busy: 136, total: 966 });
    // an old kernel: user nice system idle only
    write(dir.path(), "stat", "cpu  100 10 20 800\n");
    assert_eq!(host_sample(dir.path()).unwrap().cpu, CpuTimes { busy: 130, total: 930 });
}

#[test]
fn a_kernel_without_psi_has_no_pressure() {
    let dir = tempfile::tempdir().unwrap();
    host_tree(dir.path());
    fs::remove_dir_all(dir.path().join("pressure")).unwrap();
    let host = host_sample(dir.path()).unwrap();
    assert_eq!((host.cpu_pressure, host.memory_pressure), (None, None));
    assert_eq!(host.load1, 1.10);
}

#[test]
fn missing_files_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(net_counters(dir.path(), PID), Err(ProcError::NotFound(p)) if p.ends_with("net/snmp")));
    assert!(matches!(host_sample(dir.path()), Err(ProcError::NotFound(p)) if p.ends_with("meminfo")));
    host_tree(dir.path());
    fs::remove_file(dir.path().join("loadavg")).unwrap();
    assert!(matches!(host_sample(dir.path()), Err(ProcError::NotFound(p)) if p.ends_with("loadavg")));
}

/// Each file cut short, emptied or garbled in turn is a parse error naming it.
#[test]
fn truncated_or_garbled_files_are_parse_errors_not_panics() {
    let cut = |text: &str, at: usize| text[..at].to_owned();
    let net_cases = [
        ("snmp", String::new()),
        ("snmp", cut(SNMP, SNMP.find("Tcp: 1 200").unwrap() + 12)),
        ("snmp", cut(SNMP, SNMP.find("Tcp: 1 200").unwrap())),
        ("snmp", SNMP.replace("Tcp: 1 200 120000 -1 15 2", "Tcp: 1 200 120000 -1 15 x")),
        ("snmp", SNMP.replace("PassiveOpens", "Passive")),
        ("dev", String::new()),
        ("dev", cut(DEV, DEV.find("eth0").unwrap() + 20)),
        ("dev", DEV.replace("4274", "lots")),
        ("dev", DEV.replace("eth0:", "eth0 ")),
        ("dev", DEV.replace("packets", "pkts")),
    ];
    for (file, text) in net_cases {
        let dir = tempfile::tempdir().unwrap();
        net_tree(dir.path(), SNMP, DEV);
        write(&dir.path().join(PID.to_string()).join("net"), file, &text);
        let result = net_counters(dir.path(), PID);
        assert!(matches!(&result, Err(ProcError::Parse(p)) if p.ends_with(file)), "{file} {text:?}: {result:?}");
    }
    let host_cases = [
        ("stat", String::new()),
        ("stat", "cpu  100 10 20\n".to_owned()),
        ("stat", "cpu  100 10 x 800\n".to_owned()),
        ("stat", "cpu  18446744073709551615 1 1 1\n".to_owned()),
        ("stat", "cpu0 100 10 20 800\n".to_owned()),
        ("meminfo", cut(MEMINFO, MEMINFO.find("MemAvailable").unwrap())),
        ("meminfo", MEMINFO.replace("24683584 kB", "24683584 MB")),
        ("meminfo", MEMINFO.replace("24683584", "-1")),
        ("meminfo", MEMINFO.replace("24683584", "18446744073709551615")),
        ("loadavg", String::new()),
        ("loadavg", "NaN 0.30 0.10 3/118 3802\n".to_owned()),
        ("loadavg", "-1 0.30 0.10 3/118 3802\n".to_owned()),
        ("pressure/cpu", String::new()),
        ("pressure/cpu", "some avg10=\n".to_owned()),
        ("pressure/memory", "some avg10=250.00 avg60=0.00\n".to_owned()),
        ("pressure/memory", "full avg10=2.27 avg60=1.77 avg300=0.82 total=3547373\n".to_owned()),
    ];
    for (file, text) in host_cases {
        let dir = tempfile::tempdir().unwrap();
        host_tree(dir.path());
        fs::write(dir.path().join(file), &text).unwrap();
        let result = host_sample(dir.path());
        assert!(matches!(&result, Err(ProcError::Parse(p)) if p.ends_with(file)), "{file} {text:?}: {result:?}");
    }
}

#[test]
fn busy_share_between_two_samples() {
    let a = CpuTimes { busy: 1000, total: 4000 };
    let b = CpuTimes { busy: 1150, total: 4200 };
    assert_eq!(cpu_busy_percent(a, b), Some(75.0));
    assert_eq!(cpu_busy_percent(a, CpuTimes { busy: 1000, total: 4200 }), Some(0.0));
    // no time passed; counters went back
    assert_eq!(cpu_busy_percent(a, a), None);
    assert_eq!(cpu_busy_percent(b, a), None);
    assert_eq!(cpu_busy_percent(a, CpuTimes { busy: 900, total: 4200 }), None);
}

#[test]
fn rate_of_a_counter() {
    assert_eq!(rate(100, 400, Duration::from_secs(2)), Some(150.0));
    assert_eq!(rate(100, 100, Duration::from_millis(500)), Some(0.0));
    assert_eq!(rate(100, 150, Duration::from_millis(250)), Some(200.0));
    // no time passed; the container restarted and its counter started again
    assert_eq!(rate(100, 400, Duration::ZERO), None);
    assert_eq!(rate(400, 3, Duration::from_secs(1)), None);
}

/// This process's namespace and this host, read live: the values are plausible and the
/// counters do not go back between two reads.
#[test]
fn reads_the_live_proc_of_this_process_and_host() {
    let proc_root = Path::new("/proc");
    let before = net_counters(proc_root, std::process::id()).unwrap();
    let host = host_sample(proc_root).unwrap();
    assert!(host.memory_total_bytes >= host.memory_available_bytes, "{host:?}");
    assert!(host.memory_available_bytes > 0, "{host:?}");
    assert!(host.cpu.busy <= host.cpu.total && host.cpu.total > 0, "{host:?}");
    assert!(host.load1.is_finite() && host.load1 >= 0.0, "{host:?}");
    let psi = fs::read_to_string(proc_root.join("pressure/cpu")).is_ok();
    assert_eq!(host.cpu_pressure.is_some(), psi, "{host:?}");
    assert!(host.cpu_pressure.into_iter().chain(host.memory_pressure).all(|p| (0.0..=100.0).contains(&p)));
    let after = net_counters(proc_root, std::process::id()).unwrap();
    assert!(after.passive_opens >= before.passive_opens && after.rx_packets >= before.rx_packets);
    let later = host_sample(proc_root).unwrap();
    assert!(later.cpu.total >= host.cpu.total && later.cpu.busy >= host.cpu.busy);
}
