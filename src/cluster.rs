//! The distributed shape: a controller node and host-manager nodes joined over ractor_cluster.
//!
//! Each process runs one `NodeServer` (sessions, cookie authentication, process-group exchange)
//! in isolated mode: managers talk to the controller only, never to each other. Liveness,
//! reconnection and resynchronisation are HMS's own (see [`crate::actors::host::link`] and
//! [`crate::actors::controller::link`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{NodeServer, NodeServerMessage};
use tokio::sync::broadcast;

use crate::actors::controller::link::ControllerLink;
use crate::actors::controller::{Controller, ControllerMsg, FleetEvent};
use crate::actors::host::link::{Discovery, HostLink};
use crate::actors::host::manager::{HostManager, HostMsg, ManagerArgs};
use crate::actors::host::probe::Monitor;
use crate::actors::protocol::wire::MAX_FRAME;
use crate::config::{ControllerConfig, ManagerConfig};
use crate::node::{LINK_TIMEOUT, NodeError};
use crate::probe::Prober;
use crate::runtime::ContainerRuntime;
use crate::store::Store;

/// The cluster name of the controller node.
pub const CONTROLLER_NODE: &str = "hms-controller";

/// The cluster name of a host's node.
pub fn host_node(host: &str) -> String {
    format!("hms-host-{host}")
}

/// Starts this process's node server listening on `listen`.
pub async fn node_server(
    name: String,
    listen: SocketAddr,
    cookie: String,
) -> Result<ActorRef<NodeServerMessage>, NodeError> {
    let server =
        NodeServer::new(listen.port(), cookie, name, listen.ip().to_string(), None, Some(NodeConnectionMode::Isolated))
            .with_listen_addr(listen.ip())
            .with_max_inbound_frame_size(MAX_FRAME as u64 + 64 * 1024);
    let (node, _) =
        Actor::spawn(None, server, ()).await.map_err(|source| NodeError::Spawn { actor: "node server", source })?;
    Ok(node)
}

/// A running controller node.
pub struct ControllerNode {
    pub controller: ActorRef<ControllerMsg>,
    pub events: broadcast::Sender<FleetEvent>,
    actors: Vec<ActorCell>,
}

impl ControllerNode {
    /// Starts the controller, its link (in the process group `hms.controller`) and the node server.
    pub async fn start(
        config: ControllerConfig,
        data_dir: Option<&Path>,
        listen: SocketAddr,
        cookie: String,
    ) -> Result<Self, NodeError> {
        let store = data_dir.map(|d| Store::open(d, "controller.redb")).transpose()?.map(Arc::new);
        let (events, _) = broadcast::channel(1024);
        let controller = Controller { config, store, events: events.clone() };
        let (controller, _) = Actor::spawn(None, controller, ())
            .await
            .map_err(|source| NodeError::Spawn { actor: "controller", source })?;
        let link = ControllerLink { controller: controller.clone(), cluster: true };
        let (link, _) = Actor::spawn(None, link, ())
            .await
            .map_err(|source| NodeError::Spawn { actor: "controller link", source })?;
        let node = node_server(CONTROLLER_NODE.to_owned(), listen, cookie).await?;
        let _ = controller.cast(ControllerMsg::AttachNode(node.clone()));
        Ok(Self { controller, events, actors: vec![node.get_cell(), link.get_cell()] })
    }

    pub async fn stop(self) {
        for a in &self.actors {
            a.stop(None);
        }
        let _ = self.controller.stop_and_wait(None, None).await;
    }
}

/// A running host-manager node.
pub struct ManagerNode {
    pub manager: ActorRef<HostMsg>,
    actors: Vec<ActorCell>,
}

/// The edges and settings of a manager node.
pub struct ManagerParts {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub prober: Arc<dyn Prober>,
    pub monitor: Monitor,
    pub config: ManagerConfig,
    /// Where this node listens for the controller (it may dial us).
    pub listen: SocketAddr,
    /// The controller to dial, if any.
    pub controller: Option<String>,
    pub cookie: String,
}

impl ManagerNode {
    /// Starts the host manager (healing at once, with or without a controller), the node server,
    /// and the link that finds, dials and re-dials the controller.
    pub async fn start(parts: ManagerParts, data_dir: Option<&Path>) -> Result<Self, NodeError> {
        let store = data_dir.map(|d| Store::open(d, "manager.redb")).transpose()?.map(Arc::new);
        let host = parts.config.name.clone();
        let mut config = parts.config;
        config.antagonist.log_dir = config.antagonist.log_dir.or_else(|| data_dir.map(Path::to_path_buf));
        let manager =
            HostManager { runtime: parts.runtime, prober: parts.prober, monitor: parts.monitor, config, store };
        let (manager, _) = Actor::spawn(None, manager, ManagerArgs { controller: None })
            .await
            .map_err(|source| NodeError::Spawn { actor: "host manager", source })?;
        let node = node_server(host_node(&host), parts.listen, parts.cookie).await?;
        let link = HostLink { host, manager: manager.clone(), timeout: LINK_TIMEOUT };
        let discovery = Discovery::Cluster { node: node.clone(), dial: parts.controller };
        let (link, _) = Actor::spawn(None, link, discovery)
            .await
            .map_err(|source| NodeError::Spawn { actor: "host link", source })?;
        Ok(Self { manager, actors: vec![link.get_cell(), node.get_cell()] })
    }

    pub async fn stop(self) {
        for a in &self.actors {
            a.stop(None);
        }
        let _ = self.manager.stop_and_wait(None, None).await;
    }
}
