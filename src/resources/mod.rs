//! What a container uses, read outside it: CPU and memory from its cgroup ([`cgroup`], v1 and v2);
//! its inbound traffic and the host's CPU, memory, load and pressure from procfs ([`procfs`]).
//! An edge like [`crate::runtime`] and [`crate::probe`]: plain reads, no decisions.

pub mod budget;
pub mod cgroup;
pub mod files;
pub mod procfs;
pub mod sensors;
