//! Actor-level behaviour over the in-memory runtime and prober, in paused (virtual) time.

mod common;

use std::time::Duration;

use common::{FakeFleet, eventually, test_manager_config};
use hms::model::{ContainerState, Health, Threshold};
use hms::runtime::fake::Op;

fn starts_of(ops: &[Op], id: &str) -> usize {
    ops.iter().filter(|op| op.id() == id && matches!(op, Op::Start(_) | Op::Restart(_))).count()
}

#[tokio::test(start_paused = true)]
async fn crashed_container_is_started_again_at_once() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("web", &[]);
    eventually(Duration::from_secs(5), "web is tracked", || async { fleet.record("web").await.is_some() }).await;
    fleet.runtime.crash(&id);
    eventually(Duration::from_millis(200), "web running again", || async {
        fleet.runtime.state(&id) == Some(hms::model::DockerState::Running)
    })
    .await;
    assert_eq!(fleet.runtime.ops(), vec![Op::Start(id.clone())]);
    let rec = fleet.record("web").await.unwrap();
    assert_eq!((rec.restarts, rec.state), (1, ContainerState::Running));
    assert!(rec.last_restart.is_some());
}

#[tokio::test(start_paused = true)]
async fn container_dying_on_every_start_ends_quarantined_without_a_tight_loop() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("flappy", &[]);
    eventually(Duration::from_secs(5), "tracked", || async { fleet.record("flappy").await.is_some() }).await;
    fleet.runtime.die_on_start(&id, true);
    let t0 = tokio::time::Instant::now();
    fleet.runtime.crash(&id);
    eventually(Duration::from_secs(30), "flappy quarantined", || async {
        fleet.record("flappy").await.is_some_and(|r| r.state == ContainerState::Quarantined)
    })
    .await;
    // back-offs 0, 100, 200, 400, 800 ms less at most 20 % jitter: the five restarts span >= 1.2 s
    assert!(t0.elapsed() >= Duration::from_millis(1200), "restarts too fast: {:?}", t0.elapsed());
    assert_eq!(starts_of(&fleet.runtime.ops(), &id), 5);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(starts_of(&fleet.runtime.ops(), &id), 5, "a quarantined container is not restarted");
    assert_eq!(fleet.record("flappy").await.unwrap().restarts, 5);
}

#[tokio::test(start_paused = true)]
async fn containers_stopped_through_the_api_are_started_every_time_and_never_quarantined() {
    // an antagonist stopping it every 2 s: far more often than the quarantine's 5 restarts a minute
    stopped_through_the_api_ten_times(Duration::from_secs(2)).await;
}

#[tokio::test(start_paused = true)]
async fn a_stop_right_after_our_own_start_is_still_someone_elses() {
    // the stop follows the `start` event of our restart by 100 ms: its `kill` cannot be ours
    stopped_through_the_api_ten_times(Duration::from_millis(100)).await;
}

async fn stopped_through_the_api_ten_times(gap: Duration) {
    use hms::runtime::ContainerRuntime;
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("target", &[]);
    eventually(Duration::from_secs(5), "tracked", || async { fleet.record("target").await.is_some() }).await;
    for round in 1..=10 {
        fleet.runtime.stop(&id, Duration::from_secs(1)).await.unwrap();
        eventually(Duration::from_millis(200), "started again at once", || async {
            fleet.runtime.state(&id) == Some(hms::model::DockerState::Running)
        })
        .await;
        assert_eq!(starts_of(&fleet.runtime.ops(), &id), round);
        tokio::time::sleep(gap).await;
    }
    let rec = fleet.record("target").await.unwrap();
    assert_eq!((rec.restarts, rec.state), (10, ContainerState::Running));
}

#[tokio::test(start_paused = true)]
async fn user_monitor_releases_a_quarantined_container() {
    use hms::actors::host::manager::HostMsg;
    use hms::actors::protocol::Command;
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("flappy", &[]);
    eventually(Duration::from_secs(5), "tracked", || async { fleet.record("flappy").await.is_some() }).await;
    fleet.runtime.die_on_start(&id, true);
    fleet.runtime.crash(&id);
    eventually(Duration::from_secs(30), "quarantined", || async {
        fleet.record("flappy").await.is_some_and(|r| r.state == ContainerState::Quarantined)
    })
    .await;
    fleet.runtime.die_on_start(&id, false);
    let res = fleet.node.manager.call(|r| HostMsg::Command(Command::Monitor("flappy".into()), r), None).await;
    assert!(matches!(res, Ok(ractor::rpc::CallResult::Success(Ok(_)))), "{res:?}");
    eventually(Duration::from_secs(5), "running after release", || async {
        fleet.record("flappy").await.is_some_and(|r| r.state == ContainerState::Running)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_death_while_the_event_stream_is_down_is_healed_after_reconnect() {
    let mut config = test_manager_config("h", None);
    config.resync = Duration::from_secs(3600);
    let fleet = FakeFleet::start(config).await;
    let id = fleet.runtime.add("web", &[]);
    eventually(Duration::from_secs(5), "tracked", || async { fleet.record("web").await.is_some() }).await;
    fleet.runtime.refuse_streams(true);
    fleet.runtime.drop_streams();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fleet.runtime.open_streams(), 0);
    fleet.runtime.crash(&id); // no stream is open: the `die` event is lost
    fleet.runtime.refuse_streams(false);
    eventually(Duration::from_secs(10), "healed by the resync of the reconnect", || async {
        fleet.runtime.state(&id) == Some(hms::model::DockerState::Running)
    })
    .await;
    assert_eq!(fleet.runtime.ops(), vec![Op::Start(id)]);
    eventually(Duration::from_secs(10), "stream reopened", || async { fleet.runtime.open_streams() == 1 }).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_probe_actor_is_restarted() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("web", &[]);
    let ip = fleet.ip(&id).await;
    fleet.prober.panic_next(ip, 3);
    eventually(Duration::from_secs(20), "probe survived three panics", || async {
        fleet.prober.windows(ip) >= 5 && fleet.record("web").await.is_some_and(|r| r.packet_loss == Some(0.0))
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn many_deaths_at_once_are_restarted_a_few_at_a_time() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let ids: Vec<String> = (0..30).map(|i| fleet.runtime.add(&format!("c{i}"), &[])).collect();
    eventually(Duration::from_secs(5), "all tracked", || async { fleet.record("c29").await.is_some() }).await;
    fleet.runtime.set_op_latency(Duration::from_millis(500));
    ids.iter().for_each(|id| fleet.runtime.crash(id));
    eventually(Duration::from_secs(10), "all running again", || async {
        ids.iter().all(|id| fleet.runtime.state(id) == Some(hms::model::DockerState::Running))
    })
    .await;
    assert_eq!(fleet.runtime.max_in_flight(), hms::actors::host::manager::RESTARTS_IN_FLIGHT);
    assert!(ids.iter().all(|id| starts_of(&fleet.runtime.ops(), id) == 1), "{:?}", fleet.runtime.ops());
}

#[tokio::test(start_paused = true)]
async fn loss_on_most_of_a_large_host_restarts_nothing_until_it_is_local() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let ids: Vec<String> = (0..24).map(|i| fleet.runtime.add(&format!("c{i}"), &[])).collect();
    let mut ips = Vec::new();
    for id in &ids {
        ips.push(fleet.ip(id).await);
    }
    eventually(Duration::from_secs(5), "all probed", || async { ips.iter().all(|ip| fleet.prober.windows(*ip) >= 1) })
        .await;
    ips.iter().for_each(|ip| fleet.prober.set_loss(*ip, 60.0));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(fleet.runtime.ops().is_empty(), "host-wide loss restarted {:?}", fleet.runtime.ops());
    // the host recovers but for two containers: only they are restarted (until quarantined)
    ips[2..].iter().for_each(|ip| fleet.prober.set_loss(*ip, 0.0));
    eventually(Duration::from_secs(10), "the two restarted", || async { fleet.runtime.ops().len() >= 2 }).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let restarted: std::collections::BTreeSet<String> =
        fleet.runtime.ops().iter().map(|op| op.id().to_owned()).collect();
    assert_eq!(restarted, ids[..2].iter().cloned().collect());
}

#[tokio::test(start_paused = true)]
async fn loss_at_threshold_exactly_never_restarts() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("web", &[]);
    fleet.prober.set_loss(fleet.ip(&id).await, 30.0);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(fleet.runtime.ops().is_empty(), "{:?}", fleet.runtime.ops());
    assert_eq!(fleet.record("web").await.unwrap().packet_loss, Some(30.0));
}

#[tokio::test(start_paused = true)]
async fn loss_above_threshold_restarts_after_confirm_windows() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("web", &[]);
    let ip = fleet.ip(&id).await;
    eventually(Duration::from_secs(5), "probed", || async { fleet.prober.windows(ip) >= 1 }).await;
    fleet.prober.set_loss(ip, 60.0);
    let t0 = tokio::time::Instant::now();
    eventually(Duration::from_secs(5), "restarted", || async { !fleet.runtime.ops().is_empty() }).await;
    assert!(t0.elapsed() <= Duration::from_secs(3), "took {:?}", t0.elapsed());
    assert!(fleet.prober.windows(ip) >= 3, "needs two windows over threshold");
    assert_eq!(fleet.runtime.ops(), vec![Op::Restart(id)]);
}

#[tokio::test(start_paused = true)]
async fn persistent_link_loss_backs_off_then_quarantines_instead_of_storming() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("web", &[]);
    fleet.prober.set_loss(fleet.ip(&id).await, 100.0);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(starts_of(&fleet.runtime.ops(), &id), 5);
    assert_eq!(fleet.record("web").await.unwrap().state, ContainerState::Quarantined);
    // a quarantined container someone stops is started at once (stopped it is of no use), and
    // the quarantine against the loss stays
    use hms::runtime::ContainerRuntime;
    fleet.runtime.stop(&id, Duration::from_secs(1)).await.unwrap();
    eventually(Duration::from_millis(200), "started again at once", || async {
        fleet.runtime.state(&id) == Some(hms::model::DockerState::Running)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(starts_of(&fleet.runtime.ops(), &id), 6, "one start, no loss restarts");
    assert_eq!(fleet.record("web").await.unwrap().state, ContainerState::Quarantined);
}

#[tokio::test(start_paused = true)]
async fn label_threshold_overrides_the_host_threshold() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("tolerant", &[("hms.threshold", "80")]);
    fleet.prober.set_loss(fleet.ip(&id).await, 60.0);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(fleet.runtime.ops().is_empty());
    assert_eq!(fleet.record("tolerant").await.unwrap().threshold, 80);
}

#[tokio::test(start_paused = true)]
async fn unhealthy_container_is_restarted() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("web", &[]);
    eventually(Duration::from_secs(5), "tracked", || async { fleet.record("web").await.is_some() }).await;
    fleet.runtime.set_health(&id, Health::Unhealthy);
    eventually(Duration::from_secs(2), "restarted", || async { fleet.runtime.ops() == vec![Op::Restart(id.clone())] })
        .await;
}

#[tokio::test(start_paused = true)]
async fn ignored_container_is_never_touched() {
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("skip", &[("hms.ignore", "true")]);
    fleet.prober.set_loss(fleet.ip(&id).await, 100.0);
    eventually(Duration::from_secs(5), "tracked", || async { fleet.record("skip").await.is_some() }).await;
    fleet.runtime.crash(&id);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(fleet.runtime.ops().is_empty());
    assert_eq!(fleet.record("skip").await.unwrap().state, ContainerState::Ignored);
    assert_eq!(fleet.prober.windows(fleet.ip(&id).await), 0, "ignored containers are not probed");
}

#[tokio::test(start_paused = true)]
async fn selector_limits_the_scope() {
    let sel = hms::runtime::Selector { key: "hms.host".into(), value: "vm1".into() };
    let fleet = FakeFleet::start(test_manager_config("h", Some(sel))).await;
    let mine = fleet.runtime.add("mine", &[("hms.host", "vm1")]);
    let other = fleet.runtime.add("other", &[("hms.host", "vm2")]);
    eventually(Duration::from_secs(5), "mine tracked", || async { fleet.record("mine").await.is_some() }).await;
    fleet.runtime.crash(&other);
    fleet.runtime.crash(&mine);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(fleet.runtime.ops(), vec![Op::Start(mine)]);
    assert!(fleet.record("other").await.is_none());
}

#[tokio::test(start_paused = true)]
async fn controller_view_follows_the_host_within_the_aggregation_window() {
    use hms::actors::controller::ControllerMsg;
    let fleet = FakeFleet::start(test_manager_config("h", None)).await;
    let id = fleet.runtime.add("web", &[]);
    let controller = fleet.node.controller.clone();
    let fleet_view = || async {
        match controller.call(ControllerMsg::Fleet, None).await {
            Ok(ractor::rpc::CallResult::Success(f)) => f,
            other => panic!("{other:?}"),
        }
    };
    eventually(Duration::from_secs(2), "controller sees web", || async {
        fleet_view().await.containers.get("h").is_some_and(|c| c.iter().any(|r| r.name == "web"))
    })
    .await;
    fleet.runtime.die_on_start(&id, true);
    fleet.runtime.crash(&id);
    eventually(Duration::from_secs(30), "controller sees quarantine", || async {
        let f = fleet_view().await;
        f.containers["h"].iter().any(|r| r.name == "web" && r.state == ContainerState::Quarantined)
    })
    .await;
    let stats = match controller.call(ControllerMsg::Stats, None).await {
        Ok(ractor::rpc::CallResult::Success(s)) => s,
        other => panic!("{other:?}"),
    };
    assert!(stats.pulls >= 2 && stats.bytes > 0 && stats.messages > stats.pulls, "{stats:?}");
    assert_eq!(fleet_view().await.hosts[0].status, hms::model::HostStatus::Online);
}

#[tokio::test(start_paused = true)]
async fn threshold_and_ignore_list_survive_a_restart() {
    use hms::actors::host::manager::HostMsg;
    use hms::actors::protocol::Command;
    let dir = tempfile::tempdir().unwrap();
    let runtime = {
        let fleet = FakeFleet::start_with(test_manager_config("h", None), Default::default(), Some(dir.path())).await;
        fleet.runtime.add("web", &[]);
        eventually(Duration::from_secs(5), "tracked", || async { fleet.record("web").await.is_some() }).await;
        for cmd in [Command::SetThreshold(Threshold::new(55).unwrap()), Command::Ignore("web".into())] {
            let res = fleet.node.manager.call(|r| HostMsg::Command(cmd, r), None).await;
            assert!(matches!(res, Ok(ractor::rpc::CallResult::Success(Ok(_)))), "{res:?}");
        }
        let again = fleet.node.manager.call(|r| HostMsg::Command(Command::Ignore("web".into()), r), None).await;
        assert!(matches!(again, Ok(ractor::rpc::CallResult::Success(Err(_)))), "ignoring twice is a conflict");
        let rt = fleet.runtime.clone();
        fleet.node.stop().await;
        rt
    };
    let _ = runtime;
    let fleet = FakeFleet::start_with(test_manager_config("h", None), Default::default(), Some(dir.path())).await;
    fleet.runtime.add("web", &[]);
    eventually(Duration::from_secs(5), "tracked again", || async {
        fleet.record("web").await.is_some_and(|r| r.state == ContainerState::Ignored && r.threshold == 55)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn heal_mode_off_watches_but_never_restarts() {
    let config = test_manager_config("h", None).with_heal(hms::config::HealMode::Off);
    let fleet = FakeFleet::start(config).await;
    let id = fleet.runtime.add("web", &[]);
    eventually(Duration::from_secs(5), "tracked", || async { fleet.record("web").await.is_some() }).await;
    fleet.runtime.crash(&id);
    eventually(Duration::from_secs(5), "reported stopped", || async {
        fleet.record("web").await.is_some_and(|r| r.state == ContainerState::Stopped)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(fleet.runtime.ops().is_empty(), "healing is off: {:?}", fleet.runtime.ops());
}

#[tokio::test(start_paused = true)]
async fn seed_mode_polls_and_restarts_without_back_off_or_quarantine() {
    let config = test_manager_config("h", None).with_heal(hms::config::HealMode::Seed);
    let fleet = FakeFleet::start(config).await;
    let id = fleet.runtime.add("flappy", &[]);
    eventually(Duration::from_secs(5), "tracked", || async { fleet.record("flappy").await.is_some() }).await;
    fleet.runtime.drop_streams(); // the seed has no event stream: only the 0.2 s sweep finds deaths
    fleet.runtime.die_on_start(&id, true);
    fleet.runtime.crash(&id);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let starts = starts_of(&fleet.runtime.ops(), &id);
    // one restart per 0.2 s sweep, give or take the sweep phase: the storm the seed was known for
    assert!((40..=51).contains(&starts), "seed mode restarted {starts} times in 10 s");
    assert_ne!(fleet.record("flappy").await.unwrap().state, ContainerState::Quarantined);
}
