//! Fault injection: the seed's antagonist, fixed where the seed was broken.
//!
//! - [`config`]: the configuration, its patches and the built-in scenarios.
//! - [`plan`]: the pure, seeded planner.
//! - [`exec`]: the executor, one sequential loop per target (runtime + injector).
//! - [`inject`], [`loss`], [`netem`]: packet loss at a site (host side or inside a container's
//!   namespace) with nftables random drop or netem, in one table owned by the process.
//! - [`truth`]: the ground-truth log of every attack (JSON lines).
//! - [`local`]: `hms antagonist`, a run on the local engine without a controller.
//!
//! The actor shell is [`crate::actors::host::antagonist`].

pub mod config;
pub mod exec;
pub mod faults;
pub mod inject;
pub mod local;
pub mod loss;
pub mod netem;
pub mod plan;
pub mod truth;
