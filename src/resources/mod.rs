//! What a container uses, read outside it: CPU and memory from its cgroup ([`cgroup`], v1 and v2).
//! An edge like [`crate::runtime`] and [`crate::probe`]: plain reads, no decisions.

pub mod cgroup;
