//! The fleet view's decisions, without actors: links are plain numbers.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::*;
use crate::actors::protocol::ContainerPatch;
use crate::model::ContainerState;

impl Link for u32 {
    type Id = u32;
    fn id(&self) -> u32 {
        *self
    }
}

const WINDOW: Duration = Duration::from_millis(500);
const HEARTBEAT: Duration = Duration::from_secs(1);
const WALL: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn view(t0: Instant) -> FleetView<u32> {
    FleetView::new(BTreeMap::new(), WINDOW, HEARTBEAT * 3, t0)
}

fn record(i: u8) -> ContainerRecord {
    ContainerRecord {
        id: format!("{i:012}"),
        name: format!("c{i}"),
        image: "img".into(),
        host: "vm1".into(),
        ip: None,
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

fn content(version: u64, full: bool, containers: Vec<ContainerRecord>) -> Content {
    Content { host: "vm1".into(), version, threshold: 30, full, containers, patches: vec![], removed: vec![] }
}

/// The registered host's containers in the view.
fn containers(v: &FleetView<u32>) -> Vec<ContainerRecord> {
    v.fleet().containers.get("vm1").cloned().unwrap_or_default()
}

fn status(v: &FleetView<u32>, host: &str) -> Option<HostStatus> {
    v.fleet().hosts.iter().find(|h| h.name == host).map(|h| h.status)
}

/// A view with `vm1` registered on link 1 and its first pull merged.
fn registered(t0: Instant, records: Vec<ContainerRecord>) -> FleetView<u32> {
    let mut v = view(t0);
    v.register("vm1", 1, t0, WALL);
    let pulls = v.close_window(t0 + WINDOW);
    assert_eq!(pulls.len(), 1);
    v.pulled("vm1", pulls[0].epoch, Ok(content(1, true, records)), t0 + WINDOW).unwrap();
    v
}

#[test]
fn a_registration_puts_the_host_online_and_opens_the_window() {
    let t0 = Instant::now();
    let mut v = view(t0);
    let changes = v.register("vm1", 7, t0, WALL);
    assert_eq!(changes.close_after, Some(WINDOW));
    assert!(changes.persist_known, "a new host is stored");
    assert!(matches!(&changes.events[..], [FleetEvent::Host { host }] if host.status == HostStatus::Online));
    let route = v.route("vm1").unwrap();
    assert_eq!((route.manager, route.request.since), (7, None));
    assert!(!v.register("vm1", 8, t0, WALL).persist_known, "a known host is not stored again");
    assert_eq!(v.known_hosts().len(), 1);
}

#[test]
fn three_missed_heartbeats_take_a_host_offline_two_do_not() {
    let t0 = Instant::now();
    let mut v = registered(t0, vec![]);
    v.heartbeat(&Heartbeat { host: "vm1".into(), version: 1, signals: Default::default() }, t0, WALL);
    assert!(v.liveness(t0 + ms(2_500)).is_empty(), "two missed: online");
    assert_eq!(status(&v, "vm1"), Some(HostStatus::Online));
    let events = v.liveness(t0 + ms(3_100));
    assert!(matches!(&events[..], [FleetEvent::Host { host }] if host.status == HostStatus::Offline));
    assert!(matches!(v.route("vm1"), Err(ControllerError::Offline(_))));
    assert!(v.liveness(t0 + ms(9_000)).is_empty(), "offline once");
    let back =
        v.heartbeat(&Heartbeat { host: "vm1".into(), version: 1, signals: Default::default() }, t0 + ms(9_000), WALL);
    assert_eq!(back.events.len(), 1, "online again");
    assert_eq!(back.close_after, Some(WINDOW), "a host coming back is pulled");
    assert!(v.route("vm1").is_ok());
}

#[test]
fn a_stale_link_down_is_ignored() {
    let t0 = Instant::now();
    let mut v = view(t0);
    v.register("vm1", 1, t0, WALL);
    v.register("vm1", 2, t0, WALL);
    assert_eq!(v.link_down("vm1", &1), None, "the replaced link");
    assert_eq!(status(&v, "vm1"), Some(HostStatus::Online));
    assert!(v.link_down("vm1", &2).is_some());
    assert_eq!(status(&v, "vm1"), Some(HostStatus::Offline));
    assert_eq!(v.link_down("vm1", &2), None, "already offline");
    assert_eq!(v.link_down("nobody", &2), None);
}

#[test]
fn a_window_pulls_each_announcing_host_since_its_version() {
    let t0 = Instant::now();
    let mut v = registered(t0, vec![record(1)]);
    assert_eq!(v.notice(&UpdateNotice { host: "vm1".into(), version: 2 }, t0), Some(WINDOW));
    assert_eq!(v.notice(&UpdateNotice { host: "vm1".into(), version: 3 }, t0), None, "the window is open");
    assert_eq!(v.notice(&UpdateNotice { host: "gone".into(), version: 3 }, t0), None, "unknown hosts are not pulled");
    let pulls = v.close_window(t0 + WINDOW);
    assert_eq!(pulls.iter().map(|p| (p.host.as_str(), p.request.since)).collect::<Vec<_>>(), [("vm1", Some(1))]);
    let stats = v.stats(t0 + WINDOW);
    assert_eq!((stats.windows, stats.pulls, stats.notices), (2, 2, 3));
    assert!(stats.bytes > 0 && stats.messages >= 5, "{stats:?}");
}

#[test]
fn a_delta_adds_patches_and_removes_and_a_full_content_replaces() {
    let t0 = Instant::now();
    let mut v = registered(t0, vec![record(1), record(2)]);
    let mut delta = content(2, false, vec![record(3)]);
    delta.patches = vec![ContainerPatch { id: record(1).id, restarts: Some(4), ..ContainerPatch::default() }];
    delta.removed = vec![record(2).full_id];
    let epoch = v.route("vm1").unwrap().epoch;
    let (merge, events) = v.merge("vm1", epoch, delta);
    assert_eq!(merge, Merge::Applied);
    let names: Vec<(String, u64)> = containers(&v).into_iter().map(|c| (c.name, c.restarts)).collect();
    assert_eq!(names, [("c1".to_owned(), 4), ("c3".to_owned(), 0)]);
    let FleetEvent::Containers { containers: changed, removed, .. } = &events[0] else { panic!("{events:?}") };
    assert_eq!((changed.len(), removed.len()), (2, 1));
    assert_eq!(v.merge("vm1", epoch, content(3, true, vec![record(9)])).0, Merge::Applied);
    assert_eq!(containers(&v), vec![record(9)]);
}

#[test]
fn a_patch_of_an_unknown_record_makes_the_next_pull_full() {
    let t0 = Instant::now();
    let mut v = registered(t0, vec![record(1)]);
    let mut delta = content(2, false, vec![]);
    delta.patches = vec![ContainerPatch { id: "nothere".into(), restarts: Some(1), ..ContainerPatch::default() }];
    let epoch = v.route("vm1").unwrap().epoch;
    assert_eq!(v.merge("vm1", epoch, delta).0, Merge::AppliedNextFull);
    assert_eq!(v.route("vm1").unwrap().request.since, None);
}

#[test]
fn an_older_content_or_one_of_a_replaced_link_is_dropped() {
    let t0 = Instant::now();
    let mut v = registered(t0, vec![record(1)]);
    let epoch = v.route("vm1").unwrap().epoch;
    assert_eq!(v.merge("vm1", epoch, content(5, true, vec![record(5)])).0, Merge::Applied);
    assert_eq!(v.merge("vm1", epoch, content(4, true, vec![record(4)])), (Merge::Older, vec![]));
    assert_eq!(containers(&v), vec![record(5)]);
    v.register("vm1", 2, t0, WALL);
    assert_eq!(v.merge("vm1", epoch, content(9, true, vec![])).0, Merge::OtherLink);
    assert_eq!(v.merge("vm1", epoch + 1, content(1, true, vec![record(1)])).0, Merge::Applied, "a restarted host");
}

#[test]
fn a_failed_pull_is_counted_and_ends_the_stale_period() {
    let t0 = Instant::now();
    let mut v = view(t0);
    v.register("vm1", 1, t0, WALL);
    let pull = v.close_window(t0 + WINDOW).remove(0);
    let res = v.pulled("vm1", pull.epoch, Err(ControllerError::Timeout("vm1".into())), t0 + ms(800));
    assert!(matches!(res, Err(ControllerError::Timeout(_))));
    let stats = v.stats(t0 + ms(5_000));
    assert_eq!((stats.pull_failures, stats.stale_seconds), (1, 0.8));
}

#[test]
fn the_pull_after_a_command_is_counted_without_touching_the_window() {
    let t0 = Instant::now();
    let mut v = registered(t0, vec![record(1)]);
    let pull = v.route("vm1").unwrap();
    let changed = ContainerRecord { state: ContainerState::Ignored, ..record(1) };
    let (merge, _) = v.pulled_after_command(&pull, Ok(content(2, false, vec![changed.clone()]))).unwrap();
    assert_eq!(merge, Merge::Applied);
    assert_eq!(containers(&v), vec![changed]);
    let stats = v.stats(t0 + ms(5_000));
    assert_eq!((stats.pulls, stats.windows), (2, 1));
    assert_eq!(stats.stale_seconds, WINDOW.as_secs_f64());
}

#[test]
fn commands_are_routed_to_online_hosts_only() {
    let t0 = Instant::now();
    let mut v = view(t0);
    assert!(matches!(v.route("vm1"), Err(ControllerError::UnknownHost(_))));
    v.add_host("vm1", None, t0).unwrap();
    assert!(matches!(v.route("vm1"), Err(ControllerError::Offline(_))), "known, never registered");
    v.register("vm1", 3, t0, WALL);
    assert_eq!(v.route("vm1").unwrap().manager, 3);
}

#[test]
fn hosts_are_added_and_removed_with_what_to_store() {
    let t0 = Instant::now();
    let mut v = view(t0);
    assert!(matches!(v.known_with("a/b", None), Err(ControllerError::InvalidHostName(_))));
    assert!(matches!(v.add_host("", None, t0), Err(ControllerError::InvalidHostName(_))));
    let stored = v.known_with("far", Some("10.0.0.1:7946")).unwrap().expect("a new host is stored");
    assert_eq!(stored["far"].endpoint.as_deref(), Some("10.0.0.1:7946"));
    assert!(v.known_hosts().is_empty(), "nothing changes before it is stored");
    let (record, _) = v.add_host("far", Some("10.0.0.1:7946".into()), t0).unwrap();
    assert_eq!((record.status, record.endpoint.as_deref()), (HostStatus::Offline, Some("10.0.0.1:7946")));
    assert_eq!(v.known_with("far", None).unwrap(), None, "nothing new to store");
    assert_eq!(v.known_without("far").unwrap().map(|k| k.len()), Some(0));
    v.remove_host("far").unwrap();
    assert!(matches!(v.known_without("far"), Err(ControllerError::UnknownHost(_))));
    assert!(matches!(v.remove_host("far"), Err(ControllerError::UnknownHost(_))));
}

#[test]
fn the_aggregation_window_is_validated_and_applies_to_the_next_window() {
    let t0 = Instant::now();
    let mut v = registered(t0, vec![]);
    assert!(matches!(v.set_aggregation(Duration::ZERO), Err(ControllerError::InvalidAggregation(_))));
    v.set_aggregation(ms(10_000)).unwrap();
    assert_eq!(v.notice(&UpdateNotice { host: "vm1".into(), version: 2 }, t0), Some(ms(10_000)));
    assert_eq!(v.fleet().aggregation, 10.0);
}

#[test]
fn a_snapshot_shares_containers_until_they_change() {
    let t0 = Instant::now();
    let mut v = registered(t0, vec![record(1)]);
    let first = v.snapshot(&FleetSnapshot::default()).expect("a first snapshot");
    assert!(v.snapshot(&first).is_none(), "nothing changed");
    v.heartbeat(
        &Heartbeat { host: "vm1".into(), version: 1, signals: Default::default() },
        t0,
        WALL + Duration::from_secs(1),
    );
    let second = v.snapshot(&first).expect("the heartbeat time changed");
    assert!(Arc::ptr_eq(&first.hosts["vm1"].containers, &second.hosts["vm1"].containers));
    let epoch = v.route("vm1").unwrap().epoch;
    v.merge("vm1", epoch, content(2, false, vec![record(2)]));
    let third = v.snapshot(&second).expect("the content changed");
    assert_eq!(third.hosts["vm1"].containers.len(), 2);
}

#[test]
fn a_heartbeat_ahead_of_the_view_joins_the_window() {
    let t0 = Instant::now();
    let mut v = registered(t0, vec![]);
    let changes = v.heartbeat(&Heartbeat { host: "vm1".into(), version: 1, signals: Default::default() }, t0, WALL);
    assert_eq!(changes, Changes::default(), "up to date");
    let changes = v.heartbeat(&Heartbeat { host: "vm1".into(), version: 4, signals: Default::default() }, t0, WALL);
    assert_eq!(changes.close_after, Some(WINDOW), "a lost notice");
    assert_eq!(
        v.heartbeat(&Heartbeat { host: "stranger".into(), version: 1, signals: Default::default() }, t0, WALL),
        Changes::default()
    );
    let stats = v.stats(t0);
    assert_eq!(stats.heartbeats, 3);
    assert!(stats.heartbeat_bytes > 0 && stats.heartbeat_bytes < stats.bytes, "{stats:?}");
}

/// Strategies over a host with up to eight containers.
mod strategies {
    use super::*;

    pub fn records() -> impl Strategy<Value = Vec<ContainerRecord>> {
        prop::collection::btree_set(0u8..8, 0..6).prop_map(|ids| ids.into_iter().map(record).collect())
    }

    fn changed(i: u8, restarts: u64) -> ContainerRecord {
        ContainerRecord { restarts, state: ContainerState::Restarting, ..record(i) }
    }

    /// A delta: records added or changed, patches (some of records the view may lack), removals.
    pub fn delta() -> impl Strategy<Value = Content> {
        let upserts = prop::collection::vec((0u8..8, 0u64..5), 0..4);
        let patches = prop::collection::vec((0u8..10, 0u64..5), 0..4);
        let removed = prop::collection::btree_set(0u8..8, 0..3);
        (upserts, patches, removed).prop_map(|(upserts, patches, removed)| Content {
            patches: patches
                .into_iter()
                .map(|(i, n)| ContainerPatch { id: record(i).id, restarts: Some(n), ..ContainerPatch::default() })
                .collect(),
            removed: removed.into_iter().map(|i| record(i).full_id).collect(),
            ..content(2, false, upserts.into_iter().map(|(i, n)| changed(i, n)).collect())
        })
    }

    #[derive(Debug, Clone)]
    pub enum Op {
        Register(u8, u32),
        Add(u8),
        Remove(u8),
        LinkDown(u8, u32),
        Heartbeat(u8),
        Silence(u64),
    }

    pub fn ops() -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            (0u8..4, 0u32..4).prop_map(|(h, l)| Op::Register(h, l)),
            (0u8..4).prop_map(Op::Add),
            (0u8..4).prop_map(Op::Remove),
            (0u8..4, 0u32..4).prop_map(|(h, l)| Op::LinkDown(h, l)),
            (0u8..4).prop_map(Op::Heartbeat),
            (0u64..5_000).prop_map(Op::Silence),
        ];
        prop::collection::vec(op, 0..40)
    }
}

proptest! {
    #[test]
    fn a_delta_applied_twice_changes_nothing(base in strategies::records(), delta in strategies::delta()) {
        let t0 = Instant::now();
        let mut v = registered(t0, base);
        let epoch = v.route("vm1").unwrap().epoch;
        let (first, _) = v.merge("vm1", epoch, delta.clone());
        let (once, since) = (v.fleet(), v.route("vm1").unwrap().request.since);
        let (again, _) = v.merge("vm1", epoch, delta);
        prop_assert_eq!(first, again);
        prop_assert_eq!(format!("{:?}", v.fleet()), format!("{once:?}"));
        prop_assert_eq!(v.route("vm1").unwrap().request.since, since);
    }

    #[test]
    fn a_host_is_never_listed_twice(ops in strategies::ops()) {
        let t0 = Instant::now();
        let mut v = view(t0);
        let mut now = t0;
        let name = |h: u8| format!("h{h}");
        for op in ops {
            match op {
                strategies::Op::Register(h, l) => drop(v.register(&name(h), l, now, WALL)),
                strategies::Op::Add(h) => drop(v.add_host(&name(h), None, now)),
                strategies::Op::Remove(h) => drop(v.remove_host(&name(h))),
                strategies::Op::LinkDown(h, l) => drop(v.link_down(&name(h), &l)),
                strategies::Op::Heartbeat(h) => drop(v.heartbeat(&Heartbeat { host: name(h), version: 0, signals: Default::default() }, now, WALL)),
                strategies::Op::Silence(n) => {
                    now += ms(n);
                    v.liveness(now);
                }
            }
            let fleet = v.fleet();
            let names: Vec<&String> = fleet.hosts.iter().map(|h| &h.name).collect();
            prop_assert!(names.windows(2).all(|w| w[0] < w[1]), "listed twice or out of order: {:?}", names);
            prop_assert!(fleet.containers.keys().eq(names.iter().copied()));
            prop_assert!(v.known_hosts().keys().all(|k| names.contains(&k)), "a known host is not listed");
            let snapshot = v.snapshot(&FleetSnapshot::default()).unwrap();
            prop_assert!(snapshot.hosts.keys().eq(names.iter().copied()));
        }
    }

    #[test]
    fn a_host_goes_offline_after_exactly_the_missed_heartbeats(
        period in 100u64..2_000, missed in 1u32..6, silent in 0u32..8,
    ) {
        let t0 = Instant::now();
        let period = ms(period);
        let mut v: FleetView<u32> = FleetView::new(BTreeMap::new(), WINDOW, period * missed, t0);
        v.register("vm1", 1, t0, WALL);
        v.liveness(t0 + period * silent + period / 2);
        let want = if silent >= missed { HostStatus::Offline } else { HostStatus::Online };
        prop_assert_eq!(status(&v, "vm1"), Some(want));
    }

    #[test]
    fn an_older_content_never_overwrites_a_newer_view(
        a in strategies::records(), b in strategies::records(), va in 1u64..10, vb in 1u64..10,
    ) {
        let t0 = Instant::now();
        let mut v = registered(t0, vec![]);
        let epoch = v.route("vm1").unwrap().epoch;
        v.merge("vm1", epoch, content(va, true, a.clone()));
        let (merge, _) = v.merge("vm1", epoch, content(vb, true, b.clone()));
        prop_assert_eq!(merge == Merge::Older, vb < va);
        prop_assert_eq!(containers(&v), if vb < va { a } else { b });
    }
}

#[test]
fn an_anomaly_that_opens_or_closes_is_its_own_event() {
    let t0 = Instant::now();
    let mut v = registered(t0, vec![record(1), record(2)]);
    let epoch = v.route("vm1").unwrap().epoch;
    let mut delta = content(2, false, vec![]);
    let level = Some(crate::analysis::Level::Sibling);
    delta.patches = vec![ContainerPatch { id: record(1).id, anomaly: Some(level), ..ContainerPatch::default() }];
    let (_, events) = v.merge("vm1", epoch, delta);
    let anomalies: Vec<&FleetEvent> = events.iter().filter(|e| matches!(e, FleetEvent::Anomaly { .. })).collect();
    assert_eq!(
        anomalies,
        [&FleetEvent::Anomaly { host: "vm1".into(), container: record(1).id, name: "c1".into(), level }],
        "only the container whose anomaly changed"
    );
    let mut delta = content(3, false, vec![]);
    delta.patches = vec![ContainerPatch { id: record(1).id, anomaly: Some(None), ..ContainerPatch::default() }];
    let (_, events) = v.merge("vm1", epoch, delta);
    assert!(events.iter().any(|e| matches!(e, FleetEvent::Anomaly { level: None, .. })), "{events:?}");
    let (_, events) = v.merge("vm1", epoch, content(4, false, vec![]));
    assert!(!events.iter().any(|e| matches!(e, FleetEvent::Anomaly { .. })), "nothing changed: {events:?}");
}
