//! The host side: one [`manager::HostManager`] per Docker host, its probes, its antagonist and its
//! end of the link to the controller. Nothing here imports the controller side; both speak only
//! [`crate::actors::protocol`].

pub mod antagonist;
pub mod commands;
pub mod healing;
pub mod link;
pub mod manager;
pub mod probe;
pub mod probes;
pub mod restarts;
pub mod state;
