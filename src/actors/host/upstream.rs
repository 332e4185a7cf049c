//! The manager's side of the controller: update notices (one until the controller pulls) and
//! heartbeats. A lost controller never stops healing: without one they go nowhere.

use crate::analysis::signals::HostSignals;
use ractor::ActorRef;

use crate::actors::protocol::wire::Wire;
use crate::actors::protocol::{Heartbeat, ToController, UpdateNotice};

/// The controller a manager reports to, when one is attached.
#[derive(Default)]
pub struct Upstream {
    controller: Option<ActorRef<ToController>>,
    /// A notice was sent and not yet answered by a pull.
    notice_pending: bool,
}

impl Upstream {
    /// Attaches (or detaches) the controller. Its registration is the link's business
    /// ([`super::link`]).
    pub fn attach(&mut self, controller: Option<ActorRef<ToController>>) {
        self.controller = controller;
        self.notice_pending = false;
    }

    /// Tells the controller the host changed, unless a notice already waits for its pull.
    pub fn notify(&mut self, host: &str, version: u64) {
        let Some(c) = &self.controller else { return };
        if self.notice_pending {
            return;
        }
        let notice = UpdateNotice { host: host.to_owned(), version };
        self.notice_pending = c.cast(ToController::Notice(Wire::new(notice))).is_ok();
    }

    /// The controller pulled: the next change is worth a notice again.
    pub fn pulled(&mut self) {
        self.notice_pending = false;
    }

    pub fn heartbeat(&self, host: &str, version: u64, signals: HostSignals) {
        if let Some(c) = &self.controller {
            let hb = Heartbeat { host: host.to_owned(), version, signals };
            let _ = c.cast(ToController::Heartbeat(Wire::new(hb)));
        }
    }
}
