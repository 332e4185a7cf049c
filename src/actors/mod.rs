//! The actors of HMS, split by the wire: [`host`] runs on every Docker host, [`controller`] once
//! per fleet, and [`protocol`] holds the only types that cross between them. The host and
//! controller sides never import each other.
//!
//! The whole supervision tree, with what restarts what:
//!
//! ```text
//! controller node (`hms controller`; `hms standalone` runs both nodes in one process)
//!  ├─ NodeServer (ractor_cluster)   accepts host sessions; a dropped session takes the host's
//!  │                                process-group membership with it
//!  ├─ ControllerLink                receives ToController frames, joins `hms.controller`; a host
//!  │                                link leaving its group marks the host offline at once
//!  ├─ Controller                    the fleet view ([`controller::actor`]); the liveness tick
//!  │                                marks hosts offline after 3 missed heartbeats and re-dials
//!  │                                known hosts with an endpoint (back-off)
//!  └─ warp server (tasks)           REST, SSE, /metrics, dashboard; reads published snapshots
//!
//! host node (`hms manager`)
//!  ├─ NodeServer (ractor_cluster)   dials the controller; sessions are re-dialled by HostLink
//!  ├─ HostLink                      receives ToHost frames, joins `hms.host.<name>`; attaches the
//!  │                                controller when its link appears, re-dials with back-off
//!  └─ HostManager                   heals on its own, with or without a controller
//!      ├─ ProbeActor × container    linked: a probe that panics or stops is re-spawned by its
//!      │                            manager after a back-off (100 ms doubling to 10 s)
//!      ├─ Antagonist                linked, idle until started: if it dies, the manager spawns a
//!      │   └─ attack loop × target  fresh idle one after 1 s (its start-up removes the leftover
//!      │      (tasks)               rules); the loops are aborted and undone when it stops
//!      └─ event watcher (task)      reconnects by itself with back-off (100 ms doubling to 5 s)
//!                                   and asks for a resync after every (re)connection
//! ```
//!
//! - When a `ProbeActor` dies, its manager logs it and schedules `RespawnProbe`; healing of the
//!   container goes on from Docker events meanwhile.
//! - The manager feeds its antagonist the eligible targets (in scope, not ignored) whenever they
//!   change and forwards antagonist commands to it; `hms antagonist` runs an `Antagonist` alone,
//!   fed by a periodic listing ([`crate::antagonist::local`]).
//! - When the controller dies, managers keep healing; their notices and heartbeats go nowhere
//!   until a controller is attached again (`HostMsg::SetController`).
//! - Decisions live in plain types ([`host::state::HostState`], the controller's fleet view,
//!   [`crate::policy`]); actors only carry them out.

pub mod controller;
pub mod host;
pub mod protocol;
