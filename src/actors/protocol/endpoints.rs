//! The two actor endpoints of the host ↔ controller link and how each side finds the other.
//!
//! [`ToHost`] is the only message a host receives from another node, [`ToController`] the only one
//! a controller receives. Each carries [`Wire`] frames of the types in [`super`]. Both sides find
//! each other through ractor's process groups: the controller's link joins [`CONTROLLER_GROUP`],
//! a host's link joins [`host_group`].

use ractor::{ActorRef, RpcReplyPort, pg};
use ractor_cluster::RactorClusterMessage;

use super::wire::Wire;
use super::{Command, CommandReply, Content, Heartbeat, PullRequest, Register, UpdateNotice};

/// Process group of the controller's link.
pub const CONTROLLER_GROUP: &str = "hms.controller";

/// Prefix of the process group of each host's link.
pub const HOST_GROUP_PREFIX: &str = "hms.host.";

/// Process group of one host's link.
pub fn host_group(host: &str) -> String {
    format!("{HOST_GROUP_PREFIX}{host}")
}

/// The link of `host` as this node sees it (local or remote), the most recent when several.
pub fn find_host(host: &str) -> Option<ActorRef<ToHost>> {
    pg::get_members(&host_group(host)).pop().map(Into::into)
}

/// The controller's link as this node sees it, the most recent when several.
pub fn find_controller() -> Option<ActorRef<ToController>> {
    pg::get_members(&CONTROLLER_GROUP.to_owned()).pop().map(Into::into)
}

/// What the controller asks a host. The only messages a host receives from another node.
#[derive(RactorClusterMessage)]
pub enum ToHost {
    /// The host's content since a version (a full snapshot without one).
    #[rpc]
    Pull(Wire<PullRequest>, RpcReplyPort<Wire<Content>>),
    /// A command (threshold, ignore, monitor, …), answered with OK or the host's error.
    #[rpc]
    Command(Wire<Command>, RpcReplyPort<Wire<CommandReply>>),
}

/// What hosts tell the controller.
#[derive(RactorClusterMessage)]
pub enum ToController {
    /// A host's link is up (after it found this controller, or after a reconnect).
    Register(Wire<Register>),
    /// Once per heartbeat period.
    Heartbeat(Wire<Heartbeat>),
    /// The host's content changed.
    Notice(Wire<UpdateNotice>),
}
