//! The lab: what measures HMS rather than runs it. The product never imports from here.
//!
//! - [`experiment`]: `hms experiment`, the availability and bandwidth experiment;
//! - [`bench`]: `hms bench`, MTTR, probing cost, REST throughput and a simulated cluster;
//! - [`testimage`]: the busybox image built `FROM scratch` for tests and the lab.

pub mod bench;
pub mod experiment;
pub mod testimage;
