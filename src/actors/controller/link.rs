//! `ControllerLink`: the controller's end of the host ↔ controller link.
//!
//! Hosts send it their registration, heartbeats and update notices ([`ToController`], the only
//! messages the controller receives from another node); it opens each frame (dropping and counting
//! what does not decode) and forwards it to the [`Controller`]. In cluster mode it joins the
//! process group `hms.controller` and watches every group: when a host's link leaves (its session
//! dropped, its process died) the host goes offline at once.
//!
//! [`Controller`]: super::actor::Controller

use std::time::Duration;

use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent, pg};

use super::actor::ControllerMsg;
use crate::actors::protocol::wire::Wire;
use crate::actors::protocol::{CONTROLLER_GROUP, HOST_GROUP_PREFIX, Register, ToController, find_host};

/// Registration retries while the host's link is not yet visible (process groups are exchanged
/// right after authentication, so it is there within milliseconds).
const REGISTER_ATTEMPTS: u8 = 20;
const REGISTER_RETRY: Duration = Duration::from_millis(100);

/// The read-only half.
pub struct ControllerLink {
    pub controller: ActorRef<ControllerMsg>,
    /// Whether to use process groups (cluster mode).
    pub cluster: bool,
}

impl Actor for ControllerLink {
    type Msg = ToController;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<ToController>, _: ()) -> Result<(), ActorProcessingErr> {
        if self.cluster {
            pg::join(CONTROLLER_GROUP.to_owned(), vec![myself.get_cell()]);
            pg::monitor_scope(pg::DEFAULT_SCOPE.to_owned(), myself.get_cell());
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ToController>,
        msg: ToController,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ToController::Register(r) => self.register(&myself, r),
            ToController::Heartbeat(hb) => self.forward(hb, ControllerMsg::Heartbeat),
            ToController::Notice(n) => self.forward(n, ControllerMsg::Notice),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<ToController>,
        evt: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ProcessGroupChanged(GroupChangeMessage::Leave(_, group, cells)) = evt
            && let Some(host) = group.strip_prefix(HOST_GROUP_PREFIX)
        {
            for cell in cells {
                let _ = self.controller.cast(ControllerMsg::LinkDown { host: host.to_owned(), link: cell.get_id() });
            }
        }
        Ok(())
    }
}

impl ControllerLink {
    fn forward<T>(&self, frame: Wire<T>, to: impl FnOnce(T) -> ControllerMsg) {
        if let Ok(value) = frame.open() {
            let _ = self.controller.cast(to(value));
        }
    }

    /// Finds the host's link and registers it; retries briefly while it is not yet visible.
    fn register(&self, myself: &ActorRef<ToController>, frame: Wire<Register>) {
        let Ok(reg) = frame.open() else { return };
        if let Some(link) = find_host(&reg.host) {
            let _ = self.controller.cast(ControllerMsg::Register { host: reg.host, manager: link });
        } else if reg.attempt < REGISTER_ATTEMPTS {
            let retry = Register { host: reg.host, attempt: reg.attempt + 1 };
            myself.send_after(REGISTER_RETRY, move || ToController::Register(Wire::new(retry)));
        } else {
            tracing::warn!(host = %reg.host, "registration without a reachable host link: ignored");
        }
    }
}
