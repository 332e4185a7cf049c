//! Driving the antagonist of every host through the controller, as `PUT`/`DELETE /antagonist` do.

use std::time::Duration;

use anyhow::{Context, anyhow};
use ractor::ActorRef;

use super::spec::RunSpec;
use crate::actors::controller::ControllerMsg;
use crate::actors::protocol::ToHost;
use crate::actors::protocol::wire::Wire;
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
    let manager = ractor::call_t!(controller, ControllerMsg::Manager, TIMEOUT.as_millis() as u64, host.to_owned())?
        .with_context(|| format!("host {host}"))?;
    let reply = manager.call(|r| ToHost::Command(Wire::new(cmd), r), Some(TIMEOUT)).await?;
    let reply = match reply {
        ractor::rpc::CallResult::Success(r) => r,
        other => return Err(anyhow!("host {host} did not answer: {other:?}")),
    };
    reply.open().map_err(|e| anyhow!("host {host}: {e}"))?.map_err(|e| anyhow!("host {host}: {e}"))
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
