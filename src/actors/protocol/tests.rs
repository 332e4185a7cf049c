//! Round trips and patches of the protocol types.
use super::*;

#[test]
fn content_round_trips_through_bincode() {
    let c = Content {
        host: "vm1".into(),
        version: 7,
        threshold: 30,
        full: true,
        containers: vec![],
        patches: vec![ContainerPatch { id: "abc".into(), restarts: Some(3), ..ContainerPatch::default() }],
        removed: vec!["a".into()],
    };
    let bytes = bincode::serde::encode_to_vec(&c, bincode::config::standard()).unwrap();
    let (back, _): (Content, usize) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(back, c);
    assert_eq!(wire_size(&c), bytes.len());
}

fn record(i: u8) -> ContainerRecord {
    ContainerRecord {
        id: format!("{i:012}"),
        name: format!("hms.exp-vm1-c{i}"),
        image: "hms-test:latest".into(),
        host: "vm1".into(),
        ip: Some(format!("172.17.0.{i}")),
        state: ContainerState::Running,
        packet_loss: Some(0.0),
        threshold: 30,
        restarts: 0,
        last_restart: None,
        probe: None,
        response_ms: None,
        workload: None,
        cpu_percent: None,
        memory_bytes: None,
        anomaly: None,
        full_id: format!("{i:064}"),
    }
}

fn state(i: u8) -> ContainerState {
    use ContainerState::*;
    [Running, Restarting, Stopped, Ignored, Quarantined, Unknown][usize::from(i % 6)]
}

proptest::proptest! {
    #[test]
    fn a_patch_turns_the_old_record_into_the_new(
        s in 0u8..6, loss in proptest::option::of(0.0f64..=100.0), th in 0u8..=100, restarts in 0u64..1000,
        last in proptest::option::of((0i64..4_000_000_000, 0u32..1_000_000_000)),
        ip in proptest::option::of(proptest::array::uniform4(0u8..=255)),
    ) {
        let old = record(1);
        let last = last.and_then(|(secs, nanos)| Stamp { secs, nanos }.text());
        let ip = ip.map(|o| std::net::Ipv4Addr::from(o).to_string());
        let new = ContainerRecord {
            state: state(s), packet_loss: loss, threshold: th, restarts, last_restart: last, ip, ..old.clone()
        };
        let patch = ContainerPatch::diff(&old, &new).unwrap();
        let mut patched = old.clone();
        patch.apply(&mut patched);
        proptest::prop_assert_eq!(&patched, &new);
        proptest::prop_assert_eq!(round_trip(&patch), patch.clone());
        proptest::prop_assert!(wire_size(&patch) <= wire_size(&new));
    }
}

#[test]
fn a_change_outside_the_patch_needs_the_whole_record() {
    let old = record(1);
    let renamed = ContainerRecord { name: "other".into(), ..old.clone() };
    assert_eq!(ContainerPatch::diff(&old, &renamed), None);
    let restarted = ContainerRecord { restarts: 1, state: ContainerState::Restarting, ..old.clone() };
    let patch = ContainerPatch::diff(&old, &restarted).unwrap();
    assert!(wire_size(&patch) * 5 < wire_size(&restarted), "{} vs {}", wire_size(&patch), wire_size(&restarted));
    // texts the compact encodings cannot give back exactly
    for odd in [
        ContainerRecord { last_restart: Some("yesterday".into()), ..old.clone() },
        ContainerRecord { last_restart: Some("2026-01-01T00:00:00+01:00".into()), ..old.clone() },
        ContainerRecord { ip: Some("172.017.0.1".into()), ..old.clone() },
    ] {
        assert_eq!(ContainerPatch::diff(&old, &odd), None, "{odd:?}");
    }
}

#[test]
fn a_restart_patch_carries_its_time_and_address_compactly() {
    let old = record(1);
    let restarted = ContainerRecord {
        restarts: 1,
        last_restart: Some("2026-11-23T17:51:01.603839123Z".into()),
        ip: Some("172.17.0.23".into()),
        ..old.clone()
    };
    let patch = ContainerPatch::diff(&old, &restarted).unwrap();
    let mut patched = old.clone();
    patch.apply(&mut patched);
    assert_eq!(patched, restarted);
    // id 13, restarts 2, time 12, address 7, empty fields 8
    assert!(wire_size(&patch) <= 43, "{} bytes", wire_size(&patch));
}

fn round_trip<T: Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
    let bytes = bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap();
    bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap().0
}

#[test]
fn antagonist_commands_and_answers_round_trip_through_bincode() {
    use crate::antagonist::plan::LossScope;
    let patch = ConfigPatch {
        scenario: Some("test_high_high".into()),
        heavy: Some(50.0),
        loss_scope: Some(LossScope::Container),
        run_time: Some(30.0),
        seed: Some(u64::MAX),
        ..ConfigPatch::default()
    };
    for cmd in [
        Command::AntagonistStart(Some(patch.clone())),
        Command::AntagonistStart(None),
        Command::AntagonistConfigure(patch),
        Command::AntagonistStop,
        Command::AntagonistStatus,
        Command::Attacks { since: Some("2026-01-01T00:00:00Z".into()) },
    ] {
        assert_eq!(round_trip(&cmd), cmd);
    }
    let status = AntagonistStatus {
        host: "vm1".into(),
        running: true,
        config: AntagonistConfig::default(),
        targets: 3,
        active: 1,
        attacks: AttackCounts { shutdown: 2, loss: 1, faults: 0, failed: 0, interrupted: 4 },
        started_at: Some("2026-01-01T00:00:00Z".into()),
        method: "nftables".into(),
    };
    let ok =
        CommandOk { container: None, antagonist: Some(status), attacks: Some(vec![]), series: None, anomalies: None };
    assert_eq!(round_trip(&ok), ok);
}
