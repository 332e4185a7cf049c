//! The actors of HMS and their supervision tree.
//!
//! ```text
//! Controller                      (one per fleet; `hms standalone` runs it in-process)
//! HostManager                     (one per Docker host)
//!  ├─ ProbeActor × container      linked: a probe that panics or stops is re-spawned by its
//!  │                              manager after a back-off (100 ms doubling to 10 s)
//!  ├─ Antagonist                  linked, idle until started: if it dies, the manager spawns a
//!  │   └─ attack loop × target    fresh idle one after 1 s (its start-up removes the leftover
//!  │      (tasks)                 rules); the loops are aborted and undone when it stops
//!  └─ event watcher (task)        reconnects by itself with back-off; asks for a resync after
//!                                 every (re)connection
//! ```
//!
//! - When a `ProbeActor` dies, its manager logs it and schedules `RespawnProbe`; healing of the
//!   container goes on from Docker events meanwhile.
//! - The manager feeds its antagonist the eligible targets (in scope, not ignored) whenever they
//!   change and forwards antagonist commands to it; `hms antagonist` runs an `Antagonist` alone,
//!   fed by a periodic listing ([`crate::antagonist::local`]).
//! - When the controller dies, managers keep healing; their notices and heartbeats go nowhere
//!   until a controller is attached again (`HostMsg::SetController`).
//! - Decisions live in plain types ([`host_state::HostState`], [`aggregation::Aggregator`],
//!   [`crate::policy`], [`crate::health`]); actors only carry them out.

pub mod aggregation;
pub mod antagonist;
pub mod controller;
pub mod controller_link;
pub mod host_link;
pub mod host_manager;
pub mod host_state;
pub mod known_hosts;
pub mod probe;
pub mod protocol;
pub mod wire;
