//! HMS, a health monitor for Docker fleets.
//!
//! A tour of the crate:
//! - [`actors`]: the controller, host managers and probe actors (the supervision tree is drawn in
//!   its docs), and [`actors::protocol`], the only messages exchanged between host and controller.
//! - [`health`] and [`policy`]: pure healing verdicts and the restart policy (back-off, quarantine).
//! - [`runtime`]: Docker behind the `ContainerRuntime` trait (bollard and an in-memory fake).
//! - [`probe`]: ICMP echo windows behind the `Prober` trait (surge-ping and a fake).
//! - [`antagonist`]: fault injection (seeded planner, shutdowns, packet loss with netem or
//!   nftables, ground-truth log); its actor is [`actors::antagonist`].
//! - [`http`]: the REST API on warp.
//! - [`node`]: assembling a standalone node; [`cluster`]: controller and manager nodes over
//!   ractor_cluster; [`bench`]: the MTTR and probe-cost benchmarks.
//! - [`ctl`]: `hmsctl`, the command-line client of the REST API.
//! - [`fleet`]: the immutable fleet snapshots REST readers borrow.
//! - [`store`]: durable settings (redb); [`config`]: typed configuration.

pub mod actors;
pub mod antagonist;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod ctl;
pub mod experiment;
pub mod fleet;
pub mod health;
pub mod http;
pub mod model;
pub mod node;
pub mod policy;
pub mod probe;
pub mod runtime;
pub mod shutdown;
pub mod store;
pub mod testimage;
