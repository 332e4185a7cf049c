//! Assembling a node: a controller and a host manager in one process (`hms standalone`).

use std::path::Path;
use std::sync::Arc;

use ractor::{Actor, ActorRef};
use tokio::sync::broadcast;

use crate::actors::controller::link::ControllerLink;
use crate::actors::controller::{Controller, ControllerMsg, FleetEvent};
use crate::actors::host::link::{Discovery, HostLink};
use crate::actors::host::manager::{HostManager, HostMsg, ManagerArgs};
use crate::actors::host::probe::Monitor;
use crate::config::{ControllerConfig, ManagerConfig};
use crate::probe::Prober;
use crate::runtime::ContainerRuntime;
use crate::store::{Store, StoreError};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot spawn the {actor} actor: {source}")]
    Spawn { actor: &'static str, source: ractor::SpawnErr },
}

/// A running standalone node.
pub struct Node {
    pub controller: ActorRef<ControllerMsg>,
    pub manager: ActorRef<HostMsg>,
    pub events: broadcast::Sender<FleetEvent>,
    /// The link actors, stopped with the node.
    links: Vec<ractor::ActorCell>,
}

/// Longest wait of a link for its manager's answer.
pub const LINK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The edges and settings a standalone node runs with.
pub struct NodeParts {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub prober: Arc<dyn Prober>,
    pub monitor: Monitor,
    pub manager: ManagerConfig,
    pub controller: ControllerConfig,
}

impl Node {
    /// Starts the controller, then the manager attached to it. With `data_dir`, settings persist there.
    pub async fn standalone(parts: NodeParts, data_dir: Option<&Path>) -> Result<Self, NodeError> {
        let (mstore, cstore) = match data_dir {
            Some(dir) => (
                Some(Arc::new(Store::open(dir, "manager.redb")?)),
                Some(Arc::new(Store::open(dir, "controller.redb")?)),
            ),
            None => (None, None),
        };
        let (events, _) = broadcast::channel(1024);
        let controller = Controller { config: parts.controller, store: cstore, events: events.clone() };
        let (controller, _) = Actor::spawn(None, controller, ())
            .await
            .map_err(|source| NodeError::Spawn { actor: "controller", source })?;
        let link = ControllerLink { controller: controller.clone(), cluster: false };
        let (controller_link, _) = Actor::spawn(None, link, ())
            .await
            .map_err(|source| NodeError::Spawn { actor: "controller link", source })?;
        let host = parts.manager.name.clone();
        let mut config = parts.manager;
        config.antagonist.log_dir = config.antagonist.log_dir.or_else(|| data_dir.map(Path::to_path_buf));
        let manager =
            HostManager { runtime: parts.runtime, prober: parts.prober, monitor: parts.monitor, config, store: mstore };
        let (manager, _) = Actor::spawn(None, manager, ManagerArgs { controller: None })
            .await
            .map_err(|source| NodeError::Spawn { actor: "host manager", source })?;
        let link = HostLink { host: host.clone(), manager: manager.clone(), timeout: LINK_TIMEOUT };
        let (host_link, _) = Actor::spawn(None, link, Discovery::Local(controller_link.clone()))
            .await
            .map_err(|source| NodeError::Spawn { actor: "host link", source })?;
        let _ = controller.cast(ControllerMsg::Register { host, manager: host_link.clone() });
        Ok(Self { controller, manager, events, links: vec![controller_link.get_cell(), host_link.get_cell()] })
    }

    /// Stops both actors and waits for them (probes stop with their manager).
    pub async fn stop(self) {
        for link in &self.links {
            link.stop(None);
        }
        let _ = self.manager.stop_and_wait(None, None).await;
        let _ = self.controller.stop_and_wait(None, None).await;
    }
}
