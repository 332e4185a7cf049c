//! The antagonist against the real Docker engine: shutdowns healed, link-scope loss met with
//! back-off, container-scope loss cured by one restart, measured loss matching the configured
//! loss. Every container, image and nft table is removed, also on failure.

mod common;

use std::process::{Command as Cmd, Stdio};
use std::time::{Duration, Instant};

use common::{
    DockerFixture, antagonist_status, command, docker, docker_node, docker_state, eventually, record,
    test_manager_config,
};
use hms::actors::protocol::Command;
use hms::antagonist::inject::{Injector, LossSite, SystemInjector};
use hms::antagonist::plan::{AntagonistConfig, AttackPlan, ConfigPatch, LossScope, Planner};
use hms::antagonist::truth::{AttackKind, Outcome, parse_time};
use hms::model::ContainerState;
use hms::probe::icmp::IcmpProber;
use hms::probe::{Prober, WindowSpec};

/// Deletes an nft table on the host (and in a namespace, when given) on drop.
struct TableGuard {
    table: String,
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        nft_delete(None, &self.table);
    }
}

fn nft_delete(pid: Option<&str>, table: &str) {
    use std::io::Write;
    let mut cmd = match pid {
        Some(pid) => {
            let mut c = Cmd::new("nsenter");
            c.args(["-t", pid, "-n", "nft"]);
            c
        }
        None => Cmd::new("nft"),
    };
    let Ok(mut child) = cmd.args(["-f", "-"]).stdin(Stdio::piped()).stderr(Stdio::null()).spawn() else { return };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("table inet {table} {{}}\ndelete table inet {table}\n").as_bytes());
    }
    let _ = child.wait();
}

async fn until_probed(node: &hms::node::Node, name: &str) {
    eventually(Duration::from_secs(10), "container monitored and probed", || async {
        record(&node.manager, name).await.is_some_and(|r| r.state == ContainerState::Running && r.packet_loss.is_some())
    })
    .await;
}

/// A container of the fixture watched by a node (probed already) whose antagonist's table is
/// removed on drop.
async fn watched(fx: &mut DockerFixture) -> (String, TableGuard, hms::node::Node) {
    let name = fx.run(&[]);
    let config = test_manager_config("local", Some(fx.selector()));
    let guard = TableGuard { table: config.antagonist.table.clone() };
    let node = docker_node(fx, Some(config)).await;
    until_probed(&node, &name).await;
    (name, guard, node)
}

/// One loss attack of `loss` % at `scope`, starting at once and lasting far longer than the test.
fn long_loss(scope: LossScope, loss: f64) -> ConfigPatch {
    ConfigPatch {
        heavy: Some(100.0),
        balance: Some(0.0),
        loss: Some(loss),
        loss_stddev: Some(0.0),
        frequency: Some(0.001),
        duration: Some(3000.0),
        seed: Some(1),
        loss_scope: Some(scope),
        ..ConfigPatch::default()
    }
}

/// The planner is pure: the patch with the first seed (from its own) under which the target's
/// first attack is a loss outlasting the test (the name is random, so the seed is searched).
fn first_loss_lasts(name: &str, patch: &ConfigPatch, at_least: Duration) -> ConfigPatch {
    let from = patch.seed.unwrap_or(0);
    (from..from + 100)
        .map(|seed| ConfigPatch { seed: Some(seed), ..patch.clone() })
        .find(|p| {
            let config = AntagonistConfig::default().patched(p).unwrap();
            let step = Planner::new(&config, name).unwrap().next_step();
            matches!(step.attack, Some(AttackPlan::Loss { duration, .. }) if duration >= at_least)
        })
        .expect("a seed under which the first loss outlasts the test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_attack_is_healed() {
    let mut fx = DockerFixture::new();
    let (name, _guard, node) = watched(&mut fx).await;
    let patch = ConfigPatch {
        heavy: Some(100.0),
        balance: Some(100.0),
        frequency: Some(0.2),
        stop_timeout: Some(1.0),
        ..ConfigPatch::default()
    };
    command(&node.manager, Command::AntagonistStart(Some(patch))).await.unwrap();
    eventually(Duration::from_secs(10), "a shutdown carried out", || async {
        antagonist_status(&node.manager).await.attacks.shutdown >= 1
    })
    .await;
    command(&node.manager, Command::AntagonistStop).await.unwrap();
    eventually(Duration::from_secs(10), "healed after the shutdown", || async {
        docker_state(&name) == "running"
            && record(&node.manager, &name).await.is_some_and(|r| r.restarts >= 1 && r.state == ContainerState::Running)
    })
    .await;
    let log = command(&node.manager, Command::Attacks { since: None }).await.unwrap().attacks.unwrap();
    let shutdown = log.iter().find(|r| r.kind == AttackKind::Shutdown && r.outcome == Outcome::Done).unwrap();
    assert_eq!(shutdown.container_name, name);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_scope_loss_meets_back_off_not_a_restart_storm() {
    let mut fx = DockerFixture::new();
    let name = fx.run(&[]);
    let config = test_manager_config("local", Some(fx.selector()));
    let max_restarts = config.policy.max_restarts();
    let table = config.antagonist.table.clone();
    let _guard = TableGuard { table: table.clone() };
    let node = docker_node(&fx, Some(config)).await;
    until_probed(&node, &name).await;
    let patch = first_loss_lasts(&name, &long_loss(LossScope::Link, 90.0), Duration::from_secs(25));
    command(&node.manager, Command::AntagonistStart(Some(patch))).await.unwrap();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let r = record(&node.manager, &name).await.unwrap();
    eprintln!("link-scope 90 % loss for {:?}: {} restarts, state {:?}", t0.elapsed(), r.restarts, r.state);
    assert!(r.restarts >= 1, "the loss triggered the restart policy");
    assert!(r.restarts <= u64::from(max_restarts) + 2, "{} restarts in 20 s: a storm", r.restarts);
    // the policy gives up on a fault a restart cannot cure (already done in 20 s on an idle machine)
    eventually(Duration::from_secs(15), "quarantined", || async {
        record(&node.manager, &name).await.is_some_and(|r| r.state == ContainerState::Quarantined)
    })
    .await;
    let status = command(&node.manager, Command::AntagonistStop).await.unwrap().antagonist.unwrap();
    assert_eq!(status.attacks.interrupted, 1, "one long loss attack: {status:?}");
    let r = record(&node.manager, &name).await.unwrap();
    assert!(r.restarts <= u64::from(max_restarts), "never more than R restarts in the window: {r:?}");
    assert!(!nft_ruleset().contains(&table), "no rule left after stop");
    node.stop().await;
}

fn nft_ruleset() -> String {
    let out = Cmd::new("nft").args(["list", "ruleset"]).output().expect("nft runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A seed whose first step for `name` attacks at once with a loss outlasting the test, and whose
/// next attempt comes much later (the planner is pure: searching is instant and deterministic).
fn seed_with_one_early_loss(name: &str, base: &ConfigPatch) -> u64 {
    (0..100_000u64)
        .find(|seed| {
            let patch = ConfigPatch { seed: Some(*seed), ..base.clone() };
            let mut p = Planner::new(&AntagonistConfig::default().patched(&patch).unwrap(), name).unwrap();
            let (first, second) = (p.next_step(), p.next_step());
            let long = matches!(first.attack, Some(AttackPlan::Loss { duration, .. }) if duration.as_secs() > 30);
            first.gap < Duration::from_millis(500) && long && second.gap > Duration::from_secs(30)
        })
        .expect("such a seed exists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_scope_loss_is_cured_by_one_restart() {
    let mut fx = DockerFixture::new();
    let (name, _guard, node) = watched(&mut fx).await;
    let base = ConfigPatch { frequency: Some(60.0), ..long_loss(LossScope::Container, 90.0) };
    let patch = ConfigPatch { seed: Some(seed_with_one_early_loss(&name, &base)), ..base };
    command(&node.manager, Command::AntagonistStart(Some(patch))).await.unwrap();
    eventually(Duration::from_secs(10), "restarted for the loss", || async {
        record(&node.manager, &name).await.is_some_and(|r| r.restarts >= 1)
    })
    .await;
    eventually(Duration::from_secs(5), "reachable again after the restart", || async {
        record(&node.manager, &name)
            .await
            .is_some_and(|r| r.state == ContainerState::Running && r.packet_loss.is_some_and(|l| l < 30.0))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = record(&node.manager, &name).await.unwrap();
    assert_eq!(r.restarts, 1, "one restart cured it: {r:?}");
    // the ground truth ends the attack when the restart took the namespace (and the rule) away
    let log = command(&node.manager, Command::Attacks { since: None }).await.unwrap().attacks.unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].kind, log[0].outcome, log[0].scope),
        (AttackKind::Loss, Outcome::Done, Some(LossScope::Container))
    );
    let (end, planned) = (parse_time(&log[0].actual_end).unwrap(), parse_time(&log[0].planned_end).unwrap());
    assert!(end < planned, "ended by the restart: {:?}", log[0]);
    command(&node.manager, Command::AntagonistStop).await.unwrap();
    node.stop().await;
}

async fn measure(prober: &IcmpProber, ip: std::net::IpAddr) -> f64 {
    let spec = WindowSpec { count: 400, interval: Duration::from_millis(5), timeout: Duration::from_millis(300) };
    prober.window(ip, spec).await.expect("probe window").loss()
}

/// The least loss of up to three windows: a clean link shows < 2 % in at least one of them, while
/// a busy 2-core CI machine running the other Docker tests may drop a burst in any single window.
async fn clean_loss(prober: &IcmpProber, ip: std::net::IpAddr) -> f64 {
    let mut least = f64::MAX;
    for _ in 0..3 {
        least = least.min(measure(prober, ip).await);
        if least < 2.0 {
            break;
        }
    }
    least
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_percent_configured_is_forty_to_sixty_measured_over_400_probes() {
    let mut fx = DockerFixture::new();
    let name = fx.run(&[]);
    let ip = fx.ip(&name);
    let pid: u32 = docker(&["inspect", "-f", "{{.State.Pid}}", &name]).parse().unwrap();
    let table = common::unique_table();
    let _guard = TableGuard { table: table.clone() };
    let injector = SystemInjector::new(&table, false);
    let prober = IcmpProber::new().expect("raw icmp (tests run as root)");
    let before = clean_loss(&prober, ip).await;
    assert!(before < 2.0, "a clean link first: {before} %");
    for scope in [LossScope::Link, LossScope::Container] {
        let site = LossSite { ip, scope, pid: Some(pid) };
        injector.inject(&site, 50).await.expect("rule accepted");
        let loss = measure(&prober, ip).await;
        injector.clear(&site).await.unwrap();
        eprintln!("configured 50 % at {scope:?} scope: measured {loss:.1} % over 400 probes");
        assert!((40.0..=60.0).contains(&loss), "{scope:?}: measured {loss} %");
        let after = clean_loss(&prober, ip).await;
        assert!(after < 2.0, "{scope:?}: clean again after clear: {after} %");
    }
    injector.clear_all().await.unwrap();
    assert!(!nft_ruleset().contains(&table));
}
