//! The host side: one [`manager::HostManager`] per Docker host, its probes, its antagonist and its
//! end of the link to the controller. Nothing here imports the controller side; both speak only
//! [`crate::actors::protocol`].
//!
//! The host's supervision tree, and what happens when each child dies:
//!
//! ```text
//! HostLink                          (sibling, not a child) answers the controller's pulls and
//!                                   commands through the manager; attaches/detaches the controller
//! HostManager                       spawned unsupervised by the node; heals with or without a
//!  │                                controller (a lost controller only stops notices/heartbeats)
//!  ├─ ProbeActor × container        linked ([`probes`]): when one panics or stops, the manager
//!  │                                logs it, forgets it and sends itself `RespawnProbe` after a
//!  │                                back-off (100 ms doubling to 10 s, reset by its next window);
//!  │                                meanwhile the container is healed from engine events alone
//!  ├─ Antagonist                    linked, idle until started ([`antagonist_child`]): when it
//!  │   └─ attack loop × target      dies, its commands are refused ("restarting") and the manager
//!  │      (tasks)                   sends itself `RespawnAntagonist` after 1 s; the fresh one's
//!  │                                start-up removes leftover rules
//!  ├─ event watcher (task)          not with the seed's strategy; reconnects by itself with
//!  │                                back-off and asks for a resync after every (re)connection
//!  ├─ listing / inspection (tasks)  [`engine`], one per request; an error comes back as a typed
//!  │                                `RuntimeError` in `Listed` / `Inspected`, logged, and the
//!  │                                next resync tries again
//!  └─ restart (tasks)               [`engine`]: at most `RESTARTS_IN_FLIGHT` at once; the
//!                                   outcome comes back as `RestartDone`, a failure is decided on
//!                                   again (HMS: at once and after 100 ms)
//! ```
//!
//! Decisions are plain sync code: [`state`] (scope, events, the healing plan, replication) and
//! [`healing`] (the strategy picked once from the heal mode); the manager carries them out.
//! [`commands`] applies and persists the user commands, [`upstream`] notifies the controller,
//! [`series`] keeps every container's recent signals.

pub mod analysis;
pub mod antagonist;
pub mod antagonist_child;
pub mod commands;
pub mod engine;
pub mod healing;
pub mod link;
pub mod manager;
pub mod probe;
pub mod probes;
pub mod series;
pub mod state;
pub mod upstream;
