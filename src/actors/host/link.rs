//! `HostLink`: a host manager's end of the host ↔ controller link.
//!
//! It answers the controller's pulls and commands on behalf of the [`HostManager`], and keeps a
//! controller attached to the manager:
//! - standalone: the controller's link is handed over at spawn;
//! - cluster: it joins the process group `hms.host.<name>` (so the controller can find it),
//!   watches the group `hms.controller`, attaches the controller when its link appears (whoever
//!   dialled whom) and detaches it when it leaves; with a controller address it dials it, and
//!   re-dials after a loss with exponential back-off and jitter (100 ms doubling to 2 s).
//!
//! Pulls and commands run in spawned tasks: a slow manager never blocks the link.
//!
//! [`HostManager`]: super::manager::HostManager

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent, pg};
use ractor_cluster::NodeServerMessage;

use super::manager::HostMsg;
use crate::actors::protocol::wire::Wire;
use crate::actors::protocol::{
    CONTROLLER_GROUP, Command, CommandError, CommandReply, Content, PullRequest, Register, ToController, ToHost,
    find_controller, host_group,
};
use crate::policy::backoff::dial_delay;

/// How the link finds its controller.
pub enum Discovery {
    /// In the same process: this controller link.
    Local(ActorRef<ToController>),
    /// Over ractor_cluster: through process groups, dialling `dial` when given.
    Cluster { node: ActorRef<NodeServerMessage>, dial: Option<String> },
}

/// The read-only half.
pub struct HostLink {
    pub host: String,
    pub manager: ActorRef<HostMsg>,
    /// Longest wait for the manager's answer.
    pub timeout: Duration,
}

/// The mutable half.
pub struct LinkState {
    discovery: Discovery,
    controller: Option<ActorRef<ToController>>,
    /// The dialling task, while one runs.
    dialler: Option<tokio::task::JoinHandle<()>>,
}

impl Actor for HostLink {
    type Msg = ToHost;
    type State = LinkState;
    type Arguments = Discovery;

    async fn pre_start(&self, myself: ActorRef<ToHost>, discovery: Discovery) -> Result<LinkState, ActorProcessingErr> {
        let mut state = LinkState { discovery, controller: None, dialler: None };
        match &state.discovery {
            Discovery::Local(c) => {
                let c = c.clone();
                self.attach(&myself, &mut state, Some(c));
            }
            Discovery::Cluster { .. } => {
                pg::join(host_group(&self.host), vec![myself.get_cell()]);
                pg::monitor(CONTROLLER_GROUP.to_owned(), myself.get_cell());
                self.rediscover(&myself, &mut state);
                self.dial(&myself, &mut state);
            }
        }
        Ok(state)
    }

    async fn post_stop(&self, _: ActorRef<ToHost>, state: &mut LinkState) -> Result<(), ActorProcessingErr> {
        if let Some(d) = state.dialler.take() {
            d.abort();
        }
        Ok(())
    }

    async fn handle(&self, _: ActorRef<ToHost>, msg: ToHost, _: &mut LinkState) -> Result<(), ActorProcessingErr> {
        match msg {
            ToHost::Pull(req, reply) => self.pull(req, reply),
            ToHost::Command(cmd, reply) => self.command(cmd, reply),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ToHost>,
        evt: SupervisionEvent,
        state: &mut LinkState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ProcessGroupChanged(change) = evt
            && change.get_group() == CONTROLLER_GROUP
        {
            self.rediscover(&myself, state);
            if state.controller.is_none() {
                self.dial(&myself, state);
            }
        }
        Ok(())
    }
}

impl HostLink {
    fn pull(&self, req: Wire<PullRequest>, reply: RpcReplyPort<Wire<Content>>) {
        let Ok(req) = req.open() else { return };
        let (manager, timeout) = (self.manager.clone(), self.timeout);
        tokio::spawn(async move {
            if let Ok(ractor::rpc::CallResult::Success(c)) =
                manager.call(|r| HostMsg::Pull(req, r), Some(timeout)).await
            {
                let _ = reply.send(Wire::new(c));
            }
        });
    }

    fn command(&self, cmd: Wire<Command>, reply: RpcReplyPort<Wire<CommandReply>>) {
        let cmd = match cmd.open() {
            Ok(cmd) => cmd,
            Err(e) => {
                let _ = reply.send(Wire::new(Err(CommandError::Invalid(e.to_string()))));
                return;
            }
        };
        let (manager, timeout) = (self.manager.clone(), self.timeout);
        tokio::spawn(async move {
            if let Ok(ractor::rpc::CallResult::Success(r)) =
                manager.call(|r| HostMsg::Command(cmd, r), Some(timeout)).await
            {
                let _ = reply.send(Wire::new(r));
            }
        });
    }

    /// Attaches the controller link currently in the process group, or detaches a departed one.
    fn rediscover(&self, myself: &ActorRef<ToHost>, state: &mut LinkState) {
        let current = find_controller();
        let same = match (&current, &state.controller) {
            (Some(a), Some(b)) => a.get_id() == b.get_id(),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.attach(myself, state, current);
        }
    }

    fn attach(&self, _myself: &ActorRef<ToHost>, state: &mut LinkState, controller: Option<ActorRef<ToController>>) {
        match &controller {
            Some(c) => {
                tracing::info!(host = %self.host, "controller attached");
                // standalone: the node registers this link with its controller directly
                if matches!(state.discovery, Discovery::Cluster { .. }) {
                    let register = Register { host: self.host.clone(), attempt: 0 };
                    let _ = c.cast(ToController::Register(Wire::new(register)));
                }
            }
            None => tracing::warn!(host = %self.host, "controller lost: healing goes on alone"),
        }
        state.controller = controller.clone();
        let _ = self.manager.cast(HostMsg::SetController(controller));
    }

    /// Dials the controller (cluster mode with an address) until its link shows up, unless a
    /// dialling task already runs.
    fn dial(&self, _myself: &ActorRef<ToHost>, state: &mut LinkState) {
        let Discovery::Cluster { node, dial: Some(addr) } = &state.discovery else { return };
        if state.dialler.as_ref().is_some_and(|d| !d.is_finished()) {
            return;
        }
        let (node, addr, host) = (node.clone(), addr.clone(), self.host.clone());
        state.dialler = Some(tokio::spawn(dial_until_attached(node, addr, host)));
    }
}

/// Dials `addr` with back-off until the controller's link is in the process group.
async fn dial_until_attached(node: ActorRef<NodeServerMessage>, addr: String, host: String) {
    let present = || !pg::get_members(&CONTROLLER_GROUP.to_owned()).is_empty();
    for failures in 0u32.. {
        tokio::time::sleep(dial_delay(failures, rand::random::<f64>())).await;
        if present() {
            return;
        }
        match ractor_cluster::client_connect(&node, addr.as_str()).await {
            Ok(()) => {
                // the session authenticates and exchanges process groups; give it a moment
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if present() {
                        return;
                    }
                }
                tracing::warn!(host = %host, controller = %addr, "connected, but no controller answered (cookie?)");
            }
            Err(e) => {
                tracing::warn!(host = %host, controller = %addr, error = ?e, attempt = failures + 1, "cannot reach the controller")
            }
        }
    }
}
