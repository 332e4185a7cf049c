//! Driving the antagonist of every host through the controller, as `PUT`/`DELETE /antagonist` do.

use std::time::Duration;

use anyhow::anyhow;
use ractor::ActorRef;

use super::spec::RunSpec;
use crate::actors::controller::ControllerMsg;
use crate::actors::protocol::{Command, CommandOk};
use crate::antagonist::config::{ConfigPatch, LossScope};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The configuration of host number `i`: the scenario, a seed of its own, bounded by the run.
pub fn patch(spec: &RunSpec, i: usize) -> anyhow::Result<ConfigPatch> {
    let scope = match spec.loss_scope.as_str() {
        "link" => LossScope::Link,
        "container" => LossScope::Container,
        other => return Err(anyhow!("--loss-scope must be link or container, got {other:?}")),
    };
    Ok(ConfigPatch {
        scenario: Some(spec.scenario.clone()),
        seed: Some(spec.seed.wrapping_add(i as u64)),
        loss_scope: Some(scope),
        run_time: Some(spec.duration),
        ..ConfigPatch::default()
    })
}

async fn command(controller: &ActorRef<ControllerMsg>, host: &str, cmd: Command) -> anyhow::Result<CommandOk> {
    let host = host.to_owned();
    let reply =
        controller.call(|reply| ControllerMsg::Command { host: host.clone(), cmd, reply }, Some(TIMEOUT)).await?;
    let ractor::rpc::CallResult::Success(res) = reply else {
        return Err(anyhow!("host {host} did not answer: {reply:?}"));
    };
    Ok(res?)
}

/// Starts the antagonist on every host.
pub async fn start_antagonists(
    controller: &ActorRef<ControllerMsg>,
    hosts: &[String],
    spec: &RunSpec,
) -> anyhow::Result<()> {
    for (i, host) in hosts.iter().enumerate() {
        command(controller, host, Command::AntagonistStart(Some(patch(spec, i)?))).await?;
    }
    Ok(())
}

/// Stops the antagonist on every host (each undoes its attacks in progress).
pub async fn stop_antagonists(controller: &ActorRef<ControllerMsg>, hosts: &[String]) -> anyhow::Result<()> {
    for host in hosts {
        command(controller, host, Command::AntagonistStop).await?;
    }
    Ok(())
}

/// Starts host `host`'s antagonist with `patch`.
pub async fn start_with(controller: &ActorRef<ControllerMsg>, host: &str, patch: ConfigPatch) -> anyhow::Result<()> {
    command(controller, host, Command::AntagonistStart(Some(patch))).await.map(|_| ())
}
