//! The controller side: the [`actor::Controller`] (the actor REST talks to), its pure
//! [`fleet_view::FleetView`] (every decision, no I/O), the durable [`known_hosts::KnownHosts`],
//! its [`error::ControllerError`] and its end of the link to the hosts. Nothing here imports the
//! host side; both speak only [`crate::actors::protocol`].

pub mod actor;
pub mod error;
pub mod fleet_view;
pub mod known_hosts;
pub mod link;

pub use actor::{CommandResult, Controller, ControllerMsg, Subscription};
pub use error::ControllerError;
pub use fleet_view::{Fleet, FleetEvent, FleetView, Stats};
