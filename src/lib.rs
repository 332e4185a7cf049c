//! HMS, a health monitor for Docker fleets.
//!
//! A tour of the crate:
//! - [`actors`]: the supervision tree (drawn in its docs), split by the wire: [`actors::host`]
//!   (host manager, probes, antagonist, the host's link), [`actors::controller`] (the fleet view
//!   and the controller's link), and [`actors::protocol`], the only types that cross nodes.
//! - [`analysis`]: what users feel of each container (response time, workload, resources) and,
//!   on top of it, detection, identification and recovery by cause.
//! - [`policy`]: pure decisions shared by both sides: health verdicts, the restart policy,
//!   the one [`policy::Backoff`], the aggregation window.
//! - [`runtime`]: Docker behind the `ContainerRuntime` trait (bollard and an in-memory fake).
//! - [`probe`]: ICMP echo windows behind the `Prober` trait (surge-ping and a fake).
//! - [`resources`]: a container's CPU and memory from its cgroup files (v1 and v2); its inbound
//!   traffic and the host's CPU, memory, load and pressure from procfs.
//! - [`antagonist`]: fault injection (seeded planner, shutdowns, packet loss with netem or
//!   nftables, ground-truth log); its actor is [`actors::host::antagonist`].
//! - [`http`]: the REST API on warp.
//! - [`node`]: assembling a standalone node; [`cluster`]: controller and manager nodes over
//!   ractor_cluster.
//! - [`lab`]: what measures HMS (experiment, benches, simulated managers, the test image); the
//!   product never imports it.
//! - [`ctl`]: `hmsctl`, the command-line client of the REST API.
//! - [`fleet`]: the immutable fleet snapshots REST readers borrow.
//! - [`store`]: durable settings (redb); [`config`]: typed configuration.

pub mod actors;
pub mod analysis;
pub mod antagonist;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod ctl;
pub mod fleet;
pub mod http;
pub mod lab;
pub mod load;
pub mod model;
pub mod node;
pub mod policy;
pub mod probe;
pub mod resources;
pub mod runtime;
pub mod shutdown;
pub mod store;
