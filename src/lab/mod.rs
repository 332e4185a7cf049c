//! The lab: what measures HMS rather than runs it. The product never imports from here.
//!
//! - [`experiment`]: `hms experiment`, the availability and bandwidth experiment, and with
//!   `--analysis` the detection and identification one;
//! - [`analyze`]: `hms analyze --replay`, both analysis methods scored on one recording;
//! - [`bench`]: `hms bench`, MTTR, probing cost, REST throughput and a simulated cluster;
//! - [`testimage`]: the busybox image built `FROM scratch` for tests and the lab;
//! - [`serviceimage`]: the same busybox running `httpd`, a service whose response time depends on
//!   CPU and load.

pub mod analyze;
pub mod bench;
pub mod experiment;
pub mod serviceimage;
pub mod testimage;
