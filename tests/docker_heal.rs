//! Healing against the real Docker engine: containers built locally, probed with real ICMP,
//! packet loss injected with nftables. Every container, image tag and nft table is removed.

mod common;

use std::time::{Duration, Instant};

use common::{
    DockerFixture, Loss, docker, docker_node, docker_state, eventually, record, started_at, test_manager_config,
};
use hms::model::ContainerState;

/// Waits until the manager publishes the container as running with a probe result.
async fn until_probed(node: &hms::node::Node, name: &str) {
    eventually(Duration::from_secs(10), "container monitored and probed", || async {
        record(&node.manager, name).await.is_some_and(|r| r.state == ContainerState::Running && r.packet_loss.is_some())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_container_is_running_again_within_one_second() {
    let mut fx = DockerFixture::new();
    let name = fx.run(&[]);
    let node = docker_node(&fx, None).await;
    until_probed(&node, &name).await;
    let before = started_at(&name);
    let t0 = Instant::now();
    docker(&["kill", &name]);
    eventually(Duration::from_secs(5), "restarted", || async {
        started_at(&name) != before && docker_state(&name) == "running"
    })
    .await;
    let took = t0.elapsed();
    assert!(took <= Duration::from_secs(1) * common::patience(), "kill to running took {took:?}");
    eventually(Duration::from_secs(3), "restart recorded", || async {
        record(&node.manager, &name).await.is_some_and(|r| r.restarts == 1 && r.state == ContainerState::Running)
    })
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_container_is_started_again() {
    let mut fx = DockerFixture::new();
    let name = fx.run(&[]);
    let node = docker_node(&fx, None).await;
    until_probed(&node, &name).await;
    docker(&["stop", &name]);
    eventually(Duration::from_secs(3), "started again", || async { docker_state(&name) == "running" }).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_percent_loss_restarts_within_three_seconds() {
    let mut fx = DockerFixture::new();
    let name = fx.run(&[]);
    let node = docker_node(&fx, None).await;
    until_probed(&node, &name).await;
    let before = started_at(&name);
    let loss = Loss::inject(fx.ip(&name), 60).await;
    let t0 = Instant::now();
    eventually(Duration::from_secs(6), "restarted for packet loss", || async { started_at(&name) != before }).await;
    let took = t0.elapsed();
    drop(loss);
    assert!(took <= Duration::from_secs(3) * common::patience(), "injection to restart took {took:?}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_loss_for_thirty_seconds_never_restarts() {
    let mut fx = DockerFixture::new();
    let name = fx.run(&[]);
    let node = docker_node(&fx, None).await;
    until_probed(&node, &name).await;
    let before = started_at(&name);
    let loss = Loss::inject(fx.ip(&name), 10).await;
    let mut seen_loss = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = record(&node.manager, &name).await.expect("still monitored");
        seen_loss |= r.packet_loss.is_some_and(|l| l > 0.0);
        assert_eq!(r.restarts, 0, "restarted under 10 % loss: {r:?}");
    }
    drop(loss);
    assert_eq!(started_at(&name), before);
    assert!(seen_loss, "the injected loss was never measured");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_container_is_never_touched() {
    let mut fx = DockerFixture::new();
    let ignored = fx.run(&[("hms.ignore", "true")]);
    let watched = fx.run(&[]);
    let node = docker_node(&fx, None).await;
    until_probed(&node, &watched).await;
    assert_eq!(record(&node.manager, &ignored).await.map(|r| r.state), Some(ContainerState::Ignored));
    docker(&["stop", &ignored]);
    docker(&["stop", &watched]);
    eventually(Duration::from_secs(3), "watched one healed", || async { docker_state(&watched) == "running" }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(docker_state(&ignored), "exited");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_dying_on_every_start_ends_quarantined() {
    let mut fx = DockerFixture::new();
    let name = fx.run_with(&[], &[], &["sh", "-c", "sleep 1; exit 3"]);
    let mut config = test_manager_config("local", Some(fx.selector()));
    config.policy = common::quick_policy(3);
    let node = docker_node(&fx, Some(config)).await;
    eventually(Duration::from_secs(20), "quarantined", || async {
        record(&node.manager, &name).await.is_some_and(|r| r.state == ContainerState::Quarantined)
    })
    .await;
    let r = record(&node.manager, &name).await.unwrap();
    assert_eq!(r.restarts, 3);
    let after = started_at(&name);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(started_at(&name), after, "a quarantined container is not started again");
    node.stop().await;
}
