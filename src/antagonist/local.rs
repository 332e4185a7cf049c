//! `hms antagonist`: a run on the local engine without a controller.
//!
//! An [`Antagonist`] actor alone, fed by a listing of the engine every [`RELIST`] (containers
//! matching the selector, minus those labelled `hms.ignore=true`), started with the given
//! configuration, stopped at the end of its run time or on SIGINT/SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};

use super::config::ConfigPatch;
use super::exec::Target;
use super::inject::Injector;
use crate::actors::host::antagonist::{Antagonist, AntagonistMsg};
use crate::actors::host::state::IGNORE_LABEL;
use crate::actors::protocol::{AntagonistStatus, Command, CommandError};
use crate::runtime::{ContainerRuntime, Selector};

/// Period of the target listing.
pub const RELIST: Duration = Duration::from_secs(2);

/// What a local run needs.
pub struct LocalRun {
    pub host: String,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub injector: Arc<dyn Injector>,
    pub select: Option<Selector>,
    pub config: ConfigPatch,
    pub data_dir: Option<PathBuf>,
}

/// Why a local run failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot spawn the antagonist: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    #[error("the antagonist refused to start: {0}")]
    Refused(#[source] CommandError),
    #[error("cannot list containers: {0}")]
    List(#[source] crate::runtime::RuntimeError),
    #[error("the antagonist did not answer")]
    NoAnswer,
}

/// The eligible containers of the engine.
pub async fn targets(runtime: &dyn ContainerRuntime, select: Option<&Selector>) -> Result<Vec<Target>, LocalError> {
    let listed = runtime.list(select).await.map_err(LocalError::List)?;
    let ignored = |l: &std::collections::BTreeMap<String, String>| {
        l.get(IGNORE_LABEL).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    Ok(listed.into_iter().filter(|c| !ignored(&c.labels)).map(|c| Target::new(c.id, c.name, &c.labels, c.ip)).collect())
}

async fn ask(actor: &ActorRef<AntagonistMsg>, cmd: Command) -> Result<AntagonistStatus, LocalError> {
    let res = actor.call(|r| AntagonistMsg::Command(Box::new(cmd), r), Some(Duration::from_secs(5))).await;
    match res {
        Ok(ractor::rpc::CallResult::Success(Ok(ok))) => ok.antagonist.ok_or(LocalError::NoAnswer),
        Ok(ractor::rpc::CallResult::Success(Err(e))) => Err(LocalError::Refused(e)),
        _ => Err(LocalError::NoAnswer),
    }
}

/// Runs until the run time is over or `stop` resolves; returns the final status.
pub async fn run(parts: LocalRun, stop: impl std::future::Future<Output = ()>) -> Result<AntagonistStatus, LocalError> {
    let actor = Antagonist {
        host: parts.host,
        runtime: parts.runtime.clone(),
        injector: parts.injector,
        log_dir: parts.data_dir,
        sensors: Some(std::sync::Arc::new(crate::resources::sensors::HostSensors::new())),
    };
    let (actor, handle) = Actor::spawn(None, actor, Default::default()).await?;
    let first = targets(parts.runtime.as_ref(), parts.select.as_ref()).await;
    let outcome = async {
        actor.cast(AntagonistMsg::Targets(first?)).map_err(|_| LocalError::NoAnswer)?;
        ask(&actor, Command::AntagonistStart(Some(parts.config))).await
    }
    .await;
    if let Err(e) = outcome {
        actor.stop(None);
        let _ = handle.await;
        return Err(e);
    }
    let (rt, select, me) = (parts.runtime.clone(), parts.select.clone(), actor.clone());
    let lister = tokio::spawn(async move {
        loop {
            tokio::time::sleep(RELIST).await;
            match targets(rt.as_ref(), select.as_ref()).await {
                Ok(t) => {
                    let _ = me.cast(AntagonistMsg::Targets(t));
                }
                Err(e) => tracing::warn!(error = %e, "listing targets failed"),
            }
        }
    });
    let running = async {
        while ask(&actor, Command::AntagonistStatus).await.is_ok_and(|s| s.running) {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        () = running => {}
        () = stop => {}
    }
    lister.abort();
    let status = ask(&actor, Command::AntagonistStop).await;
    actor.stop(None);
    let _ = handle.await;
    status
}
