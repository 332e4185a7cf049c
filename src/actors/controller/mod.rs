//! The controller side: the [`actor::Controller`] (the fleet view REST reads), the durable
//! [`known_hosts::KnownHosts`] and its end of the link to the hosts. Nothing here imports the host
//! side; both speak only [`crate::actors::protocol`].

pub mod actor;
pub mod known_hosts;
pub mod link;

pub use actor::{Controller, ControllerMsg, Fleet, FleetEvent, HostUnavailable, Stats, Subscription};
